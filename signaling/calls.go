package signaling

import (
	"errors"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/helpcaster/helpcaster/recorder/callrec"
	"github.com/helpcaster/helpcaster/sfu"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// Calls. A call is one customer and one agent in one room. The node that
// hosts the room holds the call with both participants; each side is either
// a session on this node or a session on another node, reached through the
// relay between nodes (relayed.go, peers.go). A node holding a side's
// connection but not the room keeps a stub of the call (host set, no room)
// that says where to send that side's messages. On a single node every call
// is hosted here and both sides are local.

// call is one customer and one agent in one room.
type call struct {
	id         string
	org, queue string
	host       string // stub: the node hosting the room; "" when hosted here
	room       *sfu.Room
	cust       side
	agent      side
	entry      queue.Entry // the customer's queue entry, to put back if the call cannot start
	started    time.Time
	phase      int                           // setup phase (setup.go); guarded by hub.mu
	held       []string                      // roles whose nodes hold them, while reserving; guarded by hub.mu
	live       bool                          // both sides were told; counted as a call
	ended      bool                          // guarded by hub.mu
	endReason  string                        // why it ended, once ended; guarded by hub.mu
	deadline   *time.Timer                   // set up with holds: aborted if not committed in time
	monitors   map[*session]*sfu.Participant // supervisors listening in (monitor.go); guarded by hub.mu
	// agentSubject is the agent's token subject, for the recording.
	agentSubject string
	// rec is the call's recording on its host (recording.go); nil when
	// the call is not recorded. Set before the room has tracks, ended with
	// the room.
	rec       *callrec.Call
	rebinding sync.Mutex // held through a resumed customer's rebind (resume.go)
	// record orders the writes of the customer's call record in the store:
	// saveCall's, and the end's (callrecord.go). Held through one store
	// write, never with hub.mu.
	record sync.Mutex
}

// side is one party of a call.
type side struct {
	role string
	id   string           // session id
	node string           // node holding its connection; "" for this node
	s    *session         // its session when on this node
	part *sfu.Participant // host only
	peer protocol.Peer    // how the other side sees it
	// grace, on the host, runs while a customer whose connection dropped
	// may resume into the call; guarded by hub.mu.
	grace *time.Timer
}

func (c *call) side(role string) *side {
	if role == protocol.RoleAgent {
		return &c.agent
	}
	return &c.cust
}

func (c *call) other(role string) *side {
	if role == protocol.RoleAgent {
		return &c.cust
	}
	return &c.agent
}

// sendTo delivers m to a side, here or through the relay. Messages about
// the call name it in room (an agent may be in several calls).
func (h *hub) sendTo(c *call, sd *side, m protocol.Message) {
	if m.Type != protocol.TypeError {
		m.Room = c.id
	}
	s, node, id := h.whereIs(sd)
	switch {
	case s != nil:
		s.send(m)
	case node != "":
		h.relay(node, relayMsg{Kind: relayDeliver, Call: c.id, Side: sd.role, Session: id, Msg: &m})
	}
}

// whereIs says how a side is reached now: its session here, or the node
// and session id holding its connection. A customer's detach and resume
// change these under hub.mu while SFU goroutines send to the side, so
// they are read under it too. h.mu must not be held.
func (h *hub) whereIs(sd *side) (s *session, node, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return sd.s, sd.node, sd.id
}

// start turns an assignment into a call in room id: here, with the
// classic all-local path when both sides are on this node and this node is
// the least loaded, else on the room's node, which holds both sides before
// telling either (setup.go). Called with placeMu held.
func (h *hub) start(a queue.Assignment, id string) error {
	room := h.roomNode()
	local := h.isSelf(a.Customer.Node) && h.isSelf(a.AgentNode)
	switch {
	case room == h.self && local:
		return h.startCall(a, id)
	case room == h.self:
		h.srv.goTracked(func() { h.setUp(a, id) })
		return nil
	}
	if !h.relay(room, relayMsg{Kind: relayHost, Call: id, A: &a}) {
		h.srv.goTracked(func() { h.setUp(a, id) }) // the room's node is gone: host it here
	}
	return nil
}

// startCall connects an assignment's customer and agent, both on this node,
// in a new room id. If either has left meanwhile (or the customer left the
// queue), the assignment is undone (the customer, if still waiting, goes back
// to its place in the queue) and errUndone returned. Called with placeMu
// held; another error means the SFU could not host the call.
func (h *hub) startCall(a queue.Assignment, id string) error {
	h.mu.Lock()
	cust := h.sessions[a.Customer.Session]
	agent := h.sessions[a.Agent]
	if _, waiting := h.entries[cust]; cust != nil && !waiting {
		cust = nil // left the queue while the agent was invited
	}
	h.mu.Unlock()
	if cust == nil || agent == nil {
		h.undoAssignment(a, cust != nil, agent != nil)
		return errUndone
	}
	c := h.newCall(a, id)
	c.cust.s, c.agent.s = cust, agent
	if err := h.openRoom(c); err != nil {
		h.undoAssignment(a, true, true)
		return err
	}

	// Record the call only if both are still connected: disconnected()
	// removes a session under h.mu before it looks for its call, so either
	// it sees this call or this check sees it gone.
	h.mu.Lock()
	_, waiting := h.entries[cust]
	stillHere := h.sessions[cust.id] == cust && h.sessions[agent.id] == agent && waiting
	if stillHere {
		delete(h.queued, cust)
		delete(h.entries, cust)
		h.calls.add(cust, c)
		h.calls.add(agent, c)
		c.phase = phaseLive
		h.calls.host(c)
		// Both are told in the step that records the call: an instant
		// hang-up by either, which ends the call under h.mu, is told to
		// the other after its assigned.
		agent.send(protocol.Message{Type: protocol.TypeAgentState, State: h.agentStateLocked(agent)})
		agent.send(h.assignedMessage(c, &c.agent))
		h.tellLocked(cust, h.assignedMessage(c, &c.cust))
	}
	h.mu.Unlock()
	if !stillHere {
		h.closeRoom(c)
		h.mu.Lock()
		_, waiting := h.entries[cust]
		custHere, agentHere := h.sessions[cust.id] == cust && waiting, h.sessions[agent.id] == agent
		h.mu.Unlock()
		h.undoAssignment(a, custHere, agentHere)
		return errUndone
	}
	if h.callLive(c) {
		h.saveCall(c)
	}
	return nil
}

// errUndone says an assignment was undone because a side had left.
var errUndone = errors.New("assignment undone: a side has left")

func (h *hub) newCall(a queue.Assignment, id string) *call {
	c := &call{id: id, org: a.Org, queue: a.Queue, entry: a.Customer, started: time.Now()}
	c.cust = side{role: protocol.RoleCustomer, id: a.Customer.Session, node: h.nodeOf(a.Customer.Node),
		peer: protocol.Peer{Role: protocol.RoleCustomer, Name: a.Customer.Name}}
	c.agent = side{role: protocol.RoleAgent, id: a.Agent, node: h.nodeOf(a.AgentNode),
		peer: protocol.Peer{Role: protocol.RoleAgent, Name: a.AgentName}}
	c.agentSubject = a.AgentSubject
	return c
}

func (h *hub) assignedMessage(c *call, to *side) protocol.Message {
	peer := c.other(to.role).peer
	return protocol.Message{Type: protocol.TypeAssigned, Room: c.id, Peer: &peer, ICEServers: h.srv.iceServers(c.org, to.id)}
}

// callLive counts a call whose two sides have been told; false if it has
// ended meanwhile.
func (h *hub) callLive(c *call) bool {
	h.mu.Lock()
	if c.ended {
		// Ended while its sides were told: endCall saw it not live, and
		// nothing is counted.
		h.mu.Unlock()
		return false
	}
	c.live = true
	h.mu.Unlock()
	m := h.srv.metrics
	m.placements.WithLabelValues(c.org, c.queue).Inc()
	m.waitSeconds.WithLabelValues(c.org, c.queue).Observe(time.Since(c.entry.Since).Seconds())
	m.callsActive.Inc()
	c.room.OnActiveSpeaker(h.speakerSignals(c))
	h.tellRecording(c, &c.cust)
	h.tellRecording(c, &c.agent)
	h.srv.log.Info("call started", "org", c.org, "queue", c.queue, "call", c.id)
	return true
}

// saveCall records where the customer of c can resume into it from,
// unless c has ended: the end's record (or its deletion) is then the last
// word, whichever of the two reaches the store first.
func (h *hub) saveCall(c *call) {
	c.record.Lock()
	defer c.record.Unlock()
	h.mu.Lock()
	ended := c.ended
	h.mu.Unlock()
	if ended {
		return
	}
	ctx, cancel := h.storeCtx()
	defer cancel()
	rec := queue.CallRecord{Call: c.id, Host: h.self, ResumeKey: c.entry.ResumeKey}
	if err := h.store.records.SaveCall(ctx, c.org, c.cust.id, rec); err != nil {
		h.srv.log.Warn("saving the call for resume failed", "org", c.org, "err", err)
	}
}

// fromClient handles a call message of local session s: on the call here,
// or forwarded to the node hosting it (whose answers and errors come back
// through the relay).
func (h *hub) fromClient(s *session, m protocol.Message) error {
	if s.role == protocol.RoleSupervisor {
		return h.monitorMsg(s, m)
	}
	c, err := h.callOf(s, m.Room)
	if err == errNotInCall {
		return h.lateAnswer(s, m, err)
	}
	if err != nil {
		return err
	}
	m.Room = ""
	if c.host != "" {
		// Unreachable, even with nobody listening on its channel (which is
		// also how a node looks for a moment after Redis restarts), the
		// room's node may still hold the call: the client is told, and may
		// try again. A node that is really dead has its calls ended by the
		// reaper (endOrphanedStubs), and a restarted one answers unknown.
		if !h.relay(c.host, relayMsg{Kind: relayClient, Call: c.id, Side: s.role, Msg: &m}) {
			return protocol.Errorf(protocol.CodeUnavailable, "the call's media server cannot be reached")
		}
		return nil
	}
	return h.callMsg(c, s.role, m)
}

// hangup ends s's call (the one named room, if it has several), takes a
// waiting customer out of the queue, or ends a supervisor's monitoring.
func (h *hub) hangup(s *session, room string) error {
	if s.role == protocol.RoleSupervisor {
		h.mu.Lock()
		c := h.monitoring[s]
		h.mu.Unlock()
		if c == nil || (room != "" && room != c.id) {
			return errNotInCall
		}
		h.stopMonitor(s, protocol.ReasonHangup, nil)
		return nil
	}
	h.mu.Lock()
	inCall := h.calls.count(s) > 0
	_, waiting := h.queued[s]
	h.mu.Unlock()
	switch {
	case inCall:
		return h.fromClient(s, protocol.Message{Type: protocol.TypeHangup, Room: room})
	case waiting:
		h.leaveQueue(s)
		s.send(protocol.Message{Type: protocol.TypeEnded, Reason: protocol.ReasonHangup})
		s.closeWith(websocket.StatusNormalClosure, "left the queue")
		return nil
	default:
		// A hang-up of a call that has just ended is done already.
		return h.lateAnswer(s, protocol.Message{Type: protocol.TypeHangup, Room: room}, errNotInCall)
	}
}

// endCall ends a call hosted here, once. byRole is the side that hung up
// ("" when the call ended for another reason); it gets reason, the other
// side peer_left. Both sides are told before the agent's slot is released:
// a node holding the agent then hears of the end before any new call for
// it, and the released slot is offered at once.
func (h *hub) endCall(c *call, byRole, reason string) {
	h.mu.Lock()
	if c.ended {
		h.mu.Unlock()
		return
	}
	if c.phase == phaseReserving {
		// Nobody was told yet: the start is undone instead.
		h.mu.Unlock()
		h.abort(c, "", refusedGone)
		return
	}
	c.ended, c.endReason = true, reason
	c.phase = phaseEnded
	live := c.live
	h.calls.unhost(c.id)
	for _, sd := range []*side{&c.cust, &c.agent} {
		if sd.s != nil {
			h.removeCallLocked(sd.s, c)
		}
	}
	grace := c.cust.grace
	c.cust.grace = nil
	h.mu.Unlock()
	if c.deadline != nil {
		c.deadline.Stop()
	}
	if grace != nil {
		grace.Stop()
	}

	h.endMonitors(c, reason)
	h.closeRoom(c)
	handled := time.Since(c.started)
	if live {
		h.srv.metrics.callsActive.Dec()
		h.srv.metrics.callsEnded.WithLabelValues(reason).Inc()
		h.srv.metrics.handleSeconds.WithLabelValues(c.org, c.queue).Observe(handled.Seconds())
		h.srv.log.Info("call ended", "org", c.org, "queue", c.queue, "call", c.id, "reason", reason,
			"duration_s", int(handled.Seconds()))
	}

	for _, sd := range []*side{&c.cust, &c.agent} {
		m := protocol.Message{Type: protocol.TypeEnded, Reason: endedFor(byRole, reason, sd.role), Room: c.id}
		s, node, id := h.whereIs(sd)
		switch {
		case s != nil:
			h.sideEnded(s, m, c.org, c.queue)
		case node != "":
			h.relay(node, relayMsg{Kind: relayEnded, Call: c.id, Side: sd.role, Session: id, Msg: &m})
		}
	}

	ctx, cancel := h.storeCtx()
	if err := h.store.presence.Release(ctx, c.org, c.agent.id); err != nil {
		// The agent's node sees the store count a call it does not have
		// and settles it (audit.go).
		h.srv.log.Error("release agent failed", "err", err)
	}
	if live {
		if err := h.store.stats.RecordHandled(ctx, c.org, c.queue, handled); err != nil {
			h.srv.log.Warn("record handle time failed", "err", err)
		}
	}
	// Kept for the grace when the call was live: a customer whose
	// connection was lost learns of the end when it resumes
	// (callrecord.go). A call that ended while its sides were being told
	// leaves no record (set-up across nodes saves it before telling).
	h.keepEnded(ctx, c, byRole, reason, live)
	cancel()
	h.srv.goTracked(func() { h.place(c.org, c.queue) })
}

// sideEnded tells a local session its call ended: a customer's connection
// then closes; an agent goes back to the state it asked for.
func (h *hub) sideEnded(s *session, m protocol.Message, org, q string) {
	s.send(m)
	if h.srv.stopping() {
		return // this node is shutting down: bye and 1001 follow
	}
	if s.role == protocol.RoleCustomer {
		s.closeWith(websocket.StatusNormalClosure, "call ended")
		return
	}
	h.mu.Lock()
	st := h.agents[s]
	connected := h.sessions[s.id] == s
	available := st != nil && st.wantAvailable
	h.mu.Unlock()
	if !connected || st == nil {
		return
	}
	h.sendAgentState(s)
	h.drainAfterCall(s) // draining: bye once its last call ended (drain.go)
	if available {
		// Say so again: a store that lost its data while the call ran has
		// this agent as away.
		ctx, cancel := h.storeCtx()
		err := h.store.presence.SetAgent(ctx, h.agentRecord(s), true)
		cancel()
		if err != nil {
			h.srv.log.Warn("set agent presence after a call failed", "err", err)
		}
		h.place(org, q)
	}
}

// disconnected cleans up after a joined session's connection ended. A
// waiting customer keeps its place for the resume grace (resume.go).
func (h *hub) disconnected(s *session) {
	// Forget the session, read its calls and settle its holds in one step:
	// see startCall, and holds.go (a commit or an abort that finds the
	// session gone finds its hold gone too, and puts the customer back).
	h.mu.Lock()
	if h.sessions[s.id] == s {
		delete(h.sessions, s.id)
	}
	calls := h.calls.forget(s)
	_, waiting := h.queued[s]
	_, isAgent := h.agents[s]
	delete(h.agents, s)
	delete(h.supervisors, s)
	droppedHolds := h.holds.dropSession(s)
	h.mu.Unlock()
	h.ended.forget(s)
	if s.role == protocol.RoleSupervisor {
		h.stopMonitor(s, "", nil)
	}

	// A side held for a call being set up: an agent's is given up (its
	// host hears so), a customer's decided by its host (holds.go).
	for _, hd := range droppedHolds {
		h.answerHost(hd.target, hd.role, refusedGone)
	}
	if waiting {
		h.detach(s)
	}
	if isAgent {
		h.withdrawInvites(s)
		ctx, cancel := h.storeCtx()
		if err := h.store.presence.RemoveAgent(ctx, s.org.ID, s.id); err != nil {
			h.srv.log.Error("remove agent failed", "err", err)
		}
		cancel()
		h.kick(s.org.ID, s.queue)
	}
	for _, c := range calls {
		// A customer keeps its call for the grace, to resume into it.
		resumable := s.role == protocol.RoleCustomer && !h.srv.stopping() // draining too
		switch {
		case c.host != "" && resumable:
			h.relay(c.host, relayMsg{Kind: relayDetach, Call: c.id, Side: s.role})
		case c.host != "":
			h.relay(c.host, relayMsg{Kind: relayLeft, Call: c.id, Side: s.role})
		case resumable:
			h.detachSide(c, s.role, func(sd *side) bool { return sd.s == s })
		default:
			h.endCall(c, s.role, protocol.ReasonHangup)
		}
	}
}

// endAll ends every call hosted here and leaves those hosted elsewhere
// (server shutdown).
func (h *hub) endAll(reason string) {
	h.invites.closeAll()
	h.graces.stopAll()
	// A stub's side (the one connected here) is read in the same step, under
	// hub.mu: the relay sets it when the side is bound.
	type stub struct {
		c    *call
		side side
	}
	var stubs []stub
	h.mu.Lock()
	hosted := make(map[*call]struct{})
	seen := make(map[*call]bool)
	for _, c := range h.calls.all() {
		switch {
		case c.host == "":
			hosted[c] = struct{}{}
		case !seen[c]:
			seen[c] = true
			stubs = append(stubs, stub{c, *c.localSide()})
		}
	}
	for c := range h.calls.allHosted() {
		hosted[c] = struct{}{}
	}
	h.mu.Unlock()
	for _, st := range stubs {
		h.relay(st.c.host, relayMsg{Kind: relayLeft, Call: st.c.id, Side: st.side.role})
		if st.side.s != nil {
			st.side.s.send(protocol.Message{Type: protocol.TypeEnded, Reason: reason, Room: st.c.id})
		}
	}
	for c := range hosted {
		h.endCall(c, "", reason)
	}
}

// localSide is a stub's side on this node. h.mu is held.
func (c *call) localSide() *side {
	if c.cust.s != nil {
		return &c.cust
	}
	return &c.agent
}

// removeCallLocked forgets that s is in c, noting that it ended for s
// (late.go); true if s was in c. h.mu is held.
func (h *hub) removeCallLocked(s *session, c *call) bool {
	if !h.calls.remove(s, c) {
		return false
	}
	h.ended.note(s, c.id)
	return true
}

// atCapacityLocked reports whether s holds as many calls as it may,
// counting those being set up. h.mu is held.
func (h *hub) atCapacityLocked(s *session) bool {
	return h.calls.count(s)+h.holds.count(s) >= capacity(s)
}

// callOf returns s's call named room, or its only call when room is "".
func (h *hub) callOf(s *session, room string) (*call, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	calls := h.calls.of(s)
	if room != "" {
		if c := calls[room]; c != nil {
			return c, nil
		}
		return nil, errNotInCall
	}
	switch len(calls) {
	case 0:
		return nil, errNotInCall
	case 1:
		for _, c := range calls {
			return c, nil
		}
	}
	return nil, protocol.Errorf(protocol.CodeBadMessage, "you are in %d calls: name the call in room", len(calls))
}

// hostedCall returns the call hosted here named id, or nil.
func (h *hub) hostedCall(id string) *call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls.hostedCall(id)
}

// boundSession returns local session id if it is in call callID.
func (h *hub) boundSession(id, callID string) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[id]
	if s == nil || h.calls.get(s, callID) == nil {
		return nil
	}
	return s
}
