package depack

import (
	"bytes"
	"testing"

	"github.com/pion/rtp"
)

// vp8 builds the packets of one VP8 frame: n packets, the first with the S
// bit, the last with the marker; key makes it a keyframe. Each packet's
// payload after the one-byte descriptor is frame id, packet index.
func vp8(seq uint16, ts uint32, id byte, n int, key bool) []*rtp.Packet {
	var ps []*rtp.Packet
	for i := range n {
		desc := byte(0)
		if i == 0 {
			desc = 0x10
		}
		tag := byte(0x01) // inter frame
		if key {
			tag = 0x00
		}
		p := &rtp.Packet{
			Header:  rtp.Header{Version: 2, SequenceNumber: seq + uint16(i), Timestamp: ts, SSRC: 1, Marker: i == n-1},
			Payload: []byte{desc, tag, id, byte(i)},
		}
		if i > 0 {
			p.Payload[1] = 0xee
		}
		ps = append(ps, p)
	}
	return ps
}

// frames is a run of VP8 frames, 3 packets each, starting at seq and ts;
// keyAt says which are keyframes.
func frames(seq uint16, ts uint32, count int, keyAt ...int) [][]*rtp.Packet {
	var out [][]*rtp.Packet
	for i := range count {
		key := false
		for _, k := range keyAt {
			key = key || k == i
		}
		out = append(out, vp8(seq+uint16(3*i), ts+uint32(3000*i), byte(i), 3, key))
	}
	return out
}

type result struct {
	ids  []byte
	asks int
	tr   *Track
}

// run pushes packets in the given order, flushes, and returns the ids of
// the frames popped.
func run(t *testing.T, order []*rtp.Packet) result {
	t.Helper()
	var r result
	released := 0
	tr, err := New("video/VP8", 90000, func(*rtp.Packet) { released++ }, func() { r.asks++ })
	if err != nil {
		t.Fatal(err)
	}
	r.tr = tr
	pop := func() {
		for f, ok := tr.Pop(); ok; f, ok = tr.Pop() {
			if len(f.Data) < 2 {
				t.Fatalf("frame of %d bytes", len(f.Data))
			}
			r.ids = append(r.ids, f.Data[1])
			n := bytes.Count(f.Data, []byte{0xee})
			if n != 2 {
				t.Errorf("frame %d holds %d continuation packets, want 2", f.Data[1], n)
			}
		}
	}
	for _, p := range order {
		tr.Push(p)
		pop()
	}
	for _, f := range tr.End() {
		r.ids = append(r.ids, f.Data[1])
	}
	if released != len(order) {
		t.Errorf("%d packets released, want all %d", released, len(order))
	}
	return r
}

func flat(fs [][]*rtp.Packet) []*rtp.Packet {
	var out []*rtp.Packet
	for _, f := range fs {
		out = append(out, f...)
	}
	return out
}

func ids(n ...int) []byte {
	var out []byte
	for _, i := range n {
		out = append(out, byte(i))
	}
	return out
}

func rangeIDs(from, to int) []byte {
	var out []byte
	for i := from; i < to; i++ {
		out = append(out, byte(i))
	}
	return out
}

func TestInOrder(t *testing.T) {
	r := run(t, flat(frames(100, 1000, 10, 0)))
	if !bytes.Equal(r.ids, rangeIDs(0, 10)) || r.asks != 0 {
		t.Errorf("frames %v asks %d, want 0..9 and none", r.ids, r.asks)
	}
}

func TestReorder(t *testing.T) {
	ps := flat(frames(100, 1000, 10, 0))
	ps[4], ps[5] = ps[5], ps[4]     // inside frame 1
	ps[8], ps[9] = ps[9], ps[8]     // across frames 2 and 3
	ps[15], ps[17] = ps[17], ps[15] // frame 5, last before first
	r := run(t, ps)
	if !bytes.Equal(r.ids, rangeIDs(0, 10)) || r.asks != 0 {
		t.Errorf("frames %v asks %d, want 0..9 and none", r.ids, r.asks)
	}
}

func TestLossInsideFrameWaitsForKeyframe(t *testing.T) {
	for _, lost := range []int{0, 1, 2} { // first, middle, last packet of frame 3
		// 60 frames: the reorder window (500 ms) passes, so the
		// samplebuilder gives the lost packet up before the end.
		fs := frames(100, 1000, 60, 0, 8)
		ps := flat(fs)
		i := 3*3 + lost
		ps = append(ps[:i:i], ps[i+1:]...)
		r := run(t, ps)
		want := append(rangeIDs(0, 3), rangeIDs(8, 60)...)
		if !bytes.Equal(r.ids, want) {
			t.Errorf("lost packet %d of frame 3: frames %v, want %v", lost, r.ids, want)
		}
		if r.asks != 1 {
			t.Errorf("lost packet %d of frame 3: %d keyframe asks, want 1", lost, r.asks)
		}
		if s := r.tr.Stats(); s.SkippedFrames+s.LostPackets == 0 {
			t.Errorf("stats %+v count nothing lost", s)
		}
	}
}

func TestStartsOnKeyframe(t *testing.T) {
	r := run(t, flat(frames(100, 1000, 10, 4)))
	if !bytes.Equal(r.ids, rangeIDs(4, 10)) || r.asks != 1 {
		t.Errorf("frames %v asks %d, want 4..9 and one ask at the start", r.ids, r.asks)
	}
}

