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
			e := newEnv(t, withGrace(time.Minute))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			agent, _ := e.join(ctx, protocol.RoleAgent, "Ann")
			available(t, ctx, agent)
			// The customer never reads past its welcome: what follows is lost
			// with its connection.
			cust, w := e.join(ctx, protocol.RoleCustomer, "Carl")
			room := next(t, ctx, agent, protocol.TypeAssigned).Room
			hangUp := func() {
				if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeHangup, Room: room}); err != nil {
					t.Fatal(err)
				}
				if m := next(t, ctx, agent, protocol.TypeEnded); m.Room != room {
					t.Fatalf("agent's ended = %+v, want room %s", m, room)
				}
			}
			if tc.hangUpFirst {
				hangUp()
			}
			cust.Drop()
			waitFor(t, ctx, "the server to see the customer's connection end", func() bool {
				return counter(t, e.reg, "helpcaster_signaling_connections", nil) == 1
			})
			if !tc.hangUpFirst {
				hangUp()
			}

			again := e.dial(ctx, testOrigin)
			w2, err := again.Resume(ctx, w.Resume)
			if err != nil {
				t.Fatalf("resume after the call ended while away: %v, want welcome then ended", err)
			}
			if w2.Session != w.Session {
				t.Errorf("welcome after resume names session %q, want %q", w2.Session, w.Session)
			}
			m := next(t, ctx, again)
			if m.Type != protocol.TypeEnded || m.Room != room || m.Reason != protocol.ReasonPeerLeft {
				t.Fatalf("after welcome: %+v, want ended for room %s, peer_left", m, room)
			}
			if _, err := again.Next(ctx); !errors.Is(err, client.ErrClosed) || again.CloseCode() != 1000 {
				t.Fatalf("after ended: %v (close %d), want the connection closed with 1000", err, again.CloseCode())
			}
		})
	}

	t.Run("after the grace", func(t *testing.T) {
		grace := time.Second
		store := queue.NewMemory(nil)
		e := newEnv(t, withGrace(grace), withStore(store))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		agent, _ := e.join(ctx, protocol.RoleAgent, "Ann")
		available(t, ctx, agent)
		cust, w := e.join(ctx, protocol.RoleCustomer, "Carl")
		room := next(t, ctx, agent, protocol.TypeAssigned).Room
		if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeHangup, Room: room}); err != nil {
			t.Fatal(err)
		}
		next(t, ctx, cust, protocol.TypeEnded)
		ended := time.Now()
		waitFor(t, ctx, "the ended call's record to be forgotten", func() bool {
			_, ok, err := store.LookupCall(ctx, "acme", w.Session)
			return err == nil && !ok
		})
		if d := time.Since(ended); d < grace/2 {
			t.Errorf("the ended call's record was forgotten %v after the end, want about the grace (%v)", d, grace)
		}
		badResume(t, ctx, e, w.Resume)
	})

	// A customer whose own grace ran out ended the call itself: nothing
	// is kept for it.
	t.Run("grace over in the call", func(t *testing.T) {
		e := newEnv(t, withGrace(time.Second))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		agent, _ := e.join(ctx, protocol.RoleAgent, "Ann")
		available(t, ctx, agent)
		cust, w := e.join(ctx, protocol.RoleCustomer, "Carl")
		next(t, ctx, cust, protocol.TypeAssigned)
		cust.Drop()
		if m := next(t, ctx, agent, protocol.TypeEnded); m.Reason != protocol.ReasonPeerLeft {
			t.Fatalf("agent's ended = %+v, want peer_left when the customer's grace ran out", m)
		}
		badResume(t, ctx, e, w.Resume)
	})
}

// badResume resumes with token and expects bad_resume.
func badResume(t *testing.T, ctx context.Context, e *env, token string) {
	t.Helper()
	again := e.dial(ctx, testOrigin)
	var pe *protocol.Error
	if _, err := again.Resume(ctx, token); !errors.As(err, &pe) || pe.Code != protocol.CodeBadResume {
		t.Fatalf("resume: %v, want bad_resume", err)
	}
}
