package sfu

import (
	"sync"
	"time"
)

// The packet cache answers subscribers' NACKs. There is one per ingress
// layer, shared by every down track forwarding that layer, holding the
// layer's packets as they arrived (before any per-subscriber rewriting): the
// memory for retransmission grows with the number of published layers, not
// with the number of subscribers.
//
// It holds about cacheWindow of the layer's packets: it starts at
// cacheMinSlots and doubles whenever the packet it is about to overwrite
// arrived less than cacheWindow ago, up to cacheMaxSlots, so its size follows
// the layer's packet rate. It halves again when the oldest packet is more
// than four windows old. A slot keeps its buffer between uses, so in steady
// state nothing is allocated.
const (
	cacheWindow   = time.Second
	cacheMinSlots = 32   // a second of Opus at 20 ms packets is 50
	cacheMaxSlots = 2048 // a second of about 18 Mbit/s of video
)

// cachedPacket is one packet of a layer: what a retransmission needs besides
// the down track's own rewriting.
type cachedPacket struct {
	seq     uint16
	valid   bool
	marker  bool
	ts      uint32
	at      int64  // arrival, unix nanoseconds
	payload []byte // padding removed; owned by the slot
}

// packetCache keeps the newest packets of one layer. Its own mutex guards it:
// the layer's receive puts, the subscribers' RTCP handling gets.
type packetCache struct {
	mu     sync.Mutex
	slots  []cachedPacket // length a power of two; a packet lives at seq & (len-1)
	newest uint16
	any    bool
}

func newPacketCache() *packetCache {
	return &packetCache{slots: make([]cachedPacket, cacheMinSlots)}
}

// put stores a packet that arrived at now (unix nanoseconds).
func (c *packetCache) put(seq uint16, ts uint32, marker bool, payload []byte, now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.any && !seqNewer(seq, c.newest) {
		// A late or duplicate packet: keep it only if its slot still holds
		// nothing newer.
		if seqDiff(c.newest, seq) >= len(c.slots) {
			return
		}
		if s := &c.slots[int(seq)&(len(c.slots)-1)]; s.valid && s.seq == seq {
			return
		}
	} else {
		c.newest, c.any = seq, true
	}
	s := &c.slots[int(seq)&(len(c.slots)-1)]
	if s.valid && s.seq != seq {
		age := time.Duration(now - s.at)
		switch {
		case age < cacheWindow && len(c.slots) < cacheMaxSlots:
			c.resize(2 * len(c.slots))
			s = &c.slots[int(seq)&(len(c.slots)-1)]
		case age > 4*cacheWindow && len(c.slots) > cacheMinSlots:
			c.resize(len(c.slots) / 2)
			s = &c.slots[int(seq)&(len(c.slots)-1)]
		}
	}
	s.seq, s.ts, s.marker, s.at, s.valid = seq, ts, marker, now, true
	s.payload = append(s.payload[:0], payload...)
}

// resize moves the cache to n slots, keeping the newest packets that fit.
// c.mu must be held.
func (c *packetCache) resize(n int) {
	old := c.slots
	c.slots = make([]cachedPacket, n)
	for i := range old {
		p := &old[i]
		if !p.valid || seqDiff(c.newest, p.seq) >= n {
			continue
		}
		c.slots[int(p.seq)&(n-1)] = *p
	}
}

// get copies packet seq's payload into dst and returns its length, timestamp
// and marker; ok is false when the cache no longer has it (or dst is too
// small).
func (c *packetCache) get(seq uint16, dst []byte) (n int, ts uint32, marker, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.slots[int(seq)&(len(c.slots)-1)]
	if !s.valid || s.seq != seq || len(s.payload) > len(dst) {
		return 0, 0, false, false
	}
	return copy(dst, s.payload), s.ts, s.marker, true
}

// size is the number of slots, for tests and metrics.
func (c *packetCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.slots)
}
