package sfu

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/helpcaster/helpcaster/rtpcodec"
	"github.com/helpcaster/helpcaster/sfu/wire"
)

// keyframeInterval is the minimum time between two keyframe requests sent
// for one layer of a published track, however many subscribers ask.
const keyframeInterval = 500 * time.Millisecond

// maxLayers is the most simulcast layers a track may have.
const maxLayers = 3

// Simulcast layers by quality. A track without simulcast has one layer, 0.
const (
	layerQuarter = 0 // rid "q": a quarter of the full resolution
	layerHalf    = 1 // rid "h": half
	layerFull    = 2 // rid "f": full
	layerNone    = -1
)

// layerOfRID maps a simulcast RTP stream id to its layer; ok is false for a
// rid HelpCaster does not know. The empty rid (no simulcast) is layer 0.
func layerOfRID(rid string) (int, bool) {
	switch rid {
	case "", "q", "0":
		return layerQuarter, true
	case "h", "1":
		return layerHalf, true
	case "f", "2":
		return layerFull, true
	}
	return layerNone, false
}

// sink is what a published track fans its packets out to: down tracks and
// external sinks. writeRTP is called from the goroutine that received the
// packet (layer.receive: one packet of a layer at a time, but calls for
// different layers may be concurrent);
// payload has padding removed and is empty for padding-only packets; now is
// when the packet was read (one clock read per packet, not per sink).
type sink interface {
	writeRTP(layer int, h *rtp.Header, payload []byte, keyframe bool, now time.Time)
	// layersChanged is called when a layer appears or ends.
	layersChanged()
	trackClosed()
}

// trackEnv is what a published track is given by its publisher when it is
// made; none of it changes afterwards.
type trackEnv struct {
	publisher     string // the publishing participant's id
	metrics       *metrics
	speakers      *speakerDetector // the room's; nil: no speaker detection
	dynacastPause time.Duration    // see Config.DynacastPause
	// sendPLI asks the publisher for a keyframe of the stream with SSRC
	// ssrc (a picture loss indication). requestKeyframe throttles it.
	sendPLI func(ssrc uint32)
	// recv is the publisher connection's receive chain (NACKs, receiver
	// reports, transport-wide feedback).
	recv *receiveChain
}

// publishedTrack is one track a participant sends, with one layer per
// simulcast encoding. The sink list is copy-on-write, so the per-packet path
// takes no lock.
type publishedTrack struct {
	trackEnv
	id    string
	codec webrtc.RTPCodecParameters
	mime  string
	kind  string

	sinkMu sync.Mutex // serialises changes to sinks, and orders sender reports with close
	sinks  atomic.Pointer[[]sink]

	layers [maxLayers]atomic.Pointer[layer]
	in     streamCounters
	dyn    dynacastState
	// audioLevelID is the negotiated id of the RFC 6464 audio level header
	// extension (0: not negotiated).
	audioLevelID uint8
	// captureID is the negotiated id of the absolute capture time header
	// extension (0: not negotiated), forwarded to subscribers.
	captureID uint8
	// twccID is the negotiated id of the transport-wide sequence number
	// header extension (0: not negotiated).
	twccID uint8
}

// layer is one simulcast encoding (or the only encoding) of a track.
type layer struct {
	track      *publishedTrack
	index      int
	remote     *webrtc.TrackRemote
	lastKeyReq atomic.Int64  // unix nanoseconds of the last PLI sent
	size       atomic.Uint32 // width<<16 | height of the last key frame seen
	bytes      atomic.Uint64 // payload bytes received, for the layer's bitrate
	meter      rateMeter
	sr         atomic.Pointer[senderInfo] // the publisher's latest sender report for this layer
	activity   layerActivity
	cache      *packetCache // recent packets for retransmission; nil for audio
	// Payload bytes per VP8 temporal layer, for the allocator.
	tidBytes  [maxTemporal]atomic.Uint64
	tidMeters [maxTemporal]rateMeter

	// rtxSSRC is the SSRC of the layer's retransmissions (RFC 4588) once
	// they are routed on the direct path (0 before); rtxDone is set when
	// the layer ends, after which they are not routed.
	rtxMu   sync.Mutex
	rtxSSRC uint32
	rtxDone bool

	// recvMu serialises receive: a layer's packets come from the direct
	// media path and from pion's track reader (run).
	recvMu sync.Mutex
	in     layerInput // under recvMu
}

