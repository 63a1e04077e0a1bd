// Package sfu is HelpCaster's media core: rooms of participants, each
// publishing audio and video over WebRTC and receiving the others' tracks.
// It knows nothing of queues, tokens or storage; its caller relays the
// offers, answers and candidates it produces.
package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5/udp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/helpcaster/helpcaster/rtpcodec"
	"github.com/helpcaster/helpcaster/sfu/bwe"
	"github.com/helpcaster/helpcaster/sfu/wire"
)

const (
	mimeOpus = webrtc.MimeTypeOpus
	mimeVP8  = webrtc.MimeTypeVP8
	mimeH264 = webrtc.MimeTypeH264
)

// Config is the SFU's configuration. The zero value listens on a random
// UDP port on 127.0.0.1 and does not accept ICE over TCP.
type Config struct {
	// ListenIP is the address of the one UDP socket all ICE traffic uses,
	// and of the ICE-TCP listener when TCP is set.
	ListenIP string
	// UDPPort is that socket's port; 0 picks a free one.
	UDPPort int
	// TCP turns on ICE over TCP as a fallback for clients that cannot use
	// UDP: one TCP listener on ListenIP:TCPPort takes every ICE-TCP
	// connection, and the SFU offers passive TCP host candidates for it
	// besides its UDP ones. The SFU never dials out (no active TCP).
	TCP bool
	// TCPPort is the ICE-TCP listener's port when TCP is set; 0 picks a
	// free one (see SFU.TCPAddr). It must be 0 when TCP is not set.
	TCPPort int
	// PublicIPs, when set, are announced in host candidates instead of the
	// listen address (a node behind 1:1 NAT).
	PublicIPs []string
	// LoopbackOnly restricts ICE to loopback addresses (tests).
	LoopbackOnly bool
	// Logger receives the SFU's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the SFU's metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// BatchWrites queues outgoing UDP packets and writes them with
	// sendmmsg, up to batchWriteSize at a time or every batchWriteInterval,
	// trading up to that interval of latency for fewer system calls.
	BatchWrites bool
	// InitialEstimate is a subscriber's bandwidth estimate before any
	// feedback, in bits per second; 0 means 1.5 Mbit/s.
	InitialEstimate int
	// DynacastPause is how long a simulcast layer no subscriber needs keeps
	// being sent before the publisher is told to pause it; 0 means 5 s.
	DynacastPause time.Duration
	// PionMediaPath leaves every packet to pion's own goroutines and SRTP
	// sessions, for comparisons; BatchWrites implies it. It is not quite
	// the path before the direct one: publishers' connections still run
	// the SFU's receive chain (receive.go), which sees retransmissions only
	// as pion releases them and never sees padding-only probes, which pion
	// drops.
	PionMediaPath bool
}

// SFU owns the media sockets and the rooms.
type SFU struct {
	// Each connection gets its own webrtc.API made from these (see
	// newPeerConnection): its DTLS hooks are the connection's own.
	settings     webrtc.SettingEngine
	pubME, subME *webrtc.MediaEngine
	subIR        *interceptor.Registry // pion's interceptors on subscribers' connections
	recvIR       *interceptor.Registry // the SFU's on publishers' (receive.go)

	conn    *net.UDPConn
	sock    *wire.Socket   // wraps conn: the direct media path (nil with Config.PionMediaPath)
	batch   *udp.BatchConn // wraps conn when Config.BatchWrites
	mux     ice.UDPMux
	tcpLn   *tcpListener // nil without ICE over TCP
	tcpMux  ice.TCPMux   // nil without ICE over TCP
	log     *slog.Logger
	metrics *metrics

	dynacastPause time.Duration

	// pcMu serialises peer connection creation so the bandwidth estimator
	// made for a connection can be picked up (see newPeerConnection).
	pcMu     sync.Mutex
	feedback *feedbackFactory // its last estimator is read under pcMu

	feedbackClock *feedbackClock // sends publishers' transport-wide feedback

	mu     sync.Mutex
	rooms  map[string]*Room
	closed bool
}

