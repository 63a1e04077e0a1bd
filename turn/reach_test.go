package turn

import (
	"bytes"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
)

func mint(t *testing.T, id string) (string, string) {
	t.Helper()
	creds, err := NewCredentials([]byte(testSecret), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return creds.Mint(id, time.Now())
}

// expectSilence fails the test if conn receives anything within d.
func expectSilence(t *testing.T, what string, conn net.PacketConn, d time.Duration) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1500)
	if n, from, err := conn.ReadFrom(buf); err == nil {
		t.Errorf("%s: %d bytes came back from %v; want nothing", what, n, from)
	}
}

// echoes sends msg to peer through relay and waits for it to come back.
func echoes(t *testing.T, relay net.PacketConn, peer net.Addr) {
	t.Helper()
	if _, err := relay.WriteTo([]byte("media"), peer); err != nil {
		t.Fatal(err)
	}
	_ = relay.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := relay.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "media" || from.String() != peer.String() {
		t.Fatalf("echo through the relay: %q from %v, %v", buf[:n], from, err)
	}
}

// waitCounter waits (generously) until the series reaches want and returns
// its value then, or at the deadline.
func waitCounter(t *testing.T, reg *prometheus.Registry, name, label, value string, want float64) float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := counterValue(t, reg, name, label, value)
		if got >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRelayReachesOnlyMediaPort: with loopback allowed by the policy (as
// a public or allow-listed node address is), a relay reaches the SFU's
// media port at the node's address and nothing else there: a STUN Binding
// and an Allocate sent through a relay to the server's own UDP port get no
// answer, nor does data sent to another allocation's relay, and each is
// counted as a node_port refusal.
func TestRelayReachesOnlyMediaPort(t *testing.T) {
	media := echoPeer(t)
	s, reg := startServer(t, loopbackPolicy(media.LocalAddr()), 0)
	user, pass := mint(t, "prober")
	_, relay, err := client(t, s, user, pass)
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	user2, pass2 := mint(t, "bystander")
	c2, relay2, err := client(t, s, user2, pass2)
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	if err := c2.CreatePermission(relay.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	turnUDP := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: s.cfg.UDPPort}
	binding := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	allocate := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport, stun.Fingerprint)
	for _, send := range []struct {
		what string
		to   net.Addr
		data []byte
	}{
		{"STUN Binding to the TURN port", turnUDP, binding.Raw},
		{"Allocate to the TURN port", turnUDP, allocate.Raw},
		{"data to another relay", relay2.LocalAddr(), []byte("loop")},
	} {
		if _, err := relay.WriteTo(send.data, send.to); err != nil {
			t.Fatalf("%s: %v", send.what, err)
		}
		expectSilence(t, send.what, relay, time.Second)
	}
	expectSilence(t, "the other relay", relay2, 100*time.Millisecond)
	if got := waitCounter(t, reg, "helpcaster_turn_refused_total", "reason", ReasonNodePort, 3); got != 3 {
		t.Errorf("refused{node_port} = %v, want 3", got)
	}
	// The media port is reachable.
	echoes(t, relay, media.LocalAddr())
	if got := counterValue(t, reg, "helpcaster_turn_refused_total", "reason", ReasonNodePort); got != 3 {
		t.Errorf("refused{node_port} = %v after the media, want 3", got)
	}
}

