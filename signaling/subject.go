package signaling

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/coder/websocket"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// One connection per subject. A token's subject (org + sub) holds one place
// at a time: one place in a queue for a customer, one agent in the pool for
// an agent. The store keeps which session a subject last joined on
// (HoldSubject, keyed by a hash of the subject, so it names nobody). A
// second join of the subject:
//
//   - takes over when the first connection is not in a call, as a page
//     reloaded expects: the first connection, on whichever node, is told
//     bye{reason:"replaced"} and closed; a customer's new connection gets
//     the old one's place (the same position when it joins the same
//     queue), an agent's starts away, as after any join;
//   - is refused with in_call when the first connection is in a call (or
//     being connected to one): that customer resumes its call with its
//     resume token, or hangs up first.
//
// A join that loses the subject to a later join before it was welcomed is
// told bye{reason:"replaced"} instead of welcome.

// errInCall refuses a join whose subject is in a call on another connection.
var errInCall = protocol.Errorf(protocol.CodeInCall, "this user is in a call on another connection: resume it there, or hang up first")

// subjectKey is the store's key for a token's subject in one role (a
// customer and an agent of the same sub are two people's tokens as far as
// places go). It is keyed with the organization's secret, which every node
// has: a subject id is often guessable (an e-mail address, a customer
// number), and a plain hash of it would name the user to anyone who can read
// the store.
func subjectKey(secret []byte, role, sub string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(role + "\x00" + sub))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// subjectOf is s's subject key, or "" when s has none (a resumed customer
// keeps only its session id, which still holds its subject).
func subjectOf(s *session) string {
	if s.claims == nil || s.claims.Subject == "" || s.org == nil {
		return ""
	}
	return subjectKey(s.org.APISecret, s.role, s.claims.Subject)
}

// takeOver makes joining session s its subject's connection. The
// connection it replaces, if any, is dropped (replacedHere on its node) and
// its place given up; for a customer that was waiting, its entry is
// returned, for s to take its place. errInCall when that connection is in
// a call. Customers call it with placeMu held.
func (h *hub) takeOver(s *session) (*queue.Entry, error) {
	org, key := s.org.ID, subjectOf(s)
	if key == "" {
		return nil, nil
	}
	ctx, cancel := h.storeCtx()
	defer cancel()
	// Each round reads the holder and takes the subject from it; another
	// join of the same subject in between makes the take fail, and the
	// next round sees that one.
	for range 5 {
		holder, err := h.store.subjects.SubjectHolder(ctx, org, key)
		if err != nil {
			return nil, storeError("look up the subject's connection", err)
		}
		if holder == s.id {
			return nil, nil
		}
		var prev *prevConn
		if holder != "" {
			if prev, err = h.findConn(ctx, s, holder); err != nil {
				return nil, err
			}
			if prev != nil && prev.busy {
				return nil, errInCall
			}
		}
		ok, err := h.store.subjects.HoldSubject(ctx, org, key, holder, s.id)
		if err != nil {
			return nil, storeError("hold the subject", err)
		}
		if !ok {
			continue
		}
		if prev == nil {
			return nil, nil // the connection it last joined on is gone
		}
		return h.dropPrev(ctx, s, key, holder, prev)
	}
	return nil, protocol.Errorf(protocol.CodeUnavailable, "this user is joining on several connections at once; retry")
}

// prevConn is where the connection a subject last joined on is.
type prevConn struct {
	node  string       // its node
	busy  bool         // in a call, or being connected to one
	entry *queue.Entry // a customer's place, when waiting
}

// findConn says where session id, of s's organization and role, is: nil
// when it is neither waiting, nor an agent in the pool, nor in a call.
func (h *hub) findConn(ctx context.Context, s *session, id string) (*prevConn, error) {
	h.mu.Lock()
	if old := h.sessions[id]; old != nil {
		// Here: what this node knows is the whole truth.
		busy := h.calls.count(old)+h.holds.count(old) > 0 || h.invites.customerInvited(old) || h.invites.agentInvites(old) > 0
		e, waiting := h.entries[old]
		h.mu.Unlock()
		p := &prevConn{node: h.self, busy: busy}
		if waiting {
			p.entry = &e
		}
		return p, nil
	}
	h.mu.Unlock()
	org := s.org.ID
	if s.role == protocol.RoleCustomer {
		// A record of a call that has ended is kept only to tell a resume
		// how it ended: that customer is in no call.
		if rec, ok, err := h.store.records.LookupCall(ctx, org, id); err != nil || (ok && rec.Ended == "") {
			return &prevConn{busy: true}, storeErrorOrNil("look up the subject's call", err)
		}
		for _, q := range s.org.Queues {
			e, ok, err := h.store.queues.Lookup(ctx, org, q.Name, id)
			if err != nil {
				return nil, storeError("look up the subject's place", err)
			}
			if ok {
				return &prevConn{node: e.Node, entry: &e}, nil
			}
		}
		return nil, nil
	}
	for _, q := range s.org.Queues {
		snap, err := h.store.stats.Snapshot(ctx, org, q.Name, time.Now())
		if err != nil {
			return nil, storeError("look up the subject's agent", err)
		}
		for _, a := range snap.Agents {
			if a.Session == id {
				// An agent whose node died is in no call any more, whatever
				// the store still counts until the room's node ends it: its
				// new connection takes over.
				return &prevConn{node: a.Node, busy: a.Active > 0 && h.nodeLive(ctx, a.Node)}, nil
			}
		}
	}
	return nil, nil
}

