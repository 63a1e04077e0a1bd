package bwe

import (
	"testing"
	"time"
	"unsafe"
)

// The probe tag must not grow a send-history slot.
func TestSentPacketSize(t *testing.T) {
	if n := unsafe.Sizeof(sentPacket{}); n != 16 {
		t.Fatalf("sentPacket is %d bytes, want 16", n)
	}
}

// appLimitedProbing is the subscriber held on a low layer: 700 kbit/s of
// media on a path of the given capacity, optionally with a 3 Mbit/s probe
// cluster (15 × 1000 bytes over about 37 ms) every 2 s.
func appLimitedProbing(capacity float64, probe bool, seed uint64) simConfig {
	c := simConfig{
		est:      Config{Initial: 1e6},
		capacity: constant(capacity),
		appRate:  700e3,
		jitter:   time.Millisecond,
		duration: 30 * time.Second,
		seed:     seed,
	}
	if probe {
		c.probeEvery, c.probeRate = 2*time.Second, 3e6
	}
	return c
}

func peak(res simResult, from time.Duration) int {
	hi := 0
	for i, v := range res.estimates {
		if res.times[i] >= from {
			hi = max(hi, v)
		}
	}
	return hi
}

// Without probes the estimate of an application-limited sender cannot
// grow past about 1.5× what it sends; probe clusters on a fast path lift
// it to the probed rate within one round trip of the first cluster.
func TestSimProbeLiftsAppLimited(t *testing.T) {
	const capacity = 5e6
	for _, seed := range []uint64{20, 21, 22} {
		res := runSim(t, appLimitedProbing(capacity, false, seed))
		if hi := peak(res, 0); hi >= 1.6e6 {
			t.Fatalf("seed %d: without probes the estimate reached %d", seed, hi)
		} else {
			t.Logf("seed %d: without probes at most %d bit/s", seed, hi)
		}

		reached := time.Duration(-1)
		c := appLimitedProbing(capacity, true, seed)
		c.onSample = func(now time.Duration, e *Estimator) {
			v := e.Estimate()
			if reached < 0 && v > 2.5e6 {
				reached = now
			}
			if reached >= 0 && (v < 2.5e6 || v > capacity) {
				t.Fatalf("seed %d: estimate %d at %v, after reaching 2.5 Mbit/s at %v", seed, v, now, reached)
			}
		}
		res = runSim(t, c)
		t.Logf("seed %d: with probes above 2.5 Mbit/s at %v, final %d; first probe %+v",
			seed, reached, res.estimates[len(res.estimates)-1], res.probes[0])
		if reached < 0 || reached > 3*time.Second {
			t.Fatalf("seed %d: estimate above 2.5 Mbit/s at %v, want by 3 s (first cluster at 2 s)", seed, reached)
		}
		if len(res.probes) < 10 {
			t.Fatalf("seed %d: %d clusters measured of 14 sent", seed, len(res.probes))
		}
		// Media packets queued between probe packets make some clusters
		// arrive a little slower than sent.
		for _, p := range res.probes {
			if p.Rate < 2.4e6 || p.Rate > 3.3e6 || p.Loss != 0 {
				t.Fatalf("seed %d: probe at 3 Mbit/s on a 5 Mbit/s path measured %+v", seed, p)
			}
		}
	}
}

// A probe faster than the path measures the path (its receive rate), not
// the probe rate, and the estimate never settles above the capacity.
func TestSimProbeAboveCapacity(t *testing.T) {
	const capacity = 1.5e6
	for _, seed := range []uint64{23, 24, 25} {
		res := runSim(t, appLimitedProbing(capacity, true, seed))
		hi := peak(res, 0)
		t.Logf("seed %d: peak %d, final %d, %d clusters measured, first %+v",
			seed, hi, res.estimates[len(res.estimates)-1], len(res.probes), res.probes[0])
		if hi > 1.6e6 {
			t.Fatalf("seed %d: estimate reached %d on a %.0f bit/s path", seed, hi, capacity)
		}
		if len(res.probes) < 10 {
			t.Fatalf("seed %d: %d clusters measured of 14 sent", seed, len(res.probes))
		}
		for _, p := range res.probes {
			if !p.Saturated || p.Rate != p.ReceiveRate || p.Rate > 1.1*capacity {
				t.Fatalf("seed %d: probe at 3 Mbit/s on a 1.5 Mbit/s path measured %+v", seed, p)
			}
		}
		// Over the last 10 s: nothing held above the capacity.
		var above time.Duration
		for i, v := range res.estimates {
			if res.times[i] >= 20*time.Second && v > capacity {
				above += 100 * time.Millisecond
			}
		}
		if above > time.Second {
			t.Fatalf("seed %d: estimate above capacity for %v of the last 10 s", seed, above)
		}
	}
}

