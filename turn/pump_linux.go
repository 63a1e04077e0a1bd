//go:build linux

package turn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/helpcaster/helpcaster/internal/rawudp"
)

// The pump is the UDP data plane: one goroutine waits on one epoll set
// holding the listener and every relay socket, and for each ready socket
// reads one datagram and relays it (fastpath.go) or hands it to pion. The
// epoll set's own descriptor is in Go's network poller, so the goroutine
// parks like any network reader when nothing is ready and takes every
// ready socket in one wake-up when something is: a packet costs a share of
// one wake-up, one receive and one send, the work of coturn's event loop.
// Reading each socket on its own goroutine (pion's way) costs a park and a
// wake-up per packet and an extra receive that finds the socket empty. A
// goroutine blocked in epoll_wait itself would keep the runtime's monitor
// thread waking every 20 µs to look at it (see epollPoll).
type pump struct {
	s     *Server
	epfd  int
	epoll *os.File // epfd, for the network poller
	mu    sync.RWMutex
	socks map[int32]*udpSocket // registered sockets by fd
	buf   []byte               // ChannelData header room, then a datagram; run's alone
	ended chan struct{}
	// closing is set by close before it closes the epoll descriptor, so
	// that run tells the end it was asked for from a failure.
	closing atomic.Bool
}

func newPump(s *Server) (*pump, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("turn: epoll: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("turn: epoll: %w", err)
	}
	p := &pump{s: s, epfd: epfd, epoll: os.NewFile(uintptr(epfd), "turn-epoll"), socks: map[int32]*udpSocket{},
		buf: make([]byte, 4+65536), ended: make(chan struct{})}
	rc, err := p.epoll.SyscallConn()
	if err != nil {
		p.epoll.Close()
		return nil, fmt.Errorf("turn: epoll: %w", err)
	}
	go p.run(rc)
	return p, nil
}

// close stops the pump; the sockets are closed already.
func (p *pump) close() {
	p.closing.Store(true)
	p.epoll.Close()
	<-p.ended
}

func (p *pump) run(rc syscall.RawConn) {
	defer close(p.ended)
	events := make([]unix.EpollEvent, 128)
	var failed error
	err := rc.Read(func(uintptr) bool {
		for {
			n, errno := epollPoll(p.epfd, events)
			switch {
			case errno == unix.EINTR:
				continue
			case errno != 0:
				failed = errno
				return true
			case n == 0:
				return false // Read parks the goroutine until the set is ready
			}
			for _, ev := range events[:n] {
				p.mu.RLock()
				u := p.socks[ev.Fd]
				p.mu.RUnlock()
				switch {
				case u == nil: // closed since epoll reported it
				case u.client:
					p.fromClient(u)
				default:
					p.fromPeer(u)
				}
			}
		}
	})
	if failed != nil || (err != nil && !p.closing.Load()) {
		p.s.log.Error("turn: epoll wait failed; UDP relaying stopped", "err", errors.Join(failed, err))
	}
}

// epollPoll is epoll_wait with a zero timeout. It never blocks, so it is
// made without telling the scheduler (as are the sockets' receives and
// sends): a system call made the usual way wakes the runtime's monitor
// thread when the process was idle, and it then polls every 20 µs for a
// millisecond. Between two packets this process is often idle.
func epollPoll(epfd int, events []unix.EpollEvent) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return int(n), errno
}

// fromClient reads one datagram from the listener.
func (p *pump) fromClient(u *udpSocket) {
	n, from, ok := u.recv(p.buf[4:])
	if !ok {
		return
	}
	data := p.buf[4 : 4+n]
	switch {
	case p.s.clientPacket(data, from):
	case isChannelBind(data) && p.s.screenChannelBind(data, func(b []byte) error { return u.sendTo(b, from) }):
	case !u.handOver(data, from):
		p.s.metrics.dropped.WithLabelValues("to_server").Inc()
	}
}

