package bwe

import (
	"encoding/binary"
	"errors"
	"time"
)

// Wire layout of a transport-wide feedback packet
// (draft-holmer-rmcat-transport-wide-cc-extensions-01, section 3.1).
const (
	rtcpVersion   = 2
	ptRTPFB       = 205 // transport layer feedback
	fmtTWCC       = 15  // transport-wide congestion control
	fbFixedLen    = 20  // common header, two SSRCs, base, count, reference time, fb count
	deltaUnit     = 250 * time.Microsecond
	refTimeUnit   = 64 * time.Millisecond
	refTimeBits   = 24
	maxRunLength  = 1<<13 - 1
	symNotRecv    = 0
	symSmallDelta = 1
	symLargeDelta = 2
	symReserved   = 3
)

// Errors returned by ParseFeedback and Estimator.Feedback. Every rejection
// wraps exactly one of them, so callers and tests can tell them apart with
// errors.Is.
var (
	// ErrTruncated: the packet ends before the fixed fields, the status
	// chunks announced by the packet status count, or their receive deltas.
	ErrTruncated = errors.New("bwe: feedback truncated")
	// ErrNotFeedback: wrong RTCP version, packet type or format.
	ErrNotFeedback = errors.New("bwe: not a transport-wide feedback packet")
	// ErrLength: the RTCP length field disagrees with len(b).
	ErrLength = errors.New("bwe: RTCP length field disagrees with packet size")
	// ErrPadding: the P bit is set but the padding count is zero or larger
	// than the variable part of the packet.
	ErrPadding = errors.New("bwe: bad RTCP padding")
	// ErrReserved: a status symbol uses the reserved value 3.
	ErrReserved = errors.New("bwe: reserved packet status symbol")
)

// FeedbackHeader holds the fixed fields of a transport-wide feedback packet.
type FeedbackHeader struct {
	SenderSSRC, MediaSSRC uint32
	// BaseSeq is the transport-wide sequence number of the first packet
	// described; Count is how many consecutive packets are described.
	BaseSeq uint16
	Count   int
	// RefTime is the 24-bit signed reference time, converted from 64 ms
	// units. It is in the receiver's clock and wraps; only differences
	// between packets mean something.
	RefTime time.Duration
	// FbCount is the feedback packet counter (wraps at 256).
	FbCount uint8
}

// PacketFunc receives one packet status from ParseFeedback, in sequence order.
// For a received packet, delta is its receive time minus the previous
// received packet's receive time in this feedback (or minus RefTime for the
// first one); it may be negative. For a lost packet delta is zero.
type PacketFunc func(seq uint16, received bool, delta time.Duration)

// layout is what the validation pass learns about a packet, so that the
// emitting pass needs no bounds decisions.
type layout struct {
	chunkEnd int // offset just past the last status chunk in use
	end      int // offset just past the receive deltas
}

// ParseFeedback validates b, a whole transport-wide feedback RTCP packet
// (PT=205, FMT=15, as found in a compound packet, padding included), and
// then calls fn once per described packet, in order. fn may be nil. It never
// calls fn for a packet it rejects, never panics and allocates nothing.
//
// Differences from github.com/pion/rtcp's TransportLayerCC.Unmarshal, all
// deliberate: bytes beyond the RTCP length are an error here (ErrLength); the
// P bit and padding count are honoured and checked; the reserved status
// symbol 3 is an error rather than "not received"; and a packet whose last
// status chunk ends exactly at the end of the packet (nothing received, so no
// deltas) is accepted, where pion asks for one more byte.
func ParseFeedback(b []byte, fn PacketFunc) (FeedbackHeader, error) {
	h, l, err := checkFeedback(b)
	if err != nil || fn == nil {
		return h, err
	}
	emitFeedback(b, h, l, fn)
	return h, nil
}

