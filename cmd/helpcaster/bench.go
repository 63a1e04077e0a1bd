package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/helpcaster/helpcaster/bench"
)

// listFlag collects a repeated flag; a value may also hold several,
// separated by commas.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// benchOptions are the flags of "helpcaster bench".
type benchOptions struct {
	cfg               bench.Config
	urls, metrics     listFlag
	custURLs, agURLs  listFlag
	secret, secretEnv string
	config            string
	jsonPath, html    string
	quiet             bool
}

// runBench implements "helpcaster bench <scenario>": it runs a load
// scenario against a deployment and reports. Exit status: 0 when every
// objective was met (and, for queue, the accounting found no anomaly), 1
// when one was missed or the run failed, 2 for usage errors.
func runBench(args []string, env func(string) string, stdout, stderr io.Writer) int {
	o, err := parseBench(args, env, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "helpcaster: bench: %s\n", oneLine(err))
		return 2
	}
	// pion's transport-wide feedback sender logs an error for every peer
	// connection closed at the end of a run (its last write finds the
	// transport gone); hundreds of them would bury the report.
	if os.Getenv("PION_LOG_DISABLE") == "" {
		_ = os.Setenv("PION_LOG_DISABLE", "twcc_sender_interceptor")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, o.cfg)
	if err != nil {
		fmt.Fprintf(stderr, "helpcaster: bench: %s\n", oneLine(err))
		return 2
	}
	if err := rep.WriteTable(stdout); err != nil {
		fmt.Fprintf(stderr, "helpcaster: bench: %s\n", oneLine(err))
		return 1
	}
	for _, out := range []struct {
		path  string
		write func(io.Writer) error
	}{{o.jsonPath, rep.WriteJSON}, {o.html, rep.WriteHTML}} {
		if out.path == "" {
			continue
		}
		if err := writeReport(out.path, out.write); err != nil {
			fmt.Fprintf(stderr, "helpcaster: bench: %s\n", oneLine(err))
			return 1
		}
		fmt.Fprintf(stdout, "report written to %s\n", out.path)
	}
	failed := false
	for _, a := range rep.Anomalies() {
		fmt.Fprintf(stderr, "helpcaster: bench: %s\n", a)
		failed = true
	}
	if !rep.Met() {
		fmt.Fprintln(stderr, "helpcaster: bench: an objective was missed")
		failed = true
	}
	if failed {
		return 1
	}
	return 0
}