// layerInput is what receive keeps from one packet to the next.
type layerInput struct {
	info   *interceptor.StreamInfo
	chain  interceptor.RTPReader // the receive chain bound to this stream
	attrs  interceptor.Attributes
	h      rtp.Header
	starts switchPoints
	fan    *fanOut // started when the layer first has more than spreadAbove sinks
	count  int
	ended  bool
}

func newLayer(t *publishedTrack, index int, remote *webrtc.TrackRemote) *layer {
	l := &layer{track: t, index: index, remote: remote}
	l.in.starts = switchPoints{video: t.kind == "video", vp8: t.mime == mimeVP8, mime: t.mime}
	l.in.attrs = interceptor.Attributes{}
	return l
}

// bind runs the track's receive chain on the layer's packets from now on;
// end unbinds it. Called once the layer is the track's, before any packet.
func (l *layer) bind(recv *webrtc.RTPReceiver) {
	if l.track.recv == nil {
		return
	}
	l.recvMu.Lock()
	defer l.recvMu.Unlock()
	l.in.info = streamInfo(l.remote, recv)
	l.in.chain = l.track.recv.bind(l.in.info)
}

func newPublishedTrack(env trackEnv, remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) *publishedTrack {
	codec := remote.Codec()
	t := &publishedTrack{trackEnv: env, id: remote.ID(), codec: codec, mime: codec.MimeType, kind: kindOf(codec.MimeType)}
	for _, ext := range recv.GetParameters().HeaderExtensions {
		if ext.ID <= 0 || ext.ID >= 15 {
			continue
		}
		switch ext.URI {
		case sdp.AudioLevelURI:
			t.audioLevelID = uint8(ext.ID)
		case rtpcodec.AbsCaptureTimeURI:
			t.captureID = uint8(ext.ID)
		case sdp.TransportCCURI:
			t.twccID = uint8(ext.ID)
		}
	}
	t.in = env.metrics.counters(t.kind, "in")
	empty := []sink{}
	t.sinks.Store(&empty)
	return t
}

func (t *publishedTrack) info() TrackInfo {
	return TrackInfo{Participant: t.publisher, TrackID: t.id, Kind: t.kind, Codec: t.codec,
		RequestKeyframe: func() { t.requestKeyframe(t.topLayer()) }}
}

// senderReported passes a sender report for one of the track's layers on
// to the sinks that want them. sinkMu orders it with close, so that no
// sink hears of a report after its Close.
func (t *publishedTrack) senderReported(ssrc uint32, ntpTime uint64, rtpTime uint32) {
	t.sinkMu.Lock()
	defer t.sinkMu.Unlock()
	sinks := t.sinks.Load()
	if sinks == nil {
		return // a track made without sinks (tests)
	}
	for _, s := range *sinks {
		if e, ok := s.(*externalSink); ok && e.sr != nil {
			e.sr.SenderReport(ssrc, ntpTime, rtpTime)
		}
	}
}

func (t *publishedTrack) addSink(s sink) {
	t.sinkMu.Lock()
	defer t.sinkMu.Unlock()
	old := *t.sinks.Load()
	next := make([]sink, len(old), len(old)+1)
	copy(next, old)
	next = append(next, s)
	t.sinks.Store(&next)
}

func (t *publishedTrack) removeSink(s sink) {
	t.sinkMu.Lock()
	defer t.sinkMu.Unlock()
	old := *t.sinks.Load()
	next := make([]sink, 0, len(old))
	for _, o := range old {
		if o != s {
			next = append(next, o)
		}
	}
	t.sinks.Store(&next)
}

// addLayer attaches a layer; false if that layer is already present.
func (t *publishedTrack) addLayer(l *layer) bool {
	if !t.layers[l.index].CompareAndSwap(nil, l) {
		return false
	}
	t.notifyLayers()
	return true
}

