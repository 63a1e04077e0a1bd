package sfu

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/helpcaster/helpcaster/rtpcodec"
	"github.com/helpcaster/helpcaster/sfu/bwe"
)

// nullWriter stands in for pion's SRTP writer: it marshals the header into
// a reused buffer, as the real writer must, and discards the packet.
type nullWriter struct{ buf [1500]byte }

func (w *nullWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	n, err := h.MarshalTo(w.buf[:])
	return n + len(payload), err
}

func (w *nullWriter) Write(b []byte) (int, error) { return len(b), nil }

// benchTrack builds a published video track with n bound down tracks,
// without peer connections.
func benchTrack(b testing.TB, n int) *publishedTrack {
	m, err := newMetrics(nil)
	if err != nil {
		b.Fatal(err)
	}
	t := &publishedTrack{trackEnv: trackEnv{metrics: m}, mime: mimeVP8, kind: "video", in: m.counters("video", "in")}
	t.layers[0].Store(&layer{track: t, cache: newPacketCache()})
	empty := []sink{}
	t.sinks.Store(&empty)
	for i := range n {
		// Each subscriber has its own connection, so its own estimator.
		d := &downTrack{src: t, kind: webrtc.RTPCodecTypeVideo, vp8: true, clockRate: 90000, bound: true, connected: true,
			writer: &nullWriter{}, ssrc: uint32(1000 + i), pt: 96, maxLayer: layerFull, bwLayer: layerFull, target: 0, current: layerNone,
			bwTemporal: temporalAll, temporal: temporalAll, firstSeq: uint16(i * 7919), firstTS: uint32(i) * 104729,
			out: m.counters("video", "out"), switches: m.layerSwitches, sent: sentRing(webrtc.RTPCodecTypeVideo),
			bwe: bwe.New(bwe.Config{}), twccID: 3}
		t.addSink(d)
	}
	return t
}

// BenchmarkFanOut measures the SFU's own per-packet work from a parsed
// ingress packet to n egress headers: the packet cache, and per down track
// the rewrite, the retransmission history, the transport-wide sequence
// number and its record in the estimator, counters and the header marshal.
// SRTP and the socket are excluded. ns/op is per ingress packet.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 10, 50, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			t := benchTrack(b, n)
			payload := make([]byte, 1200)
			payload[0] = 0x10 // VP8 descriptor: start of partition 0
			payload[1] = 0x00 // key frame
			h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 42}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Six packets per frame, as ~1.5 Mbit/s VP8 at 30 fps has.
				h.SequenceNumber = uint16(i)
				h.Timestamp = uint32(i/6) * 3000
				h.Marker = i%6 == 5
				key := rtpcodec.IsKeyframe(t.mime, payload)
				now := time.Unix(0, int64(i)*1e6)
				t.layers[0].Load().cache.put(h.SequenceNumber, h.Timestamp, h.Marker, payload, int64(i)*1e6)
				for _, s := range *t.sinks.Load() {
					s.writeRTP(0, &h, payload, key, now)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/egress")
		})
	}
}

// BenchmarkSeqRewrite measures the sequence rewriter alone on in-order input.
func BenchmarkSeqRewrite(b *testing.B) {
	var r seqRewriter
	r.start(0, 1234)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, ok := r.rewrite(uint16(i + 1)); !ok {
			b.Fatal("dropped an in-order packet")
		}
	}
}
