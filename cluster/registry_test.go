package cluster

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/helpcaster/helpcaster/internal/redistest"
)

// fakeClock is a settable clock for the registry.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClient(t *testing.T) *redis.Client {
	t.Helper()
	srv := redistest.Start(t)
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newFake(t *testing.T, opts ...Option) (*Registry, *fakeClock, *redis.Client) {
	t.Helper()
	c := newClient(t)
	clk := &fakeClock{t: time.UnixMilli(1_700_000_000_000)}
	return NewRegistry(c, append([]Option{WithClock(clk.Now)}, opts...)...), clk, c
}

func node(id string, rooms, parts int, cpu float64) Node {
	return Node{ID: id, Addr: "https://" + id + ".example:8443", Load: Load{Rooms: rooms, Participants: parts, Tracks: 2 * parts, CPU: cpu}}
}

func ids(ns []Node) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.ID
	}
	return strings.Join(s, ",")
}

func mustHeartbeat(t *testing.T, r *Registry, n Node) {
	t.Helper()
	if err := r.Heartbeat(context.Background(), n); err != nil {
		t.Fatalf("Heartbeat(%s): %v", n.ID, err)
	}
}

func mustLeast(t *testing.T, r *Registry) Node {
	t.Helper()
	n, ok, err := r.Least(context.Background())
	if err != nil || !ok {
		t.Fatalf("Least: %v, %v, %v", n, ok, err)
	}
	return n
}

