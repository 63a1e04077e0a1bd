package bench

import (
	"strings"
	"sync"
	"time"

	"github.com/helpcaster/helpcaster/bench/rtpstat"
	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/rtpcodec"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// receiver measures every track one simulated client receives. It reads
// packets without decoding them: sequence numbers, timestamps, the
// capture time the publisher stamped, and whether a packet starts a
// keyframe.
type receiver struct {
	mu      sync.Mutex
	streams []*stream
}

// stream is one received track.
type stream struct {
	kind string // "audio" or "video"
	mu   sync.Mutex
	st   *rtpstat.Stream
}

func (r *receiver) add(kind string, clockRate uint32) *stream {
	s := &stream{kind: kind, st: rtpstat.NewStream(clockRate)}
	r.mu.Lock()
	r.streams = append(r.streams, s)
	r.mu.Unlock()
	return s
}

// onTrack reads t until it ends (client.Options.OnTrack).
func (r *receiver) onTrack(t *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	codec := t.Codec()
	kind := "audio"
	if t.Kind() == webrtc.RTPCodecTypeVideo {
		kind = "video"
	}
	s := r.add(kind, codec.ClockRate)
	captureID := client.ReceivedCaptureTimeID(recv)
	mime := strings.ToLower(codec.MimeType)
	buf := make([]byte, 1500)
	var h rtp.Header
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		hl, err := h.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		end := n
		if h.Padding && end > hl {
			end -= int(buf[end-1])
		}
		if end <= hl {
			continue // padding only: a bandwidth probe, not media
		}
		payload := buf[hl:end]
		p := rtpstat.Packet{Seq: h.SequenceNumber, TS: h.Timestamp, Arrival: now, Size: len(payload),
			Keyframe: kind == "video" && rtpcodec.IsKeyframe(mime, payload)}
		p.Capture, _ = client.CaptureTime(&h, captureID)
		s.mu.Lock()
		s.st.Add(p)
		s.mu.Unlock()
	}
}

// snapshot returns each stream's summary and a copy of its latency
// histogram.
func (r *receiver) snapshot() []streamSnapshot {
	r.mu.Lock()
	streams := append([]*stream(nil), r.streams...)
	r.mu.Unlock()
	out := make([]streamSnapshot, len(streams))
	for i, s := range streams {
		s.mu.Lock()
		out[i] = streamSnapshot{kind: s.kind, sum: s.st.Summary(), latency: s.st.Latency}
		s.mu.Unlock()
	}
	return out
}

type streamSnapshot struct {
	kind    string
	sum     rtpstat.Summary
	latency rtpstat.Histogram
}

// bytes is the payload received on every stream so far.
func (r *receiver) bytes() int64 {
	r.mu.Lock()
	streams := append([]*stream(nil), r.streams...)
	r.mu.Unlock()
	var n int64
	for _, s := range streams {
		s.mu.Lock()
		n += s.st.Summary().Bytes
		s.mu.Unlock()
	}
	return n
}

// has reports whether a stream of kind delivered at least one packet.
func (r *receiver) has(kind string) bool {
	for _, s := range r.snapshot() {
		if s.kind == kind && s.sum.Received > 0 {
			return true
		}
	}
	return false
}
