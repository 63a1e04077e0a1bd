package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"

	"github.com/helpcaster/helpcaster/node"
	"github.com/helpcaster/helpcaster/sfu"
	"github.com/helpcaster/helpcaster/signaling"
	"github.com/helpcaster/helpcaster/signaling/auth"
)

// runServe builds a node from cfg, prints where to find it, and runs it
// until ctx ends (SIGINT or SIGTERM).
func runServe(ctx context.Context, cfg *Config, logger *slog.Logger, stdout io.Writer) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	cfg.SetListenAddr(ln.Addr().String())
	dir, err := auth.NewDirectory(cfg.Orgs)
	if err != nil {
		ln.Close()
		return fmt.Errorf("organizations: %w", err)
	}
	var devOrg *auth.Org
	if cfg.Dev {
		devOrg, _ = dir.Org(cfg.DevOrgID)
	}
	n, err := node.New(node.Config{
		Listener: ln,
		TLSCert:  cfg.TLSCert,
		TLSKey:   cfg.TLSKey,
		Orgs:     dir,
		DevOrg:   devOrg,
		Media: sfu.Config{
			ListenIP:     cfg.MediaListenIP,
			UDPPort:      cfg.MediaUDPPort,
			TCP:          cfg.MediaTCPPort != 0,
			TCPPort:      cfg.MediaTCPPort,
			PublicIPs:    cfg.MediaPublicIPs,
			LoopbackOnly: cfg.MediaLoopbackOnly,
			BatchWrites:  cfg.MediaBatchWrites,
		},
		Limits: signaling.Limits{
			MaxMessageBytes: cfg.MaxMessageBytes,
			MessagesPerSec:  cfg.MessagesPerSecond,
			Burst:           cfg.MessageBurst,
			PingInterval:    cfg.PingInterval,
			WriteTimeout:    cfg.WriteTimeout,
		},
		ShutdownTimeout: cfg.ShutdownTimeout,
		Logger:          logger,
		Pprof:           cfg.Pprof,
		RedisURL:        cfg.RedisURL,
		NodeID:          cfg.NodeID,
		ResumeGrace:     cfg.ResumeGrace,
		TURN:            turnConfig(cfg),
	})
	if err != nil {
		ln.Close()
		return err
	}
	mediaTCP := "off"
	if cfg.MediaTCPPort != 0 {
		mediaTCP = net.JoinHostPort(cfg.MediaListenIP, strconv.Itoa(cfg.MediaTCPPort))
	}
	logger.Info("helpcaster serving", "version", versionString(), "http", n.URL(), "media_udp", n.MediaAddr().String(),
		"media_tcp", mediaTCP, "orgs", len(dir.Orgs()), "dev", cfg.Dev)
	printBanner(stdout, cfg, devOrg)
	return n.Run(ctx)
}

// turnConfig is the node's TURN settings, or nil when there is no TURN.
func turnConfig(cfg *Config) *node.TURNConfig {
	if cfg.TURNPort == 0 && cfg.TURNTLSPort == 0 && len(cfg.TURNExternal) == 0 {
		return nil
	}
	t := &node.TURNConfig{
		Secret: cfg.TURNSecret, CredentialTTL: cfg.TURNCredentialTTL,
		ListenIP: cfg.MediaListenIP, Port: cfg.TURNPort, TLSPort: cfg.TURNTLSPort,
		RelayIP: cfg.TURNRelayIP, RelayMinPort: cfg.TURNRelayPorts[0], RelayMaxPort: cfg.TURNRelayPorts[1],
		Host: cfg.TURNHost, PerUser: cfg.TURNPerUser, PerIP: cfg.TURNPerIP, BandwidthBits: cfg.TURNBandwidth,
		External: cfg.TURNExternal,
	}
	for _, p := range cfg.TURNAllow {
		t.Allow = append(t.Allow, netip.MustParsePrefix(p)) // checked by setPrefixList
	}
	return t
}

// printBanner tells a person at the terminal where to go.
func printBanner(w io.Writer, cfg *Config, devOrg *auth.Org) {
	base := cfg.PublicURL
	fmt.Fprintf(w, "HelpCaster is running.\n")
	fmt.Fprintf(w, "  Customer demo page: %s/demo/customer.html\n", base)
	fmt.Fprintf(w, "  Agent demo page:    %s/demo/agent.html\n", base)
	fmt.Fprintf(w, "  Metrics:            %s/metrics\n", base)
	if devOrg != nil {
		fmt.Fprintf(w, "Demo organization %q (API key %q), secret for this run:\n  %s\n",
			devOrg.ID, devOrg.APIKey, devOrg.APISecret)
		fmt.Fprintf(w, "Open the agent page, go available, then open the customer page in another tab.\n")
	}
	fmt.Fprintf(w, "Press Ctrl+C to stop.\n")
}
