package turn

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// udpSocket is a UDP socket of the server's own data plane (the listener
// or a relay). It is not in Go's network poller: the pump (pump_linux.go)
// waits for it with the others in one epoll set and reads it; what the
// pump does not relay itself it hands to pion through ReadFrom. pion's
// writes go straight to the socket.
type udpSocket struct {
	fd     int
	v6     bool // an AF_INET6 socket: IPv4 destinations are written v4-mapped
	client bool // the listener (clients' side), not a relay socket
	local  *net.UDPAddr
	pump   *pump
	relay  atomic.Pointer[relayConn] // the allocation, for a relay socket (set by wrap)
	inbox  chan inPacket             // for ReadFrom
	done   chan struct{}             // closed by Close
	mu     sync.RWMutex              // held shared while fd is used, exclusively to close it
	closed bool
}

// inPacket is a datagram handed to pion.
type inPacket struct {
	data []byte
	from netip.AddrPort
}

// errNoDeadlines: pion sets no deadlines on UDP sockets, and the pump's
// sockets do not support them.
var errNoDeadlines = errors.New("turn: deadlines are not supported on relay sockets")

// ReadFrom returns the next datagram the pump handed over.
func (u *udpSocket) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case pkt := <-u.inbox:
		return copy(p, pkt.data), net.UDPAddrFromAddrPort(pkt.from), nil
	case <-u.done:
		return 0, nil, net.ErrClosed
	}
}

// handOver queues a datagram for ReadFrom; it reports false when the
// queue is full (the datagram is dropped, as a full socket buffer would).
func (u *udpSocket) handOver(data []byte, from netip.AddrPort) bool {
	pkt := inPacket{data: append([]byte(nil), data...), from: from}
	select {
	case u.inbox <- pkt:
		return true
	default:
		return false
	}
}

// WriteTo sends p to addr, a *net.UDPAddr.
func (u *udpSocket) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: errors.New("not a UDP address")}
	}
	if err := u.sendTo(p, ua.AddrPort()); err != nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: err}
	}
	return len(p), nil
}

// Close stops the socket; a blocked ReadFrom returns net.ErrClosed.
func (u *udpSocket) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return net.ErrClosed
	}
	u.closed = true
	close(u.done)
	return u.pump.remove(u)
}

func (u *udpSocket) LocalAddr() net.Addr              { return u.local }
func (u *udpSocket) SetDeadline(time.Time) error      { return errNoDeadlines }
func (u *udpSocket) SetReadDeadline(time.Time) error  { return errNoDeadlines }
func (u *udpSocket) SetWriteDeadline(time.Time) error { return errNoDeadlines }
