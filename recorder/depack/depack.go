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
	SeqJumps      uint64 // restarts on a jump of sequence numbers
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
	held    map[*rtp.Packet]struct{} // pushed, not yet released
	carry   []Frame                  // frames ended by a sequence jump, for Pop
	ssrc    uint32
	lastSeq uint16 // the highest sequence number pushed
	lastTS  uint32 // its timestamp
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
	var d rtp.Depacketizer = &codecs.OpusPacket{}
	if t.video {
		d = &codecs.VP8Packet{}
	}
	return samplebuilder.New(maxLatePackets, d, t.rate,
		samplebuilder.WithMaxTimeDelay(maxLateTime), samplebuilder.WithPacketReleaseHandler(t.released))
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
