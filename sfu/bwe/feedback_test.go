package bwe

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// feedbackCases are hand-picked packets; randomFeedback adds many more.
func feedbackCases() []struct {
	name  string
	base  uint16
	ref   uint32
	st    []status
	style chunkStyle
} {
	recvRun := func(n int, d int64) []status {
		s := make([]status, n)
		for i := range s {
			s[i] = status{recv: true, delta: d}
		}
		return s
	}
	mixed := []status{{true, 4}, {false, 0}, {true, 0}, {true, 255}, {false, 0}, {false, 0}, {true, 1},
		{true, 3}, {false, 0}, {true, 8}, {true, 9}, {true, 2}, {false, 0}, {true, 7}, {true, 5}, {true, 6}}
	large := []status{{true, 256}, {true, -1}, {false, 0}, {true, -32768}, {true, 32767}, {true, 0}, {false, 0}, {true, 12}, {true, -400}}
	return []struct {
		name  string
		base  uint16
		ref   uint32
		st    []status
		style chunkStyle
	}{
		{"run length received", 100, 5, recvRun(40, 20), styleAuto},
		{"run length lost", 7, 1, append(make([]status, 30), status{true, 3}), styleRun},
		{"one-bit vectors", 1000, 77, mixed, style1Bit},
		{"two-bit vectors", 1000, 77, mixed, style2Bit},
		{"large and negative deltas", 5, 0x7fffff, large, styleAuto},
		{"large deltas run length", 5, 9, large, styleRun},
		{"wraparound of base", 65530, 3, append(recvRun(10, 40), mixed...), styleAuto},
		{"base 65535", 65535, 3, mixed, style2Bit},
		{"negative reference time", 1, 0xffffff, recvRun(3, 1), styleAuto},
		{"reference time -2^23", 1, 0x800000, recvRun(3, 1), styleAuto},
		{"longest run", 9, 12, recvRun(8191+20, 0), styleRun},
		{"many short chunks", 9, 12, append(mixed, large...), styleMaxRun},
		{"single received", 42, 42, recvRun(1, 17), styleAuto},
		{"empty", 42, 42, nil, styleAuto},
		{"padding 1", 1, 1, recvRun(5, 1), style1Bit},   // 22+5 = 27 bytes
		{"padding 2", 1, 1, recvRun(6, 1), style2Bit},   // 22+6 = 28: none
		{"padding 3", 1, 1, recvRun(3, 1), style2Bit},   // 22+3 = 25
		{"padding 0", 1, 1, recvRun(2, 300), style2Bit}, // 22+4 = 26
	}
}

// checkAgainstPion parses b with both parsers and compares every field.
func checkAgainstPion(t *testing.T, b []byte) {
	t.Helper()
	var want rtcp.TransportLayerCC
	perr := want.Unmarshal(b)
	got, err := parseAll(b)
	if err != nil {
		t.Fatalf("ParseFeedback: %v (packet %x)", err, b)
	}
	if perr != nil {
		// pion needs a byte after the last chunk; fine when nothing was
		// received (no deltas) and the chunks fill the packet.
		if slices.Contains(got.recv, true) {
			t.Fatalf("pion rejects its own packet: %v", perr)
		}
		return
	}
	comparePion(t, got, &want)
}

func comparePion(t *testing.T, got parsed, want *rtcp.TransportLayerCC) {
	t.Helper()
	if got.h.BaseSeq != want.BaseSequenceNumber || got.h.Count != int(want.PacketStatusCount) ||
		got.h.FbCount != want.FbPktCount || got.h.MediaSSRC != want.MediaSSRC || got.h.SenderSSRC != want.SenderSSRC {
		t.Fatalf("header %+v, pion %+v", got.h, want)
	}
	if ref := time.Duration(signExtend24(want.ReferenceTime)) * 64 * time.Millisecond; got.h.RefTime != ref {
		t.Fatalf("reference time %v, want %v", got.h.RefTime, ref)
	}
	if len(got.seqs) != got.h.Count {
		t.Fatalf("%d statuses for count %d", len(got.seqs), got.h.Count)
	}
	for i, s := range got.seqs {
		if s != got.h.BaseSeq+uint16(i) {
			t.Fatalf("status %d has seq %d, base %d", i, s, got.h.BaseSeq)
		}
	}
	if w := pionStatuses(want); !slices.Equal(got.recv, w) {
		t.Fatalf("statuses\n got %v\nwant %v", got.recv, w)
	}
	var wd []int64
	for _, d := range want.RecvDeltas {
		wd = append(wd, d.Delta)
	}
	if !slices.Equal(got.deltas, wd) {
		t.Fatalf("deltas\n got %v\nwant %v", got.deltas, wd)
	}
}

func TestParseFeedbackMatchesPion(t *testing.T) {
	for _, c := range feedbackCases() {
		t.Run(c.name, func(t *testing.T) {
			b := buildTWCC(t, c.base, c.ref, 3, c.st, c.style)
			checkAgainstPion(t, b)
			got, _ := parseAll(b)
			var wantDeltas []int64
			for _, s := range c.st {
				if s.recv {
					wantDeltas = append(wantDeltas, s.delta*250)
				}
			}
			if !slices.Equal(got.deltas, wantDeltas) {
				t.Fatalf("deltas %v, built with %v", got.deltas, wantDeltas)
			}
		})
	}
}

