package signaling

import (
	"sync"
	"time"

	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
	"github.com/helpcaster/helpcaster/signaling/waittime"
)

// Live queue state. The hub refreshes a queue whenever something on this node
// changed it (a join, a leave, an assignment) and every refreshInterval
// (other nodes change shared queues too, and waits grow): one store Snapshot,
// from which it pushes to this node's customers their position and estimated
// wait, and to this node's agents a queue summary, each only when what they
// were last told changed; and it sets the queue's metrics. Refreshes are
// coalesced: a burst of joins costs one snapshot.
//
// A refresh costs time in the queue's length (the snapshot holds every
// waiting customer, and after a placement every customer behind it has a new
// position to be told), so refreshes must not follow placements one for one:
// at 100 placements a second into a queue of thousands, that made each
// placement cost a refresh of the whole queue. After a refresh that kicks
// started, the refresher waits refreshGap, and the kicks that arrive
// meanwhile make one refresh: at most 1/refreshGap such refreshes a second
// (plus the tick's), whatever the placement rate.

const (
	refreshInterval = time.Second
	// refreshGap is how long the refresher pauses after a refresh that
	// kicks started (pace).
	refreshGap = 200 * time.Millisecond
	// statsWindow is the span of the averages and the answer rate.
	statsWindow = time.Hour
	// defaultHandle is the handle time assumed before any call has ended.
	defaultHandle = 5 * time.Minute
)

type queueKey struct{ org, queue string }

// dirtyQueues are the queues changed on this node since the refresher last
// looked, and the wake-up that tells it. Its lock is a leaf.
type dirtyQueues struct {
	mu     sync.Mutex
	marked map[queueKey]bool
	kicked chan struct{} // one wake-up is enough for any number of marks
}

func newDirtyQueues() *dirtyQueues {
	return &dirtyQueues{marked: make(map[queueKey]bool), kicked: make(chan struct{}, 1)}
}

// mark notes that k changed and wakes the refresher.
func (d *dirtyQueues) mark(k queueKey) {
	d.mu.Lock()
	d.marked[k] = true
	d.mu.Unlock()
	select {
	case d.kicked <- struct{}{}:
	default:
	}
}

// take returns the marked queues and clears the marks.
func (d *dirtyQueues) take() map[queueKey]bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.marked
	d.marked = make(map[queueKey]bool)
	return out
}

// kick asks the refresher to refresh a queue soon.
func (h *hub) kick(org, q string) { h.dirty.mark(queueKey{org, q}) }

// activeQueues are the queues this node has customers or agents in, plus
// any marked dirty; it clears the marks.
func (h *hub) activeQueues() map[queueKey]bool {
	out := h.dirty.take()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.entries {
		out[queueKey{e.Org, e.Queue}] = true
	}
	for s := range h.agents {
		out[queueKey{s.org.ID, s.queue}] = true
	}
	for s := range h.supervisors {
		for _, q := range s.org.Queues {
			out[queueKey{s.org.ID, q.Name}] = true
		}
	}
	return out
}

// queueConfig returns the configuration of an org's queue.
func (h *hub) queueConfig(org, q string) (auth.Queue, bool) {
	o, ok := h.srv.verifier.Dir.Org(org)
	if !ok {
		return auth.Queue{}, false
	}
	return o.Queue(q)
}

// tick runs the periodic queue work: overflow, placement for queues whose
// matches widen with time, and a refresh of every active queue.
func (h *hub) tick(all bool) {
	queues := h.activeQueues()
	if all {
		for k := range queues {
			cfg, ok := h.queueConfig(k.org, k.queue)
			if !ok {
				continue
			}
			if cfg.Overflow.After > 0 {
				h.overflow(k.org, cfg)
			}
			if cfg.Policy.Timed() {
				h.place(k.org, k.queue)
			}
		}
	}
	for k := range queues {
		h.refresh(k.org, k.queue)
	}
	if !all {
		h.pace()
	}
}

// pace holds the refresher (the hub's loop goroutine) for refreshGap after a
// refresh that kicks started, or until the server stops, so that the kicks
// arriving meanwhile are served by one refresh. A customer who joins is told
// its position at once by the join itself; the refresh only brings its
// estimate and the others' new positions.
func (h *hub) pace() {
	t := time.NewTimer(refreshGap)
	defer t.Stop()
	select {
	case <-t.C:
	case <-h.srv.stopReconcile:
	}
}

