package sfu

import (
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Bandwidth probing. The estimator only trusts rates it has seen delivered
// (it never rises far above the acknowledged bitrate), and the allocator
// only sends what the estimate allows, so a subscriber held on a low layer
// could stay there on a link that has long recovered. When the allocator
// gives a subscriber less than its tracks ask for, the participant sends a
// probe cluster: about probeDuration of padding-only packets on a video
// down track's RTX stream at the rate the subscriber would need. The
// estimator measures what arrived and, when the link carried it without
// queueing or loss, raises its estimate at once. A probe that raised
// nothing doubles the wait before the next one, up to probeMaxGap.
const (
	probeDuration   = 30 * time.Millisecond
	probeMinPackets = 5
	probeMaxPackets = 200
	// probePadding is the padding per probe packet: RTP padding is counted
	// in one byte, so 255 is the most a padding-only packet carries.
	probePadding = 255
	probeMinGap  = 3 * time.Second
	probeMaxGap  = 30 * time.Second
	// probeMaxFactor bounds a probe's rate to this many times the current
	// estimate, so a wish far beyond it is approached in steps.
	probeMaxFactor = 3
	// probeOvershoot is how far above the wanted rate a probe goes: the
	// estimator takes a little less than what a probe measured, and a
	// measurement reads a little low while media shares the link.
	probeOvershoot = 1.3
)

// prober is a participant's probing state; only its allocation loop uses it.
type prober struct {
	cluster int       // id of the last cluster sent
	next    time.Time // earliest next probe
	gap     time.Duration
	pending bool // the last cluster's result has not been looked at
	// A probe that raised the estimate to raisedTo is judged again at
	// judgeAt: if the estimate has fallen back well below it by then (a
	// burst got through a policer that the media rate does not), the probe
	// counts as failed.
	raisedTo int64
	judgeAt  time.Time
}

// probeJudgeAfter is how long after a successful probe the estimate must
// hold for the probe to count as a success: the earliest next probe, so a
// failure is known before it.
const probeJudgeAfter = probeMinGap

// maybeProbe sends a probe cluster toward want bits/s when the estimate
// (budget) falls short of it and the backoff allows. It runs on the
// allocation loop and takes about probeDuration.
func (p *Participant) maybeProbe(now time.Time, budget, want int64) {
	pr := &p.probe
	if pr.pending {
		pr.pending = false
		if res := p.bwe.ProbeResult(); res.Cluster == pr.cluster && res.Raised {
			pr.gap = probeMinGap
			pr.raisedTo, pr.judgeAt = int64(p.bwe.Estimate()), now.Add(probeJudgeAfter)
		} else {
			pr.gap = min(max(2*pr.gap, probeMinGap), probeMaxGap)
		}
		pr.next = now.Add(pr.gap)
	}
	if pr.raisedTo > 0 && !now.Before(pr.judgeAt) {
		if budget < pr.raisedTo*85/100 {
			pr.gap = min(max(2*pr.gap, probeMinGap), probeMaxGap)
			pr.next = now.Add(pr.gap)
		}
		pr.raisedTo = 0
	}
	if want <= budget || now.Before(pr.next) {
		return
	}
	d := p.probeTrack()
	if d == nil {
		return
	}
	rate := min(int64(float64(want)*probeOvershoot), probeMaxFactor*budget, maxEstimate)
	pr.cluster++
	pr.pending = true
	pr.next = now.Add(max(pr.gap, probeMinGap))
	sent := d.sendProbe(pr.cluster, int(rate), p.done)
	p.metrics.probePackets.Add(float64(sent))
}

// probeTrack picks a video down track that can carry probe padding: bound,
// connected, with RTX and transport-wide sequence numbers negotiated.
func (p *Participant) probeTrack() *downTrack {
	for _, d := range p.downTracks() {
		if d.kind == webrtc.RTPCodecTypeVideo && d.canPad() {
			return d
		}
	}
	return nil
}

func (d *downTrack) canPad() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bound && d.connected && d.rtxSSRC != 0 && d.twccID != 0 && d.bwe != nil
}

// probePacketBits is a probe packet's size on the wire as the estimator
// counts it: RTP header, transport-wide sequence number extension, padding
// and SRTP tag.
const probePacketBits = (12 + 8 + probePadding + 16) * 8

// sendProbe sends probe cluster id at rate bits/s on d's RTX stream,
// paced over about probeDuration, and returns how many packets went out.
// It stops early when done is closed.
func (d *downTrack) sendProbe(id, rate int, done <-chan struct{}) int {
	n := min(max(rate*int(probeDuration/time.Millisecond)/1000/probePacketBits, probeMinPackets), probeMaxPackets)
	spacing := time.Duration(probePacketBits) * time.Second / time.Duration(rate)
	start := time.Now()
	sent := 0
	for sent < n {
		// Send every packet whose time has come, so a late wake-up does
		// not lower the cluster's rate.
		now := time.Now()
		for sent < n && !now.Before(start.Add(time.Duration(sent)*spacing)) {
			if !d.sendPadding(id, now) {
				return sent
			}
			sent++
		}
		if sent == n {
			break
		}
		select {
		case <-done:
			return sent
		case <-time.After(time.Until(start.Add(time.Duration(sent) * spacing))):
		}
	}
	return sent
}

// sendPadding sends one padding-only packet of probe cluster id on the RTX
// stream (RFC 4588 allows padding there; receivers discard it after
// counting it in their transport-wide feedback).
func (d *downTrack) sendPadding(id int, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.bound || !d.connected || d.rtxSSRC == 0 || d.twccID == 0 || d.bwe == nil {
		return false
	}
	pad := d.rtxBuf[:probePadding]
	clear(pad)
	pad[len(pad)-1] = probePadding
	d.rtxHdr = rtp.Header{Version: 2, Padding: true, PayloadType: d.rtxPT, SequenceNumber: d.rtxSeq,
		Timestamp: d.lastFwdTS, SSRC: d.rtxSSRC}
	d.rtxSeq++
	d.stampAs(&d.rtxHdr, len(pad), now, id)
	_, err := d.send(&d.rtxHdr, pad)
	return err == nil
}

// probeWant is what the subscriber's video would take at the layers it asks
// for (with the headroom moving up needs), plus audio: the rate a probe
// tests.
func probeWant(audio int64, demands []videoDemand) int64 {
	want := audio
	for i, c := range allocate(1<<62, 0, demands) {
		if c.spatial != layerNone && c.spatial != demands[i].current {
			want += int64(float64(demands[i].rates[c.spatial]) * upswitchMargin)
		} else if c.spatial != layerNone {
			want += demands[i].rates[c.spatial]
		}
	}
	return want
}
