package depack

import (
	"bytes"
	"testing"

	"github.com/pion/rtp"
)

// VP9 uncompressed headers: a keyframe of 1920x804 (a Chrome frame's
// first bytes) and an inter frame.
var (
	vp9Key   = []byte{0x82, 0x49, 0x83, 0x42, 0x00, 0x77, 0xf0, 0x32, 0x34, 0x30, 0x38, 0x24}
	vp9Inter = []byte{0x86, 0x00, 0x40, 0x92}
)

// VP9 payload descriptor bits.
const (
	vp9I = 0x80
	vp9P = 0x40
	vp9L = 0x20
	vp9B = 0x08
	vp9E = 0x04
)

// vp9Picture builds the packets of one picture: for each spatial layer
// (layers > 1: with layer indices), n packets of its frame; the frame is
// the header (key or inter) and then id, layer and packet index bytes.
func vp9Picture(seq uint16, ts uint32, id byte, layers, n int, key bool) []*rtp.Packet {
	var ps []*rtp.Packet
	for sid := range layers {
		for i := range n {
			d := byte(vp9I)
			if !key || sid > 0 {
				d |= vp9P
			}
			if i == 0 {
				d |= vp9B
			}
			if i == n-1 {
				d |= vp9E
			}
			desc := []byte{d, id & 0x7f}
			if layers > 1 {
				desc[0] |= vp9L
				desc = append(desc, byte(sid)<<1, 0) // TID 0, SID, TL0PICIDX
			}
			body := []byte{0xee, id, byte(sid), byte(i)}
			if i == 0 {
				h := vp9Inter
				if key && sid == 0 {
					h = vp9Key
				}
				body = append(append([]byte{}, h...), body...)
			}
			ps = append(ps, &rtp.Packet{
				Header:  rtp.Header{Version: 2, SSRC: 1, SequenceNumber: seq + uint16(len(ps)), Timestamp: ts, Marker: sid == layers-1 && i == n-1},
				Payload: append(desc, body...),
			})
		}
	}
	return ps
}

func runVP9(t *testing.T, ps []*rtp.Packet) ([]Frame, int) {
	t.Helper()
	asks, released := 0, 0
	tr, err := New("video/VP9", 90000, func(*rtp.Packet) { released++ }, func() { asks++ })
	if err != nil {
		t.Fatal(err)
	}
	var out []Frame
	for _, p := range ps {
		tr.Push(p)
		for f, ok := tr.Pop(); ok; f, ok = tr.Pop() {
			out = append(out, f)
		}
	}
	out = append(out, tr.End()...)
	if released != len(ps) {
		t.Errorf("%d packets released, want %d", released, len(ps))
	}
	return out, asks
}

// vp9IDs returns the picture id each frame's data holds (the byte after
// the first 0xee).
func vp9IDs(fs []Frame) []byte {
	var ids []byte
	for _, f := range fs {
		i := bytes.IndexByte(f.Data, 0xee)
		if i < 0 || i+1 >= len(f.Data) {
			ids = append(ids, 0xff)
			continue
		}
		ids = append(ids, f.Data[i+1])
	}
	return ids
}

func TestVP9LossWaitsForKeyframe(t *testing.T) {
	var pics [][]*rtp.Packet
	seq := uint16(65000)
	for i := range 60 {
		ps := vp9Picture(seq, uint32(3000*i), byte(i), 1, 3, i == 0 || i == 30)
		seq += uint16(len(ps))
		pics = append(pics, ps)
	}
	pics[10] = pics[10][1:] // its first packet: the rest begins no frame
	fs, asks := runVP9(t, flat(pics))
	want := append(rangeIDs(0, 10), rangeIDs(30, 60)...)
	if got := vp9IDs(fs); !bytes.Equal(got, want) || asks != 1 {
		t.Errorf("frames %v, %d asks; want %v and one ask", got, asks, want)
	}
	for _, f := range fs {
		id := f.Data[bytes.IndexByte(f.Data, 0xee)+1]
		if key := id == 0 || id == 30; f.Keyframe != key {
			t.Errorf("frame %d: keyframe %v", id, f.Keyframe)
		}
		if f.Keyframe && (f.Width != 1920 || f.Height != 804) {
			t.Errorf("keyframe %d: %dx%d, want 1920x804", id, f.Width, f.Height)
		}
	}
}

// A stream starting on an inter frame asks for a keyframe at once and
// writes from the keyframe on.
func TestVP9StartsOnKeyframe(t *testing.T) {
	var ps []*rtp.Packet
	for i := range 10 {
		ps = append(ps, vp9Picture(uint16(100+2*i), uint32(3000*i), byte(i), 1, 2, i == 4)...)
	}
	fs, asks := runVP9(t, ps)
	if got := vp9IDs(fs); !bytes.Equal(got, rangeIDs(4, 10)) || asks != 1 {
		t.Errorf("frames %v, %d asks; want 4..9 and one ask", got, asks)
	}
}

