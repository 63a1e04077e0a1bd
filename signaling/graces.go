package signaling

import (
	"sync"
	"time"

	"github.com/helpcaster/helpcaster/signaling/queue"
)

// Graces. A waiting customer whose connection dropped keeps its place for
// the resume grace (resume.go); graceTable holds those places, by session
// id, with their timers. It has its own lock, a leaf: its methods call
// nothing outside the table, so they may be called with hub.mu held (which
// is how a resume takes a grace in the same step as it takes the session).
// Exactly one of a grace's end, a resume and a shutdown takes each grace.

// grace is a disconnected customer's place being kept.
type grace struct {
	timer *time.Timer
	entry queue.Entry
}

type graceTable struct {
	mu     sync.Mutex
	graces map[string]*grace
}

func newGraceTable() *graceTable {
	return &graceTable{graces: make(map[string]*grace)}
}

// start keeps entry's place for session id for d, then calls over with the
// grace unless something took it first. The timer is set in the step that
// publishes the grace, so that however short d is, over finds it.
func (t *graceTable) start(id string, entry queue.Entry, d time.Duration, over func(*grace)) {
	g := &grace{entry: entry}
	t.mu.Lock()
	defer t.mu.Unlock()
	g.timer = time.AfterFunc(d, func() { over(g) })
	t.graces[id] = g
}

// take removes and returns the grace of session id, its timer stopped; nil
// when there is none.
func (t *graceTable) take(id string) *grace {
	t.mu.Lock()
	g := t.graces[id]
	delete(t.graces, id)
	t.mu.Unlock()
	if g != nil {
		g.timer.Stop()
	}
	return g
}

// takeIf removes g if it is still session id's grace; false when a resume
// or a shutdown took it first.
func (t *graceTable) takeIf(id string, g *grace) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.graces[id] != g {
		return false
	}
	delete(t.graces, id)
	return true
}

// stopAll stops and forgets every grace (shutdown); the places stay in the
// store for other nodes to keep or reap.
func (t *graceTable) stopAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, g := range t.graces {
		g.timer.Stop()
		delete(t.graces, id)
	}
}
