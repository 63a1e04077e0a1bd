// VP9 (RFC 9628): pictures out of pion's VP9Packet, with what their first
// packet's payload descriptor says (a picture starts at spatial layer 0's
// first packet; a keyframe's is not inter-picture predicted) and the key
// flag and frame size of the frame's uncompressed header. A picture of
// several spatial layers holds one frame per layer: they are joined into
// a superframe (VP9 bitstream specification, annex B), the form a WebM
// block holds.

package depack

import (
	"github.com/pion/rtp/codecs"
	"github.com/pion/rtp/codecs/vp9"
)

// vp9Sample is what the packets of one sample said, filled as the
// samplebuilder depacketizes them (its packet head handler starts one).
type vp9Sample struct {
	start  bool  // the first packet starts a picture: B set, spatial layer 0
	inter  bool  // the first packet's P bit: inter-picture predicted
	frames []int // the sizes of the frames (layers) the sample holds
}

// vp9Depacketizer is pion's VP9Packet noting where each frame starts.
// The samplebuilder depacketizes a sample's packets in a row and calls
// head after the first: the first packet of a sample is at first counted
// in the one before, and head takes it back from there.
type vp9Depacketizer struct {
	p       codecs.VP9Packet
	cur     *vp9Sample // the sample being depacketized
	lastLen int        // the length of the last packet's frame data
	lastNew bool       // the last packet began an entry of cur.frames
}

func (d *vp9Depacketizer) Unmarshal(payload []byte) ([]byte, error) {
	out, err := d.p.Unmarshal(payload)
	if err != nil {
		return nil, err
	}
	d.lastLen, d.lastNew = len(out), false
	if d.cur != nil {
		if d.p.B || len(d.cur.frames) == 0 {
			d.cur.frames = append(d.cur.frames, 0)
			d.lastNew = true
		}
		d.cur.frames[len(d.cur.frames)-1] += len(out)
	}
	return out, nil
}

// head is the samplebuilder's packet head handler: called after the
// sample's first packet is depacketized, it starts the sample's record.
func (d *vp9Depacketizer) head(any) any {
	if c := d.cur; c != nil && len(c.frames) > 0 {
		if d.lastNew {
			c.frames = c.frames[:len(c.frames)-1]
		} else {
			c.frames[len(c.frames)-1] -= d.lastLen
		}
	}
	d.cur = &vp9Sample{
		start:  d.p.B && (!d.p.L || d.p.SID == 0),
		inter:  d.p.P,
		frames: []int{d.lastLen},
	}
	return d.cur
}

func (d *vp9Depacketizer) IsPartitionHead(payload []byte) bool {
	return d.p.IsPartitionHead(payload)
}

func (d *vp9Depacketizer) IsPartitionTail(marker bool, payload []byte) bool {
	return d.p.IsPartitionTail(marker, payload)
}

// vp9PacketKeyframe reports whether an RTP payload starts a VP9 keyframe.
func vp9PacketKeyframe(payload []byte) bool {
	var p codecs.VP9Packet
	data, err := p.Unmarshal(payload)
	if err != nil || p.P || !p.B || (p.L && p.SID != 0) {
		return false
	}
	var h vp9.Header
	return h.Unmarshal(data) == nil && !h.NonKeyFrame && !h.ShowExistingFrame
}

// vp9Frame checks a sample and says whether it is a keyframe, and its
// size if so; it joins the layers of a picture of several into a
// superframe. ok is false for a sample that does not start a picture.
func vp9Frame(data []byte, s *vp9Sample) (out []byte, key bool, w, h int, ok bool) {
	if s == nil || !s.start {
		return nil, false, 0, 0, false
	}
	var hdr vp9.Header
	if err := hdr.Unmarshal(data); err == nil && !s.inter && !hdr.NonKeyFrame && !hdr.ShowExistingFrame {
		key, w, h = true, int(hdr.Width()), int(hdr.Height())
	}
	if len(s.frames) > 1 {
		data = superframe(data, s.frames)
	}
	return data, key, w, h, data != nil
}

// superframe appends a superframe index to frames of the given sizes
// (at most 8, each less than 2^32 bytes); nil if they do not fit.
func superframe(data []byte, sizes []int) []byte {
	total := 0
	largest := 0
	for _, n := range sizes {
		total += n
		largest = max(largest, n)
	}
	if len(sizes) > 8 || total != len(data) {
		return nil
	}
	mag := 1
	for largest >= 1<<(8*mag) {
		mag++
	}
	if mag > 4 {
		return nil
	}
	marker := byte(0xc0 | (mag-1)<<3 | (len(sizes) - 1))
	out := append(data, marker)
	for _, n := range sizes {
		for i := range mag {
			out = append(out, byte(n>>(8*i)))
		}
	}
	return append(out, marker)
}
