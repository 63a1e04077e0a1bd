//go:build linux

// Package rawudp holds what the server's own UDP data planes (the TURN
// relay's pump and the SFU's media socket) share: sending a datagram and
// reading a sender's address with raw system calls, without Go's network
// poller or any allocation.
package rawudp

import (
	"errors"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrFamily: an IPv6 destination on an IPv4 socket.
var ErrFamily = errors.New("address family does not match the socket")

// SendTo sends p to to on the UDP socket fd (an AF_INET6 socket when v6,
// to which IPv4 destinations are written v4-mapped) with one sendto,
// retried on EINTR. flags is sendto's (unix.MSG_DONTWAIT for a call that
// must not block). It is made without telling the scheduler: callers use
// non-blocking sockets or flags, so it returns at once.
func SendTo(fd int, v6 bool, p []byte, to netip.AddrPort, flags int) error {
	var (
		sa4  unix.RawSockaddrInet4
		sa6  unix.RawSockaddrInet6
		sa   unsafe.Pointer
		size uintptr
	)
	addr := to.Addr().Unmap()
	switch {
	case v6:
		sa6.Family = unix.AF_INET6
		sa6.Addr = addr.As16()
		putPort(&sa6.Port, to.Port())
		sa, size = unsafe.Pointer(&sa6), unsafe.Sizeof(sa6)
	case addr.Is4():
		sa4.Family = unix.AF_INET
		sa4.Addr = addr.As4()
		putPort(&sa4.Port, to.Port())
		sa, size = unsafe.Pointer(&sa4), unsafe.Sizeof(sa4)
	default:
		return ErrFamily
	}
	var data unsafe.Pointer
	if len(p) > 0 {
		data = unsafe.Pointer(&p[0])
	}
	for {
		_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(data), uintptr(len(p)), uintptr(flags), uintptr(sa), size)
		if errno != unix.EINTR {
			if errno == 0 {
				return nil
			}
			return errno
		}
	}
}

// AddrPort reads an AF_INET or AF_INET6 address the kernel wrote into sa
// (a buffer at least as large as either); IPv4-mapped addresses come out
// as IPv4.
func AddrPort(sa *unix.RawSockaddrInet6) (netip.AddrPort, bool) {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(&sa4.Port)), true
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port(&sa.Port)), true
	}
	return netip.AddrPort{}, false
}

// port and putPort read and write a port stored in network byte order.
func port(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

func putPort(p *uint16, v uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(v>>8), byte(v)
}
