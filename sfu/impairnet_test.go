package sfu

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// An impaired network for pion test clients: the UDP sockets a client's ICE
// agent opens lose, reorder and duplicate a seeded random share of the
// RTP and RTCP datagrams (first byte 128-191, RFC 7983) going one way or
// both, as a bad access link would. STUN and DTLS datagrams pass untouched,
// so the call always comes up. The impairment works on whole datagrams, as
// they are on the wire: what the SFU receives has been through it before
// SRTP decryption, so the SFU's replay window, rollover counter and routing
// see the duplicates, the reordering and the gaps.

// impairProfile says how much of the traffic one way is impaired.
type impairProfile struct {
	seed    uint64
	loss    float64 // share of datagrams dropped
	reorder float64 // share held back and sent after 1..depth later ones
	dup     float64 // share sent twice, the copy 1..depth datagrams later
	depth   int     // most later datagrams a held one waits for
	// maxHold bounds how long a datagram is held when no later ones come;
	// it is checked when the next datagram passes.
	maxHold time.Duration
	// maxHeld bounds how many datagrams are held at once; beyond it a
	// datagram picked for reordering passes in order.
	maxHeld int
	// forced overrides the random choice for the first copy of an RTP
	// packet with one of these sequence numbers (on any SSRC), so a test
	// can put losses and reordering exactly where it needs them.
	forced map[uint16]forcedImpairment
}

// forcedImpairment is what happens to one RTP packet: dropped, or held for
// hold later datagrams (0: sent at once), and with dup a copy sent dup
// datagrams later.
type forcedImpairment struct {
	drop      bool
	hold, dup int
}

// rtpKey names an RTP packet on the wire: SRTP leaves the header in clear.
type rtpKey struct {
	ssrc uint32
	seq  uint16
}

// impairStats counts what an impairer did to RTP datagrams (RTCP ones are
// impaired alike but counted apart: rtcp*).
type impairStats struct {
	rtp, dropped, reordered, duplicated int
	rtcp, rtcpDropped                   int
}

// impairer applies a profile to the datagrams going one way, and logs the
// RTP packets it saw and dropped. Its mutex serialises decisions and the
// writes (or queueing) of what passes, so the order it decides is the
// order on the wire.
type impairer struct {
	prof impairProfile

	mu      sync.Mutex
	rng     *rand.Rand
	held    []heldDatagram
	stats   impairStats
	seen    map[rtpKey]int // RTP packets offered to the link (before impairment), copies each
	dropped map[rtpKey]int // RTP packets the link dropped
}

type heldDatagram struct {
	b    []byte
	addr net.Addr
	left int // later datagrams to let by
	at   time.Time
}

func newImpairer(p impairProfile) *impairer {
	return &impairer{prof: p, rng: rand.New(rand.NewPCG(p.seed, p.seed^0x9e3779b97f4a7c15)),
		seen: map[rtpKey]int{}, dropped: map[rtpKey]int{}}
}

// isRTPOrRTCP tells RTP and RTCP datagrams from STUN, DTLS and the rest
// by their first byte (RFC 7983).
func isRTPOrRTCP(b []byte) bool { return len(b) >= 12 && b[0] >= 128 && b[0] <= 191 }

// isRTCP tells RTCP from RTP by the packet type byte (RFC 5761).
func isRTCP(b []byte) bool { return b[1] >= 192 && b[1] <= 223 }

// pass takes one RTP or RTCP datagram b bound for (or from) addr and calls
// emit, in order, for each datagram that goes on now: b unless dropped or
// held, then any held datagrams whose turn has come. emit runs with i.mu
// held and must not keep b.
func (i *impairer) pass(b []byte, addr net.Addr, now time.Time, emit func([]byte, net.Addr)) {
	i.mu.Lock()
	defer i.mu.Unlock()
	rtcp := isRTCP(b)
	var key rtpKey
	if rtcp {
		i.stats.rtcp++
	} else {
		key = rtpKey{ssrc: binary.BigEndian.Uint32(b[8:12]), seq: binary.BigEndian.Uint16(b[2:4])}
		i.stats.rtp++
		i.seen[key]++
	}
	for k := range i.held {
		i.held[k].left--
	}
	// One draw per datagram, forced or not, so that forcing a packet
	// changes little of the random choices for the rest.
	r := i.rng.Float64()
	if f, ok := i.prof.forced[key.seq]; ok && !rtcp && i.seen[key] == 1 {
		i.apply(b, addr, now, key, f, emit)
	} else {
		i.random(b, addr, now, key, rtcp, r, emit)
	}
	kept := i.held[:0]
	for _, h := range i.held {
		if h.left <= 0 || now.Sub(h.at) >= i.prof.maxHold {
			emit(h.b, h.addr)
		} else {
			kept = append(kept, h)
		}
	}
	clear(i.held[len(kept):])
	i.held = kept
}