// New opens the media socket and prepares the WebRTC stack.
func New(cfg Config) (*SFU, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ipStr := cfg.ListenIP
	if ipStr == "" {
		ipStr = "127.0.0.1"
	}
	ip := net.ParseIP(ipStr)
	if ip == nil {
		return nil, fmt.Errorf("media listen address %q is not an IP address", cfg.ListenIP)
	}
	for _, p := range cfg.PublicIPs {
		if net.ParseIP(p) == nil {
			return nil, fmt.Errorf("media public address %q is not an IP address", p)
		}
	}
	if cfg.TCPPort < 0 || cfg.TCPPort > 65535 {
		return nil, fmt.Errorf("media TCP port %d is not a port (0-65535)", cfg.TCPPort)
	}
	if cfg.TCPPort != 0 && !cfg.TCP {
		return nil, fmt.Errorf("media TCP port %d is set but ICE over TCP is off (set TCP)", cfg.TCPPort)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: cfg.UDPPort})
	if err != nil {
		return nil, fmt.Errorf("open media UDP port %s: %w", net.JoinHostPort(ipStr, strconv.Itoa(cfg.UDPPort)), err)
	}
	// Every participant's media arrives on this one socket: the kernel's
	// default buffer (about 200 KiB) overflows while the process is short
	// of CPU for a moment, and audio has no retransmission to recover.
	// The kernel caps these at net.core.rmem_max and wmem_max.
	_ = conn.SetReadBuffer(mediaSocketBuffer)
	_ = conn.SetWriteBuffer(mediaSocketBuffer)
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		conn.Close()
		return nil, err
	}
	s := &SFU{conn: conn, log: log, metrics: m, rooms: make(map[string]*Room), dynacastPause: cfg.DynacastPause}
	if s.dynacastPause <= 0 {
		s.dynacastPause = defaultDynacastPause
	}
	if cfg.TCP {
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: cfg.TCPPort})
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("open media TCP port %s: %w", net.JoinHostPort(ipStr, strconv.Itoa(cfg.TCPPort)), err)
		}
		s.tcpLn = newTCPListener(ln)
	}
	if err := s.buildAPI(cfg, ip); err != nil {
		s.closeSockets()
		return nil, err
	}
	if s.sock != nil && cfg.Registerer != nil {
		if err := registerSocketMetrics(cfg.Registerer, s.sock); err != nil {
			s.closeSockets()
			return nil, err
		}
	}
	s.feedbackClock = newFeedbackClock()
	if s.tcpLn != nil {
		log.Info("media sockets open", "udp", conn.LocalAddr().String(), "tcp", s.tcpLn.Addr().String())
	} else {
		log.Info("media socket open", "addr", conn.LocalAddr().String())
	}
	return s, nil
}

// Addr is the local address of the media socket.
func (s *SFU) Addr() *net.UDPAddr { return s.conn.LocalAddr().(*net.UDPAddr) }

// TCPAddr is the local address of the ICE-TCP listener, or nil when ICE
// over TCP is off.
func (s *SFU) TCPAddr() *net.TCPAddr {
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr().(*net.TCPAddr)
}

