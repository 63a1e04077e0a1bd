package signaling

import (
	"errors"
	"time"

	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// Audits. The handshakes of setup.go keep each node's view consistent when
// messages arrive; these checks put it right when one was lost (a Redis
// outage drops relay messages and store writes alike), so that nothing
// stays stuck:
//
//   - Stubs: every reconcileInterval a node sends each room's node the ids
//     of the calls it holds sides of (relayAudit). The room's node answers
//     with those it does not host (relayUnknown), and their sides here are
//     told ended{failed}: an end that was lost is repaired.
//   - Agent slots: a connected agent with no call here whose store record
//     still counts a call, is missing, or is not available though the agent
//     asked to be, for longer than auditAfter, is written again.
//   - Waiting customers: a customer waiting here that its queue in the store
//     has not held for longer than it can legitimately be out of it (being
//     set up or offered to an agent) goes back at its place.
//   - Placement: a queue whose snapshot shows a connected waiting customer
//     and an agent with a free slot is placed again, at most every
//     replaceEvery, whatever event was missed.
//
// The checks of the store run on the hub's loop goroutine, on the snapshot
// the queue refresh has just read; auditState is that goroutine's own.

const (
	// stubAuditAge is how old a stub must be to be audited: younger ones
	// may be ahead of their room's node's own news.
	stubAuditAge = 5 * time.Second
	// auditAfter is how long a disagreement with the store must last
	// before it is put right: longer than any handshake in flight.
	auditAfter = 2 * startDeadline
	// replaceEvery bounds how often the audit itself runs placement.
	replaceEvery = 2 * time.Second
)

// auditState is what the store audit has seen; the hub's loop goroutine
// alone uses it.
type auditState struct {
	agentOff     map[string]time.Time // agent session -> since when its record disagrees
	custMissing  map[string]time.Time // customer session -> since when the store lacks it
	custDetached map[string]time.Time // customer session -> since when the store has it detached
	lastReplaced map[queueKey]time.Time
}

func newAuditState() *auditState {
	return &auditState{
		agentOff:     make(map[string]time.Time),
		custMissing:  make(map[string]time.Time),
		custDetached: make(map[string]time.Time),
		lastReplaced: make(map[queueKey]time.Time),
	}
}

// auditStubs sends each room's node the ids of the calls this node holds
// sides of; from the hub's loop.
func (h *hub) auditStubs(now time.Time) {
	byHost := make(map[string][]string)
	h.mu.Lock()
	for _, c := range h.calls.all() {
		if c.host != "" && now.Sub(c.started) >= stubAuditAge {
			byHost[c.host] = append(byHost[c.host], c.id)
		}
	}
	h.mu.Unlock()
	for host, ids := range byHost {
		h.relay(host, relayMsg{Kind: relayAudit, Calls: ids})
	}
}

// unknownCalls returns those of ids that node has no side of here.
func (h *hub) unknownCalls(node string, ids []string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var unknown []string
	for _, id := range ids {
		c := h.calls.hostedCall(id)
		if c == nil || c.ended || (c.cust.node != node && c.agent.node != node) {
			unknown = append(unknown, id)
		}
	}
	return unknown
}

// endUnknownStubs ends this node's sides of calls that their room's node,
// host, does not have: their end was lost.
func (h *hub) endUnknownStubs(host string, ids []string) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	type stale struct {
		s *session
		c *call
	}
	var found []stale
	h.mu.Lock()
	for s, c := range h.calls.all() {
		if c.host == host && want[c.id] {
			found = append(found, stale{s, c})
		}
	}
	for _, st := range found {
		h.removeCallLocked(st.s, st.c)
	}
	h.mu.Unlock()
	for _, st := range found {
		h.srv.metrics.repairs.WithLabelValues("stale_call").Inc()
		h.srv.log.Warn("a call's end was lost; ended here", "org", st.c.org, "call", st.c.id, "role", st.s.role)
		h.sideEnded(st.s, protocol.Message{Type: protocol.TypeEnded, Reason: protocol.ReasonFailed, Room: st.c.id}, st.c.org, st.c.queue)
	}
}

