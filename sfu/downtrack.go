package sfu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/helpcaster/helpcaster/rtpcodec"
	"github.com/helpcaster/helpcaster/sfu/bwe"
	"github.com/helpcaster/helpcaster/sfu/wire"
)

// downTrack forwards one published track to one subscriber. It implements
// webrtc.TrackLocal so it can be added to the subscriber's connection, and
// rewrites SSRC, payload type, sequence numbers and timestamps so the
// subscriber sees one continuous stream whatever the SFU drops.
type downTrack struct {
	src       *publishedTrack
	id        string
	sid       string
	kind      webrtc.RTPCodecType
	vp8       bool
	clockRate uint32

	mu        sync.Mutex
	bound     bool
	connected bool                    // the subscriber's connection can carry media
	writer    webrtc.TrackLocalWriter // pion's, while bound
	// direct is the subscriber connection's direct media path (nil
	// without one); once it has started every packet goes through it,
	// and none through pion again: a stream must stay with one SRTP
	// context (see wire.Conn).
	direct       *wire.Conn
	ssrc         uint32
	pt           uint8
	maxLayer     int       // highest layer the subscriber asked for
	bwLayer      int       // highest layer the subscriber's bandwidth allows; layerNone pauses video
	starvedSince time.Time // since when the allocator has found no room for this track
	pausedAt     time.Time // when the allocator last paused this track
	target       int       // layer to switch to at its next keyframe
	current      int       // layer being forwarded; layerNone until the first keyframe
	bwTemporal   int       // highest VP8 temporal layer the bandwidth allows
	temporal     int       // highest temporal layer being forwarded
	seq          seqRewriter
	ts           tsRewriter
	pics         vp8Rewriter
	lastFwd      time.Time // when the last frame (marker packet) was forwarded
	lastFwdTS    uint32    // its outgoing RTP timestamp
	sentPackets  uint32    // for sender reports
	sentOctets   uint32
	lastSRMid    uint32    // middle 32 bits of the NTP time in our last sender report
	lastSRAt     time.Time // when we sent it
	firstSeq     uint16    // random start of the outgoing sequence
	firstTS      uint32    // random start of the outgoing timeline
	out          streamCounters
	switches     prometheus.Counter
	hdr          rtp.Header // reused for every egress packet, so writes allocate nothing here
	buf          [1500]byte // payload copy when the VP8 descriptor must be rewritten

	// Retransmission (video only): sent maps outgoing sequence numbers back
	// to the layer packets they carried, which the layers' packet caches
	// still hold; rtxSSRC and rtxPT are set when the subscriber negotiated
	// RTX (RFC 4588), else retransmissions reuse the media stream.
	sent    []sentPacket
	rtxSSRC uint32
	rtxPT   uint8
	rtxSeq  uint16
	rtt     time.Duration // latest round trip from the subscriber's receiver reports
	rtxBits float64       // retransmission budget left, bits (see retransmitShare)
	rtxAt   int64         // when rtxBits was last topped up, unix nanoseconds
	rtxHdr  rtp.Header
	rtxBuf  [1502]byte // two bytes of original sequence number, then the payload

	// Congestion control: every packet carries the connection's
	// transport-wide sequence number (extension twccID, when negotiated)
	// from its estimator.
	bwe     *bwe.Estimator
	twccID  uint8
	ext     [2]rtp.Extension // the transport-wide sequence number, the capture time
	twccSeq [2]byte
	// captureID is the subscriber's id of the absolute capture time
	// extension (0: not negotiated).
	captureID uint8
}

// sentHistory is how many forwarded packets a video down track remembers
// for retransmission: a second of video at about 9 Mbit/s.
const sentHistory = 1024