func TestRegisterAndLive(t *testing.T) {
	r, clk, _ := newFake(t)
	ctx := context.Background()

	live, err := r.Live(ctx)
	if err != nil || len(live) != 0 {
		t.Fatalf("empty Live = %v, %v", live, err)
	}
	if n, ok, err := r.Least(ctx); err != nil || ok {
		t.Fatalf("empty Least = %v, %v, %v", n, ok, err)
	}

	mustHeartbeat(t, r, node("n2", 1, 2, 0.5))
	mustHeartbeat(t, r, node("n1", 3, 4, 0.25))
	clk.Advance(time.Second)
	in := node("n3", 0, 0, 0)
	in.Seen = time.Unix(1, 0) // ignored
	mustHeartbeat(t, r, in)

	live, err = r.Live(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(live); got != "n1,n2,n3" {
		t.Fatalf("Live ids = %s", got)
	}
	want := node("n1", 3, 4, 0.25)
	want.Seen = clk.Now().Add(-time.Second)
	if got := live[0]; got.ID != want.ID || got.Addr != want.Addr || got.Load != want.Load || !got.Seen.Equal(want.Seen) {
		t.Fatalf("Live[0] = %+v, want %+v", got, want)
	}
	if !live[2].Seen.Equal(clk.Now()) {
		t.Fatalf("n3 Seen = %v, want %v", live[2].Seen, clk.Now())
	}

	// A second heartbeat replaces, it does not duplicate.
	mustHeartbeat(t, r, node("n1", 5, 5, 0.9))
	live, err = r.Live(ctx)
	if err != nil || ids(live) != "n1,n2,n3" || live[0].Load.Rooms != 5 {
		t.Fatalf("after update Live = %+v, %v", live, err)
	}
}

func TestLeastFollowsLoad(t *testing.T) {
	r, _, _ := newFake(t)

	mustHeartbeat(t, r, node("a", 2, 10, 0.1))
	mustHeartbeat(t, r, node("b", 1, 50, 0.9))
	mustHeartbeat(t, r, node("c", 1, 20, 0.8))
	if got := mustLeast(t, r).ID; got != "c" { // fewest rooms, then fewest participants
		t.Fatalf("Least = %s, want c", got)
	}

	mustHeartbeat(t, r, node("c", 3, 20, 0.8))
	if got := mustLeast(t, r).ID; got != "b" {
		t.Fatalf("after c grew Least = %s, want b", got)
	}

	// Same rooms and participants: CPU decides; then the ID.
	mustHeartbeat(t, r, node("a", 1, 50, 0.3))
	if got := mustLeast(t, r).ID; got != "a" {
		t.Fatalf("CPU tie-break Least = %s, want a", got)
	}
	mustHeartbeat(t, r, node("b", 1, 50, 0.3))
	if got := mustLeast(t, r).ID; got != "a" {
		t.Fatalf("ID tie-break Least = %s, want a", got)
	}
	mustHeartbeat(t, r, node("a", 1, 50, 0.31))
	if got := mustLeast(t, r); got.ID != "b" || got.Addr != "https://b.example:8443" {
		t.Fatalf("Least = %+v, want b", got)
	}
}

func TestStaleNodeDropped(t *testing.T) {
	const ttl = 10 * time.Second
	r, clk, c := newFake(t, WithTTL(ttl))
	ctx := context.Background()

	mustHeartbeat(t, r, node("idle", 0, 0, 0)) // least loaded, but will die
	mustHeartbeat(t, r, node("busy", 9, 90, 0.9))
	if got := mustLeast(t, r).ID; got != "idle" {
		t.Fatalf("Least = %s, want idle", got)
	}

	// busy keeps heartbeating; idle stops. Exactly TTL old is still live.
	clk.Advance(ttl / 2)
	mustHeartbeat(t, r, node("busy", 9, 90, 0.9))
	clk.Advance(ttl / 2)
	if live, err := r.Live(ctx); err != nil || ids(live) != "busy,idle" {
		t.Fatalf("at TTL Live = %v, %v", ids(live), err)
	}
	clk.Advance(time.Millisecond)
	live, err := r.Live(ctx)
	if err != nil || ids(live) != "busy" {
		t.Fatalf("past TTL Live = %v, %v", ids(live), err)
	}
	for range 3 {
		if got := mustLeast(t, r).ID; got != "busy" {
			t.Fatalf("Least = %s, want busy", got)
		}
	}
	// Dropped from the sorted set in Redis, not only filtered.
	if n, err := c.ZCard(ctx, keySeen).Result(); err != nil || n != 1 {
		t.Fatalf("ZCARD %s = %d, %v", keySeen, n, err)
	}

	// All dead: no placement.
	clk.Advance(ttl)
	if n, ok, err := r.Least(ctx); err != nil || ok {
		t.Fatalf("all stale Least = %+v, %v, %v", n, ok, err)
	}

	// A dead node that comes back is live again.
	mustHeartbeat(t, r, node("idle", 0, 0, 0))
	if got := mustLeast(t, r).ID; got != "idle" {
		t.Fatalf("back Least = %s", got)
	}

	// Safety net: the detail key carries a Redis expiry.
	if d, err := c.PTTL(ctx, keyNodePrefix+"idle").Result(); err != nil || d <= 0 || d > 3*ttl {
		t.Fatalf("PTTL detail = %v, %v", d, err)
	}
}

func TestMissingDetailsSkipped(t *testing.T) {
	r, _, c := newFake(t)
	ctx := context.Background()
	mustHeartbeat(t, r, node("a", 0, 0, 0))
	mustHeartbeat(t, r, node("b", 1, 0, 0))
	if err := c.Del(ctx, keyNodePrefix+"a").Err(); err != nil { // as if expired
		t.Fatal(err)
	}
	if live, err := r.Live(ctx); err != nil || ids(live) != "b" {
		t.Fatalf("Live = %v, %v", ids(live), err)
	}
}

func TestLeave(t *testing.T) {
	r, _, c := newFake(t)
	ctx := context.Background()
	mustHeartbeat(t, r, node("a", 0, 0, 0))
	mustHeartbeat(t, r, node("b", 5, 5, 0.5))
	if err := r.Leave(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if live, err := r.Live(ctx); err != nil || ids(live) != "b" {
		t.Fatalf("Live after Leave = %v, %v", ids(live), err)
	}
	if got := mustLeast(t, r).ID; got != "b" {
		t.Fatalf("Least after Leave = %s", got)
	}
	if n, err := c.Exists(ctx, keyNodePrefix+"a").Result(); err != nil || n != 0 {
		t.Fatalf("detail key left: %d, %v", n, err)
	}
	if err := r.Leave(ctx, "never-was"); err != nil {
		t.Fatalf("Leave unknown: %v", err)
	}
}

func TestRunHeartbeatsAndLeaves(t *testing.T) {
	c := newClient(t)
	r := NewRegistry(c, WithTTL(time.Second))
	other := NewRegistry(c, WithTTL(time.Second)) // another node's view

	var (
		mu    sync.Mutex
		calls int
	)
	self := func() Node {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return node("runner", calls, 0, 0)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, self, 20*time.Millisecond) }()

	// Wait (bounded) until a heartbeat after the first is visible.
	deadline := time.Now().Add(1500 * time.Millisecond)
	for {
		n, ok, err := other.Least(context.Background())
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if ok && n.ID == "runner" && n.Load.Rooms >= 3 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("no repeated heartbeats seen: last %+v ok=%v", n, ok)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(1500 * time.Millisecond):
		t.Fatal("Run did not return after cancel")
	}
	if live, err := other.Live(context.Background()); err != nil || len(live) != 0 {
		t.Fatalf("Live after Run ended = %v, %v", ids(live), err)
	}
}

func TestRunRefusesBadArgs(t *testing.T) {
	r, _, _ := newFake(t, WithTTL(time.Second))
	ctx := context.Background()
	if err := r.Run(ctx, func() Node { return node("x", 0, 0, 0) }, time.Second); !errors.Is(err, ErrInvalid) {
		t.Fatalf("interval = TTL: %v", err)
	}
	if err := r.Run(ctx, func() Node { return node("", 0, 0, 0) }, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty id: %v", err)
	}
}

func TestBadInputRefused(t *testing.T) {
	r, _, c := newFake(t)
	ctx := context.Background()
	badIDs := map[string]string{
		"empty":   "",
		"long":    strings.Repeat("x", MaxIDLen+1),
		"newline": "a\nb",
		"nul":     "a\x00b",
		"del":     "a\x7fb",
		"c1":      "a\u0085b",
		"utf8":    "a\xffb",
	}
	for name, id := range badIDs {
		t.Run(name, func(t *testing.T) {
			if err := r.Heartbeat(ctx, node(id, 0, 0, 0)); !errors.Is(err, ErrInvalid) {
				t.Errorf("Heartbeat(%q) = %v", id, err)
			}
			if err := r.Leave(ctx, id); !errors.Is(err, ErrInvalid) {
				t.Errorf("Leave(%q) = %v", id, err)
			}
		})
	}
	if err := ValidateID(strings.Repeat("x", MaxIDLen)); err != nil {
		t.Errorf("max-length id refused: %v", err)
	}
	if err := ValidateID("node-1.eu-west:ünïcode"); err != nil {
		t.Errorf("ordinary id refused: %v", err)
	}

	badNodes := map[string]Node{
		"no addr":   {ID: "a"},
		"addr ctl":  {ID: "a", Addr: "http://x\r\n"},
		"neg rooms": {ID: "a", Addr: "x", Load: Load{Rooms: -1}},
		"neg parts": {ID: "a", Addr: "x", Load: Load{Participants: -1}},
		"neg track": {ID: "a", Addr: "x", Load: Load{Tracks: -1}},
		"cpu > 1":   {ID: "a", Addr: "x", Load: Load{CPU: 1.5}},
		"cpu < 0":   {ID: "a", Addr: "x", Load: Load{CPU: -0.1}},
		"cpu NaN":   {ID: "a", Addr: "x", Load: Load{CPU: math.NaN()}},
	}
	for name, n := range badNodes {
		if err := r.Heartbeat(ctx, n); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Heartbeat = %v", name, err)
		}
	}
	// Nothing was written.
	if keys, err := c.Keys(ctx, "hc:nodes:*").Result(); err != nil || len(keys) != 0 {
		t.Fatalf("keys after bad input: %v, %v", keys, err)
	}
}

