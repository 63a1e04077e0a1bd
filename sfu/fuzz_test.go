package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// FuzzForward feeds packets from the network through the forwarding path
// the way a layer's read loop does: header parse, padding removal, keyframe
// and frame-size detection, then a down track's rewriting (sequence numbers,
// timestamps, VP8 picture ids) and a layer switch. It must never panic, and
// what it writes must be a valid RTP header.
func FuzzForward(f *testing.F) {
	key := append([]byte{0x80, 0x60, 0x00, 0x01, 0, 0, 0x0b, 0xb8, 0, 0, 0, 42}, vp8Packet(300, true, 7, true)...)
	f.Add(key, 1)
	f.Add([]byte{0xa0, 0x60, 0, 2, 0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 3}, 0) // padding only
	f.Add([]byte{0x90, 0x60, 0, 3, 0, 0, 0, 0, 0, 0, 0, 42, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0, 0x90, 0x80, 0x81}, 2)
	f.Fuzz(func(t *testing.T, pkt []byte, layerIdx int) {
		m, _ := newMetrics(nil)
		src := &publishedTrack{kind: "video", mime: mimeVP8}
		for i := range maxLayers {
			src.layers[i].Store(&layer{track: src, index: i})
		}
		w := &checkingWriter{t: t}
		d := &downTrack{src: src, kind: webrtc.RTPCodecTypeVideo, vp8: true, clockRate: 90000, bound: true, connected: true,
			writer: w, ssrc: 9, pt: 96, maxLayer: layerFull, bwLayer: layerFull, target: layerFull, current: layerNone,
			out: m.counters("video", "out"), switches: m.layerSwitches}
		layerIdx = ((layerIdx % maxLayers) + maxLayers) % maxLayers

		var h rtp.Header
		n, err := h.Unmarshal(pkt)
		if err != nil {
			return
		}
		payload := pkt[n:]
		if h.Padding {
			if len(payload) == 0 || int(payload[len(payload)-1]) > len(payload) {
				return
			}
			payload = payload[:len(payload)-int(payload[len(payload)-1])]
		}
		key := len(payload) > 0 && IsKeyframe(src.mime, payload)
		vp8KeyframeSize(payload)
		// Twice on one layer, then on another: a start, a repeat and a switch.
		d.writeRTP(layerFull, &h, payload, true)
		d.writeRTP(layerFull, &h, payload, key)
		d.target = layerIdx
		h.SequenceNumber += 7
		d.writeRTP(layerIdx, &h, payload, true)
		d.senderReport(time.Now())
	})
}

// checkingWriter stands in for pion's writer and checks what it is given.
type checkingWriter struct {
	t   *testing.T
	buf [1500]byte
}

func (w *checkingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if h.Version != 2 || h.SSRC != 9 || h.PayloadType != 96 || h.Extension || h.Padding {
		w.t.Fatalf("bad egress header %+v", h)
	}
	n, err := h.MarshalTo(w.buf[:])
	if err != nil {
		w.t.Fatalf("egress header does not marshal: %v", err)
	}
	return n + len(payload), nil
}

func (w *checkingWriter) Write(b []byte) (int, error) { return len(b), nil }

// FuzzRTCP feeds RTCP from the network to what the SFU does with it:
// publishers' sender reports and subscribers' receiver reports. It must
// never panic.
func FuzzRTCP(f *testing.F) {
	sr, _ := (&rtcp.SenderReport{SSRC: 5, NTPTime: 1 << 40, RTPTime: 9}).Marshal()
	rr, _ := (&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 77, FractionLost: 3, Jitter: 50, LastSenderReport: 1, Delay: 2}}}).Marshal()
	pli, _ := (&rtcp.PictureLossIndication{MediaSSRC: 77}).Marshal()
	f.Add(sr)
	f.Add(rr)
	f.Add(append(sr, pli...))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkts, err := rtcp.Unmarshal(data)
		if err != nil {
			return
		}
		m, _ := newMetrics(nil)
		src := &publishedTrack{kind: "video", mime: mimeVP8}
		l := &layer{track: src}
		src.layers[0].Store(l)
		now := time.Now()
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				l.sr.Store(&senderInfo{ntp: sr.NTPTime, rtp: sr.RTPTime, at: now})
			}
		}
		d := &downTrack{src: src, kind: webrtc.RTPCodecTypeVideo, clockRate: 90000, bound: true, connected: true,
			ssrc: 77, current: 0, sentPackets: 1}
		d.senderReport(now.Add(time.Second))
		for _, p := range pkts {
			if rr, ok := p.(*rtcp.ReceiverReport); ok {
				for _, r := range rr.Reports {
					d.receiverReport(r, now.Add(2*time.Second), m)
				}
			}
		}
	})
}
