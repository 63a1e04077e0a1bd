package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// testKeys fills a KeyCapture the way pion's hooks would after a
// handshake, with fixed secrets.
func testKeys(t testing.TB) *KeyCapture {
	t.Helper()
	k := &KeyCapture{}
	line := "CLIENT_RANDOM " + hex.EncodeToString(bytes.Repeat([]byte{1}, 32)) + " " + hex.EncodeToString(bytes.Repeat([]byte{2}, 48)) + "\n"
	if _, err := k.Write([]byte(line)); err != nil {
		t.Fatal(err)
	}
	suite := uint16(dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
	var hello handshake.MessageServerHello
	hello.Random.RandomBytes = [28]byte{3}
	hello.CipherSuiteID = &suite
	hello.Extensions = []extension.Extension{&extension.UseSRTP{ProtectionProfiles: []extension.SRTPProtectionProfile{extension.SRTP_AEAD_AES_128_GCM}}}
	k.ServerHello(hello)
	return k
}

// peer is the client's side of a Conn: its own socket and SRTP contexts.
type peer struct {
	conn     *net.UDPConn
	enc, dec *srtp.Context
}

func newPeer(t testing.TB, k *KeyCapture) *peer {
	t.Helper()
	profile, keys, err := k.Keys()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// The client sends with the server's remote keys and receives with its local ones.
	enc, err := srtp.CreateContext(keys.RemoteMasterKey, keys.RemoteMasterSalt, profile)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := srtp.CreateContext(keys.LocalMasterKey, keys.LocalMasterSalt, profile)
	if err != nil {
		t.Fatal(err)
	}
	return &peer{conn: conn, enc: enc, dec: dec}
}

func (p *peer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// rtpPacket is a plain RTP packet of ssrc with seq and a payload naming it.
func rtpPacket(ssrc uint32, seq uint16) []byte {
	h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq) * 90, SSRC: ssrc}
	b, _ := h.Marshal()
	return append(b, []byte("payload of ")...)
}

func (p *peer) sendRTP(t *testing.T, to netip.AddrPort, ssrc uint32, seq uint16) []byte {
	t.Helper()
	enc, err := p.enc.EncryptRTP(nil, rtpPacket(ssrc, seq), nil)
	if err != nil {
		t.Fatal(err)
	}
	p.send(t, to, enc)
	return enc
}

func (p *peer) send(t *testing.T, to netip.AddrPort, b []byte) {
	t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
}

// collector is a Handler that keeps the sequence numbers and payloads it gets.
type collector struct {
	mu   sync.Mutex
	seqs []uint16
	bad  int
	got  chan struct{}
}

func (c *collector) HandleRTP(pkt []byte, h *rtp.Header, _ time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seqs = append(c.seqs, h.SequenceNumber)
	if !bytes.Equal(pkt, rtpPacket(h.SSRC, h.SequenceNumber)) {
		c.bad++
	}
	select {
	case c.got <- struct{}{}:
	default:
	}
}

func (c *collector) snapshot() ([]uint16, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint16(nil), c.seqs...), c.bad
}

// pion stands for pion's UDP mux: the one reader of the socket, keeping
// what it is handed.
type pion struct {
	mu   sync.Mutex
	got  [][]byte
	done chan error
}

func readAll(s *Socket) *pion {
	p := &pion{done: make(chan error, 1)}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := s.ReadFromAddrPort(buf)
			if err != nil {
				p.done <- err
				return
			}
			p.mu.Lock()
			p.got = append(p.got, append([]byte(nil), buf[:n]...))
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *pion) has(b []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range p.got {
		if bytes.Equal(g, b) {
			return true
		}
	}
	return false
}

func newSocket(t *testing.T) (*Socket, netip.AddrPort, *pion) {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := readAll(s)
	t.Cleanup(func() {
		s.Close()
		if err := <-p.done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("reader ended with %v, want net.ErrClosed", err)
		}
	})
	return s, conn.LocalAddr().(*net.UDPAddr).AddrPort(), p
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rig is a Conn on a socket with pion's stand-in reading it, one peer and
// a collector; each test starts the Conn as it needs.
type rig struct {
	s      *Socket
	addr   netip.AddrPort // the socket's
	reader *pion
	k      *KeyCapture
	p      *peer
	c      *Conn
	h      *collector
}

func newRig(t *testing.T) *rig {
	t.Helper()
	s, addr, reader := newSocket(t)
	k := testKeys(t)
	c := NewConn(s, k)
	t.Cleanup(c.Close)
	return &rig{s: s, addr: addr, reader: reader, k: k, p: newPeer(t, k), c: c, h: &collector{got: make(chan struct{}, 1)}}
}

