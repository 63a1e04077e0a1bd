package sfu_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/rtpcodec"
	"github.com/helpcaster/helpcaster/sfu"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// frameMagic marks the synthetic VP8 frames the test publisher writes, so
// the subscriber can tell them from anything else.
var frameMagic = []byte("HCTCP")

// TestICEOverTCP publishes VP8 from a client that may use only TCP, and
// checks that a TCP-only subscriber receives it: media in and out of the SFU
// over its ICE-TCP listener.
func TestICEOverTCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sfu.New(sfu.Config{ListenIP: "127.0.0.1", LoopbackOnly: true, TCP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tcpAddr := s.TCPAddr()
	if tcpAddr == nil || tcpAddr.Port == 0 || !tcpAddr.IP.IsLoopback() {
		t.Fatalf("TCPAddr() = %v; want a loopback address with a port", tcpAddr)
	}
	room, err := s.Room("tcp")
	if err != nil {
		t.Fatal(err)
	}
	api := tcpOnlyAPI(t)

	// The subscriber joins first and answers the SFU's offers.
	sub := newTestPeer(t, api, room, "subscriber", sfu.PCSub)
	defer sub.close()
	var (
		recvWG     sync.WaitGroup
		packets    atomic.Int64
		keyframes  atomic.Int64
		gotEnough  = make(chan struct{})
		enoughOnce sync.Once
		codec      atomic.Value
	)
	const wantPackets = 30
	sub.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		recvWG.Add(1)
		defer recvWG.Done()
		codec.Store(tr.Codec().MimeType)
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if !bytes.Contains(pkt.Payload, frameMagic) {
				continue
			}
			if rtpcodec.IsKeyframe(webrtc.MimeTypeVP8, pkt.Payload) {
				keyframes.Add(1)
			}
			if packets.Add(1) >= wantPackets && keyframes.Load() > 0 {
				enoughOnce.Do(func() { close(gotEnough) })
			}
		}
	})
	sub.start()

	// The publisher offers one VP8 track.
	pub := newTestPeer(t, api, room, "publisher", sfu.PCPub)
	defer pub.close()
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "publisher")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := pub.pc.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	var forceKey atomic.Bool
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() { // PLIs from the SFU ask for a keyframe
		defer pubWG.Done()
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if _, ok := p.(*rtcp.PictureLossIndication); ok {
					forceKey.Store(true)
				}
			}
		}
	}()
	offer, err := pub.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer, err := pub.part.Offer(offer.SDP)
	if err != nil {
		t.Fatalf("Offer: %v", err)
	}
	if err := pub.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	pub.start()

	writeCtx, stopWriting := context.WithCancel(ctx)
	defer stopWriting()
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		writeVP8(writeCtx, track, &forceKey)
	}()

	select {
	case <-gotEnough:
	case err := <-sub.failed:
		t.Fatalf("subscriber: %v", err)
	case err := <-pub.failed:
		t.Fatalf("publisher: %v", err)
	case <-ctx.Done():
		t.Fatalf("subscriber received %d marked packets (%d keyframes); want %d and a keyframe",
			packets.Load(), keyframes.Load(), wantPackets)
	}
	if c, _ := codec.Load().(string); !strings.EqualFold(c, webrtc.MimeTypeVP8) {
		t.Errorf("subscriber's track codec %q; want %s", c, webrtc.MimeTypeVP8)
	}

	// Both clients reached the SFU through its TCP listener.
	for _, p := range []*testPeer{pub, sub} {
		pair, err := p.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("%s: no selected candidate pair (%v)", p.name, err)
		}
		if pair.Local.Protocol != webrtc.ICEProtocolTCP || pair.Remote.Protocol != webrtc.ICEProtocolTCP {
			t.Errorf("%s: selected pair %s; want TCP on both ends", p.name, pair)
		}
		if pair.Remote.Address != tcpAddr.IP.String() || int(pair.Remote.Port) != tcpAddr.Port || pair.Remote.TCPType != "passive" {
			t.Errorf("%s: remote candidate %s; want the SFU's passive TCP candidate at %s", p.name, pair.Remote, tcpAddr)
		}
	}
	// The SFU announced its UDP mux and its TCP listener, and no active
	// TCP candidates.
	for _, p := range []*testPeer{pub, sub} {
		var udp, tcp int
		for _, c := range p.sfuCandidates() {
			switch {
			case c.NetworkType().IsUDP() && c.Port() == s.Addr().Port:
				udp++
			case c.NetworkType().IsTCP() && c.TCPType() == ice.TCPTypePassive && c.Port() == tcpAddr.Port:
				tcp++
			default:
				t.Errorf("%s: unexpected SFU candidate %s", p.name, c)
			}
		}
		if udp == 0 || tcp == 0 {
			t.Errorf("%s: SFU gave %d UDP mux and %d TCP listener candidates; want both", p.name, udp, tcp)
		}
	}

	stopWriting()
	pub.close()
	sub.close()
	pubWG.Wait()
	recvWG.Wait()
}