// removeLayer detaches l and reports whether the track has no layer left.
func (t *publishedTrack) removeLayer(l *layer) (empty bool) {
	t.layers[l.index].CompareAndSwap(l, nil)
	t.notifyLayers()
	for i := range t.layers {
		if t.layers[i].Load() != nil {
			return false
		}
	}
	return true
}

func (t *publishedTrack) notifyLayers() {
	for _, s := range *t.sinks.Load() {
		s.layersChanged()
	}
}

// available reports which layers are being received.
func (t *publishedTrack) available() (av [maxLayers]bool) {
	for i := range t.layers {
		av[i] = t.layers[i].Load() != nil
	}
	return av
}

// topLayer is the highest layer being received, or layerNone.
func (t *publishedTrack) topLayer() int {
	for i := maxLayers - 1; i >= 0; i-- {
		if t.layers[i].Load() != nil {
			return i
		}
	}
	return layerNone
}

// layerSize returns the frame size last seen on a layer (0, 0 if unknown).
func (t *publishedTrack) layerSize(i int) (w, h int) {
	l := t.layers[i].Load()
	if l == nil {
		return 0, 0
	}
	v := l.size.Load()
	return int(v >> 16), int(v & 0xffff)
}

// run reads the layer from pion until it ends, and receives what it
// reads: everything without the direct path (a connection on pion's path),
// and with it what pion had read before the route existed, and
// retransmissions until routeRepairs takes them. It returns when the
// publisher's connection closes or the encoding is removed.
func (l *layer) run() {
	buf := make([]byte, 1500)
	for {
		n, _, err := l.remote.Read(buf)
		if err != nil {
			return
		}
		l.receive(buf[:n], nil, time.Now())
	}
}

// HandleRTP receives a packet from the direct media path (wire.Handler).
func (l *layer) HandleRTP(pkt []byte, h *rtp.Header, now time.Time) {
	l.receive(pkt, h, now)
}

// routeRepairs sends the layer's retransmissions to the direct path too,
// once pion knows their SSRC (from the SDP, or for simulcast from the first
// one it saw). Without this they would wait in pion for a read of the
// track that only returns with the next media packet, which the direct
// path takes first.
func (l *layer) routeRepairs(wc *wire.Conn) {
	if l.track.kind != "video" {
		return
	}
	l.rtxMu.Lock()
	defer l.rtxMu.Unlock()
	if l.rtxSSRC != 0 || l.rtxDone {
		return
	}
	if l.rtxSSRC = uint32(l.remote.RtxSSRC()); l.rtxSSRC != 0 {
		wc.AddHandler(l.rtxSSRC, repairInput{l: l, ssrc: uint32(l.remote.SSRC()), pt: uint8(l.remote.PayloadType())})
	}
}

// unrouteRepairs stops routing the layer's retransmissions, for good.
func (l *layer) unrouteRepairs(wc *wire.Conn) {
	l.rtxMu.Lock()
	defer l.rtxMu.Unlock()
	l.rtxDone = true
	if l.rtxSSRC != 0 {
		wc.RemoveHandler(l.rtxSSRC)
	}
}

// routeRepairs routes each layer's retransmissions (see layer.routeRepairs).
func (t *publishedTrack) routeRepairs(wc *wire.Conn) {
	for i := range t.layers {
		if l := t.layers[i].Load(); l != nil {
			l.routeRepairs(wc)
		}
	}
}

// repairInput unwraps a layer's retransmissions arriving on the direct
// path (RFC 4588: the original sequence number, then the original payload)
// into the packets they repair, which the layer receives like any other.
type repairInput struct {
	l    *layer
	ssrc uint32 // the layer's media SSRC
	pt   uint8  // and payload type
}

