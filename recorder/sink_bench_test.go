package recorder

import (
	"io"
	"testing"

	"github.com/pion/rtp"
)

// BenchmarkSinkWrite measures the per-packet entry point the SFU's
// forwarding goroutine pays: WriteRTP of a 1100-byte VP8 packet (take a
// pooled slot, copy, queue it). Every 256 packets the benchmark itself
// takes the queued slots back as the recording's goroutine would, so every
// packet goes the copying path, not the cheaper drop. That bookkeeping is
// the consumer's, amortized, and counted in: the figure is an upper bound
// of what the forwarding goroutine pays.
func BenchmarkSinkWrite(b *testing.B) { benchSinkWrite(b, 256, 256, true) }

// BenchmarkSinkWriteAlone is BenchmarkSinkWrite with the consumer's take
// and release off the clock: every 64 packets (a drain's worth at a busy
// track's rate, the batch of sfu's BenchmarkFanOutRecorder) the timer
// stops while the benchmark takes the queued slots back. What is timed is
// WriteRTP alone, at the queue's fill in a call: nearly empty.
func BenchmarkSinkWriteAlone(b *testing.B) { benchSinkWrite(b, 0, 64, false) }

// benchSinkWrite writes packets through a Sink of a recording with
// queuePackets slots (0: the default), taking the queued slots back every
// batch packets, with the timer running through the take when timed.
func benchSinkWrite(b *testing.B, queuePackets, batch int, timed bool) {
	r := New(io.Discard, Config{QueuePackets: queuePackets})
	s, err := r.AddTrack(TrackInfo{Kind: "video", MimeType: "video/VP8", ClockRate: 90000}, nil)
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 1100)
	payload[0] = 0x10 // S bit, partition 0
	h := &rtp.Header{Version: 2, PayloadType: 96, SSRC: 1, Marker: true}
	taken := make([]*slot, 0, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h.SequenceNumber = uint16(i)
		h.Timestamp = uint32(i) * 3000
		s.WriteRTP(h, payload)
		if i%batch == batch-1 {
			if !timed {
				b.StopTimer()
			}
			taken = r.sq.take(taken[:0])
			for _, sl := range taken {
				r.sq.release(sl)
			}
			if !timed {
				b.StartTimer()
			}
		}
	}
	b.StopTimer()
	if d := s.Dropped(); d != 0 {
		b.Fatalf("%d packets dropped", d)
	}
}
