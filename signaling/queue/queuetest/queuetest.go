// Package queuetest is a conformance suite for queue.Store implementations.
//
// Run checks one client against a fresh backend, driving a fake clock that
// the store must use for every timestamp it takes (Entry.Since when unset,
// and the idle times that decide which agent gets the next customer).
// RunShared checks several clients of one backend, as with several nodes
// sharing one Redis.
//
// The checks are grouped by the store's roles: queues.go (Queues),
// presence.go (Presence), records.go (CallRecords, Subjects, Marks),
// routing.go (Assign with routing policies, Move, Detachment, Stats),
// detached.go (Assign past detached customers, and Model), shared.go
// (RunShared and the concurrent stress run). The helpers below take only
// the role they use.
package queuetest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/signaling/queue"
)

// Clock is a fake clock safe for concurrent use. It only moves when told.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock stopped at a fixed whole second (so that stores
// that keep times at millisecond precision round-trip them exactly).
func NewClock() *Clock {
	return &Clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	orgA = "org-a"
	orgB = "org-b"
	qSup = "support"
	qSal = "sales"
)

// Run runs the conformance suite. newStore must return an empty store (or a
// client of an empty backend) that reads the time only from now.
func Run(t *testing.T, newStore func(t *testing.T, now func() time.Time) queue.Store) {
	t.Helper()
	mk := func(t *testing.T) env {
		clk := NewClock()
		return env{s: newStore(t, clk.Now), clk: clk, ctx: context.Background()}
	}
	runQueues(t, mk)
	runPresence(t, mk)
	t.Run("CallRecords", func(t *testing.T) { runCallRecords(t, mk(t).s) })
	t.Run("SubjectHold", func(t *testing.T) { runSubjects(t, mk(t).s) })
	t.Run("Mark", func(t *testing.T) { runMarks(t, mk(t).s) })
	t.Run("Routing", func(t *testing.T) { runRouting(t, newStore) })
	t.Run("Detached", func(t *testing.T) { runDetached(t, newStore) })
	t.Run("Concurrent", func(t *testing.T) {
		e := mk(t)
		stress(t, []queue.Store{e.s})
	})
}

// env is one check's store, on a fresh backend, and the clock it reads.
type env struct {
	s   queue.Store
	clk *Clock
	ctx context.Context
}

func enqueue(t *testing.T, s queue.Queues, org, q, id string, maxLen int) int {
	t.Helper()
	pos, err := s.Enqueue(context.Background(), queue.Entry{Org: org, Queue: q, Session: id}, maxLen)
	if err != nil {
		t.Fatalf("Enqueue(%s/%s/%s, maxLen %d): %v", org, q, id, maxLen, err)
	}
	return pos
}

func waiting(t *testing.T, s queue.Queues, org, q string) []string {
	t.Helper()
	w, err := s.Waiting(context.Background(), org, q)
	if err != nil {
		t.Fatalf("Waiting(%s/%s): %v", org, q, err)
	}
	return w
}

func wantWaiting(t *testing.T, s queue.Queues, org, q string, want ...string) {
	t.Helper()
	if got := waiting(t, s, org, q); !slices.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
		t.Fatalf("Waiting(%s/%s) = %q, want %q", org, q, got, want)
	}
}

func removeOK(t *testing.T, s queue.Queues, org, q, id string, want bool) {
	t.Helper()
	ok, err := s.Remove(context.Background(), org, q, id)
	if err != nil {
		t.Fatalf("Remove(%s/%s/%s): %v", org, q, id, err)
	}
	if ok != want {
		t.Fatalf("Remove(%s/%s/%s) = %v, want %v", org, q, id, ok, want)
	}
}

func setAgent(t *testing.T, s queue.Presence, org, id string, capacity int, available bool, queues ...string) {
	t.Helper()
	a := queue.Agent{Org: org, Session: id, Queues: queues, Capacity: capacity}
	if err := s.SetAgent(context.Background(), a, available); err != nil {
		t.Fatalf("SetAgent(%+v, %v): %v", a, available, err)
	}
}

func release(t *testing.T, s queue.Presence, org, id string) {
	t.Helper()
	if err := s.Release(context.Background(), org, id); err != nil {
		t.Fatalf("Release(%s/%s): %v", org, id, err)
	}
}

func mustAssign(t *testing.T, s queue.Assigner, org, q string) queue.Assignment {
	t.Helper()
	a, ok, err := s.Assign(context.Background(), org, q, nil)
	if err != nil {
		t.Fatalf("Assign(%s/%s): %v", org, q, err)
	}
	if !ok {
		t.Fatalf("Assign(%s/%s): ok = false, want an assignment", org, q)
	}
	return a
}

func noAssign(t *testing.T, s queue.Assigner, org, q string) {
	t.Helper()
	a, ok, err := s.Assign(context.Background(), org, q, nil)
	if err != nil {
		t.Fatalf("Assign(%s/%s): %v", org, q, err)
	}
	if ok {
		t.Fatalf("Assign(%s/%s) = %+v, want none", org, q, a)
	}
}
