package bwe

import (
	"math"
	"time"
)

// Usage is the delay detector's verdict on the path's queue.
type Usage int

// Usage values.
const (
	UsageNormal Usage = iota
	UsageOverusing
	UsageUnderusing
)

func (u Usage) String() string {
	switch u {
	case UsageOverusing:
		return "overusing"
	case UsageUnderusing:
		return "underusing"
	}
	return "normal"
}

// Delay-based detector constants; see the package documentation.
const (
	groupSpan        = 5 * time.Millisecond   // send-time length of a packet group
	burstGap         = 5 * time.Millisecond   // arrival gap below which a catching-up packet joins the group
	maxBurst         = 100 * time.Millisecond // longest arrival span of such a burst
	resetGap         = 3 * time.Second        // a group delta beyond this restarts the detector
	trendWindow      = 20                     // groups in the regression
	trendMinPoints   = 10                     // a regression over fewer points is not trusted
	smoothing        = 0.9                    // weight of the old value in the delay smoother
	trendGain        = 4.0                    // multiplies slope × min(groups, trendMaxGroups)
	trendMaxGroups   = 60                     // cap on the group count factor
	thresholdInit    = 12.5                   // ms
	thresholdMin     = 6.0                    // ms
	thresholdMax     = 600.0                  // ms
	thresholdUp      = 0.01                   // adaptation rate when |trend| > threshold, per ms
	thresholdDown    = 0.00018                // adaptation rate when |trend| < threshold, per ms
	thresholdSkip    = 15.0                   // ms; trend this far above threshold does not adapt it
	thresholdMaxStep = 100.0                  // ms; cap on the time step of one adaptation
	overuseTime      = 10.0                   // ms the trend must stay above the threshold
)

// group is a run of packets sent within groupSpan of each other.
type group struct {
	firstSend, lastSend int64 // ns, sender clock
	firstArr, lastArr   int64 // ns, receiver clock
	n                   int
}

// delayDetector turns (send time, arrival time) pairs into a Usage. It is
// not safe for concurrent use; the Estimator serialises calls.
type delayDetector struct {
	cur, prev group
	hasPrev   bool

	// trendline state
	acc, smoothed float64 // ms
	originArr     int64   // ns; x origin of the regression
	xs, ys        [trendWindow]float64
	filled, head  int
	groups        int // group deltas seen, capped at trendMaxGroups
	trend         float64

	// overuse detector state
	threshold  float64 // ms
	lastAdapt  int64   // ns, receiver clock
	adapted    bool    // lastAdapt is set
	overTime   float64 // ms spent above threshold; <0 when not above
	overCount  int
	prevTrend  float64
	modified   float64 // last gain-scaled trend, ms
	usage      Usage
	sawOveruse bool // latched until the Estimator reads it
}

func newDelayDetector() delayDetector {
	return delayDetector{threshold: thresholdInit, overTime: -1}
}

// reset forgets the groups and the trend but keeps the adapted threshold.
func (d *delayDetector) reset() {
	thr := d.threshold
	*d = newDelayDetector()
	d.threshold = thr
}

// add feeds one received packet, in feedback (sequence) order.
func (d *delayDetector) add(send, arr int64) {
	if d.cur.n == 0 {
		d.cur = group{firstSend: send, lastSend: send, firstArr: arr, lastArr: arr, n: 1}
		return
	}
	if send < d.cur.firstSend {
		return // reordered packet from an older group: no information
	}
	if d.inGroup(send, arr) {
		d.cur.lastSend = max(d.cur.lastSend, send)
		d.cur.lastArr = max(d.cur.lastArr, arr)
		d.cur.n++
		return
	}
	if d.hasPrev {
		d.compare(d.cur.lastSend-d.prev.lastSend, d.cur.lastArr-d.prev.lastArr, d.cur.lastArr)
	}
	d.prev, d.hasPrev = d.cur, true
	d.cur = group{firstSend: send, lastSend: send, firstArr: arr, lastArr: arr, n: 1}
}

