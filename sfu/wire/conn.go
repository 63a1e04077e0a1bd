package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// RTCPHandler takes a connection's decrypted compound RTCP packets, on the
// socket's reading goroutine; b is valid only during the call.
type RTCPHandler func(b []byte, now time.Time)

// Handler takes the decrypted RTP packets of one SSRC. HandleRTP runs on
// the socket's reading goroutine; pkt (header and payload, padding
// included) and h (its parsed header; with RFC 9335 pion's context parses
// it again after decrypting the extensions and CSRCs) are valid only
// during the call.
type Handler interface {
	HandleRTP(pkt []byte, h *rtp.Header, now time.Time)
}

// Conn is the media side of one peer connection whose DTLS handshake
// HelpCaster's SFU took part in as the server. Once started it decrypts the
// SRTP packets its remote address sends for the SSRCs handlers were added
// for, and the SRTCP ones when it has an RTCP handler, and it encrypts and
// sends RTP (WriteRTP). Everything else (unknown SSRCs, ICE, DTLS) stays
// with pion.
//
// Once the Conn has carried a stream, the stream never goes back to pion's
// SRTP context: that context has not followed its rollover counter, and
// encrypting with it could reuse an AES-GCM nonce the Conn already used.
// While the selected pair is not UDP, WriteRTP drops (ErrNoRoute).
type Conn struct {
	sock *Socket
	keys *KeyCapture

	mu      sync.Mutex // serialises Start, Move and Close
	remote  netip.AddrPort
	routed  bool
	closed  bool
	gaveUp  bool // ingress left to pion: nothing ever authenticated
	refused bool // Start failed: the connection is pion's for good
	// latest is the last remote Move was given before Start, which then
	// uses it: the pair may change while Start is on its way.
	latest  netip.AddrPort
	moved   bool
	started atomic.Bool

	// Ingress: used by the socket's reading goroutine only.
	in       *srtp.Context
	hdr      rtp.Header
	handlers atomic.Pointer[[]*ssrcHandler] // copy-on-write, changed under handlersMu
	// failures counts authentication failures while nothing has
	// authenticated yet (authenticated).
	failures      int
	authenticated bool
	handlersMu    sync.Mutex
	rtcp          atomic.Pointer[RTCPHandler]

	// Egress.
	outMu  sync.Mutex
	out    *srtp.Context
	to     atomic.Pointer[netip.AddrPort]
	outBuf []byte
	outHdr rtp.Header // EncryptRTP parses the packet again into it; reused

	decrypted, rtcpIn, dropped, sent atomic.Uint64
}

type ssrcHandler struct {
	ssrc uint32
	h    Handler
}

// maxFailures is how many packets in a row may fail authentication before
// the route is given up and the address's packets go back to pion (keys
// that do not match would otherwise drop every packet).
const maxFailures = 64

// NewConn makes the Conn of a connection whose DTLS handshake keys reports.
func NewConn(sock *Socket, keys *KeyCapture) *Conn {
	return &Conn{sock: sock, keys: keys, outBuf: make([]byte, 0, bufSize)}
}

// ConnStats counts a Conn's packets: RTP decrypted and handled, RTCP
// decrypted and handled, SRTP and SRTCP dropped (replays, failed
// authentication), RTP sent.
type ConnStats struct {
	Decrypted, RTCP, Dropped, Sent uint64
}

// Stats returns the counts so far.
func (c *Conn) Stats() ConnStats {
	return ConnStats{Decrypted: c.decrypted.Load(), RTCP: c.rtcpIn.Load(), Dropped: c.dropped.Load(), Sent: c.sent.Load()}
}

// ErrClosed is returned by a closed Conn.
var ErrClosed = errors.New("wire: connection closed")

