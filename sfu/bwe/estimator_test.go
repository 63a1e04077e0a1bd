package bwe

import (
	"errors"
	"sync"
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestExtendSeqBefore(t *testing.T) {
	tests := []struct {
		seq  uint16
		ref  int64
		want int64
	}{
		{10, 10, 10},
		{5, 10, 5},
		{11, 10, 11 - 65536},
		{65535, 65535, 65535},
		{65535, 65536, 65535}, // 65535 -> 0 across the wrap
		{0, 65536, 65536},
		{1, 65536, 1},
		{65535, 2 * 65536, 2*65536 - 1},
		{0, 0, 0},
		{100, 65536 + 99, 100},
		{100, 65536 + 100, 65536 + 100},
	}
	for _, tt := range tests {
		if got := extendSeqBefore(tt.seq, tt.ref); got != tt.want {
			t.Errorf("extendSeqBefore(%d, %d) = %d, want %d", tt.seq, tt.ref, got, tt.want)
		}
	}
}

func TestExtendRef(t *testing.T) {
	const wrap = 1 << 24
	tests := []struct{ raw, prev, want int64 }{
		{100, 100, 100},
		{101, 100, 101},
		{99, 100, 99},
		{wrap - 1, 0, -1},            // unsigned view of -1
		{-1, 0, -1},                  // signed view
		{5, wrap - 16, wrap + 5},     // 24-bit wrap forward
		{-8388608, 8388607, 8388608}, // sign change: -2^23 after 2^23-1
		{wrap - 3, 2, -3},            // backwards across the wrap
	}
	for _, tt := range tests {
		if got := extendRef(tt.raw, tt.prev); got != tt.want {
			t.Errorf("extendRef(%d, %d) = %d, want %d", tt.raw, tt.prev, got, tt.want)
		}
	}
}

func TestFloorDivMod(t *testing.T) {
	for _, tt := range []struct{ a, b, q, m int64 }{
		{7, 5, 1, 2}, {-7, 5, -2, 3}, {-5, 5, -1, 0}, {0, 5, 0, 0}, {4, 5, 0, 4}, {-1, 5, -1, 4},
	} {
		if q := floorDiv(tt.a, tt.b); q != tt.q {
			t.Errorf("floorDiv(%d, %d) = %d, want %d", tt.a, tt.b, q, tt.q)
		}
		if m := mod(tt.a, tt.b); m != tt.m {
			t.Errorf("mod(%d, %d) = %d, want %d", tt.a, tt.b, m, tt.m)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	tests := []struct {
		cfg               Config
		initial, min, max int
	}{
		{Config{}, DefaultInitial, DefaultMin, DefaultMax},
		{Config{Initial: 50_000}, DefaultMin, DefaultMin, DefaultMax},
		{Config{Initial: 50e6}, DefaultMax, DefaultMin, DefaultMax},
		{Config{Min: 300_000, Max: 200_000}, 300_000, 300_000, 300_000},
		{Config{Initial: 2e6, Min: 1e6, Max: 3e6}, 2e6, 1e6, 3e6},
	}
	for _, tt := range tests {
		e := New(tt.cfg)
		if e.Estimate() != tt.initial || e.cfg.Min != tt.min || e.cfg.Max != tt.max {
			t.Errorf("New(%+v): estimate %d, bounds %d..%d; want %d, %d..%d",
				tt.cfg, e.Estimate(), e.cfg.Min, e.cfg.Max, tt.initial, tt.min, tt.max)
		}
	}
}

func TestSentSequenceWraps(t *testing.T) {
	e := New(Config{})
	for i := range 70000 {
		if got := e.Sent(1000, epoch); got != uint16(i) {
			t.Fatalf("packet %d got sequence number %d", i, got)
		}
	}
}

// Sent, Feedback, Estimate and Stats from several goroutines; run with -race.
func TestConcurrentUse(t *testing.T) {
	e := New(Config{})
	const senders, each = 4, 5000
	seen := make([][]uint16, senders)
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				seen[g] = append(seen[g], e.Sent(1200, epoch.Add(time.Duration(i)*time.Millisecond)))
			}
		})
	}
	fb := buildTWCC(t, 0, 0, 0, []status{{true, 4}, {true, 4}, {false, 0}, {true, 8}}, styleAuto)
	wg.Go(func() {
		for i := range 1000 {
			if err := e.Feedback(fb, epoch.Add(time.Duration(i)*time.Millisecond)); err != nil {
				t.Error(err)
				return
			}
			_ = e.Estimate()
			_ = e.Stats()
		}
	})
	wg.Wait()
	all := map[uint16]bool{}
	for _, s := range seen {
		for _, q := range s {
			if all[q] {
				t.Fatalf("sequence number %d handed out twice", q)
			}
			all[q] = true
		}
	}
	if len(all) != senders*each {
		t.Fatalf("%d distinct sequence numbers, want %d", len(all), senders*each)
	}
}

func recvRun(n int, delta int64) []status {
	s := make([]status, n)
	for i := range s {
		s[i] = status{true, delta}
	}
	return s
}

