package turn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Defaults for Config.
const (
	DefaultRealm              = "helpcaster"
	DefaultAllocationsPerUser = 10
	DefaultAllocationsPerIP   = 50
	DefaultBandwidth          = 10_000_000 // bits/s per allocation, each way
	DefaultAllocationLifetime = 10 * time.Minute
)

// Config configures a Server.
type Config struct {
	// ListenIP is the address the listeners bind to ("" = all).
	ListenIP string
	// UDPPort and TCPPort are the TURN ports (3478 usually); 0 turns that
	// listener off. Both 0 with no TLS is an error.
	UDPPort, TCPPort int
	// TLSPort with TLSCert serves TURN over TLS (5349 usually).
	TLSPort int
	TLSCert *tls.Certificate
	// RelayIP is the address announced for relayed transports (the server's
	// public IP); RelayMinPort..RelayMaxPort the UDP ports relays use
	// (0, 0: any free port).
	RelayIP                    net.IP
	RelayMinPort, RelayMaxPort uint16
	Realm                      string
	Credentials                *Credentials
	// Policy is the relay policy; the relay address and a listen address
	// other than "" are added to its Node addresses.
	Policy Policy
	// Quotas; 0 means the default.
	AllocationsPerUser int
	AllocationsPerIP   int
	Bandwidth          int           // bits/s per allocation, each way
	AllocationLifetime time.Duration // granted when the client asks for none (pion grants up to an hour when asked)
	Logger             *slog.Logger
	Registerer         prometheus.Registerer
}

// Server is a running TURN server.
type Server struct {
	cfg      Config
	srv      *turn.Server
	log      *slog.Logger
	metrics  *metrics
	refusals *refusals     // helpcaster_turn_refused_total
	authFail *refusals     // helpcaster_turn_auth_failures_total
	local    *localAddrs   // the machine's interface addresses, refreshed by a goroutine
	stop     chan struct{} // closed by Close: ends the refresh of local
	stopped  chan struct{} // closed when that goroutine has returned
	stopOnce sync.Once
	urls     []string

	mu     sync.Mutex
	byUser map[string]int // active allocations per username
	byIP   map[string]int // active allocations per client IP

	pump *pump     // the UDP data plane: listener and relay sockets
	fast fastState // fastpath.go
}