// TestConnRoutes: a started Conn takes its address's SRTP for the SSRCs it
// handles, decrypted, each packet once, reordered ones included; everything
// else reaches pion's reader untouched; what it sends, the peer decrypts.
func TestConnRoutes(t *testing.T) {
	r := newRig(t)
	addr, reader, p, c, h := r.addr, r.reader, r.p, r.c, r.h
	const ssrc = 0x1234
	c.AddHandler(ssrc, h)

	// Before Start nothing is routed: pion gets the packet.
	early := p.sendRTP(t, addr, ssrc, 1)
	eventually(t, "the packet before Start reaches pion", func() bool { return reader.has(early) })
	if err := c.Start(p.addr(), false); err != nil {
		t.Fatal(err)
	}

	stun := append([]byte{0x00, 0x01, 0x00, 0x00}, bytes.Repeat([]byte{7}, 16)...)
	p.send(t, addr, stun)
	other := p.sendRTP(t, addr, ssrc+1, 1) // an SSRC no handler wants
	rtcp := []byte{0x80, 200, 0x00, 0x06}  // a sender report's header
	rtcp = append(rtcp, bytes.Repeat([]byte{9}, 24)...)
	p.send(t, addr, rtcp)
	// Sequence numbers 2..40 with 10 and 11 swapped and 20 sent twice.
	var want []uint16
	for seq := uint16(2); seq <= 40; seq++ {
		switch seq {
		case 10:
			continue
		case 11:
			p.sendRTP(t, addr, ssrc, 11)
			p.sendRTP(t, addr, ssrc, 10)
			want = append(want, 11, 10)
			continue
		case 20:
			dup := p.sendRTP(t, addr, ssrc, 20)
			p.send(t, addr, dup)
			want = append(want, 20)
			continue
		}
		p.sendRTP(t, addr, ssrc, seq)
		want = append(want, seq)
	}
	eventually(t, "every routed packet handled", func() bool { got, _ := h.snapshot(); return len(got) >= len(want) })
	for _, b := range [][]byte{stun, other, rtcp} {
		eventually(t, "an unrouted datagram reaches pion", func() bool { return reader.has(b) })
	}
	time.Sleep(50 * time.Millisecond) // a second copy of 20 would have arrived by now
	got, bad := h.snapshot()
	if !equalSeqs(got, want) || bad != 0 {
		t.Errorf("handled %v (%d with a wrong payload), want %v", got, bad, want)
	}
	if st := c.Stats(); st.Decrypted != uint64(len(want)) || st.Dropped != 1 {
		t.Errorf("stats %+v, want %d decrypted and 1 dropped (the replay)", st, len(want))
	}

	// Egress: the peer decrypts what WriteRTP sends.
	hdr := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 7, Timestamp: 630, SSRC: 0x55}
	if _, err := c.WriteRTP(&hdr, []byte("payload of ")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := p.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := p.dec.DecryptRTP(nil, buf[:n], nil)
	if err != nil {
		t.Fatalf("peer cannot decrypt what the Conn sent: %v", err)
	}
	if !bytes.Equal(plain, rtpPacket(0x55, 7)) {
		t.Errorf("peer got %x, want %x", plain, rtpPacket(0x55, 7))
	}
}

