package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// procFixture is what process tests share: the binary, a config file with
// one organization, and that organization for minting tokens.
type procFixture struct {
	t      *testing.T
	ctx    context.Context
	bin    string
	config string
	org    *auth.Org
}

func newProcFixture(t *testing.T, ctx context.Context) *procFixture {
	t.Helper()
	bin := nodetest.Build(t, ".")
	secret := strings.Repeat("k", 40)
	config := filepath.Join(t.TempDir(), "helpcaster.yaml")
	yaml := "orgs:\n  - id: acme\n    api_key: acme-key\n    api_secret: " + secret + "\n    queues: [support]\n"
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	org := &auth.Org{ID: "acme", APIKey: "acme-key", APISecret: []byte(secret), Queues: []auth.Queue{{Name: "support"}}}
	return &procFixture{t: t, ctx: ctx, bin: bin, config: config, org: org}
}

// join connects to n as role (an agent with capacity) and joins; the
// client sets up media in a call only if media is set.
func (f *procFixture) join(n *nodetest.Node, role, name string, capacity int, media bool) *client.Client {
	f.t.Helper()
	tok, err := auth.Mint(f.org, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u-" + name}, Role: role, Name: name,
		Capacity: capacity}, time.Hour, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := client.Dial(f.ctx, client.Options{URL: n.WS, LoopbackOnly: true, NoMedia: !media})
	if err != nil {
		f.t.Fatalf("%s dials %s: %v", name, n.ID, err)
	}
	f.t.Cleanup(c.Close)
	if _, err := c.Join(f.ctx, tok); err != nil {
		f.t.Fatalf("%s joins on %s: %v", name, n.ID, err)
	}
	return c
}

func (f *procFixture) next(c *client.Client, types ...string) protocol.Message {
	f.t.Helper()
	m, err := c.Next(f.ctx, types...)
	if err != nil {
		f.t.Fatalf("waiting for %v: %v", types, err)
	}
	return m
}

func (f *procFixture) send(c *client.Client, m protocol.Message) {
	f.t.Helper()
	if err := c.Send(f.ctx, m); err != nil {
		f.t.Fatal(err)
	}
}

// call puts a waiting customer and an agent going available in a call.
func (f *procFixture) call(cust, agent *client.Client) {
	f.t.Helper()
	f.send(agent, protocol.Message{Type: protocol.TypeAvailable})
	f.next(agent, protocol.TypeAssigned)
	f.next(cust, protocol.TypeAssigned)
}

// chat sends text from one side of a call and waits for the other to get it.
func (f *procFixture) chat(from, to *client.Client, text string) {
	f.t.Helper()
	f.send(from, protocol.Message{Type: protocol.TypeChat, Text: text})
	if m := f.next(to, protocol.TypeChat); m.Text != text {
		f.t.Fatalf("chat %q, want %q", m.Text, text)
	}
}

// ended waits for c's ended and checks its reason.
func (f *procFixture) ended(c *client.Client, who, reason string) {
	f.t.Helper()
	if m := f.next(c, protocol.TypeEnded); m.Reason != reason {
		f.t.Fatalf("%s: ended %+v, want reason %s", who, m, reason)
	}
}

// bye waits for c's bye (shutdown) and the close after it.
func (f *procFixture) bye(c *client.Client, who string) {
	f.t.Helper()
	if m := f.next(c, protocol.TypeBye); m.Reason != protocol.ReasonShutdown {
		f.t.Fatalf("%s: bye %+v, want reason shutdown", who, m)
	}
	if _, err := c.Next(f.ctx); !errors.Is(err, client.ErrClosed) {
		f.t.Fatalf("%s after bye: %v, want its connection closed", who, err)
	}
}

// closedAfterCall waits for c's connection to close without a bye.
func (f *procFixture) closedAfterCall(c *client.Client, who string) {
	f.t.Helper()
	if m, err := c.Next(f.ctx, protocol.TypeBye); !errors.Is(err, client.ErrClosed) {
		f.t.Fatalf("%s after its call: %+v %v, want its connection closed without bye", who, m, err)
	}
}

// exits waits for n to exit by itself and checks it exited 0.
func (f *procFixture) exits(n *nodetest.Node) {
	f.t.Helper()
	select {
	case <-n.Exited():
	case <-f.ctx.Done():
		f.t.Fatalf("%s did not exit: %v", n.ID, f.ctx.Err())
	}
	if n.Err() != nil {
		f.t.Fatalf("%s exited with %v", n.ID, n.Err())
	}
}