// buildAPI sets s.pubAPI and s.subAPI with the ICE muxes over s's sockets (s.mux and, with
// a TCP listener, s.tcpMux), codecs and interceptors.
func (s *SFU) buildAPI(cfg Config, ip net.IP) error {
	var se webrtc.SettingEngine
	se.LoggerFactory = quietLoggers{}
	var pc net.PacketConn = s.conn
	switch {
	case cfg.BatchWrites:
		s.batch = udp.NewBatchConn(s.conn, batchWriteSize, batchWriteInterval)
		pc = s.batch
	case !cfg.PionMediaPath:
		sock, err := wire.New(s.conn, s.log)
		if err != nil {
			return fmt.Errorf("media socket: %w", err)
		}
		s.sock = sock
		pc = sock
	}
	s.mux = webrtc.NewICEUDPMux(se.LoggerFactory.NewLogger("udpmux"), pc)
	se.SetICEUDPMux(s.mux)
	udp, tcp := webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4
	if ip.To4() == nil {
		udp, tcp = webrtc.NetworkTypeUDP6, webrtc.NetworkTypeTCP6
	}
	if s.tcpLn != nil {
		// The mux reads at most tcpMuxReadPackets packets ahead per connection.
		s.tcpMux = webrtc.NewICETCPMux(se.LoggerFactory.NewLogger("tcpmux"), s.tcpLn, tcpMuxReadPackets)
		se.SetICETCPMux(s.tcpMux)
		// Passive candidates only: clients connect to the SFU; it never
		// dials a client's address.
		se.DisableActiveTCP(true)
		se.SetNetworkTypes([]webrtc.NetworkType{udp, tcp})
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{udp})
	}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// The SFU is the DTLS server of every connection (clients offering
	// actpass take the client's role when they answer too): only the
	// server sees the whole handshake through pion's hooks, which the
	// direct media path needs for the SRTP keys (wire.KeyCapture).
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		return fmt.Errorf("DTLS role: %w", err)
	}
	// AES-GCM costs a fraction of AES-CM+HMAC per packet; offer it first.
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	if ip.IsLoopback() || cfg.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
	}
	if cfg.LoopbackOnly {
		se.SetIPFilter(func(a net.IP) bool { return a.IsLoopback() })
		se.SetRemoteIPFilter(func(a net.IP) bool { return a.IsLoopback() })
	}
	if len(cfg.PublicIPs) > 0 {
		err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        cfg.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
		})
		if err != nil {
			return fmt.Errorf("announce public addresses: %w", err)
		}
	}

	// Publishers' (pub) and subscribers' (sub) connections carry media one
	// way each, so each kind gets only the interceptors its direction needs:
	// every interceptor on a connection costs per packet or per RTCP packet,
	// and most run a timer goroutine per connection.
	pubME, err := newMediaEngine()
	if err != nil {
		return err
	}
	// Publishers' connections carry no pion interceptor: the SFU runs its
	// own receive chain (receive.go) on whichever goroutine delivers a
	// packet. NACKs to publishers come from pion's generator; NACKs from
	// subscribers are answered from the SFU's own packet caches, one per
	// layer rather than one per subscriber (packetcache.go).
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return fmt.Errorf("configure NACK generator: %w", err)
	}
	recvIR := &interceptor.Registry{}
	recvIR.Add(gen)
	// Receiver reports to publishers come from pion; sender reports to
	// subscribers the down tracks write themselves (see reports.go).
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return fmt.Errorf("configure receiver reports: %w", err)
	}
	recvIR.Add(rr)
	// Publishers get transport-wide feedback from us (receive.go), so
	// their own estimators work.

	// Subscribers: every sub connection gets a send-side bandwidth estimate
	// fed by the subscriber's transport-wide feedback (congestion.go); the
	// allocator turns it into layers. Down tracks stamp the sequence
	// numbers and answer NACKs themselves, so nothing else is needed.
	subME, err := newMediaEngine()
	if err != nil {
		return err
	}
	subIR := &interceptor.Registry{}
	s.feedback = &feedbackFactory{initial: cfg.InitialEstimate}
	if s.feedback.initial <= 0 {
		s.feedback.initial = initialEstimate
	}
	subIR.Add(s.feedback)
	s.settings, s.pubME, s.subME, s.subIR, s.recvIR = se, pubME, subME, subIR, recvIR
	return nil
}

// newMediaEngine registers the SFU's codecs (with RTX) and the header
// extensions it uses: MID and RIDs for simulcast, RFC 6464 audio levels for
// speaker detection, transport-wide sequence numbers (with their RTCP
// feedback) for congestion control both ways, and absolute capture times,
// forwarded.
func newMediaEngine() (*webrtc.MediaEngine, error) {
	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, fmt.Errorf("register simulcast header extensions: %w", err)
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("register audio level header extension: %w", err)
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: rtpcodec.AbsCaptureTimeURI}, kind); err != nil {
			return nil, fmt.Errorf("register absolute capture time header extension: %w", err)
		}
		me.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, kind)
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
			return nil, fmt.Errorf("register transport-wide sequence number extension: %w", err)
		}
	}
	return me, nil
}

// mediaSocketBuffer is the kernel buffer asked for on the media UDP
// socket, each way.
const mediaSocketBuffer = 4 << 20

