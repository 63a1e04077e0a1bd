package node

import (
	"context"
	"net"
	"testing"
)

// runNode starts a node with cfg, on a free loopback port unless cfg names
// a listener, and stops it when the test ends, failing the test if Run
// returned an error.
func runNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	if cfg.Listener == nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Listener = ln
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return n
}