func (r repairInput) HandleRTP(pkt []byte, h *rtp.Header, now time.Time) {
	hn, ok := rtpHeaderLen(pkt)
	body := pkt[min(hn, len(pkt)):]
	if ok && h.Padding && len(body) > 0 {
		body = body[:len(body)-min(int(body[len(body)-1]), len(body))]
	}
	if !ok || len(body) < 2 {
		// Padding only (a bandwidth probe): its arrival still counts for
		// the publisher's estimate.
		if t := r.l.track; ok && t.twccID != 0 {
			t.recv.twcc.record(h.SSRC, h.GetExtension(t.twccID), now)
		}
		return
	}
	osn := binary.BigEndian.Uint16(body)
	// Rebuild the original packet in place, two bytes further on: the
	// header moves over the original sequence number.
	copy(pkt[2:2+hn], pkt[:hn])
	orig := pkt[2:]
	orig[1] = orig[1]&0x80 | r.pt
	binary.BigEndian.PutUint16(orig[2:4], osn)
	binary.BigEndian.PutUint32(orig[8:12], r.ssrc)
	r.l.receive(orig, nil, now)
}

// end stops receiving: packets still on their way are dropped.
func (l *layer) end() {
	l.recvMu.Lock()
	defer l.recvMu.Unlock()
	l.in.ended = true
	if l.in.fan != nil {
		l.in.fan.stop()
		l.in.fan = nil
	}
	if l.in.info != nil {
		l.track.recv.unbind(l.in.info)
	}
}

// receive takes one decrypted RTP packet of the layer (pkt: header and
// payload; h: its parsed header, or nil) and fans it out. It runs on the
// goroutine that read the packet: the socket's reader or run's.
func (l *layer) receive(pkt []byte, parsed *rtp.Header, now time.Time) {
	l.recvMu.Lock()
	defer l.recvMu.Unlock()
	in := &l.in
	if in.ended {
		return
	}
	t := l.track
	m := t.metrics
	if in.chain != nil {
		clear(in.attrs)
		if _, _, err := in.chain.Read(pkt, in.attrs); err != nil {
			m.dropped.WithLabelValues("malformed").Inc()
			return
		}
	}
	h := &in.h
	var hn int
	var ok bool
	if parsed != nil {
		// parsed belongs to the direct path's reader: its slices' arrays
		// are reused for the next packet, so only their contents are
		// taken (run's Unmarshal would otherwise write into them).
		ext, csrc := h.Extensions[:0], h.CSRC[:0]
		*h = *parsed
		h.Extensions = append(ext, parsed.Extensions...)
		h.CSRC = append(csrc, parsed.CSRC...)
		hn, ok = rtpHeaderLen(pkt)
	} else {
		var err error
		hn, err = h.Unmarshal(pkt)
		ok = err == nil
	}
	if !ok {
		m.dropped.WithLabelValues("malformed").Inc()
		return
	}
	if t.twccID != 0 && t.recv != nil {
		t.recv.twcc.record(h.SSRC, h.GetExtension(t.twccID), now)
	}
	// One packet in latencySample has its forwarding latency measured,
	// from here to each egress write.
	var readAt time.Time
	if in.count%latencySample == 0 {
		readAt = now
	}
	in.count++
	payload := pkt[hn:]
	if h.Padding {
		if len(payload) == 0 || int(payload[len(payload)-1]) > len(payload) {
			m.dropped.WithLabelValues("malformed").Inc()
			return
		}
		payload = payload[:len(payload)-int(payload[len(payload)-1])]
		h.Padding = false
	}
	t.in.packets.Inc()
	t.in.bytes.Add(float64(len(payload)))
	l.bytes.Add(uint64(len(payload)))
	if t.kind == "audio" {
		t.observeAudio(h)
	}
	vp8 := in.starts.vp8
	key := in.starts.keyframe(h.Timestamp, payload)
	if key && vp8 {
		if w, hh, ok := rtpcodec.VP8KeyframeSize(payload); ok {
			l.size.Store(uint32(w)<<16 | uint32(hh))
		}
	}
	if vp8 && len(payload) > 0 {
		if d, ok := rtpcodec.ParseVP8Descriptor(payload); ok {
			if tid, _, ok := d.Temporal(payload); ok {
				l.tidBytes[min(tid, temporalAll)].Add(uint64(len(payload)))
			}
		}
	}
	if l.cache != nil && len(payload) > 0 {
		l.cache.put(h.SequenceNumber, h.Timestamp, h.Marker, payload, now.UnixNano())
	}
	sinks := *t.sinks.Load()
	if len(sinks) > spreadAbove && in.fan == nil {
		in.fan = newFanOut(m)
	}
	if in.fan != nil && len(sinks) > spreadAbove {
		in.fan.deliver(sinks, l.index, h, payload, key, now, readAt)
	} else {
		writeSinks(sinks, l.index, h, payload, key, now, readAt, m)
	}
}

