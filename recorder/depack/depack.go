// Package depack turns one track's RTP packets, as they arrive (reordered,
// lost, wrapping around), into whole frames a muxer can write: pion's
// samplebuilder reorders and joins packets; this package adds what a
// recording needs on top: a video track's frames are dropped from a loss
// or a change of SSRC until the next keyframe, and a keyframe is asked for.
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
	Width     int  // a VP8 keyframe's frame size; 0 otherwise
	Height    int
}

// Stats counts what a track dropped.
type Stats struct {
	Frames        uint64 // frames returned
	LostPackets   uint64 // packets the samplebuilder gave up on
	SkippedFrames uint64 // video frames dropped while waiting for a keyframe
	SSRCChanges   uint64
	KeyframeAsks  uint64
}

// Track depacketizes one track. Push and Pop are called in turn by the
// owning goroutine.
type Track struct {
	mime    string
	video   bool
	rate    uint32
	release func(*rtp.Packet)
	askKey  func()

	sb      *samplebuilder.SampleBuilder
	ssrc    uint32
	started bool

	waitKey bool // video: drop frames until a keyframe
	marks   [16]mark
	nmark   int

	stats Stats
}

// mark remembers what the first packets of a recent picture said: whether
// a picture starts at that timestamp, and whether it is a keyframe.
type mark struct {
	ts         uint32
	start, key bool
	w, h       int
}

// New returns a Track for codec mime (VP8 or Opus) with RTP clock rate
// rate. release is called with each packet Push was given once the track
// no longer needs it (nil: none); askKey is called when a video track needs
// a keyframe (from Push or Pop, on the owning goroutine).
func New(mime string, rate uint32, release func(*rtp.Packet), askKey func()) (*Track, error) {
	t := &Track{mime: mime, rate: rate, release: release, askKey: askKey}
	switch {
	case strings.EqualFold(mime, "video/VP8"):
		t.video, t.waitKey = true, true
	case strings.EqualFold(mime, "audio/opus"):
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedCodec, mime)
	}
	if t.askKey == nil {
		t.askKey = func() {}
	}
	t.sb = t.newBuilder()
	return t, nil
}

// Video reports whether the track is a video track.
func (t *Track) Video() bool { return t.video }

// Stats returns the track's counters.
func (t *Track) Stats() Stats { return t.stats }

func (t *Track) newBuilder() *samplebuilder.SampleBuilder {
	var d rtp.Depacketizer = &codecs.OpusPacket{}
	if t.video {
		d = &codecs.VP8Packet{}
	}
	opts := []samplebuilder.Option{samplebuilder.WithMaxTimeDelay(maxLateTime)}
	if t.release != nil {
		opts = append(opts, samplebuilder.WithPacketReleaseHandler(t.release))
	}
	return samplebuilder.New(maxLatePackets, d, t.rate, opts...)
}

// Push takes a packet; the track keeps it until it passes it to release.
// A packet of a new SSRC (another simulcast layer, a restarted sender)
// drops what the old one left unfinished (call Flush and Pop first to keep
// its last frames) and, for video, waits for a keyframe; it reports true so
// the caller can restart its clock.
func (t *Track) Push(p *rtp.Packet) (newSSRC bool) {
	if t.started && p.SSRC != t.ssrc {
		t.stats.SSRCChanges++
		t.sb.Flush()
		for t.sb.Pop() != nil {
		}
		t.sb = t.newBuilder()
		t.nmark = 0
		if t.video {
			t.needKey()
		}
		newSSRC = true
	}
	if !t.started && t.video && !rtpcodec.IsKeyframe(t.mime, p.Payload) {
		t.waitKey = false // a recording starts on a keyframe: ask for one
		t.needKey()
	}
	t.started, t.ssrc = true, p.SSRC
	if t.video && rtpcodec.VP8PictureStart(p.Payload) {
		m := mark{ts: p.Timestamp, start: true, key: rtpcodec.IsKeyframe(t.mime, p.Payload)}
		m.w, m.h, _ = rtpcodec.VP8KeyframeSize(p.Payload)
		t.marks[t.nmark%len(t.marks)] = m
		t.nmark++
	}
	t.sb.Push(p)
	return newSSRC
}

// Flush gives up waiting for missing packets, at the track's end: what can
// be completed is returned by the next Pops.
func (t *Track) Flush() { t.sb.Flush() }

// Pop returns the next whole frame, if one is ready.
func (t *Track) Pop() (Frame, bool) {
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
			m, ok := t.mark(s.PacketTimestamp)
			if !ok || !m.start {
				// The sample does not begin with its picture's first
				// packet: part of it is missing.
				t.stats.SkippedFrames++
				t.needKey()
				continue
			}
			f.Keyframe, f.Width, f.Height = m.key, m.w, m.h
			if t.waitKey && !m.key {
				t.stats.SkippedFrames++
				continue
			}
			t.waitKey = false
		}
		t.stats.Frames++
		return f, true
	}
}

// WaitingForKeyframe reports whether a video track drops frames until a
// keyframe.
func (t *Track) WaitingForKeyframe() bool { return t.waitKey }

// NeedKeyframe makes a video track drop frames until the next keyframe and
// asks for one (after packets were dropped before Push, or on resume).
func (t *Track) NeedKeyframe() {
	if t.video {
		t.needKey()
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

func (t *Track) mark(ts uint32) (mark, bool) {
	for i := range min(t.nmark, len(t.marks)) {
		if m := t.marks[i]; m.ts == ts {
			return m, true
		}
	}
	return mark{}, false
}
