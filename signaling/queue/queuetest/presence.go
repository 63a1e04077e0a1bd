package queuetest

// Checks of the Presence role, with Assign to use agents up: the queues an
// agent serves, away and back, capacity, releases, which agent is idle
// longest, removal, and calls with a cancelled context.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/signaling/queue"
)

// runPresence runs the checks of agents, each on a fresh store from mk.
func runPresence(t *testing.T, mk func(t *testing.T) env) {
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
}
