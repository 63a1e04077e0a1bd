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
	"strings"
	"sync"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	mimeOpus = webrtc.MimeTypeOpus
	mimeVP8  = webrtc.MimeTypeVP8
	mimeH264 = webrtc.MimeTypeH264
)

// Config is the SFU's configuration. The zero value listens on a random
// UDP port on 127.0.0.1.
type Config struct {
	// ListenIP is the address of the one UDP socket all ICE traffic uses.
	ListenIP string
	// UDPPort is that socket's port; 0 picks a free one.
	UDPPort int
	// PublicIPs, when set, are announced in host candidates instead of the
	// listen address (a node behind 1:1 NAT).
	PublicIPs []string
	// LoopbackOnly restricts ICE to loopback addresses (tests).
	LoopbackOnly bool
	// Logger receives the SFU's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the SFU's metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
}

// SFU owns the media socket and the rooms.
type SFU struct {
	api     *webrtc.API
	conn    *net.UDPConn
	mux     ice.UDPMux
	log     *slog.Logger
	metrics *metrics

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
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: cfg.UDPPort})
	if err != nil {
		return nil, fmt.Errorf("open media UDP port %s: %w", net.JoinHostPort(ipStr, fmt.Sprint(cfg.UDPPort)), err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		conn.Close()
		return nil, err
	}
	s := &SFU{conn: conn, log: log, metrics: m, rooms: make(map[string]*Room)}
	api, mux, err := s.buildAPI(cfg, ip)
	if err != nil {
		conn.Close()
		return nil, err
	}
	s.api, s.mux = api, mux
	log.Info("media socket open", "addr", conn.LocalAddr().String())
	return s, nil
}

// Addr is the local address of the media socket.
func (s *SFU) Addr() *net.UDPAddr { return s.conn.LocalAddr().(*net.UDPAddr) }

func (s *SFU) buildAPI(cfg Config, ip net.IP) (*webrtc.API, ice.UDPMux, error) {
	var se webrtc.SettingEngine
	se.LoggerFactory = quietLoggers{}
	mux := webrtc.NewICEUDPMux(se.LoggerFactory.NewLogger("udpmux"), s.conn)
	se.SetICEUDPMux(mux)
	if ip.To4() != nil {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP6})
	}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
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
			return nil, nil, fmt.Errorf("announce public addresses: %w", err)
		}
	}

	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		return nil, nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(me, ir); err != nil {
		return nil, nil, fmt.Errorf("configure NACK: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, nil, fmt.Errorf("configure RTCP reports: %w", err)
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir))
	return api, mux, nil
}

// registerCodecs offers Opus for audio and VP8 then H.264 for video.
func registerCodecs(me *webrtc.MediaEngine) error {
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	codecs := []struct {
		c   webrtc.RTPCodecParameters
		typ webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeVP8, ClockRate: 90000, RTCPFeedback: fb}, PayloadType: 96}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: fb}, PayloadType: 102}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", RTCPFeedback: fb}, PayloadType: 104}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032", RTCPFeedback: fb}, PayloadType: 106}, webrtc.RTPCodecTypeVideo},
	}
	for _, c := range codecs {
		if err := me.RegisterCodec(c.c, c.typ); err != nil {
			return fmt.Errorf("register codec %s: %w", c.c.MimeType, err)
		}
	}
	return nil
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

// Close closes every room and the media socket.
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
	err := s.mux.Close()
	if cerr := s.conn.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
		err = cerr
	}
	return err
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
