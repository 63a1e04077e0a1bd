package signaling

import (
	"errors"
	"slices"
	"time"

	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// Setting up a call across nodes: a two-phase handshake with one owner of
// each side's fate at every instant (docs/architecture.md, "Setting up a
// call").
//
// The node hosting the room asks the node of each side to hold it
// (reserve): that node takes its session out of waiting (a customer) or
// takes a call slot (an agent) and tells the client nothing yet. When both
// sides are held, the host commits the customer (its node tells it
// assigned and answers told), and only then the agent. If a side cannot be
// held (its session left, its node is dead or silent), or the customer
// cannot be told, the host aborts: the other side's node puts its customer
// back at its place, or frees its agent's slot, and nobody was told.
//
// The customer's node owns the customer while it is held: it puts it back
// in the queue on abort, on a hold that is neither committed nor aborted in
// holdTimeout, and, detached for the resume grace, when its connection
// drops. The host owns it only when the customer's node is dead. An ended
// that reaches a held side means the host committed and the call has ended
// since: the side is told assigned, then ended. A late reserve or commit
// for a hold already settled is refused or ignored (settled).

// holdTimeout is how long a side stays held without a commit or an abort
// before its node gives up on the call: longer than the host's
// startDeadline, so that a host that aborts is heard first.
const holdTimeout = 4 * startDeadline

// settledFor is how long a node remembers a settled hold, to refuse a
// reserve or commit that arrives after it.
const settledFor = 2 * time.Minute

// Setup phases of a hosted call; guarded by hub.mu.
const (
	phaseReserving = iota // reserves sent; waiting for both sides
	phaseTelling          // both held; the customer's commit sent, its answer awaited
	phaseLive             // the customer told; the agent's commit sent
	phaseEnded            // ended (after it was told) or aborted (before)
)

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

// Why a side's node refused to hold it.
const (
	refusedGone        = "gone"        // no such session here (left, or never here)
	refusedBusy        = "busy"        // not waiting (a customer) or no free slot (an agent)
	refusedDead        = "dead"        // nobody listens on its node's channel (set by the host)
	refusedUnreachable = "unreachable" // the bus failed (set by the host); its node may be alive
)

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
	if _, done := h.settled[k]; done {
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
		if !waiting || h.heldLocked(s) > 0 || len(h.calls[s]) > 0 {
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
	hd.timer = time.AfterFunc(holdTimeout, func() {
		h.srv.goTracked(func() { h.holdExpired(k, hd) })
	})
	h.holds[k] = hd
	return ""
}

// heldLocked counts the holds of session s. h.mu is held.
func (h *hub) heldLocked(s *session) int {
	n := 0
	for _, hd := range h.holds {
		if hd.s == s {
			n++
		}
	}
	return n
}

// takeHoldLocked removes and returns the hold k, marking it settled.
// h.mu is held.
func (h *hub) takeHoldLocked(k holdKey) *hold {
	hd := h.holds[k]
	delete(h.holds, k)
	h.settled[k] = time.Now()
	if hd != nil {
		hd.timer.Stop()
	}
	return hd
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
	hd := h.takeHoldLocked(k)
	switch {
	case hd == nil:
		h.mu.Unlock()
		return commitFailed
	case hd.gone:
		h.mu.Unlock()
		h.srv.goTracked(func() { h.letGo(hd) }) // off the bus goroutine: store calls
		return commitFailed
	case h.sessions[hd.s.id] != hd.s:
		h.mu.Unlock()
		return commitFailed
	}
	s := hd.s
	h.withdrawAcceptedLocked(k.call, false)
	h.addCallLocked(s, hd.target)
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
	hd := h.takeHoldLocked(k)
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
	if h.holds[k] != hd {
		h.mu.Unlock()
		return
	}
	h.takeHoldLocked(k)
	if k.role == protocol.RoleAgent {
		h.withdrawAcceptedLocked(k.call, true)
	}
	h.mu.Unlock()
	h.srv.log.Warn("a call being set up was neither started nor given up in time; undone here",
		"org", hd.target.org, "call", hd.target.id, "role", hd.role)
	h.letGo(hd)
	h.answerHost(hd.target, hd.role, refusedGone)
}

// syncAgent writes a connected agent's availability to the store as it is
// here: available if it asked to be and has a free slot.
func (h *hub) syncAgent(s *session) {
	h.mu.Lock()
	st := h.agents[s]
	connected := h.sessions[s.id] == s && st != nil
	available := connected && st.wantAvailable && !h.atCapacityLocked(s)
	h.mu.Unlock()
	if !connected || !h.srv.Ready() {
		return
	}
	ctx, cancel := h.storeCtx()
	defer cancel()
	if err := h.srv.store.SetAgent(ctx, h.agentRecord(s), available); err != nil {
		h.srv.log.Warn("set agent presence failed", "org", s.org.ID, "err", err)
	}
	if available {
		h.place(s.org.ID, s.queue)
	}
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
	err := h.srv.store.Requeue(ctx, hd.entry)
	if err == nil && hd.gone {
		_, err = h.srv.store.Detach(ctx, hd.entry.Org, hd.entry.Queue, hd.entry.Session, time.Now())
	}
	cancel()
	if err != nil && !errors.Is(err, queue.ErrExists) {
		// The store audit puts a connected one back once the store answers
		// (audit.go).
		h.srv.log.Warn("putting a customer back in its queue failed", "org", hd.entry.Org, "queue", hd.entry.Queue, "err", err)
	}
	h.srv.goTracked(func() { h.place(hd.entry.Org, hd.entry.Queue) })
}

// dropHolds settles the holds of a session whose connection ended. An
// agent's are given up: each host hears the side is gone and aborts its
// call. A customer's stands (hold.gone): the host's commit or abort
// decides whether it is detached in the call or at its place. Called by
// disconnected.
func (h *hub) dropHolds(s *session) {
	var mine []*hold
	h.mu.Lock()
	for k, hd := range h.holds {
		if hd.s != s {
			continue
		}
		if hd.role == protocol.RoleCustomer {
			hd.gone = true
			continue
		}
		h.takeHoldLocked(k)
		mine = append(mine, hd)
	}
	h.mu.Unlock()
	for _, hd := range mine {
		h.answerHost(hd.target, hd.role, refusedGone)
	}
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

// setUp opens the room of an assignment here and reserves both sides, each
// on the node holding its connection. Called by the node that made the
// assignment, or, over the relay, by the node it chose for the room.
func (h *hub) setUp(a queue.Assignment, id string) {
	c := h.newCall(a, id)
	if err := h.openRoom(c); err != nil {
		h.srv.log.Error("could not host a call", "org", a.Org, "queue", a.Queue, "err", err)
		h.undoAssignment(a, true, true)
		return
	}
	h.mu.Lock()
	c.phase = phaseReserving
	c.deadline = time.AfterFunc(startDeadline, func() {
		h.srv.goTracked(func() { h.abort(c, "", refusedDead) })
	})
	h.hosted[id] = c
	h.mu.Unlock()
	for _, sd := range []*side{&c.cust, &c.agent} {
		h.mu.Lock()
		given := c.phase != phaseReserving // the first side refused: the abort has told the other
		h.mu.Unlock()
		if given {
			return
		}
		msg := h.assignedMessage(c, sd)
		if sd.node == "" {
			h.reserved(c, sd.role, h.reserveHere(c, sd.role, sd.id, msg))
			continue
		}
		ok, gone := h.deliver(sd.node, relayMsg{Kind: relayReserve, Call: c.id, Org: c.org, Queue: c.queue, Side: sd.role, Session: sd.id, Msg: &msg})
		switch {
		case ok:
		case gone:
			h.reserved(c, sd.role, refusedDead)
		default:
			h.reserved(c, sd.role, refusedUnreachable)
		}
	}
}

// reserved records a side's answer to a reserve ("" held, else why not):
// the call is committed once both are held, aborted at the first refusal.
func (h *hub) reserved(c *call, role, why string) {
	h.srv.log.Debug("call setup: side answered", "call", c.id, "role", role, "refused", why)
	if why != "" {
		h.abort(c, role, why)
		return
	}
	h.mu.Lock()
	if phase := c.phase; phase != phaseReserving {
		h.mu.Unlock()
		if phase == phaseEnded {
			// Aborted meanwhile: the abort reached the side before its hold,
			// or the side is to be told now.
			h.sendAbort(c, role)
		}
		return
	}
	if !slices.Contains(c.held, role) { // an answer delivered twice counts once
		c.held = append(c.held, role)
	}
	both := len(c.held) == 2
	if both {
		c.phase = phaseTelling
	}
	h.mu.Unlock()
	if !both {
		return
	}
	c.deadline.Stop()
	h.srv.log.Debug("call setup: both held; telling the customer", "call", c.id)
	// Before anyone is told: a customer whose connection ends from here on
	// resumes into the call.
	h.saveCall(c)
	// The customer is told first, and the agent only once the customer's
	// node says it was: an agent is never told of a customer who is not.
	_, node, _ := h.whereIs(&c.cust)
	k := holdKey{c.id, protocol.RoleCustomer}
	switch {
	case node == "":
		if h.commitHere(k) == commitTold {
			h.customerTold(c)
		} else {
			h.abort(c, protocol.RoleCustomer, refusedGone)
		}
	case !h.relay(node, relayMsg{Kind: relayCommit, Call: c.id, Side: protocol.RoleCustomer}):
		// Its node gives up the hold in holdTimeout and tells us.
		h.srv.log.Warn("could not tell a customer its call started", "org", c.org, "call", c.id)
	}
}

// customerTold follows the customer's node's word that the customer was
// told assigned: the agent is told, and the call counts as started.
func (h *hub) customerTold(c *call) {
	h.mu.Lock()
	if c.phase != phaseTelling {
		h.mu.Unlock()
		return
	}
	c.phase = phaseLive
	h.mu.Unlock()
	_, node, _ := h.whereIs(&c.agent)
	k := holdKey{c.id, protocol.RoleAgent}
	switch {
	case node == "":
		if h.commitHere(k) != commitTold {
			h.srv.goTracked(func() { h.endCall(c, protocol.RoleAgent, protocol.ReasonHangup) })
		}
	case !h.relay(node, relayMsg{Kind: relayCommit, Call: c.id, Side: protocol.RoleAgent}):
		// Its node gives up the hold in holdTimeout and tells us; the call
		// then ends for the customer.
		h.srv.log.Warn("could not tell an agent its call started", "org", c.org, "call", c.id)
	}
	h.callLive(c)
	h.kick(c.org, c.queue)
}

// abort gives up a call that is being set up because side refused ("":
// nobody answered in time). Nobody was told: the held sides are let go by
// their nodes; the agent's slot taken by the assignment is released; a
// customer whose node is dead goes back to its place, detached, to resume
// elsewhere within the grace.
func (h *hub) abort(c *call, refused, why string) {
	h.mu.Lock()
	phase := c.phase
	switch {
	case phase == phaseEnded:
		h.mu.Unlock()
		return
	case phase == phaseLive || (phase == phaseTelling && refused != protocol.RoleCustomer):
		h.mu.Unlock()
		if refused != "" {
			// The agent's node gave up its hold after the customer may have
			// been told: the call ends for the customer.
			h.endCall(c, refused, protocol.ReasonHangup)
		}
		return
	}
	c.phase = phaseEnded
	c.ended, c.endReason = true, protocol.ReasonFailed
	delete(h.hosted, c.id)
	held := append([]string(nil), c.held...)
	h.mu.Unlock()
	c.deadline.Stop()
	h.closeRoom(c)
	for _, role := range []string{protocol.RoleCustomer, protocol.RoleAgent} {
		if role != refused {
			h.sendAbort(c, role)
		}
	}
	ctx, cancel := h.storeCtx()
	if err := h.srv.store.Release(ctx, c.org, c.agent.id); err != nil {
		h.srv.log.Warn("release agent after an aborted start failed", "org", c.org, "err", err)
	}
	if phase == phaseTelling {
		_ = h.srv.store.DeleteCall(ctx, c.org, c.cust.id) // saved for a resume that will not come
	}
	cancel()
	if refused == protocol.RoleCustomer && (why == refusedDead || why == refusedUnreachable) {
		h.requeueUnreached(c, why == refusedDead)
	}
	h.srv.metrics.setupsAborted.WithLabelValues(c.org, c.queue).Inc()
	h.srv.log.Info("call setup undone", "org", c.org, "queue", c.queue, "call", c.id, "refused", refused, "why", why,
		"held", len(held))
	h.srv.goTracked(func() { h.place(c.org, c.queue) })
}

// sendAbort tells the node of one side of c to let its hold go. A
// customer whose node cannot be told is put back from here.
func (h *hub) sendAbort(c *call, role string) {
	sd := c.side(role)
	_, node, _ := h.whereIs(sd)
	if node == "" {
		h.abortHere(holdKey{c.id, role})
		return
	}
	ok, gone := h.deliver(node, relayMsg{Kind: relayAbort, Call: c.id, Side: role})
	if !ok && role == protocol.RoleCustomer {
		h.requeueUnreached(c, gone)
	}
}

// requeueUnreached puts back the customer of a call given up before it was
// told, when its own node could not be told to: detached if that node is
// gone (the customer resumes elsewhere within the grace), else as it was
// (its node, alive behind a failed bus, still holds its connection; were
// it dead after all, the reaper detaches it). A customer its node put back
// already is left as it is.
func (h *hub) requeueUnreached(c *call, gone bool) {
	ctx, cancel := h.storeCtx()
	defer cancel()
	err := h.srv.store.Requeue(ctx, c.entry)
	if err == nil && gone {
		_, err = h.srv.store.Detach(ctx, c.org, c.queue, c.entry.Session, time.Now())
	}
	if err != nil && !errors.Is(err, queue.ErrExists) {
		h.srv.log.Warn("putting back a customer whose node could not be reached failed", "org", c.org, "queue", c.queue, "err", err)
	}
}

// endedHeld handles an ended for a side that is still held here: the host
// committed and the call ended before the commit arrived. The client is
// told assigned, then ended. true if there was such a hold.
func (h *hub) endedHeld(k holdKey, m protocol.Message) bool {
	h.mu.Lock()
	hd := h.takeHoldLocked(k)
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
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, at := range h.settled {
		if now.Sub(at) > settledFor {
			delete(h.settled, k)
		}
	}
	for id, ai := range h.accepted {
		if now.Sub(ai.at) > settledFor {
			delete(h.accepted, id)
		}
	}
}