// nodeLive reports whether node is in the registry of live nodes (true
// when the registry cannot say).
func (h *hub) nodeLive(ctx context.Context, node string) bool {
	if !h.peers.clustered() || h.isSelf(node) {
		return true
	}
	live, err := h.peers.live(ctx)
	return err != nil || live[node]
}

// dropPrev gives up the place of the connection holder, which s has taken
// the subject key from, and has it closed on its node.
func (h *hub) dropPrev(ctx context.Context, s *session, key, holder string, prev *prevConn) (*queue.Entry, error) {
	org := s.org.ID
	switch {
	case prev.entry != nil:
		removed, err := h.store.queues.Remove(ctx, org, prev.entry.Queue, holder)
		if err == nil && !removed {
			// Taken off its queue since: it is being connected to an
			// agent. It keeps the subject.
			_, err = h.store.subjects.HoldSubject(ctx, org, key, s.id, holder)
			if err == nil {
				return nil, errInCall
			}
		}
		if err != nil {
			return nil, storeError("take over the subject's place", err)
		}
	case s.role == protocol.RoleAgent:
		if err := h.store.presence.RemoveAgent(ctx, org, holder); err != nil {
			return nil, storeError("take over the subject's agent", err)
		}
	}
	if h.isSelf(prev.node) {
		// Not under the placement lock a customer's join holds.
		h.srv.goTracked(func() { h.replacedHere(holder) })
	} else {
		h.relay(prev.node, relayMsg{Kind: relayReplaced, Session: holder})
	}
	h.srv.log.Info("a second join of the same user replaced the first connection", "org", org, "role", s.role)
	return prev.entry, nil
}

// stillHolder reports whether s is still its subject's connection once its
// place is in the store; if a later join took the subject meanwhile, s's
// place is given up and s is told bye{replaced} and closed instead of being
// welcomed.
func (h *hub) stillHolder(s *session) bool {
	key := subjectOf(s)
	if key == "" {
		return true
	}
	ctx, cancel := h.storeCtx()
	defer cancel()
	holder, err := h.store.subjects.SubjectHolder(ctx, s.org.ID, key)
	if err != nil || holder == "" || holder == s.id {
		return true // the store cannot say: the audits and the next join look again
	}
	if s.role == protocol.RoleAgent {
		err = h.store.presence.RemoveAgent(ctx, s.org.ID, s.id)
	} else {
		_, err = h.store.queues.Remove(ctx, s.org.ID, s.queue, s.id)
	}
	if err != nil {
		h.srv.log.Warn("giving up a replaced connection's place failed", "org", s.org.ID, "err", err)
	}
	h.forget(s)
	s.send(protocol.Message{Type: protocol.TypeBye, Reason: protocol.ReasonReplaced})
	s.closeWith(websocket.StatusNormalClosure, "replaced by a newer connection")
	return false
}

// replacedHere closes local session id, whose subject joined on another
// connection: it is told bye{replaced}, and its place is not kept for a
// resume (the new connection has it). A session in a call since stays.
func (h *hub) replacedHere(id string) {
	h.mu.Lock()
	s := h.sessions[id]
	if s != nil && h.calls.count(s)+h.holds.count(s) > 0 {
		h.mu.Unlock()
		return
	}
	if s != nil {
		delete(h.queued, s)
		delete(h.entries, s)
	}
	h.graces.take(id) // disconnected already, its place kept for a resume
	h.mu.Unlock()
	if s == nil {
		return
	}
	h.withdrawInvites(s)
	s.send(protocol.Message{Type: protocol.TypeBye, Reason: protocol.ReasonReplaced})
	s.closeWith(websocket.StatusNormalClosure, "replaced by a newer connection")
	h.kick(s.org.ID, s.queue)
}

// replacedSince reports whether local session s, of subject key, has been
// replaced by a later join of its subject (the store says another session
// holds it); the audit then drops s instead of putting its place back.
func (h *hub) replacedSince(s *session, key string) bool {
	if key == "" {
		return false
	}
	ctx, cancel := h.storeCtx()
	defer cancel()
	holder, err := h.store.subjects.SubjectHolder(ctx, s.org.ID, key)
	return err == nil && holder != "" && holder != s.id
}

// storeErrorOrNil is storeError, or nil for a nil err.
func storeErrorOrNil(op string, err error) error {
	if err == nil {
		return nil
	}
	return storeError(op, err)
}
