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

// invite is an assignment offered to an agent.
type invite struct {
	id     string // the room the call will have
	a      queue.Assignment
	cust   *session
	agent  *session
	timer  *time.Timer
	closed bool // answered, expired or withdrawn; guarded by hub.mu
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
	// The timer is set in the same step that publishes the invite: a
	// customer leaving at once may close the invite and stop it.
	h.mu.Lock()
	h.invites[inv.id] = inv
	inv.timer = time.AfterFunc(timeout, func() {
		h.srv.goTracked(func() { h.inviteDone(inv, protocol.ReasonTimeout, nil) })
	})
	h.mu.Unlock()
	agent.send(protocol.Message{
		Type:    protocol.TypeInvite,
		Room:    inv.id,
		Queue:   a.Queue,
		Peer:    &protocol.Peer{Role: protocol.RoleCustomer, Name: a.Customer.Name},
		Timeout: int(timeout / time.Second),
	})
}

// takeInvite removes and returns the open invite id of agent s.
func (h *hub) takeInvite(s *session, id string) *invite {
	h.mu.Lock()
	defer h.mu.Unlock()
	inv := h.invites[id]
	if inv == nil || inv.agent != s || inv.closed {
		return nil
	}
	inv.closed = true
	delete(h.invites, id)
	return inv
}

var errNoInvite = protocol.Errorf(protocol.CodeInvalidState, "no such invite: it was withdrawn, expired or never sent to you")

// accept starts the call an agent accepted.
func (h *hub) accept(s *session, id string) error {
	inv := h.takeInvite(s, id)
	if inv == nil {
		return errNoInvite
	}
	inv.timer.Stop()
	// Until the call is set up, a start given up is told to the agent as
	// the invite withdrawn (setup.go).
	h.mu.Lock()
	h.accepted[inv.id] = acceptedInvite{agent: s, at: time.Now()}
	h.mu.Unlock()
	h.placeMu.Lock()
	err := h.start(inv.a, inv.id)
	h.placeMu.Unlock()
	if err != nil {
		h.mu.Lock()
		delete(h.accepted, inv.id)
		h.mu.Unlock()
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

// acceptedInvite is an invite its agent accepted whose call is being set
// up; guarded by hub.mu.
type acceptedInvite struct {
	agent *session
	at    time.Time
}

// withdrawAcceptedLocked tells the agent of an accepted invite, if call is
// one, that it is withdrawn after all (the customer could not be had), and
// forgets it; told false only forgets it. h.mu is held.
func (h *hub) withdrawAcceptedLocked(call string, tell bool) {
	ai, ok := h.accepted[call]
	if !ok {
		return
	}
	delete(h.accepted, call)
	if tell && h.sessions[ai.agent.id] == ai.agent {
		ai.agent.send(protocol.Message{Type: protocol.TypeWithdrawn, Room: call, Reason: protocol.ReasonPeerLeft})
	}
}

// decline turns an invite down.
func (h *hub) decline(s *session, id string) error {
	h.mu.Lock()
	inv := h.invites[id]
	h.mu.Unlock()
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
	if inv.closed {
		h.mu.Unlock()
		return
	}
	inv.closed = true
	delete(h.invites, inv.id)
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
	h.mu.Lock()
	var mine []*invite
	for _, inv := range h.invites {
		if (inv.cust != nil && inv.cust == s) || inv.agent == s {
			mine = append(mine, inv)
		}
	}
	h.mu.Unlock()
	for _, inv := range mine {
		h.inviteDone(inv, protocol.ReasonPeerLeft, s)
	}
}

// invitedLocked reports whether customer s is in an open invite. h.mu is
// held.
func (h *hub) invitedLocked(s *session) bool {
	for _, inv := range h.invites {
		if inv.cust != nil && inv.cust == s {
			return true
		}
	}
	return false
}

// stopInvites stops every invite's timer (shutdown).
func (h *hub) stopInvites() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, inv := range h.invites {
		inv.timer.Stop()
		inv.closed = true
		delete(h.invites, id)
	}
}