// sentPacket records what one outgoing sequence number carried, so a NACK
// for it can be answered from the layer's packet cache with the same
// rewriting the original got.
type sentPacket struct {
	out     uint16 // outgoing sequence number (the ring index's full value)
	in      uint16 // the layer's sequence number
	layer   int8
	valid   bool
	vp8     bool // the VP8 descriptor was rewritten with pidOff and tl0Off
	tl0Off  uint8
	pidOff  uint16
	ts      uint32 // outgoing timestamp
	resent  int64  // when it was last retransmitted, unix nanoseconds
	resends uint8
}

func newDownTrack(src *publishedTrack, m *metrics) *downTrack {
	kind := webrtc.RTPCodecTypeVideo
	if src.kind == "audio" {
		kind = webrtc.RTPCodecTypeAudio
	}
	return &downTrack{
		src:        src,
		id:         src.id,
		sid:        src.publisher,
		kind:       kind,
		vp8:        src.mime == mimeVP8,
		clockRate:  src.codec.ClockRate,
		maxLayer:   layerFull,
		bwLayer:    layerFull,
		target:     layerNone,
		current:    layerNone,
		bwTemporal: temporalAll,
		temporal:   temporalAll,
		firstSeq:   uint16(rand.Uint32()),
		firstTS:    rand.Uint32(),
		out:        m.counters(src.kind, "out"),
		switches:   m.layerSwitches,
		sent:       sentRing(kind),
	}
}

// sentRing returns the retransmission history for a down track of kind:
// only video is retransmitted (Opus has no NACK; it conceals loss).
func sentRing(kind webrtc.RTPCodecType) []sentPacket {
	if kind != webrtc.RTPCodecTypeVideo {
		return nil
	}
	return make([]sentPacket, sentHistory)
}

// ID is the track id the subscriber sees: the publisher's own track id.
func (d *downTrack) ID() string { return d.id }

// RID is empty: a down track carries one stream.
func (d *downTrack) RID() string { return "" }

// StreamID groups a publisher's tracks into one MediaStream at the subscriber.
func (d *downTrack) StreamID() string { return d.sid }

// Kind is audio or video.
func (d *downTrack) Kind() webrtc.RTPCodecType { return d.kind }

var errNoCodec = errors.New("sfu: subscriber accepts no codec of this track")

// Bind is called by pion when the subscriber's answer has been applied.
func (d *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codec, ok := matchCodec(d.src.codec, ctx.CodecParameters())
	if !ok {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("%w (%s)", errNoCodec, d.src.mime)
	}
	d.mu.Lock()
	d.bound = true
	d.writer = ctx.WriteStream()
	d.ssrc = uint32(ctx.SSRC())
	d.pt = uint8(codec.PayloadType)
	d.twccID, d.captureID = 0, 0
	for _, e := range ctx.HeaderExtensions() {
		if e.ID <= 0 || e.ID >= 15 {
			continue
		}
		switch e.URI {
		case sdp.TransportCCURI:
			d.twccID = uint8(e.ID)
		case rtpcodec.AbsCaptureTimeURI:
			d.captureID = uint8(e.ID)
		}
	}
	d.rtxSSRC, d.rtxPT = 0, 0
	if rtx := uint32(ctx.SSRCRetransmission()); rtx != 0 {
		if pt, ok := rtxPayloadType(ctx.CodecParameters(), codec.PayloadType); ok {
			d.rtxSSRC, d.rtxPT = rtx, pt
		}
	}
	d.retarget(true)
	d.mu.Unlock()
	return codec, nil
}

// Unbind is called by pion when the track is removed or the connection closes.
func (d *downTrack) Unbind(webrtc.TrackLocalContext) error {
	d.mu.Lock()
	d.bound = false
	d.writer = nil
	d.mu.Unlock()
	return nil
}

// rtxPayloadType finds the RTX payload type associated with media payload
// type pt among the negotiated codecs.
func rtxPayloadType(codecs []webrtc.RTPCodecParameters, pt webrtc.PayloadType) (uint8, bool) {
	apt := fmt.Sprintf("apt=%d", pt)
	for _, c := range codecs {
		if strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) && strings.Contains(c.SDPFmtpLine, apt) {
			for _, kv := range strings.Split(c.SDPFmtpLine, ";") {
				if strings.TrimSpace(kv) == apt {
					return uint8(c.PayloadType), true
				}
			}
		}
	}
	return 0, false
}