// Batched UDP writes (Config.BatchWrites).
const (
	batchWriteSize     = 64
	batchWriteInterval = time.Millisecond
)

// tcpMuxReadPackets is how many packets the ICE-TCP mux buffers per
// connection before the reader takes them.
const tcpMuxReadPackets = 8

// closeSockets closes the ICE muxes and the sockets under them.
func (s *SFU) closeSockets() error {
	var errs []error
	if s.mux != nil {
		if err := s.mux.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close UDP mux: %w", err))
		}
	}
	if s.batch != nil {
		// Stops the batch writer and closes the socket.
		if err := s.batch.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close media UDP socket: %w", err))
		}
	} else if s.sock != nil {
		if err := s.sock.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close media UDP socket: %w", err))
		}
	} else if err := s.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, fmt.Errorf("close media UDP socket: %w", err))
	}
	switch {
	case s.tcpMux != nil:
		// Closes the listener, every connection, and waits for the mux's
		// goroutines.
		if err := s.tcpMux.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close TCP mux: %w", err))
		}
	case s.tcpLn != nil:
		if err := s.tcpLn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close media TCP listener: %w", err))
		}
	}
	return errors.Join(errs...)
}

// tcpListener is the ICE-TCP listener. Closing it also closes every
// connection it accepted that is still open: pion's TCP mux waits, on
// Close, for connections that have not yet sent their first STUN message,
// and without this a client that connects and stays silent would hold
// SFU.Close for the mux's first-message timeout (30 s).
type tcpListener struct {
	net.Listener

	mu     sync.Mutex
	closed bool
	conns  map[*tcpConn]struct{}
}

func newTCPListener(ln net.Listener) *tcpListener {
	return &tcpListener{Listener: ln, conns: make(map[*tcpConn]struct{})}
}

func (l *tcpListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &tcpConn{Conn: c, ln: l}
	l.conns[tc] = struct{}{}
	return tc, nil
}

func (l *tcpListener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = make(map[*tcpConn]struct{})
	l.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
	return err
}

func (l *tcpListener) forget(c *tcpConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// tcpConn is a connection accepted by a tcpListener.
type tcpConn struct {
	net.Conn
	ln *tcpListener
}

func (c *tcpConn) Close() error {
	c.ln.forget(c)
	return c.Conn.Close()
}

// codecEntry is one codec the SFU offers.
type codecEntry struct {
	c   webrtc.RTPCodecParameters
	typ webrtc.RTPCodecType
}

// supportedCodecs lists Opus for audio and VP8 then H.264 for video, with
// the payload types the SFU uses. Each video codec's RTX is at the next
// payload type.
func supportedCodecs() []codecEntry {
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	h264 := func(profile string, pt webrtc.PayloadType) codecEntry {
		return codecEntry{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile, RTCPFeedback: fb}, PayloadType: pt}, webrtc.RTPCodecTypeVideo}
	}
	return []codecEntry{
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeVP8, ClockRate: 90000, RTCPFeedback: fb}, PayloadType: 96}, webrtc.RTPCodecTypeVideo},
		h264("42e01f", 102),
		h264("42001f", 104),
		h264("640032", 106),
	}
}

// rtxCodec is the RTX codec the SFU pairs with its codec c.
func rtxCodec(c webrtc.RTPCodecParameters) webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", c.PayloadType),
	}, PayloadType: c.PayloadType + 1}
}

// codecPreferences is what a down track of a source track with codec src
// offers: the SFU's codec matching src and, for video, its RTX, so the
// subscriber can only pick what the source sends.
func codecPreferences(src webrtc.RTPCodecParameters) []webrtc.RTPCodecParameters {
	var ours []webrtc.RTPCodecParameters
	for _, e := range supportedCodecs() {
		ours = append(ours, e.c)
	}
	c, ok := matchCodec(src, ours)
	if !ok {
		return []webrtc.RTPCodecParameters{src}
	}
	if kindOf(c.MimeType) == "video" {
		return []webrtc.RTPCodecParameters{c, rtxCodec(c)}
	}
	return []webrtc.RTPCodecParameters{c}
}

