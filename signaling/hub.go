package signaling

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/helpcaster/helpcaster/sfu"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
	"github.com/pion/webrtc/v4"
)

// storeTimeout bounds each queue store operation.
const storeTimeout = 5 * time.Second

// hub tracks this node's joined sessions, runs queue placement and owns the
// calls. Placement is serialised by placeMu so that, on one node, an
// assignment and the disappearance of either party never interleave.
type hub struct {
	srv *Server

	placeMu sync.Mutex

	mu       sync.Mutex
	sessions map[string]*session // joined sessions by id
	agents   map[*session]*agentState
	queued   map[*session]position    // customers waiting, with what they were last told
	entries  map[*session]queue.Entry // each waiting customer's queue entry, to restore it
	calls    map[*session]*call
	invites  map[string]*invite // open invites by id (invite.go)

	dirty  map[queueKey]bool // queues to refresh (queuestats.go)
	kicked chan struct{}     // wakes the refresher
}

type agentState struct {
	wantAvailable bool                // what the agent asked for; applies again after a call
	stats         protocol.QueueStats // the queue summary it was last sent
}

// position is what a waiting customer was last told: its place, the queue's
// length and the estimated wait in seconds (-1: unknown).
type position struct{ pos, length, wait int }

// call is one customer and one agent in one room.
type call struct {
	id                  string
	org, queue          string
	room                *sfu.Room
	customer, agent     *session
	custPart, agentPart *sfu.Participant
	started             time.Time
	ended               bool
}

func newHub(s *Server) *hub {
	return &hub{
		srv:      s,
		sessions: make(map[string]*session),
		agents:   make(map[*session]*agentState),
		queued:   make(map[*session]position),
		entries:  make(map[*session]queue.Entry),
		calls:    make(map[*session]*call),
		invites:  make(map[string]*invite),
		dirty:    make(map[queueKey]bool),
		kicked:   make(chan struct{}, 1),
	}
}

func (h *hub) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(h.srv.ctx, storeTimeout)
}

// joined registers a newly authenticated session and sends it welcome: a
// customer is queued first (so a full queue refuses it without a welcome),
// an agent starts away.
func (h *hub) joined(s *session, maxLen int, welcome protocol.Message) error {
	h.mu.Lock()
	h.sessions[s.id] = s
	if s.role == protocol.RoleAgent {
		h.agents[s] = &agentState{}
	}
	h.mu.Unlock()

	if s.role == protocol.RoleAgent {
		// Logged in and away: counted in the queue's statistics.
		ctx, cancel := h.storeCtx()
		err := h.srv.store.SetAgent(ctx, h.agentRecord(s), false)
		cancel()
		if err != nil {
			h.forget(s)
			return storeError("set agent presence", err)
		}
		s.send(welcome)
		s.send(protocol.Message{Type: protocol.TypeAgentState, State: protocol.AgentAway})
		h.kick(s.org.ID, s.queue)
		return nil
	}
	if err := h.enqueue(s, maxLen, welcome); err != nil {
		h.forget(s)
		return err
	}
	h.place(s.org.ID, s.queue)
	return nil
}

// enqueue puts a customer in its queue and sends welcome and its first
// queued. placeMu is held throughout so no placement can assign the
// customer before it has been welcomed.
func (h *hub) enqueue(s *session, maxLen int, welcome protocol.Message) error {
	h.placeMu.Lock()
	defer h.placeMu.Unlock()
	ctx, cancel := h.storeCtx()
	defer cancel()
	cfg, _ := s.org.Queue(s.queue)
	entry := queue.Entry{
		Org: s.org.ID, Queue: s.queue, Session: s.id, Attrs: s.claims.Attrs, Since: time.Now(),
		Priority: cfg.Policy.Priority(s.claims.Attrs),
	}
	pos, err := h.srv.store.Enqueue(ctx, entry, maxLen)
	switch {
	case errors.Is(err, queue.ErrFull):
		return protocol.Errorf(protocol.CodeQueueFull, "queue %q is full; try again later", s.queue)
	case err != nil:
		return storeError("enqueue", err)
	}
	length := pos
	if waiting, err := h.srv.store.Waiting(ctx, s.org.ID, s.queue); err == nil {
		length = max(len(waiting), pos)
	}
	first := position{pos: pos, length: length, wait: -1}
	h.mu.Lock()
	h.queued[s] = first
	h.entries[s] = entry
	h.mu.Unlock()
	s.send(welcome)
	s.send(queuedMessage(s.queue, first))
	h.kick(s.org.ID, s.queue) // the estimate follows
	return nil
}

