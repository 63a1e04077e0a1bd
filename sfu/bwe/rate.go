package bwe

import (
	"math"
	"time"
)

// Rate control constants; see the package documentation.
const (
	decreaseFactor    = 0.85                   // overuse: rate = decreaseFactor × acked bitrate
	multiplicativeInc = 1.08                   // per second, far from the last congestion point
	minIncrease       = 4000.0                 // bit/s per second, floor of either increase
	responseExtra     = 100 * time.Millisecond // added to the RTT for the additive increase
	maxIncreaseStep   = time.Second            // longest time credited to one increase
	minDecreaseGap    = 100 * time.Millisecond // decreases are at least max(RTT, this) apart
	maxDecreaseGap    = 500 * time.Millisecond // ... and need not wait longer than this
	ackedHeadroom     = 1.5                    // increase never goes above ackedHeadroom × acked + ackedMargin
	ackedMargin       = 10000.0                // bit/s
	capacityAlpha     = 0.05                   // smoothing of the acked bitrate at congestion
	capacityStdMin    = 0.05                   // std. dev. bounds of that average, relative to it
	capacityStdMax    = 0.25
	capacityStds      = 3.0 // "near congestion" = within this many std. devs.
	defaultRTT        = 100 * time.Millisecond
	packetBitsInit    = 1200 * 8
)

type rcState int

const (
	rcHold rcState = iota
	rcIncrease
)

// rateControl is the delay-based AIMD controller.
type rateControl struct {
	rate            float64 // bit/s
	initial, lo, hi float64
	state           rcState
	last            int64 // ns, sender clock, of the previous update
	started         bool
	lastDecrease    int64
	decreased       bool
	avgMax, varMax  float64 // acked bitrate at congestion: mean (0 = unknown) and variance
	rtt             int64   // ns, smoothed feedback round trip
	rttKnown        bool
	packetBits      float64 // smoothed packet size
}

func newRateControl(c Config) rateControl {
	return rateControl{
		rate:       float64(c.Initial),
		initial:    float64(c.Initial),
		lo:         float64(c.Min),
		hi:         float64(c.Max),
		state:      rcIncrease,
		rtt:        int64(defaultRTT),
		packetBits: packetBitsInit,
	}
}

func (r *rateControl) observeRTT(sample int64) {
	sample = min(max(sample, 0), int64(5*time.Second))
	if !r.rttKnown {
		r.rtt, r.rttKnown = sample, true
		return
	}
	r.rtt += (sample - r.rtt) / 8
}

func (r *rateControl) observePacket(size int) {
	r.packetBits += 0.05 * (float64(size*8) - r.packetBits)
}

// update applies one detector verdict; called once per feedback packet that
// brought new arrivals. acked is the acknowledged bitrate, valid if ok.
func (r *rateControl) update(u Usage, acked float64, ok bool, now int64) {
	if !r.started {
		r.last, r.started = now, true
	}
	switch u {
	case UsageOverusing:
		r.decrease(acked, ok, now)
		r.state = rcHold
	case UsageUnderusing:
		r.state = rcHold // let the queue drain
	default:
		if r.state == rcIncrease {
			r.increase(acked, ok, now)
		}
		r.state = rcIncrease
	}
	r.last = now
}

func (r *rateControl) decrease(acked float64, ok bool, now int64) {
	gap := min(max(r.rtt, int64(minDecreaseGap)), int64(maxDecreaseGap))
	if r.decreased && now-r.lastDecrease < gap && !(ok && r.rate > 2*acked) {
		return
	}
	base := r.rate
	if ok {
		base = acked
		r.noteCongestion(acked)
	}
	if nr := decreaseFactor * base; nr < r.rate {
		r.rate = max(nr, r.lo)
	}
	r.lastDecrease, r.decreased = now, true
}

// noteCongestion folds the acked bitrate at an overuse into the running
// estimate of the path capacity.
func (r *rateControl) noteCongestion(acked float64) {
	if r.avgMax > 0 && acked < r.avgMax-capacityStds*r.std() {
		r.avgMax, r.varMax = 0, 0 // capacity dropped: start over
	}
	if r.avgMax == 0 {
		r.avgMax = acked
		return
	}
	d := acked - r.avgMax
	r.avgMax += capacityAlpha * d
	r.varMax = (1-capacityAlpha)*r.varMax + capacityAlpha*d*d
}

func (r *rateControl) std() float64 {
	return min(max(math.Sqrt(r.varMax), capacityStdMin*r.avgMax), capacityStdMax*r.avgMax)
}

func (r *rateControl) increase(acked float64, ok bool, now int64) {
	dt := float64(min(now-r.last, int64(maxIncreaseStep))) / 1e9
	if dt <= 0 {
		return
	}
	if ok && r.avgMax > 0 && acked > r.avgMax+capacityStds*r.std() {
		r.avgMax, r.varMax = 0, 0 // sending well above the old congestion point
	}
	var nr float64
	if ok && r.avgMax > 0 && acked >= r.avgMax-capacityStds*r.std() {
		resp := float64(r.rtt+int64(responseExtra)) / 1e9
		nr = r.rate + max(r.packetBits/resp, minIncrease)*dt
	} else {
		nr = max(r.rate*math.Pow(multiplicativeInc, dt), r.rate+minIncrease*dt)
	}
	if ok {
		// Application-limited: do not run ahead of what is sent, except
		// back up to the initial value.
		if lim := max(ackedHeadroom*acked+ackedMargin, r.initial); nr > lim {
			nr = max(lim, r.rate)
		}
	}
	r.rate = min(max(nr, r.lo), r.hi)
}

// Acknowledged bitrate: bytes reported received, bucketed by arrival time.
const (
	ackBucket   = 50 * time.Millisecond
	ackBuckets  = 20 // window = 1 s
	ackMinSpan  = 200 * time.Millisecond
	ackBackJump = time.Second // arrivals this far behind the newest restart the meter
)

type ackedRate struct {
	bytes   [ackBuckets]int64
	index   [ackBuckets]int64
	first   int64 // ns, receiver clock, first arrival since (re)start
	last    int64 // ns, newest arrival
	started bool
}

func (a *ackedRate) add(arr int64, size int) {
	if !a.started || arr < a.last-int64(ackBackJump) {
		*a = ackedRate{first: arr, last: arr, started: true}
		for i := range a.index {
			a.index[i] = math.MinInt64
		}
	}
	a.last = max(a.last, arr)
	k := a.bucket(arr)
	if k <= a.bucket(a.last)-ackBuckets {
		return
	}
	i := mod(k, ackBuckets)
	if a.index[i] != k {
		a.index[i], a.bytes[i] = k, 0
	}
	a.bytes[i] += int64(size)
}

// bucket numbers buckets from the first arrival, so that only differences
// of receiver timestamps matter.
func (a *ackedRate) bucket(arr int64) int64 {
	return floorDiv(arr-a.first, int64(ackBucket))
}

// rate returns the acknowledged bitrate over the last second of arrivals.
func (a *ackedRate) rate() (float64, bool) {
	if !a.started {
		return 0, false
	}
	cur := a.bucket(a.last)
	var sum int64
	for i, k := range a.index {
		if k > cur-ackBuckets && k <= cur {
			sum += a.bytes[i]
		}
	}
	start := a.first + max(0, (cur-ackBuckets+1)*int64(ackBucket))
	span := a.last - start
	if span < int64(ackMinSpan) {
		return 0, false
	}
	return float64(sum*8) * 1e9 / float64(span), true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func mod(a, n int64) int64 {
	m := a % n
	if m < 0 {
		m += n
	}
	return m
}
