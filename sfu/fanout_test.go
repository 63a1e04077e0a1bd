package sfu

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// countingSink records the sequence numbers it is given and the goroutine
// count observed, standing in for a down track.
type countingSink struct {
	mu   sync.Mutex
	seqs []uint16
}

func (c *countingSink) writeRTP(_ int, h *rtp.Header, _ []byte, _ bool, _ time.Time) {
	c.mu.Lock()
	c.seqs = append(c.seqs, h.SequenceNumber)
	c.mu.Unlock()
}
func (c *countingSink) layersChanged() {}
func (c *countingSink) trackClosed()   {}

// helperSink notes whether it was written from a helper goroutine.
type helperSink struct {
	countingSink
	main   func() bool
	helped bool
}

func (s *helperSink) writeRTP(l int, h *rtp.Header, p []byte, k bool, now time.Time) {
	if !s.main() {
		s.helped = true
	}
	s.countingSink.writeRTP(l, h, p, k, now)
}

func TestFanOutSpreadsAndKeepsOrder(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one core: nothing to spread over")
	}
	m, _ := newMetrics(nil)
	f := newFanOut(m)
	defer f.stop()
	mainID := goroutineID()
	isMain := func() bool { return goroutineID() == mainID }
	const n = 3*spreadAbove + 5
	sinks := make([]sink, n)
	hs := make([]*helperSink, n)
	for i := range sinks {
		hs[i] = &helperSink{main: isMain}
		sinks[i] = hs[i]
	}
	h := rtp.Header{SequenceNumber: 65530}
	for range 20 {
		f.deliver(sinks, 0, &h, []byte{1}, false, time.Now(), time.Time{})
		h.SequenceNumber++
	}
	helped := 0
	for i, s := range hs {
		if len(s.seqs) != 20 {
			t.Fatalf("sink %d got %d packets, want 20", i, len(s.seqs))
		}
		for k, seq := range s.seqs {
			if seq != uint16(65530+k) {
				t.Fatalf("sink %d got packets out of order: %v", i, s.seqs)
			}
		}
		if s.helped {
			helped++
		}
	}
	if helped == 0 || helped == n {
		t.Errorf("%d of %d sinks written by helpers; want some but not all", helped, n)
	}
}

// goroutineID parses the current goroutine's id from its stack header
// (tests only).
func goroutineID() string {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	// "goroutine 123 [running]:..."
	for i := len("goroutine "); i < len(b); i++ {
		if b[i] == ' ' {
			return string(b[len("goroutine "):i])
		}
	}
	return ""
}