// get returns the status and body of GET path on n.
func get(t *testing.T, n *nodetest.Node, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(n.Base + path)
	if err != nil {
		t.Fatalf("GET %s on %s: %v", path, n.ID, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// registered waits until the registry lists node id with the given rooms
// and draining flag, and returns it.
func registered(ctx context.Context, t *testing.T, url, id string, rooms int, draining bool) {
	t.Helper()
	o, _ := redis.ParseURL(url)
	rdb := redis.NewClient(o)
	defer rdb.Close()
	reg := cluster.NewRegistry(rdb)
	var last []cluster.Node
	for {
		live, err := reg.Live(ctx)
		for _, n := range live {
			if n.ID == id && n.Load.Rooms == rooms && n.Draining == draining {
				return
			}
		}
		if err == nil {
			last = live
		}
		select {
		case <-ctx.Done():
			t.Fatalf("registry never listed %s with %d rooms, draining %v; last %+v", id, rooms, draining, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestDrainProcesses runs two serve processes on one private Redis and
// drains one with SIGTERM while it holds calls: one with both sides
// connected to it, one with the customer on the other node, both with
// their rooms on it. It answers /readyz with 503 and refuses connections
// but stays in the registry, marked draining; the calls go on (chat both
// ways, media); a new call goes to the other node, though the draining one
// has fewer rooms; once both calls are hung up the node exits 0 by itself.
func TestDrainProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rs := redistest.Start(t)
	f := newProcFixture(t, ctx)

	// n2 alone holds three calls (one agent of capacity 3), so that n1,
	// started next, is where the rooms of the next calls go.
	n2 := nodetest.Start(t, f.bin, nodetest.Options{ID: "n2", Config: f.config, Redis: rs.URL()})
	zAgent := f.join(n2, protocol.RoleAgent, "Zed", 3, false)
	f.send(zAgent, protocol.Message{Type: protocol.TypeAvailable})
	for _, name := range []string{"z1", "z2", "z3"} {
		z := f.join(n2, protocol.RoleCustomer, name, 0, false)
		f.next(z, protocol.TypeAssigned)
	}
	registered(ctx, t, rs.URL(), "n2", 3, false)
	n1 := nodetest.Start(t, f.bin, nodetest.Options{ID: "n1", Config: f.config, Redis: rs.URL(), Extra: []string{"--drain-timeout", "5m"}})
	registered(ctx, t, rs.URL(), "n1", 0, false)

	// Call A: both sides on n1, with media. Call B: its customer on n2,
	// its agent on n1; its room goes to n1, which has fewer.
	custA, agentA := f.join(n1, protocol.RoleCustomer, "ca", 0, true), f.join(n1, protocol.RoleAgent, "aa", 0, true)
	f.call(custA, agentA)
	for _, c := range []*client.Client{custA, agentA} {
		if err := c.PublishFiles(ctx, filepath.Join("..", "..", "testdata", "sample.ivf"), filepath.Join("..", "..", "testdata", "sample.ogg")); err != nil {
			t.Fatal(err)
		}
	}
	registered(ctx, t, rs.URL(), "n1", 1, false)
	custB, agentB := f.join(n2, protocol.RoleCustomer, "cb", 0, false), f.join(n1, protocol.RoleAgent, "ab", 0, false)
	f.call(custB, agentB)
	if r1, r2 := rooms(t, n1), rooms(t, n2); r1 != 2 || r2 != 3 {
		t.Fatalf("rooms: n1 %d, n2 %d; want 2 and 3", r1, r2)
	}
	// An agent on n1 with no call, and a customer waiting on n1.
	idle := f.join(n1, protocol.RoleAgent, "idle", 0, false)
	waiting := f.join(n1, protocol.RoleCustomer, "waiting", 0, false)
	f.next(waiting, protocol.TypeQueued)

	if err := n1.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	f.bye(idle, "idle agent")
	f.bye(waiting, "waiting customer")
	if code, body := get(t, n1, "/readyz"); code != http.StatusServiceUnavailable || body != "draining" {
		t.Fatalf("n1 /readyz while draining = %d %q, want 503 draining", code, body)
	}
	if code, _ := get(t, n1, "/healthz"); code != http.StatusOK {
		t.Fatalf("n1 /healthz while draining = %d, want 200", code)
	}
	if code, _ := get(t, n1, "/v1/signal"); code != http.StatusServiceUnavailable {
		t.Fatalf("n1 /v1/signal while draining = %d, want 503", code)
	}
	registered(ctx, t, rs.URL(), "n1", 2, true)

	// The calls go on, for several seconds.
	sigterm := time.Now()
	for i := 0; time.Since(sigterm) < 4*time.Second; i++ {
		f.chat(custA, agentA, "a from customer "+itoa(i))
		f.chat(agentA, custA, "a from agent "+itoa(i))
		f.chat(custB, agentB, "b from customer "+itoa(i))
		f.chat(agentB, custB, "b from agent "+itoa(i))
		time.Sleep(200 * time.Millisecond)
	}
	for who, c := range map[string]*client.Client{"customer": custA, "agent": agentA} {
		before := c.Stats().VideoPackets
		for c.Stats().VideoPackets < before+30 {
			if ctx.Err() != nil {
				t.Fatalf("%s of call A: no media while n1 drains (%+v, %v)", who, c.Stats(), c.MediaError())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// A new call goes to n2 although n1 has fewer rooms.
	custN, agentN := f.join(n2, protocol.RoleCustomer, "cn", 0, false), f.join(n2, protocol.RoleAgent, "an", 0, false)
	f.call(custN, agentN)
	if r1, r2 := rooms(t, n1), rooms(t, n2); r1 != 2 || r2 != 4 {
		t.Fatalf("rooms after a new call: n1 %d, n2 %d; want 2 and 4", r1, r2)
	}

	// Hang-ups end the calls as usual; the agents on n1 then get bye; n1,
	// empty, exits 0.
	f.send(custA, protocol.Message{Type: protocol.TypeHangup})
	f.ended(custA, "customer A", protocol.ReasonHangup)
	f.closedAfterCall(custA, "customer A")
	f.ended(agentA, "agent A", protocol.ReasonPeerLeft)
	f.bye(agentA, "agent A")
	select {
	case <-n1.Exited():
		t.Fatal("n1 exited with call B in progress")
	default:
	}
	f.send(agentB, protocol.Message{Type: protocol.TypeHangup})
	f.ended(agentB, "agent B", protocol.ReasonHangup)
	f.bye(agentB, "agent B")
	f.ended(custB, "customer B", protocol.ReasonPeerLeft)
	f.closedAfterCall(custB, "customer B")
	f.exits(n1)
	if !strings.Contains(n1.LogTail(4000), "drained") {
		t.Errorf("n1 did not log the end of its drain:\n%s", n1.LogTail(4000))
	}
	f.chat(custN, agentN, "n2 carries on")
}

// TestDrainCut: a node without Redis drains on SIGTERM (its waiting
// customer gets bye, its call goes on); then a second SIGTERM, or the drain
// timeout, ends the call (ended shutdown, then bye) and the process exits
// 0.
func TestDrainCut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := newProcFixture(t, ctx)
	for _, tt := range []struct {
		name    string
		timeout string
		signals int
	}{
		{"second signal", "30m", 2},
		{"drain timeout", "3s", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := *f
			f.t = t
			n := nodetest.Start(t, f.bin, nodetest.Options{ID: "single", Config: f.config, Redis: "", Extra: []string{"--drain-timeout", tt.timeout}})
			cust, agent := f.join(n, protocol.RoleCustomer, "c", 0, false), f.join(n, protocol.RoleAgent, "a", 0, false)
			f.call(cust, agent)
			waiting := f.join(n, protocol.RoleCustomer, "w", 0, false)
			f.next(waiting, protocol.TypeQueued)

			if err := n.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			f.bye(waiting, "waiting customer")
			if tt.signals == 2 {
				f.chat(cust, agent, "still here")
				if code, _ := get(t, n, "/readyz"); code != http.StatusServiceUnavailable {
					t.Fatalf("/readyz while draining = %d, want 503", code)
				}
				if err := n.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			for who, c := range map[string]*client.Client{"customer": cust, "agent": agent} {
				f.ended(c, who, protocol.ReasonShutdown)
				f.bye(c, who)
			}
			f.exits(n)
		})
	}
}
