package signaling

import (
	"errors"
	"sync"
	"time"

	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// Holds: this node's part in setting up a call across nodes (setup.go has
// the handshake and the host's part). A side's node holds its session when
// the host reserves it, tells it assigned when the host commits, and lets it
// go when the host aborts or never answers. holdTable keeps the holds and
// the holds settled lately; its lock is a leaf, taken inside hub.mu where a
// hold is decided in the same step as what the hub reads of its session.

// holdKey names one side of one call on a side's node.
type holdKey struct{ call, role string }

// hold is a side of a call being set up, held on this node.
type hold struct {
	target *call // the stub of the call here, or the hosted call itself
	role   string
	s      *session
	entry  queue.Entry      // a customer's queue entry, to put back
	msg    protocol.Message // assigned, told at commit
	timer  *time.Timer      // holdTimeout
	// gone: a held customer's connection ended. The hold stands until the
	// host commits or aborts; either way the customer, told nothing, goes
	// back to its place, detached, to resume there within the grace (a
	// commit is answered as refused, and the agent is never told).
	gone bool
}

// What a commit found.
const (
	commitFailed = iota // no hold (settled, expired, left), or a customer whose connection ended while held
	commitTold          // the session was told assigned
)

// holdTable keeps the sides held here and, for settledFor, the holds
// settled (committed, aborted or expired), so that a late reserve or
// commit is refused. A hold's gone flag is guarded by the table's lock
// while the hold is in the table; once taken, only its taker reads it.
type holdTable struct {
	mu      sync.Mutex
	holds   map[holdKey]*hold
	settled map[holdKey]time.Time
}

func newHoldTable() *holdTable {
	return &holdTable{holds: make(map[holdKey]*hold), settled: make(map[holdKey]time.Time)}
}

// isSettled reports whether hold k was settled lately.
func (t *holdTable) isSettled(k holdKey) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, done := t.settled[k]
	return done
}

// put holds hd as k, to expire after d. The timer is set in the step that
// publishes the hold, so that however short d is, expire finds it.
func (t *holdTable) put(k holdKey, hd *hold, d time.Duration, expire func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	hd.timer = time.AfterFunc(d, expire)
	t.holds[k] = hd
}

// count is how many holds session s has.
func (t *holdTable) count(s *session) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, hd := range t.holds {
		if hd.s == s {
			n++
		}
	}
	return n
}

// take removes and returns hold k (nil if there is none), its timer
// stopped, and marks k settled.
func (t *holdTable) take(k holdKey) *hold {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.takeLocked(k)
}

func (t *holdTable) takeLocked(k holdKey) *hold {
	hd := t.holds[k]
	delete(t.holds, k)
	t.settled[k] = time.Now()
	if hd != nil {
		hd.timer.Stop()
	}
	return hd
}

// takeIf takes hold k only if it is still hd; false if it was settled.
func (t *holdTable) takeIf(k holdKey, hd *hold) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.holds[k] != hd {
		return false
	}
	t.takeLocked(k)
	return true
}

// dropSession settles what the end of session s's connection settles: its
// held customer sides are marked gone and stay (the host decides); its
// agent sides are taken and returned.
func (t *holdTable) dropSession(s *session) []*hold {
	t.mu.Lock()
	defer t.mu.Unlock()
	var taken []*hold
	for k, hd := range t.holds {
		if hd.s != s {
			continue
		}
		if hd.role == protocol.RoleCustomer {
			hd.gone = true
			continue
		}
		t.takeLocked(k)
		taken = append(taken, hd)
	}
	return taken
}

// prune forgets holds settled more than age ago.
func (t *holdTable) prune(now time.Time, age time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, at := range t.settled {
		if now.Sub(at) > age {
			delete(t.settled, k)
		}
	}
}

