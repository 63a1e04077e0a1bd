package signaling

import (
	"time"

	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// The reaper: what a dead node leaves behind. Every node reaps, from the
// hub's loop goroutine, which alone uses hub.absent; the store's atomic
// operations make it safe for several nodes to reap the same node. Only a
// node with peers reaps (alone has nobody to outlive).

// deadAfter is how long a node must be missing from the registry before
// the reaper takes it for dead (more than the registry's TTL).
const deadAfter = 15 * time.Second

// endOrphanedStubs ends this node's side of calls whose room's node is
// dead: the customer is told the call failed and its connection closes; an
// agent's slot is released (the room's node cannot) and it goes back to the
// state it asked for. Called with dead from reap.
func (h *hub) endOrphanedStubs(dead func(string) bool) {
	type orphan struct {
		s *session
		c *call
	}
	var orphans []orphan
	h.mu.Lock()
	for s, c := range h.calls.all() {
		if c.host != "" && dead(c.host) {
			orphans = append(orphans, orphan{s, c})
		}
	}
	for _, o := range orphans {
		h.removeCallLocked(o.s, o.c)
	}
	h.mu.Unlock()
	for _, o := range orphans {
		if o.s.role == protocol.RoleAgent {
			ctx, cancel := h.storeCtx()
			if err := h.store.presence.Release(ctx, o.c.org, o.s.id); err != nil {
				h.srv.log.Warn("release agent failed", "err", err)
			}
			cancel()
		}
		h.srv.log.Warn("the node hosting a call is gone; call ended", "org", o.c.org, "call", o.c.id)
		h.sideEnded(o.s, protocol.Message{Type: protocol.TypeEnded, Reason: protocol.ReasonFailed, Room: o.c.id}, o.c.org, o.c.queue)
	}
}

// reap looks after what dead nodes left in the store: their waiting
// customers are detached (to resume elsewhere within the grace), detached
// customers whose grace ran out are removed, and their agents are
// forgotten. Every node reaps; the store's atomic operations make that safe.
func (h *hub) reap() {
	if !h.peers.clustered() {
		return
	}
	ctx, cancel := h.storeCtx()
	live, err := h.peers.live(ctx)
	cancel()
	if err != nil {
		return
	}
	live[h.self] = true
	now := time.Now()
	// A node is dead once it has been missing from the registry for
	// deadAfter: right after Redis restarts every node is missing until its
	// next heartbeat, and must not be taken for dead.
	dead := func(node string) bool {
		if node == "" || live[node] {
			return false
		}
		since, ok := h.absent[node]
		if !ok {
			h.absent[node] = now
			return false
		}
		return now.Sub(since) >= deadAfter
	}
	for node := range h.absent {
		if live[node] {
			delete(h.absent, node)
		}
	}
	h.endOrphanedStubs(dead)
	// Calls hosted here whose side's node died: a customer may resume
	// within the grace; an agent's call ends.
	h.mu.Lock()
	var orphaned []struct {
		c    *call
		role string
	}
	for c := range h.calls.allHosted() {
		for _, sd := range []*side{&c.cust, &c.agent} {
			if c.live && dead(sd.node) {
				orphaned = append(orphaned, struct {
					c    *call
					role string
				}{c, sd.role})
			}
		}
	}
	h.mu.Unlock()
	for _, o := range orphaned {
		h.detachSide(o.c, o.role, nil)
	}
	for _, org := range h.srv.verifier.Dir.Orgs() {
		for _, q := range org.Queues {
			ctx, cancel := h.storeCtx()
			snap, err := h.store.stats.Snapshot(ctx, org.ID, q.Name, now)
			cancel()
			if err != nil {
				return
			}
			for _, e := range snap.Waiting {
				switch {
				case e.Detached.IsZero() && dead(e.Node):
					ctx, cancel := h.storeCtx()
					_, _ = h.store.detachment.Detach(ctx, org.ID, q.Name, e.Session, now)
					cancel()
				case !e.Detached.IsZero() && now.Sub(e.Detached) > h.srv.resumeGrace:
					h.removeDetached(org.ID, q.Name, e.Session)
				}
			}
			for _, a := range snap.Agents {
				if dead(a.Node) {
					ctx, cancel := h.storeCtx()
					_ = h.store.presence.RemoveAgent(ctx, org.ID, a.Session)
					cancel()
				}
			}
		}
	}
}