// registerCodecs registers supportedCodecs and their RTX.
func registerCodecs(me *webrtc.MediaEngine) error {
	codecs := supportedCodecs()
	for _, c := range codecs {
		if err := me.RegisterCodec(c.c, c.typ); err != nil {
			return fmt.Errorf("register codec %s: %w", c.c.MimeType, err)
		}
		// RTX (RFC 4588) for each video codec, at the next payload type:
		// retransmissions then travel on their own SSRC, so they do not
		// disturb the receiver's loss and jitter statistics.
		if c.typ == webrtc.RTPCodecTypeVideo {
			if err := me.RegisterCodec(rtxCodec(c.c), webrtc.RTPCodecTypeVideo); err != nil {
				return fmt.Errorf("register RTX for %s: %w", c.c.MimeType, err)
			}
		}
	}
	return nil
}

// A subscriber's bandwidth estimate: where it starts (unless
// Config.InitialEstimate says otherwise) and its bounds, in bits per second.
const (
	initialEstimate = 1_500_000
	minEstimate     = 50_000
	maxEstimate     = 20_000_000
)

// newPeerConnection creates a publisher's connection, or with withEstimator
// a subscriber's and its bandwidth estimator. Estimators are made by an
// interceptor factory that pion calls once per connection, so creation is
// serialised to pair them up.
//
// With the direct media path each connection also gets its wire.Conn, and
// its own webrtc.API whose DTLS hooks feed that Conn's key capture.
func (s *SFU) newPeerConnection(withEstimator bool) (*webrtc.PeerConnection, *bwe.Estimator, *wire.Conn, error) {
	s.pcMu.Lock()
	defer s.pcMu.Unlock()
	s.feedback.last = nil
	se := s.settings
	var wc *wire.Conn
	if s.sock != nil {
		keys := &wire.KeyCapture{}
		se.SetDTLSKeyLogWriter(keys)
		se.SetDTLSServerHelloMessageHook(keys.ServerHello)
		wc = wire.NewConn(s.sock, keys)
	}
	me, ir := s.pubME, &interceptor.Registry{}
	if withEstimator {
		me, ir = s.subME, s.subIR
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, nil, nil, err
	}
	return pc, s.feedback.last, wc, nil
}

// ErrClosed is returned for operations on a closed SFU, room or participant.
var ErrClosed = errors.New("sfu: closed")

// Room returns the room with id, creating it if needed.
func (s *SFU) Room(id string) (*Room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if r, ok := s.rooms[id]; ok {
		return r, nil
	}
	r := newRoom(s, id)
	s.rooms[id] = r
	s.metrics.rooms.Inc()
	return r, nil
}

func (s *SFU) removeRoom(r *Room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms[r.id] == r {
		delete(s.rooms, r.id)
		s.metrics.rooms.Dec()
	}
}

// Load is how much the SFU is carrying.
type Load struct {
	Rooms, Participants, Tracks int // tracks counts published tracks
}

// Load counts the SFU's rooms, participants and published tracks.
func (s *SFU) Load() Load {
	s.mu.Lock()
	rooms := make([]*Room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	l := Load{Rooms: len(rooms)}
	for _, r := range rooms {
		r.mu.Lock()
		parts := make([]*Participant, 0, len(r.participants))
		for _, p := range r.participants {
			parts = append(parts, p)
		}
		r.mu.Unlock()
		l.Participants += len(parts)
		for _, p := range parts {
			l.Tracks += len(p.publishedTracks())
		}
	}
	return l
}

// Close closes every room and the media sockets.
func (s *SFU) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	rooms := make([]*Room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	for _, r := range rooms {
		r.Close()
	}
	s.feedbackClock.close()
	return s.closeSockets()
}

// quietLoggers routes pion's own logging nowhere but errors to nothing: the
// SFU logs what matters itself, without addresses or other personal data.
type quietLoggers struct{}

func (quietLoggers) NewLogger(string) logging.LeveledLogger {
	l := logging.NewDefaultLeveledLoggerForScope("", logging.LogLevelDisabled, discard{})
	return l
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func kindOf(mime string) string {
	if strings.HasPrefix(strings.ToLower(mime), "audio/") {
		return "audio"
	}
	return "video"
}
