// Package nodetest runs real `helpcaster serve` processes for tests: a
// binary built once, nodes on free loopback ports sharing one Redis, that a
// test can kill, signal, pause and start again on the same ports. Every
// process is killed when the test ends. HELPCASTER_TEST_LOGS=DIR keeps the
// nodes' logs in DIR (appended to) instead of the test's temporary
// directory.
package nodetest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/internal/testproc"
)

// readyTimeout bounds how long a started node may take to answer /readyz.
const readyTimeout = 30 * time.Second

// Build builds the helpcaster command in dir (a path to ./cmd/helpcaster,
// relative to the test's package) into a temporary directory, without the
// race detector whatever the test runs with (the nodes are the system under
// test, not the test), and returns the binary's path.
func Build(t testing.TB, dir string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "helpcaster")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("nodetest: go build %s: %v\n%s", dir, err, out)
	}
	return bin
}

// Options are one node's settings.
type Options struct {
	ID     string   // --node-id, and the log's name
	Config string   // --config: the orgs
	Redis  string   // --redis URL; "" for a node alone, with the memory store
	Extra  []string // more serve flags, e.g. --resume-grace 20s
}

// Node is one serve process, restartable on the same ports.
type Node struct {
	ID   string
	WS   string // ws://127.0.0.1:port/v1/signal
	Base string // http://127.0.0.1:port

	bin  string
	args []string
	log  string
	t    testing.TB

	mu      sync.Mutex
	cmd     *exec.Cmd     // guarded by mu
	exited  chan struct{} // guarded by mu; closed when cmd has exited
	exitErr error         // how the last process exited (cmd.Wait's error); guarded by mu
}

// Start runs a node and waits until it is ready; it is killed when the test
// ends, and its log is shown if the test failed.
func Start(t testing.TB, bin string, o Options) *Node {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t, "tcp")))
	logDir := os.Getenv("HELPCASTER_TEST_LOGS") // keep the nodes' logs there, to read after a failure
	if logDir == "" {
		logDir = t.TempDir()
	}
	n := &Node{ID: o.ID, WS: "ws://" + addr + "/v1/signal", Base: "http://" + addr, bin: bin, t: t,
		log: filepath.Join(logDir, o.ID+".log")}
	n.args = []string{"serve", "--config", o.Config, "--listen", addr,
		"--media-udp-port", strconv.Itoa(FreePort(t, "udp")), "--media-tcp-port", "0", "--media-loopback-only",
		"--log-level", "info", "--recordings-dir", filepath.Join(t.TempDir(), "recordings")}
	if o.Redis != "" {
		n.args = append(n.args, "--redis", o.Redis, "--node-id", o.ID)
	}
	n.args = append(n.args, o.Extra...)
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			t.Logf("%s log (end):\n%s", n.ID, n.LogTail(4000))
		}
	})
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	return n
}

// start runs the process (its log appended to) and waits for /readyz.
func (n *Node) start() error {
	f, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("nodetest: %w", err)
	}
	cmd := exec.Command(n.bin, n.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = testproc.DieWithParent()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("nodetest: start %s: %w", n.ID, err)
	}
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		f.Close()
		n.mu.Lock()
		n.exitErr = err
		n.mu.Unlock()
		close(exited)
	}()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := hc.Get(n.Base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("nodetest: %s exited before it was ready:\n%s", n.ID, n.LogTail(2000))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nodetest: %s not ready after %v (%v):\n%s", n.ID, readyTimeout, err, n.LogTail(2000))
		}
	}
}

// Restart starts a node that has exited again, on the same ports.
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	n.Kill()
	var err error
	// The old sockets may linger a moment.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err = n.start(); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// Signal sends sig to the running process.
func (n *Node) Signal(sig os.Signal) error {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("nodetest: %s never started", n.ID)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("nodetest: signal %s: %w", n.ID, err)
	}
	return nil
}

// Kill kills the process with SIGKILL and waits for it; harmless when it
// has exited.
func (n *Node) Kill() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Exited is closed once the current process has exited.
func (n *Node) Exited() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.exited
}

// Err is how the last process exited (nil: status 0), once Exited is
// closed.
func (n *Node) Err() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.exitErr
}

// LogTail returns the last max bytes of the node's log.
func (n *Node) LogTail(max int) string {
	b, _ := os.ReadFile(n.log)
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// FreePort returns a loopback port of network ("tcp" or "udp") that was free
// a moment ago, never the machine's shared Redis port.
func FreePort(t testing.TB, network string) int {
	t.Helper()
	for range 10 {
		var port int
		if network == "udp" {
			c, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port = c.LocalAddr().(*net.UDPAddr).Port
			c.Close()
		} else {
			l, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
		if port != 6379 {
			return port
		}
	}
	t.Fatal("nodetest: no free port")
	return 0
}
