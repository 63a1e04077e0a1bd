package signaling_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// endedAwayCall is a call just placed: its agent was told assigned; its
// customer has read nothing past its welcome.
type endedAwayCall struct {
	e           *env
	ctx         context.Context
	agent, cust *client.Client
	welcome     protocol.Message // the customer's
	room        string
}

func placeCall(t *testing.T, opts ...envOption) *endedAwayCall {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	c := &endedAwayCall{e: newEnv(t, opts...), ctx: ctx}
	c.agent, _ = c.e.join(ctx, protocol.RoleAgent, "Ann")
	available(t, ctx, c.agent)
	c.cust, c.welcome = c.e.join(ctx, protocol.RoleCustomer, "Carl")
	c.room = next(t, ctx, c.agent, protocol.TypeAssigned).Room
	return c
}

// agentHangsUp hangs the call up from the agent's side and waits for its
// ended.
func (c *endedAwayCall) agentHangsUp(t *testing.T) {
	t.Helper()
	if err := c.agent.Send(c.ctx, protocol.Message{Type: protocol.TypeHangup, Room: c.room}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, c.ctx, c.agent, protocol.TypeEnded); m.Room != c.room {
		t.Fatalf("agent's ended = %+v, want room %s", m, c.room)
	}
}

// resume resumes the customer on a new connection.
func (c *endedAwayCall) resume() (*client.Client, protocol.Message, error) {
	again := c.e.dial(c.ctx, testOrigin)
	w, err := again.Resume(c.ctx, c.welcome.Resume)
	return again, w, err
}

func (c *endedAwayCall) badResume(t *testing.T) {
	t.Helper()
	var pe *protocol.Error
	if _, _, err := c.resume(); !errors.As(err, &pe) || pe.Code != protocol.CodeBadResume {
		t.Fatalf("resume: %v, want bad_resume", err)
	}
}

// TestResumeAfterCallEndedAway: a customer whose connection is lost with
// its assigned (and perhaps its ended) unread, and whose call its agent
// then hangs up, learns on resume that it had that call and how it ended:
// welcome, then ended with the call's room, then close. (It was answered
// bad_resume, and took itself for a customer whose place was lost: the
// agent had a call with a customer that never learned of it, the phantom
// room of bench's exactly-once accounting.) Once the grace is over the
// token no longer works.
func TestResumeAfterCallEndedAway(t *testing.T) {
	cases := map[string]struct {
		// hangUpFirst: the agent hangs up before the server has seen the
		// customer's connection end, so the ended is sent to it and lost
		// with it; else after.
		hangUpFirst bool
	}{
		"call ended after the connection was lost": {},
		"ended lost with the connection":           {hangUpFirst: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := placeCall(t, withGrace(time.Minute))
			if tc.hangUpFirst {
				c.agentHangsUp(t)
			}
			c.cust.Drop()
			waitFor(t, c.ctx, "the server to see the customer's connection end", func() bool {
				return counter(t, c.e.reg, "helpcaster_signaling_connections", nil) == 1
			})
			if !tc.hangUpFirst {
				c.agentHangsUp(t)
			}

			again, w, err := c.resume()
			if err != nil {
				t.Fatalf("resume after the call ended while away: %v, want welcome then ended", err)
			}
			if w.Session != c.welcome.Session {
				t.Errorf("welcome after resume names session %q, want %q", w.Session, c.welcome.Session)
			}
			m := next(t, c.ctx, again)
			if m.Type != protocol.TypeEnded || m.Room != c.room || m.Reason != protocol.ReasonPeerLeft {
				t.Fatalf("after welcome: %+v, want ended for room %s, peer_left", m, c.room)
			}
			if _, err := again.Next(c.ctx); !errors.Is(err, client.ErrClosed) || again.CloseCode() != 1000 {
				t.Fatalf("after ended: %v (close %d), want the connection closed with 1000", err, again.CloseCode())
			}
		})
	}

	t.Run("after the grace", func(t *testing.T) {
		grace := time.Second
		store := queue.NewMemory(nil)
		c := placeCall(t, withGrace(grace), withStore(store))
		c.agentHangsUp(t)
		ended := time.Now()
		waitFor(t, c.ctx, "the ended call's record to be forgotten", func() bool {
			_, ok, err := store.LookupCall(c.ctx, "acme", c.welcome.Session)
			return err == nil && !ok
		})
		if d := time.Since(ended); d < grace/2 {
			t.Errorf("the ended call's record was forgotten %v after the end, want about the grace (%v)", d, grace)
		}
		c.badResume(t)
	})

	// The ended call's record, kept for a resume, does not make the
	// customer "in a call": joining again with its token (a page reloaded
	// rather than resumed) takes a new place, not in_call.
	t.Run("join again after the call ended away", func(t *testing.T) {
		c := placeCall(t, withGrace(time.Minute))
		c.cust.Drop()
		waitFor(t, c.ctx, "the server to see the customer's connection end", func() bool {
			return counter(t, c.e.reg, "helpcaster_signaling_connections", nil) == 1
		})
		c.agentHangsUp(t)
		again, _ := c.e.join(c.ctx, protocol.RoleCustomer, "Carl")
		if m := next(t, c.ctx, again); m.Type != protocol.TypeQueued {
			t.Fatalf("after joining again: %+v, want queued", m)
		}
		// And the agent, available again, takes it.
		available(t, c.ctx, c.agent)
		next(t, c.ctx, again, protocol.TypeAssigned)
	})

	// A customer whose own grace ran out ended the call itself: nothing
	// is kept for it.
	t.Run("grace over in the call", func(t *testing.T) {
		c := placeCall(t, withGrace(time.Second))
		c.cust.Drop()
		if m := next(t, c.ctx, c.agent, protocol.TypeEnded); m.Reason != protocol.ReasonPeerLeft {
			t.Fatalf("agent's ended = %+v, want peer_left when the customer's grace ran out", m)
		}
		c.badResume(t)
	})
}
