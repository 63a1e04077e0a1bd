package turn

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const testSecret = "test-secret-0123456789"

// startServer runs a TURN server on free loopback ports (UDP and TCP).
func startServer(t *testing.T, policy Policy, quotaUser int) (*Server, *prometheus.Registry) {
	t.Helper()
	return startServerOn(t, "127.0.0.1", policy, quotaUser)
}

// startServerOn starts a server listening on listen ("": all addresses),
// with its configuration changed by each of more.
func startServerOn(t *testing.T, listen string, policy Policy, quotaUser int, more ...func(*Config)) (*Server, *prometheus.Registry) {
	t.Helper()
	creds, err := NewCredentials([]byte(testSecret), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := Config{
		ListenIP: listen, UDPPort: freePort(t, "udp"), TCPPort: freePort(t, "tcp"),
		RelayIP: net.ParseIP("127.0.0.1"), Credentials: creds, Policy: policy,
		AllocationsPerUser: quotaUser, Registerer: reg,
	}
	for _, f := range more {
		f(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, reg
}

// loopbackPolicy allows loopback peers, with the SFU's media port (the only
// port the relay reaches at an address of the node, loopback included) at
// the ports of media.
func loopbackPolicy(media ...net.Addr) Policy {
	p := Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	for _, m := range media {
		p.MediaPorts = append(p.MediaPorts, uint16(m.(*net.UDPAddr).Port))
	}
	return p
}

// echoPeer is a UDP echo server on loopback, closed at the end of the test.
func echoPeer(t *testing.T) net.PacketConn {
	t.Helper()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { peer.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := peer.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = peer.WriteTo(buf[:n], from)
		}
	}()
	return peer
}

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

// udpURL returns host:port of the server's UDP listener.
func udpAddr(t *testing.T, s *Server) string {
	t.Helper()
	for _, u := range s.URLs("127.0.0.1") {
		if strings.HasSuffix(u, "transport=udp") {
			return strings.TrimSuffix(strings.TrimPrefix(u, "turn:"), "?transport=udp")
		}
	}
	t.Fatal("no UDP URL")
	return ""
}

// client allocates with user/pass over UDP; the error is the allocation's.
func client(t *testing.T, s *Server, user, pass string) (*turn.Client, net.PacketConn, error) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := udpAddr(t, s)
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn, Username: user, Password: pass,
		Realm: DefaultRealm, RTO: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	relay, err := c.Allocate()
	if err == nil {
		t.Cleanup(func() { relay.Close() })
	}
	return c, relay, err
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || hasLabel(m.GetLabel(), label, value) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func hasLabel(ls []*dto.LabelPair, name, value string) bool {
	for _, l := range ls {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// TestRelayPolicy: permissions towards every denied range are refused (and
// counted by reason); a public address is allowed. Only permissions are
// asked for: no data is sent to any of these addresses.
func TestRelayPolicy(t *testing.T) {
	s, reg := startServer(t, Policy{}, 0)
	creds, _ := NewCredentials([]byte(testSecret), 10*time.Minute)
	user, pass := creds.Mint("policy", time.Now())
	c, _, err := client(t, s, user, pass)
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	cases := map[string]string{
		"0.0.0.0": ReasonUnspecified, "10.1.2.3": ReasonPrivate, "172.16.0.1": ReasonPrivate,
		"192.168.1.1": ReasonPrivate, "100.64.0.1": ReasonCGNAT, "127.0.0.1": ReasonLoopback,
		"169.254.169.254": ReasonLinkLocal, "224.0.0.1": ReasonMulticast, "240.0.0.1": ReasonReserved,
	}
	want := map[string]float64{}
	for ip, reason := range cases {
		err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP(ip), Port: 9})
		if err == nil {
			t.Errorf("permission to %s granted; want refused (%s)", ip, reason)
		}
		want[reason]++
	}
	for reason, n := range want {
		if got := counterValue(t, reg, "helpcaster_turn_refused_total", "reason", reason); got != n {
			t.Errorf("refused{reason=%s} = %v, want %v", reason, got, n)
		}
	}
	if err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP("8.8.8.8"), Port: 9}); err != nil {
		t.Errorf("permission to a public address refused: %v", err)
	}
	if got := counterValue(t, reg, "helpcaster_turn_allocations_active", "", ""); got != 1 {
		t.Errorf("active allocations = %v, want 1", got)
	}
}

// TestRelayTraffic relays to a loopback echo peer (loopback allow-listed)
// both ways and counts it, with the server on one address and on all
// addresses (relays then bind to 0.0.0.0 and announce the relay IP).
func TestRelayTraffic(t *testing.T) {
	for _, listen := range []string{"127.0.0.1", ""} {
		t.Run("listen="+listen, func(t *testing.T) { testRelayTraffic(t, listen) })
	}
}

