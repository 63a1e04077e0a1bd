package signaling_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/sfu"
	"github.com/helpcaster/helpcaster/signaling"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const testOrigin = "http://shop.test"

// env is a real signaling server with a real SFU on loopback.
type env struct {
	t     *testing.T
	srv   *signaling.Server
	http  *httptest.Server
	reg   *prometheus.Registry
	orgs  map[string]*auth.Org
	wsURL string
}

type envOption func(*envConfig)

type envConfig struct {
	limits   signaling.Limits
	maxQueue int
	store    queue.Store
	queues   []auth.Queue // acme's queues, when set
	grace    time.Duration
}

func withLimits(l signaling.Limits) envOption { return func(c *envConfig) { c.limits = l } }
func withMaxQueue(n int) envOption            { return func(c *envConfig) { c.maxQueue = n } }
func withStore(s queue.Store) envOption       { return func(c *envConfig) { c.store = s } }
func withQueues(qs ...auth.Queue) envOption   { return func(c *envConfig) { c.queues = qs } }
func withGrace(d time.Duration) envOption     { return func(c *envConfig) { c.grace = d } }

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	var cfg envConfig
	for _, o := range opts {
		o(&cfg)
	}
	orgs := []auth.Org{
		{ID: "acme", APIKey: "acme-key", APISecret: []byte(strings.Repeat("a", 32)), Origins: []string{testOrigin},
			Queues: []auth.Queue{{Name: "support", MaxLength: cfg.maxQueue}}},
		{ID: "globex", APIKey: "globex-key", APISecret: []byte(strings.Repeat("g", 32)), Origins: []string{"http://globex.test"},
			Queues: []auth.Queue{{Name: "support"}}},
	}
	if cfg.queues != nil {
		orgs[0].Queues = cfg.queues
	}
	dir, err := auth.NewDirectory(orgs)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	media, err := sfu.New(sfu.Config{LoopbackOnly: true, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.store == nil {
		cfg.store = queue.NewMemory(nil)
	}
	srv, err := signaling.NewServer(signaling.Config{
		Verifier:    &auth.Verifier{Dir: dir},
		Store:       cfg.store,
		SFU:         media,
		Limits:      cfg.limits,
		Registerer:  reg,
		ResumeGrace: cfg.grace,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/signal", srv)
	hs := httptest.NewServer(mux)
	e := &env{t: t, srv: srv, http: hs, reg: reg, orgs: map[string]*auth.Org{}, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/signal"}
	for _, o := range dir.Orgs() {
		e.orgs[o.ID] = o
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
		media.Close()
	})
	return e
}

func (e *env) token(org, role, name string) string {
	e.t.Helper()
	tok, err := auth.Mint(e.orgs[org], auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "user-" + name},
		Role:             role,
		Name:             name,
	}, time.Hour, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) dial(ctx context.Context, origin string) *client.Client {
	e.t.Helper()
	c, err := client.Dial(ctx, client.Options{URL: e.wsURL, Origin: origin, LoopbackOnly: true})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(c.Close)
	return c
}

// join dials and joins, failing the test on any error.
func (e *env) join(ctx context.Context, role, name string) (*client.Client, protocol.Message) {
	e.t.Helper()
	c := e.dial(ctx, testOrigin)
	w, err := c.Join(ctx, e.token("acme", role, name))
	if err != nil {
		e.t.Fatalf("%s join: %v", name, err)
	}
	return c, w
}

func next(t *testing.T, ctx context.Context, c *client.Client, types ...string) protocol.Message {
	t.Helper()
	m, err := c.Next(ctx, types...)
	if err != nil {
		t.Fatalf("waiting for %v: %v", types, err)
	}
	return m
}

// expectQueued waits until c is told it is at pos of length; other queued
// messages before it (estimates of the wait, places passed through) are
// skipped.
func expectQueued(t *testing.T, ctx context.Context, c *client.Client, pos, length int) {
	t.Helper()
	for {
		m, err := c.Next(ctx, protocol.TypeQueued)
		if err != nil {
			t.Fatalf("waiting to be told position %d of %d: %v", pos, length, err)
		}
		if m.Position == pos && m.Length == length {
			return
		}
	}
}

func sample(name string) string { return filepath.Join("..", "testdata", name) }

// TestCall is the whole flow: an agent goes available, a customer queues,
// both are assigned, exchange audio, video and chat, and the agent hangs up.
func TestCall(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	agent, w := e.join(ctx, protocol.RoleAgent, "Ann")
	if w.Role != protocol.RoleAgent || w.Org != "acme" || w.Queue != "support" || w.Session == "" {
		t.Fatalf("agent welcome = %+v", w)
	}
	if m := next(t, ctx, agent, protocol.TypeAgentState); m.State != protocol.AgentAway {
		t.Fatalf("agent starts %q, want away", m.State)
	}
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, agent, protocol.TypeAgentState); m.State != protocol.AgentAvailable {
		t.Fatalf("agent state %q, want available", m.State)
	}

	cust, _ := e.join(ctx, protocol.RoleCustomer, "Carl")
	expectQueued(t, ctx, cust, 1, 1)

	ca := next(t, ctx, cust, protocol.TypeAssigned)
	aa := next(t, ctx, agent, protocol.TypeAssigned)
	if ca.Room == "" || ca.Room != aa.Room {
		t.Fatalf("rooms differ: %q vs %q", ca.Room, aa.Room)
	}
	if ca.Peer == nil || ca.Peer.Role != protocol.RoleAgent || ca.Peer.Name != "Ann" {
		t.Fatalf("customer's peer = %+v", ca.Peer)
	}
	if aa.Peer == nil || aa.Peer.Role != protocol.RoleCustomer || aa.Peer.Name != "Carl" {
		t.Fatalf("agent's peer = %+v", aa.Peer)
	}
	for _, c := range []*client.Client{cust, agent} {
		if err := c.PublishFiles(ctx, sample("sample.ivf"), sample("sample.ogg")); err != nil {
			t.Fatal(err)
		}
	}

	waitMedia(t, ctx, "customer", cust)
	waitMedia(t, ctx, "agent", agent)

	// Asking for a lower quality of a non-simulcast track keeps its one layer.
	if err := cust.Send(ctx, protocol.Message{ID: "q1", Type: protocol.TypeQuality, Width: 160, Height: 90}); err != nil {
		t.Fatal(err)
	}
	before := cust.Stats().VideoPackets
	waitFor(t, ctx, "video after a quality request", func() bool { return cust.Stats().VideoPackets > before+30 })

	if err := cust.Send(ctx, protocol.Message{Type: protocol.TypeChat, Text: "My order is late"}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, agent, protocol.TypeChat); m.Text != "My order is late" || m.From == nil ||
		m.From.Role != protocol.RoleCustomer || m.From.Name != "Carl" || m.TS == 0 {
		t.Fatalf("agent got chat %+v", m)
	}
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeChat, Text: "Let me check 📦"}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, cust, protocol.TypeChat); m.Text != "Let me check 📦" || m.From.Role != protocol.RoleAgent {
		t.Fatalf("customer got chat %+v", m)
	}

	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, agent, protocol.TypeEnded); m.Reason != protocol.ReasonHangup {
		t.Fatalf("agent ended reason %q", m.Reason)
	}
	if m := next(t, ctx, cust, protocol.TypeEnded); m.Reason != protocol.ReasonPeerLeft {
		t.Fatalf("customer ended reason %q", m.Reason)
	}
	if m := next(t, ctx, agent, protocol.TypeAgentState); m.State != protocol.AgentAvailable {
		t.Fatalf("agent after call %q, want available", m.State)
	}
	if _, err := cust.Next(ctx); err != client.ErrClosed {
		t.Fatalf("customer connection after ended: %v, want closed", err)
	}

	if got := counter(t, e.reg, "helpcaster_sfu_rtp_packets_total", map[string]string{"kind": "video", "direction": "out"}); got < 50 {
		t.Errorf("video packets out = %v, want the forwarded packets counted", got)
	}
	if got := counter(t, e.reg, "helpcaster_sfu_forward_latency_seconds", nil); got == 0 {
		t.Error("no forwarding latency measured")
	}
	if got := counter(t, e.reg, "helpcaster_queue_placements_total", map[string]string{"org": "acme", "queue": "support"}); got != 1 {
		t.Errorf("placements = %v, want 1", got)
	}
}

