package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// server is a helpcaster serve process started by a test.
type server struct {
	cmd  *exec.Cmd
	base string // http://127.0.0.1:PORT
	log  string // file with the process's stdout and stderr
	// recordings is the server's --recordings-dir (a temporary directory),
	// unless the extra flags name another.
	recordings string
	exited     chan struct{}
	err        error // the process's exit status, once exited is closed
	http       *http.Client
}

// buildBinary builds ../cmd/helpcaster into dir and returns its path, or
// returns HELPCASTER_BENCH_BINARY when set (a binary built beforehand, so a
// run measures a fixed build while the tree changes).
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv("HELPCASTER_BENCH_BINARY"); bin != "" {
		return bin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, "helpcaster")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../cmd/helpcaster").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freePort returns a loopback port of network ("tcp" or "udp") that was free
// a moment ago.
func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer runs `helpcaster serve --dev` on loopback with media on one
// UDP port and no ICE over TCP, plus extra flags, waits until /readyz
// answers, and stops the process when the test ends (SIGTERM, then SIGKILL).
func startServer(t *testing.T, bin string, extra ...string) *server {
	t.Helper()
	httpPort, udpPort := freePort(t, "tcp"), freePort(t, "udp")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	logPath := filepath.Join(t.TempDir(), "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	recordings := filepath.Join(t.TempDir(), "recordings")
	args := append([]string{"serve", "--dev", "--listen", addr,
		"--media-udp-port", strconv.Itoa(udpPort), "--media-tcp-port", "0",
		"--media-loopback-only", "--log-level", "warn", "--recordings-dir", recordings}, extra...)
	cmd := exec.Command(bin, args...)
	// HELPCASTER_BENCH_SERVE_ENV adds environment variables to the server
	// only, e.g. "GOMAXPROCS=1 GOGC=200".
	cmd.Env = append(os.Environ(), strings.Fields(os.Getenv("HELPCASTER_BENCH_SERVE_ENV"))...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start server: %v", err)
	}
	s := &server{cmd: cmd, base: "http://" + addr, log: logPath, recordings: recordings, exited: make(chan struct{}),
		http: &http.Client{Timeout: 10 * time.Second}}
	go func() {
		s.err = cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	t.Cleanup(s.stop)

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := s.http.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("server exited before it was ready: %v\n%s", s.err, s.logTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after 30s (last error %v)\n%s", err, s.logTail())
		}
	}
}

// stop ends the process: SIGTERM, up to 15s for a clean exit, then SIGKILL.
func (s *server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return
	case <-time.After(15 * time.Second):
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
	}
}

// alive reports an error if the process has exited.
func (s *server) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("server exited: %v\n%s", s.err, s.logTail())
	default:
		return nil
	}
}

// logTail returns the last few KiB the server logged.
func (s *server) logTail() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return "(no server log: " + err.Error() + ")"
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

// get fetches path from the server and returns the body of a 200 answer.
func (s *server) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// token returns a demo token for role ("agent" or "customer").
func (s *server) token(ctx context.Context, role string) (string, error) {
	b, err := s.get(ctx, "/demo/token?role="+role)
	if err != nil {
		return "", err
	}
	var v struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Token == "" {
		return "", fmt.Errorf("demo token: %v in %q", err, b)
	}
	return v.Token, nil
}

// metrics scrapes /metrics.
func (s *server) metrics(ctx context.Context) (metrics, error) {
	b, err := s.get(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	return parseMetrics(b)
}

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics([]byte(`# HELP x_total Something.
# TYPE x_total counter
x_total{kind="audio",direction="out"} 10
x_total{kind="video",direction="out"} 2.5e+01
x_total{kind="video",direction="in"} 7
y 3 1700000000000
z{a="q\"u,o}te"} 1
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.sum("x_total", "direction", "out"); got != 35 {
		t.Errorf("sum out = %v, want 35", got)
	}
	if got := m.sum("x_total"); got != 42 {
		t.Errorf("sum = %v, want 42", got)
	}
	if got := m.sum("y"); got != 3 {
		t.Errorf("y = %v, want 3", got)
	}
	if got := m["z"]; len(got) != 1 || got[0].labels["a"] != `q"u,o}te` {
		t.Errorf("z = %+v", got)
	}
	if _, err := parseMetrics([]byte("bad{a=1} 2\n")); err == nil {
		t.Error("bad label accepted")
	}
}

// saveProfile saves the server's profile of kind ("profile" for CPU,
// "allocs") over d to path; the server must run with --debug-pprof.
func (s *server) saveProfile(ctx context.Context, kind string, d time.Duration, path string) error {
	url := fmt.Sprintf("%s/debug/pprof/%s?seconds=%d", s.base, kind, int(d.Round(time.Second)/time.Second))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: d + 30*time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("fetch profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch profile: %s (is --debug-pprof set?)", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("save profile: %w", err)
	}
	return f.Close()
}
