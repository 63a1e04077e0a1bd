package signaling_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/signaling"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// TestJoinRefused: every way a join can be refused gets its stable code and
// the connection is closed.
func TestJoinRefused(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	acme := e.orgs["acme"]
	mint := func(org *auth.Org, c auth.Claims, ttl time.Duration, now time.Time) string {
		tok, err := auth.Mint(org, c, ttl, now)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	customer := auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u1"}, Role: protocol.RoleCustomer}
	forger := &auth.Org{ID: "acme", APIKey: "acme-key", APISecret: []byte(strings.Repeat("x", 32)), Queues: acme.Queues}
	stranger := &auth.Org{ID: "initech", APIKey: "i-key", APISecret: []byte(strings.Repeat("i", 32)), Queues: acme.Queues}

	cases := []struct {
		name, origin, token string
		code                protocol.Code
	}{
		{"garbage token", testOrigin, "not.a.jwt", protocol.CodeBadToken},
		{"forged signature", testOrigin, mint(forger, customer, time.Hour, time.Now()), protocol.CodeBadToken},
		{"expired", testOrigin, mint(acme, customer, time.Minute, time.Now().Add(-time.Hour)), protocol.CodeTokenExpired},
		{"not yet valid", testOrigin, mint(acme, customer, time.Hour, time.Now().Add(time.Hour)), protocol.CodeTokenExpired},
		{"unknown org", testOrigin, mint(stranger, customer, time.Hour, time.Now()), protocol.CodeUnknownOrg},
		{"forbidden origin", "http://evil.test", e.token("acme", protocol.RoleCustomer, "x"), protocol.CodeForbiddenOrigin},
		{"another org's origin", "http://globex.test", e.token("acme", protocol.RoleCustomer, "x"), protocol.CodeForbiddenOrigin},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial(ctx, tc.origin)
			_, err := c.Join(ctx, tc.token)
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != tc.code {
				t.Fatalf("join error = %v, want code %s", err, tc.code)
			}
			if _, err := c.Next(ctx); !errors.Is(err, client.ErrClosed) {
				t.Fatalf("after refusal: %v, want the connection closed", err)
			}
		})
	}
	if got := counter(t, e.reg, "helpcaster_auth_failures_total", nil); got != float64(len(cases)) {
		t.Errorf("auth failures counted %v, want %d", got, len(cases))
	}
}

// TestBadInput: malformed, oversized, out-of-order and flooding messages
// get clear errors; the connection stays usable until the flood limit.
func TestBadInput(t *testing.T) {
	e := newEnv(t, withLimits(signaling.Limits{MaxMessageBytes: 4096, MessagesPerSec: 5, Burst: 10, MaxRejected: 20}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("message before join closes", func(t *testing.T) {
		c := e.dial(ctx, testOrigin)
		if err := c.Send(ctx, protocol.Message{ID: "r1", Type: protocol.TypeChat, Text: "hi"}); err != nil {
			t.Fatal(err)
		}
		m := next(t, ctx, c, protocol.TypeError)
		if m.Code != string(protocol.CodeInvalidState) || m.Ref != "r1" {
			t.Fatalf("got %+v", m)
		}
		if _, err := c.Next(ctx); !errors.Is(err, client.ErrClosed) {
			t.Fatalf("connection not closed: %v", err)
		}
	})

	agent, _ := e.join(ctx, protocol.RoleAgent, "Ann")
	next(t, ctx, agent, protocol.TypeAgentState)
	expectError := func(raw string, code protocol.Code, ref string) {
		t.Helper()
		if err := agent.SendRaw(ctx, []byte(raw)); err != nil {
			t.Fatal(err)
		}
		m := next(t, ctx, agent, protocol.TypeError)
		if m.Code != string(code) || m.Ref != ref || m.Message == "" {
			t.Fatalf("sent %.60q: got %+v, want code %s ref %q", raw, m, code, ref)
		}
	}
	expectError(`{"v":1,"type":"chat"`, protocol.CodeBadMessage, "")
	expectError(`{"v":1,"type":"teleport","id":"x1"}`, protocol.CodeBadMessage, "x1")
	expectError(`{"v":2,"type":"hangup","id":"x2"}`, protocol.CodeUnsupportedVersion, "x2")
	expectError(`{"v":1,"type":"offer","pc":"pub","sdp":"v=0 garbage","id":"x3"}`, protocol.CodeInvalidState, "x3")
	expectError(`{"v":1,"type":"chat","text":"`+strings.Repeat("a", 5000)+`"}`, protocol.CodeMessageTooLarge, "")
	expectError(`{"v":1,"type":"join","token":"t","id":"x4"}`, protocol.CodeInvalidState, "x4")
	expectError(`{"v":1,"type":"quality","quality":"low","id":"x5"}`, protocol.CodeInvalidState, "x5")

	// Still usable after all that.
	time.Sleep(time.Second) // let the rate limiter refill
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, agent, protocol.TypeAgentState, protocol.TypeError); m.State != protocol.AgentAvailable {
		t.Fatalf("after bad input: %+v", m)
	}

	// A flood gets rate_limited, then the connection is closed.
	limited := 0
	for i := 0; i < 100; i++ {
		if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAway}); err != nil {
			break // closed under us
		}
	}
	for {
		m, err := agent.Next(ctx)
		if errors.Is(err, client.ErrClosed) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Type == protocol.TypeError && m.Code == string(protocol.CodeRateLimited) {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("flood got no rate_limited errors")
	}
}

// TestQueueFull: the customer past the maximum length is refused.
func TestQueueFull(t *testing.T) {
	e := newEnv(t, withMaxQueue(2))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e.join(ctx, protocol.RoleCustomer, "c1")
	e.join(ctx, protocol.RoleCustomer, "c2")
	c := e.dial(ctx, testOrigin)
	_, err := c.Join(ctx, e.token("acme", protocol.RoleCustomer, "c3"))
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeQueueFull {
		t.Fatalf("third customer's join: %v, want queue_full", err)
	}
	if _, err := c.Next(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("connection not closed: %v", err)
	}
}

// TestOrgsIsolated: an agent of one organization never gets another's
// customer, even in a queue of the same name.
func TestOrgsIsolated(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	other := e.dial(ctx, "http://globex.test")
	if _, err := other.Join(ctx, e.token("globex", protocol.RoleAgent, "g-agent")); err != nil {
		t.Fatal(err)
	}
	if err := other.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, other, protocol.TypeAgentState); m.State != protocol.AgentAway {
		t.Fatalf("got %+v", m)
	}
	if m := next(t, ctx, other, protocol.TypeAgentState); m.State != protocol.AgentAvailable {
		t.Fatalf("got %+v", m)
	}
	cust, _ := e.join(ctx, protocol.RoleCustomer, "acme-customer")
	expectQueued(t, ctx, cust, 1, 1)

	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if m, err := other.Next(short, protocol.TypeAssigned); err == nil {
		t.Fatalf("globex agent was assigned acme's customer: %+v", m)
	}
	if m, err := cust.Next(short, protocol.TypeAssigned); err == nil {
		t.Fatalf("acme customer was assigned to globex's agent: %+v", m)
	}
}
