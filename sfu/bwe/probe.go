package bwe

import "time"

// Probe constants; see the package documentation.
const (
	probeSlots       = 8                     // clusters tracked at once
	probeMinReceived = 5                     // packets reported received before a cluster is measured
	probeMinReported = 0.8                   // ... and this fraction of its packets reported at all
	probeSettle      = 20 * time.Millisecond // no packet of the newest cluster sent for this long: it is complete
	probeMinSendSpan = 10 * time.Millisecond // shorter clusters measure nothing
	probeMaxSpan     = time.Second           // longer send or receive spans measure nothing
	probeSaturated   = 0.9                   // receive rate below this × send rate: the path saturated
	probeMaxLoss     = 0.10                  // clusters with at least this loss raise nothing
	probeUtilization = 0.95                  // an accepted probe sets the rate to this × its result
	probeNoTag       = uint8(0)              // sentPacket.probe of an ordinary packet
	probeFirstTag    = uint8(1)              // sentPacket.probe = slot index + probeFirstTag
)

// ProbeResult describes the most recently measured probe cluster.
type ProbeResult struct {
	Cluster int // cluster id as given to SentProbe; 0 if none was measured yet
	// SendRate and ReceiveRate are in bit/s: the cluster's bytes except its
	// last-sent packet over its send span, and its received bytes except
	// the first to arrive over its arrival span.
	SendRate, ReceiveRate int
	// Rate is the measured capacity in bit/s: min(SendRate, ReceiveRate),
	// or 0 if the cluster's spans were too short or too long to mean
	// anything.
	Rate int
	// Saturated is set when ReceiveRate < 0.9 × SendRate: the probe filled
	// the path, so Rate is its capacity rather than a lower bound.
	Saturated bool
	// Loss is the fraction of the cluster's reported packets reported lost.
	Loss float64
	// Raised is set when the result raised the delay-based rate.
	Raised bool
}

// probeCluster accumulates one cluster's send and feedback statistics.
// Send times are in the sender clock, arrivals in the receiver clock, both ns.
type probeCluster struct {
	id                  int
	order               uint64 // allocation order, for eviction and "a newer cluster exists"
	active              bool   // started and not yet measured or evicted
	firstExt, lastExt   int64  // extended sequence numbers of its first and last packets
	sent, sentBytes     int
	firstSend, lastSend int64
	lastSentSize        int // size of the packet with the latest send time
	reported, received  int
	receivedBytes       int
	firstArr, lastArr   int64
	firstArrSize        int // size of the packet with the earliest arrival
}

// probeSet is the table of clusters in flight. Packets in the send history
// refer to a slot by tag; a slot reused by a newer cluster is told apart
// from its predecessor by the extended sequence number range.
type probeSet struct {
	c      [probeSlots]probeCluster
	orders uint64 // clusters allocated so far
	newest int    // highest cluster id started; older ids start nothing
	last   ProbeResult
}

// sent records a probe packet of cluster id and returns the tag for its
// history slot, or probeNoTag if the packet is not to be measured (an id
// older than every open cluster, or of a cluster already measured).
func (s *probeSet) sent(id int, ext, t int64, size int) uint8 {
	if id <= 0 {
		return probeNoTag
	}
	for i := range s.c {
		c := &s.c[i]
		if !c.active || c.id != id {
			continue
		}
		c.lastExt = ext
		c.sent++
		c.sentBytes += size
		if t >= c.lastSend {
			c.lastSend, c.lastSentSize = t, size
		}
		c.firstSend = min(c.firstSend, t)
		return uint8(i) + probeFirstTag
	}
	if id <= s.newest {
		return probeNoTag
	}
	s.newest = id
	slot := 0
	for i := range s.c {
		if !s.c[i].active {
			slot = i
			break
		}
		if s.c[i].order < s.c[slot].order {
			slot = i
		}
	}
	s.orders++
	s.c[slot] = probeCluster{
		id: id, order: s.orders, active: true,
		firstExt: ext, lastExt: ext,
		sent: 1, sentBytes: size,
		firstSend: t, lastSend: t, lastSentSize: size,
	}
	return uint8(slot) + probeFirstTag
}

