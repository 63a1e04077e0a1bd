package signaling

import (
	"errors"
	"slices"
	"time"

	"github.com/coder/websocket"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// Placement: customers into their queue, and waiting customers to agents.
// placeMu serialises placement on this node, so that an assignment and the
// disappearance of either party never interleave here; across nodes the
// store's atomic operations do that. What an assignment becomes (an invite,
// a call here, a call set up across nodes) is for invite.go, calls.go and
// setup.go: nothing here talks to another node.
//
// Lock order: placeMu before hub.mu. placeMu is held while an assignment is
// handed on, which may send it to another node; hub.mu never is.

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
		Subject: s.claims.Subject, RecordConsent: s.claims.RecordConsent,
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
		err = h.store.queues.Requeue(ctx, entry)
	} else {
		pos, err = h.store.queues.Enqueue(ctx, entry, maxLen)
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
	if waiting, err := h.store.queues.Waiting(ctx, s.org.ID, s.queue); err == nil {
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
		a, ok, err := h.store.assigner.Assign(ctx, org, q, cfg.Policy)
		cancel()
		if err != nil {
			h.srv.log.Error("queue placement failed", "org", org, "queue", q, "err", err)
			break
		}
		if !ok {
			break
		}
		if cfg.OfferTimeout > 0 {
			h.offer(a, cfg.OfferTimeout)
			continue
		}
		if err := h.start(a, randomID(12)); err != nil && !errors.Is(err, errUndone) {
			h.srv.log.Error("could not start a call", "org", org, "queue", q, "err", err)
			break
		}
	}
}

// stopWaiting forgets that s waits here and returns its queue entry;
// false if it was not waiting.
func (h *hub) stopWaiting(s *session) (queue.Entry, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.entries[s]
	delete(h.queued, s)
	delete(h.entries, s)
	return e, ok
}

// leaveQueue removes a waiting customer (from the queue, or from an invite
// it was in) and updates the others.
func (h *hub) leaveQueue(s *session) {
	h.placeMu.Lock()
	e, ok := h.stopWaiting(s)
	if !ok {
		h.placeMu.Unlock()
		return
	}
	ctx, cancel := h.storeCtx()
	_, err := h.store.queues.Remove(ctx, e.Org, e.Queue, s.id)
	cancel()
	h.placeMu.Unlock()
	if err != nil {
		h.srv.log.Error("leave queue failed", "err", err)
	}
	h.srv.metrics.abandoned.WithLabelValues(e.Org, e.Queue).Inc()
	h.withdrawInvites(s)
	h.kick(e.Org, e.Queue)
}

// undoAssignment reverses an assignment that could not become a call: a
// customer still connected goes back to its place in the queue; the agent's
// capacity is released (or the agent forgotten if it left).
func (h *hub) undoAssignment(a queue.Assignment, custHere, agentHere bool) {
	ctx, cancel := h.storeCtx()
	defer cancel()
	if custHere {
		if err := h.store.queues.Requeue(ctx, a.Customer); err != nil {
			h.srv.log.Error("requeue failed", "org", a.Org, "queue", a.Queue, "err", err)
		}
	}
	var err error
	if agentHere {
		err = h.store.presence.Release(ctx, a.Org, a.Agent)
	} else {
		err = h.store.presence.RemoveAgent(ctx, a.Org, a.Agent)
	}
	if err != nil {
		h.srv.log.Error("release agent failed", "org", a.Org, "err", err)
	}
}