// TestICETCPPublicIP checks that the public address rewrite applies to the
// TCP candidates as to the UDP ones.
func TestICETCPPublicIP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const public = "203.0.113.9"
	s, err := sfu.New(sfu.Config{LoopbackOnly: true, TCP: true, PublicIPs: []string{public}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	room, err := s.Room("public")
	if err != nil {
		t.Fatal(err)
	}
	p := newTestPeer(t, tcpOnlyAPI(t), room, "publisher", sfu.PCPub)
	defer p.close()
	if _, err := p.pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	if _, err := p.part.Offer(offer.SDP); err != nil {
		t.Fatal(err)
	}
	// Gathering from two local sockets ends quickly; wait for both.
	var udp, tcp ice.Candidate
	for udp == nil || tcp == nil {
		select {
		case sig := <-p.signals:
			if sig.Candidate == nil || sig.PC != sfu.PCPub {
				continue
			}
			c, err := ice.UnmarshalCandidate(sig.Candidate.Candidate)
			if err != nil {
				t.Fatalf("SFU candidate %q: %v", sig.Candidate.Candidate, err)
			}
			if c.Address() != public {
				t.Errorf("SFU candidate %s does not announce %s", c, public)
			}
			if c.NetworkType().IsTCP() {
				tcp = c
			} else {
				udp = c
			}
		case <-ctx.Done():
			t.Fatalf("SFU candidates: UDP %v, TCP %v; want one of each", udp, tcp)
		}
	}
	if tcp.Port() != s.TCPAddr().Port || tcp.TCPType() != ice.TCPTypePassive || udp.Port() != s.Addr().Port {
		t.Errorf("candidates %s and %s; want UDP port %d and passive TCP port %d", udp, tcp, s.Addr().Port, s.TCPAddr().Port)
	}
}

// TestICETCPConfig covers the TCP settings' edges: off by default, a port
// in use, bad ports, and a Close that does not wait for silent clients.
func TestICETCPConfig(t *testing.T) {
	t.Run("off by default", func(t *testing.T) {
		s, err := sfu.New(sfu.Config{LoopbackOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if a := s.TCPAddr(); a != nil {
			t.Errorf("TCPAddr() = %v; want nil without TCP", a)
		}
	})

	t.Run("port in use", func(t *testing.T) {
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		port := busy.Addr().(*net.TCPAddr).Port
		udpPort := freeUDPPort(t)
		s, err := sfu.New(sfu.Config{ListenIP: "127.0.0.1", UDPPort: udpPort, TCP: true, TCPPort: port})
		if err == nil {
			s.Close()
			t.Fatal("New succeeded on a TCP port in use")
		}
		want := "open media TCP port 127.0.0.1:" + strconv.Itoa(port)
		if !strings.Contains(err.Error(), want) || !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("error %q; want it to contain %q and wrap EADDRINUSE", err, want)
		}
		// The UDP socket opened before the failure was released.
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: udpPort})
		if err != nil {
			t.Fatalf("UDP port still held after the failed New: %v", err)
		}
		c.Close()
	})

	t.Run("bad ports", func(t *testing.T) {
		for _, cfg := range []sfu.Config{
			{TCP: true, TCPPort: -1},
			{TCP: true, TCPPort: 65536},
			{TCPPort: 7881}, // a port without TCP is a mistake, not "off"
		} {
			if s, err := sfu.New(cfg); err == nil {
				s.Close()
				t.Errorf("New(TCP %v, TCPPort %d) succeeded; want an error", cfg.TCP, cfg.TCPPort)
			} else if !strings.Contains(err.Error(), strconv.Itoa(cfg.TCPPort)) {
				t.Errorf("New(TCP %v, TCPPort %d): error %q does not name the port", cfg.TCP, cfg.TCPPort, err)
			}
		}
	})

	t.Run("never dials out", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := sfu.New(sfu.Config{LoopbackOnly: true, TCP: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		room, err := s.Room("dial")
		if err != nil {
			t.Fatal(err)
		}
		p := newTestPeer(t, tcpOnlyAPI(t), room, "publisher", sfu.PCPub)
		defer p.close()
		if _, err := p.pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
		offer, err := p.pc.CreateOffer(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.pc.SetLocalDescription(offer); err != nil {
			t.Fatal(err)
		}
		if _, err := p.part.Offer(offer.SDP); err != nil {
			t.Fatal(err)
		}
		// A client claims a passive TCP candidate; an SFU with active TCP
		// would connect to it at once.
		trap, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer trap.Close()
		port := trap.Addr().(*net.TCPAddr).Port
		cand := "candidate:1 1 tcp 1671430143 127.0.0.1 " + strconv.Itoa(port) + " typ host tcptype passive"
		if err := p.part.AddCandidate(sfu.PCPub, webrtc.ICECandidateInit{Candidate: cand}); err != nil {
			t.Fatal(err)
		}
		dialed := make(chan struct{})
		go func() {
			if c, err := trap.Accept(); err == nil {
				c.Close()
				close(dialed)
			}
		}()
		wait, stop := context.WithTimeout(ctx, 2*time.Second)
		defer stop()
		select {
		case <-dialed:
			t.Error("the SFU connected to a client's passive TCP candidate")
		case <-wait.Done():
		}
	})

	t.Run("close with a silent client", func(t *testing.T) {
		s, err := sfu.New(sfu.Config{LoopbackOnly: true, TCP: true})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("tcp", s.TCPAddr().String())
		if err != nil {
			s.Close()
			t.Fatal(err)
		}
		defer conn.Close()
		// Half a frame: the mux waits for the rest of its first STUN message.
		if _, err := conn.Write([]byte{0, 20, 0, 1}); err != nil {
			t.Fatal(err)
		}
		// Give the mux a moment to accept the connection (Accept cannot be
		// observed from here; if it has not happened, the test passes
		// without testing much, never fails spuriously).
		time.Sleep(200 * time.Millisecond)
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("Close: %v", err)
			}
		case <-time.After(20 * time.Second): // pion's own first-message timeout is 30 s
			t.Fatal("Close is waiting for a client that never sent a STUN message")
		}
		if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("read from the SFU after Close: %v; want the connection closed", err)
		}
	})
}