// inGroup reports whether a packet belongs to the current group: sent within
// groupSpan of its first packet, or part of a burst that arrived faster than
// it was sent (a queue or a stalled receiver releasing packets at once).
func (d *delayDetector) inGroup(send, arr int64) bool {
	if send-d.cur.firstSend <= int64(groupSpan) {
		return true
	}
	arrGap := arr - d.cur.lastArr
	sendGap := send - d.cur.lastSend
	return arrGap >= 0 && arrGap <= int64(burstGap) && arrGap <= sendGap &&
		arr-d.cur.firstArr < int64(maxBurst)
}

// compare processes the delay variation between two consecutive groups.
func (d *delayDetector) compare(sendDelta, arrDelta, arrNow int64) {
	if arrDelta < 0 {
		return // reordering across groups
	}
	if arrDelta > int64(resetGap) || abs64(arrDelta-sendDelta) > int64(resetGap) {
		d.reset()
		return
	}
	variation := ms(arrDelta - sendDelta)
	if d.groups < trendMaxGroups {
		d.groups++
	}
	if d.filled == 0 && d.head == 0 {
		d.originArr = arrNow
	}
	d.acc += variation
	d.smoothed = smoothing*d.smoothed + (1-smoothing)*d.acc
	d.xs[d.head] = ms(arrNow - d.originArr)
	d.ys[d.head] = d.smoothed
	d.head = (d.head + 1) % trendWindow
	if d.filled < trendWindow {
		d.filled++
	}
	if d.filled >= trendMinPoints {
		if s, ok := slope(d.xs[:d.filled], d.ys[:d.filled]); ok {
			d.trend = s
		}
	}
	d.detect(ms(sendDelta), arrNow)
}

// detect compares the gain-scaled trend with the adaptive threshold.
func (d *delayDetector) detect(sendDeltaMs float64, now int64) {
	if d.groups < 2 {
		return
	}
	m := float64(d.groups) * d.trend * trendGain
	d.modified = m
	switch {
	case m > d.threshold:
		if d.overTime < 0 {
			d.overTime = sendDeltaMs / 2
		} else {
			d.overTime += sendDeltaMs
		}
		d.overCount++
		if d.overTime > overuseTime && d.overCount > 1 && d.trend >= d.prevTrend {
			d.overTime, d.overCount = 0, 0
			d.usage = UsageOverusing
			d.sawOveruse = true
		}
	case m < -d.threshold:
		d.overTime, d.overCount = -1, 0
		d.usage = UsageUnderusing
	default:
		d.overTime, d.overCount = -1, 0
		d.usage = UsageNormal
	}
	d.prevTrend = d.trend
	d.adapt(m, now)
}

// adapt moves the threshold toward |m|: quickly up, slowly down, so that a
// noisy path raises it and a quiet one lowers it again over tens of seconds.
func (d *delayDetector) adapt(m float64, now int64) {
	if !d.adapted {
		d.lastAdapt, d.adapted = now, true
	}
	am := math.Abs(m)
	if am > d.threshold+thresholdSkip {
		d.lastAdapt = now
		return
	}
	k := thresholdDown
	if am > d.threshold {
		k = thresholdUp
	}
	dt := min(ms(now-d.lastAdapt), thresholdMaxStep)
	d.threshold += k * (am - d.threshold) * dt
	d.threshold = min(max(d.threshold, thresholdMin), thresholdMax)
	d.lastAdapt = now
}

// slope returns the least-squares slope of y over x.
func slope(xs, ys []float64) (float64, bool) {
	var sx, sy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
	}
	n := float64(len(xs))
	mx, my := sx/n, sy/n
	var num, den float64
	for i := range xs {
		dx := xs[i] - mx
		num += dx * (ys[i] - my)
		den += dx * dx
	}
	if den == 0 {
		return 0, false
	}
	return num / den, true
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