// rtpHeaderLen is the length of the RTP header pkt starts with (fixed
// part, CSRCs and extension), read from its length fields.
func rtpHeaderLen(pkt []byte) (int, bool) {
	if len(pkt) < 12 {
		return 0, false
	}
	n := 12 + 4*int(pkt[0]&0x0f)
	if pkt[0]&0x10 != 0 {
		if len(pkt) < n+4 {
			return 0, false
		}
		n += 4 + 4*(int(pkt[n+2])<<8|int(pkt[n+3]))
	}
	return n, n <= len(pkt)
}

// temporalRates splits each layer's planning rate (rates[i]) over its VP8
// temporal layers: out[i][t] is the rate of layer i with temporal layers up
// to t, in the proportions measured; all zero for a layer that carries no
// temporal layers.
func (t *publishedTrack) temporalRates(now time.Time, rates [maxLayers]int64) (out [maxLayers][maxTemporal]int64) {
	for i := range t.layers {
		l := t.layers[i].Load()
		if l == nil || rates[i] <= 0 {
			continue
		}
		var per [maxTemporal]int64
		var total int64
		for k := range per {
			per[k] = l.tidMeters[k].update(l.tidBytes[k].Load(), now)
			total += per[k]
		}
		if total <= 0 || per[0] == total {
			continue
		}
		var cum int64
		for k := range per {
			cum += per[k]
			out[i][k] = rates[i] * cum / total
		}
	}
	return out
}

// switchPoints finds, in one layer's packets in arrival order, those where
// a subscriber may start or switch to the layer: the first packet of a
// keyframe. For VP8 that is the packet that says so; for H.264 only the
// first packet of a picture (a new timestamp) counts, so an IDR slice later
// in a picture whose start was missed cannot start a switch.
type switchPoints struct {
	video, vp8 bool
	mime       string
	sawTS      bool
	lastTS     uint32
}

// keyframe reports whether the packet with timestamp ts and payload (padding
// removed) starts a keyframe.
func (s *switchPoints) keyframe(ts uint32, payload []byte) bool {
	frameStart := !s.sawTS || ts != s.lastTS
	s.sawTS, s.lastTS = true, ts
	return s.video && len(payload) > 0 && (s.vp8 || frameStart) && rtpcodec.IsKeyframe(s.mime, payload)
}

// latencySample is how often (one packet in so many) the forwarding latency
// is measured: often enough for a histogram, rarely enough to cost nothing.
const latencySample = 32

// requestKeyframe asks the publisher for a keyframe on layer i unless one
// was asked for within keyframeInterval.
func (t *publishedTrack) requestKeyframe(i int) {
	if t.kind != "video" || i < 0 || i >= maxLayers {
		return
	}
	l := t.layers[i].Load()
	if l == nil {
		return
	}
	now := time.Now().UnixNano()
	last := l.lastKeyReq.Load()
	if now-last < int64(keyframeInterval) || !l.lastKeyReq.CompareAndSwap(last, now) {
		return
	}
	t.metrics.keyframeReqs.Inc()
	t.sendPLI(uint32(l.remote.SSRC()))
}

// close tells every sink the track ended.
func (t *publishedTrack) close() {
	t.sinkMu.Lock()
	old := *t.sinks.Load()
	empty := []sink{}
	t.sinks.Store(&empty)
	t.sinkMu.Unlock()
	for _, s := range old {
		s.trackClosed()
	}
}
