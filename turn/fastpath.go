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
// table of bound channels (from pion's channel events) and relays their
// ChannelData directly: the listener's read loop sends a client's
// ChannelData straight to the peer, and an allocation's reader sends a
// bound peer's packets straight to the client, framing them in a buffer
// it reuses. Everything else (STUN requests, Send and Data indications,
// TCP and TLS clients) goes through pion as before. Policy, port check,
// bandwidth cap and counters apply the same on both paths.

type fwdKey struct {
	client netip.AddrPort
	number uint16
}

type fwdEntry struct {
	relay *relayConn
	peer  *net.UDPAddr
}

type chanEntry struct {
	number uint16
	client netip.AddrPort
}

// fastState is the server's part of the fast path.
type fastState struct {
	mu     sync.RWMutex
	udp    *net.UDPConn                  // the UDP listener; nil: no fast path
	relays map[netip.AddrPort]*relayConn // allocation relay sockets by their address
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
	if protocol != "UDP" || f.udp == nil || !ok1 || !ok2 || !ok3 || listener.String() != f.udp.LocalAddr().String() {
		return
	}
	f.mu.Lock()
	rc := f.relays[r]
	if rc != nil {
		f.fwd[fwdKey{c, number}] = fwdEntry{relay: rc, peer: net.UDPAddrFromAddrPort(p)}
	}
	f.mu.Unlock()
	if rc != nil {
		rc.chMu.Lock()
		rc.chans[p] = chanEntry{number: number, client: c}
		rc.chMu.Unlock()
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
		rc.chMu.Lock()
		delete(rc.chans, p)
		rc.chMu.Unlock()
	}
}

// relayClosed forgets a relay socket and its channels.
func (s *Server) relayClosed(rc *relayConn) {
	f := &s.fast
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.relays[rc.local] == rc {
		delete(f.relays, rc.local)
	}
	for k, e := range f.fwd {
		if e.relay == rc {
			delete(f.fwd, k)
		}
	}
}

// fastListener is the UDP listener as pion sees it: ChannelData of bound
// channels never reaches pion.
type fastListener struct {
	*net.UDPConn
	s *Server
}

func (l *fastListener) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, from, err := l.UDPConn.ReadFromUDPAddrPort(p)
		if err != nil {
			return n, nil, err
		}
		// ChannelData: the first two bits are 01 (channels 0x4000-0x7FFF).
		if n >= 4 && p[0]&0xC0 == 0x40 {
			number := binary.BigEndian.Uint16(p[0:2])
			length := int(binary.BigEndian.Uint16(p[2:4]))
			if 4+length <= n {
				client := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
				l.s.fast.mu.RLock()
				e, ok := l.s.fast.fwd[fwdKey{client, number}]
				l.s.fast.mu.RUnlock()
				if ok {
					e.relay.toPeer(p[4:4+length], e.peer)
					l.s.fast.relayed.Add(1)
					continue
				}
			}
		}
		return n, net.UDPAddrFromAddrPort(from), nil
	}
}

// toPeer relays data to peer, under the same rules as WriteTo.
func (c *relayConn) toPeer(data []byte, peer *net.UDPAddr) {
	if ip, ok := netip.AddrFromSlice(peer.IP); ok && !c.policy.PortAllowed(ip, uint16(peer.Port)) {
		c.refusedPort.Inc()
		return
	}
	if !c.out.AllowN(time.Now(), len(data)) {
		c.dropOut.Inc()
		return
	}
	if n, err := c.PacketConn.WriteTo(data, peer); err == nil {
		c.bytesOut.Add(float64(n))
		c.pktsOut.Inc()
	}
}

// readFast is relayConn.ReadFrom with the fast path: packets from a peer
// with a bound channel go to the client here; the others are returned to
// pion.
func (c *relayConn) readFast(p []byte) (int, net.Addr, error) {
	if c.buf == nil {
		c.buf = make([]byte, 4+65536)
	}
	for {
		n, from, err := c.udp.ReadFromUDPAddrPort(c.buf[4:])
		if err != nil {
			return 0, nil, err
		}
		if !c.in.AllowN(time.Now(), n) {
			c.dropIn.Inc()
			continue
		}
		c.bytesIn.Add(float64(n))
		c.pktsIn.Inc()
		peer := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		c.chMu.RLock()
		ch, ok := c.chans[peer]
		c.chMu.RUnlock()
		if ok {
			binary.BigEndian.PutUint16(c.buf[0:2], ch.number)
			binary.BigEndian.PutUint16(c.buf[2:4], uint16(n))
			_, _ = c.s.fast.udp.WriteToUDPAddrPort(c.buf[:4+n], ch.client)
			c.s.fast.relayed.Add(1)
			continue
		}
		return copy(p, c.buf[4:4+n]), net.UDPAddrFromAddrPort(from), nil
	}
}
