package bwe

import (
	"sync"
	"sync/atomic"
	"time"
)

// Config sets the estimator's bounds, in bits per second. Zero fields take
// the defaults below; Initial is clamped into [Min, Max].
type Config struct {
	Initial, Min, Max int
}

// Defaults for zero Config fields.
const (
	DefaultInitial = 1_000_000
	DefaultMin     = 100_000
	DefaultMax     = 20_000_000
)

const (
	ringSize = 4096 // send history, packets; a power of two
	ringMask = ringSize - 1
)

// sentPacket is one slot of the send history.
type sentPacket struct {
	send  int64  // ns since the estimator's first Sent or Feedback
	seq   uint32 // low 32 bits of the extended sequence number, to detect stale slots
	size  uint16 // bytes
	state uint8  // stateUnreported, stateLost or stateReceived
	probe uint8  // probeNoTag, or the probe cluster's slot + probeFirstTag
}

const (
	stateUnreported uint8 = iota
	stateLost
	stateReceived
)

// Stats is a snapshot of the estimator for metrics and debugging.
type Stats struct {
	Estimate   int // bit/s, as returned by Estimate
	DelayBased int // bit/s, the delay-based controller's rate
	LossBased  int // bit/s, the loss-based limit (Max until loss is seen)
	// AckedBitrate is the bitrate the receiver reported receiving over the
	// last second of arrivals; 0 until known.
	AckedBitrate int
	// LossFraction is the fraction of packets reported lost in the last
	// closed loss window (20–100 packets, up to 1 s).
	LossFraction float64
	Usage        Usage         // delay trend state
	Trend        float64       // gain-scaled delay trend, ms
	Threshold    float64       // adaptive threshold the trend is compared with, ms
	RTT          time.Duration // smoothed send-to-feedback time
}

// Estimator is a send-side bandwidth estimator for one connection. Its
// methods are safe for concurrent use. It starts no goroutines.
type Estimator struct {
	estimate atomic.Int64 // published by Feedback, read by Estimate

	mu      sync.Mutex
	cfg     Config
	base    time.Time // origin of the sender clock
	based   bool
	sentExt int64 // extended sequence number of the newest sent packet
	ring    [ringSize]sentPacket

	// per-feedback scratch, valid while Feedback runs
	fbNow    int64 // sender clock
	fbArr    int64 // receiver clock of the last received packet walked
	fbExt    int64 // extended sequence number of the next status
	fbNewest int64 // send time of the newest packet newly reported received
	fbNew    int   // packets newly reported received

	refTicks int64 // unwrapped reference time, 64 ms ticks
	hasRef   bool
	delay    delayDetector
	acked    ackedRate
	rc       rateControl
	loss     lossControl
	probes   probeSet
}

