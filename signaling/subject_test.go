package signaling_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// expectReplaced waits for c to be told bye{replaced} and closed normally.
func expectReplaced(t *testing.T, ctx context.Context, who string, c *client.Client) {
	t.Helper()
	m, err := c.Next(ctx, protocol.TypeBye, protocol.TypeError)
	if err != nil {
		t.Fatalf("%s: no bye: %v", who, err)
	}
	if m.Type != protocol.TypeBye || m.Reason != "replaced" {
		t.Fatalf("%s was told %+v, want bye{replaced}", who, m)
	}
	waitFor(t, ctx, who+"'s connection closed", func() bool { return c.CloseCode() != 0 })
	if code := c.CloseCode(); code != int(websocket.StatusNormalClosure) {
		t.Errorf("%s closed with %d, want 1000", who, code)
	}
}

// expectInCall joins name's token on a new connection and expects in_call
// and the connection closed.
func expectInCall(t *testing.T, ctx context.Context, e *env, role, name string) {
	t.Helper()
	c := e.dial(ctx, testOrigin)
	_, err := c.Join(ctx, e.token("acme", role, name))
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != "in_call" {
		t.Fatalf("%s join while in a call: %v, want in_call", role, err)
	}
	waitFor(t, ctx, "the refused connection closed", func() bool { return c.CloseCode() != 0 })
}

// firstQueued checks the first queued message c gets: a connection that
// takes over a place is told that place at once.
func firstQueued(t *testing.T, ctx context.Context, c *client.Client, pos, length int) {
	t.Helper()
	if m := next(t, ctx, c, protocol.TypeQueued); m.Position != pos || m.Length != length {
		t.Fatalf("first queued: position %d of %d, want %d of %d", m.Position, m.Length, pos, length)
	}
}

func waitingIn(t *testing.T, s queue.Store) []string {
	t.Helper()
	w, err := s.Waiting(context.Background(), "acme", "support")
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestSecondJoinTakesPlace: the same customer token joined on a second and
// a third connection holds one place: each new connection takes over the
// place (and position) of the one before, which is told bye{replaced} and
// closed and does not come back when its grace would have run out.
func TestSecondJoinTakesPlace(t *testing.T) {
	store := queue.NewMemory(nil)
	e := newEnv(t, withStore(store), withGrace(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	_, _ = e.join(ctx, protocol.RoleCustomer, "Dora")
	first, w1 := e.join(ctx, protocol.RoleCustomer, "Carl")
	_, _ = e.join(ctx, protocol.RoleCustomer, "Eve")
	expectQueued(t, ctx, first, 2, 2)

	second, w2 := e.join(ctx, protocol.RoleCustomer, "Carl")
	expectReplaced(t, ctx, "the first connection", first)
	firstQueued(t, ctx, second, 2, 3)
	third, w3 := e.join(ctx, protocol.RoleCustomer, "Carl")
	expectReplaced(t, ctx, "the second connection", second)
	firstQueued(t, ctx, third, 2, 3)

	// Longer than the grace: the replaced connections' places stay given up.
	time.Sleep(1500 * time.Millisecond)
	w := waitingIn(t, store)
	if len(w) != 3 || w[1] != w3.Session || slices.Contains(w, w1.Session) || slices.Contains(w, w2.Session) {
		t.Fatalf("waiting %v: want 3, Carl's third connection %s second", w, w3.Session)
	}
	if n := counter(t, e.reg, "helpcaster_queue_abandoned_total", nil); n != 0 {
		t.Errorf("abandoned = %v: a place taken over is not abandoned", n)
	}

	// The place is served as such: after Dora, the agent gets Carl.
	agent, _ := e.join(ctx, protocol.RoleAgent, "Ann")
	available(t, ctx, agent)
	assignedTo(t, ctx, agent, "Dora")
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
		t.Fatal(err)
	}
	assignedTo(t, ctx, agent, "Carl")
	next(t, ctx, third, protocol.TypeAssigned)

	// In a call, the subject's join is refused; the call goes on.
	expectInCall(t, ctx, e, protocol.RoleCustomer, "Carl")
	chat(t, ctx, third, agent, "still here")
	if n := counter(t, e.reg, "helpcaster_signaling_errors_total", map[string]string{"code": "in_call"}); n != 1 {
		t.Errorf("in_call counted %v times, want 1", n)
	}
}

// TestSecondAgentJoin: the same agent token on a second connection is one
// agent in the pool: the first connection is told bye{replaced} and
// closed, the new one starts away; while the agent is in a call the second
// join is refused with in_call.
func TestSecondAgentJoin(t *testing.T) {
	store := queue.NewMemory(nil)
	e := newEnv(t, withStore(store))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	agents := func() []queue.AgentState {
		snap, err := store.Snapshot(ctx, "acme", "support", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return snap.Agents
	}

	first, _ := e.join(ctx, protocol.RoleAgent, "Ann")
	available(t, ctx, first)
	waitFor(t, ctx, "Ann available", func() bool { a := agents(); return len(a) == 1 && a[0].Available })
	second, w2 := e.join(ctx, protocol.RoleAgent, "Ann")
	expectReplaced(t, ctx, "the first agent connection", first)
	if m := next(t, ctx, second, protocol.TypeAgentState); m.State != protocol.AgentAway {
		t.Fatalf("the new connection starts %q, want away", m.State)
	}
	waitFor(t, ctx, "the first connection's session gone", func() bool {
		return counter(t, e.reg, "helpcaster_signaling_connections", nil) == 1
	})
	if a := agents(); len(a) != 1 || a[0].Session != w2.Session || a[0].Available {
		t.Fatalf("agents in the pool %+v, want only the new connection, away", a)
	}

	available(t, ctx, second)
	cust, _ := e.join(ctx, protocol.RoleCustomer, "Carl")
	next(t, ctx, cust, protocol.TypeAssigned)
	next(t, ctx, second, protocol.TypeAssigned)
	expectInCall(t, ctx, e, protocol.RoleAgent, "Ann")
	chat(t, ctx, cust, second, "hello")
	if a := agents(); len(a) != 1 || a[0].Session != w2.Session || a[0].Active != 1 {
		t.Fatalf("agents in the pool %+v, want the one in the call", a)
	}
}

// TestReloadKeepsOnePlace: a page reloaded closes its connection and joins
// again with the same token at once, before or after the server has
// noticed: the new connection has the old place, and only it, also once
// the resume grace of the old one would have run out.
func TestReloadKeepsOnePlace(t *testing.T) {
	store := queue.NewMemory(nil)
	e := newEnv(t, withStore(store), withGrace(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	_, _ = e.join(ctx, protocol.RoleCustomer, "Dora")
	old, _ := e.join(ctx, protocol.RoleCustomer, "Carl")
	expectQueued(t, ctx, old, 2, 2)
	for i := range 5 {
		if i%2 == 0 {
			old.Close()
		} else {
			old.Drop()
		}
		c, w := e.join(ctx, protocol.RoleCustomer, "Carl")
		firstQueued(t, ctx, c, 2, 2)
		if got := waitingIn(t, store); len(got) != 2 || got[1] != w.Session {
			t.Fatalf("reload %d: waiting %v, want Dora and %s", i, got, w.Session)
		}
		old = c
	}
	time.Sleep(1500 * time.Millisecond) // past the grace
	if got := waitingIn(t, store); len(got) != 2 {
		t.Fatalf("after the grace: waiting %v, want 2", got)
	}
	if n := counter(t, e.reg, "helpcaster_queue_abandoned_total", nil); n != 0 {
		t.Errorf("abandoned = %v, want 0", n)
	}
}