// New starts a TURN server on the configured listeners.
func New(cfg Config) (*Server, error) {
	if cfg.Credentials == nil {
		return nil, errors.New("turn: no credentials")
	}
	if cfg.UDPPort == 0 && cfg.TCPPort == 0 && (cfg.TLSPort == 0 || cfg.TLSCert == nil) {
		return nil, errors.New("turn: no listener (give a UDP, TCP or TLS port)")
	}
	if cfg.RelayIP == nil {
		return nil, errors.New("turn: no relay address")
	}
	if (cfg.RelayMinPort == 0) != (cfg.RelayMaxPort == 0) || cfg.RelayMinPort > cfg.RelayMaxPort {
		return nil, fmt.Errorf("turn: relay port range %d-%d is not valid (give both, the first not above the second)", cfg.RelayMinPort, cfg.RelayMaxPort)
	}
	if cfg.Realm == "" {
		cfg.Realm = DefaultRealm
	}
	cfg.AllocationsPerUser = orDefault(cfg.AllocationsPerUser, DefaultAllocationsPerUser)
	cfg.AllocationsPerIP = orDefault(cfg.AllocationsPerIP, DefaultAllocationsPerIP)
	cfg.Bandwidth = orDefault(cfg.Bandwidth, DefaultBandwidth)
	if cfg.AllocationLifetime <= 0 {
		cfg.AllocationLifetime = DefaultAllocationLifetime
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	relayIP, ok := netip.AddrFromSlice(cfg.RelayIP)
	if !ok {
		return nil, fmt.Errorf("turn: relay address %v is not an IP address", cfg.RelayIP)
	}
	relayIP = relayIP.Unmap()
	cfg.Policy.Node = append(slices.Clip(cfg.Policy.Node), relayIP)
	if cfg.ListenIP != "" {
		ip, err := netip.ParseAddr(cfg.ListenIP)
		if err != nil {
			return nil, fmt.Errorf("turn: listen address %q is not an IP address: %w", cfg.ListenIP, err)
		}
		ip = ip.Unmap()
		// Relays bind to the listen address and are announced as the relay
		// address: one family for both (an unspecified address takes both).
		if !ip.IsUnspecified() && ip.Is4() != relayIP.Is4() {
			return nil, fmt.Errorf("turn: relay address %s and listen address %s are not of one address family", relayIP, ip)
		}
		cfg.Policy.Node = append(cfg.Policy.Node, ip)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	local, err := newLocalAddrs()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: m, refusals: newRefusals(m.refused, cfg.Logger, refusalLogInterval),
		authFail: newAuthRefusals(m.authFailures, cfg.Logger, refusalLogInterval),
		local:    local, byUser: map[string]int{}, byIP: map[string]int{}}
	s.fast.relays = map[netip.AddrPort]*relayConn{}
	s.fast.fwd = map[fwdKey]fwdEntry{}

	gen, err := newRelayGen(s)
	if err != nil {
		return nil, err
	}
	// Relays are UDP sockets whatever the client's transport: the pump
	// serves them all.
	if s.pump, err = newPump(s); err != nil {
		return nil, err
	}
	var closers []func()
	fail := func(err error) (*Server, error) {
		for _, c := range closers {
			c()
		}
		s.pump.close()
		return nil, err
	}
	sc := turn.ServerConfig{
		Realm:              cfg.Realm,
		AuthHandler:        s.auth,
		QuotaHandler:       s.quota,
		EventHandler:       s.events(),
		AllocationLifetime: cfg.AllocationLifetime,
		LoggerFactory:      &slogFactory{log: cfg.Logger},
		// An Allocate without REQUESTED-ADDRESS-FAMILY gets an IPv4 relay
		// (RFC 8656), not one of the family the client came over: a client
		// reaching a dual-stack listener over IPv6 must still get a relay
		// the IPv4 relay address can announce. With an IPv6 relay address,
		// pion's default (the family of the listener or of the client).
		StrictAddressFamily: relayIP.Is4(),
	}
	host := cfg.ListenIP
	if cfg.UDPPort != 0 {
		u, err := s.pump.listen(host, cfg.UDPPort)
		if err != nil {
			return fail(fmt.Errorf("turn: listen on UDP port %d: %w", cfg.UDPPort, err))
		}
		closers = append(closers, func() { u.Close() })
		s.fast.lis = u
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{
			PacketConn: u, RelayAddressGenerator: gen, PermissionHandler: s.permit,
		})
		s.urls = append(s.urls, "turn:%s:"+strconv.Itoa(u.local.Port)+"?transport=udp")
	}
	if cfg.TCPPort != 0 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(cfg.TCPPort)))
		if err != nil {
			return fail(fmt.Errorf("turn: listen on TCP port %d: %w", cfg.TCPPort, err))
		}
		closers = append(closers, func() { ln.Close() })
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{
			Listener: &screenListener{Listener: ln, s: s}, RelayAddressGenerator: gen, PermissionHandler: s.permit,
		})
		s.urls = append(s.urls, "turn:%s:"+strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)+"?transport=tcp")
	}
	if cfg.TLSPort != 0 && cfg.TLSCert != nil {
		ln, err := tls.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(cfg.TLSPort)),
			&tls.Config{Certificates: []tls.Certificate{*cfg.TLSCert}, MinVersion: tls.VersionTLS12})
		if err != nil {
			return fail(fmt.Errorf("turn: listen on TLS port %d: %w", cfg.TLSPort, err))
		}
		closers = append(closers, func() { ln.Close() })
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{
			Listener: &screenListener{Listener: ln, s: s}, RelayAddressGenerator: gen, PermissionHandler: s.permit,
		})
		s.urls = append(s.urls, "turns:%s:"+strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)+"?transport=tcp")
	}
	srv, err := turn.NewServer(sc)
	if err != nil {
		return fail(fmt.Errorf("turn: %w", err))
	}
	s.srv = srv
	s.stop, s.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.stopped)
		s.local.run(s.stop, func(err error) { s.log.Warn("turn: interface addresses not refreshed", "err", err) })
	}()
	return s, nil
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// URLs returns the server's TURN URLs for clients that reach it at host
// (an IP or a name).
func (s *Server) URLs(host string) []string {
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
		host = "[" + host + "]"
	}
	out := make([]string, len(s.urls))
	for i, u := range s.urls {
		out[i] = fmt.Sprintf(u, host)
	}
	return out
}

// Allocations is the number of active allocations.
func (s *Server) Allocations() int { return s.srv.AllocationCount() }