func (h *hub) forget(s *session) {
	h.mu.Lock()
	delete(h.sessions, s.id)
	delete(h.agents, s)
	delete(h.queued, s)
	delete(h.entries, s)
	h.mu.Unlock()
}

// setAvailable records an agent's wish to take customers or not.
func (h *hub) setAvailable(s *session, available bool) error {
	h.mu.Lock()
	st := h.agents[s]
	st.wantAvailable = available
	_, busy := h.calls[s]
	h.mu.Unlock()

	ctx, cancel := h.storeCtx()
	err := h.srv.store.SetAgent(ctx, h.agentRecord(s), available)
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

// storeError is what a client is told when the queue store failed in op:
// unavailable (retry) when the store cannot be reached, else the error
// itself (an internal error to the client).
func storeError(op string, err error) error {
	if errors.Is(err, queue.ErrUnavailable) {
		return protocol.Errorf(protocol.CodeUnavailable, "the queue is unavailable right now; retry in a few seconds")
	}
	return fmt.Errorf("%s: %w", op, err)
}

// agentRecord is an agent's presence for the store. Its skills come from
// its token. The hub holds one call per agent session, so the store is told
// capacity 1 whatever the token says.
func (h *hub) agentRecord(s *session) queue.Agent {
	return queue.Agent{Org: s.org.ID, Session: s.id, Queues: []string{s.queue}, Capacity: 1, Skills: s.claims.Skills}
}

// place assigns waiting customers of a queue to eligible available agents
// for as long as pairs exist (by the queue's routing policy), starting each
// call or, where the queue asks for it, inviting the agent first. Then the
// queue is refreshed. It stops at the first assignment it cannot connect, so
// a failing SFU never makes it spin.
func (h *hub) place(org, q string) {
	defer h.kick(org, q)
	cfg, ok := h.queueConfig(org, q)
	if !ok {
		return
	}
	h.placeMu.Lock()
	defer h.placeMu.Unlock()
	if !h.srv.Ready() {
		return // shutting down: no new calls
	}
	for {
		ctx, cancel := h.storeCtx()
		a, ok, err := h.srv.store.Assign(ctx, org, q, cfg.Policy)
		cancel()
		if err != nil {
			h.srv.log.Error("queue placement failed", "org", org, "queue", q, "err", err)
			break
		}
		if !ok {
			break
		}
		if cfg.OfferTimeout > 0 {
			h.invite(a, cfg.OfferTimeout)
			continue
		}
		if err := h.startCall(a, randomID(12)); err != nil {
			h.srv.log.Error("could not start a call", "org", org, "queue", q, "err", err)
			break
		}
	}
}

// startCall connects an assignment's customer and agent in a new room id. If
// either has left meanwhile (or the customer left the queue), the assignment
// is undone (the customer, if still waiting, goes back to its place in the
// queue). Called with placeMu held; an error means the SFU could not host
// the call.
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
		return nil
	}
	c := &call{id: id, org: a.Org, queue: a.Queue, customer: cust, agent: agent, started: time.Now()}
	room, err := h.srv.sfu.Room(c.id)
	if err == nil {
		c.room = room
		c.custPart, err = room.Join(randomID(9), h.mediaSignals(c, cust))
	}
	if err == nil {
		c.agentPart, err = room.Join(randomID(9), h.mediaSignals(c, agent))
	}
	if err != nil {
		if c.room != nil {
			c.room.Close()
		}
		h.undoAssignment(a, true, true)
		return fmt.Errorf("create room: %w", err)
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
		h.calls[cust] = c
		h.calls[agent] = c
	}
	h.mu.Unlock()
	if !stillHere {
		c.room.Close()
		h.mu.Lock()
		_, waiting := h.entries[cust]
		custHere, agentHere := h.sessions[cust.id] == cust && waiting, h.sessions[agent.id] == agent
		h.mu.Unlock()
		h.undoAssignment(a, custHere, agentHere)
		return nil
	}

	m := h.srv.metrics
	m.placements.WithLabelValues(a.Org, a.Queue).Inc()
	m.waitSeconds.WithLabelValues(a.Org, a.Queue).Observe(time.Since(a.Customer.Since).Seconds())
	m.callsActive.Inc()

	agent.send(protocol.Message{Type: protocol.TypeAgentState, State: protocol.AgentBusy})
	for _, pair := range [][2]*session{{cust, agent}, {agent, cust}} {
		s, other := pair[0], pair[1]
		s.send(protocol.Message{
			Type:       protocol.TypeAssigned,
			Room:       c.id,
			Peer:       other.peer(),
			ICEServers: h.srv.iceServers(a.Org, s.id),
		})
	}
	c.room.OnActiveSpeaker(speakerSignals(c))
	h.srv.log.Info("call started", "org", a.Org, "queue", a.Queue, "call", c.id)
	return nil
}