// A cluster that loses many of its packets raises nothing, even though its
// receive rate alone would. (The padding that arrives still counts toward
// the acked bitrate, so the usual 1.5× headroom grows a little.)
func TestSimProbeHeavyLoss(t *testing.T) {
	for _, seed := range []uint64{26, 27} {
		c := appLimitedProbing(5e6, true, seed)
		c.probeLoss = 0.4
		res := runSim(t, c)
		hi := peak(res, 0)
		t.Logf("seed %d: peak %d, %d clusters measured, first %+v", seed, hi, len(res.probes), res.probes[0])
		if hi > 1.4e6 {
			t.Fatalf("seed %d: estimate reached %d with 40%% probe loss", seed, hi)
		}
		if len(res.probes) < 5 {
			t.Fatalf("seed %d: only %d clusters measured", seed, len(res.probes))
		}
		for _, p := range res.probes {
			if p.Raised || p.Loss < probeMaxLoss {
				t.Fatalf("seed %d: %+v", seed, p)
			}
		}
		// The measurements themselves would have raised the estimate.
		best := 0
		for _, p := range res.probes {
			best = max(best, p.Rate)
		}
		if probeUtilization*float64(best) < 1.6e6 {
			t.Fatalf("seed %d: the lossy probes measured at most %d; the test proves nothing", seed, best)
		}
	}
}

// probeRun sends n probe packets of 1000 bytes sendGap apart as cluster 1
// into a fresh estimator, then one feedback reporting them, the i-th
// received recvTicks[i] × 250 µs after the previous (lost where recv[i] is
// false), 60 ms after the last was sent.
func probeRun(t *testing.T, n int, sendGap time.Duration, recvTicks int64, lost func(i int) bool, overuse bool) (*Estimator, ProbeResult) {
	t.Helper()
	e := New(Config{Initial: 1e6})
	for i := range n {
		e.SentProbe(1000, epoch.Add(time.Duration(i)*sendGap), 1)
	}
	st := make([]status, n)
	for i := range st {
		if lost == nil || !lost(i) {
			st[i] = status{true, recvTicks}
		}
	}
	e.delay.sawOveruse = overuse
	now := epoch.Add(time.Duration(n-1)*sendGap + 60*time.Millisecond)
	if err := e.Feedback(buildTWCC(t, 0, 0, 0, st, styleAuto), now); err != nil {
		t.Fatal(err)
	}
	return e, e.ProbeResult()
}

