package depack

import (
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"
)

// FuzzDepack feeds a Track packets made from arbitrary bytes: each record
// is a 2-byte sequence step, a 4-byte timestamp, a flags byte (bit 0:
// marker, bit 1: SSRC 2, bit 7: Opus), a length byte and that many payload
// bytes. Nothing may panic, every packet must be released, and a VP8
// track's first frame must be a keyframe.
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
	f.Fuzz(func(t *testing.T, data []byte) {
		opus := len(data) > 6 && data[6]&0x80 != 0
		mime := "video/VP8"
		if opus {
			mime = "audio/opus"
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
					t.Fatalf("first VP8 frame is not a keyframe")
				}
				first = false
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
