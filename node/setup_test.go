package node

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/internal/redistest"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// TestInstantHangupsAcrossNodes: customers on one node, agents on another,
// rooms on either; each agent hangs up the moment it is assigned, so the
// call's end races its setup across three nodes' worth of relays. Both
// sides are counted: every customer is assigned exactly once and then told
// its call ended; every room an agent was given is a room a customer was
// given (no phantom) and ends for the agent too; and the agents, always
// available, keep taking customers until the last is placed (none lost from
// the pool). Before the two-phase setup (signaling/setup.go), customers
// were left waiting forever and agents dropped from the pool.
func TestInstantHangupsAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	dir := testOrgs(t)
	nodes := startNodes(t, rs, dir, "n1", "n2")
	instantHangups(t, dir, nodes[0].ws, nodes[1].ws)
}

// TestInstantHangupsOneNode is the same on a single node, where both sides
// used to be told one after the other: an agent's instant hang-up could
// reach the customer as ended before its assigned.
func TestInstantHangupsOneNode(t *testing.T) {
	rs := redistest.Start(t)
	dir := testOrgs(t)
	nodes := startNodes(t, rs, dir, "n1")
	instantHangups(t, dir, nodes[0].ws, nodes[0].ws)
}

// instantHangups runs customers on custWS against agents on agentWS that
// hang up as soon as they are assigned, and checks both sides' counts.
func instantHangups(t *testing.T, dir *auth.Directory, custWS, agentWS string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	org, _ := dir.Org("acme")
	dial := func(ws, role, name string) (*client.Client, error) {
		tok, err := auth.Mint(org, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u-" + name}, Role: role, Name: name},
			time.Hour, time.Now())
		if err != nil {
			return nil, err
		}
		c, err := client.Dial(ctx, client.Options{URL: ws, LoopbackOnly: true, NoMedia: true})
		if err != nil {
			return nil, err
		}
		if _, err := c.Join(ctx, tok); err != nil {
			c.Close()
			return nil, fmt.Errorf("%s join: %w", name, err)
		}
		return c, nil
	}

	const agents, customers = 3, 40
	var mu sync.Mutex
	agentRooms := map[string]int{} // room -> assigned count over all agents
	agentEnded := map[string]int{}
	var wg sync.WaitGroup
	agentCtx, stopAgents := context.WithCancel(ctx)
	defer stopAgents()
	for i := range agents {
		a, err := dial(agentWS, protocol.RoleAgent, fmt.Sprintf("agent%d", i))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if err := a.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for {
				m, err := a.Next(agentCtx, protocol.TypeAssigned, protocol.TypeEnded)
				if err != nil {
					return
				}
				mu.Lock()
				if m.Type == protocol.TypeAssigned {
					agentRooms[m.Room]++
				} else {
					agentEnded[m.Room]++
				}
				mu.Unlock()
				if m.Type == protocol.TypeAssigned {
					_ = a.Send(agentCtx, protocol.Message{Type: protocol.TypeHangup, Room: m.Room})
				}
			}
		})
	}

	type outcome struct {
		assigned []string // rooms, in order
		ended    string   // the room of the first ended
		err      error
	}
	results := make([]outcome, customers)
	var cwg sync.WaitGroup
	for i := range customers {
		time.Sleep(20 * time.Millisecond)
		cwg.Go(func() {
			r := &results[i]
			c, err := dial(custWS, protocol.RoleCustomer, fmt.Sprintf("cust%d", i))
			if err != nil {
				r.err = err
				return
			}
			defer c.Close()
			for r.ended == "" {
				m, err := c.Next(ctx, protocol.TypeAssigned, protocol.TypeEnded, protocol.TypeError, protocol.TypeBye)
				switch {
				case err != nil:
					r.err = fmt.Errorf("after %d assigned: %w", len(r.assigned), err)
					return
				case m.Type == protocol.TypeAssigned:
					r.assigned = append(r.assigned, m.Room)
				case m.Type == protocol.TypeEnded:
					r.ended = m.Room
					if r.ended == "" {
						r.ended = "(none)"
					}
				default:
					r.err = fmt.Errorf("got %s %s %s", m.Type, m.Code, m.Reason)
					return
				}
			}
		})
	}
	cwg.Wait()
	// The agents' ends may trail the customers' by a relay.
	want := map[string]bool{}
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("customer %d: %v", i, r.err)
		case len(r.assigned) != 1 || r.ended != r.assigned[0]:
			t.Errorf("customer %d: assigned %v, then ended %q; want one room, then its end", i, r.assigned, r.ended)
		default:
			want[r.assigned[0]] = true
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		ok := len(agentEnded) == len(agentRooms)
		mu.Unlock()
		if ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopAgents()
	wg.Wait()
	for room, n := range agentRooms {
		switch {
		case !want[room]:
			t.Errorf("room %s: given to an agent %d time(s), to no customer (a phantom)", room, n)
		case n != 1:
			t.Errorf("room %s: given to agents %d times", room, n)
		case agentEnded[room] != 1:
			t.Errorf("room %s: the agent was told it ended %d times", room, agentEnded[room])
		}
	}
	if len(agentRooms) != len(want) {
		t.Errorf("agents got %d rooms, customers %d", len(agentRooms), len(want))
	}
}

// TestDetachedHeadDoesNotBlock: more customers than Assign scans join and
// drop their connections (their places kept, detached, for the resume
// grace); customers who join after them are still placed, all of them, in
// the order they joined.
func TestDetachedHeadDoesNotBlock(t *testing.T) {
	rs := redistest.Start(t)
	dir, err := auth.NewDirectory([]auth.Org{{ID: "acme", APIKey: "acme-key", APISecret: []byte(strings.Repeat("s", 32)),
		Queues: []auth.Queue{{Name: "support", MaxLength: 1000}}}})
	if err != nil {
		t.Fatal(err)
	}
	nodes := startNodes(t, rs, dir, "n1")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	org, _ := dir.Org("acme")
	dial := func(role, name string) *client.Client {
		tok, err := auth.Mint(org, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u-" + name}, Role: role, Name: name},
			time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(ctx, client.Options{URL: nodes[0].ws, LoopbackOnly: true, NoMedia: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Join(ctx, tok); err != nil {
			t.Fatalf("%s join: %v", name, err)
		}
		return c
	}
	const gone, later = queue.ScanLimit + 20, 10
	for i := range gone {
		dial(protocol.RoleCustomer, fmt.Sprintf("gone%d", i)).Close()
	}
	var custs []*client.Client
	for i := range later {
		c := dial(protocol.RoleCustomer, fmt.Sprintf("later%d", i))
		defer c.Close()
		custs = append(custs, c)
	}
	agent := dial(protocol.RoleAgent, "agent")
	defer agent.Close()
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	for i, c := range custs {
		a := nextMsg(t, ctx, agent, protocol.TypeAssigned)
		m := nextMsg(t, ctx, c, protocol.TypeAssigned)
		if m.Room != a.Room {
			t.Fatalf("customer %d got room %s, the agent's next was %s: served out of order", i, m.Room, a.Room)
		}
		if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeHangup, Room: a.Room}); err != nil {
			t.Fatal(err)
		}
		nextMsg(t, ctx, c, protocol.TypeEnded)
	}
}
