// Package depack turns one track's RTP packets, as they arrive (reordered,
// lost, wrapping around), into whole frames a muxer can write: pion's
// samplebuilder reorders and joins packets; this package adds what a
// recording needs on top: a video track's frames are dropped from a loss
// or a change of SSRC until the next keyframe, and a keyframe is asked for;
// a video frame is written only when it begins at its picture's start.
// Frames come as their container holds them: VP8 as is, VP9 with a
// picture's spatial layers joined in a superframe, H.264 as AVCC NAL units
// with each keyframe's AVCDecoderConfigurationRecord (Opus as is).
// A Track is owned by one goroutine (the recorder's) and has no lock.
package depack

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"

	"github.com/helpcaster/helpcaster/rtpcodec"
)

// ErrUnsupportedCodec is returned for a codec the recorder cannot write.
var ErrUnsupportedCodec = errors.New("codec not supported for recording")

// Reorder window: a packet may come this many packets, or this much media
// time, after a later one and still be put in its place; past that, the
// missing packet counts as lost.
const (
	maxLatePackets = 256
	maxLateTime    = 500 * time.Millisecond
)

// Frame is one whole frame (video) or packet (audio) taken from a track.
type Frame struct {
	Data      []byte // owned by the caller
	Timestamp uint32 // the RTP timestamp of its packets
	SSRC      uint32
	Keyframe  bool // a video keyframe; always true for audio
	Width     int  // a video keyframe's frame size when known; 0 otherwise
	Height    int
	// Config is an H.264 keyframe's AVCDecoderConfigurationRecord: the
	// parameter sets in force (Data holds AVCC NAL units, 4-byte lengths).
	Config []byte
}

// Stats counts what a track dropped.
type Stats struct {
	Frames        uint64 // frames returned
	LostPackets   uint64 // packets the samplebuilder gave up on
	SkippedFrames uint64 // video frames dropped while waiting for a keyframe
	SSRCChanges   uint64
	SeqJumps      uint64 // restarts on a jump of sequence numbers
	KeyframeAsks  uint64
}

// Track depacketizes one track. Push and Pop are called in turn by the
// owning goroutine.
type Track struct {
	mime    string
	codec   codec
	video   bool
	rate    uint32
	release func(*rtp.Packet)
	askKey  func()

	sb      *samplebuilder.SampleBuilder
	held    map[*rtp.Packet]struct{} // pushed, not yet released
	carry   []Frame                  // frames ended by a sequence jump, for Pop
	ssrc    uint32
	lastSeq uint16 // the highest sequence number pushed
	lastTS  uint32 // its timestamp
	started bool

	waitKey bool     // video: drop frames until a keyframe
	marks   [16]mark // VP8
	nmark   int
	h264    h264Params // the parameter sets seen

	stats Stats
}

// mark remembers what the first packets of a recent picture said: whether
// a picture starts at that timestamp, and whether it is a keyframe.
type mark struct {
	ts         uint32
	start, key bool
	w, h       int
}

// codec is a Track's codec.
type codec int

const (
	codecOpus codec = iota
	codecVP8
	codecVP9
	codecH264
)

// codecOf returns the codec of a MIME type, or false if the recorder
// cannot write it.
func codecOf(mime string) (codec, bool) {
	switch {
	case strings.EqualFold(mime, "audio/opus"):
		return codecOpus, true
	case strings.EqualFold(mime, "video/VP8"):
		return codecVP8, true
	case strings.EqualFold(mime, "video/VP9"):
		return codecVP9, true
	case strings.EqualFold(mime, "video/H264"):
		return codecH264, true
	}
	return 0, false
}

// Supported reports whether a Track can take the codec of MIME type mime.
func Supported(mime string) bool {
	_, ok := codecOf(mime)
	return ok
}

// New returns a Track for codec mime (VP8, VP9, H.264 or Opus) with RTP
// clock rate rate. release is called with each packet Push was given once
// the track no longer needs it (nil: none); askKey is called when a video
// track needs a keyframe (from Push or Pop, on the owning goroutine).
func New(mime string, rate uint32, release func(*rtp.Packet), askKey func()) (*Track, error) {
	c, ok := codecOf(mime)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedCodec, mime)
	}
	t := &Track{mime: mime, codec: c, rate: rate, release: release, askKey: askKey}
	t.video = c != codecOpus
	t.waitKey = t.video
	if t.askKey == nil {
		t.askKey = func() {}
	}
	if t.release == nil {
		t.release = func(*rtp.Packet) {}
	}
	t.held = make(map[*rtp.Packet]struct{})
	t.sb = t.newBuilder()
	return t, nil
}