func writeReport(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func parseBench(args []string, env func(string) string, stderr io.Writer) (*benchOptions, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			printBenchUsage(stderr, nil)
			return nil, flag.ErrHelp
		}
		return nil, fmt.Errorf("give a scenario: %s (see 'helpcaster bench --help')", strings.Join(bench.Scenarios, ", "))
	}
	if strings.HasSuffix(args[0], ".yaml") || strings.HasSuffix(args[0], ".yml") {
		fileArgs, err := scenarioFile(args[0])
		if err != nil {
			return nil, err
		}
		args = append(fileArgs, args[1:]...)
	}
	o := &benchOptions{}
	c := &o.cfg
	c.Scenario = args[0]
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&o.urls, "url", "a node's signaling URL, e.g. ws://host:7880 (repeatable: clients spread over the nodes)")
	fs.Var(&o.custURLs, "customer-url", "queue: a node customers connect to (repeatable; overrides --url for customers)")
	fs.Var(&o.agURLs, "agent-url", "queue: a node agents connect to (repeatable; overrides --url for agents)")
	fs.Var(&o.metrics, "metrics-url", "a node's Prometheus endpoint (repeatable; default /metrics on each --url)")
	fs.StringVar(&c.Org, "org", "", "organization id of the simulated users")
	fs.StringVar(&c.Key, "key", "", "the org's API key (kid header), if it has one")
	fs.StringVar(&o.secret, "secret", "", "the org's API secret (visible to other local users; prefer --secret-env)")
	fs.StringVar(&o.secretEnv, "secret-env", "", "name of the environment variable holding the API secret")
	fs.StringVar(&o.config, "config", "", "read the org's key and secret from this serve config file")
	fs.BoolVar(&c.Demo, "demo", false, "take demo tokens from the server (one run with --dev) instead of an org secret")
	fs.StringVar(&c.Queue, "queue", "", "queue to join (default: the org's default queue)")
	fs.IntVar(&c.Calls, "calls", 10, "support, turn: customer/agent pairs")
	fs.DurationVar(&c.MediaHold, "media-hold", 0, "support, turn: end the run once every call has had media both ways this long; --duration is then a cap (0: run for --duration)")
	fs.BoolVar(&c.Record, "record", false, "support, turn: customers consent to recording (a queue with record: consent records them); "+
		"every call must be told \"recording started\" on both sides, and the run waits for the recordings to be stored")
	fs.IntVar(&c.Subscribers, "subscribers", 50, "broadcast: supervisors monitoring the one call")
	fs.IntVar(&c.Customers, "customers", 1000, "queue: customers")
	fs.IntVar(&c.Agents, "agents", 50, "queue: agents")
	fs.DurationVar(&c.Duration, "duration", time.Minute, "length of the run, ramp included (queue: at most; it ends once every customer is done or --settle after the last joined)")
	fs.DurationVar(&c.Hold, "hold", 0, "queue: agents hold each call this long before hanging up (0: at once)")
	fs.DurationVar(&c.HoldJitter, "hold-jitter", 0, "queue: plus up to this much, at random")
	fs.Float64Var(&c.Resume, "resume", 0, "queue: share of customers (0-1) that drop their connection once while waiting and resume on another node")
	fs.Float64Var(&c.ResumeInCall, "resume-in-call", 0, "queue: share of customers (0-1) that drop their connection once during their call and resume into it on another node")
	fs.DurationVar(&c.Settle, "settle", 30*time.Second, "queue: after the last customer joined, how long to wait for all to be served")
	fs.DurationVar(&c.RetryFor, "retry-for", time.Minute, "queue: how long a client whose connection was lost keeps trying to resume or rejoin")
	fs.DurationVar(&c.StuckAfter, "stuck-after", 20*time.Second, "queue: a call ended on one side whose other side got no ended within this is stuck")
	fs.DurationVar(&c.LostAfter, "lost-after", 15*time.Second, "queue: an idle available agent given no one this long while customers wait is lost")
	fs.DurationVar(&c.OrderTolerance, "order-tolerance", time.Second, "queue: order-of-service inversions are counted beyond this")
	fs.Int64Var(&c.Seed, "seed", 0, "queue: seed of the random drops and hold jitter (0: from the clock; the report gives it)")
	fs.Float64Var(&c.Ramp, "ramp", 5, "calls (queue: customers; broadcast: subscribers) started per second; 0 starts them all at once")
	fs.BoolVar(&c.Simulcast, "simulcast", false, "publish VP8 simulcast layers up to --bitrate: 150k, 500k, then 1200k or the higher --bitrate as the top layer")
	fs.StringVar(&c.Codec, "codec", "vp8", "video codec: vp8 or h264 (h264: one 500 kbit/s layer, whatever --bitrate)")
	bitrate := fs.String("bitrate", "500k", "VP8 bitrate of the (top) layer, from prerecorded files: 150k (320x180), 500k (640x360), "+
		"1200k, 1800k or 2500k (1280x720); the nearest is used")
	fs.BoolVar(&c.NoVideo, "audio-only", false, "publish audio only")
	fs.BoolVar(&c.LoopbackOnly, "loopback", false, "ICE on loopback only (a server on this machine)")
	fs.Float64Var(&c.Objectives.MaxLossPct, "max-loss", 0, "objective: packet loss at most this percent (0: none)")
	fs.DurationVar(&c.Objectives.MaxJoinP95, "max-join-p95", 0, "objective: 95th percentile of connect-to-assigned (0: none)")
	fs.DurationVar(&c.Objectives.MaxFirstFrameP95, "max-first-frame-p95", 0, "objective: 95th percentile of assigned-to-first-keyframe (0: none)")
	fs.DurationVar(&c.Objectives.MaxLatencyP95, "max-latency-p95", 0, "objective: 95th percentile of end-to-end packet latency (0: none)")
	fs.IntVar(&c.Objectives.MaxFailures, "max-failures", -1, "objective: at most this many failed calls (-1: none)")
	fs.StringVar(&o.jsonPath, "json", "", "write the JSON report here (default bench-<scenario>-<time>.json; - for none)")
	fs.StringVar(&o.html, "html", "", "write the HTML report here (default bench-<scenario>-<time>.html; - for none)")
	fs.BoolVar(&o.quiet, "quiet", false, "no live progress")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printBenchUsage(stderr, fs)
			return nil, flag.ErrHelp
		}
		return nil, fmt.Errorf("%w (see 'helpcaster bench --help')", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see 'helpcaster bench --help')", fs.Arg(0))
	}
	bps, err := parseBitrate(*bitrate)
	if err != nil {
		return nil, err
	}
	c.Bitrate = bps
	c.URLs, c.MetricsURLs = o.urls, o.metrics
	c.CustomerURLs, c.AgentURLs = o.custURLs, o.agURLs
	if !c.Demo {
		if c.Org == "" {
			return nil, errors.New("--org is required (or --demo)")
		}
		t := tokenOptions{org: c.Org, key: c.Key, secret: o.secret, secretEnv: o.secretEnv, config: o.config}
		org, err := t.resolveOrg(env)
		if err != nil {
			return nil, err
		}
		c.Key, c.Secret = org.APIKey, org.APISecret
	}
	stamp := time.Now().Format("20060102-150405")
	for _, p := range []*string{&o.jsonPath, &o.html} {
		ext := ".json"
		if p == &o.html {
			ext = ".html"
		}
		switch *p {
		case "":
			*p = filepath.Clean(fmt.Sprintf("bench-%s-%s%s", c.Scenario, stamp, ext))
		case "-":
			*p = ""
		}
	}
	if !o.quiet {
		c.Progress = stderr
		c.Terminal = isTerminal(stderr)
	}
	c.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return o, nil
}

