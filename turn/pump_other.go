//go:build !linux

package turn

import (
	"errors"
	"net/netip"
)

// The pump's sockets and event loop use Linux system calls (epoll).
type pump struct{}

var errNeedsLinux = errors.New("turn: the embedded TURN server runs on Linux only")

func newPump(*Server) (*pump, error)                                 { return nil, errNeedsLinux }
func (p *pump) close()                                               {}
func (p *pump) listen(string, int) (*udpSocket, error)               { return nil, errNeedsLinux }
func (p *pump) open(netip.Addr, int, bool, bool) (*udpSocket, error) { return nil, errNeedsLinux }
func (p *pump) remove(*udpSocket) error                              { return nil }
func (u *udpSocket) sendTo([]byte, netip.AddrPort) error             { return errNeedsLinux }