func TestProbeMeasurement(t *testing.T) {
	const n = 20
	for _, tt := range []struct {
		name       string
		sendGap    time.Duration
		recvTicks  int64
		lost       func(int) bool
		overuse    bool
		rate       float64 // 0: no result
		saturated  bool
		raised     bool
		estimateAt float64 // expected estimate, 0: unchanged
	}{
		// 19 × 8000 bit over 38 ms sent and received: 4 Mbit/s.
		{name: "unsaturated", sendGap: 2 * time.Millisecond, recvTicks: 8, rate: 4e6, raised: true, estimateAt: 3.8e6},
		// Received at half the pace: the path's 2 Mbit/s.
		{name: "saturated", sendGap: 2 * time.Millisecond, recvTicks: 16, rate: 2e6, saturated: true, raised: true, estimateAt: 1.9e6},
		// Received a little slower (5 ms sent, 5.25 ms received: 95 %):
		// not saturated, the lower of the two.
		{name: "near send rate", sendGap: 5 * time.Millisecond, recvTicks: 21, rate: 8000 / 0.00525, raised: true},
		// Just over the saturation line (2 ms sent, 2.25 ms received: 89 %).
		{name: "just saturated", sendGap: 2 * time.Millisecond, recvTicks: 9, rate: 8000 / 0.00225, saturated: true, raised: true},
		// A send span of 9.5 ms means nothing.
		{name: "too short", sendGap: 500 * time.Microsecond, recvTicks: 2},
		// Overuse: measured but not applied.
		{name: "overuse", sendGap: 2 * time.Millisecond, recvTicks: 8, overuse: true, rate: 4e6},
		// 1 of 20 lost (5 %): applied.
		{name: "light loss", sendGap: 2 * time.Millisecond, recvTicks: 8, lost: func(i int) bool { return i == 10 }, rate: 4e6, raised: true, estimateAt: 3.8e6},
		// 2 of 20 lost (10 %): measured but not applied.
		{name: "loss", sendGap: 2 * time.Millisecond, recvTicks: 8, lost: func(i int) bool { return i%10 == 4 }, rate: 4e6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, r := probeRun(t, n, tt.sendGap, tt.recvTicks, tt.lost, tt.overuse)
			t.Logf("%+v, estimate %d", r, e.Estimate())
			if r.Cluster != 1 {
				t.Fatalf("cluster not measured: %+v", r)
			}
			if tt.rate == 0 {
				if r.Rate != 0 || r.Raised {
					t.Fatalf("got %+v, want no rate", r)
				}
			} else if d := float64(r.Rate) - tt.rate; d < -0.01*tt.rate || d > 0.01*tt.rate {
				t.Fatalf("rate %d, want %.0f", r.Rate, tt.rate)
			}
			if r.Saturated != tt.saturated || r.Raised != tt.raised {
				t.Fatalf("got %+v, want saturated %v raised %v", r, tt.saturated, tt.raised)
			}
			want := tt.estimateAt
			if want == 0 && tt.raised {
				want = probeUtilization * tt.rate
			}
			if !tt.raised && e.Estimate() > 1e6 {
				t.Fatalf("estimate %d, raised from 1 Mbit/s", e.Estimate())
			}
			if want != 0 {
				if d := float64(e.Estimate()) - want; d < -0.01*want || d > 0.01*want {
					t.Fatalf("estimate %d, want %.0f", e.Estimate(), want)
				}
			}
		})
	}
}