// auditQueue checks this node's agents and waiting customers of one queue
// against the snapshot the refresh just read, and runs placement if the
// snapshot shows a pair that may be waiting for it.
func (h *hub) auditQueue(org, q string, snap queue.Snapshot, now time.Time) {
	a := h.audit
	cfg, _ := h.queueConfig(org, q)

	inStore := make(map[string]queue.AgentState, len(snap.Agents))
	freeAgent := false
	for _, ag := range snap.Agents {
		inStore[ag.Session] = ag
		freeAgent = freeAgent || (ag.Available && ag.Active < ag.Capacity)
	}
	waiting := make(map[string]bool, len(snap.Waiting)) // session -> attached
	attached := false
	for _, e := range snap.Waiting {
		waiting[e.Session] = e.Detached.IsZero()
		attached = attached || e.Detached.IsZero()
	}

	type agentFix struct {
		s         *session
		available bool
	}
	var agentFixes []agentFix
	var lost, reattach []queue.Entry
	lostSubject := make(map[string]*session) // the sessions of lost
	seen := make(map[string]bool)
	h.mu.Lock()
	for s, st := range h.agents {
		if s.org.ID != org || s.queue != q {
			continue
		}
		seen[s.id] = true
		busy := h.calls.count(s) + h.holds.count(s) + h.invites.agentInvites(s)
		rec, ok := inStore[s.id]
		off := !ok || (busy == 0 && rec.Active > 0) || (st.wantAvailable && !rec.Available)
		if !off {
			delete(a.agentOff, s.id)
			continue
		}
		if lasted(a.agentOff, s.id, now, auditAfter) {
			agentFixes = append(agentFixes, agentFix{s, st.wantAvailable && busy == 0})
		}
	}
	// A customer may be out of the store while it is set up (held: not in
	// entries) or offered to an agent, on this node or another.
	missingFor := auditAfter + cfg.OfferTimeout
	for s, e := range h.entries {
		if e.Org != org || e.Queue != q || h.invites.customerInvited(s) {
			continue
		}
		seen[s.id] = true
		isAttached, inQueue := waiting[s.id]
		if inQueue {
			delete(a.custMissing, s.id)
			if isAttached {
				delete(a.custDetached, s.id)
				continue
			}
			// Connected here, detached in the store (its start was given up
			// by a room's node that could not reach this one).
			if lasted(a.custDetached, s.id, now, auditAfter) {
				reattach = append(reattach, e)
			}
			continue
		}
		if lasted(a.custMissing, s.id, now, missingFor) {
			lost = append(lost, e)
			lostSubject[e.Session] = s
		}
	}
	h.mu.Unlock()
	a.forgetUnseen(org, q, seen, h)

	for _, f := range agentFixes {
		h.settleAgent(f.s, f.available)
	}
	for _, e := range lost {
		if s := lostSubject[e.Session]; h.replacedSince(s, subjectOf(s)) {
			// Its subject joined on another connection, which has its
			// place, and the word to close this one was lost.
			h.replacedHere(e.Session)
			continue
		}
		ctx, cancel := h.storeCtx()
		err := h.store.queues.Requeue(ctx, e)
		cancel()
		switch {
		case err == nil:
			h.srv.metrics.repairs.WithLabelValues("customer_missing").Inc()
			h.srv.log.Warn("a waiting customer was missing from its queue; put back", "org", org, "queue", q)
		case !errors.Is(err, queue.ErrExists):
			h.srv.log.Warn("putting a missing customer back failed", "org", org, "queue", q, "err", err)
		}
	}
	for _, e := range reattach {
		ctx, cancel := h.storeCtx()
		ok, err := h.store.detachment.Attach(ctx, org, q, e.Session, h.self)
		cancel()
		if err == nil && ok {
			h.srv.metrics.repairs.WithLabelValues("customer_detached").Inc()
			h.srv.log.Warn("a connected customer was detached in its queue; attached again", "org", org, "queue", q)
		}
	}
	k := queueKey{org, q}
	if len(agentFixes) > 0 || len(lost) > 0 || len(reattach) > 0 || (attached && freeAgent && now.Sub(a.lastReplaced[k]) >= replaceEvery) {
		a.lastReplaced[k] = now
		h.srv.goTracked(func() { h.place(org, q) })
	}
}

// lasted notes that the disagreement about id is seen at now and reports
// whether it has lasted for d since first seen; then it is forgotten, to
// be put right.
func lasted(seen map[string]time.Time, id string, now time.Time, d time.Duration) bool {
	since, ok := seen[id]
	if !ok {
		seen[id] = now
		return false
	}
	if now.Sub(since) < d {
		return false
	}
	delete(seen, id)
	return true
}

// forgetUnseen drops what the audit remembers of sessions of queue org/q
// that are no longer agents or waiting customers here. Called with h.mu
// released, on the loop goroutine.
func (a *auditState) forgetUnseen(org, q string, seen map[string]bool, h *hub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range []map[string]time.Time{a.agentOff, a.custMissing, a.custDetached} {
		for id := range m {
			if s := h.sessions[id]; !seen[id] && (s == nil || (s.org.ID == org && s.queue == q)) {
				delete(m, id)
			}
		}
	}
}

// settleAgent writes a connected agent's record afresh: its slots in the
// store counted a call it does not have (a release lost with Redis), or
// the record was missing or not available as the agent asked.
func (h *hub) settleAgent(s *session, available bool) {
	ctx, cancel := h.storeCtx()
	defer cancel()
	err := h.store.presence.RemoveAgent(ctx, s.org.ID, s.id)
	if err == nil {
		err = h.store.presence.SetAgent(ctx, h.agentRecord(s), available)
	}
	if err != nil {
		h.srv.log.Warn("settling an agent's record failed", "org", s.org.ID, "err", err)
		return
	}
	h.mu.Lock()
	connected := h.sessions[s.id] == s
	h.mu.Unlock()
	if !connected {
		// It left while its record was written: forget it again.
		_ = h.store.presence.RemoveAgent(ctx, s.org.ID, s.id)
		return
	}
	h.srv.metrics.repairs.WithLabelValues("agent_slot").Inc()
	h.srv.log.Warn("an agent's record in the store disagreed with its calls; written again", "org", s.org.ID)
}
