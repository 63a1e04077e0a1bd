// Package rtpstat measures received RTP streams without decoding them:
// loss and reordering from sequence numbers, interarrival jitter (RFC 3550,
// section 6.4.1), end-to-end latency from a capture time the sender put in
// the packet, first packet and first keyframe times, and bytes for the
// bitrate. It is the load harness's arithmetic; it holds no goroutines and
// no locks (one Stream belongs to one reader).
package rtpstat

import (
	"time"
)

// window is how many sequence numbers behind the highest one a packet can
// arrive and still be checked for being a duplicate.
const window = 4096

// Stream is the receive state of one RTP stream (one SSRC).
type Stream struct {
	clockRate float64 // RTP timestamp ticks per second

	started  bool
	base     int64 // lowest extended sequence number seen
	highest  int64 // highest extended sequence number seen
	seen     [window / 64]uint64
	received int64 // distinct sequence numbers received
	dups     int64
	late     int64 // arrived after a higher sequence number
	tooOld   int64 // older than the duplicate window: counted, not checked

	transit     float64 // previous packet's arrival minus its timestamp, in ticks
	jitter      float64 // in ticks
	haveTransit bool

	bytes      int64
	first      time.Time
	firstKey   time.Time
	last       time.Time
	Latency    Histogram // arrival minus capture time, for packets that carry one
	noCapture  int64     // packets without a capture time
	negLatency int64     // capture times in the future (clocks not shared)
}

// NewStream returns the state for a stream whose RTP clock runs at
// clockRate Hz (90000 for video, 48000 for Opus).
func NewStream(clockRate uint32) *Stream {
	return &Stream{clockRate: float64(clockRate)}
}

// Packet is what the harness learns from one received packet.
type Packet struct {
	Seq      uint16
	TS       uint32
	Arrival  time.Time
	Size     int       // payload bytes
	Keyframe bool      // the packet starts a keyframe
	Capture  time.Time // the sender's capture (send) time; zero: none
}

// Add accounts one packet, in the order packets arrived.
func (s *Stream) Add(p Packet) {
	if !s.started {
		// Extended numbers start far from 0, so that packets older than
		// the first one stay positive.
		s.started = true
		s.base, s.highest = 1<<32+int64(p.Seq), 1<<32+int64(p.Seq)
		s.first = p.Arrival
		s.mark(s.highest)
		s.received++
	} else {
		// The extended sequence number: the nearest one to the highest
		// so far with these low 16 bits.
		ext := s.highest + int64(int16(p.Seq-uint16(s.highest)))
		switch {
		case ext > s.highest:
			s.advance(ext)
			s.mark(ext)
		case s.highest-ext >= window:
			s.tooOld++
			s.late++
		case s.marked(ext):
			s.dups++
			return // a duplicate adds nothing else
		default:
			s.late++
			s.mark(ext)
		}
		s.received++
		s.base = min(s.base, ext)
	}
	s.bytes += int64(p.Size)
	s.last = p.Arrival
	if p.Keyframe && s.firstKey.IsZero() {
		s.firstKey = p.Arrival
	}
	if s.clockRate > 0 {
		arrival := float64(p.Arrival.UnixNano()) * s.clockRate / 1e9
		transit := arrival - float64(p.TS)
		if s.haveTransit {
			d := transit - s.transit
			// The timestamp wraps (2^32 ticks is 13 h of video): a jump
			// of half the range or more is a wrap, not jitter.
			if d > 1<<31 {
				d -= 1 << 32
			} else if d < -(1 << 31) {
				d += 1 << 32
			}
			if d < 0 {
				d = -d
			}
			s.jitter += (d - s.jitter) / 16
		}
		s.transit, s.haveTransit = transit, true
	}
	switch {
	case p.Capture.IsZero():
		s.noCapture++
	case p.Arrival.Before(p.Capture):
		s.negLatency++
	default:
		s.Latency.Record(p.Arrival.Sub(p.Capture))
	}
}

// advance moves the highest sequence number to ext, clearing the window
// bits of the numbers skipped.
func (s *Stream) advance(ext int64) {
	if ext-s.highest >= window {
		clear(s.seen[:])
	} else {
		for n := s.highest + 1; n <= ext; n++ {
			s.seen[(n%window)/64] &^= 1 << (n % 64)
		}
	}
	s.highest = ext
}

func (s *Stream) mark(ext int64)        { s.seen[(ext%window)/64] |= 1 << (ext % 64) }
func (s *Stream) marked(ext int64) bool { return s.seen[(ext%window)/64]&(1<<(ext%64)) != 0 }

// Summary is a stream's figures so far.
type Summary struct {
	Received   int64         // distinct packets
	Expected   int64         // highest - lowest sequence number + 1
	Lost       int64         // Expected - Received, at least 0
	Duplicates int64         // packets received twice or more
	Late       int64         // packets that arrived after a higher sequence number
	Jitter     time.Duration // RFC 3550 interarrival jitter
	Bytes      int64         // payload bytes of distinct packets
	First      time.Time     // arrival of the first packet
	FirstKey   time.Time     // arrival of the first keyframe packet; zero: none
	Last       time.Time     // arrival of the latest packet
	NoCapture  int64         // packets without a capture time
	Negative   int64         // packets whose capture time was after their arrival
}

// Summary returns the stream's figures so far.
func (s *Stream) Summary() Summary {
	sum := Summary{Received: s.received, Duplicates: s.dups, Late: s.late, Bytes: s.bytes,
		First: s.first, FirstKey: s.firstKey, Last: s.last, NoCapture: s.noCapture, Negative: s.negLatency}
	if s.started {
		sum.Expected = s.highest - s.base + 1
		sum.Lost = max(0, sum.Expected-s.received)
	}
	if s.clockRate > 0 {
		sum.Jitter = time.Duration(s.jitter / s.clockRate * 1e9)
	}
	return sum
}

// LossFraction is Lost / Expected (0 with nothing expected).
func (s Summary) LossFraction() float64 {
	if s.Expected == 0 {
		return 0
	}
	return float64(s.Lost) / float64(s.Expected)
}
