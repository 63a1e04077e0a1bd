package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/helpcaster/helpcaster/bench/media"
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
	// CustomerURLs and AgentURLs, when set, are the nodes customers
	// (agents) connect to, instead of URLs (queue). URLs then defaults to
	// all of them, for the metrics.
	CustomerURLs []string
	AgentURLs    []string
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
	// MediaHold, in support and turn runs, ends the run once both sides of
	// every call have received media of every kind and this much time has
	// passed since; Duration is then only a cap. 0: the run lasts Duration.
	// A run with it measures as much media however long the calls take to
	// come up, which on a busy machine can be many seconds.
	MediaHold time.Duration
	// Record, in support and turn runs, has every customer consent to
	// recording (the record_consent claim), so that a queue whose policy
	// is "record: consent" records the calls. Each call must then be told
	// "recording started" on both sides (a call that is not counts as
	// failed), and once the calls end the run waits for the nodes to
	// finish storing their recordings (FinishTimeout).
	Record bool
	// FinishTimeout bounds that wait; 0: 2 minutes.
	FinishTimeout time.Duration

	// Queue: the exactly-once accounting (see Exact).
	Hold       time.Duration // how long an agent holds each call before hanging up; 0: at once
	HoldJitter time.Duration // up to this much more, at random
	// Resume is the share of customers (0 to 1) that drop their connection
	// once at a random moment while waiting and resume on another node;
	// ResumeInCall the share that do so once during their call.
	Resume       float64
	ResumeInCall float64
	// Settle is how long, after the last customer joined, the run waits
	// for every customer to be served; then the rest count as never placed.
	Settle time.Duration
	// RetryFor bounds how long a customer (an agent) whose connection was
	// lost keeps trying to resume (join again) while nodes refuse or are
	// down.
	RetryFor time.Duration
	// StuckAfter: a call ended on one side (or hung up) whose other side
	// got no ended within this is stuck.
	StuckAfter time.Duration
	// LostAfter: a connected agent that is available, not in a call, and
	// given no one for this long while customers wait unplaced is lost.
	LostAfter time.Duration
	// OrderTolerance: an order-of-service inversion is a customer queued
	// more than this before another but assigned after it.
	OrderTolerance time.Duration
	// Seed seeds the random choices (drops, hold jitter); 0: from the clock.
	Seed int64

	Simulcast bool   // publishers send three VP8 layers
	Codec     string // "vp8" or "h264"
	Bitrate   int    // bits/s of the (top) VP8 layer; check sets it to the nearest file's
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
		if c.Record {
			return errors.New("bench: --record is for the support and turn scenarios")
		}
		if c.Subscribers <= 0 {
			return errors.New("bench: --subscribers must be at least 1")
		}
		if len(c.URLs) > 1 {
			// A supervisor monitors only calls whose room is on the node
			// its connection reached, and the fan-out is one node's.
			return errors.New("bench: broadcast takes one --url: the node to measure")
		}
	case ScenarioQueue:
		if c.Record {
			return errors.New("bench: --record is for the support and turn scenarios")
		}
		if c.Customers <= 0 || c.Agents <= 0 {
			return errors.New("bench: --customers and --agents must be at least 1")
		}
		if err := c.checkQueue(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("bench: unknown scenario %q (one of %s)", c.Scenario, strings.Join(Scenarios, ", "))
	}
	if len(c.URLs) == 0 {
		return errors.New("bench: no --url")
	}
	for _, urls := range [][]string{c.URLs, c.CustomerURLs, c.AgentURLs} {
		for i, u := range urls {
			n, err := signalURL(u)
			if err != nil {
				return err
			}
			urls[i] = n
		}
	}
	if len(c.CustomerURLs) == 0 {
		c.CustomerURLs = c.URLs
	}
	if len(c.AgentURLs) == 0 {
		c.AgentURLs = c.URLs
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
	if c.MediaHold < 0 {
		return errors.New("bench: --media-hold must not be negative")
	}
	switch {
	case c.FinishTimeout < 0:
		return errors.New("bench: the recordings' finish timeout must not be negative")
	case c.FinishTimeout == 0:
		c.FinishTimeout = 2 * time.Minute
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
	if c.Codec == "vp8" {
		// What is sent is one of the files; the report says which.
		c.Bitrate = media.LayerBitrates[media.LayerFor(c.Bitrate)]
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

// checkQueue validates the queue scenario's options and fills in their
// defaults. With --customer-url or --agent-url and no --url, the nodes are
// all of those.
func (c *Config) checkQueue() error {
	if (len(c.CustomerURLs) > 0) != (len(c.AgentURLs) > 0) && len(c.URLs) == 0 {
		return errors.New("bench: --customer-url needs --agent-url (or --url for the other role)")
	}
	if len(c.URLs) == 0 {
		seen := map[string]bool{}
		for _, u := range append(append([]string(nil), c.CustomerURLs...), c.AgentURLs...) {
			if !seen[u] {
				seen[u] = true
				c.URLs = append(c.URLs, u)
			}
		}
	}
	if c.Resume < 0 || c.Resume > 1 || c.ResumeInCall < 0 || c.ResumeInCall > 1 {
		return errors.New("bench: --resume and --resume-in-call are shares between 0 and 1")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"hold", &c.Hold, 0}, {"hold-jitter", &c.HoldJitter, 0}, {"settle", &c.Settle, 30 * time.Second},
		{"retry-for", &c.RetryFor, time.Minute}, {"stuck-after", &c.StuckAfter, 20 * time.Second},
		{"lost-after", &c.LostAfter, 15 * time.Second}, {"order-tolerance", &c.OrderTolerance, time.Second}} {
		switch {
		case *d.v < 0:
			return fmt.Errorf("bench: --%s must not be negative", d.name)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
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