// A picture of two spatial layers becomes one superframe; a picture whose
// base layer is lost is not written.
func TestVP9SpatialLayersSuperframe(t *testing.T) {
	var pics [][]*rtp.Packet
	seq := uint16(7)
	for i := range 40 {
		ps := vp9Picture(seq, uint32(3000*i), byte(i), 2, 2, i == 0 || i == 20)
		seq += uint16(len(ps))
		pics = append(pics, ps)
	}
	pics[5] = pics[5][2:] // spatial layer 0
	fs, asks := runVP9(t, flat(pics))
	want := append(rangeIDs(0, 5), rangeIDs(20, 40)...)
	if got := vp9IDs(fs); !bytes.Equal(got, want) || asks != 1 {
		t.Fatalf("frames %v, %d asks; want %v and one ask", got, asks, want)
	}
	for _, f := range fs {
		// Two frames of the header and 8 bytes (2 packets x 4), then the
		// index: marker, two one-byte sizes, marker.
		h := len(vp9Inter)
		if f.Keyframe {
			h = len(vp9Key)
		}
		n0, n1 := h+8, len(vp9Inter)+8
		d := f.Data
		if len(d) != n0+n1+4 {
			t.Fatalf("superframe of %d bytes, want %d", len(d), n0+n1+4)
		}
		idx := d[n0+n1:]
		if want := []byte{0xc1, byte(n0), byte(n1), 0xc1}; !bytes.Equal(idx, want) {
			t.Fatalf("superframe index % x, want % x", idx, want)
		}
		if d[n0] != vp9Inter[0] {
			t.Fatalf("second frame starts % x", d[n0:n0+2])
		}
	}
}

func TestSuperframeIndex(t *testing.T) {
	data := make([]byte, 300+5)
	got := superframe(append([]byte{}, data...), []int{300, 5})
	want := append(append([]byte{}, data...), 0xc9, 0x2c, 0x01, 0x05, 0x00, 0xc9)
	if !bytes.Equal(got, want) {
		t.Errorf("index % x, want % x", got[len(data):], want[len(data):])
	}
	if superframe(make([]byte, 10), []int{4, 5}) != nil {
		t.Error("sizes not adding up accepted")
	}
	if superframe(make([]byte, 9), []int{1, 1, 1, 1, 1, 1, 1, 1, 1}) != nil {
		t.Error("9 frames accepted")
	}
}

// A keyframe needs both the descriptor's P bit clear and the frame
// header's key flag: an intra-only or inter frame with P clear is not one,
// nor a key header in a packet marked inter-picture predicted. (The loss
// is given up 500 ms on: the odd pictures come after that.)
func TestVP9KeyframeNeedsBoth(t *testing.T) {
	var ps []*rtp.Packet
	for i := range 40 {
		pic := vp9Picture(uint16(100+2*i), uint32(3000*i), byte(i), 1, 2, i == 0 || i == 30)
		switch i {
		case 20: // P clear, inter header
			pic[0].Payload[0] &^= vp9P
		case 22: // P set, key header
			pic[0].Payload[0] |= vp9P
			pic[0].Payload = append(pic[0].Payload[:2], append(append([]byte{}, vp9Key...), pic[0].Payload[2+len(vp9Inter):]...)...)
		}
		ps = append(ps, pic...)
	}
	ps = append(ps[:2*2:2*2], ps[2*2+1:]...) // picture 2 loses its last packet
	fs, _ := runVP9(t, ps)
	want := append(rangeIDs(0, 2), rangeIDs(30, 40)...)
	if got := vp9IDs(fs); !bytes.Equal(got, want) {
		t.Errorf("frames %v, want %v", got, want)
	}
}

// The same pictures, popped as they come or all at the end (the
// samplebuilder then builds several samples before the first is popped):
// each superframe's index is its own.
func TestVP9SuperframesPoppedLate(t *testing.T) {
	var ps []*rtp.Packet
	for i := range 8 {
		ps = append(ps, vp9Picture(uint16(7+4*i), uint32(3000*i), byte(i), 2, 2, i == 0)...)
	}
	now, _ := runVP9(t, ps)
	tr, err := New("video/VP9", 90000, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		tr.Push(p)
	}
	late := tr.End()
	if len(now) != 8 || len(late) != 8 {
		t.Fatalf("%d frames popped along, %d at the end; want 8", len(now), len(late))
	}
	for i := range now {
		if !bytes.Equal(now[i].Data, late[i].Data) {
			t.Errorf("frame %d: % x popped along, % x at the end", i, now[i].Data, late[i].Data)
		}
	}
}
