package turn

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
)

// rawClient speaks TURN over UDP message by message, for what pion's client
// does not send (EVEN-PORT, RESERVATION-TOKEN) and to read error codes: it
// does the long-term credential dance (an unauthenticated request, then
// the same with the realm and nonce of the 401) and nothing else.
type rawClient struct {
	t            *testing.T
	conn         net.PacketConn
	server       net.Addr
	user, pass   string
	realm, nonce string
}

func newRawClient(t *testing.T, s *Server, user, pass string) *rawClient {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	server, err := net.ResolveUDPAddr("udp4", udpAddr(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, conn: conn, server: server, user: user, pass: pass}
}

// newRawClientTCP is a rawClient over a TCP connection to s.
func newRawClientTCP(t *testing.T, s *Server, user, pass string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.TCPPort)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: turn.NewSTUNConn(conn), server: conn.RemoteAddr(), user: user, pass: pass}
}

// do sends a request of method with attrs, authenticated once the server
// asked, and returns the response.
func (c *rawClient) do(method stun.Method, attrs ...stun.Setter) *stun.Message {
	c.t.Helper()
	for try := 0; ; try++ {
		setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)
		if c.nonce != "" {
			setters = append(setters, stun.NewUsername(c.user), stun.NewRealm(c.realm), stun.NewNonce(c.nonce),
				stun.NewLongTermIntegrity(c.user, c.realm, c.pass))
		}
		res := c.roundTrip(stun.MustBuild(append(setters, stun.Fingerprint)...))
		var code stun.ErrorCodeAttribute
		if try == 0 && code.GetFrom(res) == nil && (code.Code == stun.CodeUnauthorized || code.Code == stun.CodeStaleNonce) {
			var realm stun.Realm
			var nonce stun.Nonce
			if realm.GetFrom(res) == nil && nonce.GetFrom(res) == nil {
				c.realm, c.nonce = realm.String(), nonce.String()
				continue
			}
		}
		return res
	}
}

// roundTrip sends msg and returns the response with its transaction id.
func (c *rawClient) roundTrip(msg *stun.Message) *stun.Message {
	c.t.Helper()
	if _, err := c.conn.WriteTo(msg.Raw, c.server); err != nil {
		c.t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			c.t.Fatalf("no answer to %v: %v", msg.Type, err)
		}
		res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if res.Decode() == nil && res.TransactionID == msg.TransactionID {
			return res
		}
	}
}

// code is a response's error code, 0 for a success.
func code(m *stun.Message) int {
	var e stun.ErrorCodeAttribute
	if err := e.GetFrom(m); errors.Is(err, stun.ErrAttributeNotFound) {
		return 0
	}
	return int(e.Code)
}

// relayed is an Allocate response's relayed address.
func relayed(t *testing.T, m *stun.Message) *net.UDPAddr {
	t.Helper()
	var a stun.XORMappedAddress
	if err := a.GetFromAs(m, stun.AttrXORRelayedAddress); err != nil {
		t.Fatalf("no relayed address in %v: %v", m, err)
	}
	return &net.UDPAddr{IP: a.IP, Port: a.Port}
}

// TURN attributes, encoded by hand (pion/turn keeps its own internal).
var (
	udpTransport = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	evenPortR    = stun.RawAttribute{Type: stun.AttrEvenPort, Value: []byte{0x80}} // R: reserve the next port
)

func reservationToken(token []byte) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrReservationToken, Value: token}
}

func channelNumber(n uint16) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{byte(n >> 8), byte(n), 0, 0}}
}

type peerAddress net.UDPAddr

func (p *peerAddress) AddTo(m *stun.Message) error {
	return (&stun.XORMappedAddress{IP: p.IP, Port: p.Port}).AddToAs(m, stun.AttrXORPeerAddress)
}