// checkFeedback reads the fixed fields and walks the status chunks once to
// verify that the chunks and the receive deltas they announce fit in b.
func checkFeedback(b []byte) (FeedbackHeader, layout, error) {
	var h FeedbackHeader
	var l layout
	if len(b) < 4 {
		return h, l, ErrTruncated
	}
	if b[0]>>6 != rtcpVersion || b[0]&0x1f != fmtTWCC || b[1] != ptRTPFB {
		return h, l, ErrNotFeedback
	}
	if 4*(int(binary.BigEndian.Uint16(b[2:]))+1) != len(b) {
		return h, l, ErrLength
	}
	if len(b) < fbFixedLen {
		return h, l, ErrTruncated
	}
	end := len(b)
	if b[0]&0x20 != 0 {
		pad := int(b[len(b)-1])
		if pad == 0 || pad > len(b)-fbFixedLen {
			return h, l, ErrPadding
		}
		end -= pad
	}
	h.SenderSSRC = binary.BigEndian.Uint32(b[4:])
	h.MediaSSRC = binary.BigEndian.Uint32(b[8:])
	h.BaseSeq = binary.BigEndian.Uint16(b[12:])
	h.Count = int(binary.BigEndian.Uint16(b[14:]))
	h.RefTime = time.Duration(signExtend24(uint32(b[16])<<16|uint32(b[17])<<8|uint32(b[18]))) * refTimeUnit
	h.FbCount = b[19]

	pos, left, deltaBytes := fbFixedLen, h.Count, 0
	for left > 0 {
		if pos+2 > end {
			return h, l, ErrTruncated
		}
		c := binary.BigEndian.Uint16(b[pos:])
		pos += 2
		n, err := chunkDeltaBytes(c, left, &deltaBytes)
		if err != nil {
			return h, l, err
		}
		left -= n
	}
	if pos+deltaBytes > end {
		return h, l, ErrTruncated
	}
	l.chunkEnd, l.end = pos, pos+deltaBytes
	return h, l, nil
}

// chunkDeltaBytes adds to *deltaBytes the receive-delta bytes announced by
// the first min(left, capacity) symbols of chunk c and returns how many
// packets the chunk describes.
func chunkDeltaBytes(c uint16, left int, deltaBytes *int) (int, error) {
	if c&0x8000 == 0 { // run length
		n := min(int(c&maxRunLength), left)
		if n == 0 {
			return 0, nil
		}
		sym := int(c>>13) & 3
		if sym == symReserved {
			return 0, ErrReserved
		}
		*deltaBytes += n * deltaSize(sym)
		return n, nil
	}
	if c&0x4000 == 0 { // status vector, 14 one-bit symbols: 1 = small delta
		n := min(14, left)
		for i := range n {
			*deltaBytes += int(c>>(13-i)) & 1
		}
		return n, nil
	}
	n := min(7, left) // status vector, 7 two-bit symbols
	for i := range n {
		sym := int(c>>(12-2*i)) & 3
		if sym == symReserved {
			return 0, ErrReserved
		}
		*deltaBytes += deltaSize(sym)
	}
	return n, nil
}

// deltaSize is the number of receive-delta bytes that follow for a symbol.
func deltaSize(sym int) int {
	switch sym {
	case symSmallDelta:
		return 1
	case symLargeDelta:
		return 2
	}
	return 0
}

// emitFeedback walks a packet that checkFeedback accepted and reports every
// packet status to fn.
func emitFeedback(b []byte, h FeedbackHeader, l layout, fn PacketFunc) {
	d := deltaReader{b: b, pos: l.chunkEnd}
	seq := h.BaseSeq
	left := h.Count
	for pos := fbFixedLen; left > 0; pos += 2 {
		c := binary.BigEndian.Uint16(b[pos:])
		switch {
		case c&0x8000 == 0:
			n := min(int(c&maxRunLength), left)
			sym := int(c>>13) & 3
			for range n {
				fn(seq, sym != symNotRecv, d.next(sym))
				seq++
			}
			left -= n
		case c&0x4000 == 0:
			n := min(14, left)
			for i := range n {
				sym := int(c>>(13-i)) & 1
				fn(seq, sym != symNotRecv, d.next(sym))
				seq++
			}
			left -= n
		default:
			n := min(7, left)
			for i := range n {
				sym := int(c>>(12-2*i)) & 3
				fn(seq, sym != symNotRecv, d.next(sym))
				seq++
			}
			left -= n
		}
	}
}

// deltaReader hands out receive deltas in order; bounds were checked before.
type deltaReader struct {
	b   []byte
	pos int
}

func (r *deltaReader) next(sym int) time.Duration {
	switch sym {
	case symSmallDelta:
		v := r.b[r.pos]
		r.pos++
		return time.Duration(v) * deltaUnit
	case symLargeDelta:
		v := int16(binary.BigEndian.Uint16(r.b[r.pos:]))
		r.pos += 2
		return time.Duration(v) * deltaUnit
	}
	return 0
}

// signExtend24 interprets the low 24 bits of v as a two's complement number.
func signExtend24(v uint32) int32 {
	return int32(v<<8) >> 8
}
