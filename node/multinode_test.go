package node

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/cluster"
	"github.com/helpcaster/helpcaster/internal/redistest"
	"github.com/helpcaster/helpcaster/sfu"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// cluster3 runs n nodes in this process sharing one private Redis.
type testNode struct {
	n  *Node
	ws string
}

func startNodes(t *testing.T, rs *redistest.Server, dir *auth.Directory, ids ...string) []*testNode {
	t.Helper()
	return startNodesWith(t, rs, func(id string) Config { return Config{Orgs: dir, NodeID: id} }, ids...)
}

// startNodesWith runs the nodes ids, each with the Config cfg gives it,
// sharing the private Redis rs, and waits until all are in its registry.
func startNodesWith(t *testing.T, rs *redistest.Server, cfg func(id string) Config, ids ...string) []*testNode {
	t.Helper()
	var nodes []*testNode
	for _, id := range ids {
		c := cfg(id)
		c.RedisURL = rs.URL()
		nodes = append(nodes, runTestNode(t, c))
	}
	// Wait until every node is in the registry.
	o, _ := redis.ParseURL(rs.URL())
	rdb := redis.NewClient(o)
	defer rdb.Close()
	reg := cluster.NewRegistry(rdb)
	deadline := time.Now().Add(10 * time.Second)
	for {
		live, err := reg.Live(context.Background())
		if err == nil && len(live) == len(ids) {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes not registered: %+v %v", live, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runTestNode runs a node with cfg (runNode) with loopback-only media and
// a log on stderr (debug with HELPCASTER_TEST_LOG).
func runTestNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	level := slog.LevelWarn
	if os.Getenv("HELPCASTER_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	cfg.Media = sfu.Config{LoopbackOnly: true}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("node", cfg.NodeID)
	n := runNode(t, cfg)
	return &testNode{n: n, ws: "ws" + strings.TrimPrefix(n.URL(), "http") + "/v1/signal"}
}

func testOrgs(t *testing.T) *auth.Directory {
	t.Helper()
	dir, err := auth.NewDirectory([]auth.Org{{ID: "acme", APIKey: "acme-key", APISecret: []byte(strings.Repeat("s", 32)),
		Queues: []auth.Queue{{Name: "support"}}}})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func joinAt(t *testing.T, ctx context.Context, dir *auth.Directory, ws, role, name string) (*client.Client, protocol.Message) {
	t.Helper()
	org, _ := dir.Org("acme")
	tok, err := auth.Mint(org, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u-" + name}, Role: role, Name: name}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, client.Options{URL: ws, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	w, err := c.Join(ctx, tok)
	if err != nil {
		t.Fatalf("%s join: %v", name, err)
	}
	return c, w
}

func nextMsg(t *testing.T, ctx context.Context, c *client.Client, types ...string) protocol.Message {
	t.Helper()
	m, err := c.Next(ctx, types...)
	if err != nil {
		t.Fatalf("waiting for %v: %v", types, err)
	}
	return m
}

func waitMedia(t *testing.T, ctx context.Context, who string, c *client.Client) {
	t.Helper()
	if err := c.WaitMedia(ctx, 50); err != nil {
		t.Fatalf("%s: %v", who, err)
	}
}

func sample(name string) string { return filepath.Join("..", "testdata", name) }

// TestCallAcrossNodes: a customer on one node and an agent on another are
// put in one call, in a room on whichever node is least loaded, with media
// both ways, chat, and a hangup that reaches both.
func TestCallAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	dir := testOrgs(t)
	nodes := startNodes(t, rs, dir, "n1", "n2", "n3")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cust, cw := joinAt(t, ctx, dir, nodes[1].ws, protocol.RoleCustomer, "Carl")
	if m := nextMsg(t, ctx, cust, protocol.TypeQueued); m.Position != 1 {
		t.Fatalf("queued %+v", m)
	}
	agent, _ := joinAt(t, ctx, dir, nodes[2].ws, protocol.RoleAgent, "Ann")
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	aa := nextMsg(t, ctx, agent, protocol.TypeAssigned)
	ca := nextMsg(t, ctx, cust, protocol.TypeAssigned)
	if aa.Room == "" || aa.Room != ca.Room || aa.Peer.Name != "Carl" || ca.Peer.Name != "Ann" {
		t.Fatalf("assigned: agent %+v, customer %+v", aa, ca)
	}
	var hosts []string
	for i, n := range nodes {
		if n.n.media.Load().Rooms == 1 {
			hosts = append(hosts, []string{"n1", "n2", "n3"}[i])
		}
	}
	if len(hosts) != 1 {
		t.Fatalf("rooms on nodes %v, want exactly one", hosts)
	}
	t.Logf("room on %s", hosts[0])
	for _, c := range []*client.Client{cust, agent} {
		if err := c.PublishFiles(ctx, sample("sample.ivf"), sample("sample.ogg")); err != nil {
			t.Fatal(err)
		}
	}
	waitMedia(t, ctx, "customer", cust)
	waitMedia(t, ctx, "agent", agent)

	if err := cust.Send(ctx, protocol.Message{Type: protocol.TypeChat, Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	if m := nextMsg(t, ctx, agent, protocol.TypeChat); m.Text != "hello" || m.From.Name != "Carl" {
		t.Fatalf("chat %+v", m)
	}
	// The customer's connection drops; it resumes into the call through
	// another node and sets up its media again.
	cust.Close()
	again, err := client.Dial(ctx, client.Options{URL: nodes[0].ws, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Close)
	w, err := again.Resume(ctx, cw.Resume)
	if err != nil {
		t.Fatalf("resume into the call: %v", err)
	}
	if w.Session != cw.Session {
		t.Fatalf("resumed as %q, want %q", w.Session, cw.Session)
	}
	if m := nextMsg(t, ctx, again, protocol.TypeAssigned); m.Room != ca.Room || m.Peer.Name != "Ann" {
		t.Fatalf("assigned after resume %+v, want room %s", m, ca.Room)
	}
	before := agent.Stats()
	if err := again.PublishFiles(ctx, sample("sample.ivf"), sample("sample.ogg")); err != nil {
		t.Fatal(err)
	}
	waitMedia(t, ctx, "resumed customer", again)
	for agent.Stats().VideoPackets < before.VideoPackets+50 {
		if ctx.Err() != nil {
			t.Fatalf("agent got no new video after the resume: %+v then %+v", before, agent.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := again.Send(ctx, protocol.Message{Type: protocol.TypeChat, Text: "back"}); err != nil {
		t.Fatal(err)
	}
	if m := nextMsg(t, ctx, agent, protocol.TypeChat); m.Text != "back" {
		t.Fatalf("chat after resume %+v", m)
	}
	cust = again

	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
		t.Fatal(err)
	}
	if m := nextMsg(t, ctx, agent, protocol.TypeEnded); m.Reason != protocol.ReasonHangup {
		t.Fatalf("agent ended %+v", m)
	}
	if m := nextMsg(t, ctx, cust, protocol.TypeEnded); m.Reason != protocol.ReasonPeerLeft {
		t.Fatalf("customer ended %+v", m)
	}
	if m := nextMsg(t, ctx, agent, protocol.TypeAgentState); m.State != protocol.AgentAvailable {
		t.Fatalf("agent state after the call %+v", m)
	}
}
