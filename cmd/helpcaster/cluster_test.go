package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/cluster"
	"github.com/helpcaster/helpcaster/internal/nodetest"
	"github.com/helpcaster/helpcaster/internal/redistest"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// TestClusterProcesses runs three serve processes on one private Redis: a
// customer on node 1 and an agent on node 3 share a call with media both
// ways; the node holding a waiting customer is killed with SIGKILL and the
// customer resumes on node 2 at its place and is served there; Redis
// restarts (losing everything) and the nodes carry on: waiting customers
// are restored and new joins succeed.
func TestClusterProcesses(t *testing.T) {
	rs := redistest.Start(t)
	bin := nodetest.Build(t, ".")
	secret := strings.Repeat("k", 40)
	config := filepath.Join(t.TempDir(), "helpcaster.yaml")
	yaml := "orgs:\n  - id: acme\n    api_key: acme-key\n    api_secret: " + secret + "\n    queues: [support]\n"
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	org := &auth.Org{ID: "acme", APIKey: "acme-key", APISecret: []byte(secret), Queues: []auth.Queue{{Name: "support"}}}

	var nodes []*nodetest.Node
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, id := range []string{"n1", "n2", "n3"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := nodetest.Start(t, bin, nodetest.Options{ID: id, Config: config, Redis: rs.URL(), Extra: []string{"--resume-grace", "30s"}})
			mu.Lock()
			nodes = append(nodes, n)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(nodes) != 3 {
		t.FailNow()
	}
	byID := map[string]*nodetest.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	n1, n2, n3 := byID["n1"], byID["n2"], byID["n3"]
	waitLive(t, rs.URL(), 3)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	join := func(n *nodetest.Node, role, name string) (*client.Client, protocol.Message, error) {
		tok, err := auth.Mint(org, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u-" + name}, Role: role, Name: name}, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(ctx, client.Options{URL: n.WS, LoopbackOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		w, err := c.Join(ctx, tok)
		return c, w, err
	}
	mustJoin := func(n *nodetest.Node, role, name string) (*client.Client, protocol.Message) {
		c, w, err := join(n, role, name)
		if err != nil {
			t.Fatalf("%s joins on %s: %v", name, n.ID, err)
		}
		return c, w
	}
	next := func(c *client.Client, types ...string) protocol.Message {
		t.Helper()
		m, err := c.Next(ctx, types...)
		if err != nil {
			t.Fatalf("waiting for %v: %v", types, err)
		}
		return m
	}
	waitPosition := func(c *client.Client, pos, length int) {
		t.Helper()
		for {
			if m := next(c, protocol.TypeQueued); m.Position == pos && m.Length == length {
				return
			}
		}
	}
	callWithMedia := func(cust, agent *client.Client, custName string) {
		t.Helper()
		if m := next(agent, protocol.TypeAssigned); m.Peer == nil || m.Peer.Name != custName {
			t.Fatalf("agent assigned %+v, want %s", m, custName)
		}
		next(cust, protocol.TypeAssigned)
		for _, c := range []*client.Client{cust, agent} {
			if err := c.PublishFiles(ctx, filepath.Join("..", "..", "testdata", "sample.ivf"), filepath.Join("..", "..", "testdata", "sample.ogg")); err != nil {
				t.Fatal(err)
			}
		}
		for who, c := range map[string]*client.Client{"customer": cust, "agent": agent} {
			if err := c.WaitMedia(ctx, 50); err != nil {
				t.Fatalf("%s: %v", who, err)
			}
		}
	}

	// c1 and c2 wait on node 1, c3 on node 2; the agent is on node 3.
	c1, _ := mustJoin(n1, protocol.RoleCustomer, "c1")
	waitPosition(c1, 1, 1)
	c2, w2 := mustJoin(n1, protocol.RoleCustomer, "c2")
	waitPosition(c2, 2, 2)
	c3, _ := mustJoin(n2, protocol.RoleCustomer, "c3")
	waitPosition(c3, 3, 3)
	agent, _ := mustJoin(n3, protocol.RoleAgent, "Ann")
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	callWithMedia(c1, agent, "c1")
	// The agent takes no one after this call.
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAway}); err != nil {
		t.Fatal(err)
	}
	waitPosition(c2, 1, 2)
	if err := c1.Send(ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
		t.Fatal(err)
	}
	if m := next(agent, protocol.TypeEnded); m.Reason != protocol.ReasonPeerLeft {
		t.Fatalf("agent ended %+v", m)
	}

	// Node 1 dies; c2 resumes on node 2, first of two.
	n1.Kill()
	// Updates sent before the kill (a new wait estimate after the call's
	// end) may still be read; then the connection is closed.
	for {
		_, err := c2.Next(ctx, protocol.TypeQueued)
		if errors.Is(err, client.ErrClosed) {
			break
		}
		if err != nil {
			t.Fatalf("c2 after node 1 died: %v, want its connection closed", err)
		}
	}
	c2b, err := client.Dial(ctx, client.Options{URL: n2.WS, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2b.Close)
	w, err := c2b.Resume(ctx, w2.Resume)
	if err != nil {
		t.Fatalf("resume on node 2: %v", err)
	}
	if w.Session != w2.Session {
		t.Fatalf("resumed as session %q, want %q", w.Session, w2.Session)
	}
	if m := next(c2b, protocol.TypeQueued); m.Position != 1 || m.Length != 2 {
		t.Fatalf("c2 resumed at %+v, want position 1 of 2", m)
	}
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	callWithMedia(c2b, agent, "c2")
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAway}); err != nil {
		t.Fatal(err)
	}
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
		t.Fatal(err)
	}
	next(c2b, protocol.TypeEnded)
	waitPosition(c3, 1, 1)

	// Redis restarts empty. c3 is restored by its node; new joins succeed
	// again once Redis is back (a join while it is down gets unavailable).
	rs.Restart(t)
	deadline := time.Now().Add(30 * time.Second)
	var c4 *client.Client
	for {
		c, _, err := join(n3, protocol.RoleCustomer, "c4")
		if err == nil {
			c4 = c
			break
		}
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeUnavailable || time.Now().After(deadline) {
			t.Fatalf("join after the Redis restart: %v", err)
		}
		c.Close()
		time.Sleep(200 * time.Millisecond)
	}
	waitPosition(c4, 2, 2)
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	if m := next(agent, protocol.TypeAssigned); m.Peer.Name != "c3" {
		t.Fatalf("after the Redis restart the agent got %+v, want c3", m.Peer)
	}
	next(c3, protocol.TypeAssigned)

	// The node hosting this call dies. Whichever side is on another node is
	// told the call failed once the node is taken for dead (15 s missing
	// from the registry); an agent that survives is available again.
	var host *nodetest.Node
	for _, n := range []*nodetest.Node{n2, n3} {
		if rooms(t, n) == 1 {
			host = n
		}
	}
	if host == nil {
		t.Fatal("no node reports the call's room")
	}
	t.Logf("the call's room is on %s; killing it", host.ID)
	host.Kill()
	survivor, name := agent, "agent"
	if host == n3 {
		survivor, name = c3, "customer"
	}
	if m := next(survivor, protocol.TypeEnded); m.Reason != protocol.ReasonFailed {
		t.Fatalf("%s after the room's node died: %+v, want ended failed", name, m)
	}
	if survivor == agent {
		if m := next(agent, protocol.TypeAgentState); m.State != protocol.AgentAvailable {
			t.Fatalf("agent after its call's node died: %+v, want available", m)
		}
	}
}

// rooms reads helpcaster_sfu_rooms from a node's /metrics.
func rooms(t *testing.T, n *nodetest.Node) int {
	t.Helper()
	resp, err := http.Get(n.Base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "helpcaster_sfu_rooms "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %q", n.ID, line)
			}
			return int(f)
		}
	}
	t.Fatalf("%s: no helpcaster_sfu_rooms in /metrics", n.ID)
	return 0
}

// waitLive waits until n nodes are in the cluster registry.
func waitLive(t *testing.T, url string, n int) {
	t.Helper()
	o, _ := redis.ParseURL(url)
	rdb := redis.NewClient(o)
	defer rdb.Close()
	reg := cluster.NewRegistry(rdb)
	deadline := time.Now().Add(15 * time.Second)
	for {
		live, err := reg.Live(context.Background())
		if err == nil && len(live) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d nodes live, want %d (%v)", len(live), n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
