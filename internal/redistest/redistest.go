// Package redistest runs a private redis-server for tests: its own process on
// a free loopback port (never the machine's shared 6379), no persistence, a
// temporary directory, stopped when the test ends.
//
// When redis-server is not installed the test is skipped, unless the
// environment requires Redis (CI=true, or HELPCASTER_REQUIRE_REDIS set to
// any non-empty value): then it fails.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/internal/testproc"
)

const (
	// startTimeout bounds how long a started server may take to answer PING.
	startTimeout = 10 * time.Second
	// sharedPort is the machine's own Redis; a test server never uses it.
	sharedPort = 6379
)

// Server is a private redis-server process.
type Server struct {
	bin  string
	dir  string
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error // receives cmd.Wait's result
	// hold keeps the port of a stopped server, so that no other process
	// (another test's server) takes it and answers in its place: clients
	// of a stopped server must find it down. nil while running.
	hold *testproc.PortHold
}

// Required reports whether the environment demands a real Redis for tests:
// CI=true, or HELPCASTER_REQUIRE_REDIS set (to any non-empty value).
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("HELPCASTER_REQUIRE_REDIS") != ""
}

// Start starts a private redis-server and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if Required() {
			t.Fatalf("redistest: redis-server not found in PATH, and Redis is required here (CI or HELPCASTER_REQUIRE_REDIS): %v; run scripts/install-test-deps.sh", err)
		}
		t.Skipf("redistest: redis-server not installed (%v); skipping. Install it with scripts/install-test-deps.sh, or set HELPCASTER_REQUIRE_REDIS=1 to make this a failure", err)
	}
	s := &Server{bin: bin, dir: t.TempDir()}
	t.Cleanup(func() { s.stop(); s.releasePort() })

	// A free port may be taken between choosing it and redis binding it:
	// try a few.
	var lastErr error
	for range 5 {
		port, err := testproc.FreePort(sharedPort)
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s.port = port
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// Addr returns the server's host:port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL returns a redis:// URL for the server.
func (s *Server) URL() string {
	return "redis://" + s.Addr() + "/0"
}

// Restart kills the server and starts a new one on the same port. Its data
// is gone (nothing is persisted), as after a crash of a cache-only Redis.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.stop()
	s.releasePort()
	if err := testproc.Retry(startTimeout, s.start); err != nil {
		t.Fatalf("redistest: restart on port %d: %v", s.port, err)
	}
}

// Stop kills the server (SIGKILL) and waits for it to exit, as if Redis
// crashed. Until Restart, the port stays held by the test: a connection
// to it is closed at once, without an answer, as if the server had gone,
// and no other server (another test's, started meanwhile on a port it
// found free) can answer in its place. Restart brings it back; stopping
// twice is harmless.
func (s *Server) Stop() {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold == nil {
		s.hold = testproc.HoldPort(s.Addr())
	}
}

func (s *Server) releasePort() {
	s.mu.Lock()
	h := s.hold
	s.hold = nil
	s.mu.Unlock()
	h.Release()
}

// Pause stops the server with SIGSTOP: it holds its connections and data
// but answers nothing, as a Redis stalled by the machine. Continue resumes
// it.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGSTOP)
}

// Continue resumes a paused server with SIGCONT.
func (s *Server) Continue(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGCONT)
}

func (s *Server) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		t.Fatalf("redistest: %v: not running", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("redistest: %v: %v", sig, err)
	}
}

// start runs redis-server on s.port and waits until it answers PING. On
// failure no process is left.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	logPath := filepath.Join(s.dir, fmt.Sprintf("redis-%d-%d.log", s.port, time.Now().UnixNano()))
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create log: %w", err)
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--protected-mode", "yes",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	)
	cmd.Dir = s.dir
	cmd.SysProcAttr = testproc.DieWithParent() // no orphan if the test binary is killed
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.Now().Add(startTimeout)
	for {
		// The pid check makes sure it is our process answering, not
		// another server that took the port first.
		if pid, err := serverPID(s.Addr()); err == nil && pid == cmd.Process.Pid {
			s.cmd, s.exited = cmd, exited
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server on port %d exited before answering PING (%v): %s", s.port, err, testproc.Tail(logPath))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on port %d did not answer PING within %v: %s", s.port, startTimeout, testproc.Tail(logPath))
		}
	}
}

// stop kills the process and waits for it. Safe to call when not running.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd, s.exited = nil, nil
}

// serverPID sends PING and INFO server over a fresh connection and returns
// the process_id of the server that answered.
func serverPID(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return 0, err
	}
	if _, err := c.Write([]byte("PING\r\nINFO server\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return 0, fmt.Errorf("PING answered %q", line)
	}
	head, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(head), "$"))
	if err != nil || !strings.HasPrefix(head, "$") {
		return 0, fmt.Errorf("INFO answered %q", strings.TrimSpace(head))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	for l := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server has no process_id")
}
