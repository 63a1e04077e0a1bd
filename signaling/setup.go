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

// Why a side's node refused to hold it.
const (
	refusedGone        = "gone"        // no such session here (left, or never here)
	refusedBusy        = "busy"        // not waiting (a customer) or no free slot (an agent)
	refusedDead        = "dead"        // nobody listens on its node's channel (set by the host)
	refusedUnreachable = "unreachable" // the bus failed (set by the host); its node may be alive
)

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
	h.calls.host(c)
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
	h.calls.unhost(c.id)
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
	if err := h.store.presence.Release(ctx, c.org, c.agent.id); err != nil {
		h.srv.log.Warn("release agent after an aborted start failed", "org", c.org, "err", err)
	}
	if phase == phaseTelling {
		_ = h.store.records.DeleteCall(ctx, c.org, c.cust.id) // saved for a resume that will not come
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
	err := h.store.queues.Requeue(ctx, c.entry)
	if err == nil && gone {
		_, err = h.store.detachment.Detach(ctx, c.org, c.queue, c.entry.Session, time.Now())
	}
	if err != nil && !errors.Is(err, queue.ErrExists) {
		h.srv.log.Warn("putting back a customer whose node could not be reached failed", "org", c.org, "queue", c.queue, "err", err)
	}
}
