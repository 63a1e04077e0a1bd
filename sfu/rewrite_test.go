package sfu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSeqNewer(t *testing.T) {
	for _, tc := range []struct {
		a, b uint16
		want bool
	}{
		{1, 0, true},
		{0, 1, false},
		{5, 5, false},
		{0, 65535, true}, // wrap
		{65535, 0, false},
		{10, 65530, true},
		{65530, 10, false},
		{32767, 0, true}, // largest forward step
		{0, 32767, false},
		{32768, 0, false}, // exactly half way: neither is newer
		{0, 32768, false},
		{32768, 1, true},
		{65535, 32768, true},
		{32768, 65535, false},
	} {
		if got := seqNewer(tc.a, tc.b); got != tc.want {
			t.Errorf("seqNewer(%d, %d) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSeqDiff(t *testing.T) {
	for _, tc := range []struct {
		a, b uint16
		want int
	}{
		{0, 0, 0},
		{1, 0, 1},
		{0, 1, -1},
		{0, 65535, 1},
		{65535, 0, -1},
		{5, 65530, 11},
		{32767, 0, 32767},
		{0, 32767, -32767},
		{32768, 0, -32768},
		{0, 32768, -32768},
		{1000, 65535, 1001},
	} {
		if got := seqDiff(tc.a, tc.b); got != tc.want {
			t.Errorf("seqDiff(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestTsDiff(t *testing.T) {
	for _, tc := range []struct {
		a, b uint32
		want int64
	}{
		{0, 0, 0},
		{90000, 0, 90000},
		{0, 90000, -90000},
		{0, 0xffffffff, 1},
		{0xffffffff, 0, -1},
		{100, 0xffffff00, 356},
		{0x7fffffff, 0, 1<<31 - 1},
		{0x80000000, 0, -1 << 31},
		{0, 0x80000000, -1 << 31},
	} {
		if got := tsDiff(tc.a, tc.b); got != tc.want {
			t.Errorf("tsDiff(%#x, %#x) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// seqStep is one call on a seqRewriter in a scenario. in and out are
// relative to the scenario's base numbers, so every scenario runs at several
// places on the 16-bit circle, including across the wrap.
type seqStep struct {
	op  byte // 'r' rewrite, 's' skip, 'b' rebase
	in  int
	out int  // wanted output for 'r'
	ok  bool // wanted ok for 'r'
}

func fwd(in, out int) seqStep { return seqStep{op: 'r', in: in, out: out, ok: true} }
func drop(in int) seqStep     { return seqStep{op: 'r', in: in} }
func skip(in int) seqStep     { return seqStep{op: 's', in: in} }
func rebase(in int) seqStep   { return seqStep{op: 'b', in: in} }

// run forwards in from..to (inclusive) with out = in - off.
func run(from, to, off int) []seqStep {
	var s []seqStep
	for in := from; in <= to; in++ {
		s = append(s, fwd(in, in-off))
	}
	return s
}

func steps(parts ...any) []seqStep {
	var out []seqStep
	for _, p := range parts {
		switch p := p.(type) {
		case seqStep:
			out = append(out, p)
		case []seqStep:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("bad step %T", p))
		}
	}
	return out
}

// seqBases are (incoming, outgoing) start numbers: both near the wrap, one
// near it, and random ones.
func seqBases() [][2]uint16 {
	r := rand.New(rand.NewPCG(1, 2))
	b := [][2]uint16{
		{0, 0},
		{65530, 100},   // incoming wraps
		{100, 65530},   // outgoing wraps
		{65520, 65525}, // both wrap
		{32760, 32770},
	}
	for range 3 {
		b = append(b, [2]uint16{uint16(r.Uint32()), uint16(r.Uint32())})
	}
	return b
}

func checkSeqScenario(t *testing.T, st []seqStep) {
	t.Helper()
	for _, base := range seqBases() {
		in0, out0 := base[0], base[1]
		var r seqRewriter
		r.start(in0, out0)
		if got, ok := r.rewrite(in0); !ok || got != out0 {
			t.Fatalf("base %v: first packet -> %d, %v; want %d", base, got, ok, out0)
		}
		for i, s := range st {
			in := in0 + uint16(s.in)
			switch s.op {
			case 's':
				r.skip(in)
			case 'b':
				r.rebase(in)
			case 'r':
				got, ok := r.rewrite(in)
				want := out0 + uint16(s.out)
				if ok != s.ok || (ok && got != want) {
					if s.ok {
						t.Fatalf("base in=%d out=%d: step %d rewrite(+%d) = %d, %v; want +%d (%d)",
							in0, out0, i, s.in, got-out0, ok, s.out, want)
					}
					t.Fatalf("base in=%d out=%d: step %d rewrite(+%d) = +%d, %v; want dropped",
						in0, out0, i, s.in, got-out0, ok)
				}
			}
		}
	}
}

func TestSeqRewriter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []seqStep
	}{
		{"contiguous", run(1, 3000, 0)},
		{"contiguous across several wraps", run(1, 3*65536+17, 0)},
		{"loss keeps gaps", steps(fwd(1, 1), fwd(4, 4), fwd(5, 5), fwd(9, 9))},
		{"late packets fill gaps", steps(fwd(1, 1), fwd(4, 4), fwd(3, 3), fwd(5, 5), fwd(2, 2))},
		{"reordering", steps(fwd(2, 2), fwd(1, 1), fwd(4, 4), fwd(3, 3), fwd(6, 6), fwd(5, 5))},
		{"duplicates", steps(fwd(1, 1), fwd(1, 1), fwd(0, 0), fwd(2, 2), fwd(1, 1), fwd(2, 2))},
		{"large jump forward", steps(fwd(20000, 20000), fwd(20001, 20001), fwd(19990, 19990))},
		{"late up to maxLateSeq", steps(fwd(maxLateSeq+10, maxLateSeq+10), fwd(10, 10))},
		{"older than maxLateSeq dropped", steps(fwd(maxLateSeq+10, maxLateSeq+10), drop(9), drop(5), fwd(11, 11))},
		{"before start dropped", steps(drop(-1), drop(-2), drop(-maxLateSeq), fwd(1, 1), drop(-1))},
		{"skip newest: no gap", steps(fwd(1, 1), skip(2), fwd(3, 2), fwd(4, 3))},
		{"repeated or late skip ignored", steps(skip(1), skip(1), fwd(2, 1), skip(2), fwd(3, 2))},
		{"lost before skip keep numbers", steps(
			fwd(1, 1), skip(4), fwd(5, 4), fwd(6, 5), // 2 and 3 lost: out 2, 3
			fwd(3, 3), fwd(2, 2),
		)},
		{"late from before skips", steps(
			fwd(1, 1), skip(2), fwd(3, 2), skip(5), fwd(6, 4), skip(7), skip(8), fwd(10, 6),
			fwd(9, 5), fwd(4, 3), fwd(3, 2), fwd(1, 1), fwd(6, 4), fwd(10, 6), fwd(11, 7),
		)},
		{"late skip is ignored", steps(fwd(2, 2), skip(1), fwd(3, 3))},
		{"skip older than maxLateSeq ignored", steps(fwd(2000, 2000), skip(1), fwd(2001, 2001))},
		{"skips in a long run", steps(
			run(1, 20000, 0), skip(20001), skip(20002), run(20003, 20030, 2),
			skip(20031), run(20032, 20070, 3), fwd(20030, 20028), fwd(20000, 20000),
		)},
		{"more than seqHistory skips: no gap", steps(
			fwd(1, 1), skip(2), skip(3), skip(4), skip(5), skip(6), skip(7), skip(8), skip(9),
			skip(10), skip(11), skip(12), fwd(13, 2), fwd(14, 3),
		)},
		{"more than seqHistory spaced skips: oldest forgotten", func() []seqStep {
			// 1 forwarded, 2 lost; then seqHistory skips each followed by a
			// forwarded packet push the start span out of the history.
			s := steps(fwd(1, 1))
			in, off := 3, 0
			for range seqHistory {
				s = append(s, skip(in))
				off++
				in++
				s = append(s, fwd(in, in-off))
				in++
			}
			// 2 is older than every remembered span.
			s = append(s, drop(2), drop(1))
			// The packet forwarded after the first skip (4 -> 3) is in the
			// oldest remembered span and still maps.
			return append(s, fwd(4, 3), fwd(in, in-off))
		}()},
		{"rebase continues at lastOut+1", steps(
			fwd(1, 1), fwd(2, 2), rebase(30000), fwd(30000, 3), fwd(30001, 4),
			drop(2),       // the old source is forgotten
			drop(29999),   // before the new start
			fwd(30003, 6), // loss after rebase keeps the gap
			fwd(30002, 5),
		)},
		{"rebase after skip has no gap", steps(
			fwd(1, 1), skip(2), rebase(-5000), fwd(-5000, 2), fwd(-4999, 3),
		)},
		{"rebase to a lower number", steps(
			run(1, 10, 0), rebase(5), fwd(5, 11), fwd(6, 12), drop(4), fwd(8, 14), fwd(7, 13),
		)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkSeqScenario(t, tc.steps)
		})
	}
}

// A late packet must map correctly however long ago the last offset change
// was: the history's fences are compared with the packet modulo 2^16, so
// once the stream has moved more than 32768 past a fence the comparison
// flips.
func TestSeqRewriterLateAfterLongRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []seqStep
	}{
		{"no skips, 40000 packets, then one reordered", steps(
			run(1, 39997, 0), fwd(39999, 39999), fwd(39998, 39998),
		)},
		{"no skips, reordered at every 8192nd packet", func() []seqStep {
			var s []seqStep
			for in := 1; in < 3*65536; in += 2 {
				if in%8192 == 1 {
					s = append(s, fwd(in+1, in+1), fwd(in, in))
				} else {
					s = append(s, fwd(in, in), fwd(in+1, in+1))
				}
			}
			return s
		}()},
		{"one early skip, late packet one wrap later", steps(
			run(1, 998, 0), skip(999),
			run(1000, 65536+463, 1), fwd(65536+465, 65536+464),
			// 65536+464 is late: it must get 65536+463, not the number
			// already given to 65536+465.
			fwd(65536+464, 65536+463),
		)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkSeqScenario(t, tc.steps)
		})
	}
}

// A burst of padding packets is one offset change for the packets before
// it; it must not use up the history that lets a packet lost just before
// the burst be mapped when it arrives late (e.g. retransmitted).
func TestSeqRewriterSkipBurstKeepsHistory(t *testing.T) {
	for _, burst := range []int{1, seqHistory - 1, seqHistory, seqHistory + 1, 3 * seqHistory} {
		t.Run(fmt.Sprint(burst), func(t *testing.T) {
			s := steps(fwd(1, 1)) // 2 is lost
			for i := range burst {
				s = append(s, skip(3+i))
			}
			next := 3 + burst
			s = append(s, fwd(next, 3), fwd(next+1, 4), fwd(2, 2), fwd(1, 1))
			checkSeqScenario(t, s)
		})
	}
}

func TestSeqRewriterNotStarted(t *testing.T) {
	var r seqRewriter
	r.skip(5)
	for _, in := range []uint16{0, 5, 6, 65535} {
		if out, ok := r.rewrite(in); ok {
			t.Fatalf("rewrite(%d) before start = %d, true", in, out)
		}
	}
	// rebase of a rewriter never started starts it where the source is.
	r.rebase(4242)
	if out, ok := r.rewrite(4242); !ok || out != 4242 {
		t.Fatalf("rewrite after first rebase = %d, %v; want 4242", out, ok)
	}
	if out, ok := r.rewrite(4243); !ok || out != 4243 {
		t.Fatalf("rewrite = %d, %v; want 4243", out, ok)
	}
}

func TestSeqRewriterRestart(t *testing.T) {
	var r seqRewriter
	r.start(100, 200)
	r.rewrite(100)
	r.skip(101)
	r.rewrite(102)
	// start forgets everything, including the old offset.
	r.start(5000, 7)
	for _, tc := range []struct {
		in  uint16
		out uint16
		ok  bool
	}{
		{5000, 7, true}, {5001, 8, true}, {102, 0, false}, {4999, 0, false}, {5003, 10, true}, {5002, 9, true},
	} {
		out, ok := r.rewrite(tc.in)
		if ok != tc.ok || (ok && out != tc.out) {
			t.Fatalf("rewrite(%d) = %d, %v; want %d, %v", tc.in, out, ok, tc.out, tc.ok)
		}
	}
}

func TestTsRewriter(t *testing.T) {
	type op struct {
		rebase bool
		in     uint32
		gap    uint32 // for rebase
		want   uint32 // for rewrite
	}
	rw := func(in, want uint32) op { return op{in: in, want: want} }
	rb := func(in, gap uint32) op { return op{rebase: true, in: in, gap: gap} }
	for _, tc := range []struct {
		name    string
		in, out uint32 // start
		ops     []op
	}{
		{"offset", 1000, 5000, []op{rw(1000, 5000), rw(4000, 8000), rw(3000, 7000)}},
		{"negative offset", 5000, 1000, []op{rw(5000, 1000), rw(95000, 91000)}},
		{"incoming wraps", 0xffffff00, 10, []op{rw(0xffffff00, 10), rw(0xffffffff, 265), rw(0, 266), rw(0x100, 522)}},
		{"outgoing wraps", 10, 0xfffffff0, []op{rw(10, 0xfffffff0), rw(0x19, 0xffffffff), rw(0x1a, 0), rw(0x1000, 0xfe6)}},
		{"rebase with gap", 1000, 50000, []op{
			rw(1000, 50000), rw(4000, 53000), rb(777777, 3000), rw(777777, 56000), rw(780777, 59000),
		}},
		{"rebase with gap 0 moves one tick", 1000, 50000, []op{
			rw(4000, 53000), rb(9, 0), rw(9, 53001), rw(10, 53002),
		}},
		{"rebase from the newest, not the latest", 1000, 50000, []op{
			rw(4000, 53000), rw(2000, 51000), // older (reordered) packet last
			rb(123, 90), rw(123, 53090),
		}},
		{"rebase across wrap", 0, 0xffffff00, []op{
			rw(0xf0, 0xfffffff0), rb(0x80000000, 0x20), rw(0x80000000, 0x10), rw(0x80000010, 0x20),
		}},
		{"newest across wrap", 0xfffffff0, 0xfffffff0, []op{
			rw(0xfffffff0, 0xfffffff0), rw(0x10, 0x10), rw(0xffffffff, 0xffffffff), rb(5, 1), rw(5, 0x11),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r tsRewriter
			r.start(tc.in, tc.out)
			for i, o := range tc.ops {
				if o.rebase {
					r.rebase(o.in, o.gap)
					continue
				}
				if got := r.rewrite(o.in); got != o.want {
					t.Fatalf("op %d: rewrite(%#x) = %#x, want %#x", i, o.in, got, o.want)
				}
			}
		})
	}
	t.Run("rebase before start", func(t *testing.T) {
		var r tsRewriter
		r.rebase(12345, 3000)
		if got := r.rewrite(12345); got != 12345 {
			t.Fatalf("rewrite = %d, want 12345", got)
		}
		if got := r.rewrite(12400); got != 12400 {
			t.Fatalf("rewrite = %d, want 12400", got)
		}
	})
}

// TestSeqRewriterProperty feeds long streams (several wraps) with loss,
// reordering, duplicates, very late packets and padding packets, and checks
// the output against the properties a receiver relies on and against a
// model in unwrapped (64-bit) sequence space.
func TestSeqRewriterProperty(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			seqProperty(t, seed)
		})
	}
}

