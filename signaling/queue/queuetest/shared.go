package queuetest

// Checks of several clients of one backend, as several nodes sharing one
// Redis, and the concurrent stress run that Run also uses with one client.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/signaling/queue"
)

// RunShared runs checks for several clients of one backend. newClients
// returns n clients of one fresh, empty backend (for Memory, the same store n
// times).
func RunShared(t *testing.T, newClients func(t *testing.T, n int) []queue.Store) {
	t.Helper()
	ctx := context.Background()

	t.Run("Visibility", func(t *testing.T) {
		c := newClients(t, 3)
		enqueue(t, c[0], orgA, qSup, "c1", 0)
		if pos := enqueue(t, c[1], orgA, qSup, "c2", 0); pos != 2 {
			t.Fatalf("position via a second client = %d, want 2", pos)
		}
		if _, err := c[2].Enqueue(ctx, queue.Entry{Org: orgA, Queue: qSup, Session: "c1"}, 0); !errors.Is(err, queue.ErrExists) {
			t.Fatalf("Enqueue of c1 via a third client: error = %v, want ErrExists", err)
		}
		if _, err := c[2].Enqueue(ctx, queue.Entry{Org: orgA, Queue: qSup, Session: "c3"}, 2); !errors.Is(err, queue.ErrFull) {
			t.Fatalf("Enqueue into a full queue via a third client: error = %v, want ErrFull", err)
		}
		for _, s := range c {
			wantWaiting(t, s, orgA, qSup, "c1", "c2")
		}
		removeOK(t, c[2], orgA, qSup, "c1", true)
		removeOK(t, c[0], orgA, qSup, "c1", false)
		wantWaiting(t, c[1], orgA, qSup, "c2")
	})

	t.Run("AgentAcrossClients", func(t *testing.T) {
		c := newClients(t, 3)
		setAgent(t, c[0], orgA, "agent", 1, true, qSup)
		enqueue(t, c[1], orgA, qSup, "c1", 0)
		enqueue(t, c[2], orgA, qSup, "c2", 0)
		if a := mustAssign(t, c[1], orgA, qSup); a.Agent != "agent" || a.Customer.Session != "c1" {
			t.Fatalf("assignment = %+v", a)
		}
		noAssign(t, c[2], orgA, qSup) // capacity is shared
		removeOK(t, c[0], orgA, qSup, "c1", false)
		release(t, c[2], orgA, "agent")
		if a := mustAssign(t, c[0], orgA, qSup); a.Customer.Session != "c2" {
			t.Fatalf("assignment = %+v", a)
		}
		release(t, c[0], orgA, "agent")
		if err := c[1].RemoveAgent(ctx, orgA, "agent"); err != nil {
			t.Fatal(err)
		}
		enqueue(t, c[0], orgA, qSup, "c3", 0)
		noAssign(t, c[2], orgA, qSup)
		setAgent(t, c[2], orgA, "agent", 1, false, qSup)
		noAssign(t, c[0], orgA, qSup)
	})

	t.Run("Concurrent", func(t *testing.T) {
		stress(t, newClients(t, 4))
	})
}

// stress has 50 goroutines enqueue 20 customers each while 20 agents of
// capacity 1 repeatedly become available, assign and release, spread over
// the clients. Every customer must be assigned exactly once and no agent may
// hold two calls at once.
func stress(t *testing.T, clients []queue.Store) {
	const (
		enqueuers   = 50
		perEnqueuer = 20
		agents      = 20
		total       = enqueuers * perEnqueuer
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var (
		mu        sync.Mutex
		assigned  = make(map[string]int) // customer -> times assigned
		active    = make(map[string]int) // agent -> calls held, as seen by the test
		calls     = make(map[string]int) // agent -> calls taken
		maxActive int
		errs      []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		cancel()
	}
	var done atomic.Int64

	var wg sync.WaitGroup
	for g := range enqueuers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := clients[g%len(clients)]
			for i := range perEnqueuer {
				id := fmt.Sprintf("cust-%02d-%02d", g, i)
				pos, err := s.Enqueue(ctx, queue.Entry{Org: orgA, Queue: qSup, Session: id}, 0)
				if err != nil {
					fail(fmt.Errorf("Enqueue(%s): %w", id, err))
					return
				}
				if pos < 1 || pos > total {
					fail(fmt.Errorf("Enqueue(%s) position %d", id, pos))
					return
				}
			}
		}()
	}
	for ag := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := clients[ag%len(clients)]
			me := queue.Agent{Org: orgA, Session: fmt.Sprintf("agent-%02d", ag), Queues: []string{qSup}, Capacity: 1}
			for n := 0; done.Load() < total; n++ {
				if ctx.Err() != nil {
					return
				}
				// Now and then go away and come back, as agents do.
				if n%7 == 3 {
					if err := s.SetAgent(ctx, me, false); err != nil {
						fail(fmt.Errorf("set agent: %w", err))
						return
					}
				}
				if err := s.SetAgent(ctx, me, true); err != nil {
					fail(fmt.Errorf("set agent: %w", err))
					return
				}
				a, ok, err := s.Assign(ctx, orgA, qSup, nil)
				if err != nil {
					fail(fmt.Errorf("assign: %w", err))
					return
				}
				if !ok {
					time.Sleep(50 * time.Microsecond)
					continue
				}
				// a.Agent may be another agent than me; whoever assigned
				// handles the call.
				mu.Lock()
				assigned[a.Customer.Session]++
				calls[a.Agent]++
				active[a.Agent]++
				maxActive = max(maxActive, active[a.Agent])
				if a.Org != orgA || a.Queue != qSup || a.Customer.Org != orgA || a.Customer.Queue != qSup {
					errs = append(errs, fmt.Errorf("assignment %+v", a))
				}
				mu.Unlock()
				done.Add(1)

				if n%3 == 0 {
					time.Sleep(20 * time.Microsecond) // hold the call a moment
				}

				mu.Lock()
				active[a.Agent]--
				mu.Unlock()
				if err := s.Release(ctx, orgA, a.Agent); err != nil {
					fail(fmt.Errorf("release: %w", err))
					return
				}
			}
		}()
	}
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	for _, err := range errs {
		t.Error(err)
	}
	if maxActive > 1 {
		t.Errorf("an agent of capacity 1 held %d calls at once", maxActive)
	}
	if len(assigned) != total {
		t.Errorf("%d distinct customers assigned, want %d", len(assigned), total)
	}
	for id, n := range assigned {
		if n != 1 {
			t.Errorf("customer %s assigned %d times", id, n)
		}
	}
	for g := range enqueuers {
		for i := range perEnqueuer {
			if id := fmt.Sprintf("cust-%02d-%02d", g, i); assigned[id] == 0 && len(errs) == 0 {
				t.Errorf("customer %s lost", id)
			}
		}
	}
	if w, err := clients[0].Waiting(context.Background(), orgA, qSup); err != nil || len(w) != 0 {
		t.Errorf("Waiting at the end = %v, %v; want none", w, err)
	}
	for id, n := range active {
		if n != 0 {
			t.Errorf("agent %s still active %d", id, n)
		}
	}
	t.Logf("%d customers assigned over %d agents", len(assigned), len(calls))
}