func TestSequenceWrap(t *testing.T) {
	ps := flat(frames(65530, 1000, 6, 0)) // wraps inside frame 2
	ps[6], ps[7] = ps[7], ps[6]           // 65535 and 0 swapped
	r := run(t, ps)
	if !bytes.Equal(r.ids, rangeIDs(0, 6)) || r.asks != 0 {
		t.Errorf("frames %v asks %d, want 0..5 and none", r.ids, r.asks)
	}
}

func TestTimestampWrap(t *testing.T) {
	fs := frames(100, 0xffffffff-6000+1, 6, 0) // wraps at frame 2
	r := run(t, flat(fs))
	if !bytes.Equal(r.ids, rangeIDs(0, 6)) || r.asks != 0 {
		t.Errorf("frames %v asks %d, want 0..5 and none", r.ids, r.asks)
	}
	if fs[2][0].Timestamp != 0 {
		t.Fatalf("frame 2 at %d, want the wrap at 0", fs[2][0].Timestamp)
	}
}

func TestSSRCChangeWaitsForKeyframe(t *testing.T) {
	a := flat(frames(100, 1000, 4, 0))
	b := flat(frames(5000, 777777, 6, 3)) // the other layer: keyframe at its frame 3
	for _, p := range b {
		p.SSRC = 2
		p.Payload[2] += 100
	}
	for _, keepLast := range []bool{false, true} {
		asks := 0
		tr, err := New("video/VP8", 90000, nil, func() { asks++ })
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		pop := func() {
			for f, ok := tr.Pop(); ok; f, ok = tr.Pop() {
				got = append(got, f.Data[1])
			}
		}
		for _, p := range a {
			tr.Push(p)
			pop()
		}
		if keepLast { // what the Recording does: end the old layer first
			for _, f := range tr.End() {
				got = append(got, f.Data[1])
			}
		}
		for i, p := range b {
			if changed := tr.Push(p); changed != (i == 0 && !keepLast) {
				t.Errorf("packet %d of the new layer: Push says changed=%v", i, changed)
			}
			pop()
		}
		for _, f := range tr.End() {
			got = append(got, f.Data[1])
		}
		want := append(rangeIDs(0, 3), rangeIDs(103, 106)...)
		if keepLast {
			want = append(rangeIDs(0, 4), rangeIDs(103, 106)...)
		}
		if !bytes.Equal(got, want) || asks != 1 {
			t.Errorf("flush first %v: frames %v asks %d, want %v and one ask", keepLast, got, asks, want)
		}
		if want := map[bool]uint64{false: 1, true: 0}[keepLast]; tr.Stats().SSRCChanges != want {
			t.Errorf("SSRC changes %d, want %d", tr.Stats().SSRCChanges, want)
		}
	}
}

func TestOpusLossIsAGap(t *testing.T) {
	asks := 0
	tr, err := New("audio/opus", 48000, nil, func() { asks++ })
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for i := range 10 {
		if i == 4 {
			continue
		}
		tr.Push(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(65533 + i), Timestamp: uint32(960 * i), SSRC: 9, Marker: true},
			Payload: []byte{0xfc, byte(i)}})
		for f, ok := tr.Pop(); ok; f, ok = tr.Pop() {
			got = append(got, f.Data[1])
		}
	}
	for _, f := range tr.End() {
		got = append(got, f.Data[1])
	}
	if want := ids(0, 1, 2, 3, 5, 6, 7, 8, 9); !bytes.Equal(got, want) || asks != 0 {
		t.Errorf("audio %v asks %d, want %v and none", got, asks, want)
	}
}

func TestUnsupported(t *testing.T) {
	for _, mime := range []string{"video/AV1", "video/H265", "audio/PCMU"} {
		if _, err := New(mime, 90000, nil, nil); err == nil {
			t.Errorf("%s accepted", mime)
		}
	}
}

func TestSequenceJumpRestarts(t *testing.T) {
	a := flat(frames(100, 1000, 5, 0))
	b := flat(frames(100+15+30000, 1000+5*3000, 5, 2)) // keyframe at its frame 2
	for _, p := range b {
		p.Payload[2] += 5
	}
	r := run(t, append(a, b...))
	want := append(rangeIDs(0, 5), rangeIDs(7, 10)...)
	if !bytes.Equal(r.ids, want) || r.asks != 1 || r.tr.Stats().SeqJumps != 1 {
		t.Errorf("frames %v asks %d jumps %d, want %v, one ask, one jump", r.ids, r.asks, r.tr.Stats().SeqJumps, want)
	}
}

func TestVeryLatePacketDropped(t *testing.T) {
	ps := flat(frames(1000, 1000, 5, 0))
	late := vp8(1000-600, 500, 99, 1, true)[0]
	r := run(t, append(ps[:6:6], append([]*rtp.Packet{late}, ps[6:]...)...))
	if !bytes.Equal(r.ids, rangeIDs(0, 5)) || r.tr.Stats().LostPackets != 1 {
		t.Errorf("frames %v stats %+v, want 0..4 and the late packet counted lost", r.ids, r.tr.Stats())
	}
}
