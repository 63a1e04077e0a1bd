package sfu

import (
	"time"

	"github.com/pion/rtcp"
)

// RTCP reports. Publishers' sender reports map each layer's RTP clock to
// the publisher's NTP clock; down tracks send sender reports in the same
// NTP clock with their rewritten RTP timestamps, so a subscriber lines audio
// and video up as the publisher captured them (lip sync) whatever the SFU
// did to timestamps. Subscribers' receiver reports become loss, jitter and
// round-trip metrics.

// srInterval is how often down tracks send sender reports.
const srInterval = time.Second

// srMaxAge is how old a publisher's sender report may be and still anchor a
// down track's reports; older ones fall back to the SFU's own clock.
const srMaxAge = 10 * time.Second

// ntpEpochOffset is the number of seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2_208_988_800

// toNTP converts a wall-clock time to a 64-bit NTP timestamp.
func toNTP(t time.Time) uint64 {
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := (uint64(t.Nanosecond()) << 32) / uint64(time.Second)
	return secs<<32 | frac
}

// ntpAdd adds a non-negative duration to an NTP timestamp.
func ntpAdd(n uint64, d time.Duration) uint64 {
	secs := uint64(d / time.Second)
	frac := (uint64(d%time.Second) << 32) / uint64(time.Second)
	return n + secs<<32 + frac
}

// rtpTicks converts a duration to RTP clock ticks.
func rtpTicks(d time.Duration, clockRate uint32) uint32 {
	return uint32(d.Seconds() * float64(clockRate))
}

// senderInfo is the last sender report a publisher sent for one layer.
type senderInfo struct {
	ntp uint64
	rtp uint32
	at  time.Time // when it arrived
}

// noteSenderReports records the sender reports in an RTCP compound packet
// read for layer l.
func (l *layer) noteSenderReports(pkts []rtcp.Packet, now time.Time) {
	l.noteSenderReportsFrom(pkts, uint32(l.remote.SSRC()), now)
}

// noteSenderReportsFrom is noteSenderReports for the layer's SSRC ssrc.
func (l *layer) noteSenderReportsFrom(pkts []rtcp.Packet, ssrc uint32, now time.Time) {
	for _, p := range pkts {
		if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == ssrc {
			l.sr.Store(&senderInfo{ntp: sr.NTPTime, rtp: sr.RTPTime, at: now})
			if l.track != nil {
				l.track.senderReported(ssrc, sr.NTPTime, sr.RTPTime)
			}
		}
	}
}

// senderReport builds this down track's sender report for now, or nil when
// it has sent nothing it could describe yet. It uses the forwarded layer's
// latest publisher report when fresh, else the SFU's clock and the last
// forwarded frame.
func (d *downTrack) senderReport(now time.Time) *rtcp.SenderReport {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.bound || !d.connected || d.current == layerNone || d.sentPackets == 0 {
		return nil
	}
	var ntpNow uint64
	var rtpNow uint32
	l := d.src.layers[d.current].Load()
	var si *senderInfo
	if l != nil {
		si = l.sr.Load()
	}
	switch {
	case si != nil && now.Sub(si.at) < srMaxAge:
		// A report that arrived after now (now is the allocation tick's
		// time) is used as of its arrival: the pair stays consistent.
		el := max(now.Sub(si.at), 0)
		ntpNow = ntpAdd(si.ntp, el)
		rtpNow = si.rtp + d.ts.offset + rtpTicks(el, d.clockRate)
	case !d.lastFwd.IsZero() && !now.Before(d.lastFwd):
		ntpNow = toNTP(now)
		rtpNow = d.lastFwdTS + rtpTicks(now.Sub(d.lastFwd), d.clockRate)
	default:
		return nil
	}
	d.lastSRMid = uint32(ntpNow >> 16)
	d.lastSRAt = now
	return &rtcp.SenderReport{SSRC: d.ssrc, NTPTime: ntpNow, RTPTime: rtpNow, PacketCount: d.sentPackets, OctetCount: d.sentOctets}
}

// receiverReport turns a subscriber's report block about this down track
// into loss, jitter and round-trip observations.
func (d *downTrack) receiverReport(r rtcp.ReceptionReport, now time.Time, m *metrics) {
	d.mu.Lock()
	lastMid, lastAt, clock := d.lastSRMid, d.lastSRAt, d.clockRate
	d.mu.Unlock()
	kind := d.src.kind
	m.loss.WithLabelValues(kind).Observe(float64(r.FractionLost) / 256)
	if clock > 0 {
		m.jitter.WithLabelValues(kind).Observe(float64(r.Jitter) / float64(clock))
	}
	// The round trip: time since our report, less the time the subscriber
	// held it. Both sides of the subtraction use the SFU's clock, so the
	// NTP clock the report was written in does not matter.
	if r.LastSenderReport != 0 && r.LastSenderReport == lastMid && !lastAt.IsZero() {
		held := time.Duration(uint64(r.Delay) * uint64(time.Second) >> 16)
		if rtt := now.Sub(lastAt) - held; rtt >= 0 && rtt < time.Minute {
			d.mu.Lock()
			d.rtt = rtt
			d.mu.Unlock()
			m.rtt.WithLabelValues(kind).Observe(rtt.Seconds())
		}
	}
}