// Video reports whether the track is a video track.
func (t *Track) Video() bool { return t.video }

// Stats returns the track's counters.
func (t *Track) Stats() Stats { return t.stats }

func (t *Track) newBuilder() *samplebuilder.SampleBuilder {
	opts := []samplebuilder.Option{
		samplebuilder.WithMaxTimeDelay(maxLateTime), samplebuilder.WithPacketReleaseHandler(t.released),
	}
	var d rtp.Depacketizer
	switch t.codec {
	case codecVP8:
		d = &codecs.VP8Packet{}
	case codecVP9:
		v := &vp9Depacketizer{}
		d = v
		opts = append(opts, samplebuilder.WithPacketHeadHandler(v.head))
	case codecH264:
		d = newH264Depacketizer()
	default:
		d = &codecs.OpusPacket{}
	}
	return samplebuilder.New(maxLatePackets, d, t.rate, opts...)
}

// packetKeyframe reports whether a video RTP payload starts a keyframe.
func (t *Track) packetKeyframe(payload []byte) bool {
	if t.codec == codecVP9 {
		return vp9PacketKeyframe(payload)
	}
	return rtpcodec.IsKeyframe(t.mime, payload)
}

// Push takes a packet; the track keeps it until it passes it to release.
// A packet of a new SSRC (another simulcast layer, a restarted sender)
// drops what the old one left unfinished and, for video, waits for a keyframe; it reports true so
// the caller can restart its clock.
func (t *Track) Push(p *rtp.Packet) (newSSRC bool) {
	if t.started && p.SSRC != t.ssrc {
		t.stats.SSRCChanges++
		t.restart()
		newSSRC = true
	} else if t.started {
		// A jump of sequence numbers far past the reorder window (a
		// restarted sender, a bad packet) would make the samplebuilder
		// walk every slot between, each time over the whole window: start
		// afresh instead. A packet far behind it is too late: drop it.
		switch d := int16(p.SequenceNumber - t.lastSeq); {
		case d > 2*maxLatePackets:
			t.stats.SeqJumps++
			t.carry = append(t.carry, t.End()...) // same SSRC, same clock
			t.started = true
			if t.video {
				t.AskKeyframe()
			}
		case d < -2*maxLatePackets:
			t.stats.LostPackets++
			t.release(p)
			return false
		}
	}
	if !t.started || int16(p.SequenceNumber-t.lastSeq) > 0 {
		t.lastSeq, t.lastTS = p.SequenceNumber, p.Timestamp
	}
	if !t.started && t.video && !t.packetKeyframe(p.Payload) {
		t.waitKey = false // a recording starts on a keyframe: ask for one
		t.needKey()
	}
	t.started, t.ssrc = true, p.SSRC
	if t.codec == codecVP8 && rtpcodec.VP8PictureStart(p.Payload) {
		m := mark{ts: p.Timestamp, start: true, key: rtpcodec.IsKeyframe(t.mime, p.Payload)}
		m.w, m.h, _ = rtpcodec.VP8KeyframeSize(p.Payload)
		t.marks[t.nmark%len(t.marks)] = m
		t.nmark++
	}
	t.held[p] = struct{}{}
	t.sb.Push(p)
	return newSSRC
}

// End ends the track's current stream (its end, or before a layer
// change) and returns its last frames: an empty packet a second after the
// last one completes a frame waiting for a later packet and pushes the
// reorder window past every gap (what is missing is given up); then every
// packet is released. Push starts a new stream.
func (t *Track) End() []Frame {
	var out []Frame
	if t.started {
		t.sb.Push(&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: t.ssrc,
			SequenceNumber: t.lastSeq + 1, Timestamp: t.lastTS + t.rate}})
		for f, ok := t.Pop(); ok; f, ok = t.Pop() {
			out = append(out, f)
		}
	}
	t.drop()
	t.sb = t.newBuilder()
	t.nmark = 0
	t.started = false
	if t.video {
		t.waitKey = true
	}
	return out
}

