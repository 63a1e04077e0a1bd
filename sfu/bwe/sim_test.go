package bwe

import (
	"math/rand/v2"
	"testing"
	"time"
)

// A simulated path for the estimator, in synthetic time: a sender emitting
// video-like frames at min(estimate, application rate), a bottleneck with a
// FIFO queue, optional random loss, receiver-side scheduling jitter and
// stalls, sender-side scheduling delay, optional probe clusters of paced
// padding packets, and a receiver that sends transport-wide feedback (built
// with pion/rtcp) every 50 ms.

const (
	simStep      = time.Millisecond
	simFrameGap  = 33 * time.Millisecond
	simFbGap     = 50 * time.Millisecond
	simPacketMax = 1200 // bytes
)

type simConfig struct {
	est         Config
	capacity    func(t time.Duration) float64 // bit/s of the bottleneck at time t
	appRate     float64                       // bit/s the application would send; 0 = unlimited
	loss        float64                       // random loss probability
	jitter      time.Duration                 // receiver timestamps move by up to ±jitter (kept in order)
	sendDelay   time.Duration                 // packets leave up to this long after Sent
	stallEvery  time.Duration                 // mean gap between receiver stalls; 0 = none
	stallLen    time.Duration                 // receiver stall length
	oneWay      time.Duration                 // propagation delay each way
	duration    time.Duration
	seed        uint64
	firstSeq    uint16        // transport-wide sequence number of the first packet
	recvClock   time.Duration // offset of the receiver's clock (for reference time wrap)
	sampleEvery time.Duration
	onSample    func(t time.Duration, e *Estimator)

	// Probing: every probeEvery (first at probeEvery; 0 = never) the
	// sender sends a cluster of probeCount padding packets of probeSize
	// bytes (defaults 15 and 1000) paced at probeRate bit/s, on top of the
	// media. Probe packets are lost with probability probeLoss (instead of
	// loss).
	probeEvery time.Duration
	probeRate  float64
	probeCount int
	probeSize  int
	probeLoss  float64
}

// simPacket is a packet between the sender and the receiver.
type simPacket struct {
	seq  uint16
	arr  time.Duration // receiver clock timestamp, if not lost
	lost bool
}

type simResult struct {
	times     []time.Duration
	estimates []int
	feedbacks int
	probes    []ProbeResult // each measured cluster, in the order measured
}

