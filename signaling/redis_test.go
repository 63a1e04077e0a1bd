package signaling_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/internal/redistest"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// newRedisEnv is newEnv with the queue in a private redis-server.
func newRedisEnv(t *testing.T) (*env, *redistest.Server) {
	t.Helper()
	rs := redistest.Start(t)
	store, err := queue.DialRedis(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return newEnv(t, withStore(store)), rs
}

// TestCallOverRedis: with the queue in Redis, customers wait in order and
// an agent going available gets the oldest.
func TestCallOverRedis(t *testing.T) {
	e, _ := newRedisEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c1, _ := e.join(ctx, protocol.RoleCustomer, "c1")
	expectQueued(t, ctx, c1, 1, 1)
	c2, _ := e.join(ctx, protocol.RoleCustomer, "c2")
	expectQueued(t, ctx, c2, 2, 2)

	agent, _ := e.join(ctx, protocol.RoleAgent, "Ann")
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	if a := next(t, ctx, agent, protocol.TypeAssigned); a.Peer.Name != "c1" {
		t.Fatalf("agent got %q, want the oldest waiting customer c1", a.Peer.Name)
	}
	next(t, ctx, c1, protocol.TypeAssigned)
	expectQueued(t, ctx, c2, 1, 1)
}

// TestRedisDown: while Redis is down, a new join gets "unavailable" and
// its connection is closed with 1013 (try again later); once Redis is back,
// with no action on the server, joins succeed again, and the customer who
// was waiting all along, whose entry the restarted Redis lost, is back in
// the queue ahead of the newcomer and is the one the next agent gets.
func TestRedisDown(t *testing.T) {
	e, rs := newRedisEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	c1, _ := e.join(ctx, protocol.RoleCustomer, "c1")
	expectQueued(t, ctx, c1, 1, 1)

	rs.Stop()
	c := e.dial(ctx, testOrigin)
	_, err := c.Join(ctx, e.token("acme", protocol.RoleCustomer, "c2"))
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeUnavailable {
		t.Fatalf("join with Redis down: %v, want unavailable", err)
	}
	if _, err := c.Next(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("connection not closed after unavailable: %v", err)
	}

	// The restarted Redis keeps nothing (no persistence in tests).
	rs.Restart(t)
	var c3 *client.Client
	for {
		c3 = e.dial(ctx, testOrigin)
		_, err = c3.Join(ctx, e.token("acme", protocol.RoleCustomer, "c3"))
		if err == nil {
			break
		}
		if !errors.As(err, &pe) || pe.Code != protocol.CodeUnavailable {
			t.Fatalf("join after Redis restarted: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("joins still unavailable a minute after Redis restarted")
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Within a reconcile round c1 is back, at the front.
	for {
		m := next(t, ctx, c3, protocol.TypeQueued)
		if m.Position == 2 && m.Length == 2 {
			break
		}
	}
	agent, _ := e.join(ctx, protocol.RoleAgent, "Ann")
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	if a := next(t, ctx, agent, protocol.TypeAssigned); a.Peer.Name != "c1" {
		t.Fatalf("agent got %q, want c1, who waited through the restart", a.Peer.Name)
	}
}