// New returns an estimator whose estimate starts at cfg.Initial.
func New(cfg Config) *Estimator {
	if cfg.Min <= 0 {
		cfg.Min = DefaultMin
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	cfg.Max = max(cfg.Max, cfg.Min)
	if cfg.Initial <= 0 {
		cfg.Initial = DefaultInitial
	}
	cfg.Initial = min(max(cfg.Initial, cfg.Min), cfg.Max)
	e := &Estimator{
		cfg:     cfg,
		sentExt: -1,
		delay:   newDelayDetector(),
		rc:      newRateControl(cfg),
		loss:    newLossControl(cfg),
	}
	e.estimate.Store(int64(cfg.Initial))
	return e
}

// Sent records one packet about to be sent and returns the transport-wide
// sequence number to put in its header extension. size is the RTP packet
// size in bytes. Called for every egress packet, from any goroutine; it holds
// the estimator's mutex for a few stores and allocates nothing.
func (e *Estimator) Sent(size int, now time.Time) uint16 {
	return e.sent(size, now, 0)
}

// SentProbe is Sent for a packet of probe cluster id cluster: typically a
// padding-only packet, one of a short run paced at the rate to be probed.
// Cluster ids are chosen by the caller, are positive, and increase from one
// cluster to the next; a packet whose cluster id is not positive, or older
// than the newest cluster and no longer open, is recorded as an ordinary
// packet. Like Sent it is safe for concurrent use and allocates nothing.
func (e *Estimator) SentProbe(size int, now time.Time, cluster int) uint16 {
	return e.sent(size, now, cluster)
}

func (e *Estimator) sent(size int, now time.Time, cluster int) uint16 {
	size = min(max(size, 0), 0xffff)
	e.mu.Lock()
	t := e.clock(now)
	e.sentExt++
	ext := e.sentExt
	tag := probeNoTag
	if cluster > 0 {
		tag = e.probes.sent(cluster, ext, t, size)
	}
	e.ring[ext&ringMask] = sentPacket{send: t, seq: uint32(ext), size: uint16(size), probe: tag}
	e.mu.Unlock()
	return uint16(ext)
}

// Feedback processes one transport-wide feedback RTCP packet (the whole
// packet, PT=205 FMT=15, taken out of its compound packet). Called once per
// feedback packet, typically every 50–100 ms. Malformed input returns an
// error wrapping one of the Err values and changes nothing. Statuses for
// packets no longer in the send history (4096 packets) are ignored, as are
// repeated reports of a packet already reported received.
func (e *Estimator) Feedback(b []byte, now time.Time) error {
	h, l, err := checkFeedback(b)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fbNow = e.clock(now)
	raw := int64(h.RefTime / refTimeUnit)
	if e.hasRef {
		e.refTicks = extendRef(raw, e.refTicks)
	} else {
		e.refTicks, e.hasRef = raw, true
	}
	e.fbArr = e.refTicks * int64(refTimeUnit)
	e.fbExt = extendSeqBefore(h.BaseSeq, e.sentExt)
	e.fbNew = 0
	emitFeedback(b, h, l, e.onStatus)

	u := e.delay.usage
	if e.delay.sawOveruse {
		u = UsageOverusing
	}
	if e.fbNew > 0 {
		e.rc.observeRTT(e.fbNow - e.fbNewest)
		e.delay.sawOveruse = false
		acked, ok := e.acked.rate()
		e.rc.update(u, acked, ok, e.fbNow)
	}
	e.checkProbes(u == UsageOverusing)
	e.loss.maybeUpdate(e.fbNow, e.combined())
	e.estimate.Store(int64(e.combined()))
	return nil
}

// onStatus handles one packet status during Feedback, with e.mu held.
func (e *Estimator) onStatus(_ uint16, received bool, delta time.Duration) {
	ext := e.fbExt
	e.fbExt++
	if received {
		e.fbArr += int64(delta)
	}
	if ext > e.sentExt || ext <= e.sentExt-ringSize || ext < 0 {
		return
	}
	p := &e.ring[ext&ringMask]
	if p.seq != uint32(ext) || p.state == stateReceived {
		return
	}
	c := e.probes.cluster(p.probe, ext)
	if !received {
		if p.state == stateUnreported {
			p.state = stateLost
			e.loss.packet(false, e.fbNow)
			if c != nil {
				c.reportedLost()
			}
		}
		return
	}
	if p.state == stateLost {
		e.loss.recovered()
	} else {
		e.loss.packet(true, e.fbNow)
	}
	arr := e.fbArr
	if c != nil {
		c.reportedReceived(p.state == stateUnreported, int(p.size), arr)
	}
	p.state = stateReceived
	e.acked.add(arr, int(p.size))
	e.rc.observePacket(int(p.size))
	e.delay.add(p.send, arr)
	if e.fbNew == 0 || p.send > e.fbNewest {
		e.fbNewest = p.send
	}
	e.fbNew++
}

// combined is the estimate: the lower of the two controllers, within bounds.
func (e *Estimator) combined() float64 {
	r := min(e.rc.rate, e.loss.rate)
	return min(max(r, float64(e.cfg.Min)), float64(e.cfg.Max))
}

// clock converts now to the estimator's sender clock (ns since the first
// call). Called with e.mu held.
func (e *Estimator) clock(now time.Time) int64 {
	if !e.based {
		e.base, e.based = now, true
	}
	return int64(now.Sub(e.base))
}

// Estimate returns the current target bitrate in bits per second. It reads
// one atomic value and may be called as often as needed.
func (e *Estimator) Estimate() int {
	return int(e.estimate.Load())
}

// Stats returns a snapshot of the estimator's state.
func (e *Estimator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Stats{
		Estimate:     int(e.combined()),
		DelayBased:   int(e.rc.rate),
		LossBased:    int(e.loss.rate),
		LossFraction: e.loss.fraction,
		Usage:        e.delay.usage,
		Trend:        e.delay.modified,
		Threshold:    e.delay.threshold,
		RTT:          time.Duration(e.rc.rtt),
	}
	if a, ok := e.acked.rate(); ok {
		s.AckedBitrate = int(a)
	}
	return s
}
