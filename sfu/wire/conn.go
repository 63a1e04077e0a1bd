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
// included) and h (its header as parsed before decryption: with RFC 9335
// its extensions and CSRCs are those of the encrypted packet) are valid
// only during the call.
type Handler interface {
	HandleRTP(pkt []byte, h *rtp.Header, now time.Time)
}

// Conn is the media side of one peer connection whose DTLS handshake
// HelpCaster's SFU took part in as the server. Once started it decrypts the
// SRTP packets its remote address sends for the SSRCs handlers were added
// for, and it encrypts and sends RTP (WriteRTP). Everything else (RTCP,
// unknown SSRCs, ICE, DTLS) stays with pion.
type Conn struct {
	sock *Socket
	keys *KeyCapture

	mu      sync.Mutex // serialises Start, Move and Close
	remote  netip.AddrPort
	routed  bool
	closed  bool
	gaveUp  bool // ingress left to pion after authentication failures
	started atomic.Bool

	// Ingress: used by the socket's reading goroutine only.
	in       *srtp.Context
	hdr      rtp.Header
	handlers atomic.Pointer[[]*ssrcHandler] // copy-on-write, changed under handlersMu
	// failures counts authentication failures since the last success.
	failures   int
	handlersMu sync.Mutex
	rtcp       atomic.Pointer[RTCPHandler]

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
// the keys are unknown (this side was not the DTLS server): the
// connection's media then stays with pion.
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
	if c.started.Load() {
		c.moveLocked(remote)
		return nil
	}
	profile, keys, err := c.keys.Keys()
	if err != nil {
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
// invalid one (a pair over TCP) leaves the connection's media to pion
// until the next Move.
func (c *Conn) Move(remote netip.AddrPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || !c.started.Load() {
		return
	}
	c.moveLocked(remote)
}

func (c *Conn) moveLocked(remote netip.AddrPort) {
	if c.routed {
		c.sock.route(c.remote, nil, c)
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
		c.sock.route(remote, c, nil)
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
		c.sock.route(c.remote, nil, c)
		c.routed = false
	}
	c.to.Store(nil)
}

// Ready reports whether WriteRTP sends itself (Start has succeeded and
// the connection is open).
func (c *Conn) Ready() bool { return c.to.Load() != nil }

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
		// A replayed or forged packet, or keys that do not match.
		c.dropped.Add(1)
		if c.failures++; c.failures >= maxFailures {
			c.giveUp()
		}
		return true
	}
	c.failures = 0
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
		c.dropped.Add(1)
		if c.failures++; c.failures >= maxFailures {
			c.giveUp()
		}
		return true
	}
	c.failures = 0
	c.rtcpIn.Add(1)
	(*h)(b, now)
	return true
}

// giveUp hands the address back to pion after too many failures.
func (c *Conn) giveUp() {
	c.sock.log.Warn("SRTP packets fail authentication on the direct media path; leaving the connection to pion",
		"failures", c.failures)
	c.failures = 0
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gaveUp = true
	if c.routed {
		c.sock.route(c.remote, nil, c)
		c.routed = false
	}
}

// WriteRTP encrypts one RTP packet and sends it to the connection's
// remote address. It may be called from any goroutine.
func (c *Conn) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	to := c.to.Load()
	if to == nil {
		return 0, ErrClosed
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
	if err := c.sock.send(enc, *to); err != nil {
		return 0, fmt.Errorf("wire: send RTP: %w", err)
	}
	c.sent.Add(1)
	return n, nil
}

// Write encrypts and sends one marshalled RTP packet.
func (c *Conn) Write(b []byte) (int, error) {
	var h rtp.Header
	n, err := h.Unmarshal(b)
	if err != nil {
		return 0, fmt.Errorf("wire: RTP header: %w", err)
	}
	return c.WriteRTP(&h, b[n:])
}

// replayWindow is how far behind the newest packet of an SSRC an older
// one may arrive and still be accepted once (pion's SRTP sessions use the
// same).
const replayWindow = 64

// srtpOverhead is the most SRTP adds to a packet (an AEAD tag or an auth
// tag, no MKI).
const srtpOverhead = 16
