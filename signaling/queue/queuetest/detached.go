package queuetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/signaling/queue"
	"github.com/helpcaster/helpcaster/signaling/routing"
)

// runDetached checks that customers whose place is kept for a resume
// (Detach) never hide the connected customers behind them from Assign,
// however many there are, and that every operation keeps a store's idea of
// who is attached the same as a simple model's.
func runDetached(t *testing.T, newStore func(t *testing.T, now func() time.Time) queue.Store) {
	ctx := context.Background()

	// fill enqueues n customers named prefix-i, a second apart, detaching
	// each one if detach is set.
	fill := func(t *testing.T, s queue.Store, clk *Clock, prefix string, n int, attrs map[string]string, detach bool) []string {
		t.Helper()
		ids := make([]string, n)
		for i := range n {
			ids[i] = fmt.Sprintf("%s-%04d", prefix, i)
			e := queue.Entry{Org: orgA, Queue: qSup, Session: ids[i], Attrs: attrs}
			if _, err := s.Enqueue(ctx, e, 0); err != nil {
				t.Fatalf("Enqueue(%s): %v", ids[i], err)
			}
			if detach {
				if ok, err := s.Detach(ctx, orgA, qSup, ids[i], clk.Now()); !ok || err != nil {
					t.Fatalf("Detach(%s) = %v, %v", ids[i], ok, err)
				}
			}
			clk.Advance(time.Second)
		}
		return ids
	}

	// The case: more detached customers at the head than Assign
	// looks at must not stop placement.
	t.Run("LongDetachedHead", func(t *testing.T) {
		clk := NewClock()
		s := newStore(t, clk.Now)
		fill(t, s, clk, "gone", queue.ScanLimit+100, nil, true)
		live := fill(t, s, clk, "live", 50, nil, false)
		for i := range 5 {
			setAgent(t, s, orgA, fmt.Sprintf("agent-%d", i), 10, true, qSup)
		}
		for _, want := range live {
			if a := mustAssign(t, s, orgA, qSup); a.Customer.Session != want {
				t.Fatalf("Assign gave %s, want %s (the first attached customer)", a.Customer.Session, want)
			}
		}
		noAssign(t, s, orgA, qSup)
		if n := len(waiting(t, s, orgA, qSup)); n != queue.ScanLimit+100 {
			t.Fatalf("%d waiting after the attached were placed, want the %d detached", n, queue.ScanLimit+100)
		}
	})

	// With match rules, ScanLimit counts attached customers only: the
	// ScanLimit-th attached customer is reached behind any number of
	// detached ones, the one after it is not.
	t.Run("ScanLimitCountsAttached", func(t *testing.T) {
		clk := NewClock()
		s := newStore(t, clk.Now)
		p := &routing.Policy{Requirements: []routing.Requirement{{Attr: "lang", Steps: []routing.Step{{Level: 1}}}}}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		fill(t, s, clk, "gone", queue.ScanLimit+100, map[string]string{"lang": "en"}, true)
		fill(t, s, clk, "de", queue.ScanLimit-1, map[string]string{"lang": "de"}, false)
		fill(t, s, clk, "en", 2, map[string]string{"lang": "en"}, false)
		a := queue.Agent{Org: orgA, Session: "agent", Queues: []string{qSup}, Capacity: 10, Skills: routing.Skills{"lang": {"en": 1}}}
		if err := s.SetAgent(ctx, a, true); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.Assign(ctx, orgA, qSup, p)
		if err != nil || !ok || got.Customer.Session != "en-0000" {
			t.Fatalf("Assign = %+v, %v, %v; want en-0000, the %d-th attached customer", got.Customer, ok, err, queue.ScanLimit)
		}
		// en-0001 is now the ScanLimit-th attached customer.
		got, ok, err = s.Assign(ctx, orgA, qSup, p)
		if err != nil || !ok || got.Customer.Session != "en-0001" {
			t.Fatalf("Assign = %+v, %v, %v; want en-0001", got.Customer, ok, err)
		}
		// One more ineligible attached customer ahead puts the next one out of reach.
		fill(t, s, clk, "en-late", 1, map[string]string{"lang": "en"}, false)
		if err := s.Requeue(ctx, queue.Entry{Org: orgA, Queue: qSup, Session: "de-extra", Since: NewClock().Now(), Attrs: map[string]string{"lang": "de"}}); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := s.Assign(ctx, orgA, qSup, p); err != nil || ok {
			t.Fatalf("Assign = %+v, %v, %v; want none (the only eligible customer is attached customer %d)", got.Customer, ok, err, queue.ScanLimit+1)
		}
	})

	t.Run("Model", func(t *testing.T) {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				clk := NewClock()
				Model(t, newStore(t, clk.Now), clk, seed, 400, nil)
			})
		}
	})
}