// matchCodec picks the subscriber's codec for the source's: same MIME type
// and, for H.264, the same packetization mode and profile.
func matchCodec(src webrtc.RTPCodecParameters, offered []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	var loose *webrtc.RTPCodecParameters
	for i, c := range offered {
		if !strings.EqualFold(c.MimeType, src.MimeType) {
			continue
		}
		if !strings.EqualFold(src.MimeType, mimeH264) || fmtpEqual(c.SDPFmtpLine, src.SDPFmtpLine) {
			return c, true
		}
		if loose == nil {
			loose = &offered[i]
		}
	}
	if loose != nil {
		return *loose, true
	}
	return webrtc.RTPCodecParameters{}, false
}

// fmtpEqual compares the H.264 parameters that must agree for a decoder to
// accept the stream.
func fmtpEqual(a, b string) bool {
	pa, pb := fmtpParams(a), fmtpParams(b)
	return pa["packetization-mode"] == pb["packetization-mode"] &&
		strings.EqualFold(first4(pa["profile-level-id"]), first4(pb["profile-level-id"]))
}

func first4(s string) string {
	if len(s) > 4 {
		return s[:4]
	}
	return s
}

// fmtpParams parses an H.264 fmtp line, filling in the RFC 6184 defaults
// for the parameters fmtpEqual compares.
func fmtpParams(line string) map[string]string {
	m := map[string]string{"packetization-mode": "0", "profile-level-id": "42000a"}
	for _, kv := range strings.Split(line, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k != "" && v != "" {
			m[strings.ToLower(k)] = v
		}
	}
	return m
}

// chooseLayer picks the layer to forward: the highest layer being received
// that is not above maxLayer, or else the lowest being received; layerNone
// when no layer is.
func chooseLayer(av [maxLayers]bool, maxLayer int) int {
	for i := min(maxLayer, maxLayers-1); i >= 0; i-- {
		if av[i] {
			return i
		}
	}
	for i := range av {
		if av[i] {
			return i
		}
	}
	return layerNone
}

// retarget recomputes the target layer from the layers being received and
// the subscriber's wish, and asks for a keyframe on a new target. force asks
// even when the target is unchanged (a new binding). d.mu must be held.
func (d *downTrack) retarget(force bool) {
	av := d.src.available()
	if d.current != layerNone && !av[d.current] {
		d.current = layerNone // its layer ended: restart on a keyframe
	}
	t := layerNone
	if d.kind == webrtc.RTPCodecTypeAudio || d.bwLayer != layerNone {
		t = chooseLayer(av, min(d.maxLayer, d.bwLayer))
	} else {
		d.current = layerNone // paused for lack of bandwidth
	}
	changed := t != d.target
	d.target = t
	if (changed || force) && t != d.current {
		d.src.requestKeyframe(t)
	}
}

// setMaxLayer limits the layer forwarded to at most l.
func (d *downTrack) setMaxLayer(l int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.maxLayer = l
	d.retarget(false)
}

// wanted reports the layer the down track is switching to and the one it
// forwards (layerNone for none).
func (d *downTrack) wanted() (target, current int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.bound {
		return layerNone, layerNone
	}
	return d.target, d.current
}

// ssrcNow returns the SSRC the down track sends with.
func (d *downTrack) ssrcNow() uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ssrc
}

// names reports whether ssrcs include the down track's SSRC or its
// retransmissions' (an RTCP packet is about it).
func (d *downTrack) names(ssrcs []uint32) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range ssrcs {
		if s != 0 && (s == d.ssrc || s == d.rtxSSRC) {
			return true
		}
	}
	return false
}

// setConnected starts forwarding, on a keyframe.
func (d *downTrack) setConnected() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.connected = true
	d.current = layerNone
	d.retarget(true)
}