func runSim(t *testing.T, c simConfig) simResult {
	t.Helper()
	if c.sampleEvery == 0 {
		c.sampleEvery = 100 * time.Millisecond
	}
	if c.oneWay == 0 {
		c.oneWay = 20 * time.Millisecond
	}
	if c.probeCount == 0 {
		c.probeCount = 15
	}
	if c.probeSize == 0 {
		c.probeSize = 1000
	}
	rng := rand.New(rand.NewPCG(c.seed, 99))
	e := New(c.est)
	e.sentExt = int64(c.firstSeq) - 1
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	var (
		res       simResult
		queueFree time.Duration // when the bottleneck finishes its last packet
		lastStamp time.Duration // receiver timestamps are non-decreasing
		inFlight  []simPacket   // sent, not yet reported; in sequence order
		fbQueue   []struct {
			at time.Duration
			b  []byte
		}
		fbCount    uint8
		nextFrame  time.Duration
		nextFb     = simFbGap
		nextSample time.Duration
		stallStart = time.Duration(-1)
		stallEnd   time.Duration
		cluster    int            // id of the newest probe cluster
		probeLeft  int            // packets of it still to send
		nextProbe  = c.probeEvery // send time of its next packet
	)
	// transmit sends one packet at time at (at most now) into the path.
	transmit := func(size int, at time.Duration, probe bool) {
		var seq uint16
		if probe {
			seq = e.SentProbe(size, epoch.Add(at), cluster)
		} else {
			seq = e.Sent(size, epoch.Add(at))
		}
		leave := at
		if c.sendDelay > 0 {
			leave += time.Duration(rng.Int64N(int64(c.sendDelay)))
		}
		p := simPacket{seq: seq}
		loss := c.loss
		if probe {
			loss = c.probeLoss
		}
		if loss > 0 && rng.Float64() < loss {
			p.lost = true
		} else {
			// FIFO bottleneck, then propagation.
			start := max(leave, queueFree)
			queueFree = start + time.Duration(float64(size*8)/c.capacity(at)*1e9)
			arr := queueFree + c.oneWay
			if c.jitter > 0 {
				arr += time.Duration(rng.Int64N(int64(2*c.jitter))) - c.jitter
			}
			for c.stallEvery > 0 && arr >= stallEnd {
				stallStart = stallEnd + time.Duration(rng.Int64N(int64(2*c.stallEvery)))
				stallEnd = stallStart + c.stallLen
			}
			if arr >= stallStart && arr < stallEnd {
				arr = stallEnd // the receiver was not scheduled
			}
			arr = max(arr, lastStamp)
			lastStamp = arr
			p.arr = arr
		}
		inFlight = append(inFlight, p)
	}
	if c.stallEvery > 0 {
		stallStart = time.Duration(rng.Int64N(int64(2 * c.stallEvery)))
		stallEnd = stallStart + c.stallLen
	}
	for now := time.Duration(0); now <= c.duration; now += simStep {
		// Feedback reaching the sender.
		for len(fbQueue) > 0 && fbQueue[0].at <= now {
			if err := e.Feedback(fbQueue[0].b, epoch.Add(now)); err != nil {
				t.Fatalf("Feedback at %v: %v", now, err)
			}
			res.feedbacks++
			if r := e.ProbeResult(); r.Cluster != 0 && (len(res.probes) == 0 || res.probes[len(res.probes)-1].Cluster != r.Cluster) {
				res.probes = append(res.probes, r)
			}
			fbQueue = fbQueue[1:]
		}
		// Probe packets due by now, each at its paced send time.
		if c.probeEvery > 0 && nextProbe <= now {
			if probeLeft == 0 {
				cluster++
				probeLeft = c.probeCount
			}
			gap := time.Duration(float64(c.probeSize*8) / c.probeRate * 1e9)
			for probeLeft > 0 && nextProbe <= now {
				transmit(c.probeSize, nextProbe, true)
				probeLeft--
				nextProbe += gap
			}
			if probeLeft == 0 {
				nextProbe += c.probeEvery - time.Duration(c.probeCount)*gap
			}
		}
		// The sender emits one frame's worth of packets back to back.
		if now >= nextFrame {
			nextFrame += simFrameGap
			rate := float64(e.Estimate())
			if c.appRate > 0 {
				rate = min(rate, c.appRate)
			}
			bytes := int(rate * simFrameGap.Seconds() / 8)
			for bytes > 0 {
				size := min(bytes, simPacketMax)
				bytes -= size
				size = max(size, 100)
				transmit(size, now, false)
			}
		}
		// The receiver reports everything up to the newest arrival.
		if now >= nextFb {
			nextFb += simFbGap
			last := -1
			for i, p := range inFlight {
				if p.lost {
					continue
				}
				if p.arr > now {
					break
				}
				last = i
			}
			if last >= 0 {
				b := simFeedback(t, inFlight[:last+1], c.recvClock, fbCount)
				fbCount++
				inFlight = inFlight[last+1:]
				fbQueue = append(fbQueue, struct {
					at time.Duration
					b  []byte
				}{now + c.oneWay, b})
			}
		}
		if now >= nextSample {
			nextSample += c.sampleEvery
			res.times = append(res.times, now)
			res.estimates = append(res.estimates, e.Estimate())
			if c.onSample != nil {
				c.onSample(now, e)
			}
		}
	}
	return res
}

// simFeedback builds one feedback packet for pkts, a run of consecutive
// sequence numbers whose last packet was received.
func simFeedback(t *testing.T, pkts []simPacket, recvClock time.Duration, fbCount uint8) []byte {
	t.Helper()
	const tick = 250 * time.Microsecond
	var first time.Duration
	for _, p := range pkts {
		if !p.lost {
			first = p.arr + recvClock
			break
		}
	}
	ref := first / (64 * time.Millisecond)
	prev := int64(ref * 256)
	st := make([]status, len(pkts))
	for i, p := range pkts {
		if p.lost {
			continue
		}
		ticks := int64((p.arr + recvClock) / tick)
		st[i] = status{recv: true, delta: ticks - prev}
		prev = ticks
	}
	return buildTWCC(t, pkts[0].seq, uint32(ref), fbCount, st, styleAuto)
}