// modelEntry is a waiting customer as the model sees it.
type modelEntry struct {
	id       string
	priority int
	since    time.Time
	detached bool
}

// model is the reference: per queue, the waiting customers in service
// order (priority, then Since; the test gives every customer its own Since).
type model map[string][]modelEntry

func (m model) insert(q string, e modelEntry) {
	i := slices.IndexFunc(m[q], func(x modelEntry) bool {
		return x.priority < e.priority || x.priority == e.priority && x.since.After(e.since)
	})
	if i < 0 {
		i = len(m[q])
	}
	m[q] = slices.Insert(m[q], i, e)
}

// find returns the queue and index of a waiting customer, or "", -1.
func (m model) find(id string) (string, int) {
	for q, es := range m {
		if i := slices.IndexFunc(es, func(x modelEntry) bool { return x.id == id }); i >= 0 {
			return q, i
		}
	}
	return "", -1
}

// ModelOrg is the org Model uses, and ModelQueueA and ModelQueueB its
// queues.
const (
	ModelOrg    = orgA
	ModelQueueA = qSup
	ModelQueueB = qSal
)

// Model applies n random operations (chosen from seed) to s, an empty store
// reading the time from clk, and to a simple model of the queues, and
// compares them after each: the order of every queue, who is detached, and
// whom Assign takes. check, if not nil, runs after each operation too, so
// that a store's test can check its own invariants.
func Model(t *testing.T, s queue.Store, clk *Clock, seed uint64, n int, check func(t *testing.T, step int)) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 42))
	queues := []string{ModelQueueA, ModelQueueB}
	setAgent(t, s, orgA, "agent", 1<<20, true, queues...)
	m := model{}
	var assigned []queue.Entry // candidates for Requeue
	next := 0
	// pick returns a random waiting customer, or "" when none.
	pick := func() (string, string) {
		var all []string
		for _, q := range queues {
			for _, e := range m[q] {
				all = append(all, e.id)
			}
		}
		if len(all) == 0 {
			return "", ""
		}
		id := all[rng.IntN(len(all))]
		q, _ := m.find(id)
		return q, id
	}
	for step := range n {
		clk.Advance(time.Second)
		var op string
		switch r := rng.IntN(100); {
		case r < 30:
			q := queues[rng.IntN(2)]
			id := fmt.Sprintf("c%d", next)
			next++
			prio := rng.IntN(3)
			op = fmt.Sprintf("enqueue %s in %s at priority %d", id, q, prio)
			if _, err := s.Enqueue(ctx, queue.Entry{Org: orgA, Queue: q, Session: id, Priority: prio}, 0); err != nil {
				t.Fatalf("step %d, %s: %v", step, op, err)
			}
			m.insert(q, modelEntry{id: id, priority: prio, since: clk.Now()})
		case r < 50:
			q, id := pick()
			if id == "" {
				continue
			}
			op = "detach " + id
			if ok, err := s.Detach(ctx, orgA, q, id, clk.Now()); !ok || err != nil {
				t.Fatalf("step %d, %s = %v, %v", step, op, ok, err)
			}
			_, i := m.find(id)
			m[q][i].detached = true
		case r < 62:
			q, id := pick()
			if id == "" {
				continue
			}
			op = "attach " + id
			if ok, err := s.Attach(ctx, orgA, q, id, "n1"); !ok || err != nil {
				t.Fatalf("step %d, %s = %v, %v", step, op, ok, err)
			}
			_, i := m.find(id)
			m[q][i].detached = false
		case r < 70:
			q, id := pick()
			if id == "" {
				continue
			}
			_, i := m.find(id)
			e := m[q][i]
			op = "remove " + id
			remove := s.Remove
			if rng.IntN(2) == 0 {
				op, remove = "remove detached "+id, s.RemoveDetached
			}
			want := op == "remove "+id || e.detached
			if ok, err := remove(ctx, orgA, q, id); ok != want || err != nil {
				t.Fatalf("step %d, %s = %v, %v; want %v", step, op, ok, err, want)
			}
			if want {
				m[q] = slices.Delete(m[q], i, i+1)
			}
		case r < 78:
			q, id := pick()
			if id == "" {
				continue
			}
			to := queues[0]
			if q == to {
				to = queues[1]
			}
			prio := rng.IntN(3)
			op = fmt.Sprintf("move %s to %s at priority %d", id, to, prio)
			if ok, err := s.Move(ctx, queue.Entry{Org: orgA, Queue: q, Session: id}, to, prio, 0); !ok || err != nil {
				t.Fatalf("step %d, %s = %v, %v", step, op, ok, err)
			}
			_, i := m.find(id)
			e := m[q][i]
			m[q] = slices.Delete(m[q], i, i+1)
			e.priority = prio
			m.insert(to, e)
		case r < 86:
			if len(assigned) == 0 {
				continue
			}
			k := rng.IntN(len(assigned))
			e := assigned[k]
			assigned = slices.Delete(assigned, k, k+1)
			op = "requeue " + e.Session
			if err := s.Requeue(ctx, e); err != nil {
				t.Fatalf("step %d, %s: %v", step, op, err)
			}
			m.insert(e.Queue, modelEntry{id: e.Session, priority: e.Priority, since: e.Since})
		default:
			q := queues[rng.IntN(2)]
			op = "assign in " + q
			a, ok, err := s.Assign(ctx, orgA, q, nil)
			if err != nil {
				t.Fatalf("step %d, %s: %v", step, op, err)
			}
			i := slices.IndexFunc(m[q], func(x modelEntry) bool { return !x.detached })
			switch {
			case i < 0 && ok:
				t.Fatalf("step %d, %s gave %s, want none (all detached)", step, op, a.Customer.Session)
			case i < 0:
			case !ok:
				t.Fatalf("step %d, %s gave none, want %s", step, op, m[q][i].id)
			case a.Customer.Session != m[q][i].id:
				t.Fatalf("step %d, %s gave %s, want %s", step, op, a.Customer.Session, m[q][i].id)
			default:
				m[q] = slices.Delete(m[q], i, i+1)
				assigned = append(assigned, a.Customer)
			}
		}
		for _, q := range queues {
			snap, err := s.Snapshot(ctx, orgA, q, time.Time{})
			if err != nil {
				t.Fatalf("step %d (after %s): Snapshot(%s): %v", step, op, q, err)
			}
			got := make([]modelEntry, len(snap.Waiting))
			for i, e := range snap.Waiting {
				got[i] = modelEntry{id: e.Session, priority: e.Priority, since: e.Since, detached: !e.Detached.IsZero()}
			}
			if !slices.EqualFunc(got, m[q], func(a, b modelEntry) bool {
				return a.id == b.id && a.priority == b.priority && a.since.Equal(b.since) && a.detached == b.detached
			}) {
				t.Fatalf("step %d (after %s): queue %s is\n%v\nwant\n%v", step, op, q, got, m[q])
			}
		}
		if check != nil {
			check(t, step)
		}
	}
}