// pauseDelay is how long the allocator must find no room for a video track
// before it is paused; until then it gets its lowest layer. Estimates dip
// briefly for reasons other than congestion (scheduling jitter reads as
// queueing delay), and a paused track is slow to come back.
const pauseDelay = 2 * time.Second

// probeInterval is how long a track stays paused before its lowest layer is
// tried again. While nothing is sent the estimator gets no feedback and its
// estimate cannot grow, so without such a probe a pause would last forever.
const probeInterval = 5 * time.Second

// setBandwidthLayer caps the layer forwarded to what the subscriber's
// bandwidth allows at now. layerNone pauses a video track once the
// allocator has asked for it for pauseDelay; a paused track is retried on
// its lowest layer every probeInterval.
func (d *downTrack) setBandwidthLayer(l int, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case l != layerNone:
		d.starvedSince = time.Time{}
	case d.bwLayer == layerNone: // already paused
		if now.Sub(d.pausedAt) < probeInterval {
			return
		}
		d.starvedSince = now // a probe: another pauseDelay before pausing again
		l = layerQuarter
	default:
		if d.starvedSince.IsZero() {
			d.starvedSince = now
		}
		if now.Sub(d.starvedSince) < pauseDelay {
			l = layerQuarter // chooseLayer falls back to the lowest layer received
		} else {
			d.pausedAt = now
		}
	}
	if l == d.bwLayer {
		return
	}
	d.bwLayer = l
	d.retarget(false)
}

// demand reports what the allocator needs to know of this down track,
// with the rates of its source's layers and of their temporal layers.
func (d *downTrack) demand(rates [maxLayers]int64, temporal [maxLayers][maxTemporal]int64) videoDemand {
	d.mu.Lock()
	defer d.mu.Unlock()
	return videoDemand{maxLayer: d.maxLayer, rates: rates, temporal: temporal, current: d.current, currentTemporal: d.temporal,
		paused: d.bwLayer == layerNone}
}

// layersChanged implements sink.
func (d *downTrack) layersChanged() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.retarget(false)
}

// writeRTP forwards one packet of layer. Called from the goroutine that
// received it (layer.receive, one packet of a layer at a time); packets of other layers than the one forwarded are dropped,
// and a switch to the target layer happens only on its keyframe. now is when
// the packet was read: it stands for the send time.
func (d *downTrack) writeRTP(layer int, h *rtp.Header, payload []byte, keyframe bool, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.bound || !d.connected {
		return
	}
	if layer != d.current {
		if layer != d.target || len(payload) == 0 {
			return
		}
		if !keyframe && d.kind == webrtc.RTPCodecTypeVideo {
			d.src.requestKeyframe(layer)
			return
		}
		d.switchTo(layer, h, payload)
	}
	// The VP8 descriptor is parsed once here for temporal layers and
	// picture id rewriting.
	var desc rtpcodec.VP8Descriptor
	descOK := false
	if d.vp8 && len(payload) > 0 {
		desc, descOK = rtpcodec.ParseVP8Descriptor(payload)
	}
	if len(payload) == 0 || (descOK && !d.passTemporal(payload, desc, keyframe)) {
		d.seq.skip(h.SequenceNumber)
		return
	}
	seq, ok := d.seq.rewrite(h.SequenceNumber)
	if !ok {
		return
	}
	if d.vp8 {
		switch {
		case d.pics.identity:
			// Once per picture (its first packet, S set) is enough to
			// continue from after a switch.
			if descOK && payload[0]&0x10 != 0 {
				d.pics.trackDesc(payload, desc)
			}
		case !descOK || len(payload) > len(d.buf):
			return // not a VP8 payload this track can rewrite
		default:
			n := copy(d.buf[:], payload)
			d.pics.rewriteDesc(d.buf[:n], desc)
			payload = d.buf[:n]
		}
	}
	d.hdr = rtp.Header{
		Version:        2,
		Marker:         h.Marker,
		PayloadType:    d.pt,
		SequenceNumber: seq,
		Timestamp:      d.ts.rewrite(h.Timestamp),
		SSRC:           d.ssrc,
		CSRC:           h.CSRC,
	}
	if h.Marker || d.kind == webrtc.RTPCodecTypeAudio {
		// The end of a frame: what a switch measures its gap from, and
		// what a sender report without the publisher's extrapolates from.
		d.lastFwd = now
		d.lastFwdTS = d.hdr.Timestamp
	}
	if d.sent != nil {
		e := &d.sent[seq&(sentHistory-1)]
		*e = sentPacket{out: seq, in: h.SequenceNumber, layer: int8(layer), valid: true, ts: d.hdr.Timestamp}
		if d.vp8 && !d.pics.identity {
			e.vp8, e.pidOff, e.tl0Off = true, d.pics.pidOff, d.pics.tl0Off
		}
	}
	d.stamp(&d.hdr, len(payload), now)
	if d.captureID != 0 && d.src.captureID != 0 {
		// The publisher's capture time goes through unchanged: receivers
		// (the load harness) measure end-to-end latency with it.
		if v := h.GetExtension(d.src.captureID); len(v) > 0 {
			if d.hdr.Extensions == nil {
				d.hdr.Extensions = d.ext[:0]
			}
			_ = d.hdr.SetExtension(d.captureID, v) // a malformed length is not forwarded
		}
	}
	if _, err := d.send(&d.hdr, payload); err != nil {
		return
	}
	d.sentPackets++
	d.sentOctets += uint32(len(payload))
	d.out.packets.Inc()
	d.out.bytes.Add(float64(len(payload)))
}

