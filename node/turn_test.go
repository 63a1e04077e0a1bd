package node

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/internal/freeport"
	"github.com/helpcaster/helpcaster/sfu"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/turn"
)

// TestCallThroughTURN: both sides of a call are forced to relay (ICE
// transport policy "relay") through the embedded TURN server, with the
// credentials the assigned message carries; media flows both ways and the
// TURN server counts the allocations and the relayed packets.
func TestCallThroughTURN(t *testing.T) {
	turnPort := freeport.UDPAndTCP(t)
	dir, n := startTURNNode(t, &TURNConfig{
		Secret: nodeTURNSecret, CredentialTTL: time.Hour, ListenIP: "127.0.0.1", Port: turnPort,
		RelayIP: "127.0.0.1", RelayMinPort: 41000, RelayMaxPort: 41999,
	})
	const secret = nodeTURNSecret
	ws := "ws" + strings.TrimPrefix(n.URL(), "http") + "/v1/signal"

	tctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	join := func(role, name string) *client.Client {
		org, _ := dir.Org("acme")
		tok, err := auth.Mint(org, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u-" + name}, Role: role, Name: name}, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(tctx, client.Options{URL: ws, LoopbackOnly: true, RelayOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		if _, err := c.Join(tctx, tok); err != nil {
			t.Fatal(err)
		}
		return c
	}
	agent := join(protocol.RoleAgent, "Ann")
	if err := agent.Send(tctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	cust := join(protocol.RoleCustomer, "Carl")
	a := nextMsg(t, tctx, cust, protocol.TypeAssigned)
	nextMsg(t, tctx, agent, protocol.TypeAssigned)

	// The ICE servers: the embedded server over UDP and TCP, with TURN REST
	// credentials for this participant that check out with the secret.
	if len(a.ICEServers) != 1 {
		t.Fatalf("ICE servers %+v", a.ICEServers)
	}
	is := a.ICEServers[0]
	port := strconv.Itoa(turnPort)
	wantURLs := []string{"turn:127.0.0.1:" + port + "?transport=udp", "turn:127.0.0.1:" + port + "?transport=tcp"}
	if strings.Join(is.URLs, " ") != strings.Join(wantURLs, " ") {
		t.Errorf("URLs %v, want %v", is.URLs, wantURLs)
	}
	creds, _ := turn.NewCredentials([]byte(secret), time.Hour)
	if _, err := creds.Check(is.Username, time.Now()); err != nil || creds.Password(is.Username) != is.Credential {
		t.Errorf("credentials %q/%q do not check out: %v", is.Username, is.Credential, err)
	}

	for _, c := range []*client.Client{cust, agent} {
		if err := c.PublishFiles(tctx, sample("sample.ivf"), sample("sample.ogg")); err != nil {
			t.Fatal(err)
		}
	}
	waitMedia(t, tctx, "customer", cust)
	waitMedia(t, tctx, "agent", agent)

	metrics := scrape(t, n.URL()+"/metrics")
	if v := metricValue(metrics, "helpcaster_turn_allocations_active"); v < 2 {
		t.Errorf("active TURN allocations %v, want at least 2", v)
	}
	for _, dir := range []string{"to_peer", "to_client"} {
		if v := metricValue(metrics, `helpcaster_turn_relayed_packets_total{direction="`+dir+`"}`); v < 100 {
			t.Errorf("TURN relayed %v packets %s, want at least 100", v, dir)
		}
	}
	// The SFU's own address is always allowed; nothing was refused, but
	// for the SFU's first checks, which may reach the relay before the
	// client's permission (no_permission).
	for _, line := range strings.Split(grepLines(metrics, "helpcaster_turn_refused_total{"), "\n") {
		if line != "" && !strings.HasSuffix(line, " 0") && !strings.Contains(line, `reason="no_permission"`) {
			t.Errorf("refusal counted: %s", line)
		}
	}
}

const nodeTURNSecret = "node-turn-secret-0123456789"

// startTURNNode runs a node on loopback with the TURN settings tc until the
// end of the test, and returns its organizations and the node.
func startTURNNode(t *testing.T, tc *TURNConfig) (*auth.Directory, *Node) {
	t.Helper()
	dir := testOrgs(t)
	n := runNode(t, Config{
		Orgs: dir, Media: sfu.Config{LoopbackOnly: true},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), TURN: tc,
	})
	return dir, n
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	_, body := probe(t, url)
	return body
}