// TestFloodWithoutPermission: a sender the client gave no permission
// floods the relay; its packets cost the allocation no bandwidth and are
// not counted as relayed, so the permitted peer's packets all arrive, and
// the counters hold exactly what was delivered.
func TestFloodWithoutPermission(t *testing.T) {
	s, reg := startServerOn(t, "127.0.0.1", loopbackPolicy(), 0, func(c *Config) {
		c.Bandwidth = 80_000 // 10 kB/s, a burst of 64 KiB
	})
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	flooder, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer flooder.Close()
	user, pass := mint(t, "flooded")
	c, relay, err := client(t, s, user, pass)
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	if err := c.CreatePermission(peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	const flood, wanted, size = 100, 50, 1000
	msg := bytes.Repeat([]byte("f"), size)
	for range flood {
		if _, err := flooder.WriteTo(msg, relay.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	if got := waitCounter(t, reg, "helpcaster_turn_refused_total", "reason", ReasonNoPermission, flood); got != flood {
		t.Errorf("refused{no_permission} = %v, want %d", got, flood)
	}
	msg = bytes.Repeat([]byte("p"), size)
	for range wanted {
		if _, err := peer.WriteTo(msg, relay.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	received := 0
	buf := make([]byte, 1500)
	for received < wanted {
		_ = relay.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := relay.ReadFrom(buf)
		if err != nil {
			break
		}
		if n != size || from.String() != peer.LocalAddr().String() || buf[0] != 'p' {
			t.Fatalf("got %d bytes from %v", n, from)
		}
		received++
	}
	if received != wanted {
		t.Errorf("the permitted peer's packets: %d of %d arrived", received, wanted)
	}
	waitCounter(t, reg, "helpcaster_turn_relayed_packets_total", "direction", "to_client", wanted)
	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"helpcaster_turn_relayed_packets_total", "direction", "to_client", wanted},
		{"helpcaster_turn_relayed_bytes_total", "direction", "to_client", wanted * size},
		{"helpcaster_turn_dropped_packets_total", "direction", "to_client", 0},
		{"helpcaster_turn_refused_total", "reason", ReasonNoPermission, flood},
	} {
		if got := counterValue(t, reg, c.name, c.label, c.value); got != c.want {
			t.Errorf("%s{%s=%s} = %v, want %v", c.name, c.label, c.value, got, c.want)
		}
	}
}

// TestDualStackListener: listening on :: with an IPv4 relay address (the
// documented set-up for a dual-stack node), IPv4 clients get IPv4 relays
// that work, an IPv6 client that does not ask for a family gets one too,
// and an IPv6 relay, which the IPv4 relay address cannot announce, is
// refused and counted.
func TestDualStackListener(t *testing.T) {
	media := echoPeer(t)
	s, reg := startServerOn(t, "::", loopbackPolicy(media.LocalAddr()), 0)
	user, pass := mint(t, "dual")
	_, relay, err := client(t, s, user, pass)
	if err != nil {
		t.Fatalf("IPv4 allocation on a dual-stack listener: %v", err)
	}
	echoes(t, relay, media.LocalAddr())

	v6 := func(family turn.RequestedAddressFamily) (net.PacketConn, error) {
		conn, err := net.ListenPacket("udp6", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Cleanup(func() { conn.Close() })
		addr := net.JoinHostPort("::1", strings.TrimPrefix(udpAddr(t, s), "127.0.0.1:"))
		c, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
			Username: user, Password: pass, Realm: DefaultRealm, RTO: 200 * time.Millisecond, RequestedAddressFamily: family})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Listen(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		r, err := c.Allocate()
		if err == nil {
			t.Cleanup(func() { r.Close() })
		}
		return r, err
	}
	r4, err := v6(turn.RequestedAddressFamilyIPv4) // pion omits the attribute for IPv4
	if err != nil {
		t.Fatalf("IPv6 client, no family asked: %v", err)
	}
	if ip := r4.LocalAddr().(*net.UDPAddr).IP; ip.To4() == nil {
		t.Errorf("IPv6 client got relay %v, want an IPv4 one", r4.LocalAddr())
	}
	echoes(t, r4, media.LocalAddr())
	if _, err := v6(turn.RequestedAddressFamilyIPv6); err == nil {
		t.Error("an IPv6 relay was allocated with an IPv4 relay address")
	}
	if got := counterValue(t, reg, "helpcaster_turn_refused_total", "reason", ReasonAddressFamily); got != 1 {
		t.Errorf("refused{address_family} = %v, want 1", got)
	}
}

// TestNoFreeRelayPort: an allocation finding no free port in the range is
// refused (508) and counted.
func TestNoFreeRelayPort(t *testing.T) {
	port := uint16(freePort(t, "udp"))
	s, reg := startServerOn(t, "127.0.0.1", Policy{}, 0, func(c *Config) { c.RelayMinPort, c.RelayMaxPort = port, port })
	user, pass := mint(t, "ports")
	if _, _, err := client(t, s, user, pass); err != nil {
		t.Fatalf("first allocation: %v", err)
	}
	if _, _, err := client(t, s, user, pass); err == nil {
		t.Fatal("second allocation on a one-port range succeeded")
	}
	if got := counterValue(t, reg, "helpcaster_turn_refused_total", "reason", ReasonNoPort); got != 1 {
		t.Errorf("refused{no_port} = %v, want 1", got)
	}
}

// freeEvenPair returns an even port p with p and p+1 free on loopback.
func freeEvenPair(t *testing.T) int {
	t.Helper()
	for range 50 {
		p := freePort(t, "udp") &^ 1
		a, err1 := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", itoa(p)))
		b, err2 := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", itoa(p+1)))
		for _, c := range []net.PacketConn{a, b} {
			if c != nil {
				c.Close()
			}
		}
		if err1 == nil && err2 == nil {
			return p
		}
	}
	t.Fatal("no free pair of ports")
	return 0
}

// TestEvenPortStaysInRange: an EVEN-PORT allocation at the top of the
// range reserves the port after it, outside the range; redeeming that
// reservation is refused (508) and counted, and no relay takes the port.
func TestEvenPortStaysInRange(t *testing.T) {
	p := freeEvenPair(t)
	s, reg := startServerOn(t, "127.0.0.1", Policy{}, 0, func(c *Config) { c.RelayMinPort, c.RelayMaxPort = uint16(p), uint16(p) })
	user, pass := mint(t, "even")
	a := newRawClient(t, s, user, pass)
	res := a.do(stun.MethodAllocate, udpTransport, evenPortR)
	if code(res) != 0 {
		t.Fatalf("EVEN-PORT allocation: error %d", code(res))
	}
	if got := relayed(t, res).Port; got != p {
		t.Fatalf("EVEN-PORT relay port %d, want %d", got, p)
	}
	var token stun.RawAttribute
	if v, err := res.Get(stun.AttrReservationToken); err == nil {
		token.Value = v
	} else {
		t.Fatalf("no reservation token: %v", err)
	}
	b := newRawClient(t, s, user, pass)
	res = b.do(stun.MethodAllocate, udpTransport, reservationToken(token.Value))
	if code(res) == 0 {
		t.Fatalf("reserved port handed out: relay %v outside %d-%d", relayed(t, res), p, p)
	}
	if code(res) != int(stun.CodeInsufficientCapacity) {
		t.Errorf("error %d, want 508", code(res))
	}
	if got := counterValue(t, reg, "helpcaster_turn_refused_total", "reason", ReasonRelayPort); got != 1 {
		t.Errorf("refused{relay_port} = %v, want 1", got)
	}
}

// TestMetricsAtStartup: every series whose labels are known at start-up
// is there, at 0, before anything happened.
func TestMetricsAtStartup(t *testing.T) {
	_, reg := startServer(t, Policy{}, 0)
	want := map[string][]string{
		"helpcaster_turn_refused_total": {ReasonQuotaUser, ReasonQuotaIP, ReasonTCPRelay, ReasonNoPort, ReasonAddressFamily,
			ReasonRelayPort, ReasonNodePort, ReasonNoPermission, ReasonUnspecified, ReasonPrivate, ReasonCGNAT,
			ReasonLoopback, ReasonLinkLocal, ReasonMulticast, ReasonReserved, ReasonDocumentation, ReasonTunnel},
		"helpcaster_turn_auth_failures_total":   {"expired", "malformed", "bad_password"},
		"helpcaster_turn_relayed_packets_total": {"to_peer", "to_client"},
		"helpcaster_turn_relayed_bytes_total":   {"to_peer", "to_client"},
		"helpcaster_turn_dropped_packets_total": {"to_peer", "to_client", "to_server"},
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				have[mf.GetName()+"/"+l.GetValue()] = m.GetCounter().GetValue() == 0
			}
		}
	}
	for name, values := range want {
		for _, v := range values {
			if zero, ok := have[name+"/"+v]; !ok || !zero {
				t.Errorf("%s{%s} at start-up: present %v, at 0 %v", name, v, ok, zero)
			}
		}
	}
}

// syncBuffer is a bytes.Buffer for a logger written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestRefusalLogsRateLimited: five refused permissions in a row make one
// log line (and five counts).
func TestRefusalLogsRateLimited(t *testing.T) {
	var logs syncBuffer
	s, reg := startServerOn(t, "127.0.0.1", Policy{}, 0, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	user, pass := mint(t, "noisy")
	c, _, err := client(t, s, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := c.CreatePermission(&net.UDPAddr{IP: net.IPv4(10, 0, 0, byte(i+1)), Port: 9}); err == nil {
			t.Fatal("permission to a private address granted")
		}
	}
	if got := counterValue(t, reg, "helpcaster_turn_refused_total", "reason", ReasonPrivate); got != 5 {
		t.Errorf("refused{private} = %v, want 5", got)
	}
	if n := strings.Count(logs.String(), "turn permission refused"); n != 1 {
		t.Errorf("%d log lines for 5 refusals within the interval, want 1:\n%s", n, logs.String())
	}
}

// TestRefusalClassLines: one line per interval per reason; the next one
// says how many were not logged in between.
func TestRefusalClassLines(t *testing.T) {
	var logs syncBuffer
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x"}, []string{"reason"})
	r := newRefusals(vec, slog.New(slog.NewTextHandler(&logs, nil)), 10*time.Second)
	c := r.class(ReasonNodePort)
	t0 := time.Unix(1_900_000_000, 0)
	for _, d := range []time.Duration{0, time.Second, 2 * time.Second, 9 * time.Second, 10 * time.Second, 11 * time.Second} {
		c.note(t0.Add(d))
	}
	r.class(ReasonPrivate).note(t0.Add(time.Second)) // another reason has its own interval
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	want := []string{"reason=node_port suppressed=0", "reason=node_port suppressed=3", "reason=private suppressed=0"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), logs.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) || !strings.Contains(lines[i], "turn ") {
			t.Errorf("line %d %q, want %q", i, lines[i], w)
		}
	}
	if r.class("no such reason") != r.class(ReasonUnspecified) {
		t.Error("an unknown reason is not counted as unspecified")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestChannelBindRefused403: a ChannelBind to a peer the policy refuses
// is answered 403 Forbidden (RFC 8656), signed, over UDP and over TCP, and
// counted; one to a public peer succeeds; one with a wrong password still
// gets pion's 401.
func TestChannelBindRefused403(t *testing.T) {
	s, reg := startServer(t, Policy{}, 0)
	user, pass := mint(t, "binder")
	for _, tcp := range []bool{false, true} {
		c := newRawClient(t, s, user, pass)
		if tcp {
			c = newRawClientTCP(t, s, user, pass)
		}
		if res := c.do(stun.MethodAllocate, udpTransport); code(res) != 0 {
			t.Fatalf("tcp=%v: allocate: error %d", tcp, code(res))
		}
		res := c.do(stun.MethodChannelBind, channelNumber(0x4000), &peerAddress{IP: net.IPv4(10, 0, 0, 1), Port: 9})
		if got := code(res); got != int(stun.CodeForbidden) {
			t.Errorf("tcp=%v: channel bind to a private peer: error %d, want 403", tcp, got)
		}
		if err := stun.NewLongTermIntegrity(user, c.realm, pass).Check(res); err != nil {
			t.Errorf("tcp=%v: the 403 is not signed with the client's key: %v", tcp, err)
		}
		res = c.do(stun.MethodChannelBind, channelNumber(0x4001), &peerAddress{IP: net.IPv4(8, 8, 8, 8), Port: 9})
		if got := code(res); got != 0 {
			t.Errorf("tcp=%v: channel bind to a public peer: error %d", tcp, got)
		}
		c.pass = "d3Jvbmc="
		res = c.do(stun.MethodChannelBind, channelNumber(0x4002), &peerAddress{IP: net.IPv4(10, 0, 0, 1), Port: 9})
		if got := code(res); got != int(stun.CodeUnauthorized) {
			t.Errorf("tcp=%v: channel bind with a wrong password: error %d, want 401", tcp, got)
		}
	}
	if got := counterValue(t, reg, "helpcaster_turn_refused_total", "reason", ReasonPrivate); got != 2 {
		t.Errorf("refused{private} = %v, want 2", got)
	}
}

// TestAuthFailureLogs: refused credentials are logged too, once per reason
// per interval, with the reason only.
func TestAuthFailureLogs(t *testing.T) {
	var logs syncBuffer
	s, reg := startServerOn(t, "127.0.0.1", Policy{}, 0, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	user, _ := mint(t, "forger")
	for range 3 {
		if _, _, err := client(t, s, user, "Zm9yZ2Vk"); err == nil {
			t.Fatal("a forged password allocated")
		}
	}
	if got := counterValue(t, reg, "helpcaster_turn_auth_failures_total", "reason", ReasonBadPassword); got < 3 {
		t.Errorf("auth_failures{bad_password} = %v, want at least 3", got)
	}
	if n := strings.Count(logs.String(), `msg="turn credentials refused" reason=bad_password`); n != 1 {
		t.Errorf("%d log lines for the refused credentials, want 1:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "forger") {
		t.Errorf("the username is in the logs:\n%s", logs.String())
	}
}