// cluster returns the open cluster that a history slot's tag and extended
// sequence number refer to, or nil.
func (s *probeSet) cluster(tag uint8, ext int64) *probeCluster {
	if tag == probeNoTag {
		return nil
	}
	c := &s.c[tag-probeFirstTag]
	if !c.active || ext < c.firstExt || ext > c.lastExt {
		return nil
	}
	return c
}

// reportedLost counts a packet of c reported lost for the first time.
func (c *probeCluster) reportedLost() { c.reported++ }

// reportedReceived counts a packet of c reported received; first is false
// if it had been reported lost before.
func (c *probeCluster) reportedReceived(first bool, size int, arr int64) {
	if first {
		c.reported++
	}
	c.received++
	c.receivedBytes += size
	if c.received == 1 || arr < c.firstArr {
		c.firstArr, c.firstArrSize = arr, size
	}
	if c.received == 1 || arr > c.lastArr {
		c.lastArr = arr
	}
}

// ready reports whether c has been reported well enough to be measured at
// sender time now: enough packets received, most of them reported, and no
// more packets expected (a newer cluster started, or none sent lately).
func (s *probeSet) ready(c *probeCluster, now int64) bool {
	if !c.active || c.received < probeMinReceived ||
		float64(c.reported) < probeMinReported*float64(c.sent) {
		return false
	}
	return c.order < s.orders || now-c.lastSend >= int64(probeSettle)
}

// measure computes c's result, without deciding what it may raise.
func (c *probeCluster) measure() ProbeResult {
	r := ProbeResult{Cluster: c.id}
	if c.reported > 0 {
		r.Loss = float64(c.reported-c.received) / float64(c.reported)
	}
	sendSpan, recvSpan := c.lastSend-c.firstSend, c.lastArr-c.firstArr
	if sendSpan < int64(probeMinSendSpan) || sendSpan > int64(probeMaxSpan) ||
		recvSpan <= 0 || recvSpan > int64(probeMaxSpan) {
		return r
	}
	send := float64(c.sentBytes-c.lastSentSize) * 8e9 / float64(sendSpan)
	recv := float64(c.receivedBytes-c.firstArrSize) * 8e9 / float64(recvSpan)
	r.SendRate, r.ReceiveRate = int(send), int(recv)
	r.Saturated = recv < probeSaturated*send
	r.Rate = int(min(send, recv))
	return r
}

// checkProbes measures every cluster that has become ready during this
// feedback and applies the results. overusing is the delay detector's
// verdict for this feedback. Called from Feedback with e.mu held, after the
// rate controller's update.
func (e *Estimator) checkProbes(overusing bool) {
	s := &e.probes
	for i := range s.c {
		c := &s.c[i]
		if !s.ready(c, e.fbNow) {
			continue
		}
		c.active = false
		r := c.measure()
		if r.Rate > 0 && !overusing && r.Loss < probeMaxLoss {
			r.Raised = e.applyProbe(float64(r.Rate))
		}
		if r.Cluster >= s.last.Cluster {
			s.last = r
		}
	}
}

// applyProbe raises the delay-based rate and the loss-based limit to
// probeUtilization × rate where that is higher (the loss-based limit only
// unless the last loss window called for a decrease). It reports whether
// either was raised.
func (e *Estimator) applyProbe(rate float64) bool {
	target := min(probeUtilization*rate, e.rc.hi)
	raised := false
	if target > e.rc.rate {
		e.rc.rate = target
		raised = true
	}
	// A loss-limited estimate (the loss-based limit below the delay-based
	// rate) is lifted by a clean probe too; the last loss window must not
	// itself say the link is losing heavily.
	if e.loss.fraction <= lossHigh && target > e.loss.rate {
		e.loss.rate = target
		raised = true
	}
	return raised
}

// ProbeResult returns the result of the most recently measured probe
// cluster (the one with the highest id); Cluster is 0 until one has been
// measured.
func (e *Estimator) ProbeResult() ProbeResult {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.probes.last
}
