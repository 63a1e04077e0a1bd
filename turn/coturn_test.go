package turn

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// coturnTool finds one of coturn's test tools, skipping the test when it is
// missing unless CI demands it (make test installs the coturn package).
func coturnTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found; scripts/install-test-deps.sh installs the coturn package", name)
		}
		t.Skipf("%s not installed (Debian package coturn); skipping", name)
	}
	return p
}

// startPeer runs turnutils_peer, coturn's UDP echo peer, on a free
// loopback port.
func startPeer(t *testing.T) int {
	t.Helper()
	bin := coturnTool(t, "turnutils_peer")
	port := freePort(t, "udp")
	cmd := exec.Command(bin, "-L", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// It answers as soon as its socket is bound; give it a moment.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return port // taken: the peer is up
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("turnutils_peer did not bind its port")
	return 0
}

// peerPolicy allows loopback with turnutils_peer's two ports (RTP and
// RTCP, port and port+1) as the SFU's media ports.
func peerPolicy(port int) Policy {
	return loopbackPolicy(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1})
}

// uclient runs turnutils_uclient against s and returns its output and
// whether it exited 0.
func uclient(t *testing.T, s *Server, tcp bool, user, pass string, peerPort, messages, clients int) (string, bool) {
	t.Helper()
	bin := coturnTool(t, "turnutils_uclient")
	port := s.cfg.UDPPort
	args := []string{}
	if tcp {
		port = s.cfg.TCPPort
		args = append(args, "-t")
	}
	args = append(args, "-p", strconv.Itoa(port), "-u", user, "-w", pass, "-e", "127.0.0.1",
		"-r", strconv.Itoa(peerPort), "-n", strconv.Itoa(messages), "-m", strconv.Itoa(clients), "-l", "200", "-X", "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err == nil
}

var lostRe = regexp.MustCompile(`Total lost packets (\d+)`)
var sentRe = regexp.MustCompile(`Total transmit time is \d+`)

// TestCoturnClient: coturn's own client, with REST credentials, relays
// through our server to coturn's echo peer over UDP and over TCP without
// loss on loopback; expired and forged credentials are refused.
func TestCoturnClient(t *testing.T) {
	peer := startPeer(t)
	s, reg := startServer(t, peerPolicy(peer), 0)
	creds, _ := NewCredentials([]byte(testSecret), 10*time.Minute)
	user, pass := creds.Mint("uclient", time.Now())

	for _, tcp := range []bool{false, true} {
		name := map[bool]string{false: "udp", true: "tcp"}[tcp]
		before := counterValue(t, reg, "helpcaster_turn_relayed_packets_total", "direction", "to_client")
		out, ok := uclient(t, s, tcp, user, pass, peer, 100, 2)
		if !ok {
			t.Fatalf("%s: turnutils_uclient failed:\n%s", name, out)
		}
		m := lostRe.FindStringSubmatch(out)
		if m == nil || !sentRe.MatchString(out) {
			t.Fatalf("%s: no totals in the output:\n%s", name, out)
		}
		if m[1] != "0" {
			t.Errorf("%s: %s packets lost on loopback:\n%s", name, m[1], out)
		}
		relayed := counterValue(t, reg, "helpcaster_turn_relayed_packets_total", "direction", "to_client") - before
		if relayed < 200 {
			t.Errorf("%s: %v packets relayed back to the clients, want at least 200", name, relayed)
		}
		t.Logf("%s: %v packets relayed back; %s", name, relayed, bytes.TrimSpace([]byte(m[0])))
	}

	expired, _ := NewCredentials([]byte(testSecret), time.Minute)
	eu, ep := expired.Mint("late", time.Now().Add(-2*time.Minute))
	if out, ok := uclient(t, s, false, eu, ep, peer, 5, 1); ok {
		t.Errorf("expired credentials accepted:\n%s", out)
	}
	if out, ok := uclient(t, s, false, user, "Zm9yZ2Vk", peer, 5, 1); ok {
		t.Errorf("forged password accepted:\n%s", out)
	}
}

// TestCoturnClientDualStack: with the server listening on :: and an IPv4
// relay address (the documented dual-stack set-up), coturn's client, over
// IPv4 and asking for an IPv4 relay, relays to the echo peer without loss.
func TestCoturnClientDualStack(t *testing.T) {
	peer := startPeer(t)
	s, _ := startServerOn(t, "::", peerPolicy(peer), 0)
	user, pass := mint(t, "dual")
	out, ok := uclient(t, s, false, user, pass, peer, 20, 1)
	if !ok {
		t.Fatalf("turnutils_uclient failed:\n%s", out)
	}
	if m := lostRe.FindStringSubmatch(out); m == nil || m[1] != "0" {
		t.Errorf("packets lost on loopback:\n%s", out)
	}
}