// Close stops the server and its allocations.
func (s *Server) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.stopped
	err := s.srv.Close()
	s.pump.close()
	if err != nil {
		return fmt.Errorf("turn: close: %w", err)
	}
	return nil
}

// auth checks a request's username (its expiry) and gives pion the long-term
// key to verify the message integrity with.
func (s *Server) auth(ra *turn.RequestAttributes) (string, []byte, bool) {
	if _, err := s.cfg.Credentials.Check(ra.Username, time.Now()); err != nil {
		reason := ReasonMalformed
		if errors.Is(err, ErrExpired) {
			reason = ReasonExpired
		}
		s.authFail.refuse(reason)
		return "", nil, false
	}
	return ra.Username, turn.GenerateAuthKey(ra.Username, ra.Realm, s.cfg.Credentials.Password(ra.Username)), true
}

// quota refuses an allocation beyond the per-user or per-IP limit.
func (s *Server) quota(username, _ string, src net.Addr) bool {
	ip := addrIP(src)
	reason := ""
	s.mu.Lock()
	switch {
	case s.byUser[username] >= s.cfg.AllocationsPerUser:
		reason = ReasonQuotaUser
	case s.byIP[ip] >= s.cfg.AllocationsPerIP:
		reason = ReasonQuotaIP
	}
	s.mu.Unlock()
	if reason != "" {
		s.refusals.refuse(reason)
		return false
	}
	return true
}

// permit applies the relay policy to a CreatePermission or ChannelBind.
// The peer address is not the client's personal data, but the log keeps
// only the reason, as for every refusal.
func (s *Server) permit(_ net.Addr, peer net.IP) bool {
	reason := ReasonUnspecified
	if ip, ok := netip.AddrFromSlice(peer); ok {
		reason = s.cfg.Policy.Check(ip)
	}
	if reason == "" {
		return true
	}
	s.refusals.refuse(reason)
	return false
}

func (s *Server) events() turn.EventHandler {
	return turn.EventHandler{
		OnAuth: func(_, _ net.Addr, _, username, _, _ string, verdict bool) {
			if verdict {
				return
			}
			// Expired and malformed usernames were counted by auth.
			if _, err := s.cfg.Credentials.Check(username, time.Now()); err == nil {
				s.authFail.refuse(ReasonBadPassword)
			}
		},
		OnAllocationCreated: func(src, _ net.Addr, _, username, _ string, _ net.Addr, _ int) {
			s.mu.Lock()
			s.byUser[username]++
			s.byIP[addrIP(src)]++
			s.mu.Unlock()
			s.metrics.created.Inc()
			s.metrics.active.Inc()
		},
		OnPermissionCreated: func(_, _ net.Addr, _, _, _ string, relay net.Addr, peer net.IP) {
			s.permission(relay, peer, true)
		},
		OnPermissionDeleted: func(_, _ net.Addr, _, _, _ string, relay net.Addr, peer net.IP) {
			s.permission(relay, peer, false)
		},
		OnChannelCreated: func(src, dst net.Addr, protocol, _, _ string, relay, peer net.Addr, number uint16) {
			s.channelCreated(src, dst, protocol, relay, peer, number)
		},
		OnChannelDeleted: func(src, _ net.Addr, _, _, _ string, relay, peer net.Addr, number uint16) {
			s.channelDeleted(src, relay, peer, number)
		},
		OnAllocationDeleted: func(src, _ net.Addr, _, username, _ string) {
			s.mu.Lock()
			if s.byUser[username]--; s.byUser[username] <= 0 {
				delete(s.byUser, username)
			}
			ip := addrIP(src)
			if s.byIP[ip]--; s.byIP[ip] <= 0 {
				delete(s.byIP, ip)
			}
			s.mu.Unlock()
			s.metrics.active.Dec()
		},
	}
}