// speakerSignals tells both sides of c who is speaking whenever the room's
// active speaker changes. It runs on SFU goroutines (one call at a time, in
// order, no SFU lock held) and takes no hub lock: session.send never blocks,
// so it cannot deadlock with endCall, and once endCall has closed the room
// it is no longer called.
func speakerSignals(c *call) func(participantID string) {
	custID, agentID := c.custPart.ID(), c.agentPart.ID()
	return func(id string) {
		m := protocol.Message{Type: protocol.TypeSpeaker}
		switch id {
		case "":
		case custID:
			m.Role = protocol.RoleCustomer
		case agentID:
			m.Role = protocol.RoleAgent
		default:
			return // not one of the call's two sides
		}
		c.customer.send(m)
		c.agent.send(m)
	}
}

// undoAssignment reverses an assignment that could not become a call: a
// customer still connected goes back to the front of the queue; the agent's
// capacity is released (or the agent forgotten if it left).
func (h *hub) undoAssignment(a queue.Assignment, custHere, agentHere bool) {
	ctx, cancel := h.storeCtx()
	defer cancel()
	if custHere {
		if err := h.srv.store.Requeue(ctx, a.Customer); err != nil {
			h.srv.log.Error("requeue failed", "org", a.Org, "queue", a.Queue, "err", err)
		}
	}
	var err error
	if agentHere {
		err = h.srv.store.Release(ctx, a.Org, a.Agent)
	} else {
		err = h.srv.store.RemoveAgent(ctx, a.Org, a.Agent)
	}
	if err != nil {
		h.srv.log.Error("release agent failed", "org", a.Org, "err", err)
	}
}

// mediaSignals relays the SFU's signals for one participant to its session.
func (h *hub) mediaSignals(c *call, s *session) func(sfu.Signal) {
	return func(sig sfu.Signal) {
		switch {
		case sig.Offer != "":
			s.send(protocol.Message{Type: protocol.TypeOffer, PC: sig.PC, SDP: sig.Offer})
		case sig.Candidate != nil:
			s.send(protocol.Message{Type: protocol.TypeCandidate, PC: sig.PC, Candidate: toProtoCandidate(sig.Candidate)})
		case sig.Layers != nil:
			s.send(protocol.Message{Type: protocol.TypeLayers, Track: sig.Layers.TrackID, Active: sig.Layers.Active, Paused: sig.Layers.Paused})
		case sig.Failed:
			// Not from this callback's goroutine: ending closes the connection
			// that is calling us.
			h.srv.goTracked(func() { h.endCall(c, nil, protocol.ReasonFailed) })
		}
	}
}

