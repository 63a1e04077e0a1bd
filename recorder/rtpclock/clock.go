// Package rtpclock maps a publisher's RTP timestamps to wall-clock time on
// the recorder's clock: through the publisher's RTCP sender reports once
// they come, through packet arrival times before. Each type here is owned by
// one goroutine (the recorder's) and has no lock.
package rtpclock

import (
	"time"
)

// Unwrapper extends 32-bit RTP timestamps to 64 bits across wraparound.
// Timestamps may come slightly out of order: a step back of less than half
// the range is taken as an older timestamp, not a wrap.
type Unwrapper struct {
	started bool
	last    uint32
	lastExt int64
}

// Unwrap returns ts extended to 64 bits; the first timestamp extends to
// itself.
func (u *Unwrapper) Unwrap(ts uint32) int64 {
	ext := u.Peek(ts)
	if !u.started || ext > u.lastExt {
		u.started, u.last, u.lastExt = true, ts, ext
	}
	return ext
}

// Peek returns what Unwrap would return, without moving the reference.
func (u *Unwrapper) Peek(ts uint32) int64 {
	if !u.started {
		return int64(ts)
	}
	return u.lastExt + int64(int32(ts-u.last))
}

// NTPTime converts a 64-bit NTP timestamp (seconds since 1900 in the high
// 32 bits, fraction in the low 32) to a time.Time.
func NTPTime(ntp uint64) time.Time {
	const ntpToUnix = 2208988800 // seconds from 1900 to 1970
	sec := int64(ntp>>32) - ntpToUnix
	frac := int64((ntp & 0xffffffff) * 1e9 >> 32)
	return time.Unix(sec, frac)
}

// Publisher maps one publisher's NTP clock (the clock of its sender
// reports) to the recorder's clock. All tracks of a participant share one,
// so the relation between their sender reports, which is what keeps their
// audio and video in sync, is kept as it is.
type Publisher struct {
	set    bool
	offset time.Duration // recorder clock minus publisher clock
}

// Local returns the recorder-clock time of the publisher's NTP time ntp,
// given in a sender report that arrived at arrival. The first report fixes
// the offset between the two clocks (its network delay included); later
// ones are mapped with it, so a publisher clock that disagrees with ours
// by seconds does not matter.
func (p *Publisher) Local(ntp uint64, arrival time.Time) time.Time {
	t := NTPTime(ntp)
	if !p.set {
		p.set, p.offset = true, arrival.Sub(t)
	}
	return t.Add(p.offset)
}