// overflow moves this node's customers who have waited long enough in a
// queue to its overflow queue. Each node moves only its own customers (it
// knows their sessions); a customer whose node died is moved by the node it
// resumes on.
func (h *hub) overflow(org string, cfg auth.Queue) {
	dst, ok := h.queueConfig(org, cfg.Overflow.To)
	if !ok {
		return
	}
	now := time.Now()
	type move struct {
		s *session
		e queue.Entry
	}
	var due []move
	h.mu.Lock()
	for s, e := range h.entries {
		if e.Org == org && e.Queue == cfg.Name && now.Sub(e.Since) >= cfg.Overflow.After {
			due = append(due, move{s, e})
		}
	}
	h.mu.Unlock()
	if len(due) == 0 {
		return
	}
	h.placeMu.Lock()
	for _, m := range due {
		prio := dst.Policy.Priority(m.e.Attrs)
		ctx, cancel := h.storeCtx()
		moved, err := h.store.queues.Move(ctx, m.e, dst.Name, prio, dst.MaxLength)
		cancel()
		if err != nil || !moved {
			continue // full, gone, or the store is down: try again next tick
		}
		m.e.Queue, m.e.Priority = dst.Name, prio
		h.mu.Lock()
		if _, waiting := h.entries[m.s]; waiting {
			h.entries[m.s] = m.e
			h.queued[m.s] = position{} // tell it about its new queue
		}
		h.mu.Unlock()
		h.srv.metrics.overflowed.WithLabelValues(org, cfg.Name).Inc()
	}
	h.placeMu.Unlock()
	h.place(org, dst.Name)
	h.kick(org, cfg.Name)
}

// refresh reads a queue's state and pushes what changed.
func (h *hub) refresh(org, q string) {
	cfg, ok := h.queueConfig(org, q)
	if !ok {
		return
	}
	now := time.Now()
	ctx, cancel := h.storeCtx()
	snap, err := h.store.stats.Snapshot(ctx, org, q, now.Add(-statsWindow))
	cancel()
	if err != nil {
		h.srv.log.Warn("read queue failed", "org", org, "queue", q, "err", err)
		return
	}

	win := waittime.NewWindow(statsWindow, queue.MaxSamples)
	for _, s := range snap.Answered {
		win.AddWait(s.At, s.D)
	}
	for _, s := range snap.Handled {
		win.AddHandle(s.At, s.D)
	}
	ws := win.Snapshot(now)

	st := protocol.QueueStats{
		Waiting:       len(snap.Waiting),
		Answered:      ws.Answered,
		AvgWait:       seconds(ws.AvgWait),
		AvgHandle:     seconds(ws.AvgHandle),
		WindowSeconds: int(statsWindow / time.Second),
	}
	for _, e := range snap.Waiting {
		st.LongestWait = max(st.LongestWait, seconds(now.Sub(e.Since)))
	}
	for _, a := range snap.Agents {
		switch {
		case a.Available && a.Active < a.Capacity:
			st.Available++
		case a.Active > 0:
			st.Busy++
		default:
			st.Away++
		}
	}

	m := h.srv.metrics
	m.queueLength.WithLabelValues(org, q).Set(float64(st.Waiting))
	m.longestWait.WithLabelValues(org, q).Set(float64(st.LongestWait))
	m.agentsAvailable.WithLabelValues(org, q).Set(float64(st.Available))
	m.agentsBusy.WithLabelValues(org, q).Set(float64(st.Busy))
	m.agentsAway.WithLabelValues(org, q).Set(float64(st.Away))
	h.auditQueue(org, q, snap, now)

	h.mu.Lock()
	defer h.mu.Unlock()
	for i, e := range snap.Waiting {
		s := h.sessions[e.Session]
		if s == nil {
			continue // waiting on another node
		}
		last, ok := h.queued[s]
		if !ok {
			continue // assigned or gone meanwhile
		}
		now := position{pos: i + 1, length: len(snap.Waiting), wait: -1}
		if d, known := waittime.Estimate(estimateInput(cfg, snap, i, ws, time.Since(e.Since))); known {
			now.wait = seconds(waittime.Round(d))
		}
		if last == now {
			continue
		}
		h.queued[s] = now
		s.send(queuedMessage(q, now))
	}
	for s, a := range h.agents {
		if s.org.ID != org || s.queue != q || a.stats == st {
			continue
		}
		a.stats = st
		stats := st
		s.send(protocol.Message{Type: protocol.TypeQueueStats, Queue: q, Stats: &stats})
	}
	for s, last := range h.supervisors {
		if s.org.ID != org || last[q] == st {
			continue
		}
		last[q] = st
		stats := st
		s.send(protocol.Message{Type: protocol.TypeQueueStats, Queue: q, Stats: &stats})
	}
}

func queuedMessage(q string, p position) protocol.Message {
	m := protocol.Message{Type: protocol.TypeQueued, Queue: q, Position: p.pos, Length: p.length}
	if p.wait > 0 {
		m.Wait = p.wait
	}
	return m
}

// estimateInput describes customer i of snap for the estimator: the agents
// that may take it (logged in, not away and idle) and its place among the
// customers ahead.
func estimateInput(cfg auth.Queue, snap queue.Snapshot, i int, ws waittime.Stats, waited time.Duration) waittime.Input {
	e := snap.Waiting[i]
	in := waittime.Input{Position: i + 1, Waited: waited, Stats: ws, DefaultHandle: defaultHandle}
	for _, a := range snap.Agents {
		if !a.Available && a.Active == 0 {
			continue // away
		}
		if !cfg.Policy.Eligible(e.Attrs, a.Skills, waited) {
			continue
		}
		in.Agents++
		in.Capacity += a.Capacity
		in.Busy += min(a.Active, a.Capacity)
	}
	return in
}

func seconds(d time.Duration) int { return int((d + time.Second/2) / time.Second) }
