package signaling

import (
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// Agents' presence. An agent joins away; it says when it takes customers
// (setAvailable), and its state (busy, available, away) follows from that
// wish and from how many calls it holds or is being set up for. The store
// has its presence for placement on every node; agentState here is what
// only this node knows, guarded by hub.mu.

// agentState is what this node knows of one of its agents.
type agentState struct {
	wantAvailable bool                // what the agent asked for; applies again after a call
	stats         protocol.QueueStats // the queue summary it was last sent
}

// setAvailable records an agent's wish to take customers or not.
func (h *hub) setAvailable(s *session, available bool) error {
	h.mu.Lock()
	st := h.agents[s]
	st.wantAvailable = available
	busy := h.atCapacityLocked(s)
	h.mu.Unlock()

	ctx, cancel := h.storeCtx()
	err := h.store.presence.SetAgent(ctx, h.agentRecord(s), available)
	cancel()
	if err != nil {
		return storeError("set agent presence", err)
	}
	state := protocol.AgentAway
	switch {
	case busy:
		state = protocol.AgentBusy
	case available:
		state = protocol.AgentAvailable
	}
	s.send(protocol.Message{Type: protocol.TypeAgentState, State: state})
	if available && !busy {
		h.place(s.org.ID, s.queue)
	}
	return nil
}

// agentRecord is an agent's presence for the store. Its skills and capacity
// come from its token.
func (h *hub) agentRecord(s *session) queue.Agent {
	return queue.Agent{Org: s.org.ID, Session: s.id, Queues: []string{s.queue}, Capacity: capacity(s), Skills: s.claims.Skills,
		Node: h.self, Name: s.claims.Name, Subject: s.claims.Subject}
}

// capacity is how many calls a session may hold at once.
func capacity(s *session) int { return max(s.claims.Capacity, 1) }

// sendAgentState tells an agent its state: busy with as many calls as it
// may hold, else available or away as it asked.
func (h *hub) sendAgentState(s *session) {
	h.mu.Lock()
	state := h.agentStateLocked(s)
	h.mu.Unlock()
	s.send(protocol.Message{Type: protocol.TypeAgentState, State: state})
}

// agentStateLocked is agent s's state now. h.mu is held.
func (h *hub) agentStateLocked(s *session) string {
	st := h.agents[s]
	switch {
	case h.atCapacityLocked(s):
		return protocol.AgentBusy
	case st != nil && st.wantAvailable:
		return protocol.AgentAvailable
	}
	return protocol.AgentAway
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
	if err := h.store.presence.SetAgent(ctx, h.agentRecord(s), available); err != nil {
		h.srv.log.Warn("set agent presence failed", "org", s.org.ID, "err", err)
	}
	if available {
		h.place(s.org.ID, s.queue)
	}
}