// randomStatuses returns n statuses with runs, losses, small, large and
// negative deltas.
func randomStatuses(r *rand.Rand, n int) []status {
	st := make([]status, n)
	for i := 0; i < n; {
		run := 1 + r.IntN(20)
		kind := r.IntN(4)
		for j := 0; j < run && i < n; j, i = j+1, i+1 {
			switch kind {
			case 0:
			case 1, 2:
				st[i] = status{true, int64(r.IntN(256))}
			default:
				st[i] = status{true, int64(r.IntN(65536) - 32768)}
			}
			if r.IntN(10) == 0 {
				st[i] = status{}
			}
		}
	}
	return st
}

func TestParseFeedbackRandomMatchesPion(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		n := r.IntN(300)
		if i%50 == 0 {
			n = r.IntN(20000)
		}
		b := buildTWCC(t, uint16(r.Uint32()), r.Uint32(), uint8(i), randomStatuses(r, n), chunkStyle(r.IntN(5)))
		checkAgainstPion(t, b)
	}
}

func TestParseFeedbackTruncated(t *testing.T) {
	for _, c := range feedbackCases() {
		b := buildTWCC(t, c.base, c.ref, 0, c.st, c.style)
		for n := range len(b) {
			// As is: the length field no longer matches.
			if _, err := ParseFeedback(b[:n], nil); err == nil {
				t.Fatalf("%s: truncation to %d of %d accepted", c.name, n, len(b))
			}
			if n%4 != 0 || n < 4 {
				continue
			}
			// With a consistent length field and no padding: the content
			// itself is short.
			cut := slices.Clone(b[:n])
			cut[0] &^= 0x20
			binary.BigEndian.PutUint16(cut[2:], uint16(n/4-1))
			_, err := ParseFeedback(cut, func(uint16, bool, time.Duration) {
				t.Fatalf("%s: callback on a rejected packet", c.name)
			})
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("%s: truncation to %d of %d: err %v, want ErrTruncated", c.name, n, len(b), err)
			}
		}
	}
}

func TestParseFeedbackMalformed(t *testing.T) {
	valid := buildTWCC(t, 10, 1, 0, []status{{true, 1}, {false, 0}, {true, 300}, {true, 2}}, style2Bit)
	if _, err := ParseFeedback(valid, nil); err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(slices.Clone(valid)) }
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"nil", nil, ErrTruncated},
		{"three bytes", valid[:3], ErrTruncated},
		{"header only", edit(func(b []byte) []byte { b[3] = 0; return b[:4] }), ErrTruncated},
		{"version 1", edit(func(b []byte) []byte { b[0] = b[0]&0x3f | 0x40; return b }), ErrNotFeedback},
		{"PT 206", edit(func(b []byte) []byte { b[1] = 206; return b }), ErrNotFeedback},
		{"FMT 1 (NACK)", edit(func(b []byte) []byte { b[0] = b[0]&0xe0 | 1; return b }), ErrNotFeedback},
		{"trailing bytes", append(slices.Clone(valid), 0, 0, 0, 0), ErrLength},
		{"length too big", edit(func(b []byte) []byte { b[3]++; return b }), ErrLength},
		{"length too small", edit(func(b []byte) []byte { b[3]--; return b }), ErrLength},
		{"count 65535", edit(func(b []byte) []byte { b[14], b[15] = 0xff, 0xff; return b }), ErrTruncated},
		{"count 8", edit(func(b []byte) []byte { b[15] = 8; return b }), ErrTruncated},
		{"padding zero", edit(func(b []byte) []byte { b[0] |= 0x20; b[len(b)-1] = 0; return b }), ErrPadding},
		{"padding too long", edit(func(b []byte) []byte { b[0] |= 0x20; b[len(b)-1] = 255; return b }), ErrPadding},
		{"padding eats deltas", edit(func(b []byte) []byte { b[0] |= 0x20; b[len(b)-1] = 4; return b }), ErrTruncated},
		{"reserved in vector", edit(func(b []byte) []byte { b[20] |= 0x30; return b }), ErrReserved},
		{"reserved run", edit(func(b []byte) []byte { b[20], b[21] = 0x60, 4; return b }), ErrReserved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFeedback(tt.b, func(uint16, bool, time.Duration) { t.Fatal("callback on a rejected packet") })
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
}

// A packet that reports only lost packets ends with its last chunk. pion
// wants one more byte; we accept it (documented on ParseFeedback).
func TestParseFeedbackOnlyLost(t *testing.T) {
	b := buildTWCC(t, 1, 1, 0, make([]status, 5), styleRun) // 20 + one chunk = 22, padded to 24
	b = b[:22+2]
	binary.BigEndian.PutUint16(b[22:], 5) // second chunk: lost, run of 5 -> count 10 fits exactly
	b[0] &^= 0x20
	binary.BigEndian.PutUint16(b[14:], 10)
	got, err := parseAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.recv) != 10 || slices.Contains(got.recv, true) {
		t.Fatalf("statuses %v", got.recv)
	}
	var p rtcp.TransportLayerCC
	if p.Unmarshal(b) == nil {
		t.Log("pion now accepts this packet; the note on ParseFeedback can go")
	}
}

func TestParseFeedbackAllocs(t *testing.T) {
	b := buildTWCC(t, 65500, 7, 0, randomStatuses(rand.New(rand.NewPCG(3, 4)), 100), styleAuto)
	var n int
	fn := func(_ uint16, received bool, _ time.Duration) {
		if received {
			n++
		}
	}
	if a := testing.AllocsPerRun(100, func() {
		if _, err := ParseFeedback(b, fn); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("%v allocations per parse", a)
	}
}
