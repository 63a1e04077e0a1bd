package recorder

import (
	"testing"
	"time"
)

// BenchmarkRecord measures a whole recording: one op records a
// participant's 5 s of 320x240 30 fps video (each codec's sample) and
// Opus, sent as packets through Sinks by a feeder goroutine, into a file
// in memory (then copied to a temp file). It reports the elapsed time per
// second of media (ns/op over 5): feeder, queue, depacketizing and muxing
// together, an upper bound of the recording goroutine's share.
func BenchmarkRecord(b *testing.B) {
	for _, mc := range mediaCases {
		b.Run(mc.name, func(b *testing.B) {
			video := packetize(b, mc.video(b), true, 0x1111, 1000, 5000, 12*time.Millisecond)
			audio := packetize(b, "../testdata/sample.ogg", false, 0x2222, 2000, 7000, 10*time.Millisecond)
			b.ReportAllocs()
			b.ResetTimer()
			var bytes int
			for range b.N {
				rec := record(b, video, audio, nil)
				bytes = rec.bytes
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/5/1e6, "ms/media-s")
			b.ReportMetric(float64(bytes), "file-bytes")
		})
	}
}
