package node

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/helpcaster/helpcaster/sfu"
	"github.com/helpcaster/helpcaster/signaling"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/turn"
)

// TURNConfig is the TURN service participants are given credentials for:
// the embedded server (Port or TLSPort set), an external one (External),
// or both.
type TURNConfig struct {
	Secret        string        // shared secret of the TURN REST credentials
	CredentialTTL time.Duration // how long a participant's credentials are valid

	ListenIP      string // embedded listeners bind here ("" = all)
	Port          int    // embedded UDP and TCP port; 0 = none
	TLSPort       int    // embedded TLS port (needs the node's TLS certificate); 0 = none
	RelayIP       string // address announced for relays
	RelayMinPort  int
	RelayMaxPort  int
	Host          string // host clients reach the embedded server at ("" = RelayIP)
	Allow         []netip.Prefix
	PerUser       int
	PerIP         int
	BandwidthBits int

	External []string // turn:/turns: URLs of an external service sharing Secret
}

// startTURN starts the embedded TURN server (if configured) and returns the
// ICE servers each participant gets, and a function that stops the server.
func startTURN(cfg *TURNConfig, tlsCert, tlsKey string, media *sfu.SFU, mediaPublic []string,
	log *slog.Logger, reg prometheus.Registerer) (signaling.ICEServerSource, func(), error) {
	creds, err := turn.NewCredentials([]byte(cfg.Secret), cfg.CredentialTTL)
	if err != nil {
		return nil, nil, err
	}
	urls := append([]string(nil), cfg.External...)
	stop := func() {}
	if cfg.Port != 0 || cfg.TLSPort != 0 {
		relay := net.ParseIP(cfg.RelayIP)
		if relay == nil {
			return nil, nil, fmt.Errorf("turn: relay address %q is not an IP address", cfg.RelayIP)
		}
		// The SFU's own media addresses are always reachable through the
		// relay, and, at every address of the node (these, its interface
		// addresses, loopback, the relay address), only its UDP media port:
		// relays are UDP, and nothing else on the machine is theirs to reach.
		policy := turn.Policy{Allow: cfg.Allow, MediaPorts: []uint16{uint16(media.Addr().Port)}}
		if ap, ok := netip.AddrFromSlice(media.Addr().IP); ok && !ap.IsUnspecified() {
			policy.Always = append(policy.Always, ap.Unmap())
		}
		for _, ip := range mediaPublic {
			if a, err := netip.ParseAddr(ip); err == nil {
				policy.Always = append(policy.Always, a)
			}
		}
		tc := turn.Config{
			ListenIP: cfg.ListenIP, UDPPort: cfg.Port, TCPPort: cfg.Port, RelayIP: relay,
			RelayMinPort: uint16(cfg.RelayMinPort), RelayMaxPort: uint16(cfg.RelayMaxPort),
			Credentials: creds, Policy: policy,
			AllocationsPerUser: cfg.PerUser, AllocationsPerIP: cfg.PerIP, Bandwidth: cfg.BandwidthBits,
			Logger: log.With("component", "turn"), Registerer: reg,
		}
		if cfg.TLSPort != 0 {
			cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
			if err != nil {
				return nil, nil, fmt.Errorf("turn: load TLS certificate: %w", err)
			}
			tc.TLSPort, tc.TLSCert = cfg.TLSPort, &cert
		}
		srv, err := turn.New(tc)
		if err != nil {
			return nil, nil, err
		}
		host := cfg.Host
		if host == "" {
			host = cfg.RelayIP
		}
		urls = append(srv.URLs(host), urls...)
		stop = func() { _ = srv.Close() }
		log.Info("turn serving", "urls", urls)
	}
	source := func(_, participant string) []protocol.ICEServer {
		user, pass := creds.Mint(participant, time.Now())
		return []protocol.ICEServer{{URLs: urls, Username: user, Credential: pass}}
	}
	return source, stop, nil
}