// reserveHere holds local session id for one side of a call (target is the
// stub of the call on this node, or the hosted call itself). It returns
// "" when held, else why not.
func (h *hub) reserveHere(target *call, role, id string, msg protocol.Message) string {
	k := holdKey{target.id, role}
	if h.srv.drain.active() {
		// Draining: no new call for its connections. A waiting customer
		// here has been told bye; its disconnect puts it back, detached.
		return refusedBusy
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.holds.isSettled(k) {
		return refusedBusy
	}
	s := h.sessions[id]
	if s == nil || s.role != role || s.org.ID != target.org {
		return refusedGone
	}
	hd := &hold{target: target, role: role, s: s, msg: msg}
	switch role {
	case protocol.RoleCustomer:
		e, waiting := h.entries[s]
		if !waiting || h.holds.count(s) > 0 || h.calls.count(s) > 0 {
			return refusedBusy
		}
		hd.entry = e
		delete(h.entries, s)
		delete(h.queued, s)
	default:
		if h.atCapacityLocked(s) {
			// The store offered an agent with no free slot here: its count
			// is short (a store that lost its data while the agent was in a
			// call). Say so at once, or placement offers it again and again.
			h.srv.goTracked(func() { h.syncAgent(s) })
			return refusedBusy
		}
	}
	h.holds.put(k, hd, holdTimeout, func() {
		h.srv.goTracked(func() { h.holdExpired(k, hd) })
	})
	return ""
}

// commitHere tells a held side it is assigned: the session gets the call
// and the assigned message in one step, so that the call's end, however
// soon, is told after it.
func (h *hub) commitHere(k holdKey) int {
	r := h.takeCommit(k)
	h.srv.log.Debug("call setup: commit", "call", k.call, "role", k.role, "result", r)
	return r
}

// takeCommit settles hold k as committed and tells its session, if it can.
func (h *hub) takeCommit(k holdKey) int {
	h.mu.Lock()
	hd := h.holds.take(k)
	switch {
	case hd == nil:
		h.mu.Unlock()
		return commitFailed
	case hd.gone || h.sessions[hd.s.id] != hd.s:
		// Its connection ended while it was held, or it is no longer the
		// session here (replaced, its end on the way): told nothing, it
		// goes back to its place, detached, to resume within the grace (a
		// place the new session has already is left as it is).
		hd.gone = true
		h.mu.Unlock()
		h.srv.goTracked(func() { h.letGo(hd) }) // off the bus goroutine: store calls
		return commitFailed
	}
	s := hd.s
	h.withdrawAcceptedLocked(k.call, false)
	h.calls.add(s, hd.target)
	sd := hd.target.side(hd.role)
	sd.role, sd.id, sd.s = hd.role, s.id, s
	if hd.role == protocol.RoleAgent {
		h.tellLocked(s, protocol.Message{Type: protocol.TypeAgentState, State: h.agentStateLocked(s)})
	}
	h.tellLocked(s, hd.msg)
	h.mu.Unlock()
	return commitTold
}

// abortHere undoes a hold the host gave up: a customer goes back to its
// place in the queue (it was told nothing), an agent's slot is free again.
func (h *hub) abortHere(k holdKey) {
	h.srv.log.Debug("call setup: abort", "call", k.call, "role", k.role)
	h.mu.Lock()
	hd := h.holds.take(k)
	if k.role == protocol.RoleAgent {
		h.withdrawAcceptedLocked(k.call, true)
	}
	h.mu.Unlock()
	if hd != nil {
		h.letGo(hd)
	}
}

// letGo undoes a settled hold that did not become a call: a customer goes
// back to its place, an agent's availability is written as it is now.
func (h *hub) letGo(hd *hold) {
	if hd.role == protocol.RoleAgent {
		h.syncAgent(hd.s)
		return
	}
	h.unhold(hd)
}

// holdExpired gives up on a hold that was neither committed nor aborted in
// holdTimeout, and tells the host (which ends or aborts the call).
func (h *hub) holdExpired(k holdKey, hd *hold) {
	h.mu.Lock()
	if !h.holds.takeIf(k, hd) {
		h.mu.Unlock()
		return
	}
	if k.role == protocol.RoleAgent {
		h.withdrawAcceptedLocked(k.call, true)
	}
	h.mu.Unlock()
	h.srv.log.Warn("a call being set up was neither started nor given up in time; undone here",
		"org", hd.target.org, "call", hd.target.id, "role", hd.role)
	h.letGo(hd)
	h.answerHost(hd.target, hd.role, refusedGone)
}

// unhold puts a held customer back in the queue at its place: its store
// entry was taken out by the assignment. One still connected here waits
// here again; one whose connection ended meanwhile is put back detached,
// to resume within the grace (the reapers remove it after).
func (h *hub) unhold(hd *hold) {
	h.mu.Lock()
	here := !hd.gone && h.sessions[hd.s.id] == hd.s
	if here {
		h.entries[hd.s] = hd.entry
		h.queued[hd.s] = position{}
	}
	h.mu.Unlock()
	if !here && !hd.gone {
		return // resumed on a new connection meanwhile, which has its own place
	}
	ctx, cancel := h.storeCtx()
	err := h.store.queues.Requeue(ctx, hd.entry)
	if err == nil && hd.gone {
		_, err = h.store.detachment.Detach(ctx, hd.entry.Org, hd.entry.Queue, hd.entry.Session, time.Now())
	}
	cancel()
	if err != nil && !errors.Is(err, queue.ErrExists) {
		// The store audit puts a connected one back once the store answers
		// (audit.go).
		h.srv.log.Warn("putting a customer back in its queue failed", "org", hd.entry.Org, "queue", hd.entry.Queue, "err", err)
	}
	h.srv.goTracked(func() { h.place(hd.entry.Org, hd.entry.Queue) })
}

// answerHost tells the host of target (here or on another node) how its
// reserve for role went: "" held, else why not.
func (h *hub) answerHost(target *call, role, why string) {
	if target.host == "" {
		h.reserved(target, role, why)
		return
	}
	h.relay(target.host, relayMsg{Kind: relayHeld, Call: target.id, Side: role, Why: why})
}

// endedHeld handles an ended for a side that is still held here: the host
// committed and the call ended before the commit arrived. The client is
// told assigned, then ended. true if there was such a hold.
func (h *hub) endedHeld(k holdKey, m protocol.Message) bool {
	h.mu.Lock()
	hd := h.holds.take(k)
	if hd == nil || hd.gone || h.sessions[hd.s.id] != hd.s {
		h.mu.Unlock()
		return hd != nil
	}
	s := hd.s
	h.withdrawAcceptedLocked(k.call, false)
	if hd.role == protocol.RoleAgent {
		h.tellLocked(s, protocol.Message{Type: protocol.TypeAgentState, State: h.agentStateLocked(s)})
	}
	h.tellLocked(s, hd.msg)
	if hb := h.welcoming[s]; hb != nil {
		hb.msgs = append(hb.msgs, m)
		hb.close = true
		h.mu.Unlock()
		return true
	}
	h.mu.Unlock()
	h.srv.goTracked(func() { h.sideEnded(s, m, hd.target.org, hd.target.queue) })
	return true
}

// pruneSettled forgets settled holds older than settledFor; from the
// hub's loop.
func (h *hub) pruneSettled(now time.Time) {
	h.invites.pruneAccepted(now, settledFor)
	h.holds.prune(now, settledFor)
}
