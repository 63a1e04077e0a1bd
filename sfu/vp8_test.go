package sfu

import (
	"testing"

	"github.com/helpcaster/helpcaster/rtpcodec"
)

// vp8Packet builds a VP8 payload with a descriptor carrying a picture id
// (15-bit when wide) and optionally TL0PICIDX, followed by a key or delta
// frame header.
func vp8Packet(pid uint16, wide bool, tl0 int, key bool) []byte {
	ext := byte(0x80)
	if tl0 >= 0 {
		ext |= 0x40
	}
	p := []byte{0x90, ext}
	if wide {
		p = append(p, 0x80|byte(pid>>8)&0x7f, byte(pid))
	} else {
		p = append(p, byte(pid)&0x7f)
	}
	if tl0 >= 0 {
		p = append(p, byte(tl0))
	}
	if key {
		return append(p, 0x00, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01) // 640x480
	}
	return append(p, 0x01, 0, 0)
}

// TestVP8RewriterSwitch: after a switch, picture ids and TL0PICIDX continue
// from the last ones sent, across the 15-bit, 7-bit and 8-bit wraps.
func TestVP8RewriterSwitch(t *testing.T) {
	cases := []struct {
		name           string
		wide           bool
		lastOld, first uint16 // last id sent on the old layer, first id of the new one
		tl0Old, tl0New int
	}{
		{"15-bit", true, 1000, 20000, 7, 200},
		{"15-bit wrap", true, 0x7fff, 3, 255, 0},
		{"7-bit wrap", false, 127, 50, 10, 10},
		{"no tl0", true, 42, 42, -1, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r vp8Rewriter
			// The first layer passes through unchanged.
			first := vp8Packet(c.lastOld, c.wide, c.tl0Old, true)
			r.rebase(first)
			if !r.identity {
				t.Fatal("first layer is rewritten")
			}
			r.track(first)

			key := vp8Packet(c.first, c.wide, c.tl0New, true)
			r.rebase(key)
			if !r.rewrite(key) {
				t.Fatal("rewrite failed")
			}
			d, _ := rtpcodec.ParseVP8Descriptor(key)
			mask := uint16(0x7fff)
			if !c.wide {
				mask = 0x7f
			}
			if got, want := d.PictureID(key), (c.lastOld+1)&mask; got != want {
				t.Errorf("picture id after switch = %d, want %d", got, want)
			}
			if c.tl0Old >= 0 {
				if got, want := key[d.TL0PICIDXAt], byte(c.tl0Old+1); got != want {
					t.Errorf("TL0PICIDX after switch = %d, want %d", got, want)
				}
			}
			// The next picture of the new layer follows on.
			next := vp8Packet(c.first+1, c.wide, c.tl0New, false)
			r.rewrite(next)
			if got, want := d.PictureID(next), (c.lastOld+2)&mask; got != want {
				t.Errorf("next picture id = %d, want %d", got, want)
			}
			if rtpcodec.IsKeyframe(mimeVP8, next) || !rtpcodec.IsKeyframe(mimeVP8, key) {
				t.Error("rewriting changed the frame type")
			}
		})
	}
}

func TestChooseLayer(t *testing.T) {
	all := [maxLayers]bool{true, true, true}
	cases := []struct {
		name string
		av   [maxLayers]bool
		max  int
		want int
	}{
		{"all, full wanted", all, layerFull, layerFull},
		{"all, half wanted", all, layerHalf, layerHalf},
		{"all, quarter wanted", all, layerQuarter, layerQuarter},
		{"top missing", [maxLayers]bool{true, true, false}, layerFull, layerHalf},
		{"only top, low wanted", [maxLayers]bool{false, false, true}, layerQuarter, layerFull},
		{"gap", [maxLayers]bool{true, false, true}, layerHalf, layerQuarter},
		{"none", [maxLayers]bool{}, layerFull, layerNone},
		{"single layer track", [maxLayers]bool{true}, layerFull, layerQuarter},
	}
	for _, c := range cases {
		if got := chooseLayer(c.av, c.max); got != c.want {
			t.Errorf("%s: chooseLayer = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestLayerOfRID(t *testing.T) {
	for rid, want := range map[string]int{"": 0, "q": 0, "h": 1, "f": 2, "0": 0, "1": 1, "2": 2} {
		if got, ok := layerOfRID(rid); !ok || got != want {
			t.Errorf("layerOfRID(%q) = %d %v, want %d", rid, got, ok, want)
		}
	}
	if _, ok := layerOfRID("hi"); ok {
		t.Error("unknown rid accepted")
	}
}

// FuzzVP8Rewrite: rebasing, rewriting and tracking any payload never
// panics, and a rewritten descriptor keeps its layout.
func FuzzVP8Rewrite(f *testing.F) {
	f.Add(vp8Packet(300, true, 5, true), vp8Packet(7, true, 200, true))
	f.Add(vp8Packet(3, false, -1, false), vp8Packet(127, false, -1, false))
	f.Add([]byte{0x80}, []byte{0x90, 0xff, 0x80})
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var r vp8Rewriter
		r.rebase(first)
		r.track(first)
		r.rebase(second)
		q := append([]byte(nil), second...)
		ok := r.rewrite(q)
		r.track(q)
		before, okBefore := rtpcodec.ParseVP8Descriptor(second)
		after, okAfter := rtpcodec.ParseVP8Descriptor(q)
		if ok != okBefore || okAfter != okBefore || after != before {
			t.Fatalf("rewriting % x gave % x: descriptor %+v %v became %+v %v", second, q, before, okBefore, after, okAfter)
		}
	})
}
