// Package queuetest is a conformance suite for queue.Store implementations.
//
// Run checks one client against a fresh backend, driving a fake clock that
// the store must use for every timestamp it takes (Entry.Since when unset,
// and the idle times that decide which agent gets the next customer).
// RunShared checks several clients of one backend, as with several nodes
// sharing one Redis.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
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
	type env struct {
		s   queue.Store
		clk *Clock
		ctx context.Context
	}
	mk := func(t *testing.T) env {
		clk := NewClock()
		return env{s: newStore(t, clk.Now), clk: clk, ctx: context.Background()}
	}

	t.Run("EnqueueFIFO", func(t *testing.T) {
		e := mk(t)
		for i, id := range []string{"c1", "c2", "c3", "c4"} {
			pos := enqueue(t, e.s, orgA, qSup, id, 0)
			if pos != i+1 {
				t.Fatalf("Enqueue(%s) position = %d, want %d", id, pos, i+1)
			}
			e.clk.Advance(time.Second)
		}
		wantWaiting(t, e.s, orgA, qSup, "c1", "c2", "c3", "c4")
		setAgent(t, e.s, orgA, "agent", 10, true, qSup)
		for _, want := range []string{"c1", "c2", "c3", "c4"} {
			a := mustAssign(t, e.s, orgA, qSup)
			if a.Customer.Session != want {
				t.Fatalf("Assign gave %q, want %q (FIFO)", a.Customer.Session, want)
			}
		}
		wantWaiting(t, e.s, orgA, qSup)
	})

	t.Run("PositionAfterRemoveAndAssign", func(t *testing.T) {
		e := mk(t)
		enqueue(t, e.s, orgA, qSup, "c1", 0)
		enqueue(t, e.s, orgA, qSup, "c2", 0)
		enqueue(t, e.s, orgA, qSup, "c3", 0)
		removeOK(t, e.s, orgA, qSup, "c2", true)
		if pos := enqueue(t, e.s, orgA, qSup, "c4", 0); pos != 3 {
			t.Fatalf("position after a removal = %d, want 3", pos)
		}
		setAgent(t, e.s, orgA, "agent", 1, true, qSup)
		mustAssign(t, e.s, orgA, qSup)
		if pos := enqueue(t, e.s, orgA, qSup, "c5", 0); pos != 3 {
			t.Fatalf("position after an assignment = %d, want 3", pos)
		}
		wantWaiting(t, e.s, orgA, qSup, "c3", "c4", "c5")
	})

	t.Run("WaitingUnknown", func(t *testing.T) {
		e := mk(t)
		enqueue(t, e.s, orgA, qSup, "c1", 0)
		wantWaiting(t, e.s, orgA, qSal)
		wantWaiting(t, e.s, "no-such-org", qSup)
	})

	t.Run("EntryRoundTrip", func(t *testing.T) {
		e := mk(t)
		attrs := map[string]string{"lang": "de", "tier": "gold"}
		t0 := e.clk.Now()
		if _, err := e.s.Enqueue(e.ctx, queue.Entry{Org: orgA, Queue: qSup, Session: "c1", Attrs: attrs}, 0); err != nil {
			t.Fatal(err)
		}
		attrs["lang"] = "fr" // the store must not alias the caller's map
		e.clk.Advance(time.Minute)
		since := time.Date(2029, 12, 31, 23, 0, 0, 0, time.UTC)
		if _, err := e.s.Enqueue(e.ctx, queue.Entry{Org: orgA, Queue: qSup, Session: "c2", Since: since}, 0); err != nil {
			t.Fatal(err)
		}
		setAgent(t, e.s, orgA, "agent", 2, true, qSup)

		// c2 has waited longer (its Since is earlier): it is served first.
		b := mustAssign(t, e.s, orgA, qSup)
		if b.Customer.Session != "c2" || !b.Customer.Since.Equal(since) {
			t.Errorf("first assignment = %+v, want c2 with Since kept at %v", b.Customer, since)
		}
		if len(b.Customer.Attrs) != 0 {
			t.Errorf("Attrs = %v, want none", b.Customer.Attrs)
		}
		a := mustAssign(t, e.s, orgA, qSup)
		if a.Org != orgA || a.Queue != qSup || a.Agent != "agent" ||
			a.Customer.Org != orgA || a.Customer.Queue != qSup || a.Customer.Session != "c1" {
			t.Fatalf("assignment = %+v", a)
		}
		if want := map[string]string{"lang": "de", "tier": "gold"}; !maps.Equal(a.Customer.Attrs, want) {
			t.Errorf("Attrs = %v, want %v", a.Customer.Attrs, want)
		}
		if !a.Customer.Since.Equal(t0) {
			t.Errorf("Since = %v, want the clock at Enqueue %v", a.Customer.Since, t0)
		}
	})

	t.Run("ErrExists", func(t *testing.T) {
		e := mk(t)
		enqueue(t, e.s, orgA, qSup, "c1", 0)
		enqueue(t, e.s, orgA, qSup, "c2", 0)
		for _, maxLen := range []int{0, 5} {
			_, err := e.s.Enqueue(e.ctx, queue.Entry{Org: orgA, Queue: qSup, Session: "c1"}, maxLen)
			if !errors.Is(err, queue.ErrExists) {
				t.Fatalf("second Enqueue(c1, maxLen %d) error = %v, want ErrExists", maxLen, err)
			}
		}
		wantWaiting(t, e.s, orgA, qSup, "c1", "c2")
		// Once it has left the queue it may come back, at the end.
		removeOK(t, e.s, orgA, qSup, "c1", true)
		if pos := enqueue(t, e.s, orgA, qSup, "c1", 0); pos != 2 {
			t.Fatalf("re-Enqueue position = %d, want 2", pos)
		}
		wantWaiting(t, e.s, orgA, qSup, "c2", "c1")
	})

	t.Run("ErrFull", func(t *testing.T) {
		for _, tc := range []struct {
			maxLen, fill int
			full         bool
		}{
			{maxLen: 0, fill: 200, full: false}, // 0 = unlimited
			{maxLen: -1, fill: 50, full: false}, // below 1 = unlimited
			{maxLen: 1, fill: 1, full: true},
			{maxLen: 3, fill: 3, full: true},
		} {
			t.Run(fmt.Sprintf("maxLen=%d", tc.maxLen), func(t *testing.T) {
				e := mk(t)
				for i := range tc.fill {
					if pos := enqueue(t, e.s, orgA, qSup, fmt.Sprintf("c%d", i), tc.maxLen); pos != i+1 {
						t.Fatalf("position = %d, want %d", pos, i+1)
					}
				}
				_, err := e.s.Enqueue(e.ctx, queue.Entry{Org: orgA, Queue: qSup, Session: "extra"}, tc.maxLen)
				if !tc.full {
					if err != nil {
						t.Fatalf("Enqueue beyond %d entries with maxLen %d: %v", tc.fill, tc.maxLen, err)
					}
					return
				}
				if !errors.Is(err, queue.ErrFull) {
					t.Fatalf("Enqueue into a full queue: error = %v, want ErrFull", err)
				}
				if w := waiting(t, e.s, orgA, qSup); len(w) != tc.fill || slices.Contains(w, "extra") {
					t.Fatalf("Waiting after ErrFull = %v", w)
				}
				// Other queues and orgs have their own length.
				enqueue(t, e.s, orgA, qSal, "extra", tc.maxLen)
				enqueue(t, e.s, orgB, qSup, "extra", tc.maxLen)
				// Room again after one leaves.
				removeOK(t, e.s, orgA, qSup, "c0", true)
				if pos := enqueue(t, e.s, orgA, qSup, "extra", tc.maxLen); pos != tc.fill {
					t.Fatalf("position = %d, want %d", pos, tc.fill)
				}
			})
		}
	})

	t.Run("Remove", func(t *testing.T) {
		for _, tc := range []struct {
			name        string
			org, q, sid string
			want        bool
			waiting     []string
		}{
			{"first", orgA, qSup, "c1", true, []string{"c3", "c4"}},
			{"middle", orgA, qSup, "c3", true, []string{"c1", "c4"}},
			{"last", orgA, qSup, "c4", true, []string{"c1", "c3"}},
			{"unknown session", orgA, qSup, "nobody", false, []string{"c1", "c3", "c4"}},
			{"assigned", orgA, qSup, "c2", false, []string{"c1", "c3", "c4"}},
			{"other queue", orgA, qSal, "c3", false, []string{"c1", "c3", "c4"}},
			{"other org", orgB, qSup, "c3", false, []string{"c1", "c3", "c4"}},
			{"unknown org", "no-such-org", qSup, "c3", false, []string{"c1", "c3", "c4"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := mk(t)
				enqueue(t, e.s, orgA, qSup, "c2", 0)
				setAgent(t, e.s, orgA, "agent", 1, true, qSup)
				if a := mustAssign(t, e.s, orgA, qSup); a.Customer.Session != "c2" {
					t.Fatalf("assigned %q", a.Customer.Session)
				}
				for _, id := range []string{"c1", "c3", "c4"} {
					enqueue(t, e.s, orgA, qSup, id, 0)
				}
				removeOK(t, e.s, tc.org, tc.q, tc.sid, tc.want)
				wantWaiting(t, e.s, orgA, qSup, tc.waiting...)
				if tc.want {
					removeOK(t, e.s, tc.org, tc.q, tc.sid, false) // twice
				}
			})
		}
	})

	t.Run("OrgIsolation", func(t *testing.T) {
		e := mk(t)
		// Same queue name, same customer and agent ids in two orgs.
		enqueue(t, e.s, orgA, qSup, "c1", 0)
		if pos := enqueue(t, e.s, orgB, qSup, "c1", 0); pos != 1 {
			t.Fatalf("org B position = %d, want 1", pos)
		}
		// Lengths are per org: org B's two do not fill org A's queue.
		enqueue(t, e.s, orgB, qSup, "c2", 2)
		if _, err := e.s.Enqueue(e.ctx, queue.Entry{Org: orgB, Queue: qSup, Session: "c3"}, 2); !errors.Is(err, queue.ErrFull) {
			t.Fatalf("org B Enqueue beyond maxLen: error = %v, want ErrFull", err)
		}
		if pos := enqueue(t, e.s, orgA, qSup, "c3", 2); pos != 2 {
			t.Fatalf("org A position = %d, want 2", pos)
		}
		removeOK(t, e.s, orgA, qSup, "c3", true)
		wantWaiting(t, e.s, orgA, qSup, "c1")
		wantWaiting(t, e.s, orgB, qSup, "c1", "c2")

		// Only org A has an agent: org B's customers stay put.
		setAgent(t, e.s, orgA, "agent", 1, true, qSup)
		noAssign(t, e.s, orgB, qSup)
		a := mustAssign(t, e.s, orgA, qSup)
		if a.Org != orgA || a.Customer.Org != orgA || a.Customer.Session != "c1" || a.Agent != "agent" {
			t.Fatalf("assignment = %+v", a)
		}
		wantWaiting(t, e.s, orgB, qSup, "c1", "c2")
		noAssign(t, e.s, orgB, qSup)

		// An agent with the same id in org B is a different agent: it is
		// free although A's "agent" is busy.
		setAgent(t, e.s, orgB, "agent", 1, true, qSup)
		b := mustAssign(t, e.s, orgB, qSup)
		if b.Org != orgB || b.Customer.Org != orgB || b.Customer.Session != "c1" {
			t.Fatalf("assignment = %+v", b)
		}
		// Releasing A's agent does not free B's.
		release(t, e.s, orgA, "agent")
		noAssign(t, e.s, orgB, qSup)
		// Removing B's agent does not remove A's.
		if err := e.s.RemoveAgent(e.ctx, orgB, "agent"); err != nil {
			t.Fatal(err)
		}
		enqueue(t, e.s, orgA, qSup, "c9", 0)
		if a := mustAssign(t, e.s, orgA, qSup); a.Customer.Session != "c9" {
			t.Fatalf("assigned %q", a.Customer.Session)
		}
		// Removing in A does not remove B's customer of the same id.
		removeOK(t, e.s, orgA, qSup, "c2", false)
		wantWaiting(t, e.s, orgB, qSup, "c2")
	})

	t.Run("QueueIsolation", func(t *testing.T) {
		e := mk(t)
		enqueue(t, e.s, orgA, qSup, "c1", 0)
		if pos := enqueue(t, e.s, orgA, qSal, "c2", 0); pos != 1 {
			t.Fatalf("sales position = %d, want 1", pos)
		}
		if pos := enqueue(t, e.s, orgA, qSup, "c3", 0); pos != 2 {
			t.Fatalf("support position = %d, want 2", pos)
		}
		wantWaiting(t, e.s, orgA, qSup, "c1", "c3")
		wantWaiting(t, e.s, orgA, qSal, "c2")

		setAgent(t, e.s, orgA, "sales-agent", 5, true, qSal)
		noAssign(t, e.s, orgA, qSup) // does not serve support
		a := mustAssign(t, e.s, orgA, qSal)
		if a.Queue != qSal || a.Customer.Session != "c2" || a.Agent != "sales-agent" {
			t.Fatalf("assignment = %+v", a)
		}
		noAssign(t, e.s, orgA, qSal)
		noAssign(t, e.s, orgA, qSup)
		wantWaiting(t, e.s, orgA, qSup, "c1", "c3")
	})

	t.Run("AgentQueues", func(t *testing.T) {
		e := mk(t)
		enqueue(t, e.s, orgA, qSup, "c1", 0)
		enqueue(t, e.s, orgA, qSal, "c2", 0)
		enqueue(t, e.s, orgA, "billing", "c3", 0)
		setAgent(t, e.s, orgA, "agent", 10, true, qSup, qSal)
		if a := mustAssign(t, e.s, orgA, qSal); a.Customer.Session != "c2" {
			t.Fatalf("assigned %q", a.Customer.Session)
		}
		if a := mustAssign(t, e.s, orgA, qSup); a.Customer.Session != "c1" {
			t.Fatalf("assigned %q", a.Customer.Session)
		}
		noAssign(t, e.s, orgA, "billing")
		// SetAgent replaces the list of queues.
		enqueue(t, e.s, orgA, qSup, "c4", 0)
		setAgent(t, e.s, orgA, "agent", 10, true, "billing")
		noAssign(t, e.s, orgA, qSup)
		if a := mustAssign(t, e.s, orgA, "billing"); a.Customer.Session != "c3" {
			t.Fatalf("assigned %q", a.Customer.Session)
		}
		// An agent serving no queue gets nobody.
		setAgent(t, e.s, orgA, "agent", 10, true)
		noAssign(t, e.s, orgA, qSup)
	})

	t.Run("Away", func(t *testing.T) {
		e := mk(t)
		enqueue(t, e.s, orgA, qSup, "c1", 0)
		setAgent(t, e.s, orgA, "agent", 1, false, qSup)
		noAssign(t, e.s, orgA, qSup)
		wantWaiting(t, e.s, orgA, qSup, "c1")
		setAgent(t, e.s, orgA, "agent", 1, true, qSup)
		mustAssign(t, e.s, orgA, qSup)
		// Going away and back during a call keeps the call.
		enqueue(t, e.s, orgA, qSup, "c2", 0)
		setAgent(t, e.s, orgA, "agent", 1, false, qSup)
		setAgent(t, e.s, orgA, "agent", 1, true, qSup)
		noAssign(t, e.s, orgA, qSup)
		// Released while away: still gets nobody until available.
		setAgent(t, e.s, orgA, "agent", 1, false, qSup)
		release(t, e.s, orgA, "agent")
		noAssign(t, e.s, orgA, qSup)
		setAgent(t, e.s, orgA, "agent", 1, true, qSup)
		if a := mustAssign(t, e.s, orgA, qSup); a.Customer.Session != "c2" {
			t.Fatalf("assigned %q", a.Customer.Session)
		}
	})

	t.Run("Capacity", func(t *testing.T) {
		for _, tc := range []struct{ capacity, want int }{
			{-1, 1}, {0, 1}, {1, 1}, {2, 2}, {3, 3},
		} {
			t.Run(fmt.Sprintf("capacity=%d", tc.capacity), func(t *testing.T) {
				e := mk(t)
				for i := range tc.want + 2 {
					enqueue(t, e.s, orgA, qSup, fmt.Sprintf("c%d", i), 0)
				}
				setAgent(t, e.s, orgA, "agent", tc.capacity, true, qSup)
				for range tc.want {
					mustAssign(t, e.s, orgA, qSup)
				}
				noAssign(t, e.s, orgA, qSup)
				if w := waiting(t, e.s, orgA, qSup); len(w) != 2 {
					t.Fatalf("Waiting = %v, want the 2 not assigned", w)
				}
				// Presence updates keep the calls in progress.
				setAgent(t, e.s, orgA, "agent", tc.capacity, true, qSup)
				noAssign(t, e.s, orgA, qSup)
				release(t, e.s, orgA, "agent")
				mustAssign(t, e.s, orgA, qSup)
				noAssign(t, e.s, orgA, qSup)
			})
		}
	})

	t.Run("ReleaseWithoutCall", func(t *testing.T) {
		e := mk(t)
		setAgent(t, e.s, orgA, "agent", 1, true, qSup)
		// Spurious releases must not build up credit.
		for range 3 {
			release(t, e.s, orgA, "agent")
		}
		release(t, e.s, orgA, "nobody")
		release(t, e.s, "no-such-org", "agent")
		enqueue(t, e.s, orgA, qSup, "c1", 0)
		enqueue(t, e.s, orgA, qSup, "c2", 0)
		mustAssign(t, e.s, orgA, qSup)
		noAssign(t, e.s, orgA, qSup)
		release(t, e.s, orgA, "agent")
		release(t, e.s, orgA, "agent")
		mustAssign(t, e.s, orgA, qSup)
		enqueue(t, e.s, orgA, qSup, "c3", 0)
		noAssign(t, e.s, orgA, qSup)
	})

	t.Run("IdleLongest", func(t *testing.T) {
		// Agent ids are chosen so that ordering by id would pick the wrong
		// one: "b-agent" sorts after "a-agent".
		type step struct {
			op    string // "set", "away", "release", "assign"
			agent string
		}
		for _, tc := range []struct {
			name  string
			steps []step
		}{
			{"first available wins", []step{
				{"set", "b-agent"}, {"set", "a-agent"}, {"assign", "b-agent"}, {"assign", "a-agent"},
			}},
			{"later release is idle shorter", []step{
				{"set", "b-agent"}, {"set", "a-agent"},
				{"assign", "b-agent"}, {"assign", "a-agent"},
				{"release", "a-agent"}, {"release", "b-agent"},
				{"assign", "a-agent"}, {"assign", "b-agent"},
			}},
			{"away restarts idle time", []step{
				{"set", "b-agent"}, {"set", "a-agent"}, {"away", "b-agent"}, {"set", "b-agent"},
				{"assign", "a-agent"}, {"assign", "b-agent"},
			}},
			{"presence refresh keeps idle time", []step{
				{"set", "b-agent"}, {"set", "a-agent"}, {"set", "b-agent"},
				{"assign", "b-agent"}, {"assign", "a-agent"},
			}},
			{"removed and back counts from return", []step{
				{"set", "b-agent"}, {"set", "a-agent"}, {"remove", "b-agent"}, {"set", "b-agent"},
				{"assign", "a-agent"}, {"assign", "b-agent"},
			}},
			{"three agents", []step{
				{"set", "c-agent"}, {"set", "b-agent"}, {"set", "a-agent"},
				{"assign", "c-agent"}, {"release", "c-agent"},
				{"assign", "b-agent"}, {"assign", "a-agent"}, {"assign", "c-agent"},
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := mk(t)
				for i := range 10 {
					enqueue(t, e.s, orgA, qSup, fmt.Sprintf("c%d", i), 0)
				}
				for i, st := range tc.steps {
					e.clk.Advance(time.Second)
					switch st.op {
					case "set":
						setAgent(t, e.s, orgA, st.agent, 1, true, qSup)
					case "away":
						setAgent(t, e.s, orgA, st.agent, 1, false, qSup)
					case "remove":
						if err := e.s.RemoveAgent(e.ctx, orgA, st.agent); err != nil {
							t.Fatal(err)
						}
					case "release":
						release(t, e.s, orgA, st.agent)
					case "assign":
						if a := mustAssign(t, e.s, orgA, qSup); a.Agent != st.agent {
							t.Fatalf("step %d: assigned to %q, want %q (idle longest)", i, a.Agent, st.agent)
						}
					}
				}
			})
		}
	})

	t.Run("RemoveAgent", func(t *testing.T) {
		e := mk(t)
		enqueue(t, e.s, orgA, qSup, "c1", 0)
		setAgent(t, e.s, orgA, "agent", 1, false, qSup)
		if err := e.s.RemoveAgent(e.ctx, orgA, "agent"); err != nil {
			t.Fatal(err)
		}
		setAgent(t, e.s, orgA, "other", 1, true, qSal)
		if err := e.s.RemoveAgent(e.ctx, orgA, "other"); err != nil {
			t.Fatal(err)
		}
		noAssign(t, e.s, orgA, qSup)
		noAssign(t, e.s, orgA, qSal)
		// Unknown agents and orgs are no error.
		if err := e.s.RemoveAgent(e.ctx, orgA, "nobody"); err != nil {
			t.Fatal(err)
		}
		if err := e.s.RemoveAgent(e.ctx, "no-such-org", "agent"); err != nil {
			t.Fatal(err)
		}
		// An available agent that disconnects gets nobody.
		setAgent(t, e.s, orgA, "agent", 1, true, qSup)
		if err := e.s.RemoveAgent(e.ctx, orgA, "agent"); err != nil {
			t.Fatal(err)
		}
		noAssign(t, e.s, orgA, qSup)
		wantWaiting(t, e.s, orgA, qSup, "c1")
		// And can come back.
		setAgent(t, e.s, orgA, "agent", 1, true, qSup)
		if a := mustAssign(t, e.s, orgA, qSup); a.Agent != "agent" {
			t.Fatalf("assigned to %q", a.Agent)
		}
	})

	t.Run("AssignNothing", func(t *testing.T) {
		e := mk(t)
		noAssign(t, e.s, orgA, qSup) // nothing at all
		setAgent(t, e.s, orgA, "agent", 1, true, qSup)
		noAssign(t, e.s, orgA, qSup) // agent, no customer
		noAssign(t, e.s, "no-such-org", qSup)
		enqueue(t, e.s, orgA, qSal, "c1", 0)
		noAssign(t, e.s, orgA, qSal) // customer, no agent for it
		wantWaiting(t, e.s, orgA, qSal, "c1")
		// The agent was not used up by the failed attempts.
		enqueue(t, e.s, orgA, qSup, "c2", 0)
		mustAssign(t, e.s, orgA, qSup)
	})

	t.Run("ContextCancelled", func(t *testing.T) {
		e := mk(t)
		enqueue(t, e.s, orgA, qSup, "c1", 0)
		setAgent(t, e.s, orgA, "agent", 1, true, qSup)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		calls := []struct {
			name string
			call func() error
		}{
			{"Enqueue", func() error {
				_, err := e.s.Enqueue(ctx, queue.Entry{Org: orgA, Queue: qSup, Session: "c2"}, 0)
				return err
			}},
			{"Remove", func() error { _, err := e.s.Remove(ctx, orgA, qSup, "c1"); return err }},
			{"Waiting", func() error { _, err := e.s.Waiting(ctx, orgA, qSup); return err }},
			{"SetAgent", func() error {
				return e.s.SetAgent(ctx, queue.Agent{Org: orgA, Session: "agent2", Queues: []string{qSup}}, true)
			}},
			{"RemoveAgent", func() error { return e.s.RemoveAgent(ctx, orgA, "agent") }},
			{"Release", func() error { return e.s.Release(ctx, orgA, "agent") }},
			{"Assign", func() error {
				_, ok, err := e.s.Assign(ctx, orgA, qSup, nil)
				if ok {
					return errors.New("ok with a cancelled context")
				}
				return err
			}},
		}
		for _, c := range calls {
			if err := c.call(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a cancelled context: error = %v, want context.Canceled", c.name, err)
			}
		}
		// Nothing happened.
		wantWaiting(t, e.s, orgA, qSup, "c1")
		if a := mustAssign(t, e.s, orgA, qSup); a.Agent != "agent" || a.Customer.Session != "c1" {
			t.Fatalf("assignment = %+v", a)
		}
	})

	t.Run("SubjectHold", func(t *testing.T) {
		e := mk(t)
		hold := func(org, subject, prev, session string, want bool) {
			t.Helper()
			ok, err := e.s.HoldSubject(e.ctx, org, subject, prev, session)
			if err != nil || ok != want {
				t.Fatalf("HoldSubject(%s, %s, %q -> %s) = %v, %v; want %v", org, subject, prev, session, ok, err, want)
			}
		}
		holder := func(org, subject, want string) {
			t.Helper()
			got, err := e.s.SubjectHolder(e.ctx, org, subject)
			if err != nil || got != want {
				t.Fatalf("SubjectHolder(%s, %s) = %q, %v; want %q", org, subject, got, err, want)
			}
		}
		holder(orgA, "s1", "")
		hold(orgA, "s1", "", "c1", true)
		holder(orgA, "s1", "c1")
		hold(orgA, "s1", "", "c2", false) // c1 holds it
		hold(orgA, "s1", "c9", "c2", false)
		holder(orgA, "s1", "c1")
		hold(orgA, "s1", "c1", "c2", true)
		holder(orgA, "s1", "c2")
		hold(orgA, "s1", "c2", "c2", true) // taken again by its holder
		holder(orgB, "s1", "")             // organizations apart
		holder(orgA, "s2", "")
	})

	t.Run("Routing", func(t *testing.T) { runRouting(t, newStore) })
	t.Run("Detached", func(t *testing.T) { runDetached(t, newStore) })

	t.Run("Concurrent", func(t *testing.T) {
		e := mk(t)
		stress(t, []queue.Store{e.s})
	})
}

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