func testRelayTraffic(t *testing.T, listen string) {
	peer := echoPeer(t)
	s, reg := startServerOn(t, listen, loopbackPolicy(peer.LocalAddr()), 0)
	creds, _ := NewCredentials([]byte(testSecret), 10*time.Minute)
	user, pass := creds.Mint("traffic", time.Now())
	_, relay, err := client(t, s, user, pass)
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	const n = 50
	msg := bytes.Repeat([]byte("x"), 200)
	buf := make([]byte, 1500)
	for i := range n {
		if _, err := relay.WriteTo(msg, peer.LocalAddr()); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		_ = relay.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, from, err := relay.ReadFrom(buf)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if got != len(msg) || from.String() != peer.LocalAddr().String() {
			t.Fatalf("echo %d: %d bytes from %v", i, got, from)
		}
	}
	// pion's client binds a channel after its first packets: most of the
	// echoes then take the fast path, both ways.
	if got := s.fast.relayed.Load(); got < n {
		t.Errorf("fast path relayed %d packets, want at least %d of %d", got, n, 2*n)
	}
	// A packet is counted once it is delivered, which may be after its
	// echo has come back: wait briefly for the counters to settle.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) &&
		(counterValue(t, reg, "helpcaster_turn_relayed_packets_total", "direction", "to_peer") < n ||
			counterValue(t, reg, "helpcaster_turn_relayed_packets_total", "direction", "to_client") < n) {
		time.Sleep(5 * time.Millisecond)
	}
	for _, dir := range []string{"to_peer", "to_client"} {
		if got := counterValue(t, reg, "helpcaster_turn_relayed_packets_total", "direction", dir); got != n {
			t.Errorf("packets %s = %v, want %d", dir, got, n)
		}
		if got := counterValue(t, reg, "helpcaster_turn_relayed_bytes_total", "direction", dir); got != n*200 {
			t.Errorf("bytes %s = %v, want %d", dir, got, n*200)
		}
	}
}

// TestAuthAndQuota: expired and forged credentials are refused and counted;
// a user over its allocation quota is refused.
func TestAuthAndQuota(t *testing.T) {
	s, reg := startServer(t, Policy{}, 2)
	creds, _ := NewCredentials([]byte(testSecret), 10*time.Minute)
	user, pass := creds.Mint("quota", time.Now())

	expired, _ := NewCredentials([]byte(testSecret), time.Minute)
	eu, ep := expired.Mint("late", time.Now().Add(-2*time.Minute))
	if _, _, err := client(t, s, eu, ep); err == nil {
		t.Error("expired credentials allocated")
	}
	if _, _, err := client(t, s, user, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="); err == nil {
		t.Error("forged password allocated")
	}
	forger, _ := NewCredentials([]byte("another-secret-0123456"), 10*time.Minute)
	fu, fp := forger.Mint("forged", time.Now())
	if _, _, err := client(t, s, fu, fp); err == nil {
		t.Error("credentials from another secret allocated")
	}
	if got := counterValue(t, reg, "helpcaster_turn_auth_failures_total", "reason", "expired"); got < 1 {
		t.Errorf("expired failures = %v", got)
	}
	if got := counterValue(t, reg, "helpcaster_turn_auth_failures_total", "reason", "bad_password"); got < 2 {
		t.Errorf("bad_password failures = %v", got)
	}
	for i := range 2 {
		if _, _, err := client(t, s, user, pass); err != nil {
			t.Fatalf("allocation %d within quota: %v", i+1, err)
		}
	}
	if _, _, err := client(t, s, user, pass); err == nil {
		t.Error("third allocation of a user with quota 2 was granted")
	}
	if got := counterValue(t, reg, "helpcaster_turn_refused_total", "reason", "quota_user"); got != 1 {
		t.Errorf("refused{quota_user} = %v, want 1", got)
	}
}

func TestNewErrors(t *testing.T) {
	creds, _ := NewCredentials([]byte(testSecret), time.Minute)
	busy, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.LocalAddr().(*net.UDPAddr).Port
	for name, cfg := range map[string]Config{
		"no credentials": {UDPPort: 3478, RelayIP: net.ParseIP("127.0.0.1")},
		"no listener":    {Credentials: creds, RelayIP: net.ParseIP("127.0.0.1")},
		"no relay ip":    {Credentials: creds, UDPPort: 3478},
		"port in use":    {Credentials: creds, ListenIP: "127.0.0.1", UDPPort: port, RelayIP: net.ParseIP("127.0.0.1")},
		"bad relay range": {Credentials: creds, ListenIP: "127.0.0.1", UDPPort: freePort(t, "udp"), RelayIP: net.ParseIP("127.0.0.1"),
			RelayMinPort: 50000, RelayMaxPort: 40000},
		"listen and relay of two families": {Credentials: creds, ListenIP: "::1", UDPPort: freePort(t, "udp"), RelayIP: net.ParseIP("127.0.0.1")},
	} {
		if s, err := New(cfg); err == nil {
			s.Close()
			t.Errorf("%s: New succeeded", name)
		} else if name == "port in use" && !strings.Contains(err.Error(), "UDP port") {
			t.Errorf("port in use: error %q does not name the port", err)
		}
	}
}

// TestNoTCPRelay: a TCP relay (RFC 6062) is refused.
func TestNoTCPRelay(t *testing.T) {
	s, reg := startServer(t, Policy{}, 0)
	creds, _ := NewCredentials([]byte(testSecret), 10*time.Minute)
	user, pass := creds.Mint("tcp", time.Now())
	var tcpURL string
	for _, u := range s.URLs("127.0.0.1") {
		if strings.HasSuffix(u, "transport=tcp") {
			tcpURL = strings.TrimSuffix(strings.TrimPrefix(u, "turn:"), "?transport=tcp")
		}
	}
	conn, err := net.Dial("tcp", tcpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: tcpURL, TURNServerAddr: tcpURL,
		Conn: turn.NewSTUNConn(conn), Username: user, Password: pass, Realm: DefaultRealm})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	if a, err := c.AllocateTCP(); err == nil {
		a.Close()
		t.Fatal("TCP relay allocated")
	}
	if got := counterValue(t, reg, "helpcaster_turn_refused_total", "reason", "tcp_relay"); got != 1 {
		t.Errorf("refused{tcp_relay} = %v, want 1", got)
	}
	// A UDP relay over the same TCP connection is fine.
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("UDP relay over TCP: %v", err)
	}
	relay.Close()
}