// send encrypts and sends one packet: on the direct media path once the
// connection has one, through pion before. d.mu must be held.
func (d *downTrack) send(h *rtp.Header, payload []byte) (int, error) {
	if d.direct != nil && d.direct.Started() {
		return d.direct.WriteRTP(h, payload)
	}
	if d.writer == nil {
		return 0, errUnbound
	}
	return d.writer.WriteRTP(h, payload)
}

// errUnbound: the down track is not bound to a connection.
var errUnbound = errors.New("sfu: down track not bound")

// stamp gives h the connection's next transport-wide sequence number and
// records the packet with the estimator. d.mu must be held.
func (d *downTrack) stamp(h *rtp.Header, payloadLen int, now time.Time) {
	d.stampAs(h, payloadLen, now, 0)
}

// stampAs is stamp for a packet of probe cluster (0: none).
func (d *downTrack) stampAs(h *rtp.Header, payloadLen int, now time.Time, cluster int) {
	if d.twccID == 0 || d.bwe == nil {
		return
	}
	// 12 bytes of fixed header, 8 of extension, 16 of SRTP tag.
	seq := d.bwe.SentProbe(12+8+len(h.CSRC)*4+payloadLen+16, now, cluster)
	binary.BigEndian.PutUint16(d.twccSeq[:], seq)
	h.Extension, h.Extensions = false, d.ext[:0] // appended to without allocating
	_ = h.SetExtension(d.twccID, d.twccSeq[:])   // cannot fail: 2 bytes, id 1-14
}

// switchTo makes layer the forwarded one, starting at the keyframe in
// (h, payload), so the receiver sees sequence numbers, timestamps and
// picture ids continue without a gap it cannot explain.
func (d *downTrack) switchTo(layer int, h *rtp.Header, payload []byte) {
	if !d.seq.started {
		d.seq.start(h.SequenceNumber, d.firstSeq)
		d.ts.start(h.Timestamp, d.firstTS)
	} else {
		d.seq.rebase(h.SequenceNumber)
		d.ts.rebase(h.Timestamp, ticksSince(d.lastFwd, d.clockRate))
		d.switches.Inc()
	}
	if d.vp8 {
		d.pics.rebase(payload)
	}
	d.current = layer
	d.temporal = d.bwTemporal // a keyframe: every temporal layer can start
}