func constant(bps float64) func(time.Duration) float64 {
	return func(time.Duration) float64 { return bps }
}

// (1) Starting at 3× the capacity, the estimate falls below it within a few
// seconds and then stays near it.
func TestSimConvergesToCapacity(t *testing.T) {
	const capacity = 1e6
	for _, seed := range []uint64{1, 2, 3} {
		res := runSim(t, simConfig{
			est:      Config{Initial: 3e6},
			capacity: constant(capacity),
			jitter:   time.Millisecond,
			duration: 60 * time.Second,
			seed:     seed,
		})
		below := -1
		for i, v := range res.estimates {
			if v < capacity {
				below = i
				break
			}
		}
		if below < 0 || res.times[below] > 3*time.Second {
			t.Fatalf("seed %d: estimate did not fall below capacity within 3 s (first below at sample %d)", seed, below)
		}
		lo, hi := res.estimates[below], res.estimates[below]
		for _, v := range res.estimates[below:] {
			lo, hi = min(lo, v), max(hi, v)
		}
		t.Logf("seed %d: below capacity at %v; afterwards %d..%d bit/s", seed, res.times[below], lo, hi)
		if lo < 0.5*capacity || hi > 1.2*capacity {
			t.Fatalf("seed %d: estimate left [0.5C, 1.2C]: %d..%d", seed, lo, hi)
		}
	}
}

// (2) When the capacity triples, the estimate follows within 30 s.
func TestSimFollowsCapacityIncrease(t *testing.T) {
	const rise = 30 * time.Second
	var reached time.Duration = -1
	runSim(t, simConfig{
		est: Config{Initial: 1e6},
		capacity: func(t time.Duration) float64 {
			if t < rise {
				return 1e6
			}
			return 3e6
		},
		duration: rise + 30*time.Second,
		seed:     4,
		onSample: func(now time.Duration, e *Estimator) {
			if now == rise-time.Second && e.Estimate() > 1.2e6 {
				t.Errorf("before the rise the estimate is %d, above 1.2 Mbit/s", e.Estimate())
			}
			if now > rise && reached < 0 && e.Estimate() > 2e6 {
				reached = now - rise
			}
		},
	})
	t.Logf("estimate above 2 Mbit/s %v after the rise", reached)
	if reached < 0 {
		t.Fatal("estimate did not climb above 2 Mbit/s within 30 s of the capacity rise")
	}
}

// (3) Heavy random loss lowers the estimate; light loss does not.
func TestSimLoss(t *testing.T) {
	const start = 2e6
	for _, tt := range []struct {
		loss     float64
		decrease bool
	}{{0.20, true}, {0.01, false}, {0, false}} {
		res := runSim(t, simConfig{
			est:      Config{Initial: start},
			capacity: constant(100e6),
			appRate:  start,
			loss:     tt.loss,
			duration: 20 * time.Second,
			seed:     5,
		})
		lo, last := res.estimates[0], res.estimates[len(res.estimates)-1]
		for _, v := range res.estimates {
			lo = min(lo, v)
		}
		t.Logf("loss %.2f: min %d, final %d", tt.loss, lo, last)
		if tt.decrease && last > start/2 {
			t.Errorf("loss %.2f: final estimate %d, want below %d", tt.loss, last, int(start/2))
		}
		if !tt.decrease && lo < start {
			t.Errorf("loss %.2f: estimate dipped to %d below its start %d", tt.loss, lo, int(start))
		}
	}
}

// (4) Scheduling jitter and stalls on an uncongested path cause no dips.
func TestSimJitterNoFalseDips(t *testing.T) {
	for _, tt := range []struct {
		name    string
		appRate float64
		start   int
	}{
		{"application limited", 1.5e6, 2e6},
		{"greedy", 0, 1e6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, seed := range []uint64{7, 8, 9} {
				peak := 0
				res := runSim(t, simConfig{
					est:        Config{Initial: tt.start},
					capacity:   constant(200e6),
					appRate:    tt.appRate,
					jitter:     2 * time.Millisecond,
					sendDelay:  3 * time.Millisecond,
					stallEvery: time.Second,
					stallLen:   100 * time.Millisecond,
					duration:   60 * time.Second,
					seed:       seed,
					onSample: func(now time.Duration, e *Estimator) {
						v := e.Estimate()
						peak = max(peak, v)
						if v < tt.start*8/10 || v < peak*8/10 {
							t.Fatalf("seed %d: estimate %d at %v (start %d, peak %d)", seed, v, now, tt.start, peak)
						}
					},
				})
				t.Logf("seed %d: final %d, peak %d", seed, res.estimates[len(res.estimates)-1], peak)
			}
		})
	}
}

