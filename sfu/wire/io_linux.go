//go:build linux

package wire

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/helpcaster/helpcaster/internal/rawudp"
)

// Reads take up to batchSize datagrams per system call (recvmmsg): under
// load one wake-up of the reader serves every datagram that arrived since
// the last.
const batchSize = 32

// mmsghdr is struct mmsghdr from <sys/socket.h>: padded to the pointer
// size on 64-bit platforms, not on 32-bit ones.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
}

// batchReader holds one recvmmsg batch and the reader's place in it.
type batchReader struct {
	bufs  [batchSize][]byte
	names [batchSize]unix.RawSockaddrInet6 // large enough for IPv4 too
	iovs  [batchSize]unix.Iovec
	hdrs  [batchSize]mmsghdr
	n, i  int
	// read is readBatch as a func value; failed is its error, if any.
	read   func(fd uintptr) bool
	failed unix.Errno
}

func (b *batchReader) init() {
	b.read = b.readBatch
	mem := make([]byte, batchSize*bufSize)
	for i := range b.hdrs {
		b.bufs[i] = mem[i*bufSize : (i+1)*bufSize : (i+1)*bufSize]
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(bufSize)
		b.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		b.hdrs[i].hdr.Iov = &b.iovs[i]
		b.hdrs[i].hdr.SetIovlen(1)
	}
}

// next returns the batch's next datagram, or false when it is used up.
func (b *batchReader) next() ([]byte, netip.AddrPort, time.Time, bool) {
	for b.i < b.n {
		i := b.i
		b.i++
		h := &b.hdrs[i]
		if h.hdr.Flags&unix.MSG_TRUNC != 0 {
			continue // larger than any datagram ICE, DTLS or SRTP sends here
		}
		from, ok := rawudp.AddrPort(&b.names[i])
		if !ok {
			continue
		}
		// Each datagram is stamped as it is taken from the batch (not
		// when the kernel received it): the stamp feeds transport-wide
		// feedback, and the forwarding latency is measured from it.
		return b.bufs[i][:h.n], from, time.Now(), true
	}
	return nil, netip.AddrPort{}, time.Time{}, false
}

// recv fills the batch with one non-blocking recvmmsg.
func (b *batchReader) recv(fd uintptr) unix.Errno {
	for i := range b.hdrs {
		b.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		b.hdrs[i].hdr.Flags = 0
	}
	// Non-blocking: it returns at once, so it is made without telling the
	// scheduler (a system call made the usual way wakes the runtime's
	// monitor thread, which then polls every 20 µs for a while; see the
	// TURN server's pump for the measurement).
	r, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return errno
	}
	b.n, b.i = int(r), 0
	return 0
}

// fill reads the next batch, waiting in Go's network poller while the
// socket is empty.
func (s *Socket) fill() error {
	s.rd.failed = 0
	err := s.rc.Read(s.rd.read)
	switch {
	case err != nil:
		if errors.Is(err, net.ErrClosed) || s.isClosed() {
			return net.ErrClosed
		}
		return err
	case s.rd.failed != 0:
		return os.NewSyscallError("recvmmsg", s.rd.failed)
	}
	return nil
}

// readBatch is the batch's read for RawConn.Read (made once, as b.read, so
// that a read allocates no closure): it reports false to park until the
// socket is readable.
func (b *batchReader) readBatch(fd uintptr) bool {
	for {
		switch errno := b.recv(fd); errno {
		case 0:
			return true
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH:
			// An ICMP error for an earlier send; nothing to read.
		default:
			b.failed = errno
			return true
		}
	}
}

func (s *Socket) isClosed() bool {
	s.fdMu.RLock()
	defer s.fdMu.RUnlock()
	return s.closed
}

// send writes one datagram with a raw, non-blocking sendto. When the
// socket's buffer is full it waits through the network poller if wait is
// set, and otherwise fails (errFull).
func (s *Socket) send(p []byte, to netip.AddrPort, wait bool) error {
	s.fdMu.RLock()
	if s.closed {
		s.fdMu.RUnlock()
		return net.ErrClosed
	}
	err := rawudp.SendTo(s.fd, s.v6, p, to, unix.MSG_DONTWAIT)
	s.fdMu.RUnlock()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EAGAIN):
		if !wait {
			return errFull
		}
		_, err := s.conn.WriteToUDPAddrPort(p, to)
		return err
	}
	return os.NewSyscallError("sendto", err)
}

// errFull: the socket's send buffer is full.
var errFull = errors.New("socket send buffer full")

// socketFamily reports whether fd is an AF_INET6 socket.
func socketFamily(fd int) (v6 bool, err error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return false, os.NewSyscallError("getsockname", err)
	}
	_, v6 = sa.(*unix.SockaddrInet6)
	return v6, nil
}
