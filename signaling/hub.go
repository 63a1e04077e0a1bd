package signaling

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// storeTimeout bounds each queue store operation.
const storeTimeout = 5 * time.Second

// The hub: this node's joined sessions and their calls, and the one place
// that knows what each session is doing here. Who owns what:
//
//   - hub.mu guards the hub's maps (sessions, agents, supervisors, queued,
//     entries, welcoming, monitoring), the call table (calltable.go) and the
//     fields of each call and side marked as guarded by it. Steps that must
//     see a session and its calls at once (a call recorded only while both
//     sides are still here; a session forgotten with its calls) take it
//     once. It is never held across a store operation, a message to another
//     node or a call into the SFU.
//   - placeMu serialises placement on this node (placement.go); it is taken
//     before hub.mu.
//   - The holds (holds.go), invites (invitetable.go), graces (graces.go),
//     ended calls (late.go) and dirty queues (queuestats.go) are tables with
//     a lock of their own, each a leaf: their methods call nothing outside
//     them, so they may be used with hub.mu held.
//   - peers (peers.go) reaches the other nodes; relayed.go is what their
//     messages mean here. A single node is the cluster of one (alone).
//   - absent and audit belong to the hub's loop goroutine (reconcile.go,
//     audit.go).

// hub tracks this node's joined sessions, runs queue placement and owns the
// calls.
type hub struct {
	srv   *Server
	store storeRoles // the queue store, by role

	peers peers  // the other nodes, if any (peers.go)
	self  string // this node's id ("" when alone)

	placeMu sync.Mutex

	mu          sync.Mutex
	sessions    map[string]*session // joined sessions by id
	agents      map[*session]*agentState
	supervisors map[*session]map[string]protocol.QueueStats // each supervisor's last summary per queue
	queued      map[*session]position                       // customers waiting, with what they were last told
	entries     map[*session]queue.Entry                    // each waiting customer's queue entry, to restore it
	calls       *callTable                                  // the calls of this node's sessions and those hosted here (calltable.go)
	monitoring  map[*session]*call                          // supervisors monitoring a call hosted here (monitor.go)
	welcoming   map[*session]*heldBack                      // customers joining, not yet welcomed, and what waits for their welcome

	// absent notes since when each node the reaper cares about has been
	// missing from the registry; only the hub's loop goroutine uses it,
	// as it does audit (audit.go).
	absent map[string]time.Time
	audit  *auditState

	holds   *holdTable   // sides held here for calls being set up (holds.go)
	invites *inviteTable // offered and accepted invites (invitetable.go)
	graces  *graceTable  // disconnected customers keeping their place (graces.go)

	ended endedCalls // the calls each session was in that ended (late.go)

	dirty *dirtyQueues // queues to refresh (queuestats.go)
}

// storeRoles is the queue store seen by role: each use in the hub names
// the role it needs, so what a part of the hub may touch in the store is
// plain at its call sites.
type storeRoles struct {
	queues     queue.Queues
	detachment queue.Detachment
	assigner   queue.Assigner
	presence   queue.Presence
	records    queue.CallRecords
	subjects   queue.Subjects
	marks      queue.Marks
	stats      queue.Stats
}

func rolesOf(s queue.Store) storeRoles {
	return storeRoles{queues: s, detachment: s, assigner: s, presence: s, records: s, subjects: s, marks: s, stats: s}
}

// position is what a waiting customer was last told: its place, the queue's
// length and the estimated wait in seconds (-1: unknown).
type position struct{ pos, length, wait int }

func newHub(s *Server, p peers) *hub {
	s.metrics.preset(s.verifier.Dir.Orgs()) // the hub is built once, with the server
	return &hub{
		srv:         s,
		store:       rolesOf(s.store),
		peers:       p,
		self:        p.self(),
		monitoring:  make(map[*session]*call),
		sessions:    make(map[string]*session),
		agents:      make(map[*session]*agentState),
		supervisors: make(map[*session]map[string]protocol.QueueStats),
		queued:      make(map[*session]position),
		entries:     make(map[*session]queue.Entry),
		calls:       newCallTable(),
		invites:     newInviteTable(),
		graces:      newGraceTable(),
		holds:       newHoldTable(),
		welcoming:   make(map[*session]*heldBack),
		dirty:       newDirtyQueues(),
		absent:      make(map[string]time.Time),
		audit:       newAuditState(),
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
		err := h.store.presence.SetAgent(ctx, h.agentRecord(s), false)
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

// storeError is what a client is told when the queue store failed in op:
// unavailable (retry) when the store cannot be reached, else the error
// itself (an internal error to the client).
func storeError(op string, err error) error {
	if errors.Is(err, queue.ErrUnavailable) {
		return protocol.Errorf(protocol.CodeUnavailable, "the queue is unavailable right now; retry in a few seconds")
	}
	return fmt.Errorf("%s: %w", op, err)
}