func toProtoCandidate(c *webrtc.ICECandidateInit) *protocol.ICECandidate {
	return &protocol.ICECandidate{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
}

// participant returns s's participant in its current call.
func (h *hub) participant(s *session) (*call, *sfu.Participant, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls[s]
	if c == nil {
		return nil, nil, errNotInCall
	}
	if s == c.customer {
		return c, c.custPart, nil
	}
	return c, c.agentPart, nil
}

func (h *hub) offer(s *session, sdp string) error {
	_, p, err := h.participant(s)
	if err != nil {
		return err
	}
	answer, err := p.Offer(sdp)
	if err != nil {
		return mediaError(err)
	}
	s.send(protocol.Message{Type: protocol.TypeAnswer, PC: protocol.PCPub, SDP: answer})
	return nil
}

func (h *hub) answer(s *session, sdp string) error {
	_, p, err := h.participant(s)
	if err != nil {
		return err
	}
	return mediaError(p.Answer(sdp))
}

func (h *hub) candidate(s *session, pc string, c *protocol.ICECandidate) error {
	if c == nil || c.Candidate == "" {
		return nil // end of candidates
	}
	_, p, err := h.participant(s)
	if err != nil {
		return err
	}
	return mediaError(p.AddCandidate(pc, webrtc.ICECandidateInit{
		Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment,
	}))
}

func mediaError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sfu.ErrBadSDP):
		return protocol.Errorf(protocol.CodeBadSDP, "%v", err)
	case errors.Is(err, sfu.ErrState):
		return protocol.Errorf(protocol.CodeInvalidState, "%v", err)
	case errors.Is(err, sfu.ErrClosed):
		return errNotInCall
	default:
		return err
	}
}

// quality limits the video s receives to the quality it asked for, or to
// the lowest simulcast layer at least as large as the size it renders at.
func (h *hub) quality(s *session, m protocol.Message) error {
	_, p, err := h.participant(s)
	if err != nil {
		return err
	}
	var q int
	switch m.Quality {
	case protocol.QualityLow:
		q = sfu.QualityLow
	case protocol.QualityMedium:
		q = sfu.QualityMedium
	case protocol.QualityHigh:
		q = sfu.QualityHigh
	default:
		q = p.QualityForSize(m.Width, m.Height)
	}
	p.SetMaxQuality(q)
	return nil
}

func (h *hub) chat(s *session, text string) error {
	c, _, err := h.participant(s)
	if err != nil {
		return err
	}
	other := c.customer
	if s == c.customer {
		other = c.agent
	}
	other.send(protocol.Message{Type: protocol.TypeChat, Text: text, From: s.peer(), TS: time.Now().UnixMilli()})
	return nil
}

// hangup ends s's call, or takes a waiting customer out of the queue.
func (h *hub) hangup(s *session) error {
	h.mu.Lock()
	c := h.calls[s]
	_, waiting := h.queued[s]
	h.mu.Unlock()
	switch {
	case c != nil:
		h.endCall(c, s, protocol.ReasonHangup)
		return nil
	case waiting:
		h.leaveQueue(s)
		s.send(protocol.Message{Type: protocol.TypeEnded, Reason: protocol.ReasonHangup})
		s.closeWith(websocket.StatusNormalClosure, "left the queue")
		return nil
	default:
		return errNotInCall
	}
}

