package recorder

import (
	"context"
	"errors"
	"testing"
	"time"
)

// failingWriter accepts n bytes, then fails every write.
type failingWriter struct{ n int }

var errStorage = errors.New("storage gone")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n < len(p) {
		return 0, errStorage
	}
	w.n -= len(p)
	return len(p), nil
}

// TestWriteErrorStopsRecording: a failing writer ends Run with its error
// (wrapped), the SFU side never blocks, and every goroutine ends (goleak).
func TestWriteErrorStopsRecording(t *testing.T) {
	video := packetize(t, "../testdata/sample.ivf", true, 0x1111, 1000, 5000, 12*time.Millisecond)
	audio := packetize(t, "../testdata/sample.ogg", false, 0x2222, 2000, 7000, 10*time.Millisecond)
	clock := &simClock{}
	clock.set(t0)
	r := New(&failingWriter{n: 20000}, Config{Now: clock.now})
	as, err := r.AddTrack(TrackInfo{Kind: "audio", MimeType: "audio/opus", ClockRate: 48000, Channels: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := r.AddTrack(TrackInfo{Kind: "video", MimeType: "video/VP8", ClockRate: 90000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Run(context.Background())
		done <- err
	}()
	// Sent without waiting for the queue: once Run has stopped, packets
	// are dropped, never blocking.
	for _, e := range merge(video.events, audio.events) {
		clock.set(e.arrival)
		s := as
		if e.video {
			s = vs
		}
		if e.pkt != nil {
			s.WriteRTP(&e.pkt.Header, e.pkt.Payload)
		}
	}
	as.Close()
	vs.Close()
	r.Stop()
	if err := <-done; !errors.Is(err, errStorage) {
		t.Fatalf("Run: %v, want the writer's error", err)
	}
	if err := r.Pause(); !errors.Is(err, ErrStopped) {
		t.Errorf("Pause after the error: %v, want ErrStopped", err)
	}
}
