package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/helpcaster/helpcaster/node"
	"github.com/helpcaster/helpcaster/sfu"
	"github.com/helpcaster/helpcaster/signaling"
	"github.com/helpcaster/helpcaster/signaling/auth"
)

// runServe builds a node from cfg, prints where to find it, and runs it
// until stop receives (SIGINT or SIGTERM). Then it drains the node for at
// most cfg.DrainTimeout: calls in progress go on, and the node stops when
// none is left; a second receive, or the timeout, ends them at once. With
// a DrainTimeout of 0 the first receive ends them at once.
func runServe(stop <-chan struct{}, cfg *Config, logger *slog.Logger, stdout io.Writer) error {
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
	warnSharedSecrets(logger, dir)
	var devOrg *auth.Org
	if cfg.Dev {
		devOrg, _ = dir.Org(cfg.DevOrgID)
	}
	recordings, err := cfg.Recordings()
	if err != nil {
		return err
	}
	n, err := node.New(node.Config{
		Listener: ln,
		TLSCert:  cfg.TLSCert,
		TLSKey:   cfg.TLSKey,
		Orgs:     dir,
		DevOrg:   devOrg,
		Media: sfu.Config{
			ListenIP:      cfg.MediaListenIP,
			UDPPort:       cfg.MediaUDPPort,
			TCP:           cfg.MediaTCPPort != 0,
			TCPPort:       cfg.MediaTCPPort,
			PublicIPs:     cfg.MediaPublicIPs,
			LoopbackOnly:  cfg.MediaLoopbackOnly,
			BatchWrites:   cfg.MediaBatchWrites,
			PionMediaPath: cfg.MediaPionPath,
		},
		TokenMaxLifetime: cfg.TokenMaxLifetime,
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
		Recordings:      recordings,
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

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- n.Run(ctx) }()
	select {
	case err := <-ran:
		return err
	case <-stop:
	}
	if cfg.DrainTimeout > 0 {
		if err := drain(n, stop, ran, cfg.DrainTimeout, logger, stdout); err != nil {
			return err // Run has returned
		}
	}
	cancel()
	return <-ran
}

// drain drains n until it is empty, timeout passes or stop receives again.
// If Run fails meanwhile (ran), the drain ends and drain returns Run's
// error.
func drain(n *node.Node, stop <-chan struct{}, ran <-chan error, timeout time.Duration, logger *slog.Logger, stdout io.Writer) error {
	fmt.Fprintf(stdout, "Draining: no new calls; calls in progress may go on for up to %v. Press Ctrl+C again to stop at once.\n", timeout)
	logger.Info("draining", "timeout", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- n.Drain(ctx) }()
	for {
		select {
		case err := <-drained:
			switch {
			case err == nil:
			case errors.Is(err, context.DeadlineExceeded):
				logger.Warn("drain timeout passed; ending the calls left", "timeout", timeout)
			default:
				logger.Info("drain ended early; ending the calls left")
			}
			return nil
		case <-stop:
			logger.Info("second signal: ending the calls left")
			cancel() // drained follows
		case err := <-ran:
			cancel()
			<-drained
			return cmp.Or(err, errors.New("the node stopped while draining"))
		}
	}
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
	if where := cfg.recordingsWhere(); where != "" {
		fmt.Fprintf(w, "  Recordings:         %s (the queues with record: always or consent)\n", where)
	}
	if devOrg != nil {
		fmt.Fprintf(w, "Demo organization %q (API key %q), secret for this run:\n  %s\n",
			devOrg.ID, devOrg.APIKey, devOrg.APISecret)
		fmt.Fprintf(w, "Open the agent page, go available, then open the customer page in another tab.\n")
	}
	fmt.Fprintf(w, "Press Ctrl+C to stop: calls in progress may finish first; press it twice to stop at once.\n")
}
