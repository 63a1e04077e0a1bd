//go:build linux

package rawudp

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// TestSendTo: a datagram sent with SendTo arrives whole at an IPv4 and at
// an IPv6 socket, and from a dual-stack socket to an IPv4 peer; an IPv6
// destination on an IPv4 socket is refused.
func TestSendTo(t *testing.T) {
	for _, tc := range []struct{ name, from, to string }{
		{"v4", "udp4", "127.0.0.1"},
		{"v6", "udp6", "::1"},
		{"v6 socket to v4", "udp", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			laddr := &net.UDPAddr{}
			if tc.from == "udp4" {
				laddr.IP = net.IPv4(127, 0, 0, 1)
			}
			src, err := net.ListenUDP(tc.from, laddr)
			if err != nil {
				t.Skipf("no %s socket: %v", tc.from, err)
			}
			defer src.Close()
			dst, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(tc.to)})
			if err != nil {
				t.Skipf("no socket on %s: %v", tc.to, err)
			}
			defer dst.Close()
			to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
			to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
			rc, err := src.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var sendErr error
			if err := rc.Control(func(fd uintptr) {
				sa, _ := syscall.Getsockname(int(fd))
				_, v6 := sa.(*syscall.SockaddrInet6)
				sendErr = SendTo(int(fd), v6, []byte("hello"), to, 0)
			}); err != nil {
				t.Fatal(err)
			}
			if sendErr != nil {
				t.Fatal(sendErr)
			}
			buf := make([]byte, 16)
			_ = dst.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := dst.ReadFromUDPAddrPort(buf)
			if err != nil || string(buf[:n]) != "hello" {
				t.Fatalf("received %q, %v", buf[:n], err)
			}
			if from.Port() != src.LocalAddr().(*net.UDPAddr).AddrPort().Port() {
				t.Errorf("from port %d, want %d", from.Port(), src.LocalAddr().(*net.UDPAddr).AddrPort().Port())
			}
		})
	}
	t.Run("family", func(t *testing.T) {
		if err := SendTo(-1, false, nil, netip.MustParseAddrPort("[::1]:9"), 0); !errors.Is(err, ErrFamily) {
			t.Errorf("IPv6 destination on an IPv4 socket: %v, want ErrFamily", err)
		}
	})
}
