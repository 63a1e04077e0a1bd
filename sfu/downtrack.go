package sfu

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// downTrack forwards one published track to one subscriber. It implements
// webrtc.TrackLocal so it can be added to the subscriber's connection, and
// rewrites SSRC, payload type, sequence numbers and timestamps so the
// subscriber sees one continuous stream whatever the SFU drops.
type downTrack struct {
	src  *publishedTrack
	id   string
	sid  string
	kind webrtc.RTPCodecType

	mu       sync.Mutex
	bound    bool
	writer   webrtc.TrackLocalWriter
	ssrc     uint32
	pt       uint8
	needKey  bool // drop video until a keyframe arrives
	seq      seqRewriter
	ts       tsRewriter
	firstSeq uint16 // random start of the outgoing sequence
	firstTS  uint32 // random start of the outgoing timeline
	out      streamCounters
	hdr      rtp.Header // reused for every egress packet, so writes allocate nothing here
}

func newDownTrack(src *publishedTrack) *downTrack {
	kind := webrtc.RTPCodecTypeVideo
	if src.kind == "audio" {
		kind = webrtc.RTPCodecTypeAudio
	}
	m := src.owner.room.sfu.metrics
	return &downTrack{
		src:      src,
		id:       src.remote.ID(),
		sid:      src.owner.id,
		kind:     kind,
		needKey:  kind == webrtc.RTPCodecTypeVideo,
		firstSeq: uint16(rand.Uint32()),
		firstTS:  rand.Uint32(),
		out:      m.counters(src.kind, "out"),
	}
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
	d.mu.Unlock()
	d.src.requestKeyframe()
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

// writeRTP forwards one packet. Called only from the source's read goroutine.
func (d *downTrack) writeRTP(h *rtp.Header, payload []byte, keyframe bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.bound {
		return
	}
	if len(payload) == 0 {
		d.seq.skip(h.SequenceNumber)
		return
	}
	if d.needKey {
		if !keyframe {
			d.src.requestKeyframe()
			return
		}
		d.needKey = false
	}
	if !d.seq.started {
		d.seq.start(h.SequenceNumber, d.firstSeq)
		d.ts.start(h.Timestamp, d.firstTS)
	}
	seq, ok := d.seq.rewrite(h.SequenceNumber)
	if !ok {
		return
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
	if _, err := d.writer.WriteRTP(&d.hdr, payload); err != nil {
		return
	}
	d.out.packets.Inc()
	d.out.bytes.Add(float64(len(payload)))
}

func (d *downTrack) trackClosed() {}

// readRTCP consumes the subscriber's RTCP for this track (which also drives
// the NACK responder and report interceptors) and forwards keyframe
// requests. It returns when the sender stops.
func (d *downTrack) readRTCP(sender *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	m := d.src.owner.room.sfu.metrics
	for {
		n, _, err := sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				d.src.requestKeyframe()
			case *rtcp.TransportLayerNack:
				m.nacksIn.Inc()
			}
		}
	}
}