// Start derives the SRTP contexts from the finished handshake and routes
// remote (the selected ICE pair's remote UDP address) to c. It fails when
// the keys are unknown (this side was not the DTLS server) or the pair is
// not UDP (remote is invalid): the connection's media then stays with
// pion.
//
// sendCryptex says whether the remote declared RFC 9335 (a=cryptex): sent
// packets then have their header extensions encrypted too. Received
// packets are accepted either way.
func (c *Conn) Start(remote netip.AddrPort, sendCryptex bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.refused {
		return ErrNoRoute
	}
	if c.moved {
		remote = c.latest
	}
	if c.started.Load() {
		c.moveLocked(remote)
		return nil
	}
	if !remote.IsValid() {
		// A pair over TCP: the connection's media stays with pion, for
		// good (a stream never changes SRTP context once it has flowed).
		c.refused = true
		return ErrNoRoute
	}
	profile, keys, err := c.keys.Keys()
	if err != nil {
		c.refused = true
		return err
	}
	in, err := srtp.CreateContext(keys.RemoteMasterKey, keys.RemoteMasterSalt, profile,
		srtp.Cryptex(srtp.CryptexModeEnabled), srtp.SRTPReplayProtection(replayWindow), srtp.SRTCPReplayProtection(replayWindow))
	if err != nil {
		return fmt.Errorf("wire: SRTP context: %w", err)
	}
	sendMode := srtp.CryptexModeDisabled
	if sendCryptex {
		sendMode = srtp.CryptexModeEnabled
	}
	out, err := srtp.CreateContext(keys.LocalMasterKey, keys.LocalMasterSalt, profile, srtp.Cryptex(sendMode))
	if err != nil {
		return fmt.Errorf("wire: SRTP context: %w", err)
	}
	c.in = in // read by the socket's reader only after the route below is published
	c.outMu.Lock()
	c.out = out
	c.outMu.Unlock()
	c.started.Store(true)
	c.moveLocked(remote)
	return nil
}

// Move routes a new remote address (the selected ICE pair changed); an
// invalid one (a pair over TCP) leaves the connection's ingress to pion
// and makes WriteRTP drop until the next Move. Before Start it only
// records the address for Start.
func (c *Conn) Move(remote netip.AddrPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if !c.started.Load() {
		c.latest, c.moved = remote, true
		return
	}
	c.moveLocked(remote)
}

func (c *Conn) moveLocked(remote netip.AddrPort) {
	if c.routed {
		c.sock.dropRoute(c.remote, c)
		c.routed = false
	}
	if !remote.IsValid() {
		c.to.Store(nil)
		return
	}
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	c.remote = remote
	c.to.Store(&remote)
	if !c.gaveUp {
		c.sock.setRoute(remote, c)
		c.routed = true
	}
}

// Close removes the route; packets from the address go to pion again.
func (c *Conn) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	if c.routed {
		c.sock.dropRoute(c.remote, c)
		c.routed = false
	}
	c.to.Store(nil)
}

// Started reports whether Start has succeeded: from then on the
// connection's RTP is sent through WriteRTP only.
func (c *Conn) Started() bool { return c.started.Load() }

// ErrNoRoute: the connection's selected pair is not UDP (or it closed), so
// WriteRTP has nowhere to send.
var ErrNoRoute = errors.New("wire: no UDP route to the connection")

// AddHandler sends ssrc's packets to h from now on.
//
// The Conn's context starts the stream's SRTP rollover counter at 0. Were
// the stream's sequence numbers to wrap between its first packet (read by
// pion) and AddHandler, every packet would fail authentication here, and
// after maxFailures the connection's media goes back to pion, whose
// context has followed the stream from its start.
func (c *Conn) AddHandler(ssrc uint32, h Handler) {
	c.handlersMu.Lock()
	defer c.handlersMu.Unlock()
	next := c.without(ssrc)
	next = append(next, &ssrcHandler{ssrc: ssrc, h: h})
	c.handlers.Store(&next)
}

// without is the handler list less ssrc's. c.handlersMu must be held.
func (c *Conn) without(ssrc uint32) []*ssrcHandler {
	var next []*ssrcHandler
	if old := c.handlers.Load(); old != nil {
		for _, o := range *old {
			if o.ssrc != ssrc {
				next = append(next, o)
			}
		}
	}
	return next
}

// SetRTCPHandler sends the connection's RTCP to h from now on (nil: to
// pion again).
func (c *Conn) SetRTCPHandler(h RTCPHandler) {
	if h == nil {
		c.rtcp.Store(nil)
		return
	}
	c.rtcp.Store(&h)
}

