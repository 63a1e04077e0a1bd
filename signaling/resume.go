package signaling

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// Resume. Every waiting customer gets a resume token in its welcome:
// "<org>.<session>.<secret>". The queue entry keeps a hash of the secret. A
// customer whose connection drops (or whose node dies) keeps its place,
// detached (not assigned), for the resume grace; sending resume with the
// token as the first message on a new connection, to any node, attaches it
// there with the same session and place. A customer that does not come back
// in time is removed and counted as abandoned: by the node it was on (a
// timer), or, if that node died, by any node's reaper (reap).

// DefaultResumeGrace is how long a disconnected customer keeps its place.
const DefaultResumeGrace = time.Minute

// newResume returns a resume token for a session and the hash to keep.
func newResume(org, session string) (token, key string) {
	secret := randomID(24)
	return org + "." + session + "." + secret, hashSecret(secret)
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// parseResume splits a resume token. Org ids and session ids never contain
// a dot.
func parseResume(tok string) (org, session, secret string, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || len(parts[2]) < 16 {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

var errBadResume = protocol.Errorf(protocol.CodeBadResume, "this resume token is not valid here: the place was given up, its grace ran out or the customer was assigned; join again")

// detach keeps a disconnected customer's place for the grace.
func (h *hub) detach(s *session) {
	e, ok := h.stopWaiting(s)
	if !ok {
		return
	}
	h.withdrawInvites(s)
	now := time.Now()
	ctx, cancel := h.storeCtx()
	detached, err := h.store.detachment.Detach(ctx, e.Org, e.Queue, s.id, now)
	if err == nil && !detached && h.replacedSince(s, subjectOf(s)) {
		cancel()
		return // its subject joined on another connection, which took its place (subject.go)
	}
	if err == nil && !detached {
		// It was out of the queue, offered to an agent: put it back.
		if err = h.store.queues.Requeue(ctx, e); err == nil {
			_, err = h.store.detachment.Detach(ctx, e.Org, e.Queue, s.id, now)
		}
	}
	cancel()
	if err != nil {
		h.srv.log.Warn("keeping a disconnected customer's place failed", "org", e.Org, "queue", e.Queue, "err", err)
	}
	if !h.srv.Ready() {
		return // shutting down: the place stays for another node to keep or reap
	}
	h.graces.start(s.id, e, h.srv.resumeGrace, func(g *grace) {
		h.srv.goTracked(func() { h.graceOver(s.id, g) })
	})
	h.kick(e.Org, e.Queue)
}

// graceOver removes a customer that did not resume in time.
func (h *hub) graceOver(id string, g *grace) {
	if h.graces.takeIf(id, g) {
		h.removeDetached(g.entry.Org, g.entry.Queue, id)
	}
}

func (h *hub) removeDetached(org, q, id string) {
	ctx, cancel := h.storeCtx()
	removed, err := h.store.detachment.RemoveDetached(ctx, org, q, id)
	cancel()
	if err != nil {
		h.srv.log.Warn("removing a customer whose grace ran out failed", "org", org, "queue", q, "err", err)
		return
	}
	if removed {
		h.srv.metrics.abandoned.WithLabelValues(org, q).Inc()
		// Customers behind it may be assignable now.
		h.srv.goTracked(func() { h.place(org, q) })
	}
}

// resume handles a resume message: the session becomes the customer the
// token names, at its place.
func (s *session) resume(m protocol.Message) {
	fail := func(err error) {
		s.srv.metrics.authFailures.WithLabelValues(string(protocol.AsError(err).Code)).Inc()
		s.fail(err, m.ID)
	}
	orgID, id, secret, ok := parseResume(m.Token)
	org, known := s.srv.verifier.Dir.Org(orgID)
	if !ok || !known {
		fail(errBadResume)
		return
	}
	if !org.AllowsOrigin(s.origin) {
		fail(protocol.Errorf(protocol.CodeForbiddenOrigin, "this page's origin is not allowed for organization %q", org.ID))
		return
	}
	h := s.srv.hub
	e, found, rec, ok, err := h.findResumed(s.ctx, org, id)
	if err != nil {
		s.failStore(storeError("look up resumed customer", err), m.ID)
		return
	}
	if !found {
		if !ok || subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(rec.ResumeKey)) != 1 {
			fail(errBadResume)
			return
		}
		s.joinTimer.Stop()
		s.id = id
		s.joined, s.role, s.org, s.queue = true, protocol.RoleCustomer, org, ""
		s.claims = &auth.Claims{Role: protocol.RoleCustomer}
		s.log = s.log.With("org", org.ID, "role", protocol.RoleCustomer)
		h.resumeCall(s, rec, m.Token)
		return
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(e.ResumeKey)) != 1 {
		fail(errBadResume)
		return
	}
	s.joinTimer.Stop()
	s.id = id
	s.joined, s.role, s.org, s.queue = true, protocol.RoleCustomer, org, e.Queue
	s.claims = &auth.Claims{Role: protocol.RoleCustomer, Name: e.Name, Queue: e.Queue, Attrs: e.Attrs}
	s.log = s.log.With("org", org.ID, "role", protocol.RoleCustomer)
	if err := h.resumed(s, e, m.Token); err != nil {
		s.failStore(err, m.ID)
	}
}

// resumeWait bounds how long a resume looks for a customer that is
// neither waiting nor in a call: one taken off its queue for a call being
// set up is, within startDeadline, either in the call or back at its place.
const resumeWait = startDeadline + time.Second

// findResumed looks customer id of org up: waiting in one of its queues
// (found, with its entry), or in a call (ok, with its record). Neither,
// it looks again until resumeWait has passed.
func (h *hub) findResumed(ctx context.Context, org *auth.Org, id string) (e queue.Entry, found bool, rec queue.CallRecord, ok bool, err error) {
	deadline := time.Now().Add(resumeWait)
	for {
		for _, q := range org.Queues {
			sctx, cancel := h.storeCtx()
			e, found, err = h.store.queues.Lookup(sctx, org.ID, q.Name, id)
			cancel()
			if err != nil || found {
				return e, found, rec, false, err
			}
		}
		sctx, cancel := h.storeCtx()
		rec, ok, err = h.store.records.LookupCall(sctx, org.ID, id)
		cancel()
		if err != nil || ok || time.Now().After(deadline) {
			return e, false, rec, ok, err
		}
		select {
		case <-ctx.Done():
			return e, false, rec, false, nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// failStore refuses a resume the store could not serve: unavailable closes
// with 1013 (try again later), as for join.
func (s *session) failStore(err error, ref string) {
	s.sendError(err, ref)
	code := websocket.StatusPolicyViolation
	if protocol.AsError(err).Code == protocol.CodeUnavailable {
		code = websocket.StatusTryAgainLater
	}
	s.closeWith(code, string(protocol.AsError(err).Code))
}

// resumed attaches a customer that resumed on session s.
func (h *hub) resumed(s *session, e queue.Entry, token string) error {
	h.placeMu.Lock()
	h.mu.Lock()
	old := h.sessions[s.id]
	if old != nil {
		delete(h.queued, old)
		delete(h.entries, old)
	}
	h.graces.take(s.id)
	h.mu.Unlock()
	if old != nil {
		old.send(protocol.Message{Type: protocol.TypeBye, Reason: protocol.ReasonResumed})
		old.closeWith(websocket.StatusNormalClosure, "resumed on another connection")
	}

	// Known here as waiting before the store has it attached here, so
	// that an assignment by another node, however soon, finds it (what it
	// is told waits for its welcome).
	prev := e.Node
	e.Node, e.Detached = h.self, time.Time{}
	h.mu.Lock()
	h.sessions[s.id] = s
	h.entries[s] = e
	h.queued[s] = position{}
	h.welcoming[s] = &heldBack{}
	h.mu.Unlock()
	ctx, cancel := h.storeCtx()
	attached, err := h.store.detachment.Attach(ctx, e.Org, e.Queue, s.id, h.self)
	var waiting []string
	if err == nil && attached {
		waiting, err = h.store.queues.Waiting(ctx, e.Org, e.Queue)
	}
	cancel()
	if err != nil || !attached {
		h.mu.Lock()
		if h.sessions[s.id] == s {
			delete(h.sessions, s.id)
		}
		delete(h.entries, s)
		delete(h.queued, s)
		delete(h.welcoming, s)
		h.mu.Unlock()
		h.placeMu.Unlock()
		if err != nil {
			return storeError("resume", err)
		}
		return errBadResume
	}
	if !h.isSelf(prev) {
		h.srv.goTracked(func() { h.relay(prev, relayMsg{Kind: relayMoved, Session: s.id}) })
	}
	pos := position{pos: max(slices.Index(waiting, s.id)+1, 1), length: max(len(waiting), 1), wait: -1}
	h.placeMu.Unlock()
	h.welcomed(s, h.welcome(s, token), pos)
	h.srv.log.Info("customer resumed", "org", e.Org, "queue", e.Queue)
	h.place(e.Org, e.Queue)
	return nil
}

// movedAway forgets a customer that resumed on another node: its old
// connection here, if still open, is closed.
func (h *hub) movedAway(id string) {
	h.mu.Lock()
	s := h.sessions[id]
	if s != nil && s.role == protocol.RoleCustomer {
		delete(h.sessions, id)
		delete(h.queued, s)
		delete(h.entries, s)
	}
	if s != nil && s.role == protocol.RoleCustomer {
		h.calls.forget(s) // stubs: the room's node already knows
	}
	h.graces.take(id)
	h.mu.Unlock()
	if s != nil && s.role == protocol.RoleCustomer {
		s.send(protocol.Message{Type: protocol.TypeBye, Reason: protocol.ReasonResumed})
		s.closeWith(websocket.StatusNormalClosure, "resumed on another node")
	}
}

// detachSide keeps a hosted call whose customer's connection ended, for the
// grace; if it does not resume in time the call ends. An agent's side is
// not kept: its call ends. still, when not nil, says whether the side is
// still held by the connection that ended (called with h.mu held): a
// resume may have moved it meanwhile, and then nothing is detached.
func (h *hub) detachSide(c *call, role string, still func(*side) bool) {
	if role != protocol.RoleCustomer {
		h.endCall(c, role, protocol.ReasonHangup)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	sd := c.side(role)
	if c.ended || (still != nil && !still(sd)) {
		return
	}
	if sd.s != nil {
		h.removeCallLocked(sd.s, c)
	}
	sd.s, sd.node = nil, ""
	if sd.grace == nil {
		sd.grace = time.AfterFunc(h.srv.resumeGrace, func() {
			h.srv.goTracked(func() { h.endCall(c, role, protocol.ReasonHangup) })
		})
	}
}

// resumeCall rebinds a customer that resumed on session s into its call.
func (h *hub) resumeCall(s *session, rec queue.CallRecord, token string) {
	h.mu.Lock()
	old := h.sessions[s.id]
	if old != nil {
		h.calls.forget(old)
	}
	h.sessions[s.id] = s
	h.mu.Unlock()
	if old != nil {
		old.send(protocol.Message{Type: protocol.TypeBye, Reason: protocol.ReasonResumed})
		old.closeWith(websocket.StatusNormalClosure, "resumed on another connection")
	}
	s.send(h.welcome(s, token))
	if rec.Ended != "" {
		h.endedAway(s, rec) // the call ended while it was away (callrecord.go)
		return
	}
	h.srv.log.Info("customer resumed into a call", "org", s.org.ID)
	if h.isSelf(rec.Host) {
		h.rebind(rec.Call, h.self, s.id)
		return
	}
	if !h.relay(rec.Host, relayMsg{Kind: relayRebind, Call: rec.Call, Session: s.id}) {
		h.resumeFailed(s.id, rec.Call)
	}
}

// resumeFailed tells a resumed customer its call is gone.
func (h *hub) resumeFailed(id, call string) {
	h.mu.Lock()
	s := h.sessions[id]
	h.mu.Unlock()
	if s == nil || s.role != protocol.RoleCustomer {
		return
	}
	s.send(protocol.Message{Type: protocol.TypeEnded, Reason: protocol.ReasonFailed, Room: call})
	s.closeWith(websocket.StatusNormalClosure, "call ended")
}

// rebind moves the customer side of hosted call id to session on node:
// its old connection, if still open, is closed; it gets a new participant
// (the client sets up its media again) and assigned again.
func (h *hub) rebind(id, node, session string) {
	gone := func() {
		if h.isSelf(node) {
			h.resumeFailed(session, id)
			return
		}
		h.relay(node, relayMsg{Kind: relayGone, Call: id, Side: protocol.RoleCustomer, Session: session})
	}
	c := h.hostedCall(id)
	if c == nil {
		gone()
		return
	}
	// A customer resuming twice in quick succession rebinds twice: one
	// after the other, each connection once, the last one winning.
	c.rebinding.Lock()
	defer c.rebinding.Unlock()
	h.mu.Lock()
	if c.ended {
		h.mu.Unlock()
		gone()
		return
	}
	sd := &c.cust
	if h.isSelf(node) && sd.s != nil && sd.s == h.sessions[session] && sd.part != nil {
		// An earlier rebind has bound this very connection already.
		h.mu.Unlock()
		return
	}
	if sd.grace != nil {
		sd.grace.Stop()
		sd.grace = nil
	}
	oldS, oldNode := sd.s, sd.node
	if oldS != nil {
		h.removeCallLocked(oldS, c)
	}
	sd.s, sd.node, sd.id = nil, h.nodeOf(node), session
	// Resumed through another node, or through a new connection here: the
	// old one, if still open here, goes.
	replaced := oldS != nil && (!h.isSelf(node) || h.sessions[session] != oldS)
	prev := sd.part
	sd.part = nil
	h.mu.Unlock()
	if replaced {
		// Its old connection here is still open: the customer is elsewhere now.
		oldS.send(protocol.Message{Type: protocol.TypeBye, Reason: protocol.ReasonResumed})
		oldS.closeWith(websocket.StatusNormalClosure, "resumed on another connection")
	}
	if oldNode != "" && oldNode != h.nodeOf(node) {
		h.relay(oldNode, relayMsg{Kind: relayMoved, Session: session})
	}
	// The old participant goes first, so that nothing it still says reaches
	// the new connection. Then the customer gets assigned (its client sets
	// up new connections), and only then the new participant, whose offers
	// for the agent's tracks follow.
	if prev != nil {
		prev.Close()
	}
	h.bind(c, sd)
	part, err := h.joinRoom(c, protocol.RoleCustomer)
	if err != nil {
		h.srv.log.Error("rejoining a resumed customer failed", "org", c.org, "err", err)
		h.endCall(c, "", protocol.ReasonFailed)
		return
	}
	h.mu.Lock()
	sd.part = part
	h.mu.Unlock()
}

// welcome is the welcome message for session s with resume token token.
func (h *hub) welcome(s *session, token string) protocol.Message {
	return protocol.Message{
		Type: protocol.TypeWelcome, Session: s.id, Role: s.role, Org: s.org.ID, Queue: s.queue, Resume: token,
		Limits: &protocol.Limits{
			MaxMessageBytes: h.srv.limits.MaxMessageBytes,
			MessagesPerSec:  h.srv.limits.MessagesPerSec,
			Burst:           h.srv.limits.Burst,
		},
	}
}

// bind tells the resumed customer side of a live call hosted here that it
// is assigned again.
func (h *hub) bind(c *call, sd *side) {
	msg := h.assignedMessage(c, sd)
	_, node, id := h.whereIs(sd)
	if node == "" {
		s := h.bindHere(c, c, sd.role, id, msg)
		h.sideBound(c, sd.role, s != nil)
		return
	}
	if !h.relay(node, relayMsg{Kind: relayBind, Call: c.id, Org: c.org, Queue: c.queue, Side: sd.role, Session: id, Msg: &msg}) {
		h.sideBound(c, sd.role, false)
	}
}

// bindHere binds local customer id, resuming into call c, to c or to a
// stub of it when c is hosted elsewhere, and tells it msg (assigned). The
// target's side is set in the step that makes the call the session's, so
// that the session's end, however soon, finds it there. It returns the
// session, or nil if it is gone.
func (h *hub) bindHere(c, target *call, role, id string, msg protocol.Message) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[id]
	if s == nil || s.role != role || s.org.ID != c.org || h.atCapacityLocked(s) {
		return nil
	}
	delete(h.queued, s)
	delete(h.entries, s)
	h.calls.add(s, target)
	sd := target.side(role)
	sd.role, sd.id, sd.s = role, s.id, s
	s.send(msg)
	return s
}

// sideBound follows a resumed customer's rebind: one that is gone again
// is detached, and the grace goes on.
func (h *hub) sideBound(c *call, role string, ok bool) {
	h.mu.Lock()
	ended := c.ended
	h.mu.Unlock()
	if !ended && !ok {
		h.detachSide(c, role, nil)
	}
	if ok {
		h.tellRecording(c, c.side(role))
	}
}