// (5) Wraparound of the transport sequence number and of the feedback
// reference time changes nothing: the run matches one without wraparound
// sample for sample.
func TestSimWraparound(t *testing.T) {
	base := simConfig{
		est:      Config{Initial: 3e6},
		capacity: constant(1.5e6),
		jitter:   time.Millisecond,
		duration: 30 * time.Second,
		seed:     10,
	}
	want := runSim(t, base)
	// Receiver clock offsets that are multiples of 64 ms keep the
	// quantisation of reference times and receive deltas as in the base run.
	const align = 64 * time.Millisecond
	wrap24 := (1 << 24) * 64 * time.Millisecond
	for _, tt := range []struct {
		name      string
		firstSeq  uint16
		recvClock time.Duration
	}{
		{"sequence wraps after 2 s", 65536 - 300, 0},
		{"sequence starts at 65535", 65535, 0},
		{"reference time wraps 24 bits", 0, (wrap24 - 10*time.Second) / align * align},
		{"reference time changes sign", 0, (wrap24/2 - 10*time.Second) / align * align},
		{"both", 65000, (wrap24 - 5*time.Second) / align * align},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			c.firstSeq, c.recvClock = tt.firstSeq, tt.recvClock
			got := runSim(t, c)
			if got.feedbacks != want.feedbacks {
				t.Fatalf("%d feedbacks, base run %d", got.feedbacks, want.feedbacks)
			}
			for i := range want.estimates {
				if got.estimates[i] != want.estimates[i] {
					t.Fatalf("at %v estimate %d, base run %d", want.times[i], got.estimates[i], want.estimates[i])
				}
			}
		})
	}
	// A greedy sender on a fast path wraps the sequence number naturally.
	var seqWrapped bool
	runSim(t, simConfig{
		est:      Config{Initial: 5e6},
		capacity: constant(15e6),
		duration: 60 * time.Second,
		seed:     11,
		onSample: func(now time.Duration, e *Estimator) {
			seqWrapped = seqWrapped || e.sentExt > 65535
			if now > 10*time.Second && (e.Estimate() < 7e6 || e.Estimate() > 18e6) {
				t.Fatalf("at %v estimate %d outside 7..18 Mbit/s on a 15 Mbit/s path", now, e.Estimate())
			}
		},
	})
	if !seqWrapped {
		t.Fatal("the sequence number did not wrap; make the run longer")
	}
}

// When the capacity halves, the estimate follows within a few seconds, even
// after an earlier overuse episode raised the detector's threshold.
func TestSimFollowsCapacityDrop(t *testing.T) {
	const drop = 10 * time.Second
	for _, seed := range []uint64{12, 13} {
		var reached time.Duration = -1
		runSim(t, simConfig{
			est: Config{Initial: 4e6},
			capacity: func(t time.Duration) float64 {
				if t < drop {
					return 3e6
				}
				return 1.5e6
			},
			jitter:   time.Millisecond,
			duration: drop + 20*time.Second,
			seed:     seed,
			onSample: func(now time.Duration, e *Estimator) {
				if now > drop && reached < 0 && e.Estimate() < 1.5e6 {
					reached = now - drop
				}
				if reached >= 0 && now > drop+reached+5*time.Second && e.Estimate() > 1.8e6 {
					t.Fatalf("seed %d: estimate %d at %v, back above 1.2× the new capacity", seed, e.Estimate(), now)
				}
			},
		})
		t.Logf("seed %d: estimate below the new capacity %v after the drop", seed, reached)
		if reached < 0 || reached > 5*time.Second {
			t.Fatalf("seed %d: estimate took %v to fall below the new capacity", seed, reached)
		}
	}
}