// metricValue returns the value of the series named exactly series (name
// and labels as exposed), or -1.
func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func grepLines(text, prefix string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestExternalTURN: with an external TURN service, participants get its URLs
// with credentials minted with the shared secret, and no server runs here.
func TestExternalTURN(t *testing.T) {
	dir := testOrgs(t)
	const secret = "external-turn-secret-0123"
	external := []string{"turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349?transport=tcp"}
	n := runNode(t, Config{
		Orgs: dir, Media: sfu.Config{LoopbackOnly: true},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		TURN:   &TURNConfig{Secret: secret, CredentialTTL: 30 * time.Minute, External: external},
	})
	ws := "ws" + strings.TrimPrefix(n.URL(), "http") + "/v1/signal"
	tctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	agent, _ := joinAt(t, tctx, dir, ws, protocol.RoleAgent, "Ann")
	if err := agent.Send(tctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	cust, _ := joinAt(t, tctx, dir, ws, protocol.RoleCustomer, "Carl")
	a := nextMsg(t, tctx, cust, protocol.TypeAssigned)
	if len(a.ICEServers) != 1 || strings.Join(a.ICEServers[0].URLs, " ") != strings.Join(external, " ") {
		t.Fatalf("ICE servers %+v, want %v", a.ICEServers, external)
	}
	creds, _ := turn.NewCredentials([]byte(secret), 30*time.Minute)
	is := a.ICEServers[0]
	if _, err := creds.Check(is.Username, time.Now()); err != nil || creds.Password(is.Username) != is.Credential {
		t.Errorf("credentials %q/%q do not check out with the shared secret: %v", is.Username, is.Credential, err)
	}
	if strings.Contains(scrape(t, n.URL()+"/metrics"), "helpcaster_turn_allocations_active") {
		t.Error("a TURN server runs although only an external one is configured")
	}
}

// TestTURNReachesOnlyMediaPort: on a node whose loopback the TURN policy
// allows (as an operator allows its own network, or as a public address
// is), a relay reaches the SFU's media port and no other port of the
// node: a STUN Binding sent through it to the node's TURN port gets no
// answer, and that and a datagram to the signaling port are counted as
// node_port refusals; a datagram to the media port is not refused.
func TestTURNReachesOnlyMediaPort(t *testing.T) {
	turnPort := freeport.UDPAndTCP(t)
	_, n := startTURNNode(t, &TURNConfig{
		Secret: nodeTURNSecret, CredentialTTL: time.Hour, ListenIP: "127.0.0.1", Port: turnPort,
		RelayIP: "127.0.0.1", Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	creds, _ := turn.NewCredentials([]byte(nodeTURNSecret), time.Hour)
	user, pass := creds.Mint("prober", time.Now())
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	server := "127.0.0.1:" + strconv.Itoa(turnPort)
	c, err := pionturn.NewClient(&pionturn.ClientConfig{STUNServerAddr: server, TURNServerAddr: server, Conn: conn,
		Username: user, Password: pass, Realm: turn.DefaultRealm, RTO: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	defer relay.Close()

	binding := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if _, err := relay.WriteTo(binding.Raw, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: turnPort}); err != nil {
		t.Fatal(err)
	}
	_ = relay.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, from, err := relay.ReadFrom(make([]byte, 1500)); err == nil {
		t.Errorf("the TURN port answered through a relay: %d bytes from %v", n, from)
	}
	u, err := url.Parse(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	httpPort, _ := strconv.Atoi(u.Port())
	if _, err := relay.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: httpPort}); err != nil {
		t.Fatal(err)
	}
	if _, err := relay.WriteTo(binding.Raw, n.MediaAddr()); err != nil {
		t.Fatal(err)
	}
	const series = `helpcaster_turn_refused_total{reason="node_port"}`
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(scrape(t, n.URL()+"/metrics"), series) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// The media datagram went out after the other two: once they are
	// counted, give it a moment to be counted too if it were refused.
	time.Sleep(200 * time.Millisecond)
	if v := metricValue(scrape(t, n.URL()+"/metrics"), series); v != 2 {
		t.Errorf("%s = %v, want 2 (the TURN port and the signaling port, not the media port)", series, v)
	}
}
