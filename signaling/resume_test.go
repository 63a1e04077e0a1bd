package signaling_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// TestResume: a customer whose connection drops keeps its place, is not
// assigned while away, and takes its place back with its resume token; a
// forged or expired token is refused.
func TestResume(t *testing.T) {
	e := newEnv(t, withGrace(2*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first, w1 := e.join(ctx, protocol.RoleCustomer, "first")
	second, w2 := e.join(ctx, protocol.RoleCustomer, "second")
	third, w3 := e.join(ctx, protocol.RoleCustomer, "third")
	if w1.Resume == "" || w2.Resume == "" || w1.Resume == w2.Resume || !strings.HasPrefix(w1.Resume, "acme.") {
		t.Fatalf("resume tokens %q, %q", w1.Resume, w2.Resume)
	}
	waitQueued(t, ctx, third, 3)

	// first drops; an agent meanwhile takes second, not the detached first.
	// The agent comes once the server has seen first go.
	first.Close()
	waitFor(t, ctx, "the server to see first's connection end", func() bool {
		return counter(t, e.reg, "helpcaster_signaling_connections", nil) == 2
	})
	agent, _ := e.join(ctx, protocol.RoleAgent, "Ann")
	available(t, ctx, agent)
	assignedTo(t, ctx, agent, "second")
	next(t, ctx, second, protocol.TypeAssigned)

	// first comes back on a new connection: same session, first in line.
	again := e.dial(ctx, testOrigin)
	w, err := again.Resume(ctx, w1.Resume)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if w.Session != w1.Session || w.Role != protocol.RoleCustomer || w.Queue != "support" || w.Resume != w1.Resume {
		t.Fatalf("welcome after resume = %+v", w)
	}
	if m := next(t, ctx, again, protocol.TypeQueued); m.Position != 1 || m.Length != 2 {
		t.Fatalf("queued after resume = %+v, want 1 of 2", m)
	}
	waitQueued(t, ctx, third, 2)

	// A resumed session cannot be resumed with a forged secret, by another
	// org's token, or after joining.
	for _, tok := range []string{
		w1.Resume[:len(w1.Resume)-4] + "AAAA",
		"globex" + strings.TrimPrefix(w1.Resume, "acme"),
		"acme.nobody.0123456789abcdef0123",
		"not-a-token",
	} {
		c := e.dial(ctx, testOrigin)
		_, err := c.Resume(ctx, tok)
		var pe *protocol.Error
		if !errors.As(err, &pe) || (pe.Code != protocol.CodeBadResume && pe.Code != protocol.CodeForbiddenOrigin) {
			t.Errorf("resume with %q: %v, want bad_resume", tok, err)
		}
	}
	if err := again.Send(ctx, protocol.Message{ID: "r", Type: protocol.TypeResume, Token: w1.Resume}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, again, protocol.TypeError); m.Code != string(protocol.CodeInvalidState) {
		t.Fatalf("resume after joining: %+v", m)
	}

	// third drops and does not come back: after the grace it is gone and
	// counted as abandoned; its token no longer works.
	third.Close()
	deadline := time.Now().Add(10 * time.Second)
	for counter(t, e.reg, "helpcaster_queue_abandoned_total", map[string]string{"org": "acme"}) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("third was not counted as abandoned after its grace")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m := next(t, ctx, again, protocol.TypeQueued); m.Length != 1 {
		t.Fatalf("queued after third's grace = %+v, want length 1", m)
	}
	late := e.dial(ctx, testOrigin)
	var pe *protocol.Error
	if _, err := late.Resume(ctx, w3.Resume); !errors.As(err, &pe) || pe.Code != protocol.CodeBadResume {
		t.Fatalf("resume after the grace: %v, want bad_resume", err)
	}
}

// TestResumeIntoCallTwice: a customer in a call resumes on two new
// connections at once. The two rebinds into the call run one after the
// other: the last connection holds the call and gets the agent's media
// and chat, the other is closed, and the agent stays in the call.
func TestResumeIntoCallTwice(t *testing.T) {
	e := newEnv(t, withGrace(5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	agent, _ := e.join(ctx, protocol.RoleAgent, "Ann")
	available(t, ctx, agent)
	cust, w := e.join(ctx, protocol.RoleCustomer, "Carl")
	next(t, ctx, cust, protocol.TypeAssigned)
	next(t, ctx, agent, protocol.TypeAssigned)
	if err := agent.PublishFiles(ctx, sample("sample.ivf"), sample("sample.ogg")); err != nil {
		t.Fatal(err)
	}
	waitMedia(t, ctx, "customer", cust)

	conns := []*client.Client{e.dial(ctx, testOrigin), e.dial(ctx, testOrigin)}
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Resume(ctx, w.Resume)
		}()
	}
	wg.Wait()
	if errs[0] != nil && errs[1] != nil {
		t.Fatalf("both resumes failed: %v; %v", errs[0], errs[1])
	}

	// Which connection ends, within a few seconds, tells the winner.
	closed := make([]bool, len(conns))
	drainCtx, stop := context.WithTimeout(ctx, 4*time.Second)
	defer stop()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := c.Next(drainCtx); err != nil {
					closed[i] = errors.Is(err, client.ErrClosed)
					return
				}
			}
		}()
	}
	wg.Wait()
	if closed[0] == closed[1] {
		t.Fatalf("connections closed after two resumes: %v, want exactly one", closed)
	}
	winner := conns[0]
	if closed[0] {
		winner = conns[1]
	}
	for {
		_, err := cust.Next(ctx)
		if errors.Is(err, client.ErrClosed) {
			break
		}
		if err != nil {
			t.Fatalf("the original connection after the resumes: %v, want closed", err)
		}
	}

	waitMedia(t, ctx, "resumed customer", winner)
	if err := winner.Send(ctx, protocol.Message{Type: protocol.TypeChat, Text: "still there?"}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, agent, protocol.TypeChat); m.Text != "still there?" {
		t.Fatalf("agent got chat %+v", m)
	}
}
