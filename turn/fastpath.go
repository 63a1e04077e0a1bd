package turn

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The channel fast path. Media through TURN is almost all ChannelData:
// a 4-byte header (channel number, length) and the payload. pion handles
// each such packet on its own (parse, allocation lookup under a lock, a new
// buffer per packet towards the client), which costs more CPU than the
// relaying itself. For clients on the UDP listener the server keeps its own
// table of bound channels (from pion's channel events), and the pump
// (pump_linux.go) relays their ChannelData directly: a client's ChannelData
// goes straight to the peer, and a bound peer's datagram goes straight to
// the client, framed in the pump's buffer. Everything else (STUN requests,
// Send and Data indications, TCP and TLS clients) goes through pion.
// Permission check, port check, bandwidth cap and counters apply the same
// on both paths, in that order.

type fwdKey struct {
	client netip.AddrPort
	number uint16
}

type fwdEntry struct {
	relay *relayConn
	peer  netip.AddrPort
}

type chanEntry struct {
	number uint16
	client netip.AddrPort
}

// fastState is the server's part of the fast path.
type fastState struct {
	mu     sync.RWMutex
	lis    *udpSocket                    // the UDP listener; nil: no fast path
	relays map[netip.AddrPort]*relayConn // allocation relays by their announced address
	fwd    map[fwdKey]fwdEntry           // a client's channel -> relay and peer
	// relayed counts packets the fast path relayed (either way), for tests.
	relayed atomic.Int64
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := u.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// channelCreated records a channel bound by a client on the UDP listener.
func (s *Server) channelCreated(client, listener net.Addr, protocol string, relay, peer net.Addr, number uint16) {
	f := &s.fast
	c, ok1 := addrPort(client)
	r, ok2 := addrPort(relay)
	p, ok3 := addrPort(peer)
	if protocol != "UDP" || f.lis == nil || !ok1 || !ok2 || !ok3 || listener.String() != f.lis.local.String() {
		return
	}
	f.mu.Lock()
	rc := f.relays[r]
	if rc != nil {
		f.fwd[fwdKey{c, number}] = fwdEntry{relay: rc, peer: p}
	}
	f.mu.Unlock()
	if rc != nil {
		rc.mu.Lock()
		rc.chans[p] = chanEntry{number: number, client: c}
		rc.mu.Unlock()
	}
}

// channelDeleted forgets a channel.
func (s *Server) channelDeleted(client net.Addr, relay, peer net.Addr, number uint16) {
	f := &s.fast
	c, ok1 := addrPort(client)
	r, ok2 := addrPort(relay)
	p, ok3 := addrPort(peer)
	if !ok1 || !ok2 || !ok3 {
		return
	}
	f.mu.Lock()
	delete(f.fwd, fwdKey{c, number})
	rc := f.relays[r]
	f.mu.Unlock()
	if rc != nil {
		rc.mu.Lock()
		delete(rc.chans, p)
		rc.mu.Unlock()
	}
}

// permission records a permission pion granted (or removed) on a relay:
// packets from a peer without one are dropped before they cost bandwidth
// or are counted, and none are sent to it.
func (s *Server) permission(relay net.Addr, peer net.IP, granted bool) {
	r, ok1 := addrPort(relay)
	ip, ok2 := netip.AddrFromSlice(peer)
	if !ok1 || !ok2 {
		return
	}
	ip = ip.Unmap()
	s.fast.mu.RLock()
	rc := s.fast.relays[r]
	s.fast.mu.RUnlock()
	if rc == nil {
		return
	}
	rc.mu.Lock()
	if granted {
		rc.perms[ip] = struct{}{}
	} else {
		delete(rc.perms, ip)
	}
	rc.mu.Unlock()
}

// relayOpened registers an allocation's relay for the fast path.
func (s *Server) relayOpened(rc *relayConn) {
	s.fast.mu.Lock()
	s.fast.relays[rc.addr] = rc
	s.fast.mu.Unlock()
}

// relayClosed forgets a relay and its channels.
func (s *Server) relayClosed(rc *relayConn) {
	f := &s.fast
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.relays[rc.addr] == rc {
		delete(f.relays, rc.addr)
	}
	for k, e := range f.fwd {
		if e.relay == rc {
			delete(f.fwd, k)
		}
	}
}

// clientPacket relays a datagram from a client on the UDP listener when it
// is ChannelData of a bound channel, and reports whether it did.
func (s *Server) clientPacket(p []byte, from netip.AddrPort) bool {
	// ChannelData: the first two bits are 01 (channels 0x4000-0x7FFF).
	if len(p) < 4 || p[0]&0xC0 != 0x40 {
		return false
	}
	number := binary.BigEndian.Uint16(p[0:2])
	length := int(binary.BigEndian.Uint16(p[2:4]))
	if 4+length > len(p) {
		return false
	}
	s.fast.mu.RLock()
	e, ok := s.fast.fwd[fwdKey{from, number}]
	s.fast.mu.RUnlock()
	if !ok {
		return false
	}
	if e.relay.toPeer(p[4:4+length], e.peer) == nil {
		s.fast.relayed.Add(1)
	}
	return true
}

// peerPacket handles a datagram that arrived on the relay socket: buf
// holds 4 free bytes, then the datagram. A peer with a bound channel gets
// it framed and sent to the client here; the rest goes to pion.
func (c *relayConn) peerPacket(buf []byte, from netip.AddrPort) {
	n := len(buf) - 4
	now := time.Now()
	c.mu.RLock()
	_, permitted := c.perms[from.Addr()]
	ch, bound := c.chans[from]
	c.mu.RUnlock()
	if !permitted {
		c.noPerm.note(now)
		return
	}
	if !c.in.AllowN(now, n) {
		c.dropIn.Inc()
		return
	}
	if lis := c.s.fast.lis; bound && lis != nil {
		binary.BigEndian.PutUint16(buf[0:2], ch.number)
		binary.BigEndian.PutUint16(buf[2:4], uint16(n))
		if lis.sendTo(buf, ch.client) != nil {
			c.dropIn.Inc()
			return
		}
		c.s.fast.relayed.Add(1)
	} else if !c.sock.handOver(buf[4:], from) {
		c.dropIn.Inc()
		return
	}
	c.bytesIn.Add(float64(n))
	c.pktsIn.Inc()
}

// toPeer relays data to peer: it needs a permission, a port the policy
// allows at that address, and room in the bucket; a packet refused or over
// the cap is dropped (nil error) and counted as such, one sent is counted
// as relayed.
func (c *relayConn) toPeer(data []byte, peer netip.AddrPort) error {
	now := time.Now()
	c.mu.RLock()
	_, permitted := c.perms[peer.Addr()]
	c.mu.RUnlock()
	switch {
	case !permitted:
		c.noPerm.note(now)
		return nil
	case !c.policy.PortAllowed(peer.Addr(), peer.Port(), c.local.has):
		c.nodePort.note(now)
		return nil
	case !c.out.AllowN(now, len(data)):
		c.dropOut.Inc()
		return nil
	}
	if err := c.sock.sendTo(data, peer); err != nil {
		return err
	}
	c.bytesOut.Add(float64(len(data)))
	c.pktsOut.Inc()
	return nil
}
