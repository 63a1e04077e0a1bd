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
// its connection is closed with 1013 (try again later), nothing else breaks;
// once Redis is back, joins succeed again with no action on the server.
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

	// The server recovers by itself. The restarted Redis keeps nothing
	// (no persistence in tests), so c1's old entry is gone; a new join
	// works.
	rs.Restart(t)
	var w protocol.Message
	for {
		c3 := e.dial(ctx, testOrigin)
		w, err = c3.Join(ctx, e.token("acme", protocol.RoleCustomer, "c3"))
		if err == nil {
			expectQueued(t, ctx, c3, 1, 1)
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
	if w.Type != protocol.TypeWelcome {
		t.Fatalf("join after restart: %+v", w)
	}
}
