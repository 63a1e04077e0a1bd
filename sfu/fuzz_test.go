package sfu

import (
	"math"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/helpcaster/helpcaster/rtpcodec"
	"github.com/helpcaster/helpcaster/sfu/bwe"
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
		key := len(payload) > 0 && rtpcodec.IsKeyframe(src.mime, payload)
		rtpcodec.VP8KeyframeSize(payload)
		// Twice on one layer, then on another: a start, a repeat and a switch.
		d.writeRTP(layerFull, &h, payload, true, time.Now())
		d.writeRTP(layerFull, &h, payload, key, time.Now())
		d.target = layerIdx
		h.SequenceNumber += 7
		d.writeRTP(layerIdx, &h, payload, true, time.Now())
		d.senderReport(time.Now())
	})
}

// checkingWriter stands in for pion's writer and checks what it is given:
// media on SSRC 9 with payload type 96, or, when rtxSSRC is set,
// retransmissions on that SSRC and rtxPT.
type checkingWriter struct {
	t       *testing.T
	rtxSSRC uint32
	rtxPT   uint8
	buf     [1500]byte
}

func (w *checkingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	media := h.SSRC == 9 && h.PayloadType == 96
	rtx := w.rtxSSRC != 0 && h.SSRC == w.rtxSSRC && h.PayloadType == w.rtxPT && len(payload) >= 2
	if h.Version != 2 || !(media || rtx) || h.Padding {
		w.t.Fatalf("bad egress header %+v", h)
	}
	if h.Extension && (len(h.Extensions) != 1 || len(h.GetExtension(3)) != 2) {
		w.t.Fatalf("egress header extensions are not one transport-wide sequence number: %+v", h.Extensions)
	}
	n, err := h.MarshalTo(w.buf[:])
	if err != nil {
		w.t.Fatalf("egress header does not marshal: %v", err)
	}
	return n + len(payload), nil
}

func (w *checkingWriter) Write(b []byte) (int, error) { return len(b), nil }

// FuzzRTCP feeds RTCP from the network to what the SFU does with it:
// publishers' sender reports, and a subscriber's compound packets through
// the down track's own path (receiver reports, keyframe requests, NACKs
// answered from the packet cache over RTX) and the estimator's
// transport-wide feedback parser. It must never panic, and retransmissions
// must be valid RTX packets.
func FuzzRTCP(f *testing.F) {
	sr, _ := (&rtcp.SenderReport{SSRC: 5, NTPTime: 1 << 40, RTPTime: 9}).Marshal()
	rr, _ := (&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 9, FractionLost: 3, Jitter: 50, LastSenderReport: 1, Delay: 2}}}).Marshal()
	pli, _ := (&rtcp.PictureLossIndication{MediaSSRC: 9}).Marshal()
	nack, _ := (&rtcp.TransportLayerNack{MediaSSRC: 9, Nacks: []rtcp.NackPair{{PacketID: 1001, LostPackets: 0x8001}}}).Marshal()
	twcc, _ := (&rtcp.TransportLayerCC{MediaSSRC: 9, BaseSequenceNumber: 1, PacketStatusCount: 2, ReferenceTime: 5, FbPktCount: 1,
		PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: 2}},
		RecvDeltas:   []*rtcp.RecvDelta{{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 250}, {Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 500}}}).Marshal()
	f.Add(sr)
	f.Add(rr)
	f.Add(append(sr, pli...))
	f.Add(append(rr, nack...))
	f.Add(append(twcc, nack...))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _ := newMetrics(nil)
		src := &publishedTrack{kind: "video", mime: mimeVP8}
		l := &layer{track: src, cache: newPacketCache()}
		l.lastKeyReq.Store(math.MaxInt64) // keyframe requests are throttled: there is no publisher
		src.layers[0].Store(l)
		now := time.Now()
		if pkts, err := rtcp.Unmarshal(data); err == nil {
			l.noteSenderReportsFrom(pkts, 5, now)
		}
		w := &checkingWriter{t: t, rtxSSRC: 10, rtxPT: 97}
		d := &downTrack{src: src, kind: webrtc.RTPCodecTypeVideo, vp8: true, clockRate: 90000, bound: true, connected: true,
			writer: w, ssrc: 9, pt: 96, rtxSSRC: 10, rtxPT: 97, maxLayer: layerFull, bwLayer: layerFull, target: 0, current: layerNone,
			out: m.counters("video", "out"), switches: m.layerSwitches, sent: sentRing(webrtc.RTPCodecTypeVideo),
			bwe: bwe.New(bwe.Config{}), twccID: 3, firstSeq: 1000}
		// Ten packets forwarded (and cached) before the subscriber's RTCP.
		for i := range 10 {
			h := rtp.Header{Version: 2, SequenceNumber: uint16(500 + i), Timestamp: uint32(i * 3000), SSRC: 5, Marker: true}
			payload := vp8Packet(uint16(100+i), true, i, i == 0)
			l.cache.put(h.SequenceNumber, h.Timestamp, h.Marker, payload, now.UnixNano())
			d.writeRTP(0, &h, payload, i == 0, now)
		}
		d.senderReport(now.Add(time.Second))
		forEachRTCP(data, func(pt, count uint8, b []byte) {
			if pt == rtcpTypeTransportFeedback && count == rtcpFmtTransportCC {
				_ = d.bwe.Feedback(b, now)
			}
		})
		d.handleCompound(data, m)
	})
}

// FuzzReceive feeds a publisher's decrypted packets, as the direct path
// hands them over, to a layer: as media (layer.receive with the header the
// path parsed) and as retransmissions to unwrap (repairInput), which
// rewrites the packet in place. A publisher controls every byte of them;
// nothing may panic or read out of bounds.
func FuzzReceive(f *testing.F) {
	rtx := []byte{0x90, 0x61, 0, 9, 0, 0, 0, 0, 0, 0, 0, 43, 0xbe, 0xde, 0, 1, 0x30, 0, 5, 0, 0x12, 0x34, 0x90, 0x80, 0x81, 0x10}
	f.Add(rtx)
	f.Add([]byte{0xa0, 0x61, 0, 2, 0, 0, 0, 0, 0, 0, 0, 43, 0, 0, 3}) // padding only
	f.Add(append([]byte{0x80, 0x60, 0x00, 0x01, 0, 0, 0x0b, 0xb8, 0, 0, 0, 42}, vp8Packet(300, true, 7, true)...))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var h rtp.Header
		if _, err := h.Unmarshal(pkt); err != nil {
			return // the direct path hands over only packets whose header parsed
		}
		m, _ := newMetrics(nil)
		clock := newFeedbackClock()
		defer clock.close()
		tr := &publishedTrack{trackEnv: trackEnv{metrics: m, recv: &receiveChain{twcc: newTWCCFeedback(clock, func([]rtcp.Packet) error { return nil })}},
			mime: mimeVP8, kind: "video", in: m.counters("video", "in"), twccID: 3}
		empty := []sink{}
		tr.sinks.Store(&empty)
		l := newLayer(tr, 0, nil)
		l.cache = newPacketCache()
		l.receive(append([]byte(nil), pkt...), &h, time.Now())
		repairInput{l: l, ssrc: 42, pt: 96}.HandleRTP(append([]byte(nil), pkt...), &h, time.Now())
	})
}