// A cluster is measured once, not before most of it is reported, and not
// while it may still be growing.
func TestProbeReadiness(t *testing.T) {
	e := New(Config{Initial: 1e6})
	for i := range 20 {
		e.SentProbe(1000, epoch.Add(time.Duration(i)*2*time.Millisecond), 7)
	}
	// Packet k arrives at (k+1) × 2 ms.
	fb := func(base, n int) []byte {
		st := recvRun(n, 8)
		st[0].delta = int64(base+1) * 8
		return buildTWCC(t, uint16(base), 0, 0, st, styleAuto)
	}
	// 15 of 20 reported: not yet.
	if err := e.Feedback(fb(0, 15), epoch.Add(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if r := e.ProbeResult(); r.Cluster != 0 {
		t.Fatalf("measured after 15 of 20 packets: %+v", r)
	}
	// 16 of 20: measured.
	if err := e.Feedback(fb(15, 1), epoch.Add(150*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	r := e.ProbeResult()
	if r.Cluster != 7 || !r.Raised {
		t.Fatalf("not measured after 16 of 20 packets: %+v", r)
	}
	// The rest changes nothing, and later packets of cluster 7 start nothing.
	e.SentProbe(1000, epoch.Add(160*time.Millisecond), 7)
	if err := e.Feedback(fb(16, 5), epoch.Add(200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got := e.ProbeResult(); got != r {
		t.Fatalf("measured twice: %+v, then %+v", r, got)
	}
	if e.ring[20].probe != probeNoTag {
		t.Fatal("a packet of a measured cluster was tagged")
	}

	// A cluster still being sent (last packet 5 ms before the feedback,
	// no newer cluster) waits, even if all of it so far is reported.
	e = New(Config{Initial: 1e6})
	for i := range 10 {
		e.SentProbe(1000, epoch.Add(time.Duration(i)*2*time.Millisecond), 1)
	}
	if err := e.Feedback(fb(0, 10), epoch.Add(23*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if r := e.ProbeResult(); r.Cluster != 0 {
		t.Fatalf("measured while still being sent: %+v", r)
	}
	// A newer cluster closes it.
	e.SentProbe(1000, epoch.Add(24*time.Millisecond), 2)
	if err := e.Feedback(fb(9, 1), epoch.Add(25*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if r := e.ProbeResult(); r.Cluster != 1 {
		t.Fatalf("not measured after a newer cluster started: %+v", r)
	}
}

// More clusters than slots: the oldest is dropped, and its packets, when
// reported later, do not count for the cluster that took its slot.
func TestProbeSlotReuse(t *testing.T) {
	e := New(Config{Initial: 1e6})
	for id := 1; id <= probeSlots+1; id++ {
		for i := range 6 {
			e.SentProbe(1000, epoch.Add(time.Duration(id*100+i*2)*time.Millisecond), id)
		}
	}
	if e.ring[0].probe != e.ring[6*probeSlots].probe {
		t.Fatalf("cluster %d did not take cluster 1's slot", probeSlots+1)
	}
	// Report cluster 1 (seqs 0..5) only.
	if err := e.Feedback(buildTWCC(t, 0, 0, 0, recvRun(6, 8), styleAuto), epoch.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	c := e.probes.cluster(e.ring[6*probeSlots].probe, int64(6*probeSlots))
	if c == nil || c.id != probeSlots+1 || c.reported != 0 {
		t.Fatalf("cluster %d's statistics: %+v", probeSlots+1, c)
	}
	if r := e.ProbeResult(); r.Cluster != 0 {
		t.Fatalf("a dropped cluster was measured: %+v", r)
	}
	// An id older than the newest starts nothing.
	if e.ring[e.SentProbe(1000, epoch.Add(2*time.Second), 1)].probe != probeNoTag {
		t.Fatal("an old cluster id was tagged")
	}
}

// steadyFeedback reports packets base..base+n-1, packet k arriving at
// k × gap + 20 ms, those for which lost(k) is true lost.
func steadyFeedback(tb testing.TB, base, n int, gap time.Duration, fbCount uint8, lost func(k int) bool) []byte {
	tb.Helper()
	const tick = 250 * time.Microsecond
	arr := func(k int) time.Duration { return time.Duration(k)*gap + 20*time.Millisecond }
	ref := arr(base) / refTimeUnit
	prev := int64(ref * refTimeUnit / tick)
	st := make([]status, n)
	for j := range st {
		if lost(base + j) {
			continue
		}
		ticks := int64(arr(base+j) / tick)
		st[j] = status{true, ticks - prev}
		prev = ticks
	}
	return buildTWCC(tb, uint16(base), uint32(ref), fbCount, st, styleAuto)
}

// sendBatch sends packets k*perFb .. (k+1)*perFb-1, one per millisecond,
// the first 15 of them probe cluster k+1.
func sendBatch(e *Estimator, k, perFb int) {
	for j := range perFb {
		at := epoch.Add(time.Duration(k*perFb+j) * time.Millisecond)
		if j < 15 {
			e.SentProbe(1000, at, k+1)
		} else {
			e.Sent(1200, at)
		}
	}
}

// Padding is acknowledged like media.
func TestProbePaddingAcked(t *testing.T) {
	e := New(Config{Initial: 1e6})
	for i := range 400 {
		e.SentProbe(1000, epoch.Add(time.Duration(i)*time.Millisecond), i/20+1)
	}
	for i := range 4 {
		fb := steadyFeedback(t, i*100, 100, time.Millisecond, uint8(i), func(int) bool { return false })
		if err := e.Feedback(fb, epoch.Add(time.Duration(i*100+150)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	if a := e.Stats().AckedBitrate; a < 7.5e6 || a > 8.5e6 {
		t.Fatalf("acked bitrate %d for 8 Mbit/s of padding", a)
	}
}

func TestProbeAllocs(t *testing.T) {
	e := New(Config{})
	const perFb, nFb = 40, 60
	lost := func(k int) bool { return k%perFb == 3 }
	fbs := make([][]byte, nFb)
	for i := range fbs {
		fbs[i] = steadyFeedback(t, i*perFb, perFb, time.Millisecond, uint8(i), lost)
	}
	sendBatch(e, 0, perFb)
	i := 0
	allocs := testing.AllocsPerRun(nFb-1, func() {
		sendBatch(e, i+1, perFb)
		if err := e.Feedback(fbs[i], epoch.Add(time.Duration((i+1)*perFb+40)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Feedback and %d sends", allocs, perFb)
	}
	if r := e.ProbeResult(); r.Cluster < nFb-2 || r.Rate == 0 {
		t.Fatalf("clusters not measured: last %+v", r)
	}
}
