package queuetest

// Checks of the Queues role, with Assign to take customers out: service
// order and positions, entries kept as given, ErrExists and ErrFull,
// removal, and isolation between orgs and between queues.

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/signaling/queue"
)

// runQueues runs the checks of waiting customers, each on a fresh store from
// mk.
func runQueues(t *testing.T, mk func(t *testing.T) env) {
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
}