type seqPkt struct {
	ext int64 // unwrapped incoming number
	pad bool  // padding only: skipped
}

func seqProperty(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	const n = 200000
	base := int64(r.IntN(65536))
	out0 := uint16(r.Uint32())

	// Phases alternate between busy ones (padding, loss) and quiet ones
	// long enough to move more than half the sequence space.
	var pkts []seqPkt
	for e := int64(0); e < n; {
		quiet := r.IntN(2) == 0
		length := int64(3000 + r.IntN(12000))
		lossP := 0.01
		if quiet {
			length, lossP = int64(34000+r.IntN(8000)), 0.002
		}
		for end := min(e+length, n); e < end; e++ {
			switch x := r.Float64(); {
			case e == 0:
				pkts = append(pkts, seqPkt{ext: e})
			case x < lossP:
				// lost
			case !quiet && x < lossP+0.03:
				pkts = append(pkts, seqPkt{ext: e, pad: true})
			case !quiet && x < lossP+0.035:
				// a burst of padding
				for k := r.IntN(3 * seqHistory); k >= 0 && e < end; k-- {
					pkts = append(pkts, seqPkt{ext: e, pad: true})
					e++
				}
				e--
			default:
				pkts = append(pkts, seqPkt{ext: e})
			}
		}
	}
	// Arrival order: mostly in order, some reordered a little, a few very
	// late (beyond maxLateSeq), some duplicated.
	type arrival struct {
		p   seqPkt
		key float64
	}
	var arr []arrival
	for i, p := range pkts {
		key := float64(p.ext)
		switch x := r.Float64(); {
		case i == 0:
		case x < 0.05:
			key += r.Float64() * 40
		case x < 0.052:
			key += maxLateSeq - 50 + r.Float64()*100
		}
		arr = append(arr, arrival{p, key})
		if r.Float64() < 0.01 {
			arr = append(arr, arrival{p, key + r.Float64()*60})
		}
	}
	slices.SortStableFunc(arr, func(a, b arrival) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})

	// The model: spans in unwrapped space, never forgotten.
	type span struct{ fence, off int64 } // out = in - off
	var (
		rw      seqRewriter
		started bool
		lastIn  int64
		spans   []span
	)
	got := map[int64]uint16{} // forwarded: ext -> out
	var bad []string
	report := func(format string, a ...any) {
		if len(bad) < 10 {
			bad = append(bad, fmt.Sprintf(format, a...))
		}
	}
	for _, a := range arr {
		p := a.p
		in := uint16(base + p.ext)
		if p.pad {
			rw.skip(in)
			if started && p.ext > lastIn {
				lastIn = p.ext
				spans = append(spans, span{p.ext + 1, spans[len(spans)-1].off + 1})
			}
			continue
		}
		if !started {
			started = true
			rw.start(in, out0)
			lastIn = p.ext
			spans = []span{{p.ext, p.ext - int64(out0)}}
		}
		out, ok := rw.rewrite(in)

		var (
			want     int64
			must     bool // must be forwarded
			mayFwd   bool // may be forwarded (with want)
			newer    = p.ext > lastIn
			lateness = lastIn - p.ext
		)
		switch {
		case newer:
			lastIn = p.ext
			want, must, mayFwd = p.ext-spans[len(spans)-1].off, true, true
		case lateness > maxLateSeq || p.ext < spans[0].fence:
		default:
			k := len(spans) - 1
			for spans[k].fence > p.ext {
				k--
			}
			want, mayFwd = p.ext-spans[k].off, true
			must = len(spans)-1-k < seqHistory // its span is still remembered
		}
		switch {
		case ok && !mayFwd:
			report("ext %d (in %d, %d behind newest) forwarded as %d, want dropped", p.ext, in, lateness, out)
		case ok && out != uint16(want):
			report("ext %d (in %d, %d behind newest) -> %d, want %d", p.ext, in, lateness, out, uint16(want))
		case !ok && must:
			report("ext %d (in %d, %d behind newest) dropped, want %d", p.ext, in, lateness, uint16(want))
		}
		if ok {
			if prev, dup := got[p.ext]; dup && prev != out {
				report("duplicate of ext %d -> %d, first -> %d", p.ext, out, prev)
			}
			got[p.ext] = out
		}
	}

	// Receiver-side properties, independent of the model.
	exts := slices.Sorted(func(yield func(int64) bool) {
		for e := range got {
			if !yield(e) {
				return
			}
		}
	})
	for i := 1; i < len(exts); i++ {
		a, b := exts[i-1], exts[i]
		d := got[b] - got[a] // mod 2^16
		if d == 0 || d >= 1<<15 {
			report("ext %d -> %d and ext %d -> %d: not strictly increasing", a, got[a], b, got[b])
		}
		if b == a+1 && d != 1 {
			report("consecutive ext %d -> %d and %d -> %d: gap in output", a, got[a], b, got[b])
		}
	}
	if len(exts) < n/2 {
		report("only %d of %d packets forwarded", len(exts), n)
	}
	for _, b := range bad {
		t.Error(b)
	}
	t.Logf("seed %d: %d arrivals, %d forwarded, %d offset changes", seed, len(arr), len(got), len(spans)-1)
}
