package node

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/internal/redistest"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// TestOnePlacePerSubjectAcrossNodes: a customer token joined on a second
// node takes over its place there (same position), its first connection
// on the other node told bye{replaced} and closed; three connections of one
// token joining at once on two nodes leave exactly one place in the store,
// and the other two connections closed.
func TestOnePlacePerSubjectAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	dir := testOrgs(t)
	nodes := startNodes(t, rs, dir, "a", "b")
	store, err := queue.DialRedis(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waiting := func() []string {
		t.Helper()
		w, err := store.Waiting(ctx, "acme", "support")
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	queuedAt := func(c *client.Client, pos, length int) {
		t.Helper()
		for {
			if m := nextMsg(t, ctx, c, protocol.TypeQueued); m.Position == pos && m.Length == length {
				return
			}
		}
	}

	_, _ = joinAt(t, ctx, dir, nodes[0].ws, protocol.RoleCustomer, "Dora")
	first, w1 := joinAt(t, ctx, dir, nodes[0].ws, protocol.RoleCustomer, "Carl")
	queuedAt(first, 2, 2)
	second, w2 := joinAt(t, ctx, dir, nodes[1].ws, protocol.RoleCustomer, "Carl")
	if m := nextMsg(t, ctx, first, protocol.TypeBye); m.Reason != "replaced" {
		t.Fatalf("first connection told %+v, want bye{replaced}", m)
	}
	queuedAt(second, 2, 2)
	if w := waiting(); len(w) != 2 || w[1] != w2.Session || slices.Contains(w, w1.Session) {
		t.Fatalf("waiting %v, want Dora and Carl's new session %s", w, w2.Session)
	}

	// Three at once, on both nodes.
	org, _ := dir.Org("acme")
	tok, err := auth.Mint(org, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u-Zed"}, Role: protocol.RoleCustomer, Name: "Zed"},
		time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		c       *client.Client
		session string
	}
	results := make([]result, 3)
	var wg sync.WaitGroup
	for i, ws := range []string{nodes[0].ws, nodes[1].ws, nodes[0].ws} {
		c, err := client.Dial(ctx, client.Options{URL: ws, LoopbackOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		results[i].c = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One replaced before its welcome sees its connection closed.
			w, err := c.Join(ctx, tok)
			if err == nil {
				results[i].session = w.Session
			} else if !errors.Is(err, client.ErrClosed) {
				t.Errorf("join %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	var zed []string
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting: %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("two of Zed's connections closed", func() bool {
		n := 0
		for _, r := range results {
			if r.c.CloseCode() != 0 {
				n++
			}
		}
		return n == 2
	})
	var survivor *client.Client
	for _, r := range results {
		if r.c.CloseCode() == 0 {
			survivor = r.c
			zed = append(zed, r.session)
			continue
		}
		if code := r.c.CloseCode(); code != int(websocket.StatusNormalClosure) {
			t.Errorf("a replaced connection closed with %d, want 1000", code)
		}
	}
	if len(zed) != 1 || zed[0] == "" {
		t.Fatalf("surviving sessions %v, want one welcomed", zed)
	}
	w := waiting()
	n := 0
	for _, r := range results {
		if r.session != "" && slices.Contains(w, r.session) {
			n++
		}
	}
	if n != 1 || len(w) != 3 || !slices.Contains(w, zed[0]) {
		t.Fatalf("waiting %v: want Dora, Carl and Zed's surviving session %s only", w, zed[0])
	}
	queuedAt(survivor, 3, 3)
}
