package node

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/helpcaster/helpcaster/cluster"
	"github.com/helpcaster/helpcaster/internal/redistest"
	"github.com/helpcaster/helpcaster/signaling/auth"
)

// TestNodeRegisters: a node with Redis appears in the cluster registry with
// its address and load while it runs, and is gone once it has stopped.
func TestNodeRegisters(t *testing.T) {
	rs := redistest.Start(t)
	dir, err := auth.NewDirectory(nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Listener: ln, Orgs: dir, RedisURL: rs.URL(), NodeID: "node-a",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()

	o, _ := redis.ParseURL(rs.URL())
	rdb := redis.NewClient(o)
	defer rdb.Close()
	reg := cluster.NewRegistry(rdb)
	deadline := time.Now().Add(10 * time.Second)
	for {
		live, err := reg.Live(context.Background())
		if err == nil && len(live) == 1 && live[0].ID == "node-a" && live[0].Addr == n.URL() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not registered: %+v %v", live, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if live, err := reg.Live(context.Background()); err != nil || len(live) != 0 {
		t.Errorf("after stopping: live nodes %+v, %v; want none", live, err)
	}
}
