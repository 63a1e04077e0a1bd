// slotQueue: the bounded hand-off between a recording's Sinks (the SFU's
// forwarding goroutines) and the recording's goroutine. One fixed set of
// slots, allocated up front, moves between a free stack and a FIFO under
// one mutex held for a few instructions. The producer never wakes the
// consumer per packet (a channel send to a parked goroutine costs more than
// the whole budget): the consumer drains on a short tick, and is kicked only
// when the queue passes half full.

package recorder

import (
	"sync"

	"github.com/pion/rtp"
)

type slotQueue struct {
	kick chan struct{} // cap 1: the queue passed half full

	mu   sync.Mutex
	free []*slot // guarded by mu: a stack of unused slots
	q    []*slot // guarded by mu: a ring of queued slots, cap = all slots
	head int     // guarded by mu
	n    int     // guarded by mu
	half int
}

func newSlotQueue(n int) *slotQueue {
	sq := &slotQueue{kick: make(chan struct{}, 1), free: make([]*slot, n), q: make([]*slot, n), half: n / 2}
	for i := range sq.free {
		sq.free[i] = &slot{}
	}
	return sq
}

// push takes a free slot, has fill fill it (under the lock: fill must be
// a few copies) and queues it. It never blocks; false when no slot is free.
func (sq *slotQueue) push(fill func(*slot, *Sink, *rtp.Header, []byte), s *Sink, h *rtp.Header, payload []byte) bool {
	sq.mu.Lock()
	k := len(sq.free) - 1
	if k < 0 {
		sq.mu.Unlock()
		return false
	}
	sl := sq.free[k]
	sq.free = sq.free[:k]
	fill(sl, s, h, payload)
	sq.q[(sq.head+sq.n)%len(sq.q)] = sl
	sq.n++
	kick := sq.n == sq.half
	sq.mu.Unlock()
	if kick {
		select {
		case sq.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// take moves the queued slots, oldest first, into batch and returns it.
func (sq *slotQueue) take(batch []*slot) []*slot {
	sq.mu.Lock()
	defer sq.mu.Unlock()
	for ; sq.n > 0; sq.n-- {
		batch = append(batch, sq.q[sq.head])
		sq.q[sq.head] = nil
		sq.head = (sq.head + 1) % len(sq.q)
	}
	return batch
}

// release returns a slot to the free stack.
func (sq *slotQueue) release(s *slot) {
	s.t = nil
	sq.mu.Lock()
	sq.free = append(sq.free, s)
	sq.mu.Unlock()
}

// all returns every slot (for the recording's packet-to-slot index).
func (sq *slotQueue) all() []*slot {
	sq.mu.Lock()
	defer sq.mu.Unlock()
	return append([]*slot(nil), sq.free...)
}

// freeSlots returns how many slots are free.
func (sq *slotQueue) freeSlots() int {
	sq.mu.Lock()
	defer sq.mu.Unlock()
	return len(sq.free)
}