func enqueue(t *testing.T, s queue.Store, org, q, id string, maxLen int) int {
	t.Helper()
	pos, err := s.Enqueue(context.Background(), queue.Entry{Org: org, Queue: q, Session: id}, maxLen)
	if err != nil {
		t.Fatalf("Enqueue(%s/%s/%s, maxLen %d): %v", org, q, id, maxLen, err)
	}
	return pos
}

func waiting(t *testing.T, s queue.Store, org, q string) []string {
	t.Helper()
	w, err := s.Waiting(context.Background(), org, q)
	if err != nil {
		t.Fatalf("Waiting(%s/%s): %v", org, q, err)
	}
	return w
}

func wantWaiting(t *testing.T, s queue.Store, org, q string, want ...string) {
	t.Helper()
	if got := waiting(t, s, org, q); !slices.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
		t.Fatalf("Waiting(%s/%s) = %q, want %q", org, q, got, want)
	}
}

func removeOK(t *testing.T, s queue.Store, org, q, id string, want bool) {
	t.Helper()
	ok, err := s.Remove(context.Background(), org, q, id)
	if err != nil {
		t.Fatalf("Remove(%s/%s/%s): %v", org, q, id, err)
	}
	if ok != want {
		t.Fatalf("Remove(%s/%s/%s) = %v, want %v", org, q, id, ok, want)
	}
}

func setAgent(t *testing.T, s queue.Store, org, id string, capacity int, available bool, queues ...string) {
	t.Helper()
	a := queue.Agent{Org: org, Session: id, Queues: queues, Capacity: capacity}
	if err := s.SetAgent(context.Background(), a, available); err != nil {
		t.Fatalf("SetAgent(%+v, %v): %v", a, available, err)
	}
}

func release(t *testing.T, s queue.Store, org, id string) {
	t.Helper()
	if err := s.Release(context.Background(), org, id); err != nil {
		t.Fatalf("Release(%s/%s): %v", org, id, err)
	}
}

func mustAssign(t *testing.T, s queue.Store, org, q string) queue.Assignment {
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

func noAssign(t *testing.T, s queue.Store, org, q string) {
	t.Helper()
	a, ok, err := s.Assign(context.Background(), org, q, nil)
	if err != nil {
		t.Fatalf("Assign(%s/%s): %v", org, q, err)
	}
	if ok {
		t.Fatalf("Assign(%s/%s) = %+v, want none", org, q, a)
	}
}