func addrIP(a net.Addr) string {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.IP.String()
	case *net.TCPAddr:
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// relayGen opens allocations' relay sockets (in the pump) on a free port
// of the range and hands them to pion wrapped in a relayConn.
type relayGen struct {
	s        *Server
	announce net.IP     // the relay address given to clients
	bind     netip.Addr // the address relay sockets bind to; unspecified: any
	min, max uint16
}

// relayPortTries is how many random ports of the range are tried for an
// allocation before it is refused.
const relayPortTries = 20

func newRelayGen(s *Server) (*relayGen, error) {
	g := &relayGen{s: s, announce: s.cfg.RelayIP, min: s.cfg.RelayMinPort, max: s.cfg.RelayMaxPort}
	if g.min == 0 && g.max == 0 {
		g.min, g.max = 49152, 65535
	}
	if s.cfg.ListenIP != "" {
		// New checked it.
		g.bind = netip.MustParseAddr(s.cfg.ListenIP).Unmap()
	}
	return g, nil
}

func (g *relayGen) Validate() error { return nil }

// AllocatePacketConn opens a relay socket for an allocation (c.Network
// "udp4" or "udp6"), or for pion's search for an even port (EVEN-PORT). The
// relay is of the relay address's family, and bound to the listen address,
// or to the family's unspecified address when that is "", 0.0.0.0 or ::.
// Each refusal (pion answers 508) is counted and logged.
func (g *relayGen) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	v4 := c.Network == "udp4"
	if v4 != (g.announce.To4() != nil) {
		g.s.refusals.refuse(ReasonAddressFamily)
		return nil, nil, fmt.Errorf("turn: no %s relay: the relay address is %s", c.Network, g.announce)
	}
	bind := g.bind
	switch {
	case (!bind.IsValid() || bind.IsUnspecified()) && v4:
		bind = netip.IPv4Unspecified()
	case !bind.IsValid() || bind.IsUnspecified():
		bind = netip.IPv6Unspecified()
	}
	try := func(port int) (*relayConn, net.Addr, error) {
		u, err := g.s.pump.open(bind, port, true, false)
		if err != nil {
			return nil, nil, err
		}
		addr := &net.UDPAddr{IP: g.announce, Port: u.local.Port}
		return g.s.wrap(u, addr), addr, nil
	}
	if c.RequestedPort != 0 {
		// The port after an EVEN-PORT reservation: it may lie past the range.
		if c.RequestedPort < int(g.min) || c.RequestedPort > int(g.max) {
			g.s.refusals.refuse(ReasonRelayPort)
			return nil, nil, fmt.Errorf("turn: relay port %d is outside %d-%d", c.RequestedPort, g.min, g.max)
		}
		rc, addr, err := try(c.RequestedPort)
		if err != nil {
			g.s.refusals.refuse(ReasonNoPort)
			return nil, nil, fmt.Errorf("turn: relay port %d: %w", c.RequestedPort, err)
		}
		return rc, addr, nil
	}
	var err error
	for range relayPortTries {
		port := int(g.min) + rand.IntN(int(g.max)-int(g.min)+1)
		var rc *relayConn
		var addr net.Addr
		if rc, addr, err = try(port); err == nil {
			return rc, addr, nil
		}
	}
	g.s.refusals.refuse(ReasonNoPort)
	return nil, nil, fmt.Errorf("turn: no free relay port in %d-%d after %d tries: %w", g.min, g.max, relayPortTries, err)
}

// errNoTCPRelay refuses TCP relays (RFC 6062): WebRTC clients ask for UDP
// relays (over any transport to the server), and a TCP relay would bypass
// the byte counting, the bandwidth cap and the port check.
var errNoTCPRelay = errors.New("turn: TCP relays are not offered")

func (g *relayGen) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	g.s.refusals.refuse(ReasonTCPRelay)
	return nil, nil, errNoTCPRelay
}

func (g *relayGen) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	g.s.refusals.refuse(ReasonTCPRelay)
	return nil, errNoTCPRelay
}

// socketBuffer is the kernel buffer asked for on UDP sockets: the default
// (about 200 KiB) overflows in bursts when many clients share the
// listener.
const socketBuffer = 4 << 20

// relayConn is one allocation's relay socket as pion sees it: what it
// reads came from a peer (to the client), what pion writes goes to a peer.
// A packet either way passes, in this order, the permission check (the
// allocation's permissions, as pion's events report them), the port check
// (towards a peer), and the direction's token bucket of Bandwidth bits per
// second; it is counted as relayed once it is delivered. Refused packets
// cost no tokens: a sender without a permission cannot use up the
// allocation's bandwidth.
type relayConn struct {
	sock              *udpSocket
	s                 *Server
	addr              netip.AddrPort // the announced relay address
	mu                sync.RWMutex
	chans             map[netip.AddrPort]chanEntry // peers with a channel bound on this relay; guarded by mu
	perms             map[netip.Addr]struct{}      // peers with a permission; guarded by mu
	policy            *Policy
	local             *localAddrs
	nodePort, noPerm  *refusalClass
	in, out           *rate.Limiter
	bytesIn, bytesOut prometheus.Counter
	pktsIn, pktsOut   prometheus.Counter
	dropIn, dropOut   prometheus.Counter
}