// tcpOnlyAPI is a client WebRTC stack that may use only TCP over IPv4 on
// loopback.
func tcpOnlyAPI(t *testing.T) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// testPeer is a client peer connection talking to one of a participant's
// two SFU connections (role), with the signals relayed in-process.
type testPeer struct {
	t       *testing.T
	name    string
	role    string
	pc      *webrtc.PeerConnection
	part    *sfu.Participant
	signals chan sfu.Signal
	failed  chan error
	done    chan struct{}
	wg      sync.WaitGroup

	mu    sync.Mutex
	cands []ice.Candidate // the SFU's candidates for role

	closeOnce sync.Once
}

func newTestPeer(t *testing.T, api *webrtc.API, room *sfu.Room, name, role string) *testPeer {
	t.Helper()
	p := &testPeer{t: t, name: name, role: role, signals: make(chan sfu.Signal, 256),
		failed: make(chan error, 1), done: make(chan struct{})}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p.pc = pc
	part, err := room.Join(name, func(s sfu.Signal) {
		// Called with SFU locks held: hand off, never call back here.
		select {
		case p.signals <- s:
		case <-p.done:
		}
	})
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	p.part = part
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		if err := part.AddCandidate(role, c.ToJSON()); err != nil && !errors.Is(err, sfu.ErrClosed) {
			p.fail(err)
		}
	})
	return p
}

