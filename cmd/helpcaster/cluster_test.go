package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
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
	"github.com/helpcaster/helpcaster/internal/redistest"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// proc is a helpcaster serve process of a cluster test.
type proc struct {
	id     string
	cmd    *exec.Cmd
	ws     string
	base   string // http://host:port
	log    string
	exited chan struct{}
	err    error // how it exited (cmd.Wait's error); set before exited is closed
}

func (n *proc) logTail() string {
	b, _ := os.ReadFile(n.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// startNode runs `helpcaster serve` with the test's config file and Redis
// (none when redisURL is ""), and extra flags, waits until it is ready, and
// kills it when the test ends.
func startNode(t *testing.T, bin, config, redisURL, id string, extra ...string) *proc {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", itoa(freePort(t, "tcp")))
	logPath := filepath.Join(t.TempDir(), id+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--config", config, "--listen", addr,
		"--media-udp-port", itoa(freePort(t, "udp")), "--media-tcp-port", "0", "--media-loopback-only",
		"--resume-grace", "30s", "--log-level", "info"}
	if redisURL != "" {
		args = append(args, "--redis", redisURL, "--node-id", id)
	}
	cmd := exec.Command(bin, append(args, extra...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &proc{id: id, cmd: cmd, ws: "ws://" + addr + "/v1/signal", base: "http://" + addr, log: logPath, exited: make(chan struct{})}
	go func() {
		n.err = cmd.Wait()
		logFile.Close()
		close(n.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-n.exited
		if t.Failed() {
			t.Logf("%s log:\n%s", id, n.logTail())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v\n%s", id, err, n.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterProcesses runs three serve processes on one private Redis: a
// customer on node 1 and an agent on node 3 share a call with media both
// ways; the node holding a waiting customer is killed with SIGKILL and the
// customer resumes on node 2 at its place and is served there; Redis
// restarts (losing everything) and the nodes carry on: waiting customers
// are restored and new joins succeed.
func TestClusterProcesses(t *testing.T) {
	rs := redistest.Start(t)
	bin := filepath.Join(t.TempDir(), "helpcaster")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	secret := strings.Repeat("k", 40)
	config := filepath.Join(t.TempDir(), "helpcaster.yaml")
	yaml := "orgs:\n  - id: acme\n    api_key: acme-key\n    api_secret: " + secret + "\n    queues: [support]\n"
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	org := &auth.Org{ID: "acme", APIKey: "acme-key", APISecret: []byte(secret), Queues: []auth.Queue{{Name: "support"}}}

	var nodes []*proc
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, id := range []string{"n1", "n2", "n3"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := startNode(t, bin, config, rs.URL(), id)
			mu.Lock()
			nodes = append(nodes, n)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(nodes) != 3 {
		t.FailNow()
	}
	byID := map[string]*proc{}
	for _, n := range nodes {
		byID[n.id] = n
	}
	n1, n2, n3 := byID["n1"], byID["n2"], byID["n3"]
	waitLive(t, rs.URL(), 3)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	join := func(n *proc, role, name string) (*client.Client, protocol.Message, error) {
		tok, err := auth.Mint(org, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u-" + name}, Role: role, Name: name}, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(ctx, client.Options{URL: n.ws, LoopbackOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		w, err := c.Join(ctx, tok)
		return c, w, err
	}
	mustJoin := func(n *proc, role, name string) (*client.Client, protocol.Message) {
		c, w, err := join(n, role, name)
		if err != nil {
			t.Fatalf("%s joins on %s: %v", name, n.id, err)
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
			for {
				s := c.Stats()
				if s.AudioPackets >= 50 && s.VideoPackets >= 50 && s.VideoKeyframes >= 1 {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("%s received %+v (media error %v)", who, s, c.MediaError())
				}
				time.Sleep(50 * time.Millisecond)
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
	if err := n1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-n1.exited
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
	c2b, err := client.Dial(ctx, client.Options{URL: n2.ws, LoopbackOnly: true})
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
	var host *proc
	for _, n := range []*proc{n2, n3} {
		if rooms(t, n) == 1 {
			host = n
		}
	}
	if host == nil {
		t.Fatal("no node reports the call's room")
	}
	t.Logf("the call's room is on %s; killing it", host.id)
	if err := host.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-host.exited
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
func rooms(t *testing.T, n *proc) int {
	t.Helper()
	resp, err := http.Get(n.base + "/metrics")
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
				t.Fatalf("%s: %q", n.id, line)
			}
			return int(f)
		}
	}
	t.Fatalf("%s: no helpcaster_sfu_rooms in /metrics", n.id)
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