// scenarioFile reads a YAML scenario file into command-line arguments: the
// scenario name first, then one --key=value per entry (the keys are the
// flag names; a list gives the flag once per item). Flags given after the
// file on the command line override it.
func scenarioFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario file: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("scenario file %s: %w", path, err)
	}
	name, ok := m["scenario"].(string)
	if !ok || name == "" {
		return nil, fmt.Errorf("scenario file %s: no scenario: (one of %s)", path, strings.Join(bench.Scenarios, ", "))
	}
	delete(m, "scenario")
	args := []string{name}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if strings.Contains(k, "secret") && k != "secret-env" {
			return nil, fmt.Errorf("scenario file %s: %s: keep secrets out of files; use secret-env", path, k)
		}
		switch v := m[k].(type) {
		case []any:
			for _, item := range v {
				args = append(args, fmt.Sprintf("--%s=%v", k, item))
			}
		case map[string]any, nil:
			return nil, fmt.Errorf("scenario file %s: %s: want a value or a list", path, k)
		default:
			args = append(args, fmt.Sprintf("--%s=%v", k, v))
		}
	}
	return args, nil
}

// parseBitrate reads 500k, 1.2M or 1200000.
func parseBitrate(s string) (int, error) {
	mult := 1.0
	v := strings.ToLower(strings.TrimSpace(s))
	switch {
	case strings.HasSuffix(v, "k"):
		mult, v = 1e3, strings.TrimSuffix(v, "k")
	case strings.HasSuffix(v, "m"):
		mult, v = 1e6, strings.TrimSuffix(v, "m")
	}
	var f float64
	if _, err := fmt.Sscanf(v, "%g", &f); err != nil || f <= 0 {
		return 0, fmt.Errorf("--bitrate %q is not a bitrate like 500k", s)
	}
	return int(f * mult), nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func printBenchUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, `Usage: helpcaster bench <scenario> --url ws://host:7880 [flags]
       helpcaster bench <file.yaml> [flags]

Runs simulated customers and agents (Go WebRTC clients) against a deployment
and reports join times, time to first frame, packet loss, jitter, end-to-end
latency, bitrates, failures, and the server's CPU and memory (from /metrics).
Prints a table and writes JSON and HTML reports. Exits 1 when an objective
(--max-*) is missed.

Scenarios:
  support  --calls pairs through the queue, both sides publishing audio and video
           (--record: the customers consent to recording; the report says how many
           calls were told "recording started" and what the nodes stored)
  broadcast  one call whose customer publishes, --subscribers supervisors monitoring it (fan-out)
  turn     as support, every client relaying through the TURN server
  queue    a placement storm: --customers and --agents, no media, with exactly-once
           accounting of both sides (exits 1 on duplicates, phantoms, customers never
           placed and never told why, stuck calls or lost agents)

A YAML scenario file names the scenario and sets flags by name; flags
after it override it:
  scenario: support
  url: [ws://node1:7880, ws://node2:7880]
  org: acme
  secret-env: ACME_SECRET
  calls: 50
  duration: 2m
  max-loss: 1

Example:
  helpcaster bench support --url ws://127.0.0.1:7880 --org acme --secret-env ACME_SECRET \
      --calls 50 --duration 2m --max-loss 1 --max-join-p95 2s

Flags:
`)
	if fs == nil {
		fmt.Fprintln(w, "  (run 'helpcaster bench support --help' for the flags)")
		return
	}
	fs.SetOutput(w)
	fs.PrintDefaults()
}