// leaveQueue removes a waiting customer (from the queue, or from an invite
// it was in) and updates the others.
func (h *hub) leaveQueue(s *session) {
	h.placeMu.Lock()
	h.mu.Lock()
	e, ok := h.entries[s]
	delete(h.queued, s)
	delete(h.entries, s)
	h.mu.Unlock()
	if !ok {
		h.placeMu.Unlock()
		return
	}
	ctx, cancel := h.storeCtx()
	_, err := h.srv.store.Remove(ctx, e.Org, e.Queue, s.id)
	cancel()
	h.placeMu.Unlock()
	if err != nil {
		h.srv.log.Error("leave queue failed", "err", err)
	}
	h.srv.metrics.abandoned.WithLabelValues(e.Org, e.Queue).Inc()
	h.withdrawInvites(s)
	h.kick(e.Org, e.Queue)
}

// endCall ends c once. by is the session that hung up (nil when the call
// ended for another reason); it gets reason, the other side peer_left.
func (h *hub) endCall(c *call, by *session, reason string) {
	h.mu.Lock()
	if c.ended {
		h.mu.Unlock()
		return
	}
	c.ended = true
	delete(h.calls, c.customer)
	delete(h.calls, c.agent)
	agentState := h.agents[c.agent]
	_, agentConnected := h.sessions[c.agent.id]
	h.mu.Unlock()

	c.custPart.Close()
	c.agentPart.Close()
	c.room.Close()
	handled := time.Since(c.started)
	h.srv.metrics.callsActive.Dec()
	h.srv.metrics.callsEnded.WithLabelValues(reason).Inc()
	h.srv.metrics.handleSeconds.WithLabelValues(c.org, c.queue).Observe(handled.Seconds())
	h.srv.log.Info("call ended", "org", c.org, "queue", c.queue, "call", c.id, "reason", reason,
		"duration_s", int(time.Since(c.started).Seconds()))

	for _, s := range []*session{c.customer, c.agent} {
		r := reason
		if by != nil && s != by {
			r = protocol.ReasonPeerLeft
		}
		s.send(protocol.Message{Type: protocol.TypeEnded, Reason: r})
	}
	if reason != protocol.ReasonShutdown { // at shutdown, bye and 1001 follow
		c.customer.closeWith(websocket.StatusNormalClosure, "call ended")
	}

	ctx, cancel := h.storeCtx()
	defer cancel()
	if err := h.srv.store.Release(ctx, c.org, c.agent.id); err != nil {
		h.srv.log.Error("release agent failed", "err", err)
	}
	if err := h.srv.store.RecordHandled(ctx, c.org, c.queue, handled); err != nil {
		h.srv.log.Warn("record handle time failed", "err", err)
	}
	if !agentConnected || agentState == nil || reason == protocol.ReasonShutdown {
		return
	}
	state := protocol.AgentAway
	if agentState.wantAvailable {
		state = protocol.AgentAvailable
	}
	c.agent.send(protocol.Message{Type: protocol.TypeAgentState, State: state})
	if agentState.wantAvailable {
		h.place(c.org, c.queue)
	}
}

// disconnected cleans up after a joined session's connection ended.
func (h *hub) disconnected(s *session) {
	// Forget the session and read its call in one step; see startCall.
	h.mu.Lock()
	delete(h.sessions, s.id)
	c := h.calls[s]
	_, waiting := h.queued[s]
	_, isAgent := h.agents[s]
	delete(h.agents, s)
	h.mu.Unlock()

	if waiting {
		h.leaveQueue(s)
	}
	if isAgent {
		h.withdrawInvites(s)
		ctx, cancel := h.storeCtx()
		if err := h.srv.store.RemoveAgent(ctx, s.org.ID, s.id); err != nil {
			h.srv.log.Error("remove agent failed", "err", err)
		}
		cancel()
	}
	if c != nil {
		h.endCall(c, s, protocol.ReasonHangup)
	}
}

// endAll ends every call (server shutdown).
func (h *hub) endAll(reason string) {
	h.stopInvites()
	h.mu.Lock()
	calls := make(map[*call]struct{})
	for _, c := range h.calls {
		calls[c] = struct{}{}
	}
	h.mu.Unlock()
	for c := range calls {
		h.endCall(c, nil, reason)
	}
}