// passTemporal applies temporal layer selection to a VP8 packet of the
// forwarded layer. It moves the forwarded temporal layer toward bwTemporal
// at the start of a picture: down at once, up only on a keyframe or a
// layer sync picture (one that depends on base layer pictures only, which
// the subscriber has). It reports false for a packet of a temporal layer
// above the forwarded one; the dropped picture's id is taken out of the
// sequence. Packets without temporal layer information always pass. d.mu
// must be held.
func (d *downTrack) passTemporal(p []byte, desc rtpcodec.VP8Descriptor, keyframe bool) bool {
	tid, sync, ok := desc.Temporal(p)
	if !ok {
		return true
	}
	if rtpcodec.VP8PictureStart(p) {
		switch {
		case d.bwTemporal < d.temporal:
			d.temporal = d.bwTemporal
		case d.bwTemporal > d.temporal && (keyframe || (sync && tid <= d.bwTemporal)):
			d.temporal = d.bwTemporal
		}
	}
	if tid <= d.temporal {
		return true
	}
	if desc.PictureIDAt != 0 {
		d.pics.dropPicture(desc.PictureID(p))
	}
	return false
}

// setBandwidthTemporal caps the VP8 temporal layers forwarded: temporalAll
// for all, 0 for the base layer only (a quarter of the frame rate with
// three temporal layers).
func (d *downTrack) setBandwidthTemporal(t int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.bwTemporal = min(max(t, 0), temporalAll)
}

// ticksSince converts the time since t into RTP clock ticks.
func ticksSince(t time.Time, clockRate uint32) uint32 {
	if t.IsZero() || clockRate == 0 {
		return 1
	}
	return rtpTicks(time.Since(t), clockRate)
}

func (d *downTrack) trackClosed() {}

// readRTCP consumes the subscriber's RTCP for this track: receiver
// reports, keyframe requests (forwarded to the publisher) and NACKs
// (answered from the packet caches). Transport-wide feedback, which the
// estimator has already taken (see congestion.go), is skipped unparsed. It
// returns when the sender stops.
func (d *downTrack) readRTCP(sender *webrtc.RTPSender, m *metrics) {
	buf := make([]byte, 1500)
	for {
		n, _, err := sender.Read(buf)
		if err != nil {
			return
		}
		d.handleCompound(buf[:n], m)
	}
}

// handleCompound acts on each packet of a compound RTCP packet from the
// subscriber but transport-wide feedback.
func (d *downTrack) handleCompound(b []byte, m *metrics) {
	forEachRTCP(b, func(pt, count uint8, b []byte) {
		if pt == rtcpTypeTransportFeedback && count == rtcpFmtTransportCC {
			return
		}
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return
		}
		for _, p := range pkts {
			d.handleRTCP(p, m)
		}
	})
}

// handleRTCP acts on one RTCP packet from the subscriber.
func (d *downTrack) handleRTCP(p rtcp.Packet, m *metrics) {
	switch p := p.(type) {
	case *rtcp.ReceiverReport:
		for _, r := range p.Reports {
			if r.SSRC == d.ssrcNow() {
				d.receiverReport(r, time.Now(), m)
			}
		}
	case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
		d.mu.Lock()
		l := d.current
		if l == layerNone {
			l = d.target
		}
		d.mu.Unlock()
		d.src.requestKeyframe(l)
	case *rtcp.TransportLayerNack:
		m.nacksIn.Inc()
		d.handleNACK(p, m)
	}
}

