package rtpcodec

import "testing"

// vp8Key is the first packet of a 640x480 key frame whose descriptor
// carries a 15-bit picture id (5).
var vp8Key = []byte{0x90, 0x80, 0x80, 0x05, 0x00, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01}

func TestVP8KeyframeSize(t *testing.T) {
	w, h, ok := VP8KeyframeSize(vp8Key)
	if !ok || w != 640 || h != 480 {
		t.Fatalf("size = %dx%d %v, want 640x480", w, h, ok)
	}
	delta := []byte{0x90, 0x80, 0x80, 0x05, 0x01, 0, 0}
	if _, _, ok := VP8KeyframeSize(delta); ok {
		t.Fatal("delta frame reported a size")
	}
	bad := append([]byte(nil), vp8Key...)
	bad[len(bad)-7] = 0 // break the start code
	if _, _, ok := VP8KeyframeSize(bad); ok {
		t.Fatal("size read without a start code")
	}
	if _, _, ok := VP8KeyframeSize(vp8Key[:8]); ok {
		t.Fatal("size read from a truncated packet")
	}
}

func TestParseVP8Descriptor(t *testing.T) {
	cases := []struct {
		name string
		p    []byte
		want VP8Descriptor
		pid  uint16
		tid  int
		sync bool
	}{
		{"no X", []byte{0x10, 0x50}, VP8Descriptor{PayloadHeader: 1}, 0, -1, false},
		{"X, no fields", []byte{0x90, 0x00, 0x50}, VP8Descriptor{PayloadHeader: 2}, 0, -1, false},
		{"7-bit picture id", []byte{0x90, 0x80, 0x05, 0x50}, VP8Descriptor{PictureIDAt: 2, PayloadHeader: 3}, 5, -1, false},
		{"15-bit picture id", []byte{0x90, 0x80, 0x81, 0x23, 0x50},
			VP8Descriptor{PictureIDAt: 2, PictureID15: true, PayloadHeader: 4}, 0x123, -1, false},
		{"all fields", []byte{0x90, 0xf0, 0x81, 0x03, 0x05, 0xa1, 0x50},
			VP8Descriptor{PictureIDAt: 2, PictureID15: true, TL0PICIDXAt: 4, TIDAt: 5, HasTID: true, PayloadHeader: 6}, 0x103, 2, true},
		{"K without T", []byte{0x90, 0x10, 0x02, 0x50}, VP8Descriptor{TIDAt: 2, PayloadHeader: 3}, 0, -1, false},
		{"descriptor only", []byte{0x90, 0x40, 0x07}, VP8Descriptor{TL0PICIDXAt: 2, PayloadHeader: 3}, 0, -1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, ok := ParseVP8Descriptor(c.p)
			if !ok || d != c.want {
				t.Fatalf("ParseVP8Descriptor(% x) = %+v %v, want %+v", c.p, d, ok, c.want)
			}
			if d.PictureIDAt != 0 && d.PictureID(c.p) != c.pid {
				t.Errorf("picture id %d, want %d", d.PictureID(c.p), c.pid)
			}
			tid, sync, ok := d.Temporal(c.p)
			if ok != (c.tid >= 0) || ok && (tid != c.tid || sync != c.sync) {
				t.Errorf("Temporal = %d %v %v, want %d %v", tid, sync, ok, c.tid, c.sync)
			}
		})
	}
	for _, short := range [][]byte{nil, {0x90}, {0x90, 0x80}, {0x90, 0x80, 0x80}, {0x90, 0xc0, 0x05}, {0x90, 0x20}} {
		if d, ok := ParseVP8Descriptor(short); ok {
			t.Errorf("ParseVP8Descriptor(% x) = %+v, want not ok", short, d)
		}
	}
}

// TestVP8SetPictureID: a written picture id reads back, keeps its width
// and leaves the octets around it alone.
func TestVP8SetPictureID(t *testing.T) {
	for _, c := range []struct {
		name     string
		p        []byte
		id, want uint16
	}{
		{"15-bit", []byte{0x90, 0x80, 0x81, 0x23, 0x50}, 0x7abc, 0x7abc},
		{"15-bit wraps at 2^15", []byte{0x90, 0x80, 0x81, 0x23, 0x50}, 0x8001, 1},
		{"7-bit keeps 7 bits", []byte{0x90, 0x80, 0x05, 0x50}, 0x1ff, 0x7f},
	} {
		p := append([]byte(nil), c.p...)
		d, _ := ParseVP8Descriptor(p)
		d.SetPictureID(p, c.id)
		if got := d.PictureID(p); got != c.want {
			t.Errorf("%s: picture id %#x after writing %#x, want %#x", c.name, got, c.id, c.want)
		}
		if again, _ := ParseVP8Descriptor(p); again != d || p[0] != c.p[0] || p[len(p)-1] != c.p[len(c.p)-1] {
			t.Errorf("%s: writing the picture id changed the descriptor: % x", c.name, p)
		}
	}
}

func TestVP8PictureStart(t *testing.T) {
	for p, want := range map[string]bool{"\x10": true, "\x90": true, "\x00": false, "\x11": false, "\x18": false, "": false} {
		if got := VP8PictureStart([]byte(p)); got != want {
			t.Errorf("VP8PictureStart(% x) = %v, want %v", p, got, want)
		}
	}
}

func FuzzVP8Desc(f *testing.F) {
	f.Add(vp8Key)
	f.Add([]byte{0x90, 0xf0, 0x81, 0x03, 0x05, 0xa1, 0x50})
	f.Add([]byte{0x80})
	f.Add([]byte{0x90, 0xff, 0x80})
	f.Fuzz(func(t *testing.T, p []byte) {
		VP8KeyframeSize(p)
		VP8PictureStart(p)
		d, ok := ParseVP8Descriptor(p)
		if !ok {
			return
		}
		if d.PayloadHeader > len(p) {
			t.Fatalf("descriptor longer than the packet")
		}
		d.Temporal(p)
		if d.PictureIDAt != 0 {
			q := append([]byte(nil), p...)
			id := d.PictureID(q) + 1
			d.SetPictureID(q, id)
			if again, ok := ParseVP8Descriptor(q); !ok || again != d {
				t.Fatalf("writing picture id %d changed the descriptor % x to % x", id, p, q)
			}
		}
	})
}