// fromPeer reads one datagram from a relay socket.
func (p *pump) fromPeer(u *udpSocket) {
	n, from, ok := u.recv(p.buf[4:])
	if !ok {
		return
	}
	// A datagram may come before wrap has set the allocation (a peer that
	// wrote to the port as it was bound): it is dropped.
	if rc := u.relay.Load(); rc != nil {
		rc.peerPacket(p.buf[:4+n], from)
	}
}

// listen opens the UDP listener on host:port.
func (p *pump) listen(host string, port int) (*udpSocket, error) {
	ip := netip.IPv6Unspecified()
	if host != "" {
		a, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, err
		}
		ip = a.AddrPort().Addr().Unmap()
	}
	u, err := p.open(ip, port, false, true)
	if err != nil && host == "" && errors.Is(err, unix.EAFNOSUPPORT) {
		u, err = p.open(netip.IPv4Unspecified(), port, false, true)
	}
	return u, err
}

// open creates a UDP socket bound to ip:port and adds it to the epoll set:
// the listener (client) or a relay socket. An unspecified IPv6 address
// takes IPv4 too unless v6only.
func (p *pump) open(ip netip.Addr, port int, v6only, client bool) (*udpSocket, error) {
	family := unix.AF_INET
	if ip.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (*udpSocket, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if family == unix.AF_INET6 {
		only := 0
		if v6only || !ip.IsUnspecified() {
			only = 1
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, only); err != nil {
			return fail("setsockopt", err)
		}
	}
	// Best effort: the kernel caps them at net.core.[rw]mem_max.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: port, Addr: ip.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: port, Addr: ip.As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	local := &net.UDPAddr{IP: ip.AsSlice()}
	switch b := bound.(type) {
	case *unix.SockaddrInet4:
		local.Port = b.Port
	case *unix.SockaddrInet6:
		local.Port = b.Port
	}
	u := &udpSocket{fd: fd, v6: family == unix.AF_INET6, client: client, local: local, pump: p, inbox: make(chan inPacket, 256), done: make(chan struct{})}
	p.mu.Lock()
	p.socks[int32(fd)] = u
	p.mu.Unlock()
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
		p.mu.Lock()
		delete(p.socks, int32(fd))
		p.mu.Unlock()
		return fail("epoll", err)
	}
	return u, nil
}

// remove takes a socket out of the epoll set and closes it; u.mu is held.
func (p *pump) remove(u *udpSocket) error {
	p.mu.Lock()
	if p.socks[int32(u.fd)] == u {
		delete(p.socks, int32(u.fd))
	}
	p.mu.Unlock()
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, u.fd, nil)
	if err := unix.Close(u.fd); err != nil {
		return fmt.Errorf("turn: close socket: %w", err)
	}
	return nil
}

// recv reads one datagram without blocking; ok is false when there was
// none (or the socket is closed).
func (u *udpSocket) recv(buf []byte) (n int, from netip.AddrPort, ok bool) {
	var rsa unix.RawSockaddrAny
	size := uint32(unix.SizeofSockaddrAny)
	u.mu.RLock()
	if u.closed {
		u.mu.RUnlock()
		return 0, from, false
	}
	// A non-blocking receive returns at once: no need to tell the
	// scheduler about it.
	r, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(u.fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
		0, uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&size)))
	u.mu.RUnlock()
	if errno != 0 {
		return 0, from, false
	}
	from, ok = rawudp.AddrPort((*unix.RawSockaddrInet6)(unsafe.Pointer(&rsa)))
	if !ok {
		return 0, from, false
	}
	return int(r), from, true
}

// sendTo sends one datagram. A full send buffer is waited out briefly
// (20 ms) once; after that the datagram is dropped with an error.
func (u *udpSocket) sendTo(p []byte, to netip.AddrPort) error {
	u.mu.RLock()
	defer u.mu.RUnlock()
	if u.closed {
		return net.ErrClosed
	}
	err := rawudp.SendTo(u.fd, u.v6, p, to, 0)
	if errors.Is(err, unix.EAGAIN) {
		_, _ = unix.Poll([]unix.PollFd{{Fd: int32(u.fd), Events: unix.POLLOUT}}, 20)
		err = rawudp.SendTo(u.fd, u.v6, p, to, 0)
	}
	return err
}
