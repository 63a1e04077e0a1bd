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
const benchQueue = 256

func BenchmarkSinkWrite(b *testing.B) {
	r := New(io.Discard, Config{QueuePackets: benchQueue})
	s, err := r.AddTrack(TrackInfo{Kind: "video", MimeType: "video/VP8", ClockRate: 90000}, nil)
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 1100)
	payload[0] = 0x10 // S bit, partition 0
	h := &rtp.Header{Version: 2, PayloadType: 96, SSRC: 1, Marker: true}
	batch := make([]*slot, 0, benchQueue)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h.SequenceNumber = uint16(i)
		h.Timestamp = uint32(i) * 3000
		s.WriteRTP(h, payload)
		if i%benchQueue == benchQueue-1 {
			batch = r.sq.take(batch[:0])
			for _, sl := range batch {
				r.sq.release(sl)
			}
		}
	}
	b.StopTimer()
	if d := s.Dropped(); d != 0 {
		b.Fatalf("%d packets dropped", d)
	}
}

// BenchmarkSinkWriteAlone is BenchmarkSinkWrite with the consumer's take
// and release off the clock: every 64 packets (a drain's worth at a busy
// track's rate, the batch of sfu's BenchmarkFanOutRecorder) the timer
// stops while the benchmark takes the queued slots back. What is timed is
// WriteRTP alone, at the queue's fill in a call: nearly empty.
func BenchmarkSinkWriteAlone(b *testing.B) {
	const batchPackets = 64
	r := New(io.Discard, Config{})
	s, err := r.AddTrack(TrackInfo{Kind: "video", MimeType: "video/VP8", ClockRate: 90000}, nil)
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 1100)
	payload[0] = 0x10 // S bit, partition 0
	h := &rtp.Header{Version: 2, PayloadType: 96, SSRC: 1, Marker: true}
	batch := make([]*slot, 0, batchPackets)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h.SequenceNumber = uint16(i)
		h.Timestamp = uint32(i) * 3000
		s.WriteRTP(h, payload)
		if i%batchPackets == batchPackets-1 {
			b.StopTimer()
			batch = r.sq.take(batch[:0])
			for _, sl := range batch {
				r.sq.release(sl)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	if d := s.Dropped(); d != 0 {
		b.Fatalf("%d packets dropped", d)
	}
}
