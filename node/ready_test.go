package node

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/internal/redistest"
)

// probe returns the status and body of GET url.
func probe(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// waitProbe polls url until it answers status with body, or fails after a
// generous while.
func waitProbe(t *testing.T, url string, status int, body string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, got := probe(t, url)
		if code == status && got == body {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answers %d %q, want %d %q", url, code, got, status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReadyFollowsQueueStore: a node whose Redis is down cannot place
// anyone, so /readyz answers 503 until Redis is back, while /healthz (the
// process is alive) stays 200 throughout.
func TestReadyFollowsQueueStore(t *testing.T) {
	rs := redistest.Start(t)
	n := startNodes(t, rs, testOrgs(t), "a")[0].n
	ready, live := n.URL()+"/readyz", n.URL()+"/healthz"

	waitProbe(t, ready, http.StatusOK, "ready")
	rs.Stop()
	waitProbe(t, ready, http.StatusServiceUnavailable, "queue store unreachable")
	if code, body := probe(t, live); code != http.StatusOK || body != "ok" {
		t.Errorf("healthz with Redis down: %d %q, want 200 ok", code, body)
	}
	rs.Restart(t)
	waitProbe(t, ready, http.StatusOK, "ready")
	if code, _ := probe(t, live); code != http.StatusOK {
		t.Errorf("healthz after Redis came back: %d", code)
	}
}

// TestStoreCheckCached: however often /readyz is asked, the store is
// pinged at most once per storeCheckEvery, and a failure is reported
// until a later ping succeeds.
func TestStoreCheckCached(t *testing.T) {
	pings := 0
	fail := errors.New("down")
	var next error
	c := &storeCheck{ping: func(context.Context) error { pings++; return next }}
	for range 100 {
		if err := c.check(); err != nil {
			t.Fatalf("check: %v", err)
		}
	}
	if pings != 1 {
		t.Fatalf("100 checks within %v pinged %d times, want 1", storeCheckEvery, pings)
	}
	next = fail
	time.Sleep(storeCheckEvery + 10*time.Millisecond)
	if err := c.check(); !errors.Is(err, fail) {
		t.Fatalf("check after the store failed: %v", err)
	}
	if pings != 2 {
		t.Fatalf("pings = %d, want 2", pings)
	}
	if !errors.Is(c.check(), fail) || pings != 2 {
		t.Fatalf("a cached failure: pings = %d", pings)
	}
	if err := (&storeCheck{}).check(); err != nil {
		t.Errorf("a memory store is always ready: %v", err)
	}
}
