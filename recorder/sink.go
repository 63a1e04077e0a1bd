// The per-packet entry point a room calls on its forwarding goroutine
// (Sink, an sfu.TrackSink): copy into a slot of the recording's fixed pool
// and hand it to the recording's goroutine; never block, never allocate.
// A Sink holds no state of its own beyond its track's drop counter.

package recorder

import (
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// maxPayload is the largest RTP payload a slot holds; larger packets
// (none on a 1500-byte MTU path) are dropped and counted.
const maxPayload = 1500

// noArrival marks a packet whose arrival time was not read.
const noArrival = time.Duration(-1 << 63)

// slot is one packet or sender report on its way from a Sink to the
// recording's goroutine. Slots come from the recording's free list and go
// back to it once the track no longer needs the packet.
type slot struct {
	pkt     rtp.Packet
	t       *track
	arrival time.Duration // since the recording's base time; noArrival: not read
	sr      bool          // a sender report: ntp, rtpTime and pkt.SSRC are set
	ntp     uint64        // sender report: NTP time
	rtpTime uint32        // sender report: its RTP time
	buf     [maxPayload]byte
}

// Sink receives one published track's packets for a Recording. Its
// methods match sfu.TrackSink; SenderReport is the seam for the
// publisher's RTCP sender reports.
type Sink struct {
	r *Recording
	t *track

	// WriteRTP's own (the track's read goroutine): the SSRC of the last
	// packet, to stamp the arrival time only where the recording needs it.
	ssrc    uint32
	started bool
}

// WriteRTP copies one packet (padding removed) into a pooled slot and
// queues it for the recording's goroutine. Called once per packet on the
// track's read goroutine; it never blocks and keeps neither h nor payload.
// When no slot is free the packet is dropped and counted, and the track
// waits for a keyframe.
func (s *Sink) WriteRTP(h *rtp.Header, payload []byte) {
	if s.r.ended.Load() {
		return // the recording has stopped: nothing is dropped, nothing will be written
	}
	if len(payload) > maxPayload || !s.r.sq.push(fillPacket, s, h, payload) {
		s.t.dropped.Add(1)
	}
}

// fillPacket copies a packet into a slot: the header fields the recorder
// reads (h's extensions and CSRCs stay with the caller) and the payload.
// A top-level function, so passing it allocates nothing.
// Only the first packet of an SSRC carries its arrival time (the clock
// anchors a new SSRC there until a sender report comes); reading the
// clock for every packet would cost a third of the budget.
func fillPacket(sl *slot, s *Sink, h *rtp.Header, payload []byte) {
	sl.t, sl.sr, sl.arrival = s.t, false, noArrival
	if !s.started || h.SSRC != s.ssrc {
		s.started, s.ssrc = true, h.SSRC
		sl.arrival = s.r.since()
	}
	sl.pkt.Header = rtp.Header{
		Version: 2, Marker: h.Marker, PayloadType: h.PayloadType,
		SequenceNumber: h.SequenceNumber, Timestamp: h.Timestamp, SSRC: h.SSRC,
	}
	sl.pkt.Payload = sl.buf[:copy(sl.buf[:], payload)]
}

// SenderReport passes the publisher's RTCP sender report for ssrc: its
// NTP time ntp is RTP time rtpTime. Called when a report arrives (about
// once a second per SSRC); it never blocks (a report with no free slot is
// dropped: the next one will do).
func (s *Sink) SenderReport(ssrc uint32, ntp uint64, rtpTime uint32) {
	if s.r.ended.Load() {
		return
	}
	s.r.sq.push(func(sl *slot, s *Sink, _ *rtp.Header, _ []byte) {
		sl.t, sl.sr, sl.arrival = s.t, true, s.r.since()
		sl.pkt.SSRC, sl.ntp, sl.rtpTime = ssrc, ntp, rtpTime
		sl.pkt.Payload = sl.buf[:0]
	}, s, nil, nil)
}

// Close ends the track: what is queued is written, the rest of an
// unfinished frame is dropped. Called once, after the last WriteRTP; it
// never blocks (the recording's goroutine ends the track at its next
// drain, after the packets queued before).
func (s *Sink) Close() {
	s.t.closing.Store(true)
	select {
	case s.r.sq.kick <- struct{}{}:
	default:
	}
}

// Dropped returns how many packets of the track were dropped because the
// recording's queue was full.
func (s *Sink) Dropped() uint64 { return s.t.dropped.Load() }

// track is what a Sink and the recording's goroutine share about one
// track: immutable facts and the drop counter; the rest is the goroutine's
// (see trackState).
type track struct {
	info    TrackInfo
	dropped atomic.Uint64
	closing atomic.Bool // Close was called
	st      *trackState // owned by the recording's goroutine
}