func (s *Server) wrap(u *udpSocket, addr *net.UDPAddr) *relayConn {
	bytesPerSec := rate.Limit(s.cfg.Bandwidth / 8)
	burst := max(s.cfg.Bandwidth/8/4, 64<<10) // a quarter second, at least 64 KiB
	m := s.metrics
	announced, _ := addrPort(addr)
	rc := &relayConn{
		sock: u, s: s, addr: announced, chans: map[netip.AddrPort]chanEntry{}, perms: map[netip.Addr]struct{}{},
		policy: &s.cfg.Policy, local: s.local,
		nodePort: s.refusals.class(ReasonNodePort), noPerm: s.refusals.class(ReasonNoPermission),
		in:      rate.NewLimiter(bytesPerSec, burst),
		out:     rate.NewLimiter(bytesPerSec, burst),
		bytesIn: m.bytes.WithLabelValues("to_client"), bytesOut: m.bytes.WithLabelValues("to_peer"),
		pktsIn: m.packets.WithLabelValues("to_client"), pktsOut: m.packets.WithLabelValues("to_peer"),
		dropIn: m.dropped.WithLabelValues("to_client"), dropOut: m.dropped.WithLabelValues("to_peer"),
	}
	// The socket is in the pump's set already: until this store, its
	// datagrams have no allocation and are dropped.
	u.relay.Store(rc)
	s.relayOpened(rc)
	return rc
}

func (c *relayConn) Close() error {
	c.s.relayClosed(c)
	return c.sock.Close()
}

// ReadFrom returns what a peer without a bound channel sent (the pump
// counted and capped it already).
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) { return c.sock.ReadFrom(p) }

// WriteTo relays what pion has for a peer (a Send indication's data, or
// ChannelData from a client on TCP or TLS). A packet refused or over the
// cap is dropped and reported written.
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	to, ok := addrPort(addr)
	if !ok {
		return 0, fmt.Errorf("turn: relay write to %T: not a UDP address", addr)
	}
	if err := c.toPeer(p, to); err != nil {
		return 0, fmt.Errorf("turn: relay write: %w", err)
	}
	return len(p), nil
}

func (c *relayConn) LocalAddr() net.Addr                { return c.sock.LocalAddr() }
func (c *relayConn) SetDeadline(t time.Time) error      { return c.sock.SetDeadline(t) }
func (c *relayConn) SetReadDeadline(t time.Time) error  { return c.sock.SetReadDeadline(t) }
func (c *relayConn) SetWriteDeadline(t time.Time) error { return c.sock.SetWriteDeadline(t) }

// slogFactory routes pion's logs to slog, at debug level (pion is chatty).
// Messages are formatted only when debug logging is on: pion logs on every
// relayed packet.
type slogFactory struct{ log *slog.Logger }

func (f *slogFactory) NewLogger(scope string) logging.LeveledLogger {
	return &slogLogger{log: f.log.With("scope", scope)}
}

type slogLogger struct{ log *slog.Logger }

func (l *slogLogger) on() bool { return l.log.Enabled(context.Background(), slog.LevelDebug) }

func (l *slogLogger) debug(msg string) {
	if l.on() {
		l.log.Debug(msg)
	}
}

func (l *slogLogger) debugf(format string, args ...any) {
	if l.on() {
		l.log.Debug(fmt.Sprintf(format, args...))
	}
}

func (l *slogLogger) Trace(string)                      {}
func (l *slogLogger) Tracef(string, ...any)             {}
func (l *slogLogger) Debug(msg string)                  { l.debug(msg) }
func (l *slogLogger) Debugf(format string, args ...any) { l.debugf(format, args...) }
func (l *slogLogger) Info(msg string)                   { l.debug(msg) }
func (l *slogLogger) Infof(format string, args ...any)  { l.debugf(format, args...) }
func (l *slogLogger) Warn(msg string)                   { l.debug(msg) }
func (l *slogLogger) Warnf(format string, args ...any)  { l.debugf(format, args...) }
func (l *slogLogger) Error(msg string)                  { l.debug(msg) }
func (l *slogLogger) Errorf(format string, args ...any) { l.debugf(format, args...) }
