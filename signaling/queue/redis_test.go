package queue_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/helpcaster/helpcaster/internal/redistest"
	"github.com/helpcaster/helpcaster/signaling/queue"
	"github.com/helpcaster/helpcaster/signaling/queue/queuetest"
)

// newRedisClient returns a go-redis client of srv, closed when t ends.
func newRedisClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// flush empties srv's database: each conformance case wants a fresh backend.
func flush(t testing.TB, c *redis.Client) {
	t.Helper()
	if err := c.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("FLUSHDB: %v", err)
	}
}

func TestRedis(t *testing.T) {
	srv := redistest.Start(t)
	queuetest.Run(t, func(t *testing.T, now func() time.Time) queue.Store {
		c := newRedisClient(t, srv)
		flush(t, c)
		return queue.NewRedis(c, queue.WithClock(now))
	})
}

func TestRedisShared(t *testing.T) {
	srv := redistest.Start(t)
	queuetest.RunShared(t, func(t *testing.T, n int) []queue.Store {
		out := make([]queue.Store, n)
		for i := range out {
			// One client (connection pool) per store, as on separate nodes.
			c := newRedisClient(t, srv)
			if i == 0 {
				flush(t, c)
			}
			out[i] = queue.NewRedis(c)
		}
		return out
	})
}

func TestOpenRedis(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	s, err := queue.OpenRedis(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	if pos, err := s.Enqueue(ctx, queue.Entry{Org: "o", Queue: "q", Session: "s"}, 0); err != nil || pos != 1 {
		t.Fatalf("Enqueue = %d, %v", pos, err)
	}

	if _, err := queue.OpenRedis(ctx, "http://"+srv.Addr()); err == nil || !strings.Contains(err.Error(), "parse redis url") {
		t.Errorf("OpenRedis(http://...) error = %v, want a parse error", err)
	}
	// A port nobody listens on: the restarted-elsewhere case.
	down := redistest.Start(t)
	url := down.URL()
	down.Stop()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := queue.OpenRedis(cctx, url); err == nil || !strings.Contains(err.Error(), "ping redis") {
		t.Errorf("OpenRedis of a stopped server: error = %v, want a ping error", err)
	}
}

// Ids that contain the key scheme's own characters are encoded, so they
// neither break out of their org's hash tag nor collide with other ids; ids
// that cannot be kept are refused with nothing changed.
func TestRedisIDs(t *testing.T) {
	srv := redistest.Start(t)
	c := newRedisClient(t, srv)
	s := queue.NewRedis(c)
	ctx := t.Context()

	tricky := []struct{ org, q string }{
		{"org-a", "support"},
		{"org-a}:q:support", "x"},   // tries to close the hash tag
		{"org-a", "support:wait"},   // tries to forge another queue's key
		{"org-a:q:support", "wait"}, // the same, from the org side
		{"{org-a}", "support"},
		{"org-a%7D", "support"}, // looks like an encoded '}'
		{"ørg ü/*?", "qüeue\n\x00"},
	}
	for i, tc := range tricky {
		if pos, err := s.Enqueue(ctx, queue.Entry{Org: tc.org, Queue: tc.q, Session: "c"}, 0); err != nil || pos != 1 {
			t.Fatalf("Enqueue(%q/%q) #%d = %d, %v; want position 1 (each is its own queue)", tc.org, tc.q, i, pos, err)
		}
		// One agent per queue: an agent's queue list is replaced by each SetAgent.
		agent := queue.Agent{Org: tc.org, Session: fmt.Sprintf("a%d", i), Queues: []string{tc.q}}
		if err := s.SetAgent(ctx, agent, true); err != nil {
			t.Fatalf("SetAgent(%q/%q): %v", tc.org, tc.q, err)
		}
	}
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	valid := regexp.MustCompile(`^hc:\{[A-Za-z0-9._%-]+\}:(agents|q:[A-Za-z0-9._%-]+:(wait|entries|ready|seq|answered|handled|detached|attached)|call:[A-Za-z0-9._%-]+)$`)
	tags := map[string]bool{}
	for _, k := range keys {
		if !valid.MatchString(k) {
			t.Errorf("key %q does not follow the layout", k)
		}
		tags[k[:strings.IndexByte(k, '}')+1]] = true
	}
	if want := 6; len(tags) != want { // org-a is used twice
		t.Errorf("%d distinct hash tags %v, want %d", len(tags), tags, want)
	}
	for _, tc := range tricky {
		a, ok, err := s.Assign(ctx, tc.org, tc.q, nil)
		if err != nil || !ok || a.Customer.Session != "c" || a.Org != tc.org || a.Queue != tc.q {
			t.Fatalf("Assign(%q/%q) = %+v, %v, %v", tc.org, tc.q, a, ok, err)
		}
	}

	// Refused ids.
	before, err := c.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", queue.MaxIDLen+1)
	calls := map[string]func() error{
		"Enqueue empty org": func() error {
			_, err := s.Enqueue(ctx, queue.Entry{Queue: "q", Session: "c2"}, 0)
			return err
		},
		"Enqueue empty queue": func() error {
			_, err := s.Enqueue(ctx, queue.Entry{Org: "o", Session: "c2"}, 0)
			return err
		},
		"Enqueue empty session": func() error {
			_, err := s.Enqueue(ctx, queue.Entry{Org: "o", Queue: "q"}, 0)
			return err
		},
		"Enqueue long org": func() error {
			_, err := s.Enqueue(ctx, queue.Entry{Org: long, Queue: "q", Session: "c2"}, 0)
			return err
		},
		"Requeue long session": func() error {
			return s.Requeue(ctx, queue.Entry{Org: "o", Queue: "q", Session: long})
		},
		"Remove empty queue": func() error { _, err := s.Remove(ctx, "o", "", "c"); return err },
		"Waiting empty org":  func() error { _, err := s.Waiting(ctx, "", "q"); return err },
		"SetAgent bad queue": func() error {
			return s.SetAgent(ctx, queue.Agent{Org: "o", Session: "a2", Queues: []string{"q", ""}}, true)
		},
		"SetAgent empty session": func() error {
			return s.SetAgent(ctx, queue.Agent{Org: "o", Queues: []string{"q"}}, true)
		},
		"RemoveAgent empty org": func() error { return s.RemoveAgent(ctx, "", "a") },
		"Release long agent":    func() error { return s.Release(ctx, "o", long) },
		"Assign long queue": func() error {
			_, _, err := s.Assign(ctx, "o", long, nil)
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, queue.ErrInvalidID) {
			t.Errorf("%s: error = %v, want ErrInvalidID", name, err)
		}
	}
	if after, err := c.DBSize(ctx).Result(); err != nil || after != before {
		t.Errorf("keys after refused calls = %d, %v; want %d", after, err, before)
	}
}

// After a Redis restart (data and script cache gone) the store works again
// without help: scripts are loaded anew.
func TestRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	s := queue.NewRedis(newRedisClient(t, srv))
	ctx := t.Context()
	if _, err := s.Enqueue(ctx, queue.Entry{Org: "o", Queue: "q", Session: "c1"}, 0); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	var err error
	for range 3 { // the first call may see the old, dead connection
		if _, err = s.Enqueue(ctx, queue.Entry{Org: "o", Queue: "q", Session: "c2"}, 0); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("Enqueue after restart: %v", err)
	}
	if err := s.SetAgent(ctx, queue.Agent{Org: "o", Session: "a", Queues: []string{"q"}}, true); err != nil {
		t.Fatal(err)
	}
	if a, ok, err := s.Assign(ctx, "o", "q", nil); err != nil || !ok || a.Customer.Session != "c2" {
		t.Fatalf("Assign after restart = %+v, %v, %v", a, ok, err)
	}
}