// random impairs datagram b as the profile's shares say, given draw r in
// [0, 1). i.mu must be held.
func (i *impairer) random(b []byte, addr net.Addr, now time.Time, key rtpKey, rtcp bool, r float64, emit func([]byte, net.Addr)) {
	p := &i.prof
	hold := func() {
		i.held = append(i.held, heldDatagram{b: append([]byte(nil), b...), addr: addr, left: 1 + i.rng.IntN(p.depth), at: now})
	}
	switch {
	case r < p.loss:
		if rtcp {
			i.stats.rtcpDropped++
		} else {
			i.stats.dropped++
			i.dropped[key]++
		}
	case r < p.loss+p.reorder && len(i.held) < p.maxHeld:
		hold()
		if !rtcp {
			i.stats.reordered++
		}
	case r < p.loss+p.reorder+p.dup && len(i.held) < p.maxHeld:
		emit(b, addr)
		hold()
		if !rtcp {
			i.stats.duplicated++
		}
	default:
		emit(b, addr)
	}
}

// apply does f to RTP datagram b. i.mu must be held.
func (i *impairer) apply(b []byte, addr net.Addr, now time.Time, key rtpKey, f forcedImpairment, emit func([]byte, net.Addr)) {
	keep := func(left int) {
		i.held = append(i.held, heldDatagram{b: append([]byte(nil), b...), addr: addr, left: left, at: now})
	}
	switch {
	case f.drop:
		i.stats.dropped++
		i.dropped[key]++
		return
	case f.hold > 0:
		keep(f.hold)
		i.stats.reordered++
	default:
		emit(b, addr)
	}
	if f.dup > 0 {
		keep(f.dup)
		i.stats.duplicated++
	}
}

// snapshot returns the counts so far.
func (i *impairer) snapshot() impairStats {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.stats
}

// offered returns how many copies of each RTP packet were offered to the
// link, and how many the link dropped.
func (i *impairer) offered() (seen, dropped map[rtpKey]int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	seen, dropped = make(map[rtpKey]int, len(i.seen)), make(map[rtpKey]int, len(i.dropped))
	for k, v := range i.seen {
		seen[k] = v
	}
	for k, v := range i.dropped {
		dropped[k] = v
	}
	return seen, dropped
}

// impairedNet is pion's standard network whose UDP sockets impair what
// they send (up) and receive (down); nil leaves that way clean.
type impairedNet struct {
	*stdnet.Net
	up, down *impairer
}

func newImpairedNet(up, down *impairer) (*impairedNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return &impairedNet{Net: n, up: up, down: down}, nil
}

// ListenUDP is the call pion's ICE agent makes for its host candidates'
// sockets.
func (n *impairedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return &impairedConn{UDPConn: c, up: n.up, down: n.down}, nil
}

// errImpairedUnsupported is returned by the socket calls pion's ICE agent
// does not make, so that nothing passes the impairment unseen.
var errImpairedUnsupported = errors.New("impaired test socket: call not supported")

// impairedConn is one impaired UDP socket. It embeds the socket for its
// addresses, deadlines, buffers and Close; every read and write method is
// its own.
type impairedConn struct {
	transport.UDPConn
	up, down *impairer

	readMu sync.Mutex // one reader at a time; guards buf and ready
	buf    [1500]byte
	ready  []heldDatagram // received datagrams that passed the impairment, in order
}

func (c *impairedConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.up == nil || !isRTPOrRTCP(p) {
		return c.UDPConn.WriteTo(p, addr)
	}
	c.up.pass(p, addr, time.Now(), func(b []byte, a net.Addr) { _, _ = c.UDPConn.WriteTo(b, a) })
	return len(p), nil
}

func (c *impairedConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.down == nil {
		return c.UDPConn.ReadFrom(p)
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		if len(c.ready) > 0 {
			d := c.ready[0]
			c.ready[0] = heldDatagram{}
			c.ready = c.ready[1:]
			return copy(p, d.b), d.addr, nil
		}
		n, addr, err := c.UDPConn.ReadFrom(c.buf[:])
		if err != nil || !isRTPOrRTCP(c.buf[:n]) {
			return copy(p, c.buf[:n]), addr, err
		}
		c.down.pass(c.buf[:n], addr, time.Now(), func(b []byte, a net.Addr) {
			c.ready = append(c.ready, heldDatagram{b: append([]byte(nil), b...), addr: a})
		})
	}
}

func (c *impairedConn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	n, addr, err := c.ReadFrom(b)
	ua, _ := addr.(*net.UDPAddr)
	return n, ua, err
}

func (c *impairedConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	return c.WriteTo(b, addr)
}

func (c *impairedConn) Read([]byte) (int, error)  { return 0, errImpairedUnsupported }
func (c *impairedConn) Write([]byte) (int, error) { return 0, errImpairedUnsupported }

func (c *impairedConn) ReadMsgUDP(_, _ []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	return 0, 0, 0, nil, errImpairedUnsupported
}

func (c *impairedConn) WriteMsgUDP(_, _ []byte, _ *net.UDPAddr) (n, oobn int, err error) {
	return 0, 0, errImpairedUnsupported
}

// impairedConn is a pion UDP socket.
var _ transport.UDPConn = (*impairedConn)(nil)
