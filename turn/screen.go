package turn

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/pion/stun/v4"
)

// ChannelBind to a refused peer. pion answers a ChannelBind its permission
// handler refuses with 401 (Unauthorized), which tells a client its
// credentials are wrong; RFC 8656 (section 11.2, as for CreatePermission)
// says 403 (Forbidden). The server therefore answers such a request itself,
// before pion sees it: a ChannelBind whose peer the policy refuses and
// whose credentials check (an unexpired username of these credentials, the
// realm, the message integrity) gets a 403 signed with the same key, and is
// counted and logged as a refused permission. The nonce is not checked
// (pion keeps it); a replayed request gets the same 403 and changes
// nothing. Anything else, a ChannelBind without valid credentials
// included, goes to pion. The UDP listener's datagrams pass through
// screenChannelBind in the pump; TCP and TLS connections are wrapped
// (screenListener) so that their frames do.

// isChannelBind reports whether p starts like a ChannelBind request, the
// cheap test made on every datagram from a client.
func isChannelBind(p []byte) bool {
	return len(p) >= stunHeaderSize && p[0] == 0x00 && p[1] == 0x09
}

// screenChannelBind answers p through reply and reports true when p is a
// ChannelBind request, with valid credentials, to a peer the policy
// refuses; otherwise it does nothing and reports false.
func (s *Server) screenChannelBind(p []byte, reply func([]byte) error) bool {
	if !isChannelBind(p) {
		return false
	}
	m := &stun.Message{Raw: append([]byte(nil), p...)}
	if m.Decode() != nil {
		return false
	}
	var peer stun.XORMappedAddress
	if peer.GetFromAs(m, stun.AttrXORPeerAddress) != nil {
		return false
	}
	reason := ReasonUnspecified
	if ip, ok := netip.AddrFromSlice(peer.IP); ok {
		reason = s.cfg.Policy.Check(ip)
	}
	if reason == "" {
		return false
	}
	var user stun.Username
	var realm stun.Realm
	if user.GetFrom(m) != nil || realm.GetFrom(m) != nil || realm.String() != s.cfg.Realm {
		return false
	}
	if _, err := s.cfg.Credentials.Check(user.String(), time.Now()); err != nil {
		return false
	}
	key := stun.NewLongTermIntegrity(user.String(), realm.String(), s.cfg.Credentials.Password(user.String()))
	if key.Check(m) != nil {
		return false
	}
	res, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID),
		stun.NewType(stun.MethodChannelBind, stun.ClassErrorResponse), stun.CodeForbidden, key, stun.Fingerprint)
	if err != nil {
		return false
	}
	s.refusals.refuse(reason)
	if err := reply(res.Raw); err != nil {
		s.log.Debug("turn: answering a refused channel bind failed", "err", err)
	}
	return true
}

// screenListener wraps a TCP or TLS listener so that each connection's
// frames pass through screenChannelBind before pion reads them.
type screenListener struct {
	net.Listener
	s *Server
}

func (l *screenListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &screenConn{Conn: c, s: l.s, r: bufio.NewReader(c)}, nil
}

// tlsHandshakeTimeout bounds a TLS client's handshake (pion's own bound,
// which it applies only to a *tls.Conn it sees itself).
const tlsHandshakeTimeout = 10 * time.Second

// screenConn hands pion one TURN frame (a STUN message, or ChannelData
// with its padding) at a time, minus the ChannelBind requests it answered.
// Read is called by pion's one reader of the connection; writes (pion's and
// the 403s) are whole messages, and net.Conn writes do not interleave.
type screenConn struct {
	net.Conn
	s         *Server
	r         *bufio.Reader
	buf       []byte // the current frame
	pending   []byte // what of it pion has not read yet
	handshook bool
}

func (c *screenConn) Read(p []byte) (int, error) {
	if !c.handshook {
		c.handshook = true
		if tc, ok := c.Conn.(*tls.Conn); ok {
			ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
			err := tc.HandshakeContext(ctx)
			cancel()
			if err != nil {
				return 0, fmt.Errorf("turn: TLS handshake: %w", err)
			}
		}
	}
	for len(c.pending) == 0 {
		frame, err := c.next()
		if err != nil {
			return 0, err
		}
		if !c.s.screenChannelBind(frame, c.reply) {
			c.pending = frame
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *screenConn) reply(b []byte) error {
	_, err := c.Conn.Write(b)
	return err
}

// next reads the next frame. Bytes that are neither STUN nor ChannelData
// are passed on as they come, for pion to refuse.
func (c *screenConn) next() ([]byte, error) {
	head, err := c.r.Peek(4)
	if err != nil {
		if len(head) > 0 {
			return c.raw()
		}
		return nil, err
	}
	length := int(binary.BigEndian.Uint16(head[2:4]))
	var size int
	switch head[0] >> 6 {
	case 0: // STUN
		size = stunHeaderSize + length
	case 1: // ChannelData, padded to 4 bytes over a stream
		size = 4 + (length+3)&^3
	default:
		return c.raw()
	}
	c.buf = slices.Grow(c.buf[:0], size)[:size]
	if _, err := io.ReadFull(c.r, c.buf); err != nil {
		return nil, err
	}
	return c.buf, nil
}

func (c *screenConn) raw() ([]byte, error) {
	c.buf = slices.Grow(c.buf[:0], c.r.Buffered())[:c.r.Buffered()]
	n, err := c.r.Read(c.buf)
	return c.buf[:n], err
}

const stunHeaderSize = 20