// waitMedia waits until c has received audio and video with a VP8 keyframe.
func waitMedia(t *testing.T, ctx context.Context, who string, c *client.Client) {
	t.Helper()
	if err := c.WaitMedia(ctx, 50); err != nil {
		t.Fatalf("%s: %v", who, err)
	}
}

// counter sums the values of a metric's series whose labels include want
// (for a histogram, its sample counts).
func counter(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m.GetLabel(), want) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

func labelsMatch(labels []*dto.LabelPair, want map[string]string) bool {
	n := 0
	for _, l := range labels {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// TestQueueOrder checks first-come-first-served positions, that a customer
// who leaves is removed (once its resume grace has run out) and the others
// move up, and that an agent gets the oldest customer.
func TestQueueOrder(t *testing.T) {
	e := newEnv(t, withGrace(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var custs []*client.Client
	for i := range 3 {
		c, _ := e.join(ctx, protocol.RoleCustomer, fmt.Sprintf("c%d", i))
		expectQueued(t, ctx, c, i+1, i+1)
		custs = append(custs, c)
	}
	// Updates are coalesced: c0 may not hear of the length 2 in between.
	expectQueued(t, ctx, custs[0], 1, 3)
	expectQueued(t, ctx, custs[1], 2, 3)

	custs[0].Close() // leaves while waiting
	expectQueued(t, ctx, custs[1], 1, 2)
	expectQueued(t, ctx, custs[2], 2, 2)

	agent, _ := e.join(ctx, protocol.RoleAgent, "Ann")
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	a := next(t, ctx, agent, protocol.TypeAssigned)
	if a.Peer.Name != "c1" {
		t.Fatalf("agent got %q, want the oldest waiting customer c1", a.Peer.Name)
	}
	next(t, ctx, custs[1], protocol.TypeAssigned)
	expectQueued(t, ctx, custs[2], 1, 1)

	// A waiting customer who hangs up leaves the queue and is told so.
	if err := custs[2].Send(ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, custs[2], protocol.TypeEnded); m.Reason != protocol.ReasonHangup {
		t.Fatalf("ended reason %q", m.Reason)
	}
	if got := counter(t, e.reg, "helpcaster_queue_abandoned_total", map[string]string{"org": "acme"}); got != 2 {
		t.Errorf("abandoned = %v, want 2", got)
	}
}

// TestAgentsInParallel makes several agents go available at once for one
// waiting customer each: every customer gets exactly one agent.
func TestAgentsInParallel(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 4
	var custs, agents []*client.Client
	for i := range n {
		c, _ := e.join(ctx, protocol.RoleCustomer, fmt.Sprintf("c%d", i))
		custs = append(custs, c)
		a, _ := e.join(ctx, protocol.RoleAgent, fmt.Sprintf("a%d", i))
		agents = append(agents, a)
	}
	for _, a := range agents {
		if err := a.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for i, a := range agents {
		m := next(t, ctx, a, protocol.TypeAssigned)
		if seen[m.Peer.Name] {
			t.Fatalf("customer %s assigned twice", m.Peer.Name)
		}
		seen[m.Peer.Name] = true
		if m := next(t, ctx, custs[i], protocol.TypeAssigned); m.Peer.Role != protocol.RoleAgent {
			t.Fatalf("customer %d peer %+v", i, m.Peer)
		}
	}
}

// TestShutdown tells clients before closing.
func TestShutdown(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	agent, _ := e.join(ctx, protocol.RoleAgent, "Ann")
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	cust, _ := e.join(ctx, protocol.RoleCustomer, "Carl")
	next(t, ctx, cust, protocol.TypeAssigned)

	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := e.srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{cust, agent} {
		if m := next(t, ctx, c, protocol.TypeEnded); m.Reason != protocol.ReasonShutdown {
			t.Fatalf("ended reason %q", m.Reason)
		}
		if m := next(t, ctx, c, protocol.TypeBye); m.Reason != protocol.ReasonShutdown {
			t.Fatalf("bye reason %q", m.Reason)
		}
	}
	if e.srv.Ready() {
		t.Fatal("server still ready after shutdown")
	}
}
