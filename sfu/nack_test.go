package sfu

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	dto "github.com/prometheus/client_model/go"
)

// dropOnce is a receive-side interceptor that loses the first copy of every
// 20th video packet, ahead of the receiver's NACK generator, as a lossy link
// would. Retransmissions (on the RTX stream or the media stream) get through.
type dropOnce struct {
	interceptor.NoOp
	mu      sync.Mutex
	seen    map[uint16]bool
	dropped map[uint16]bool
}

func (d *dropOnce) NewInterceptor(string) (interceptor.Interceptor, error) { return d, nil }

func (d *dropOnce) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	if info.MimeType != webrtc.MimeTypeVP8 {
		return r
	}
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := r.Read(b, a)
			if err != nil {
				return n, attr, err
			}
			var h rtp.Header
			if _, err := h.Unmarshal(b[:n]); err != nil {
				return n, attr, nil
			}
			d.mu.Lock()
			drop := h.SequenceNumber%20 == 7 && !d.seen[h.SequenceNumber]
			d.seen[h.SequenceNumber] = true
			if drop {
				d.dropped[h.SequenceNumber] = true
			}
			d.mu.Unlock()
			if !drop {
				return n, attr, nil
			}
		}
	})
}

// TestNACKRecovery: packets a subscriber loses are retransmitted by the SFU
// from its cache when the subscriber asks (NACK), so it ends up with all of
// them.
func TestNACKRecovery(t *testing.T) {
	s, room, ctx := newTestRoom(t, Config{LoopbackOnly: true}, "nack")
	loss := &dropOnce{seen: map[uint16]bool{}, dropped: map[uint16]bool{}}
	lossyAPI := apiWith(t, true, loss)

	pub, _ := join(t, ctx, room, "publisher", testAPI(t))
	_, sub := join(t, ctx, room, "subscriber", lossyAPI)
	var c collector
	c.attach(sub)

	sendSimulcast(t, ctx, pub, [maxLayers]int{8, 16, 32})

	waitLayer(t, ctx, "subscriber", &c, layerFull)
	var dropped []uint16
	for deadline := time.Now().Add(5 * time.Second); len(dropped) < 8 && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		loss.mu.Lock()
		dropped = dropped[:0]
		for seq := range loss.dropped {
			dropped = append(dropped, seq)
		}
		loss.mu.Unlock()
	}
	if len(dropped) < 8 {
		t.Fatalf("only %d packets dropped; the test did not exercise loss", len(dropped))
	}
	// Every dropped packet older than a moment ago must have come back,
	// except one lost before the first packet that arrived: a receiver
	// cannot know it missed that.
	time.Sleep(500 * time.Millisecond)
	pkts := c.snapshot()
	got := map[uint16]bool{}
	firstSeq := pkts[0].seq
	for _, p := range pkts {
		got[p.seq] = true
		if seqNewer(firstSeq, p.seq) {
			firstSeq = p.seq
		}
	}
	var missing []uint16
	for _, seq := range dropped {
		if !got[seq] && seqNewer(seq, firstSeq) {
			missing = append(missing, seq)
		}
	}
	if len(missing) > 0 {
		pk := c.snapshot()
		t.Errorf("%d of %d lost packets never arrived (no retransmission): %v; first received %d, last %d",
			len(missing), len(dropped), missing, pk[0].seq, pk[len(pk)-1].seq)
	}
	if n := testCounter(s.metrics.nacksIn.(interface{ Write(*dto.Metric) error })); n == 0 {
		t.Error("no NACKs counted")
	}
	if n := testCounter(s.metrics.retransmitted.(interface{ Write(*dto.Metric) error })); n < float64(len(dropped)) {
		t.Errorf("%v retransmissions counted for %d lost packets", n, len(dropped))
	}
}

// testCounter reads a counter's value.
func testCounter(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