func equalSeqs(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestConnGivesUp: packets that never authenticate (keys that do not
// match) make the Conn leave its address to pion, which then gets them.
func TestConnGivesUp(t *testing.T) {
	r := newRig(t)
	addr, reader, p, c, h := r.addr, r.reader, r.p, r.c, r.h
	// The peer encrypts with other keys.
	wrong, err := srtp.CreateContext(bytes.Repeat([]byte{5}, 16), bytes.Repeat([]byte{6}, 12), srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		t.Fatal(err)
	}
	p.enc = wrong
	c.AddHandler(0x99, h)
	if err := c.Start(p.addr(), false); err != nil {
		t.Fatal(err)
	}
	for seq := uint16(1); seq <= maxFailures; seq++ {
		p.sendRTP(t, addr, 0x99, seq)
	}
	eventually(t, "the failures counted", func() bool { return c.Stats().Dropped == maxFailures })
	last := p.sendRTP(t, addr, 0x99, maxFailures+1)
	eventually(t, "pion gets the address's packets again", func() bool { return reader.has(last) })
	if got, _ := h.snapshot(); len(got) != 0 {
		t.Errorf("handled %v from a peer with the wrong keys", got)
	}
}

// TestConnKeepsRouteAfterSuccess: once a packet has authenticated, forged
// or replayed packets are dropped however many there are; the route stays.
func TestConnKeepsRouteAfterSuccess(t *testing.T) {
	r := newRig(t)
	addr, reader, p, c, h := r.addr, r.reader, r.p, r.c, r.h
	c.AddHandler(0x99, h)
	if err := c.Start(p.addr(), false); err != nil {
		t.Fatal(err)
	}
	first := p.sendRTP(t, addr, 0x99, 1)
	eventually(t, "the first packet handled", func() bool { got, _ := h.snapshot(); return len(got) == 1 })
	for range 2 * maxFailures {
		p.send(t, addr, first) // replays
	}
	eventually(t, "the replays dropped", func() bool { return c.Stats().Dropped == 2*maxFailures })
	p.sendRTP(t, addr, 0x99, 2)
	eventually(t, "the next packet handled", func() bool { got, _ := h.snapshot(); return len(got) == 2 })
	if reader.has(first) {
		t.Error("a replay reached pion: the route was given up")
	}
}

// TestConnMoveBeforeStart: a pair change that lands before Start is the
// address Start routes.
func TestConnMoveBeforeStart(t *testing.T) {
	r := newRig(t)
	addr, c, h := r.addr, r.c, r.h
	p1, p2 := r.p, newPeer(t, r.k)
	p2.enc = p1.enc
	c.AddHandler(7, h)
	c.Move(p2.addr())
	if err := c.Start(p1.addr(), false); err != nil {
		t.Fatal(err)
	}
	p2.sendRTP(t, addr, 7, 1)
	eventually(t, "packet from the latest address handled", func() bool { got, _ := h.snapshot(); return len(got) == 1 })
}

// TestConnMoveAndClose: after Move the old address is pion's and the new
// one routed; after Close nothing is, and WriteRTP refuses.
func TestConnMoveAndClose(t *testing.T) {
	r := newRig(t)
	addr, reader, c, h := r.addr, r.reader, r.c, r.h
	p1, p2 := r.p, newPeer(t, r.k)
	p2.enc = p1.enc // one sender that changed address: one SRTP context
	c.AddHandler(7, h)
	if err := c.Start(p1.addr(), false); err != nil {
		t.Fatal(err)
	}
	p1.sendRTP(t, addr, 7, 1)
	eventually(t, "packet from the first address handled", func() bool { got, _ := h.snapshot(); return len(got) == 1 })
	c.Move(p2.addr())
	old := p1.sendRTP(t, addr, 7, 2)
	eventually(t, "the old address's packet reaches pion", func() bool { return reader.has(old) })
	p2.sendRTP(t, addr, 7, 3)
	eventually(t, "packet from the new address handled", func() bool { got, _ := h.snapshot(); return len(got) == 2 })
	c.Close()
	after := p2.sendRTP(t, addr, 7, 4)
	eventually(t, "after Close pion gets the packets", func() bool { return reader.has(after) })
	if _, err := c.WriteRTP(&rtp.Header{Version: 2, SSRC: 1}, nil); !errors.Is(err, ErrNoRoute) {
		t.Errorf("WriteRTP after Close: %v, want ErrNoRoute", err)
	}
}

// TestConnRTCP: with an RTCP handler, the address's SRTCP is decrypted and
// handed over, each packet once; without one it goes to pion.
func TestConnRTCP(t *testing.T) {
	r := newRig(t)
	addr, reader, p, c := r.addr, r.reader, r.p, r.c
	if err := c.Start(p.addr(), false); err != nil {
		t.Fatal(err)
	}
	sr := append([]byte{0x80, 200, 0x00, 0x06}, bytes.Repeat([]byte{9}, 24)...)
	enc1, err := p.enc.EncryptRTCP(nil, sr, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.send(t, addr, enc1)
	eventually(t, "SRTCP without a handler reaches pion", func() bool { return reader.has(enc1) })

	var mu sync.Mutex
	var got [][]byte
	c.SetRTCPHandler(func(b []byte, _ time.Time) {
		mu.Lock()
		got = append(got, append([]byte(nil), b...))
		mu.Unlock()
	})
	enc2, err := p.enc.EncryptRTCP(nil, sr, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.send(t, addr, enc2)
	p.send(t, addr, enc2) // a replay
	eventually(t, "SRTCP handled", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	eventually(t, "the replay dropped", func() bool { return c.Stats().Dropped == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || !bytes.Equal(got[0], sr) {
		t.Errorf("handled %x, want one %x", got, sr)
	}
	if reader.has(enc2) {
		t.Error("handled SRTCP also reached pion")
	}
}

// TestWriteRTPAllocatesNothing: encrypting and sending a packet with
// header extensions allocates nothing once the Conn is warm.
func TestWriteRTPAllocatesNothing(t *testing.T) {
	r := newRig(t)
	p, c := r.p, r.c
	if err := c.Start(p.addr(), false); err != nil {
		t.Fatal(err)
	}
	h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x55}
	_ = h.SetExtension(3, []byte{0, 1})
	payload := bytes.Repeat([]byte{1}, 1000)
	allocs := testing.AllocsPerRun(200, func() {
		h.SequenceNumber++
		if _, err := c.WriteRTP(&h, payload); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("WriteRTP: %v allocations per packet, want 0", allocs)
	}
}

// TestConnStartOverTCP: a connection whose pair is not UDP does not start:
// its media stays with pion, and a later Move does not start it either.
func TestConnStartOverTCP(t *testing.T) {
	r := newRig(t)
	p, c := r.p, r.c
	if err := c.Start(netip.AddrPort{}, false); !errors.Is(err, ErrNoRoute) {
		t.Fatalf("Start over TCP: %v, want ErrNoRoute", err)
	}
	c.Move(p.addr())
	if c.Started() {
		t.Error("a Move after a refused Start started the Conn")
	}
}