func TestFeedbackIgnoresUnknownAndRepeated(t *testing.T) {
	e := New(Config{})
	for range 5000 {
		e.Sent(1200, epoch)
	}
	// Sequence numbers 0..99 have left the 4096-packet history.
	if err := e.Feedback(buildTWCC(t, 0, 0, 0, recvRun(100, 4), styleAuto), epoch); err != nil {
		t.Fatal(err)
	}
	if e.loss.total != 0 || e.acked.started {
		t.Fatalf("evicted packets were counted: total %d", e.loss.total)
	}
	// Sequence numbers 5000.. have not been sent.
	if err := e.Feedback(buildTWCC(t, 5000, 0, 0, recvRun(50, 4), styleAuto), epoch); err != nil {
		t.Fatal(err)
	}
	if e.loss.total != 0 {
		t.Fatalf("unsent packets were counted: total %d", e.loss.total)
	}
	// Known packets count once however often they are reported.
	fb := buildTWCC(t, 4990, 0, 0, append(recvRun(5, 4), make([]status, 5)...), styleAuto)
	for range 3 {
		if err := e.Feedback(fb, epoch); err != nil {
			t.Fatal(err)
		}
	}
	if e.loss.total != 10 || e.loss.lost != 5 {
		t.Fatalf("after repeats: %d lost of %d, want 5 of 10", e.loss.lost, e.loss.total)
	}
	// A packet first reported lost and then received is not lost.
	if err := e.Feedback(buildTWCC(t, 4995, 0, 0, recvRun(2, 4), styleAuto), epoch); err != nil {
		t.Fatal(err)
	}
	if e.loss.total != 10 || e.loss.lost != 3 {
		t.Fatalf("after late arrivals: %d lost of %d, want 3 of 10", e.loss.lost, e.loss.total)
	}
}

func TestFeedbackMalformedChangesNothing(t *testing.T) {
	e := New(Config{})
	for range 100 {
		e.Sent(1200, epoch)
	}
	good := buildTWCC(t, 0, 0, 0, recvRun(20, 4), styleAuto)
	bad := good[:len(good)-4]
	if err := e.Feedback(bad, epoch); !errors.Is(err, ErrLength) {
		t.Fatalf("err %v, want ErrLength", err)
	}
	if e.loss.total != 0 || e.hasRef {
		t.Fatal("a rejected packet changed the estimator")
	}
	if err := e.Feedback(good, epoch); err != nil {
		t.Fatal(err)
	}
	if e.loss.total != 20 {
		t.Fatalf("%d packets counted, want 20", e.loss.total)
	}
}

// The estimate must not race to the maximum while the application sends
// little, but must follow it up when it sends close to the estimate.
func TestSimApplicationLimited(t *testing.T) {
	for _, tt := range []struct {
		app, initial float64
		lo, hi       int
	}{
		// Far below: stays near the initial value (it may grow a little
		// before the first acked bitrate is known).
		{300e3, 1e6, 1e6, 1.05e6},
		// Close to it: grows, up to about 1.5× what is sent (the acked
		// bitrate of bursty frames reads a few per cent high).
		{2e6, 1e6, 2e6, 3.2e6},
		{10e6, 1e6, 10e6, 16e6},
	} {
		res := runSim(t, simConfig{
			est:      Config{Initial: int(tt.initial)},
			capacity: constant(100e6),
			appRate:  tt.app,
			duration: 60 * time.Second,
			seed:     14,
		})
		hi := 0
		for _, v := range res.estimates {
			hi = max(hi, v)
		}
		last := res.estimates[len(res.estimates)-1]
		t.Logf("app %.0f: final %d, max %d", tt.app, last, hi)
		if last < tt.lo || hi > tt.hi {
			t.Errorf("app %.0f: final %d, max %d; want final >= %d, max <= %d", tt.app, last, hi, tt.lo, tt.hi)
		}
	}
}

func TestUsageString(t *testing.T) {
	for u, want := range map[Usage]string{UsageNormal: "normal", UsageOverusing: "overusing", UsageUnderusing: "underusing"} {
		if u.String() != want {
			t.Errorf("%d: %q", u, u.String())
		}
	}
}

// A single late group (one frame delayed by 30 ms, then on time again) must
// not be taken for overuse.
func TestDetectorSingleLateGroup(t *testing.T) {
	d := newDelayDetector()
	const frame = int64(33 * time.Millisecond)
	var late bool
	for i := range int64(300) {
		arr := i*frame + int64(20*time.Millisecond)
		if i%50 == 25 {
			arr += int64(30 * time.Millisecond)
		}
		for range 5 {
			d.add(i*frame, arr)
		}
		if d.sawOveruse {
			late = true
		}
	}
	if late {
		t.Fatal("overuse detected for single late groups")
	}
	// ... while a growing queue is detected.
	for i := int64(300); i < 340; i++ {
		arr := i*frame + int64(20*time.Millisecond) + (i-300)*int64(5*time.Millisecond)
		for range 5 {
			d.add(i*frame, arr)
		}
	}
	if !d.sawOveruse {
		t.Fatalf("growing queue not detected: trend %.2f, threshold %.2f", d.modified, d.threshold)
	}
}

func TestFeedbackAllocs(t *testing.T) {
	e := New(Config{})
	const perFb, nFb = 40, 60
	for k := range perFb * nFb {
		e.Sent(1200, epoch.Add(time.Duration(k)*time.Millisecond))
	}
	fbs := make([][]byte, nFb)
	for i := range fbs {
		st := recvRun(perFb, 4)
		st[3] = status{}
		fbs[i] = buildTWCC(t, uint16(i*perFb), uint32(i*perFb/16), uint8(i), st, styleAuto)
	}
	i := 0
	allocs := testing.AllocsPerRun(nFb-1, func() {
		if err := e.Feedback(fbs[i], epoch.Add(time.Duration(i*perFb+60)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		e.Sent(1200, epoch)
		i++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Feedback+Sent", allocs)
	}
	if _, ok := e.acked.rate(); !ok {
		t.Fatal("feedback was not processed")
	}
}
