package signaling_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/routing"
)

// joinWith joins acme with claims c (role, name, queue, attrs, skills).
func (e *env) joinWith(ctx context.Context, c auth.Claims) *client.Client {
	e.t.Helper()
	c.Subject = "user-" + c.Name
	tok, err := auth.Mint(e.orgs["acme"], c, time.Hour, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	cl := e.dial(ctx, testOrigin)
	if _, err := cl.Join(ctx, tok); err != nil {
		e.t.Fatalf("%s join: %v", c.Name, err)
	}
	return cl
}

func available(t *testing.T, ctx context.Context, agent *client.Client) {
	t.Helper()
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
}

// waitQueued waits for a queued message saying position pos.
func waitQueued(t *testing.T, ctx context.Context, c *client.Client, pos int) protocol.Message {
	t.Helper()
	for {
		m := next(t, ctx, c, protocol.TypeQueued)
		if m.Position == pos {
			return m
		}
	}
}

func assignedTo(t *testing.T, ctx context.Context, c *client.Client, peer string) protocol.Message {
	t.Helper()
	m := next(t, ctx, c, protocol.TypeAssigned)
	if m.Peer == nil || m.Peer.Name != peer {
		t.Fatalf("assigned to %+v, want %s", m.Peer, peer)
	}
	return m
}

// TestRouting routes customers by language to agents with that skill, gold
// customers first, and widens the match after a wait.
func TestRouting(t *testing.T) {
	policy := &routing.Policy{
		Requirements: []routing.Requirement{{Attr: "language", Steps: []routing.Step{{Level: 2}, {After: 2 * time.Second, Level: 0}}}},
		Priorities:   []routing.PriorityRule{{Attr: "tier", Value: "gold", Priority: 10}},
	}
	e := newEnv(t, withQueues(auth.Queue{Name: "support", Policy: policy}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	de := e.joinWith(ctx, auth.Claims{Role: protocol.RoleCustomer, Name: "de", Attrs: map[string]string{"language": "de"}})
	waitQueued(t, ctx, de, 1)
	en := e.joinWith(ctx, auth.Claims{Role: protocol.RoleCustomer, Name: "en", Attrs: map[string]string{"language": "en"}})
	waitQueued(t, ctx, en, 2)
	gold := e.joinWith(ctx, auth.Claims{Role: protocol.RoleCustomer, Name: "gold", Attrs: map[string]string{"language": "en", "tier": "gold"}})
	// Gold goes first; the others are told they moved back.
	if m := waitQueued(t, ctx, gold, 1); m.Length != 3 {
		t.Fatalf("gold queued %+v, want position 1 of 3", m)
	}
	waitQueued(t, ctx, de, 2)
	waitQueued(t, ctx, en, 3)

	// An English agent takes gold (en), not de who waited longer.
	enAgent := e.joinWith(ctx, auth.Claims{Role: protocol.RoleAgent, Name: "en-agent", Skills: routing.Skills{"language": {"en": 3}}})
	available(t, ctx, enAgent)
	assignedTo(t, ctx, gold, "en-agent")
	assignedTo(t, ctx, enAgent, "gold")
	// A German agent below the level takes nobody at first; after 2 s the
	// match widens to any agent and de (first in line) gets it.
	weak := e.joinWith(ctx, auth.Claims{Role: protocol.RoleAgent, Name: "weak", Skills: routing.Skills{"language": {"de": 1}}})
	start := time.Now()
	available(t, ctx, weak)
	assignedTo(t, ctx, weak, "de")
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("de was assigned to an agent below its level after %v, before the match widened", waited)
	}
	waitQueued(t, ctx, en, 1)
}

// TestQueueStats checks the estimated wait pushed to customers and the
// summaries pushed to agents.
func TestQueueStats(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	agent, _ := e.join(ctx, protocol.RoleAgent, "Ann")
	first, _ := e.join(ctx, protocol.RoleCustomer, "first")
	// No agent is available or busy: the wait is unknown.
	m := next(t, ctx, first, protocol.TypeQueued)
	if m.Wait != 0 {
		t.Fatalf("queued with no agent = %+v, want no wait", m)
	}
	st := next(t, ctx, agent, protocol.TypeQueueStats)
	for st.Stats.Waiting != 1 || st.Stats.Away != 1 {
		st = next(t, ctx, agent, protocol.TypeQueueStats)
	}
	available(t, ctx, agent)
	next(t, ctx, first, protocol.TypeAssigned)

	// The one agent is busy: the next customer waits about one default
	// handle time (5 min, no call has ended yet).
	second, _ := e.join(ctx, protocol.RoleCustomer, "second")
	for {
		m := next(t, ctx, second, protocol.TypeQueued)
		if m.Wait != 0 {
			if m.Position != 1 || m.Wait != 300 {
				t.Fatalf("queued = %+v, want position 1, wait 300 s", m)
			}
			break
		}
	}
	for {
		st := next(t, ctx, agent, protocol.TypeQueueStats).Stats
		if st.Waiting == 1 && st.Busy == 1 && st.Answered == 1 {
			if st.Available != 0 || st.Away != 0 || st.WindowSeconds != 3600 {
				t.Fatalf("stats = %+v", st)
			}
			break
		}
	}
	if got := counter(t, e.reg, "helpcaster_queue_agents_busy", map[string]string{"org": "acme", "queue": "support"}); got != 1 {
		t.Errorf("helpcaster_queue_agents_busy = %v, want 1", got)
	}
}

// TestInvite: an agent is offered a customer and must accept; declining or
// not answering puts the customer back at the front and the agent away.
func TestInvite(t *testing.T) {
	e := newEnv(t, withQueues(auth.Queue{Name: "support", OfferTimeout: time.Second}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cust, _ := e.join(ctx, protocol.RoleCustomer, "Carl")
	later, _ := e.join(ctx, protocol.RoleCustomer, "Later")
	ann, _ := e.join(ctx, protocol.RoleAgent, "Ann")
	bob, _ := e.join(ctx, protocol.RoleAgent, "Bob")

	available(t, ctx, ann)
	inv := next(t, ctx, ann, protocol.TypeInvite)
	if inv.Room == "" || inv.Peer == nil || inv.Peer.Name != "Carl" || inv.Timeout != 1 || inv.Queue != "support" {
		t.Fatalf("invite = %+v", inv)
	}
	// Bob cannot answer Ann's invite.
	if err := bob.Send(ctx, protocol.Message{ID: "steal", Type: protocol.TypeAccept, Room: inv.Room}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, bob, protocol.TypeError); m.Code != string(protocol.CodeInvalidState) || m.Ref != "steal" {
		t.Fatalf("accepting another agent's invite: %+v", m)
	}
	if err := ann.Send(ctx, protocol.Message{Type: protocol.TypeDecline, Room: inv.Room}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, ann, protocol.TypeWithdrawn); m.Room != inv.Room || m.Reason != protocol.ReasonDeclined {
		t.Fatalf("withdrawn = %+v", m)
	}
	for m := next(t, ctx, ann, protocol.TypeAgentState); m.State != protocol.AgentAway; m = next(t, ctx, ann, protocol.TypeAgentState) {
	}
	// Carl is back ahead of Later; Bob gets him and lets the invite expire.
	available(t, ctx, bob)
	inv2 := next(t, ctx, bob, protocol.TypeInvite)
	if inv2.Peer.Name != "Carl" || inv2.Room == inv.Room {
		t.Fatalf("second invite = %+v", inv2)
	}
	if m := next(t, ctx, bob, protocol.TypeWithdrawn); m.Room != inv2.Room || m.Reason != protocol.ReasonTimeout {
		t.Fatalf("withdrawn = %+v", m)
	}
	for m := next(t, ctx, bob, protocol.TypeAgentState); m.State != protocol.AgentAway; m = next(t, ctx, bob, protocol.TypeAgentState) {
	}
	// An old invite cannot be accepted.
	if err := ann.Send(ctx, protocol.Message{ID: "old", Type: protocol.TypeAccept, Room: inv.Room}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, ann, protocol.TypeError); m.Code != string(protocol.CodeInvalidState) || m.Ref != "old" {
		t.Fatalf("accepting a declined invite: %+v", m)
	}
	available(t, ctx, ann)
	inv3 := next(t, ctx, ann, protocol.TypeInvite)
	if inv3.Peer.Name != "Carl" {
		t.Fatalf("third invite = %+v, want Carl again", inv3)
	}
	if err := ann.Send(ctx, protocol.Message{Type: protocol.TypeAccept, Room: inv3.Room}); err != nil {
		t.Fatal(err)
	}
	if m := assignedTo(t, ctx, cust, "Ann"); m.Room != inv3.Room {
		t.Fatalf("room %q, want the invite's %q", m.Room, inv3.Room)
	}
	assignedTo(t, ctx, ann, "Carl")
	waitQueued(t, ctx, later, 1)
	if got := counter(t, e.reg, "helpcaster_queue_invites_declined_total", map[string]string{"org": "acme", "queue": "support"}); got != 1 {
		t.Errorf("declined = %v, want 1", got)
	}
	if got := counter(t, e.reg, "helpcaster_queue_invites_expired_total", map[string]string{"org": "acme", "queue": "support"}); got != 1 {
		t.Errorf("expired = %v, want 1", got)
	}

	// A customer who leaves during an invite withdraws it; the agent stays
	// available.
	available(t, ctx, bob)
	inv4 := next(t, ctx, bob, protocol.TypeInvite)
	if inv4.Peer.Name != "Later" {
		t.Fatalf("fourth invite = %+v", inv4)
	}
	later.Close()
	if m := next(t, ctx, bob, protocol.TypeWithdrawn); m.Room != inv4.Room || m.Reason != protocol.ReasonPeerLeft {
		t.Fatalf("withdrawn = %+v", m)
	}
}

// TestOverflow moves a customer who waited too long to the overflow queue,
// where an agent takes it.
func TestOverflow(t *testing.T) {
	e := newEnv(t, withQueues(
		auth.Queue{Name: "support", Overflow: auth.Overflow{After: time.Second, To: "general"}},
		auth.Queue{Name: "general"},
	))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	general := e.joinWith(ctx, auth.Claims{Role: protocol.RoleAgent, Name: "general", Queue: "general"})
	available(t, ctx, general)
	next(t, ctx, general, protocol.TypeAgentState)
	cust, _ := e.join(ctx, protocol.RoleCustomer, "Carl")
	if m := next(t, ctx, cust, protocol.TypeQueued); m.Queue != "support" {
		t.Fatalf("queued in %q", m.Queue)
	}
	assignedTo(t, ctx, cust, "general")
	if got := counter(t, e.reg, "helpcaster_queue_overflowed_total", map[string]string{"org": "acme", "queue": "support"}); got != 1 {
		t.Errorf("overflowed = %v, want 1", got)
	}
}

// TestRoutingBadInput: tokens naming an unknown queue, routing attributes
// or skills of the wrong type, or oversized attribute sets are refused with
// bad_token and change nothing; an agent of another organization cannot
// take an invite.
func TestRoutingBadInput(t *testing.T) {
	e := newEnv(t, withQueues(auth.Queue{Name: "support", OfferTimeout: 10 * time.Second}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	waiting, _ := e.join(ctx, protocol.RoleCustomer, "waiting")
	waitQueued(t, ctx, waiting, 1)

	raw := func(claims map[string]any) string {
		claims["org"], claims["sub"], claims["exp"] = "acme", "u-bad", time.Now().Add(time.Hour).Unix()
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString(e.orgs["acme"].APISecret)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	manyAttrs := map[string]string{}
	for i := range auth.MaxAttrs + 1 {
		manyAttrs[strings.Repeat("k", i+1)] = "v"
	}
	for name, tok := range map[string]string{
		"unknown queue":         raw(map[string]any{"role": "customer", "queue": "nope"}),
		"attrs of wrong type":   raw(map[string]any{"role": "customer", "attrs": map[string]any{"language": 5}}),
		"attrs not an object":   raw(map[string]any{"role": "customer", "attrs": []string{"de"}}),
		"too many attrs":        raw(map[string]any{"role": "customer", "attrs": manyAttrs}),
		"oversized attr value":  raw(map[string]any{"role": "customer", "attrs": map[string]string{"language": strings.Repeat("x", auth.MaxAttrValue+1)}}),
		"skills of wrong type":  raw(map[string]any{"role": "agent", "skills": map[string]any{"language": "de"}}),
		"skill level too high":  raw(map[string]any{"role": "agent", "skills": map[string]any{"language": map[string]int{"de": 99}}}),
		"capacity out of range": raw(map[string]any{"role": "agent", "capacity": 1000}),
		"customer with skills":  raw(map[string]any{"role": "customer", "skills": map[string]any{"language": map[string]int{"de": 1}}}),
		"agent with consent":    raw(map[string]any{"role": "agent", "record_consent": true}),
		"consent not a boolean": raw(map[string]any{"role": "customer", "record_consent": "yes"}),
	} {
		c := e.dial(ctx, testOrigin)
		_, err := c.Join(ctx, tok)
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeBadToken {
			t.Errorf("%s: join error %v, want bad_token", name, err)
		}
	}
	// Nothing changed: the next customer is second of two.
	next2, _ := e.join(ctx, protocol.RoleCustomer, "next")
	if m := next(t, ctx, next2, protocol.TypeQueued); m.Position != 2 || m.Length != 2 {
		t.Errorf("after refused joins a new customer is %d of %d, want 2 of 2", m.Position, m.Length)
	}

	// globex's agent cannot answer acme's invite; acme's agent still can.
	ann, _ := e.join(ctx, protocol.RoleAgent, "Ann")
	available(t, ctx, ann)
	inv := next(t, ctx, ann, protocol.TypeInvite)
	g := e.dial(ctx, "http://globex.test")
	if _, err := g.Join(ctx, e.token("globex", protocol.RoleAgent, "Gus")); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{protocol.TypeAccept, protocol.TypeDecline} {
		if err := g.Send(ctx, protocol.Message{ID: typ, Type: typ, Room: inv.Room}); err != nil {
			t.Fatal(err)
		}
		if m := next(t, ctx, g, protocol.TypeError); m.Code != string(protocol.CodeInvalidState) || m.Ref != typ {
			t.Fatalf("globex %s of acme's invite: %+v", typ, m)
		}
	}
	if err := ann.Send(ctx, protocol.Message{Type: protocol.TypeAccept, Room: inv.Room}); err != nil {
		t.Fatal(err)
	}
	assignedTo(t, ctx, waiting, "Ann")
}

// TestSupervisor: a supervisor gets a summary of every queue of its
// organization as they change, and takes no calls.
func TestSupervisor(t *testing.T) {
	e := newEnv(t, withQueues(auth.Queue{Name: "support"}, auth.Queue{Name: "sales"}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	sup := e.joinWith(ctx, auth.Claims{Role: protocol.RoleSupervisor, Name: "Sue"})
	seen := map[string]protocol.QueueStats{}
	for len(seen) < 2 {
		m := next(t, ctx, sup, protocol.TypeQueueStats)
		seen[m.Queue] = *m.Stats
	}
	e.joinWith(ctx, auth.Claims{Role: protocol.RoleCustomer, Name: "c", Queue: "sales"})
	for {
		m := next(t, ctx, sup, protocol.TypeQueueStats)
		if m.Queue == "sales" && m.Stats.Waiting == 1 {
			break
		}
	}
	for _, typ := range []string{protocol.TypeAvailable, protocol.TypeHangup} {
		if err := sup.Send(ctx, protocol.Message{ID: typ, Type: typ}); err != nil {
			t.Fatal(err)
		}
		if m := next(t, ctx, sup, protocol.TypeError); m.Code != string(protocol.CodeInvalidState) || m.Ref != typ {
			t.Fatalf("supervisor %s: %+v", typ, m)
		}
	}
}

// TestAgentCapacity: an agent whose token allows two calls takes two
// customers at once, names the call in its messages, and takes the next
// customer when one call ends.
func TestAgentCapacity(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c1, _ := e.join(ctx, protocol.RoleCustomer, "c1")
	c2, _ := e.join(ctx, protocol.RoleCustomer, "c2")
	c3, _ := e.join(ctx, protocol.RoleCustomer, "c3")
	ann := e.joinWith(ctx, auth.Claims{Role: protocol.RoleAgent, Name: "Ann", Capacity: 2})
	available(t, ctx, ann)
	r1 := assignedTo(t, ctx, ann, "c1").Room
	r2 := assignedTo(t, ctx, ann, "c2").Room
	next(t, ctx, c1, protocol.TypeAssigned)
	next(t, ctx, c2, protocol.TypeAssigned)
	waitQueued(t, ctx, c3, 1)

	// With two calls, a message must name one.
	if err := ann.Send(ctx, protocol.Message{ID: "which", Type: protocol.TypeChat, Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, ann, protocol.TypeError); m.Code != string(protocol.CodeBadMessage) || m.Ref != "which" {
		t.Fatalf("chat without room: %+v", m)
	}
	if err := ann.Send(ctx, protocol.Message{Type: protocol.TypeChat, Text: "to c2", Room: r2}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, c2, protocol.TypeChat); m.Text != "to c2" || m.Room != r2 {
		t.Fatalf("c2 got %+v", m)
	}
	if err := c1.Send(ctx, protocol.Message{Type: protocol.TypeChat, Text: "from c1"}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, ann, protocol.TypeChat); m.Text != "from c1" || m.Room != r1 || m.From.Name != "c1" {
		t.Fatalf("agent got %+v", m)
	}
	// Ending one call frees a slot: c3 comes next.
	if err := ann.Send(ctx, protocol.Message{Type: protocol.TypeHangup, Room: r1}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, ann, protocol.TypeEnded); m.Room != r1 || m.Reason != protocol.ReasonHangup {
		t.Fatalf("agent ended %+v", m)
	}
	next(t, ctx, c1, protocol.TypeEnded)
	assignedTo(t, ctx, ann, "c3")
	next(t, ctx, c3, protocol.TypeAssigned)
}