// RemoveHandler stops handling ssrc; its packets go to pion again.
func (c *Conn) RemoveHandler(ssrc uint32) {
	c.handlersMu.Lock()
	defer c.handlersMu.Unlock()
	next := c.without(ssrc)
	c.handlers.Store(&next)
}

func (c *Conn) handler(ssrc uint32) *ssrcHandler {
	hs := c.handlers.Load()
	if hs == nil {
		return nil
	}
	for _, o := range *hs {
		if o.ssrc == ssrc {
			return o
		}
	}
	return nil
}

// Receive implements Route: it takes the SRTP packets of handled SSRCs
// and, with an RTCP handler, the SRTCP packets (payload types 64-95 with
// the marker bit, RFC 5761), decrypts them in place and hands them over.
func (c *Conn) Receive(d []byte, now time.Time) bool {
	if pt := d[1]; pt >= 192 && pt <= 223 {
		return c.receiveRTCP(d, now)
	}
	e := c.handler(binary.BigEndian.Uint32(d[8:12]))
	if e == nil {
		return false
	}
	pkt, err := c.in.DecryptRTP(d[:0], d, &c.hdr)
	if err != nil {
		c.failed()
		return true
	}
	c.authenticated = true
	c.decrypted.Add(1)
	e.h.HandleRTP(pkt, &c.hdr, now)
	return true
}

func (c *Conn) receiveRTCP(d []byte, now time.Time) bool {
	h := c.rtcp.Load()
	if h == nil {
		return false
	}
	b, err := c.in.DecryptRTCP(d[:0], d, nil)
	if err != nil {
		c.failed()
		return true
	}
	c.authenticated = true
	c.rtcpIn.Add(1)
	(*h)(b, now)
	return true
}

// failed counts a packet that did not decrypt: a replay, a forgery, or
// keys that do not match. Once anything has authenticated, the keys are
// right and such packets are only dropped; until then, maxFailures of them
// in a row mean the keys are wrong (or the stream's rollover counter
// moved before the route existed), and the address goes back to pion,
// whose context has followed the connection from its start.
func (c *Conn) failed() {
	c.dropped.Add(1)
	if c.authenticated {
		return
	}
	if c.failures++; c.failures >= maxFailures {
		c.giveUp()
	}
}

// giveUp hands the address back to pion for good.
func (c *Conn) giveUp() {
	c.sock.log.Warn("SRTP packets fail authentication on the direct media path; leaving the connection to pion",
		"failures", c.failures)
	c.failures = 0
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gaveUp = true
	if c.routed {
		c.sock.dropRoute(c.remote, c)
		c.routed = false
	}
}

// WriteRTP encrypts one RTP packet and sends it to the connection's
// remote address. It may be called from any goroutine.
func (c *Conn) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	to := c.to.Load()
	if to == nil {
		return 0, ErrNoRoute
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	n := h.MarshalSize() + len(payload)
	if n+srtpOverhead > cap(c.outBuf) {
		return 0, fmt.Errorf("wire: RTP packet of %d bytes too large", n)
	}
	buf := c.outBuf[:n]
	hn, err := h.MarshalTo(buf)
	if err != nil {
		return 0, fmt.Errorf("wire: marshal RTP header: %w", err)
	}
	copy(buf[hn:], payload)
	enc, err := c.out.EncryptRTP(buf[:0], buf, &c.outHdr)
	if err != nil {
		return 0, fmt.Errorf("wire: encrypt RTP: %w", err)
	}
	// A full socket buffer drops the packet, as a congested router would:
	// this may run on the socket's reader, which must not wait.
	if err := c.sock.send(enc, *to, false); err != nil {
		return 0, fmt.Errorf("wire: send RTP: %w", err)
	}
	c.sent.Add(1)
	return n, nil
}

// replayWindow is how far behind the newest packet of an SSRC an older
// one may arrive and still be accepted once (pion's SRTP sessions use the
// same).
const replayWindow = 64

// srtpOverhead is the most SRTP adds to a packet (an AEAD tag or an auth
// tag, no MKI).
const srtpOverhead = 16