// TestRedisRace places 10,000 customers with 200 agents of capacity 1 to 3
// through 3 store clients (as on 3 nodes), with many goroutines enqueueing,
// assigning, releasing and changing presence at once. Every customer must be
// assigned exactly once, no agent may exceed its capacity, and afterwards
// every agent's full capacity must be free again.
func TestRedisRace(t *testing.T) {
	const (
		customers = 10_000
		agents    = 200
		nodes     = 3
		enqueuers = 40
		assigners = 40
		releasers = 40
		org       = "race-org"
	)
	queues := []string{"support", "sales"}
	srv := redistest.Start(t)
	stores := make([]queue.Store, nodes)
	for i := range stores {
		stores[i] = queue.NewRedis(newRedisClient(t, srv))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	roster := make(map[string]queue.Agent, agents)
	for i := range agents {
		qs := queues // both
		switch i % 4 {
		case 0:
			qs = queues[1:] // sales only
		case 1:
			qs = queues[:1] // support only
		}
		a := queue.Agent{Org: org, Session: fmt.Sprintf("agent-%03d", i), Queues: qs, Capacity: 1 + i%3}
		roster[a.Session] = a
		if err := stores[i%nodes].SetAgent(ctx, a, true); err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu       sync.Mutex
		assigned = make(map[string]int, customers) // customer -> times
		active   = make(map[string]int, agents)    // agent -> calls held, as the test sees it
		errs     []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		cancel()
	}
	var done atomic.Int64
	releases := make(chan queue.Assignment, customers)

	var enq, asg, rel sync.WaitGroup
	for g := range enqueuers {
		enq.Go(func() {
			s := stores[g%nodes]
			for i := g; i < customers; i += enqueuers {
				e := queue.Entry{Org: org, Queue: queues[i%2], Session: fmt.Sprintf("cust-%05d", i),
					Attrs: map[string]string{"n": strconv.Itoa(i)}}
				if _, err := s.Enqueue(ctx, e, 0); err != nil {
					fail(fmt.Errorf("Enqueue(%s): %w", e.Session, err))
					return
				}
			}
		})
	}
	for g := range assigners {
		asg.Go(func() {
			s := stores[(g+1)%nodes]
			for n := 0; done.Load() < customers; n++ {
				if ctx.Err() != nil {
					return
				}
				q := queues[(g+n)%2]
				a, ok, err := s.Assign(ctx, org, q, nil)
				if err != nil {
					fail(fmt.Errorf("Assign(%s): %w", q, err))
					return
				}
				if !ok {
					time.Sleep(100 * time.Microsecond)
					continue
				}
				mu.Lock()
				assigned[a.Customer.Session]++
				active[a.Agent]++
				ag, known := roster[a.Agent]
				switch {
				case !known:
					errs = append(errs, fmt.Errorf("assigned to unknown agent %q", a.Agent))
				case active[a.Agent] > ag.Capacity:
					errs = append(errs, fmt.Errorf("agent %s of capacity %d holds %d calls", a.Agent, ag.Capacity, active[a.Agent]))
				case !slices.Contains(ag.Queues, q):
					errs = append(errs, fmt.Errorf("agent %s does not serve %s", a.Agent, q))
				}
				num, _ := strconv.Atoi(strings.TrimPrefix(a.Customer.Session, "cust-"))
				if a.Org != org || a.Queue != q || a.Customer.Org != org || a.Customer.Queue != q ||
					a.Customer.Attrs["n"] != strconv.Itoa(num) || a.Customer.Since.IsZero() {
					errs = append(errs, fmt.Errorf("assignment %+v", a))
				}
				mu.Unlock()
				done.Add(1)
				releases <- a
			}
		})
	}
	for g := range releasers {
		rel.Go(func() {
			s := stores[(g+2)%nodes]
			n := 0
			for a := range releases {
				n++
				if n%4 == 0 {
					time.Sleep(50 * time.Microsecond) // hold the call a moment
				}
				// The test's count drops before the store's, so it never
				// reads lower than the store's real load.
				mu.Lock()
				active[a.Agent]--
				mu.Unlock()
				if err := s.Release(ctx, org, a.Agent); err != nil {
					fail(fmt.Errorf("Release(%s): %w", a.Agent, err))
					for range releases {
					}
					return
				}
			}
		})
	}
	// Presence churn: agents go away and come back while calls go on.
	var churn sync.WaitGroup
	churn.Go(func() {
		s := stores[0]
		for i := 0; done.Load() < customers && ctx.Err() == nil; i++ {
			a := roster[fmt.Sprintf("agent-%03d", i%agents)]
			if err := s.SetAgent(ctx, a, false); err != nil {
				fail(fmt.Errorf("SetAgent away: %w", err))
				return
			}
			time.Sleep(200 * time.Microsecond)
			if err := s.SetAgent(ctx, a, true); err != nil {
				fail(fmt.Errorf("SetAgent back: %w", err))
				return
			}
		}
	})

	start := time.Now()
	enq.Wait()
	asg.Wait()
	churn.Wait()
	close(releases)
	rel.Wait()
	t.Logf("%d customers placed in %v", done.Load(), time.Since(start).Round(time.Millisecond))

	mu.Lock()
	defer mu.Unlock()
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	if len(assigned) != customers {
		t.Errorf("%d distinct customers assigned, want %d", len(assigned), customers)
	}
	for i := range customers {
		if id := fmt.Sprintf("cust-%05d", i); assigned[id] != 1 {
			t.Errorf("customer %s assigned %d times", id, assigned[id])
		}
	}
	for _, q := range queues {
		if w, err := stores[1].Waiting(context.Background(), org, q); err != nil || len(w) != 0 {
			t.Errorf("Waiting(%s) at the end = %d, %v; want none", q, len(w), err)
		}
	}
	for id, n := range active {
		if n != 0 {
			t.Errorf("agent %s still holds %d calls as the test sees it", id, n)
		}
	}

	// Every agent's whole capacity is free again: support takes exactly the
	// sum of its agents' capacities.
	bg := context.Background()
	free := 0
	for _, a := range roster {
		if slices.Contains(a.Queues, "support") {
			free += a.Capacity
		}
	}
	for i := range free + 1 {
		if _, err := stores[2].Enqueue(bg, queue.Entry{Org: org, Queue: "support", Session: fmt.Sprintf("after-%d", i)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	for {
		_, ok, err := stores[got%nodes].Assign(bg, org, "support", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got++
	}
	if got != free {
		t.Errorf("after the run support took %d customers, want the agents' total capacity %d", got, free)
	}
}

// A queue written by the version before the attached set (during a rolling
// upgrade, old nodes still write wait, entries and detached only) is
// placed correctly: Assign rebuilds the set when it sees it out of step.
func TestRedisWrittenByOldVersion(t *testing.T) {
	srv := redistest.Start(t)
	c := newRedisClient(t, srv)
	ctx := t.Context()
	clk := queuetest.NewClock()
	s := queue.NewRedis(c, queue.WithClock(clk.Now))
	const org, q = "o", "q"
	pre := "hc:{o}:q:q:"
	add := func(id string, detach bool) {
		t.Helper()
		if _, err := s.Enqueue(ctx, queue.Entry{Org: org, Queue: q, Session: id}, 0); err != nil {
			t.Fatal(err)
		}
		if detach {
			if _, err := s.Detach(ctx, org, q, id, clk.Now()); err != nil {
				t.Fatal(err)
			}
		}
		clk.Advance(time.Second)
	}
	// oldRemove and oldEnqueue do what the old scripts did: they leave the
	// attached set alone.
	oldRemove := func(id string) {
		t.Helper()
		v, err := c.HGet(ctx, pre+"entries", id).Result()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ZRem(ctx, pre+"wait", v[:35]+":"+id).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.HDel(ctx, pre+"entries", id).Err(); err != nil {
			t.Fatal(err)
		}
	}
	oldEnqueue := func(id string) {
		t.Helper()
		add(id, false)
		v, err := c.HGet(ctx, pre+"entries", id).Result()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ZRem(ctx, pre+"attached", v[:35]+":"+id).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetAgent(ctx, queue.Agent{Org: org, Session: "a", Queues: []string{q}, Capacity: 100}, true); err != nil {
		t.Fatal(err)
	}
	assign := func(want string) {
		t.Helper()
		a, ok, err := s.Assign(ctx, org, q, nil)
		if err != nil || !ok || a.Customer.Session != want {
			t.Fatalf("Assign = %s, %v, %v; want %s", a.Customer.Session, ok, err, want)
		}
	}

	// A queue with no attached set at all, as the old version left it.
	for i := range 700 {
		add(fmt.Sprintf("d%03d", i), true)
	}
	add("c1", false)
	add("c2", false)
	if err := c.Del(ctx, pre+"attached").Err(); err != nil {
		t.Fatal(err)
	}
	assign("c1")

	// An old node enqueues c3 and removes c2: the counts still agree, but
	// the set names c2, who is gone, and not c3.
	oldEnqueue("c3")
	oldRemove("c2")
	add("c4", false)
	assign("c3")
	assign("c4")
	if a, ok, err := s.Assign(ctx, org, q, nil); ok || err != nil {
		t.Fatalf("Assign = %s, %v, %v; want none (only detached customers left)", a.Customer.Session, ok, err)
	}
	if n, err := c.ZCard(ctx, pre+"attached").Result(); err != nil || n != 0 {
		t.Fatalf("attached set holds %d, %v; want 0", n, err)
	}
}

// The attached set is kept exactly by every script, not only repaired by
// assign: after each of the model's random operations it holds the members
// of wait whose session is not in detached, and detached names only waiting
// customers. (Assign rebuilds a set it finds out of step, which would hide a
// script that forgets it from the conformance suite.)
func TestRedisAttachedSetKept(t *testing.T) {
	srv := redistest.Start(t)
	c := newRedisClient(t, srv)
	ctx := t.Context()
	for seed := range uint64(3) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			flush(t, c)
			clk := queuetest.NewClock()
			s := queue.NewRedis(c, queue.WithClock(clk.Now))
			queuetest.Model(t, s, clk, seed, 300, func(t *testing.T, step int) {
				for _, q := range []string{queuetest.ModelQueueA, queuetest.ModelQueueB} {
					pre := "hc:{" + queuetest.ModelOrg + "}:q:" + q + ":"
					wait, err1 := c.ZRange(ctx, pre+"wait", 0, -1).Result()
					attached, err2 := c.ZRange(ctx, pre+"attached", 0, -1).Result()
					detached, err3 := c.HKeys(ctx, pre+"detached").Result()
					if err := errors.Join(err1, err2, err3); err != nil {
						t.Fatal(err)
					}
					var want []string
					for _, m := range wait {
						if !slices.Contains(detached, m[37-1:]) {
							want = append(want, m)
						}
					}
					if !slices.Equal(attached, want) {
						t.Fatalf("step %d: %s attached = %q, want %q", step, q, attached, want)
					}
					if len(wait) != len(attached)+len(detached) {
						t.Fatalf("step %d: %s: %d waiting, %d attached, %d detached", step, q, len(wait), len(attached), len(detached))
					}
				}
			})
		})
	}
}