// handleNACK retransmits the packets a subscriber reports lost, from the
// packet caches of the layers they were forwarded from, rewritten as they
// were the first time. A packet is resent at most once per round trip
// (minRetransmitGap before the first receiver report), so a burst of NACKs
// for the same loss does not multiply the traffic.
func (d *downTrack) handleNACK(n *rtcp.TransportLayerNack, m *metrics) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sent == nil || !d.bound || !d.connected {
		return
	}
	now := time.Now().UnixNano()
	gap := max(d.rtt, minRetransmitGap)
	resend := func(seq uint16) {
		if d.retransmit(seq, now, gap) {
			m.retransmitted.Inc()
		} else {
			m.retransmitMissed.Inc()
		}
	}
	for _, pair := range n.Nacks {
		resend(pair.PacketID)
		for i := range uint16(16) {
			if pair.LostPackets&(1<<i) != 0 {
				resend(pair.PacketID + i + 1)
			}
		}
	}
}

// Retransmission limits. A packet is resent at most maxRetransmits times,
// at least a round trip (and minRetransmitGap) apart, and all of a down
// track's retransmissions together take at most retransmitShare of its
// subscriber's bandwidth estimate: on a congested link, where losses are
// many, resending everything would only deepen the congestion (and the
// receiver asks again for what is lost again).
const (
	minRetransmitGap = 20 * time.Millisecond
	maxRetransmits   = 3
	retransmitShare  = 0.25
	// retransmitBurst is how long a budget may save up for a burst of
	// losses.
	retransmitBurst = 200 * time.Millisecond
)

// retransmit resends outgoing packet seq if the history and the cache still
// have it and it was not resent within gap. d.mu must be held.
func (d *downTrack) retransmit(seq uint16, now int64, gap time.Duration) bool {
	e := &d.sent[seq&(sentHistory-1)]
	if !e.valid || e.out != seq || e.layer < 0 || int(e.layer) >= maxLayers {
		return false
	}
	if e.resent != 0 && time.Duration(now-e.resent) < gap {
		return true // already on its way
	}
	if e.resends >= maxRetransmits {
		return false
	}
	l := d.src.layers[e.layer].Load()
	if l == nil || l.cache == nil {
		return false
	}
	n, _, marker, ok := l.cache.get(e.in, d.rtxBuf[2:])
	if !ok || !d.retransmitBudget(n+2+12+8+16, now) {
		return false
	}
	payload := d.rtxBuf[2 : 2+n]
	if e.vp8 {
		r := vp8Rewriter{pidOff: e.pidOff, tl0Off: e.tl0Off}
		if !r.rewrite(payload) {
			return false
		}
	}
	d.rtxHdr = rtp.Header{Version: 2, Marker: marker, PayloadType: d.pt, SequenceNumber: seq, Timestamp: e.ts, SSRC: d.ssrc}
	if d.rtxSSRC != 0 {
		// RFC 4588: the original sequence number, then the original payload.
		binary.BigEndian.PutUint16(d.rtxBuf[:2], seq)
		payload = d.rtxBuf[:2+n]
		d.rtxHdr.PayloadType, d.rtxHdr.SSRC, d.rtxHdr.SequenceNumber = d.rtxPT, d.rtxSSRC, d.rtxSeq
		d.rtxSeq++
	}
	d.stamp(&d.rtxHdr, len(payload), time.Unix(0, now))
	if _, err := d.send(&d.rtxHdr, payload); err != nil {
		return false
	}
	e.resent = now
	e.resends++
	return true
}

// retransmitBudget takes size bytes from the retransmission budget, which
// refills at retransmitShare of the subscriber's estimate; false when it
// cannot pay. Without an estimator there is no limit. d.mu must be held.
func (d *downTrack) retransmitBudget(size int, now int64) bool {
	if d.bwe == nil {
		return true
	}
	rate := retransmitShare * float64(d.bwe.Estimate()) // bits per second
	burst := rate * retransmitBurst.Seconds()
	if d.rtxAt == 0 {
		d.rtxBits = burst
	} else {
		d.rtxBits = min(d.rtxBits+rate*time.Duration(now-d.rtxAt).Seconds(), burst)
	}
	d.rtxAt = now
	bits := float64(size * 8)
	if d.rtxBits < bits {
		return false
	}
	d.rtxBits -= bits
	return true
}
