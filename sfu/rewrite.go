package sfu

// Sequence number and timestamp rewriting for one down track.
//
// A subscriber sees one continuous RTP stream per track even when the SFU
// drops packets it will not forward (padding-only probes, packets before the
// first keyframe) or, later, switches between source streams. Outgoing
// sequence numbers are the incoming ones minus an offset; the offset grows by
// one for each newest packet the SFU drops, so the receiver sees no gap for
// it. Late packets that arrive from before the last offset change are
// dropped, because their correct outgoing number is no longer known.

// seqNewer reports whether sequence number a is newer than b, modulo 2^16.
func seqNewer(a, b uint16) bool { return a != b && uint16(a-b) < 1<<15 }

// seqDiff is a-b as a signed distance, modulo 2^16.
func seqDiff(a, b uint16) int { return int(int16(a - b)) }

// tsDiff is a-b as a signed distance, modulo 2^32.
func tsDiff(a, b uint32) int64 { return int64(int32(a - b)) }

// maxLateSeq is how far behind the newest packet a late packet may be and
// still be forwarded.
const maxLateSeq = 1000

// seqHistory is how many offset changes a seqRewriter remembers, so that
// late packets (retransmissions, reordering) from before a change still map
// to the number the receiver expects.
const seqHistory = 8

// seqRewriter maps incoming sequence numbers to outgoing ones.
// It is not safe for concurrent use; its owner serialises calls.
type seqRewriter struct {
	started bool
	lastIn  uint16 // newest incoming sequence number seen
	lastExt int64  // lastIn extended past 16 bits, so history never wraps
	lastOut uint16 // outgoing number of lastIn (valid once started)
	// spans[i] says: incoming numbers from fence on (extended) map with
	// offset (out = in - offset). spans[n-1] is the current one; older spans
	// serve late packets. A packet older than every fence is dropped.
	spans [seqHistory]seqSpan
	n     int
}

type seqSpan struct {
	fence  int64
	offset uint16
}

// start begins the outgoing stream at out for incoming sequence number in,
// forgetting any history.
func (r *seqRewriter) start(in, out uint16) {
	r.started = true
	r.lastIn, r.lastOut = in, out
	r.lastExt = int64(in)
	r.n = 0
	r.push(seqSpan{fence: r.lastExt, offset: in - out})
}

func (r *seqRewriter) push(s seqSpan) {
	if r.n == seqHistory {
		copy(r.spans[:], r.spans[1:])
		r.n--
	}
	r.spans[r.n] = s
	r.n++
}

// rebase continues the outgoing stream without a gap from a new source whose
// next packet has incoming number in. Used after a source switch; packets of
// the old source can no longer be mapped.
func (r *seqRewriter) rebase(in uint16) {
	if !r.started {
		r.start(in, in)
		return
	}
	r.start(in, r.lastOut+1)
}

// advance moves the newest incoming number to in, which must be newer.
func (r *seqRewriter) advance(in uint16) {
	r.lastExt += int64(seqDiff(in, r.lastIn))
	r.lastIn = in
}

// rewrite returns the outgoing number for incoming number in, or ok=false
// when the packet must be dropped (too old, or from before the stream began).
func (r *seqRewriter) rewrite(in uint16) (out uint16, ok bool) {
	if !r.started {
		return 0, false
	}
	if seqNewer(in, r.lastIn) {
		r.advance(in)
		r.lastOut = in - r.spans[r.n-1].offset
		return r.lastOut, true
	}
	// A duplicate, a retransmission or a reordered packet.
	back := seqDiff(r.lastIn, in)
	if back > maxLateSeq {
		return 0, false
	}
	ext := r.lastExt - int64(back)
	for i := r.n - 1; i >= 0; i-- {
		if r.spans[i].fence <= ext {
			return in - r.spans[i].offset, true
		}
	}
	return 0, false
}

// skip records that incoming packet in will not be forwarded. When it is the
// newest packet, later packets shift down by one so no gap appears. Packets
// lost between the previous newest and in keep their numbers, so the
// receiver can still ask for them.
func (r *seqRewriter) skip(in uint16) {
	if !r.started || !seqNewer(in, r.lastIn) {
		return
	}
	r.advance(in)
	cur := &r.spans[r.n-1]
	r.lastOut = in - cur.offset - 1
	next := seqSpan{fence: r.lastExt + 1, offset: cur.offset + 1}
	if cur.fence == r.lastExt {
		// Nothing was mapped with the current span (it began at this very
		// packet): widen it instead of using up history on padding bursts.
		*cur = next
		return
	}
	r.push(next)
}

// tsRewriter maps incoming RTP timestamps to outgoing ones with a constant
// offset, changed only when the source changes.
type tsRewriter struct {
	started bool
	offset  uint32 // out = in + offset
	lastOut uint32
}

// start begins the outgoing timeline at out for incoming timestamp in.
func (r *tsRewriter) start(in, out uint32) {
	r.started = true
	r.offset = out - in
	r.lastOut = out
}

// rebase continues the outgoing timeline from a new source: incoming
// timestamp in maps to the last outgoing timestamp plus gap ticks, where gap
// is the media time that passed since the last packet (at least one tick so
// the receiver sees time move forward).
func (r *tsRewriter) rebase(in uint32, gap uint32) {
	if gap == 0 {
		gap = 1
	}
	if !r.started {
		r.start(in, in)
		return
	}
	r.start(in, r.lastOut+gap)
}

// rewrite returns the outgoing timestamp for incoming timestamp in.
func (r *tsRewriter) rewrite(in uint32) uint32 {
	out := in + r.offset
	if tsDiff(out, r.lastOut) > 0 {
		r.lastOut = out
	}
	return out
}
