package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/helpcaster/helpcaster/signaling/auth"
)

// Scenarios.
const (
	ScenarioSupport   = "support"   // customer/agent pairs through the queue, both publishing
	ScenarioQueue     = "queue"     // a placement storm: customers and agents, no media
	ScenarioTURN      = "turn"      // support with every client relaying through TURN
	ScenarioBroadcast = "broadcast" // one call's customer publishing, many supervisors monitoring it
)

// Scenarios lists the scenarios Run knows.
var Scenarios = []string{ScenarioSupport, ScenarioBroadcast, ScenarioQueue, ScenarioTURN}

// Config is one bench run.
type Config struct {
	Scenario string
	// URLs are the nodes' signaling URLs (ws:// or wss://; a bare
	// host:port URL gets /v1/signal). Clients spread over them in turn.
	URLs []string
	// MetricsURLs are the nodes' Prometheus endpoints; empty: /metrics on
	// each URL's host (http or https).
	MetricsURLs []string
	// The organization the simulated users belong to, and its API secret
	// (tokens are minted as the org's backend would).
	Org    string
	Key    string
	Secret []byte
	Queue  string // "" is the org's default queue
	// Demo takes tokens from the nodes' demo endpoint (/demo/token, a
	// server run with --dev) instead of minting them: no org or secret.
	Demo bool

	Calls       int           // support, turn: customer/agent pairs
	Subscribers int           // broadcast: supervisors monitoring the one call
	Customers   int           // queue: customers joining
	Agents      int           // queue: agents serving them
	Duration    time.Duration // the whole run, ramp included
	Ramp        float64       // pairs (or customers) started per second; 0: all at once

	Simulcast bool   // publishers send three VP8 layers
	Codec     string // "vp8" or "h264"
	Bitrate   int    // bits/s of the (top) video layer; picks the nearest of the files
	NoVideo   bool   // audio only

	LoopbackOnly bool // ICE on loopback only (a server on this machine)

	Objectives Objectives

	// Progress receives the live status; Terminal rewrites one line in
	// place, else a plain line every ProgressEvery.
	Progress      io.Writer
	Terminal      bool
	ProgressEvery time.Duration
	Logger        *slog.Logger
}

// check validates c and fills in defaults.
func (c *Config) check() error {
	switch c.Scenario {
	case ScenarioSupport, ScenarioTURN:
		if c.Calls <= 0 {
			return errors.New("bench: --calls must be at least 1")
		}
	case ScenarioBroadcast:
		if c.Subscribers <= 0 {
			return errors.New("bench: --subscribers must be at least 1")
		}
		if len(c.URLs) > 1 {
			// A supervisor monitors only calls whose room is on the node
			// its connection reached, and the fan-out is one node's.
			return errors.New("bench: broadcast takes one --url: the node to measure")
		}
	case ScenarioQueue:
		if c.Customers <= 0 || c.Agents <= 0 {
			return errors.New("bench: --customers and --agents must be at least 1")
		}
	default:
		return fmt.Errorf("bench: unknown scenario %q (one of %s)", c.Scenario, strings.Join(Scenarios, ", "))
	}
	if len(c.URLs) == 0 {
		return errors.New("bench: no --url")
	}
	for i, u := range c.URLs {
		n, err := signalURL(u)
		if err != nil {
			return err
		}
		c.URLs[i] = n
	}
	if len(c.MetricsURLs) == 0 {
		for _, u := range c.URLs {
			c.MetricsURLs = append(c.MetricsURLs, metricsURL(u))
		}
	}
	if !c.Demo {
		if !auth.ValidName(c.Org) {
			return fmt.Errorf("bench: --org %q is not a valid organization id", c.Org)
		}
		if len(c.Secret) == 0 {
			return errors.New("bench: the org's API secret is required (or --demo against a server run with --dev)")
		}
	}
	if c.Duration <= 0 {
		return errors.New("bench: --duration must be positive")
	}
	if c.Ramp < 0 {
		return errors.New("bench: --ramp must not be negative")
	}
	switch c.Codec {
	case "":
		c.Codec = "vp8"
	case "vp8":
	case "h264":
		if c.Simulcast {
			return errors.New("bench: --simulcast needs --codec vp8")
		}
	default:
		return fmt.Errorf("bench: --codec %q is not vp8 or h264", c.Codec)
	}
	if c.Bitrate <= 0 {
		c.Bitrate = 500_000
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// signalURL turns ws://host:port (or http://) into the signaling endpoint.
func signalURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("bench: --url %q is not a URL like ws://host:7880", s)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("bench: --url %q: scheme must be ws or wss", s)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/signal"
	}
	return u.String(), nil
}

// metricsURL is /metrics on the signaling URL's host.
func metricsURL(signal string) string { return httpURL(signal, "/metrics") }

// httpURL is path on the signaling URL's host, over HTTP(S).
func httpURL(signal, path string) string {
	u, _ := url.Parse(signal) // checked by signalURL
	scheme := "http"
	if u.Scheme == "wss" {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: u.Host, Path: path}).String()
}