// TestDrainingNode: a draining node stays live (its heartbeat says so, and
// Live lists it with the flag) but Least never picks it, however idle; with
// every live node draining, Least finds none. Back from draining (a
// heartbeat without the flag), it is placed on again.
func TestDrainingNode(t *testing.T) {
	r, _, _ := newFake(t)
	ctx := context.Background()

	idle := node("idle", 0, 0, 0)
	idle.Draining = true
	mustHeartbeat(t, r, idle)
	mustHeartbeat(t, r, node("busy", 5, 10, 0.9))

	live, err := r.Live(ctx)
	if err != nil || ids(live) != "busy,idle" {
		t.Fatalf("Live = %+v, %v; want busy and idle", live, err)
	}
	if live[0].Draining || !live[1].Draining {
		t.Fatalf("Live draining flags = %v, %v; want false, true", live[0].Draining, live[1].Draining)
	}
	if got := mustLeast(t, r).ID; got != "busy" {
		t.Fatalf("Least = %s, want busy (idle is draining)", got)
	}

	b := node("busy", 5, 10, 0.9)
	b.Draining = true
	mustHeartbeat(t, r, b)
	if n, ok, err := r.Least(ctx); err != nil || ok {
		t.Fatalf("Least with every node draining = %+v, %v, %v; want none", n, ok, err)
	}
	if live, err := r.Live(ctx); err != nil || len(live) != 2 {
		t.Fatalf("Live with every node draining = %+v, %v; want both", live, err)
	}

	mustHeartbeat(t, r, node("idle", 0, 0, 0))
	if got := mustLeast(t, r).ID; got != "idle" {
		t.Fatalf("Least = %s, want idle once it no longer drains", got)
	}
}