// Pop returns the next whole frame, if one is ready.
func (t *Track) Pop() (Frame, bool) {
	if len(t.carry) > 0 {
		f := t.carry[0]
		t.carry = t.carry[1:]
		return f, true
	}
	for {
		s := t.sb.Pop()
		if s == nil {
			return Frame{}, false
		}
		if s.PrevDroppedPackets > 0 {
			t.stats.LostPackets += uint64(s.PrevDroppedPackets)
			if t.video {
				t.needKey()
			}
		}
		f := Frame{Data: s.Data, Timestamp: s.PacketTimestamp, SSRC: t.ssrc, Keyframe: true}
		if t.video {
			whole, empty := t.picture(&f, s.Metadata)
			if empty {
				continue
			}
			if !whole {
				// The sample does not begin with its picture's first
				// packet: part of it is missing.
				t.stats.SkippedFrames++
				t.needKey()
				continue
			}
			if t.waitKey && !f.Keyframe {
				t.stats.SkippedFrames++
				continue
			}
			t.waitKey = false
		}
		t.stats.Frames++
		return f, true
	}
}

// picture checks that a video sample is a whole picture and fills in what
// it says of itself (keyframe, size, H.264 configuration). whole is false
// when part of it is missing, or (H.264) for a keyframe with no parameter
// sets known; empty is true for an H.264 sample with no picture in it
// (parameter sets alone, kept; nothing to write).
func (t *Track) picture(f *Frame, meta any) (whole, empty bool) {
	switch t.codec {
	case codecVP9:
		s, _ := meta.(*vp9Sample)
		data, key, w, h, ok := vp9Frame(f.Data, s)
		f.Data, f.Keyframe, f.Width, f.Height = data, key, w, h
		return ok, false
	case codecH264:
		au := scanH264(f.Data, &t.h264)
		if !au.vcl {
			return false, true
		}
		if !au.start {
			return false, false
		}
		f.Keyframe = au.key
		if au.key {
			if !t.h264.ok || len(t.h264.pps) == 0 {
				// A keyframe that cannot start the stream: ask for
				// another even when already waiting (Pop asks if not).
				if t.waitKey {
					t.AskKeyframe()
				}
				return false, false
			}
			f.Config = avcConfig(&t.h264)
			f.Width, f.Height = t.h264.info.width, t.h264.info.height
		}
		return true, false
	default:
		m, ok := t.mark(f.Timestamp)
		if !ok || !m.start {
			return false, false
		}
		f.Keyframe, f.Width, f.Height = m.key, m.w, m.h
		return true, false
	}
}

// WaitingForKeyframe reports whether a video track drops frames until a
// keyframe.
func (t *Track) WaitingForKeyframe() bool { return t.waitKey }

// NeedKeyframe makes a video track drop frames until the next keyframe and
// asks for one (after packets were dropped before Push).
func (t *Track) NeedKeyframe() {
	if t.video {
		t.waitKey = true
		t.AskKeyframe()
	}
}

// AskKeyframe asks a video track's publisher for a keyframe.
func (t *Track) AskKeyframe() {
	if t.video {
		t.stats.KeyframeAsks++
		t.askKey()
	}
}

// AskAgain asks for a keyframe again if the track still waits for one
// (called by the owner now and then, as a request can be lost).
func (t *Track) AskAgain() {
	if t.video && t.waitKey {
		t.stats.KeyframeAsks++
		t.askKey()
	}
}

func (t *Track) needKey() {
	if !t.waitKey {
		t.waitKey = true
		t.stats.KeyframeAsks++
		t.askKey()
	}
}

// restart drops the samplebuilder and what it holds (its packets are
// released here) and starts a new one; video waits for a keyframe. It does
// not call the samplebuilder's Flush: after it has dropped a packet that
// did not start a frame, Flush walks the whole 65536-slot ring, each step
// over the window again (seconds of CPU, found by FuzzDepack).
func (t *Track) restart() {
	t.drop()
	t.sb = t.newBuilder()
	t.nmark = 0
	if t.video {
		t.needKey()
	}
}

// drop releases every packet the samplebuilder holds.
func (t *Track) drop() {
	for p := range t.held {
		delete(t.held, p)
		t.release(p)
	}
}

// released is the samplebuilder's release handler (End's own empty
// packet is not the caller's).
func (t *Track) released(p *rtp.Packet) {
	if _, ok := t.held[p]; ok {
		delete(t.held, p)
		t.release(p)
	}
}

func (t *Track) mark(ts uint32) (mark, bool) {
	for i := range min(t.nmark, len(t.marks)) {
		if m := t.marks[i]; m.ts == ts {
			return m, true
		}
	}
	return mark{}, false
}
