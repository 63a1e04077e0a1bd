// Package freeport finds loopback ports for tests.
package freeport

import (
	"net"
	"strconv"
	"testing"
)

// UDPAndTCP returns a loopback port that was free for both UDP and TCP a
// moment ago, for a server that listens on both with one number (TURN).
// A port picked for UDP alone may be held by a TCP socket of another test.
func UDPAndTCP(t testing.TB) int {
	t.Helper()
	for range 50 {
		u, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		u.Close()
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return 0
}