// start relays the SFU's signals to the client until close.
func (p *testPeer) start() {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		var pending []webrtc.ICECandidateInit
		for {
			var s sfu.Signal
			select {
			case <-p.done:
				return
			case s = <-p.signals:
			}
			if s.PC != p.role {
				continue
			}
			switch {
			case s.Failed:
				p.fail(errors.New("the SFU's connection failed"))
			case s.Candidate != nil:
				c, err := ice.UnmarshalCandidate(s.Candidate.Candidate)
				if err != nil {
					p.fail(err)
					continue
				}
				p.mu.Lock()
				p.cands = append(p.cands, c)
				p.mu.Unlock()
				pending = append(pending, *s.Candidate)
			case s.Offer != "":
				if err := p.answer(s.Offer); err != nil {
					p.fail(err)
				}
			}
			if p.pc.RemoteDescription() == nil {
				continue
			}
			for _, c := range pending {
				if err := p.pc.AddICECandidate(c); err != nil {
					p.fail(err)
				}
			}
			pending = pending[:0]
		}
	}()
}

func (p *testPeer) answer(offer string) error {
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return err
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return err
	}
	return p.part.Answer(answer.SDP)
}

func (p *testPeer) fail(err error) {
	select {
	case p.failed <- err:
	default:
	}
}

func (p *testPeer) sfuCandidates() []ice.Candidate {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ice.Candidate(nil), p.cands...)
}

// close ends the client connection and the participant, and waits for the
// relay goroutine.
func (p *testPeer) close() {
	p.closeOnce.Do(func() {
		close(p.done)
		p.wg.Wait()
		if err := p.pc.Close(); err != nil {
			p.t.Errorf("%s: close: %v", p.name, err)
		}
		p.part.Close()
	})
}

// writeVP8 writes synthetic 30 fps VP8: a keyframe every 15 frames and
// whenever forceKey is set, deltas otherwise; each frame carries frameMagic.
func writeVP8(ctx context.Context, track *webrtc.TrackLocalStaticSample, forceKey *atomic.Bool) {
	const frameDur = time.Second / 30
	tick := time.NewTicker(frameDur)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		key := n%15 == 0 || forceKey.Swap(false)
		if err := track.WriteSample(media.Sample{Data: vp8Frame(n, key), Duration: frameDur}); err != nil {
			return
		}
	}
}

// vp8Frame is a frame with a valid VP8 frame header (RFC 6386 section 9.1)
// and filler, small enough for one RTP packet.
func vp8Frame(n int, key bool) []byte {
	f := make([]byte, 600)
	if key {
		f[0] = 0x10 // key frame, version 0, shown
		f[3], f[4], f[5] = 0x9d, 0x01, 0x2a
		binary.LittleEndian.PutUint16(f[6:], 320)
		binary.LittleEndian.PutUint16(f[8:], 240)
	} else {
		f[0] = 0x11 // inter frame, shown
	}
	copy(f[10:], frameMagic)
	binary.BigEndian.PutUint32(f[10+len(frameMagic):], uint32(n))
	return f
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
