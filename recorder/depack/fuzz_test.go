package depack

import (
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"
)

// FuzzDepack feeds a Track packets made from arbitrary bytes: each record
// is a 2-byte sequence step, a 4-byte timestamp, a flags byte (bit 0:
// marker, bit 1: SSRC 2; in the first record only, the codec: bit 7 Opus,
// else bit 6 VP9, else bit 5 H.264, else VP8), a length byte and that many
// payload bytes. Nothing may panic, every packet must be released, a video
// track's first frame must be a keyframe, and an H.264 frame must be
// AVCC NAL units, a keyframe with its configuration record.
func FuzzDepack(f *testing.F) {
	rec := func(step uint16, ts uint32, flags byte, payload ...byte) []byte {
		b := binary.BigEndian.AppendUint16(nil, step)
		b = binary.BigEndian.AppendUint32(b, ts)
		return append(append(b, flags, byte(len(payload))), payload...)
	}
	var seed []byte
	seed = append(seed, rec(1, 1000, 0, 0x10, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00)...)
	seed = append(seed, rec(1, 1000, 1, 0x00, 0xee)...)
	seed = append(seed, rec(2, 4000, 1, 0x10, 0x01)...)
	seed = append(seed, rec(0xffff, 4000, 3, 0x90, 0x80, 0x81, 0x23, 0x01)...)
	f.Add(seed)
	f.Add(rec(1, 0, 0x80, 0xfc, 1, 2))
	// H.264: a STAP-A of an SPS (320x240) and a PPS, an IDR in an FU-A,
	// then an inter picture.
	sps := []byte{0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x24, 0x80}
	stap := append([]byte{0x78, 0x00, byte(len(sps))}, sps...)
	stap = append(stap, 0x00, 0x04, 0x68, 0xcb, 0x83, 0xcb)
	seed = append(rec(1, 9000, 0x20, stap...), rec(1, 9000, 0, 0x7c, 0x85, 0x88, 0x84)...)
	seed = append(seed, rec(1, 9000, 1, 0x7c, 0x45, 0x21, 0x00)...)
	seed = append(seed, rec(1, 12000, 1, 0x41, 0x9a, 0x02)...)
	f.Add(seed)
	// VP9: a keyframe in two packets, an inter frame.
	seed = rec(1, 100, 0x40, 0x88, 0x82, 0x49, 0x83, 0x42, 0x00, 0x77, 0xf0, 0x32, 0x34)
	seed = append(seed, rec(1, 100, 1, 0x04, 0x01, 0x02)...)
	seed = append(seed, rec(1, 3100, 1, 0x4c, 0x86, 0x00, 0x40)...)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		opus := len(data) > 6 && data[6]&0x80 != 0
		mime := "video/VP8"
		switch {
		case opus:
			mime = "audio/opus"
		case len(data) > 6 && data[6]&0x40 != 0:
			mime = "video/VP9"
		case len(data) > 6 && data[6]&0x20 != 0:
			mime = "video/H264"
		}
		pushed, released := 0, 0
		tr, err := New(mime, 90000, func(*rtp.Packet) { released++ }, func() {})
		if err != nil {
			t.Fatal(err)
		}
		first := true
		pop := func() {
			for fr, ok := tr.Pop(); ok; fr, ok = tr.Pop() {
				if first && !opus && !fr.Keyframe {
					t.Fatalf("first %s frame is not a keyframe", mime)
				}
				first = false
				if mime == "video/H264" {
					checkAVCC(t, fr)
				}
			}
		}
		var seq uint16
		for len(data) >= 8 {
			seq += binary.BigEndian.Uint16(data)
			ts := binary.BigEndian.Uint32(data[2:])
			flags, n := data[6], int(data[7])
			data = data[8:]
			n = min(n, len(data))
			ssrc := uint32(1)
			if flags&2 != 0 {
				ssrc = 2
			}
			p := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc, Marker: flags&1 != 0},
				Payload: append([]byte(nil), data[:n]...)}
			data = data[n:]
			pushed++
			tr.Push(p)
			pop()
		}
		tr.End()
		if released != pushed {
			t.Fatalf("released %d of %d packets", released, pushed)
		}
	})
}

// checkAVCC checks an H.264 frame: AVCC NAL units, and a keyframe's
// configuration record holds one SPS and one PPS.
func checkAVCC(t *testing.T, fr Frame) {
	for b := fr.Data; len(b) > 0; {
		if len(b) < 4 {
			t.Fatalf("AVCC: %d bytes without a length", len(b))
		}
		n := binary.BigEndian.Uint32(b)
		if n == 0 || uint64(n) > uint64(len(b)-4) {
			t.Fatalf("AVCC: NAL unit of %d in %d bytes", n, len(b)-4)
		}
		b = b[4+n:]
	}
	if !fr.Keyframe {
		return
	}
	c := fr.Config
	if len(c) < 8 || c[0] != 1 || c[5] != 0xe1 {
		t.Fatalf("avcC % x", c)
	}
	n := int(binary.BigEndian.Uint16(c[6:]))
	if len(c) < 8+n+3 || c[8]&0x1f != nalSPS || c[8+n] != 1 {
		t.Fatalf("avcC SPS: % x", c)
	}
	m := int(binary.BigEndian.Uint16(c[8+n+1:]))
	if rest := len(c) - (8 + n + 3 + m); rest != 0 && rest != 4 {
		t.Fatalf("avcC PPS: % x", c)
	}
	if fr.Width <= 0 || fr.Height <= 0 {
		t.Fatalf("H.264 keyframe of %dx%d", fr.Width, fr.Height)
	}
}

// FuzzSPS feeds parseSPS arbitrary NAL units: nothing may panic, and what
// it accepts has a plausible picture size, chroma format and bit depths.
// Its corpus (testdata/fuzz/FuzzSPS) holds x264's SPS of a 1920x1080 high
// profile stream and of a 330x186 high 4:4:4 one with scaling lists.
func FuzzSPS(f *testing.F) {
	f.Add([]byte{0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x24, 0x80})
	f.Fuzz(func(t *testing.T, nal []byte) {
		info, ok := parseSPS(nal)
		if !ok {
			return
		}
		if info.width <= 0 || info.height <= 0 || info.width > maxPictureSide || info.height > maxPictureSide {
			t.Fatalf("size %dx%d", info.width, info.height)
		}
		if info.chromaFormat < 0 || info.chromaFormat > 3 || info.bitDepthLuma < 8 || info.bitDepthLuma > 14 || info.bitDepthChroma < 8 || info.bitDepthChroma > 14 {
			t.Fatalf("format %+v", info)
		}
	})
}
