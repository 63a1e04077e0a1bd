package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/internal/freeport"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestServeProcess runs the real binary with --dev: it prints the demo page
// URLs, answers health, readiness, metrics and demo-token requests, accepts
// a demo token over the signaling socket, and exits 0 on SIGTERM after
// telling connected clients.
func TestServeProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "helpcaster")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	httpPort, udpPort, tcpPort := freePort(t, "tcp"), freePort(t, "udp"), freePort(t, "tcp")
	addr := net.JoinHostPort("127.0.0.1", itoa(httpPort))
	cmd := exec.Command(bin, "serve", "--dev", "--listen", addr, "--media-udp-port", itoa(udpPort), "--media-tcp-port", itoa(tcpPort),
		"--media-loopback-only", "--log-format", "json", "--recordings-dir", t.TempDir(), "--turn-port", itoa(freeport.UDPAndTCP(t)), "--turn-relay-ports", "40000-40100")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder // read only once the process has exited
	cmd.Stderr = &stderr
	exited := func() string {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return stderr.String()
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// The banner names both demo pages.
	lines := make(chan string, 100)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	base := "http://" + addr
	want := map[string]bool{base + "/demo/customer.html": false, base + "/demo/agent.html": false}
	deadline := time.After(20 * time.Second)
	for seen := 0; seen < len(want); {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("serve exited early; stderr:\n%s", exited())
			}
			for u, got := range want {
				if !got && strings.HasSuffix(l, u) {
					want[u] = true
					seen++
				}
			}
		case <-deadline:
			t.Fatalf("banner incomplete: %v; stderr:\n%s", want, exited())
		}
	}

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/healthz", "/readyz", "/demo/customer.html", "/demo/agent.html"} {
		if code, _ := get(path); code != http.StatusOK {
			t.Errorf("GET %s = %d", path, code)
		}
	}
	// The profiler is served only with --debug-pprof.
	if code, _ := get("/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ without --debug-pprof = %d, want 404", code)
	}
	code, metrics := get("/metrics")
	for _, name := range []string{"helpcaster_signaling_connections", "helpcaster_sfu_rooms", "helpcaster_sfu_participants",
		"helpcaster_sfu_published_tracks", "helpcaster_sfu_subscribed_tracks", "helpcaster_sfu_rtp_packets_total",
		"helpcaster_sfu_rtp_bytes_total", "helpcaster_sfu_retransmissions_total", "process_cpu_seconds_total", "go_goroutines",
		"helpcaster_turn_allocations_active"} {
		if code != http.StatusOK || !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	code, body := get("/demo/token?role=agent")
	var tok struct{ Token string }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &tok) != nil || tok.Token == "" {
		t.Fatalf("demo token: %d %s", code, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{URL: "ws://" + addr + "/v1/signal", Origin: base, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Join(ctx, tok.Token); err != nil {
		t.Fatalf("join with demo token: %v", err)
	}

	// SIGTERM: the client is told, the process exits 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Next(ctx, protocol.TypeBye); err != nil || m.Reason != protocol.ReasonShutdown {
		t.Fatalf("bye: %+v %v", m, err)
	}
	done := make(chan error, 1)
	go func() {
		for range lines { // drain so the process never blocks on stdout
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exit: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not exit within 15s of SIGTERM")
	}
	// Logs are JSON and carry no token or demo user name.
	logs := stderr.String()
	if strings.Contains(logs, tok.Token) || regexp.MustCompile(`Agent \d{3}`).MatchString(logs) {
		t.Errorf("logs leak personal data:\n%s", logs)
	}
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("log line is not JSON: %s", l)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// lockedBuffer is a bytes.Buffer that a logger may write to while a test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestServeTokenSettings runs the server in-process with organizations
// that share a secret and --token-max-lifetime 30m: start-up logs a warning
// that names the organizations and not the secret, and join refuses a
// token living 2h while it accepts one living 30m and a demo token (which
// lives 1h unless the maximum is shorter).
func TestServeTokenSettings(t *testing.T) {
	const otherSecret = "initech-secret-0123456789abcdef0123456789"
	file := `
orgs:
  - id: globex
    api_key: globex-key
    api_secret: ` + testSecret + `
    queues: [help]
  - id: initech
    api_key: initech-key
    api_secret: ` + otherSecret + `
    queues: [help]
  - id: acme
    api_key: acme-key
    api_secret: ` + testSecret + `
    queues: [support]
`
	addr := net.JoinHostPort("127.0.0.1", itoa(freePort(t, "tcp")))
	cfg, err := loadServeConfig([]string{"--config", writeFile(t, file), "--listen", addr, "--media-udp-port", itoa(freePort(t, "udp")),
		"--media-tcp-port", "0", "--media-loopback-only", "--drain-timeout", "0", "--token-max-lifetime", "30m", "--dev", "--turn-port", "0", "--recordings-dir", t.TempDir()}, envFunc(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	stop := make(chan struct{}, 1)
	served := make(chan error, 1)
	go func() { served <- runServe(stop, cfg, logger, io.Discard) }()
	defer func() {
		stop <- struct{}{}
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("runServe: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("runServe did not return within 30s of stop")
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-served:
			t.Fatalf("runServe returned early: %v\nlogs:\n%s", err, logs.String())
		case <-ctx.Done():
			t.Fatalf("server not up: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}

	// The warning: one line, at WARN, naming acme and globex only.
	var warnings []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if strings.Contains(fmt.Sprint(rec["msg"]), "share one API secret") {
			warnings = append(warnings, rec)
		}
	}
	if len(warnings) != 1 || warnings[0]["level"] != "WARN" || fmt.Sprint(warnings[0]["orgs"]) != "[acme globex]" {
		t.Errorf("shared-secret warnings %v; want one WARN naming [acme globex]", warnings)
	}
	if strings.Contains(logs.String(), testSecret) || strings.Contains(logs.String(), otherSecret) {
		t.Errorf("logs hold a secret:\n%s", logs.String())
	}

	// The maximum lifetime reaches join.
	dir, err := auth.NewDirectory(cfg.Orgs)
	if err != nil {
		t.Fatal(err)
	}
	acme, _ := dir.Org("acme")
	resp, err := http.Get("http://" + addr + "/demo/token?role=agent")
	if err != nil {
		t.Fatal(err)
	}
	var demo struct{ Token string }
	err = json.NewDecoder(resp.Body).Decode(&demo)
	resp.Body.Close()
	if err != nil || demo.Token == "" {
		t.Fatalf("demo token: %v", err)
	}
	for _, tt := range []struct {
		ttl  time.Duration // 0: the demo token
		code protocol.Code
	}{{2 * time.Hour, protocol.CodeBadToken}, {30 * time.Minute, ""}, {0, ""}} {
		tok := demo.Token
		if tt.ttl != 0 {
			tok, err = auth.Mint(acme, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u-1"}, Role: protocol.RoleAgent}, tt.ttl, time.Now())
			if err != nil {
				t.Fatal(err)
			}
		}
		c, err := client.Dial(ctx, client.Options{URL: "ws://" + addr + "/v1/signal", LoopbackOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Join(ctx, tok)
		c.Close()
		what := fmt.Sprintf("a token living %v", tt.ttl)
		if tt.ttl == 0 {
			what = "the demo token"
		}
		switch {
		case err != nil && protocol.AsError(err).Code != tt.code:
			t.Errorf("join with %s: %v; want %q", what, err, tt.code)
		case err == nil && tt.code != "":
			t.Errorf("join with %s succeeded; want %s", what, tt.code)
		}
	}
}
