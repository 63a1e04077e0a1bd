// Package testproc holds what the tests' private servers (redistest,
// s3test, nodetest) share about running a process on a loopback port: a
// free port, a port held while the server is down, the end of its log for
// an error message, a process that dies with the test binary, and retrying
// a start. It has no state of its own.
package testproc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago and is
// none of avoid (such as the machine's shared Redis port).
func FreePort(avoid ...int) (int, error) {
	for range 10 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		if !slices.Contains(avoid, port) {
			return port, nil
		}
	}
	return 0, errors.New("find a free port: only got ports to avoid")
}

// Tail returns the end of a log file, for error messages.
func Tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const n = 2000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	if len(b) == 0 {
		return "(empty log)"
	}
	return strings.TrimSpace(string(b))
}

// Retry calls start until it succeeds or within has passed, and returns
// its last error: a server restarted on its old port may find the old
// socket lingering for a moment.
func Retry(within time.Duration, start func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := start()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PortHold is a listener on a stopped server's port that closes every
// connection it accepts: clients find the server down, and no other
// process (another test's server, started meanwhile on a port it found
// free) can take the port and answer in its place.
type PortHold struct {
	ln   net.Listener
	done chan struct{}
}

// HoldPort listens on addr; nil when it cannot (the port was taken in the
// moment since the server died: the test then runs as before).
func HoldPort(addr string) *PortHold {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil
	}
	h := &PortHold{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return h
}

// Release stops listening and waits for the accept loop to end. A nil
// hold releases nothing.
func (h *PortHold) Release() {
	if h == nil {
		return
	}
	_ = h.ln.Close()
	<-h.done
}
