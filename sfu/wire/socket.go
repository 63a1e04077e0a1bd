// Package wire is the SFU's media transport under pion: the one UDP socket
// all participants' media arrives on, and per peer connection the SRTP
// contexts that let the SFU decrypt, forward and encrypt a packet on the
// goroutine that read it.
//
// pion still owns everything but the media: ICE (its UDP mux reads this
// socket through ReadFromAddrPort), the DTLS handshake, and any packet no
// route claims. Once a connection's handshake is done, its remote address
// is routed to its Conn, and an SRTP packet from that address with a known
// SSRC (or an SRTCP packet, given an RTCP handler) is decrypted in place
// and handled inside the read call: no goroutine hand-off between the
// socket and the SFU's forwarding. See docs/architecture.md ("The direct
// media path").
package wire

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Route receives the datagrams from one remote address that look like RTP
// or RTCP (first two bits 2). It runs on the socket's reading goroutine,
// one datagram at a time, and reports whether it took the datagram; what
// it does not take goes to pion. d is valid only during the call.
type Route interface {
	Receive(d []byte, now time.Time) bool
}

// Socket is the SFU's media UDP socket. Give it to pion's ICE UDP mux as
// its PacketConn: the mux's reader goroutine is then the only reader, and
// the routed media is handled on it.
type Socket struct {
	conn  *net.UDPConn
	rc    syscall.RawConn
	local *net.UDPAddr
	log   *slog.Logger

	routeMu sync.Mutex                               // serialises route changes
	routes  atomic.Pointer[map[netip.AddrPort]Route] // copy-on-write

	// fdMu is held shared while the descriptor is used by a raw system
	// call, exclusively to close it.
	fdMu   sync.RWMutex
	fd     int
	v6     bool // an AF_INET6 socket: IPv4 peers are written v4-mapped
	closed bool

	rd batchReader // the reader's; see io_linux.go

	routed, passed atomic.Uint64
}

// Stats counts the datagrams a Socket read: those a route took and those
// passed to pion.
type Stats struct {
	Routed, Passed uint64
}

// New wraps conn; the Socket owns it from now on.
func New(conn *net.UDPConn, log *slog.Logger) (*Socket, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	s := &Socket{conn: conn, rc: rc, local: conn.LocalAddr().(*net.UDPAddr), log: log}
	if err := rc.Control(func(fd uintptr) { s.fd = int(fd) }); err != nil {
		return nil, err
	}
	if s.v6, err = socketFamily(s.fd); err != nil {
		return nil, err
	}
	empty := map[netip.AddrPort]Route{}
	s.routes.Store(&empty)
	s.rd.init()
	return s, nil
}

// Stats returns the counts so far.
func (s *Socket) Stats() Stats { return Stats{Routed: s.routed.Load(), Passed: s.passed.Load()} }

// setRoute sends the datagrams from addr to r.
func (s *Socket) setRoute(addr netip.AddrPort, r Route) {
	s.changeRoutes(func(m map[netip.AddrPort]Route) { m[unmapped(addr)] = r })
}

// dropRoute removes addr's route if it is owner's.
func (s *Socket) dropRoute(addr netip.AddrPort, owner Route) {
	s.changeRoutes(func(m map[netip.AddrPort]Route) {
		if m[unmapped(addr)] == owner {
			delete(m, unmapped(addr))
		}
	})
}

// changeRoutes applies change to a copy of the routes and publishes it.
func (s *Socket) changeRoutes(change func(map[netip.AddrPort]Route)) {
	s.routeMu.Lock()
	defer s.routeMu.Unlock()
	old := *s.routes.Load()
	next := make(map[netip.AddrPort]Route, len(old)+1)
	for a, o := range old {
		next[a] = o
	}
	change(next)
	s.routes.Store(&next)
}

func unmapped(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// deliver offers one datagram to its address's route.
func (s *Socket) deliver(d []byte, from netip.AddrPort, now time.Time) bool {
	if len(d) < 12 || d[0]&0xc0 != 0x80 {
		return false // STUN, DTLS, TURN channel data, or too short for RTP
	}
	r := (*s.routes.Load())[from]
	if r == nil || !r.Receive(d, now) {
		return false
	}
	s.routed.Add(1)
	return true
}

// ReadFromAddrPort returns the next datagram no route took. Only one
// goroutine may read (pion's UDP mux's).
func (s *Socket) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	for {
		d, from, now, ok := s.rd.next()
		if !ok {
			if err := s.fill(); err != nil {
				return 0, netip.AddrPort{}, err
			}
			continue
		}
		if s.deliver(d, from, now) {
			continue
		}
		s.passed.Add(1)
		return copy(p, d), from, nil
	}
}

// ReadFrom is ReadFromAddrPort with a *net.UDPAddr.
func (s *Socket) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := s.ReadFromAddrPort(p)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// WriteToAddrPort sends one datagram (pion's writes: ICE, DTLS, RTCP, and
// media not on the direct path), waiting while the socket's buffer is full.
func (s *Socket) WriteToAddrPort(p []byte, to netip.AddrPort) (int, error) {
	if err := s.send(p, to, true); err != nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: s.local, Addr: net.UDPAddrFromAddrPort(to), Err: err}
	}
	return len(p), nil
}

// WriteTo sends one datagram to a *net.UDPAddr.
func (s *Socket) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: s.local, Addr: addr, Err: errNotUDP}
	}
	return s.WriteToAddrPort(p, ua.AddrPort())
}

var errNotUDP = errors.New("not a UDP address")

// bufSize is the largest datagram read (pion's ICE reads up to this much;
// larger ones are dropped) and the size of a Conn's send buffer.
const bufSize = 8192

// Close closes the socket; a blocked read returns net.ErrClosed.
func (s *Socket) Close() error {
	s.fdMu.Lock()
	if s.closed {
		s.fdMu.Unlock()
		return net.ErrClosed
	}
	s.closed = true
	s.fdMu.Unlock()
	return s.conn.Close()
}

func (s *Socket) LocalAddr() net.Addr                { return s.local }
func (s *Socket) SetDeadline(t time.Time) error      { return s.conn.SetDeadline(t) }
func (s *Socket) SetReadDeadline(t time.Time) error  { return s.conn.SetReadDeadline(t) }
func (s *Socket) SetWriteDeadline(t time.Time) error { return s.conn.SetWriteDeadline(t) }
