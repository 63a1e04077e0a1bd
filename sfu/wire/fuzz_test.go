package wire

import (
	"net"
	"testing"
	"time"
)

// FuzzConnReceive offers arbitrary datagrams to a started Conn, as the
// socket does for its route's address: anything may arrive there, from
// anyone who can spoof the address. Nothing may panic; nothing that does
// not authenticate may reach a handler.
func FuzzConnReceive(f *testing.F) {
	k := testKeys(f)
	p := newPeer(f, k)
	enc, err := p.enc.EncryptRTP(nil, rtpPacket(7, 1), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add([]byte{0x80, 200, 0, 6, 1, 2, 3, 4})
	f.Add(rtpPacket(7, 2))
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(conn, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, d []byte) {
		if len(d) < 12 || d[0]&0xc0 != 0x80 {
			return // the socket offers a route nothing else
		}
		c := NewConn(s, k)
		defer c.Close()
		h := &collector{got: make(chan struct{}, 1)}
		c.AddHandler(7, h)
		c.SetRTCPHandler(func([]byte, time.Time) {})
		if err := c.Start(p.addr(), false); err != nil {
			t.Fatal(err)
		}
		c.Receive(append([]byte(nil), d...), time.Now())
		if got, bad := h.snapshot(); bad != 0 || (len(got) > 0 && string(d) != string(enc)) {
			t.Errorf("a datagram that is not the encrypted packet reached the handler: %v", got)
		}
	})
}
