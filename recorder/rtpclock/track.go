// Track clock: one track's RTP time to the recorder's wall clock, with the
// corrections of new sender reports slewed in rather than jumped.

package rtpclock

import "time"

// Slew is how fast a correction is worked off: at most this fraction of
// the media time that passes (5%: a 20 ms disagreement is gone after
// 400 ms of media).
const Slew = 0.05

// Jump is the disagreement past which a new mapping that lies ahead is
// taken at once (a gap in the file) instead of slewed to.
const Jump = time.Second

// Track maps one track's RTP timestamps to wall-clock time. Before the
// first sender report the mapping is anchored at the arrival of the first
// packet; each sender report replaces it. When a new mapping disagrees with
// the old at the current point, the difference is kept as a correction
// that shrinks by Slew of the media time passed, so times never jump
// backwards. Owned by one goroutine.
type Track struct {
	rate float64 // RTP clock rate, Hz
	un   Unwrapper

	mapped     bool
	anchorExt  int64     // extended RTP time of the anchor
	anchorWall time.Time // its wall-clock time
	fromSR     bool      // the anchor comes from a sender report

	correction time.Duration // added to the mapped time, slewed towards 0
	lastExt    int64         // extended RTP time of the last Wall call
	lastOut    time.Time     // the last time returned

	pendingSR   bool // a report came before the first packet
	pendingRTP  uint32
	pendingWall time.Time
}

// NewTrack returns a clock for a track whose RTP clock runs at rate Hz.
func NewTrack(rate uint32) *Track {
	if rate == 0 {
		rate = 90000
	}
	return &Track{rate: float64(rate)}
}

// Anchor offers the arrival time of a packet with RTP timestamp ts: the
// first one anchors the mapping until a sender report comes. Call it for
// each packet as it arrives, before Wall is asked about its frame.
func (c *Track) Anchor(ts uint32, arrival time.Time) {
	if !c.mapped {
		c.Wall(ts, arrival)
	}
}

// Wall returns the wall-clock time of RTP timestamp ts, whose packet
// arrived at arrival (used only until a sender report has come).
func (c *Track) Wall(ts uint32, arrival time.Time) time.Time {
	ext := c.un.Unwrap(ts)
	if !c.mapped {
		c.mapped, c.anchorExt, c.anchorWall, c.lastExt = true, ext, arrival, ext
		if c.pendingSR { // nothing returned yet: no continuity to keep
			c.pendingSR, c.fromSR = false, true
			c.anchorExt, c.anchorWall = c.un.Peek(c.pendingRTP), c.pendingWall
		}
	}
	if d := ext - c.lastExt; d > 0 && c.correction != 0 {
		step := time.Duration(float64(d) / c.rate * Slew * float64(time.Second))
		switch {
		case c.correction > step:
			c.correction -= step
		case c.correction < -step:
			c.correction += step
		default:
			c.correction = 0
		}
	}
	if ext > c.lastExt {
		c.lastExt = ext
	}
	out := c.at(ext).Add(c.correction)
	if out.Before(c.lastOut) && ext >= c.lastExt {
		out = c.lastOut
	}
	if out.After(c.lastOut) {
		c.lastOut = out
	}
	return out
}

// SenderReport takes a sender report of this track's SSRC: RTP time ts is
// wall-clock time wall (the report's NTP time on the recorder's clock, see
// Publisher.Local).
func (c *Track) SenderReport(ts uint32, wall time.Time) {
	if !c.mapped {
		c.pendingSR, c.pendingRTP, c.pendingWall = true, ts, wall
		return
	}
	before := c.at(c.lastExt).Add(c.correction)
	c.anchorExt, c.anchorWall, c.fromSR = c.un.Peek(ts), wall, true
	c.correction = before.Sub(c.at(c.lastExt))
	if c.correction < -Jump {
		c.correction = 0 // far behind: jump ahead, leaving a gap
	}
}

// Reset starts a new RTP time line (a new SSRC: another simulcast layer or
// a restarted sender) whose first packet is anchored at its arrival. Times
// stay monotonic: the new line is corrected to start no earlier than the
// last time returned.
func (c *Track) Reset() {
	last := c.lastOut
	*c = Track{rate: c.rate, lastOut: last}
}

// FromSR reports whether the mapping comes from a sender report.
func (c *Track) FromSR() bool { return c.fromSR }

func (c *Track) at(ext int64) time.Time {
	return c.anchorWall.Add(time.Duration(float64(ext-c.anchorExt) / c.rate * float64(time.Second)))
}

// SenderReportAt is a sender report taken to the recorder's clock: RTP
// time RTP is wall-clock time Wall.
type SenderReportAt struct {
	RTP  uint32
	Wall time.Time
}
