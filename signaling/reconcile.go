package signaling

import (
	"errors"
	"slices"
	"time"

	"github.com/helpcaster/helpcaster/signaling/queue"
)

// Reconciling with the queue store. A store that lost its data (a Redis
// restarted without persistence, or failed over to a replica that had not
// caught up) would leave this node's waiting customers connected but in no
// queue, and its available agents unknown: nobody would be served. Every
// reconcileInterval the hub checks that each customer waiting here is in
// its queue; any that is missing goes back in (in the order they joined,
// keeping when they joined), and the node's agents announce their presence
// again. Calls in progress never depend on the store.

// reconcileInterval is how often the hub checks the store.
const reconcileInterval = 2 * time.Second

// loop runs reconcile every reconcileInterval, the queue tick every
// refreshInterval and a refresh when kicked (queuestats.go), until stop
// closes.
func (h *hub) loop(stop <-chan struct{}) {
	// A node that starts has nothing to restore: its mark says so, so that
	// its first reconcile does not take customers being set up elsewhere
	// (out of the queue for a moment) for lost ones.
	ctx, cancel := h.storeCtx()
	if err := h.store.marks.Mark(ctx, h.markID()); err != nil {
		h.srv.log.Warn("marking the store failed", "err", err)
	}
	cancel()
	rt := time.NewTicker(reconcileInterval)
	defer rt.Stop()
	qt := time.NewTicker(refreshInterval)
	defer qt.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-rt.C:
			h.reconcile()
			h.reap()
			h.auditStubs(now)
			h.pruneSettled(now)
		case <-qt.C:
			h.tick(true)
		case <-h.dirty.kicked:
			h.tick(false)
		}
	}
}

// reconcile restores this node's waiting customers and agents in the store
// if it has lost them. A store that cannot be reached is left for the next
// round.
func (h *hub) reconcile() {
	// The node's mark in the store tells a store that lost its data from
	// customers who are out of the queue for a moment (offered to an agent
	// on another node, or being bound to a call).
	ctx, cancel := h.storeCtx()
	marked, err := h.store.marks.Marked(ctx, h.markID())
	cancel()
	if err != nil || marked {
		return
	}
	h.placeMu.Lock()
	missing := map[queueKey][]queue.Entry{}
	h.mu.Lock()
	local := map[queueKey][]queue.Entry{}
	for s := range h.queued {
		if h.invites.customerInvited(s) {
			continue // out of the queue while its agent is invited
		}
		if e, ok := h.entries[s]; ok {
			k := queueKey{e.Org, e.Queue}
			local[k] = append(local[k], e)
		}
	}
	h.mu.Unlock()
	lost := false
	for k, entries := range local {
		ctx, cancel := h.storeCtx()
		waiting, err := h.store.queues.Waiting(ctx, k.org, k.queue)
		cancel()
		if err != nil {
			h.placeMu.Unlock()
			return
		}
		for _, e := range entries {
			if !slices.Contains(waiting, e.Session) {
				missing[k] = append(missing[k], e)
				lost = true
			}
		}
	}
	failed := false
	for k, entries := range missing {
		// Requeue puts each back at its place (by priority and Since);
		// the order of the calls does not matter.
		slices.SortFunc(entries, func(a, b queue.Entry) int { return b.Since.Compare(a.Since) })
		for _, e := range entries {
			ctx, cancel := h.storeCtx()
			err := h.store.queues.Requeue(ctx, e)
			cancel()
			if err != nil && !errors.Is(err, queue.ErrExists) {
				h.srv.log.Warn("restoring waiting customers failed", "org", k.org, "queue", k.queue, "err", err)
				failed = true
				break
			}
		}
		h.srv.log.Warn("queue store had lost waiting customers; restored", "org", k.org, "queue", k.queue, "customers", len(entries))
	}
	restored := !failed && h.restoreAgents()
	h.placeMu.Unlock()
	if restored {
		ctx, cancel := h.storeCtx()
		if err := h.store.marks.Mark(ctx, h.markID()); err != nil {
			h.srv.log.Warn("marking the store failed", "err", err)
		}
		cancel()
	}
	if lost {
		h.srv.log.Warn("queue store had lost this node's customers and agents; restored")
	}
	for k := range missing {
		h.place(k.org, k.queue)
	}
}

// markID names this node's mark in the store.
func (h *hub) markID() string {
	if h.self == "" {
		return "single"
	}
	return h.self
}

// restoreAgents announces this node's agents to the store again, each as
// available as it asked to be and not in a call; false if the store failed.
// h.placeMu must be held.
func (h *hub) restoreAgents() bool {
	h.mu.Lock()
	type agent struct {
		rec       queue.Agent
		available bool
	}
	var agents []agent
	for s, st := range h.agents {
		// A call, a hold, or a customer it was offered.
		busy := h.calls.count(s)+h.holds.count(s)+h.invites.agentInvites(s) > 0
		agents = append(agents, agent{h.agentRecord(s), st.wantAvailable && !busy})
	}
	h.mu.Unlock()
	for _, a := range agents {
		ctx, cancel := h.storeCtx()
		err := h.store.presence.SetAgent(ctx, a.rec, a.available)
		cancel()
		if err != nil {
			h.srv.log.Warn("restoring agent presence failed", "org", a.rec.Org, "err", err)
			return false
		}
	}
	return true
}
