package queuetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/signaling/queue"
	"github.com/helpcaster/helpcaster/signaling/routing"
)

// runRouting checks priorities, routing policies, Move and Snapshot.
func runRouting(t *testing.T, newStore func(t *testing.T, now func() time.Time) queue.Store) {
	ctx := context.Background()
	mk := func(t *testing.T) (queue.Store, *Clock) {
		clk := NewClock()
		return newStore(t, clk.Now), clk
	}
	add := func(t *testing.T, s queue.Store, q, id string, prio int, attrs map[string]string) int {
		t.Helper()
		pos, err := s.Enqueue(ctx, queue.Entry{Org: orgA, Queue: q, Session: id, Priority: prio, Attrs: attrs}, 0)
		if err != nil {
			t.Fatalf("Enqueue(%s): %v", id, err)
		}
		return pos
	}
	agent := func(t *testing.T, s queue.Store, id string, skills routing.Skills) {
		t.Helper()
		a := queue.Agent{Org: orgA, Session: id, Queues: []string{qSup}, Capacity: 1, Skills: skills}
		if err := s.SetAgent(ctx, a, true); err != nil {
			t.Fatalf("SetAgent(%s): %v", id, err)
		}
	}
	assign := func(t *testing.T, s queue.Store, p *routing.Policy) (string, string) {
		t.Helper()
		a, ok, err := s.Assign(ctx, orgA, qSup, p)
		if err != nil {
			t.Fatalf("Assign: %v", err)
		}
		if !ok {
			return "", ""
		}
		return a.Customer.Session, a.Agent
	}
	policy := func(t *testing.T, p routing.Policy) *routing.Policy {
		t.Helper()
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		return &p
	}

	t.Run("Priority", func(t *testing.T) {
		s, clk := mk(t)
		for i, c := range []struct {
			id   string
			prio int
			pos  int
		}{
			{"n1", 0, 1}, {"g1", 10, 1}, {"n2", 0, 3}, {"s1", 5, 2}, {"g2", 10, 2}, {"top", 999, 1},
		} {
			if pos := add(t, s, qSup, c.id, c.prio, nil); pos != c.pos {
				t.Fatalf("#%d Enqueue(%s, priority %d) position = %d, want %d", i, c.id, c.prio, pos, c.pos)
			}
			clk.Advance(time.Second)
		}
		want := []string{"top", "g1", "g2", "s1", "n1", "n2"}
		wantWaiting(t, s, orgA, qSup, want...)
		setAgent(t, s, orgA, "agent", 10, true, qSup)
		for _, id := range want[:3] {
			a := mustAssign(t, s, orgA, qSup)
			if a.Customer.Session != id {
				t.Fatalf("assigned %s, want %s", a.Customer.Session, id)
			}
			if id == "g1" && a.Customer.Priority != 10 {
				t.Fatalf("assignment priority = %d, want 10", a.Customer.Priority)
			}
			// Requeued, it goes back ahead of everyone of its priority.
			if id == "g1" {
				if err := s.Requeue(ctx, a.Customer); err != nil {
					t.Fatal(err)
				}
				wantWaiting(t, s, orgA, qSup, "g1", "g2", "s1", "n1", "n2")
				if again := mustAssign(t, s, orgA, qSup); again.Customer.Session != "g1" {
					t.Fatalf("after requeue assigned %s, want g1", again.Customer.Session)
				}
			}
		}
	})

	t.Run("RequeueKeepsPlace", func(t *testing.T) {
		s, clk := mk(t)
		add(t, s, qSup, "c1", 0, nil)
		clk.Advance(time.Second)
		add(t, s, qSup, "c2", 0, nil)
		clk.Advance(time.Second)
		add(t, s, qSup, "c3", 0, nil)
		setAgent(t, s, orgA, "agent", 1, true, qSup)
		a := mustAssign(t, s, orgA, qSup)
		add(t, s, qSup, "c4", 0, nil) // same instant as nothing else
		if err := s.Requeue(ctx, a.Customer); err != nil {
			t.Fatal(err)
		}
		wantWaiting(t, s, orgA, qSup, "c1", "c2", "c3", "c4")
		if err := s.Requeue(ctx, a.Customer); !errors.Is(err, queue.ErrExists) {
			t.Fatalf("second Requeue: error = %v, want ErrExists", err)
		}
	})

	t.Run("Skills", func(t *testing.T) {
		s, _ := mk(t)
		p := policy(t, routing.Policy{Requirements: []routing.Requirement{
			{Attr: "language"},
			{Attr: "product", Skill: "products", Steps: []routing.Step{{Level: 3}}},
		}})
		add(t, s, qSup, "fr", 0, map[string]string{"language": "fr"})
		add(t, s, qSup, "de-billing", 0, map[string]string{"language": "de", "product": "billing"})
		add(t, s, qSup, "anyone", 0, map[string]string{"tier": "gold"})
		agent(t, s, "de-junior", routing.Skills{"language": {"de": 5}, "products": {"billing": 2}})
		agent(t, s, "de-senior", routing.Skills{"language": {"de": 2, "en": 9}, "products": {"billing": 3}})
		// "fr" has nobody: skipped. de-junior is idle longest but below level 3.
		if c, a := assign(t, s, p); c != "de-billing" || a != "de-senior" {
			t.Fatalf("assigned %s to %s, want de-billing to de-senior", c, a)
		}
		if c, a := assign(t, s, p); c != "anyone" || a != "de-junior" {
			t.Fatalf("assigned %s to %s, want anyone to de-junior", c, a)
		}
		if c, _ := assign(t, s, p); c != "" {
			t.Fatalf("assigned %s; nobody speaks fr", c)
		}
		wantWaiting(t, s, orgA, qSup, "fr")
		// Without a policy, anyone takes anyone.
		release(t, s, orgA, "de-junior")
		if c, a := assign(t, s, nil); c != "fr" || a != "de-junior" {
			t.Fatalf("without policy assigned %s to %s", c, a)
		}
	})

	t.Run("IdleLongestEligible", func(t *testing.T) {
		s, clk := mk(t)
		p := policy(t, routing.Policy{Requirements: []routing.Requirement{{Attr: "language"}}})
		agent(t, s, "b-en", routing.Skills{"language": {"en": 1}})
		clk.Advance(time.Second)
		agent(t, s, "a-de", routing.Skills{"language": {"de": 1, "en": 1}})
		clk.Advance(time.Second)
		agent(t, s, "c-de", routing.Skills{"language": {"de": 1}})
		add(t, s, qSup, "de1", 0, map[string]string{"language": "de"})
		add(t, s, qSup, "de2", 0, map[string]string{"language": "de"})
		add(t, s, qSup, "de3", 0, map[string]string{"language": "de"})
		for _, want := range []string{"a-de", "c-de", ""} {
			if _, a := assign(t, s, p); a != want {
				t.Fatalf("agent %q, want %q", a, want)
			}
		}
	})

	t.Run("Widening", func(t *testing.T) {
		s, clk := mk(t)
		p := policy(t, routing.Policy{Requirements: []routing.Requirement{{
			Attr: "language",
			Steps: []routing.Step{
				{After: 0, Level: 5},
				{After: 30 * time.Second, Level: 1},
				{After: 60 * time.Second, Level: 0},
			},
		}}})
		add(t, s, qSup, "de", 0, map[string]string{"language": "de"})
		agent(t, s, "en-only", routing.Skills{"language": {"en": 9}})
		agent(t, s, "de-weak", routing.Skills{"language": {"de": 1}})
		if c, _ := assign(t, s, p); c != "" {
			t.Fatal("assigned at once; nobody has level 5")
		}
		clk.Advance(29 * time.Second)
		if c, _ := assign(t, s, p); c != "" {
			t.Fatal("assigned after 29 s")
		}
		clk.Advance(time.Second)
		if c, a := assign(t, s, p); c != "de" || a != "de-weak" {
			t.Fatalf("after 30 s assigned %q to %q, want de to de-weak", c, a)
		}
		add(t, s, qSup, "de2", 0, map[string]string{"language": "de"})
		clk.Advance(59 * time.Second)
		if c, _ := assign(t, s, p); c != "" {
			t.Fatal("de2 assigned after 59 s to an agent without German")
		}
		clk.Advance(time.Second)
		if c, a := assign(t, s, p); c != "de2" || a != "en-only" {
			t.Fatalf("after 60 s assigned %q to %q, want de2 to en-only (any agent)", c, a)
		}
	})

	t.Run("Move", func(t *testing.T) {
		s, clk := mk(t)
		add(t, s, qSal, "s-old", 0, nil)
		clk.Advance(time.Second)
		add(t, s, qSup, "over", 0, map[string]string{"k": "v"})
		clk.Advance(time.Second)
		add(t, s, qSal, "s-new", 0, nil)
		since := clk.Now().Add(-time.Second)
		e := queue.Entry{Org: orgA, Queue: qSup, Session: "over"}
		if _, err := s.Move(ctx, e, qSal, 0, 2); !errors.Is(err, queue.ErrFull) {
			t.Fatalf("Move into a full queue: error = %v, want ErrFull", err)
		}
		wantWaiting(t, s, orgA, qSup, "over")
		if ok, err := s.Move(ctx, e, qSal, 0, 0); err != nil || !ok {
			t.Fatalf("Move = %v, %v", ok, err)
		}
		// It keeps its Since: ahead of those who joined after it.
		wantWaiting(t, s, orgA, qSal, "s-old", "over", "s-new")
		wantWaiting(t, s, orgA, qSup)
		if ok, err := s.Move(ctx, e, qSal, 0, 0); err != nil || ok {
			t.Fatalf("second Move = %v, %v; want false", ok, err)
		}
		// With a higher priority in the new queue, it goes first.
		e.Queue = qSal
		if ok, err := s.Move(ctx, e, "vip", 7, 0); err != nil || !ok {
			t.Fatalf("Move to vip = %v, %v", ok, err)
		}
		add(t, s, "vip", "v1", 3, nil)
		wantWaiting(t, s, orgA, "vip", "over", "v1")
		setAgent(t, s, orgA, "agent", 1, true, "vip")
		a, ok, err := s.Assign(ctx, orgA, "vip", nil)
		if err != nil || !ok || a.Customer.Session != "over" || a.Customer.Priority != 7 ||
			!a.Customer.Since.Equal(since) || a.Customer.Attrs["k"] != "v" || a.Queue != "vip" {
			t.Fatalf("Assign after Move = %+v, %v, %v", a, ok, err)
		}
		// Another org's customer of the same id is not moved.
		if _, err := s.Enqueue(ctx, queue.Entry{Org: orgB, Queue: qSup, Session: "x"}, 0); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Move(ctx, queue.Entry{Org: orgA, Queue: qSup, Session: "x"}, qSal, 0, 0); err != nil || ok {
			t.Fatalf("Move of another org's customer = %v, %v", ok, err)
		}
		wantWaiting(t, s, orgB, qSup, "x")
	})

	t.Run("Snapshot", func(t *testing.T) {
		s, clk := mk(t)
		t0 := clk.Now()
		add(t, s, qSup, "c1", 0, map[string]string{"language": "de"})
		add(t, s, qSup, "vip", 5, nil)
		clk.Advance(10 * time.Second)
		agent(t, s, "busy", routing.Skills{"language": {"de": 3}})
		if a := mustAssign(t, s, orgA, qSup); a.Customer.Session != "vip" {
			t.Fatalf("assigned %s", a.Customer.Session)
		}
		setAgent(t, s, orgA, "away", 2, false, qSup)
		setAgent(t, s, orgA, "elsewhere", 1, true, qSal)
		clk.Advance(20 * time.Second)
		if err := s.RecordHandled(ctx, orgA, qSup, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordHandled(ctx, orgB, qSup, time.Hour); err != nil {
			t.Fatal(err)
		}
		add(t, s, qSup, "c3", 0, nil)

		snap, err := s.Snapshot(ctx, orgA, qSup, t0)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range snap.Waiting {
			ids = append(ids, e.Session)
		}
		if !slices.Equal(ids, []string{"c1", "c3"}) || snap.Waiting[0].Attrs["language"] != "de" ||
			!snap.Waiting[0].Since.Equal(t0) || snap.Waiting[0].Org != orgA || snap.Waiting[1].Queue != qSup {
			t.Errorf("Waiting = %+v", snap.Waiting)
		}
		want := []queue.AgentState{
			{Session: "away", Capacity: 2},
			{Session: "busy", Skills: routing.Skills{"language": {"de": 3}}, Capacity: 1, Active: 1, Available: true},
		}
		if fmt.Sprint(snap.Agents) != fmt.Sprint(want) {
			t.Errorf("Agents = %+v, want %+v", snap.Agents, want)
		}
		if len(snap.Answered) != 1 || snap.Answered[0].D != 10*time.Second || !snap.Answered[0].At.Equal(t0.Add(10*time.Second)) {
			t.Errorf("Answered = %+v, want one wait of 10s", snap.Answered)
		}
		if len(snap.Handled) != 1 || snap.Handled[0].D != 20*time.Second || !snap.Handled[0].At.Equal(t0.Add(30*time.Second)) {
			t.Errorf("Handled = %+v, want one of 20s", snap.Handled)
		}
		// since filters samples; retention drops old ones.
		later, err := s.Snapshot(ctx, orgA, qSup, t0.Add(15*time.Second))
		if err != nil || len(later.Answered) != 0 || len(later.Handled) != 1 {
			t.Errorf("Snapshot since 15s = %+v, %v", later, err)
		}
		clk.Advance(queue.SampleAge + time.Minute)
		if err := s.RecordHandled(ctx, orgA, qSup, time.Second); err != nil {
			t.Fatal(err)
		}
		old, err := s.Snapshot(ctx, orgA, qSup, time.Time{})
		if err != nil || len(old.Handled) != 1 || old.Handled[0].D != time.Second {
			t.Errorf("after SampleAge, Handled = %+v, %v; want only the new one", old.Handled, err)
		}
		// Other orgs and empty queues.
		other, err := s.Snapshot(ctx, orgB, qSal, t0)
		if err != nil || len(other.Waiting)+len(other.Agents)+len(other.Answered)+len(other.Handled) != 0 {
			t.Errorf("Snapshot of an empty queue = %+v, %v", other, err)
		}
	})

	t.Run("DetachAttach", func(t *testing.T) {
		s, clk := mk(t)
		e1 := queue.Entry{Org: orgA, Queue: qSup, Session: "c1", Node: "n1", Name: "Carl", ResumeKey: "rk1", Attrs: map[string]string{"a": "b"}}
		if _, err := s.Enqueue(ctx, e1, 0); err != nil {
			t.Fatal(err)
		}
		add(t, s, qSup, "c2", 0, nil)
		got, ok, err := s.Lookup(ctx, orgA, qSup, "c1")
		if err != nil || !ok || got.Node != "n1" || got.Name != "Carl" || got.ResumeKey != "rk1" || got.Attrs["a"] != "b" || !got.Detached.IsZero() {
			t.Fatalf("Lookup = %+v, %v, %v", got, ok, err)
		}
		if _, ok, err := s.Lookup(ctx, orgB, qSup, "c1"); ok || err != nil {
			t.Fatalf("Lookup in another org = %v, %v", ok, err)
		}
		at := clk.Now()
		if ok, err := s.Detach(ctx, orgA, qSup, "c1", at); !ok || err != nil {
			t.Fatalf("Detach = %v, %v", ok, err)
		}
		if ok, err := s.Detach(ctx, orgA, qSup, "nobody", at); ok || err != nil {
			t.Fatalf("Detach of nobody = %v, %v", ok, err)
		}
		clk.Advance(time.Second)
		if ok, _ := s.Detach(ctx, orgA, qSup, "c1", clk.Now()); !ok {
			t.Fatal("second Detach")
		}
		got, _, _ = s.Lookup(ctx, orgA, qSup, "c1")
		if !got.Detached.Equal(at) {
			t.Fatalf("Detached = %v, want the first detach %v", got.Detached, at)
		}
		// A detached customer keeps its place but is skipped.
		setAgent(t, s, orgA, "agent", 1, true, qSup)
		wantWaiting(t, s, orgA, qSup, "c1", "c2")
		if a := mustAssign(t, s, orgA, qSup); a.Customer.Session != "c2" {
			t.Fatalf("assigned %s, want c2 (c1 is detached)", a.Customer.Session)
		}
		noAssign(t, s, orgA, qSup)
		release(t, s, orgA, "agent")
		noAssign(t, s, orgA, qSup)
		snap, err := s.Snapshot(ctx, orgA, qSup, time.Time{})
		if err != nil || len(snap.Waiting) != 1 || !snap.Waiting[0].Detached.Equal(at) {
			t.Fatalf("Snapshot = %+v, %v", snap.Waiting, err)
		}
		// RemoveDetached leaves an attached customer alone.
		if ok, err := s.Attach(ctx, orgA, qSup, "c1", "n2"); !ok || err != nil {
			t.Fatalf("Attach = %v, %v", ok, err)
		}
		if ok, err := s.RemoveDetached(ctx, orgA, qSup, "c1"); ok || err != nil {
			t.Fatalf("RemoveDetached of an attached customer = %v, %v", ok, err)
		}
		got, _, _ = s.Lookup(ctx, orgA, qSup, "c1")
		if got.Node != "n2" || !got.Detached.IsZero() || got.Name != "Carl" || got.Attrs["a"] != "b" || !got.Since.Equal(at) {
			t.Fatalf("after Attach = %+v", got)
		}
		a := mustAssign(t, s, orgA, qSup)
		if a.Customer.Session != "c1" || a.Customer.Node != "n2" {
			t.Fatalf("assignment = %+v", a)
		}
		// Detached, then removed when its grace runs out.
		add(t, s, qSup, "c3", 0, nil)
		s.Detach(ctx, orgA, qSup, "c3", clk.Now())
		if ok, err := s.RemoveDetached(ctx, orgA, qSup, "c3"); !ok || err != nil {
			t.Fatalf("RemoveDetached = %v, %v", ok, err)
		}
		wantWaiting(t, s, orgA, qSup)
		if ok, _ := s.Attach(ctx, orgA, qSup, "c3", "n1"); ok {
			t.Fatal("Attach of a removed customer")
		}
		// A re-enqueued session starts attached.
		add(t, s, qSup, "c3", 0, nil)
		if got, _, _ := s.Lookup(ctx, orgA, qSup, "c3"); !got.Detached.IsZero() {
			t.Fatal("re-enqueued customer is detached")
		}
	})

	t.Run("AgentNodeName", func(t *testing.T) {
		s, _ := mk(t)
		a := queue.Agent{Org: orgA, Session: "ag", Queues: []string{qSup}, Node: "n3", Name: "Ann"}
		if err := s.SetAgent(ctx, a, true); err != nil {
			t.Fatal(err)
		}
		add(t, s, qSup, "c1", 0, nil)
		got := mustAssign(t, s, orgA, qSup)
		if got.AgentNode != "n3" || got.AgentName != "Ann" {
			t.Fatalf("assignment = %+v", got)
		}
		snap, _ := s.Snapshot(ctx, orgA, qSup, time.Time{})
		if len(snap.Agents) != 1 || snap.Agents[0].Node != "n3" {
			t.Fatalf("agents = %+v", snap.Agents)
		}
	})

}
