package bwe

import "time"

// Loss-based controller constants; see the package documentation.
const (
	lossMinPackets = 20          // a loss window needs at least this many reported packets
	lossMaxPackets = 100         // ... and closes at this many
	lossWindow     = time.Second // ... or after this long
	lossHigh       = 0.10        // above: decrease
	lossLow        = 0.02        // below: increase
	lossIncrease   = 0.05        // per second
)

// lossControl is the loss-based limit on the estimate. It starts at the
// maximum, so it does not constrain anything until loss has been seen.
type lossControl struct {
	rate        float64 // bit/s
	lo, hi      float64
	lost, total int
	winStart    int64 // ns, sender clock
	lastUpdate  int64
	updated     bool
	fraction    float64 // loss fraction of the last closed window
}

func newLossControl(c Config) lossControl {
	return lossControl{rate: float64(c.Max), lo: float64(c.Min), hi: float64(c.Max)}
}

// packet counts one packet reported for the first time.
func (l *lossControl) packet(received bool, now int64) {
	if l.total == 0 {
		l.winStart = now
	}
	l.total++
	if !received {
		l.lost++
	}
}

// recovered is called when a packet reported lost is later reported received.
func (l *lossControl) recovered() {
	if l.lost > 0 {
		l.lost--
	}
}

// maybeUpdate closes the window if it is large or old enough and applies it.
// est is the current combined estimate.
func (l *lossControl) maybeUpdate(now int64, est float64) {
	if l.total < lossMinPackets || (l.total < lossMaxPackets && now-l.winStart < int64(lossWindow)) {
		return
	}
	f := float64(l.lost) / float64(l.total)
	l.fraction = f
	l.lost, l.total = 0, 0
	dt := 0.0
	if l.updated {
		dt = float64(min(now-l.lastUpdate, int64(time.Second))) / 1e9
	}
	l.lastUpdate, l.updated = now, true
	switch {
	case f > lossHigh:
		l.rate = min(l.rate, est) * (1 - 0.5*f)
	case f < lossLow:
		l.rate *= 1 + lossIncrease*dt
	default:
		l.rate = min(l.rate, est) // hold: the delay-based side may not push past today's rate
	}
	l.rate = min(max(l.rate, l.lo), l.hi)
}
