package signaling

import (
	"errors"
	"time"

	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// Invites. In a queue with an offer timeout, an assignment is first offered
// to the agent (invite); the call starts when the agent accepts. If it
// declines or does not answer in time, the customer goes back to its place
// in the queue (Requeue keeps its Since, so it is ahead of everyone who came
// later) and the agent is set away: an agent who does not answer is not at
// the desk, and one who declines says when it is ready again. If the
// customer leaves meanwhile, the invite is withdrawn and the agent keeps its
// state.

// offer invites the agent of a to take its customer, on whichever node
// holds the agent's connection.
func (h *hub) offer(a queue.Assignment, timeout time.Duration) {
	if h.isSelf(a.AgentNode) {
		h.invite(a, timeout)
		return
	}
	if !h.relay(a.AgentNode, relayMsg{Kind: relayInvite, A: &a, Timeout: timeout}) {
		h.undoAssignment(a, true, true) // its node's own reaper or disconnect forgets the agent
	}
}

// invite sends an assignment to its agent, on this node, as an invite. The
// customer may be on another node (cust nil). If the agent or a local
// customer has already left, the assignment is undone.
func (h *hub) invite(a queue.Assignment, timeout time.Duration) {
	h.mu.Lock()
	cust := h.sessions[a.Customer.Session]
	agent := h.sessions[a.Agent]
	h.mu.Unlock()
	custLocal := h.isSelf(a.Customer.Node)
	// A draining node offers its agents nothing (drain.go).
	if agent == nil || (custLocal && cust == nil) || h.srv.Draining() {
		h.undoAssignment(a, !custLocal || cust != nil, agent != nil)
		return
	}
	inv := &invite{id: randomID(12), a: a, cust: cust, agent: agent}
	h.invites.add(inv, timeout, func() {
		h.srv.goTracked(func() { h.inviteDone(inv, protocol.ReasonTimeout, nil) })
	})
	agent.send(protocol.Message{
		Type:    protocol.TypeInvite,
		Room:    inv.id,
		Queue:   a.Queue,
		Peer:    &protocol.Peer{Role: protocol.RoleCustomer, Name: a.Customer.Name},
		Timeout: int(timeout / time.Second),
	})
}

var errNoInvite = protocol.Errorf(protocol.CodeInvalidState, "no such invite: it was withdrawn, expired or never sent to you")

// accept starts the call an agent accepted.
func (h *hub) accept(s *session, id string) error {
	inv := h.invites.take(id, s)
	if inv == nil {
		return errNoInvite
	}
	inv.timer.Stop()
	// Until the call is set up, a start given up is told to the agent as
	// the invite withdrawn (setup.go).
	h.invites.accept(inv.id, s, time.Now())
	h.placeMu.Lock()
	err := h.start(inv.a, inv.id)
	h.placeMu.Unlock()
	if err != nil {
		h.invites.takeAccepted(inv.id)
	}
	if errors.Is(err, errUndone) {
		// The customer left between the accept and the call.
		s.send(protocol.Message{Type: protocol.TypeWithdrawn, Room: inv.id, Reason: protocol.ReasonPeerLeft})
		return nil
	}
	if err != nil {
		h.srv.log.Error("could not start a call", "org", inv.a.Org, "queue", inv.a.Queue, "err", err)
		return protocol.Errorf(protocol.CodeInternal, "the call could not be started")
	}
	return nil
}

// withdrawAcceptedLocked tells the agent of an accepted invite, if call is
// one, that it is withdrawn after all (the customer could not be had), and
// forgets it; told false only forgets it. h.mu is held.
func (h *hub) withdrawAcceptedLocked(call string, tell bool) {
	ai, ok := h.invites.takeAccepted(call)
	if !ok {
		return
	}
	if tell && h.sessions[ai.agent.id] == ai.agent {
		ai.agent.send(protocol.Message{Type: protocol.TypeWithdrawn, Room: call, Reason: protocol.ReasonPeerLeft})
	}
}

// decline turns an invite down.
func (h *hub) decline(s *session, id string) error {
	inv := h.invites.get(id)
	if inv == nil || inv.agent != s {
		return errNoInvite
	}
	h.inviteDone(inv, protocol.ReasonDeclined, s)
	return nil
}

// inviteDone closes an invite that did not become a call: the agent declined
// it (by is the agent), it expired, or one side left. The customer, if still
// here, goes back to its place; the agent is set away unless it is the
// customer who left.
func (h *hub) inviteDone(inv *invite, reason string, by *session) {
	h.mu.Lock()
	if !h.invites.close(inv) {
		h.mu.Unlock()
		return
	}
	// A customer on another node is put back; it is gone only if it left
	// here.
	custHere := true
	if inv.cust != nil {
		_, waiting := h.entries[inv.cust]
		custHere = h.sessions[inv.cust.id] == inv.cust && waiting
	}
	agentHere := h.sessions[inv.agent.id] == inv.agent
	st := h.agents[inv.agent]
	h.mu.Unlock()
	inv.timer.Stop()

	h.placeMu.Lock()
	h.undoAssignment(inv.a, custHere, agentHere)
	h.placeMu.Unlock()

	m := h.srv.metrics
	switch reason {
	case protocol.ReasonDeclined:
		m.invitesDeclined.WithLabelValues(inv.a.Org, inv.a.Queue).Inc()
	case protocol.ReasonTimeout:
		m.invitesExpired.WithLabelValues(inv.a.Org, inv.a.Queue).Inc()
	}
	if agentHere {
		inv.agent.send(protocol.Message{Type: protocol.TypeWithdrawn, Room: inv.id, Reason: reason})
		if reason != protocol.ReasonPeerLeft && st != nil {
			// Not answering or declining makes the agent away.
			if err := h.setAvailable(inv.agent, false); err != nil {
				h.srv.log.Warn("set agent away after a missed invite failed", "err", err)
			}
		}
	}
	h.place(inv.a.Org, inv.a.Queue)
}

// withdrawInvites closes the invites of a session that left.
func (h *hub) withdrawInvites(s *session) {
	for _, inv := range h.invites.of(s) {
		h.inviteDone(inv, protocol.ReasonPeerLeft, s)
	}
}
