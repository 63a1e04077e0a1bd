package signaling

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// storeTimeout bounds each queue store operation.
const storeTimeout = 5 * time.Second

// hub tracks this node's joined sessions, runs queue placement and owns the
// calls. Placement is serialised by placeMu so that, on one node, an
// assignment and the disappearance of either party never interleave.
type hub struct {
	srv *Server

	cluster Cluster // nil: this node is alone
	self    string  // this node's id ("" when alone)

	placeMu sync.Mutex

	mu          sync.Mutex
	sessions    map[string]*session // joined sessions by id
	agents      map[*session]*agentState
	supervisors map[*session]map[string]protocol.QueueStats // each supervisor's last summary per queue
	queued      map[*session]position                       // customers waiting, with what they were last told
	entries     map[*session]queue.Entry                    // each waiting customer's queue entry, to restore it
	calls       map[*session]map[string]*call               // each local session's calls by id (or stubs of calls hosted elsewhere)
	hosted      map[string]*call                            // calls whose room is on this node, by id
	invites     map[string]*invite                          // open invites by id (invite.go)
	graces      map[string]*grace                           // disconnected customers keeping their place, by session (resume.go)
	monitoring  map[*session]*call                          // supervisors monitoring a call hosted here (monitor.go)
	holds       map[holdKey]*hold                           // sides of calls being set up, held here (setup.go)
	settled     map[holdKey]time.Time                       // holds committed, aborted or expired, and when (setup.go)
	welcoming   map[*session]*heldBack                      // customers joining, not yet welcomed, and what waits for their welcome
	accepted    map[string]acceptedInvite                   // invites accepted whose calls are being set up, by call id (invite.go)

	// absent notes since when each node the reaper cares about has been
	// missing from the registry; only the hub's loop goroutine uses it,
	// as it does audit (audit.go).
	absent map[string]time.Time
	audit  *auditState

	ended endedCalls // the calls each session was in that ended (late.go)

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

func newHub(s *Server) *hub {
	s.metrics.preset(s.verifier.Dir.Orgs()) // the hub is built once, with the server
	return &hub{
		srv:         s,
		monitoring:  make(map[*session]*call),
		sessions:    make(map[string]*session),
		agents:      make(map[*session]*agentState),
		supervisors: make(map[*session]map[string]protocol.QueueStats),
		queued:      make(map[*session]position),
		entries:     make(map[*session]queue.Entry),
		calls:       make(map[*session]map[string]*call),
		hosted:      make(map[string]*call),
		invites:     make(map[string]*invite),
		graces:      make(map[string]*grace),
		holds:       make(map[holdKey]*hold),
		settled:     make(map[holdKey]time.Time),
		welcoming:   make(map[*session]*heldBack),
		accepted:    make(map[string]acceptedInvite),
		dirty:       make(map[queueKey]bool),
		absent:      make(map[string]time.Time),
		audit:       newAuditState(),
		kicked:      make(chan struct{}, 1),
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

	if s.role == protocol.RoleSupervisor {
		h.mu.Lock()
		h.supervisors[s] = make(map[string]protocol.QueueStats)
		h.mu.Unlock()
		s.send(welcome)
		for _, q := range s.org.Queues {
			h.kick(s.org.ID, q.Name)
		}
		return nil
	}
	if s.role == protocol.RoleAgent {
		if _, err := h.takeOver(s); err != nil {
			h.forget(s)
			return err
		}
		// Logged in and away: counted in the queue's statistics.
		ctx, cancel := h.storeCtx()
		err := h.srv.store.SetAgent(ctx, h.agentRecord(s), false)
		cancel()
		if err != nil {
			h.forget(s)
			return storeError("set agent presence", err)
		}
		if !h.stillHolder(s) {
			return nil
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
// queued. placeMu is held throughout so no placement on this node can
// assign the customer before it has been welcomed. The customer is known
// here as waiting before the store has it, so that another node's
// assignment, however soon, finds it; whatever that assignment tells it
// waits for its welcome (heldBack).
func (h *hub) enqueue(s *session, maxLen int, welcome protocol.Message) error {
	h.placeMu.Lock()
	defer h.placeMu.Unlock()
	ctx, cancel := h.storeCtx()
	defer cancel()
	cfg, _ := s.org.Queue(s.queue)
	token, key := newResume(s.org.ID, s.id)
	welcome.Resume = token
	entry := queue.Entry{
		Org: s.org.ID, Queue: s.queue, Session: s.id, Attrs: s.claims.Attrs, Since: time.Now(),
		Priority: cfg.Policy.Priority(s.claims.Attrs), Node: h.self, Name: s.claims.Name, ResumeKey: key,
	}
	prev, err := h.takeOver(s)
	if err != nil {
		return err
	}
	inherit := prev != nil && prev.Queue == s.queue
	if inherit {
		entry.Since = prev.Since // its place
	}
	h.mu.Lock()
	h.entries[s] = entry
	h.queued[s] = position{}
	h.welcoming[s] = &heldBack{}
	h.mu.Unlock()
	var pos int
	if inherit {
		// The place it takes over was just given up: no length to check.
		err = h.srv.store.Requeue(ctx, entry)
	} else {
		pos, err = h.srv.store.Enqueue(ctx, entry, maxLen)
	}
	switch { // on an error, joined forgets what was recorded here
	case errors.Is(err, queue.ErrFull):
		return protocol.Errorf(protocol.CodeQueueFull, "queue %q is full; try again later", s.queue)
	case err != nil:
		return storeError("enqueue", err)
	}
	if !h.stillHolder(s) {
		return nil
	}
	length := pos
	if waiting, err := h.srv.store.Waiting(ctx, s.org.ID, s.queue); err == nil {
		if inherit {
			pos = max(slices.Index(waiting, s.id)+1, 1)
		}
		length = max(len(waiting), pos)
	}
	h.welcomed(s, welcome, position{pos: pos, length: length, wait: -1})
	h.kick(s.org.ID, s.queue) // the estimate follows
	return nil
}

// heldBack is what a joining customer is to be told once welcomed: an
// assignment (and its end) that came before its welcome went out.
type heldBack struct {
	msgs  []protocol.Message
	close bool // its call has ended too: close the connection after
}

// welcomed sends a joining customer its welcome, its first position if it
// is still waiting, and what was held back for it, in that order.
func (h *hub) welcomed(s *session, welcome protocol.Message, first position) {
	h.mu.Lock()
	hb := h.welcoming[s]
	delete(h.welcoming, s)
	s.send(welcome)
	if _, waiting := h.queued[s]; waiting {
		h.queued[s] = first
		s.send(queuedMessage(s.queue, first))
	}
	if hb != nil {
		for _, m := range hb.msgs {
			s.send(m)
		}
	}
	h.mu.Unlock()
	if hb != nil && hb.close {
		s.closeWith(websocket.StatusNormalClosure, "call ended")
	}
}

// tellLocked sends m to s, or keeps it for s's welcome if that has not
// gone out yet. h.mu is held.
func (h *hub) tellLocked(s *session, m protocol.Message) {
	if hb := h.welcoming[s]; hb != nil {
		hb.msgs = append(hb.msgs, m)
		return
	}
	s.send(m)
}

func (h *hub) forget(s *session) {
	h.mu.Lock()
	delete(h.supervisors, s)
	delete(h.sessions, s.id)
	delete(h.agents, s)
	delete(h.queued, s)
	delete(h.entries, s)
	delete(h.welcoming, s)
	h.mu.Unlock()
	h.ended.forget(s)
}

// setAvailable records an agent's wish to take customers or not.
func (h *hub) setAvailable(s *session, available bool) error {
	h.mu.Lock()
	st := h.agents[s]
	st.wantAvailable = available
	busy := h.atCapacityLocked(s)
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

// agentRecord is an agent's presence for the store. Its skills and capacity
// come from its token.
func (h *hub) agentRecord(s *session) queue.Agent {
	return queue.Agent{Org: s.org.ID, Session: s.id, Queues: []string{s.queue}, Capacity: capacity(s), Skills: s.claims.Skills,
		Node: h.self, Name: s.claims.Name}
}

// capacity is how many calls a session may hold at once.
func capacity(s *session) int { return max(s.claims.Capacity, 1) }

// addCallLocked records that local session s is in call c.
func (h *hub) addCallLocked(s *session, c *call) {
	m := h.calls[s]
	if m == nil {
		m = make(map[string]*call, 1)
		h.calls[s] = m
	}
	m[c.id] = c
}

// removeCallLocked forgets that s is in c; true if it was.
func (h *hub) removeCallLocked(s *session, c *call) bool {
	m := h.calls[s]
	if c == nil || m[c.id] != c {
		return false
	}
	delete(m, c.id)
	if len(m) == 0 {
		delete(h.calls, s)
	}
	h.ended.note(s, c.id)
	return true
}

// atCapacityLocked reports whether s holds as many calls as it may,
// counting those being set up. h.mu is held.
func (h *hub) atCapacityLocked(s *session) bool {
	return len(h.calls[s])+h.heldLocked(s) >= capacity(s)
}

// callOf returns s's call named room, or its only call when room is "".
func (h *hub) callOf(s *session, room string) (*call, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	calls := h.calls[s]
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
			if h.isSelf(a.AgentNode) {
				h.invite(a, cfg.OfferTimeout)
			} else if !h.relay(a.AgentNode, relayMsg{Kind: relayInvite, A: &a, Timeout: cfg.OfferTimeout}) {
				h.undoAssignment(a, true, true) // its node's own reaper or disconnect forgets the agent
			}
			continue
		}
		if err := h.start(a, randomID(12)); err != nil && !errors.Is(err, errUndone) {
			h.srv.log.Error("could not start a call", "org", org, "queue", q, "err", err)
			break
		}
	}
}
