package signaling_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// drainEnv is a server with a call in progress (Carl with Ann), a customer
// waiting (Dora) and an agent away (Bob).
func drainEnv(t *testing.T, ctx context.Context) (e *env, cust, agent, waiting, idle *client.Client) {
	t.Helper()
	e = newEnv(t)
	agent, _ = e.join(ctx, protocol.RoleAgent, "Ann")
	available(t, ctx, agent)
	cust, _ = e.join(ctx, protocol.RoleCustomer, "Carl")
	next(t, ctx, agent, protocol.TypeAssigned)
	next(t, ctx, cust, protocol.TypeAssigned)
	waiting, _ = e.join(ctx, protocol.RoleCustomer, "Dora")
	expectQueued(t, ctx, waiting, 1, 1)
	idle, _ = e.join(ctx, protocol.RoleAgent, "Bob")
	next(t, ctx, idle, protocol.TypeAgentState)
	return e, cust, agent, waiting, idle
}

// chat sends text from one side of a call and waits for the other to get it.
func chat(t *testing.T, ctx context.Context, from, to *client.Client, text string) {
	t.Helper()
	if err := from.Send(ctx, protocol.Message{Type: protocol.TypeChat, Text: text}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, to, protocol.TypeChat); m.Text != text {
		t.Fatalf("chat %q, want %q", m.Text, text)
	}
}

// TestDrain: a draining server is not ready and refuses connections; the
// waiting customer and the idle agent get bye at once; the call goes on
// (chat both ways) and the agent in it cannot go available; when the call
// is hung up the customer is closed as after any call, the agent gets bye,
// and Drain returns.
func TestDrain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, cust, agent, waiting, idle := drainEnv(t, ctx)

	drained := make(chan error, 1)
	go func() { drained <- e.srv.Drain(ctx) }()
	for _, c := range []*client.Client{waiting, idle} {
		if m := next(t, ctx, c, protocol.TypeBye); m.Reason != protocol.ReasonShutdown {
			t.Fatalf("bye %+v, want reason shutdown", m)
		}
		if _, err := c.Next(ctx); !errors.Is(err, client.ErrClosed) {
			t.Fatalf("after bye: %v, want the connection closed", err)
		}
	}
	if e.srv.Ready() || !e.srv.Draining() {
		t.Fatalf("draining server: Ready %v, Draining %v", e.srv.Ready(), e.srv.Draining())
	}
	if _, err := client.Dial(ctx, client.Options{URL: e.wsURL, Origin: testOrigin, LoopbackOnly: true}); err == nil {
		t.Fatal("a draining server took a new connection")
	}
	if got := counter(t, e.reg, "helpcaster_draining", nil); got != 1 {
		t.Errorf("helpcaster_draining = %v, want 1", got)
	}

	chat(t, ctx, cust, agent, "still there?")
	chat(t, ctx, agent, cust, "yes")
	if err := agent.Send(ctx, protocol.Message{ID: "a1", Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, agent, protocol.TypeError); m.Code != string(protocol.CodeInvalidState) || m.Ref != "a1" {
		t.Fatalf("available while draining: %+v, want invalid_state", m)
	}
	select {
	case err := <-drained:
		t.Fatalf("drain returned with a call in progress: %v", err)
	default:
	}

	if err := cust.Send(ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, cust, protocol.TypeEnded, protocol.TypeBye); m.Type != protocol.TypeEnded || m.Reason != protocol.ReasonHangup {
		t.Fatalf("customer after hanging up: %+v, want ended hangup", m)
	}
	if m, err := cust.Next(ctx, protocol.TypeBye); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("customer after its call: %+v %v, want its connection closed without bye", m, err)
	}
	if m := next(t, ctx, agent, protocol.TypeEnded); m.Reason != protocol.ReasonPeerLeft {
		t.Fatalf("agent ended %+v, want peer_left", m)
	}
	if m := next(t, ctx, agent, protocol.TypeBye); m.Reason != protocol.ReasonShutdown {
		t.Fatalf("agent bye %+v, want shutdown", m)
	}
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	if got := counter(t, e.reg, "helpcaster_calls_ended_total", map[string]string{"reason": protocol.ReasonHangup}); got != 1 {
		t.Errorf("calls ended by hangup = %v, want 1", got)
	}
}

// TestDrainCut: a drain whose context ends returns its error and leaves
// the call alone; Shutdown then ends it as always (ended, then bye).
func TestDrainCut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, cust, agent, waiting, _ := drainEnv(t, ctx)

	dctx, dcancel := context.WithCancel(ctx)
	drained := make(chan error, 1)
	go func() { drained <- e.srv.Drain(dctx) }()
	next(t, ctx, waiting, protocol.TypeBye) // the drain has begun
	dcancel()
	if err := <-drained; !errors.Is(err, context.Canceled) {
		t.Fatalf("cut drain: %v, want context.Canceled", err)
	}
	chat(t, ctx, cust, agent, "still on")

	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := e.srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{cust, agent} {
		if m := next(t, ctx, c, protocol.TypeEnded); m.Reason != protocol.ReasonShutdown {
			t.Fatalf("ended %+v, want shutdown", m)
		}
		if m := next(t, ctx, c, protocol.TypeBye); m.Reason != protocol.ReasonShutdown {
			t.Fatalf("bye %+v, want shutdown", m)
		}
	}
	// Drain after Shutdown has nothing to do.
	if err := e.srv.Drain(ctx); err != nil {
		t.Fatalf("drain after shutdown: %v", err)
	}
}
