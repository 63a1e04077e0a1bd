package main

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/helpcaster/helpcaster/cluster"
	"github.com/helpcaster/helpcaster/internal/confparse"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/turn"
)

// Demo organization added by --dev.
const (
	devOrgID  = "demo"
	devAPIKey = "demo-key"
	devQueue  = "support"
)

// envPrefix starts every environment variable name; the rest is the flag
// name in upper case with '-' replaced by '_'.
const envPrefix = "HELPCASTER_"

// maxConfigFileBytes bounds the YAML file read by --config.
const maxConfigFileBytes = 1 << 20

// Config is the configuration of "helpcaster serve", after flags, environment
// and config file have been merged (flag > env > file > default) and checked.
type Config struct {
	ConfigFile string // the YAML file read ("" if none)

	Listen    string // HTTP host:port (signaling, demo pages, metrics); port 0 = any free port
	TLSCert   string // PEM certificate file; set together with TLSKey to serve HTTPS/WSS
	TLSKey    string // PEM private key file
	PublicURL string // base URL printed for the demo pages, no trailing slash; "" if Listen has port 0 and --public-url is unset

	LogFormat string     // "text" or "json"
	LogLevel  slog.Level // debug, info, warn or error

	MediaListenIP     string        // IP address the media UDP socket and ICE-TCP listener bind to
	MediaUDPPort      int           // the one UDP port all ICE uses (1-65535)
	MediaTCPPort      int           // the one TCP port for ICE over TCP, the fallback to UDP (1-65535); 0 = off
	MediaPublicIPs    []string      // public IPs to announce (1:1 NAT); nil = none
	MediaLoopbackOnly bool          // gather and announce only loopback candidates (tests)
	MediaBatchWrites  bool          // write media with sendmmsg in batches
	Pprof             bool          // serve /debug/pprof/
	RedisURL          string        // queue store in Redis; "" keeps it in memory
	NodeID            string        // this node's id among the nodes sharing RedisURL; "" = random
	ResumeGrace       time.Duration // how long a disconnected customer keeps its place

	TURNPort          int           // embedded TURN on UDP and TCP; 0 = off (3478 with --dev unless set)
	TURNTLSPort       int           // embedded TURN over TLS (needs --tls-cert); 0 = off
	TURNRelayIP       string        // address announced for relays ("" = first media public IP, else the media listen IP)
	TURNRelayPorts    [2]int        // relay UDP port range; {0, 0} = 49152-65535
	TURNHost          string        // host in the TURN URLs given to clients ("" = the relay IP)
	TURNSecret        string        // shared secret for TURN REST credentials (random with --dev)
	TURNCredentialTTL time.Duration // how long minted TURN credentials are valid
	TURNAllow         []string      // peer prefixes the relay policy allows despite its denied ranges
	TURNExternal      []string      // turn:/turns: URLs of an external TURN service sharing TURNSecret
	TURNPerUser       int           // allocations per credential
	TURNPerIP         int           // allocations per client IP
	TURNBandwidth     int           // bits/s per allocation, each way
	turnPortSet       bool
	turnTLSPortSet    bool

	MaxMessageBytes   int           // largest signaling message
	MessagesPerSecond float64       // per-connection message rate
	MessageBurst      int           // per-connection message burst
	PingInterval      time.Duration // WebSocket keep-alive ping interval
	WriteTimeout      time.Duration // WebSocket write deadline
	TokenMaxLifetime  time.Duration // longest token lifetime accepted (auth.Verifier.MaxLifetime)
	ShutdownTimeout   time.Duration // how long a graceful shutdown may take
	DrainTimeout      time.Duration // how long calls may go on after the first SIGTERM; 0 = no drain

	// Orgs are the organizations from the config file, plus the demo
	// organization (last) when Dev is set. auth.NewDirectory accepts them.
	Orgs     []auth.Org
	Dev      bool   // --dev: the demo organization exists
	DevOrgID string // id of the demo organization when Dev ("demo"), else ""

	publicURLSet bool // PublicURL was configured, not derived from Listen
}

// TLS reports whether the server serves HTTPS/WSS.
func (c *Config) TLS() bool { return c.TLSCert != "" }

// SetListenAddr records the address the HTTP listener actually bound (useful
// when Listen has port 0). Unless --public-url was given it re-derives
// PublicURL, and with --dev it re-derives the demo organization's origins;
// call it before building the auth.Directory from Orgs.
func (c *Config) SetListenAddr(addr string) {
	if !c.publicURLSet {
		c.PublicURL = derivePublicURL(addr, c.TLS())
	}
	if c.Dev {
		for i := range c.Orgs {
			if c.Orgs[i].ID == c.DevOrgID {
				c.Orgs[i].Origins = devOrigins(addr, c.PublicURL, c.TLS())
			}
		}
	}
}

// kind is how a setting's value is written.
type kind int

const (
	kindScalar kind = iota
	kindBool        // a flag without a value means true
	kindList        // repeatable flag, comma-separated list, or YAML sequence
)

// setting is one configuration item.
type setting struct {
	flag  string // flag name; the env var is derived from it
	yaml  string // dotted path in the YAML file
	arg   string // placeholder for the value in --help
	def   string // default value, as text
	usage string
	kind  kind
	set   func(string) error // parses a value into the Config it was built for
}

func (s *setting) env() string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(s.flag, "-", "_"))
}

// settings returns the table of serve settings, bound to c.
func settings(c *Config) []setting {
	return []setting{
		{flag: "listen", yaml: "listen", arg: "HOST:PORT", def: "127.0.0.1:8080",
			usage: "HTTP address (signaling, demo pages, metrics); loopback by default, use e.g. 0.0.0.0:8080 for all interfaces",
			set:   func(v string) error { return setHostPort(&c.Listen, v) }},
		{flag: "public-url", yaml: "public_url", arg: "URL",
			usage: "base URL printed for the demo pages (default derived from --listen)",
			set:   func(v string) error { return setPublicURL(c, v) }},
		{flag: "tls-cert", yaml: "tls.cert", arg: "FILE", usage: "PEM certificate; with --tls-key, serve HTTPS/WSS",
			set: func(v string) error { c.TLSCert = v; return nil }},
		{flag: "tls-key", yaml: "tls.key", arg: "FILE", usage: "PEM private key for --tls-cert",
			set: func(v string) error { c.TLSKey = v; return nil }},
		{flag: "log-format", yaml: "log.format", arg: "FORMAT", def: "text", usage: "log format: text or json",
			set: func(v string) error { return setEnum(&c.LogFormat, v, "text", "json") }},
		{flag: "log-level", yaml: "log.level", arg: "LEVEL", def: "info", usage: "log level: debug, info, warn or error",
			set: func(v string) error { return setLevel(&c.LogLevel, v) }},
		{flag: "dev", yaml: "dev", kind: kindBool, def: "false",
			usage: "add the demo organization \"demo\" (random secret, origins of --listen/--public-url, queue \"support\")",
			set:   func(v string) error { return setBool(&c.Dev, v) }},
		{flag: "media-listen-ip", yaml: "media.listen_ip", arg: "IP", def: "127.0.0.1",
			usage: "IP address the media UDP socket and ICE-TCP listener bind to",
			set:   func(v string) error { return setIP(&c.MediaListenIP, v) }},
		{flag: "media-udp-port", yaml: "media.udp_port", arg: "PORT", def: "7881",
			usage: "the one UDP port all ICE traffic uses",
			set:   func(v string) error { return setPort(&c.MediaUDPPort, v) }},
		{flag: "media-tcp-port", yaml: "media.tcp_port", arg: "PORT", def: "7881",
			usage: "the one TCP port for ICE over TCP, the fallback for clients that cannot use UDP; 0 turns it off",
			set:   func(v string) error { return setPortOrOff(&c.MediaTCPPort, v) }},
		{flag: "media-public-ip", yaml: "media.public_ips", arg: "IP", kind: kindList,
			usage: "public IP to announce in ICE candidates (1:1 NAT); repeatable or comma-separated",
			set:   func(v string) error { return setIPList(&c.MediaPublicIPs, v) }},
		{flag: "media-loopback-only", yaml: "media.loopback_only", kind: kindBool, def: "false",
			usage: "gather and announce only loopback ICE candidates (tests)",
			set:   func(v string) error { return setBool(&c.MediaLoopbackOnly, v) }},
		{flag: "media-batch-writes", yaml: "media.batch_writes", kind: kindBool, def: "false",
			usage: "queue outgoing media and write it with sendmmsg in batches (up to 1 ms more latency, fewer system calls)",
			set:   func(v string) error { return setBool(&c.MediaBatchWrites, v) }},
		{flag: "redis", yaml: "redis.url", arg: "URL",
			usage: "keep queues and agent presence in Redis (redis://[user:password@]host:port/db, rediss:// for TLS) instead of in memory; nodes sharing one Redis form a cluster",
			set:   func(v string) error { return setRedisURL(&c.RedisURL, v) }},
		{flag: "node-id", yaml: "redis.node_id", arg: "ID",
			usage: "this node's id in the cluster (with --redis; letters, digits, '.', '_', '-'); default random",
			set:   func(v string) error { return setNodeID(&c.NodeID, v) }},
		{flag: "resume-grace", yaml: "signaling.resume_grace", arg: "DURATION", def: "1m",
			usage: "how long a customer whose connection dropped keeps its place to resume",
			set:   func(v string) error { return setDuration(&c.ResumeGrace, v, false) }},
		{flag: "turn-port", yaml: "turn.port", arg: "PORT",
			usage: "embedded TURN server on this UDP and TCP port, or 0 for none; default 3478 with --dev, else none",
			set: func(v string) error {
				c.turnPortSet = true
				return setPortOrOff(&c.TURNPort, v)
			}},
		{flag: "turn-tls-port", yaml: "turn.tls_port", arg: "PORT",
			usage: "embedded TURN over TLS on this port, with --tls-cert's certificate, or 0 for none; default 5349 when TURN and TLS are on",
			set: func(v string) error {
				c.turnTLSPortSet = true
				return setPortOrOff(&c.TURNTLSPort, v)
			}},
		{flag: "turn-relay-ip", yaml: "turn.relay_ip", arg: "IP",
			usage: "address announced for TURN relays (this server's public IP); default the first --media-public-ip, else --media-listen-ip",
			set:   func(v string) error { return setIP(&c.TURNRelayIP, v) }},
		{flag: "turn-relay-ports", yaml: "turn.relay_ports", arg: "MIN-MAX", def: "49152-65535",
			usage: "UDP port range of TURN relays",
			set:   func(v string) error { return setPortRange(&c.TURNRelayPorts, v) }},
		{flag: "turn-host", yaml: "turn.host", arg: "HOST",
			usage: "host name or IP clients reach the TURN server at (in the URLs they get); default the relay IP",
			set:   func(v string) error { c.TURNHost = v; return nil }},
		{flag: "turn-secret", yaml: "turn.secret", arg: "SECRET",
			usage: "shared secret of TURN REST credentials (at least 16 bytes; prefer the environment variable); needed for --turn-external, random otherwise",
			set:   func(v string) error { c.TURNSecret = v; return nil }},
		{flag: "turn-credential-ttl", yaml: "turn.credential_ttl", arg: "DURATION", def: "4h",
			usage: "how long the TURN credentials given to a participant are valid",
			set:   func(v string) error { return setDuration(&c.TURNCredentialTTL, v, false) }},
		{flag: "turn-allow", yaml: "turn.allow", arg: "PREFIX", kind: kindList,
			usage: "peer address prefixes the TURN relay may reach although they are private, loopback, etc. (e.g. 10.0.0.0/8); the SFU's media address is always allowed",
			set:   func(v string) error { return setPrefixList(&c.TURNAllow, v) }},
		{flag: "turn-external", yaml: "turn.external", arg: "URL", kind: kindList,
			usage: "an external TURN service (turn: or turns: URLs) sharing --turn-secret: mint credentials for it instead of, or besides, the embedded server",
			set:   func(v string) error { return setTURNURLs(&c.TURNExternal, v) }},
		{flag: "turn-allocations-per-user", yaml: "turn.allocations_per_user", arg: "N", def: "10",
			usage: "TURN allocations one credential may hold",
			set:   func(v string) error { return setInt(&c.TURNPerUser, v, 1, 10_000) }},
		{flag: "turn-allocations-per-ip", yaml: "turn.allocations_per_ip", arg: "N", def: "50",
			usage: "TURN allocations one client IP may hold",
			set:   func(v string) error { return setInt(&c.TURNPerIP, v, 1, 1_000_000) }},
		{flag: "turn-bandwidth", yaml: "turn.bandwidth", arg: "BITS", def: "10000000",
			usage: "bits per second one TURN allocation may relay each way; more is dropped",
			set:   func(v string) error { return setInt(&c.TURNBandwidth, v, 64_000, 10_000_000_000) }},
		{flag: "debug-pprof", yaml: "debug.pprof", kind: kindBool, def: "false",
			usage: "serve Go's profiler under /debug/pprof/ on the HTTP listener (keep that listener private)",
			set:   func(v string) error { return setBool(&c.Pprof, v) }},
		{flag: "max-message-bytes", yaml: "signaling.max_message_bytes", arg: "N", def: "65536",
			usage: "largest signaling message, in bytes",
			set:   func(v string) error { return setInt(&c.MaxMessageBytes, v, 1024, 64<<20) }},
		{flag: "messages-per-second", yaml: "signaling.messages_per_second", arg: "RATE", def: "20",
			usage: "signaling messages per second allowed per connection",
			set:   func(v string) error { return setRate(&c.MessagesPerSecond, v) }},
		{flag: "message-burst", yaml: "signaling.message_burst", arg: "N", def: "40",
			usage: "signaling messages allowed in a burst per connection",
			set:   func(v string) error { return setInt(&c.MessageBurst, v, 1, 1_000_000) }},
		{flag: "ping-interval", yaml: "signaling.ping_interval", arg: "DURATION", def: "15s",
			usage: "WebSocket keep-alive ping interval",
			set:   func(v string) error { return setDuration(&c.PingInterval, v, false) }},
		{flag: "write-timeout", yaml: "signaling.write_timeout", arg: "DURATION", def: "10s",
			usage: "WebSocket write timeout",
			set:   func(v string) error { return setDuration(&c.WriteTimeout, v, false) }},
		{flag: "token-max-lifetime", yaml: "signaling.token_max_lifetime", arg: "DURATION", def: "24h",
			usage: "longest lifetime of a token accepted on join: exp - iat, or exp - now for a token without iat (at most 168h)",
			set:   func(v string) error { return setDuration(&c.TokenMaxLifetime, v, false) }},
		{flag: "shutdown-timeout", yaml: "shutdown_timeout", arg: "DURATION", def: "10s",
			usage: "how long a graceful shutdown may take before connections are cut",
			set:   func(v string) error { return setDuration(&c.ShutdownTimeout, v, true) }},
		{flag: "drain-timeout", yaml: "drain_timeout", arg: "DURATION", def: "30m",
			usage: "on SIGTERM or Ctrl+C, how long calls in progress may go on (no new ones start) before they are ended; a second signal ends them at once; 0 ends them at once",
			set:   func(v string) error { return setDuration(&c.DrainTimeout, v, true) }},
	}
}

// flagValue records the raw text given on the command line for a setting.
type flagValue struct {
	kind kind
	vals []string
}

func (f *flagValue) String() string { return strings.Join(f.vals, ",") }

func (f *flagValue) Set(v string) error {
	if f.kind == kindList {
		f.vals = append(f.vals, v)
	} else {
		f.vals = []string{v}
	}
	return nil
}

func (f *flagValue) IsBoolFlag() bool { return f.kind == kindBool }

// loadServeConfig builds the serve configuration from args (the flags after
// "serve"), the environment env and the optional YAML file. -h/--help
// prints the usage to stderr and returns flag.ErrHelp. Every other error is
// one line starting with "config: ".
func loadServeConfig(args []string, env func(string) string, stderr io.Writer) (*Config, error) {
	c := &Config{}
	table := settings(c)

	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flags := make([]*flagValue, len(table))
	for i := range table {
		flags[i] = &flagValue{kind: table[i].kind}
		fs.Var(flags[i], table[i].flag, table[i].usage)
	}
	configFile := fs.String("config", "", "YAML configuration file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printServeUsage(stderr, table)
			return nil, flag.ErrHelp
		}
		return nil, fmt.Errorf("config: %w (see 'helpcaster serve --help')", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("config: unexpected argument %q (see 'helpcaster serve --help')", fs.Arg(0))
	}

	for i := range table {
		if table[i].def != "" || table[i].kind == kindList {
			if err := table[i].set(table[i].def); err != nil {
				return nil, fmt.Errorf("config: default of --%s: %w", table[i].flag, err) // a bug in the table
			}
		}
	}

	if *configFile == "" {
		*configFile = env(envPrefix + "CONFIG")
	}
	var fileOrgs []auth.Org
	if *configFile != "" {
		f, err := readConfigFile(*configFile, env)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		for i := range table {
			if v, ok := f.values[table[i].yaml]; ok {
				if err := table[i].set(v); err != nil {
					return nil, fmt.Errorf("config: %s: %w", table[i].yaml, err)
				}
			}
		}
		fileOrgs = f.orgs
		c.ConfigFile = *configFile
	}
	for i := range table {
		if v := env(table[i].env()); v != "" {
			if err := table[i].set(v); err != nil {
				return nil, fmt.Errorf("config: %s: %w", table[i].env(), err)
			}
		}
	}
	for i := range table {
		if vals := flags[i].vals; len(vals) > 0 {
			if err := table[i].set(strings.Join(vals, ",")); err != nil {
				return nil, fmt.Errorf("config: --%s: %w", table[i].flag, err)
			}
		}
	}

	if err := c.finish(fileOrgs); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// finish checks settings that depend on each other and builds the orgs.
func (c *Config) finish(fileOrgs []auth.Org) error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls: --tls-cert and --tls-key must be given together")
	}
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("tls: cannot load certificate and key: %w", err)
		}
	}
	if c.PublicURL == "" {
		c.PublicURL = derivePublicURL(c.Listen, c.TLS())
	}
	if err := c.finishTURN(); err != nil {
		return err
	}
	if c.TokenMaxLifetime > auth.LongestMaxLifetime {
		return fmt.Errorf("signaling: --token-max-lifetime %v is longer than %v", c.TokenMaxLifetime, auth.LongestMaxLifetime)
	}
	c.Orgs = fileOrgs
	if c.Dev {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return fmt.Errorf("dev: generate secret: %w", err)
		}
		c.DevOrgID = devOrgID
		c.Orgs = append(c.Orgs, auth.Org{
			ID:        devOrgID,
			APIKey:    devAPIKey,
			APISecret: []byte(hex.EncodeToString(secret)),
			Origins:   devOrigins(c.Listen, c.PublicURL, c.TLS()),
			Queues:    []auth.Queue{{Name: devQueue}},
		})
	}
	if len(c.Orgs) == 0 {
		return errors.New("no organizations configured; pass --dev for a demo organization or add orgs to the config file")
	}
	if _, err := auth.NewDirectory(c.Orgs); err != nil {
		return fmt.Errorf("orgs: %w", err)
	}
	return nil
}

// warnSharedSecrets logs a warning for each group of organizations that
// share one API secret: each of them can mint tokens for the others, so
// the tenants are not isolated. It names the organizations by id only.
func warnSharedSecrets(logger *slog.Logger, dir *auth.Directory) {
	for _, ids := range dir.SharedSecrets() {
		logger.Warn("organizations share one API secret: each can mint tokens that join as another; give each its own secret", "orgs", ids)
	}
}

func printServeUsage(w io.Writer, table []setting) {
	var b strings.Builder
	b.WriteString("Usage: helpcaster serve [flags]\n\n")
	b.WriteString("Runs the HelpCaster server. Every setting can be given as a flag, an environment\n")
	b.WriteString("variable or a key in the YAML config file; flag > environment > file > default.\n")
	b.WriteString("Organizations are configured only in the file (key \"orgs\").\n\n")
	b.WriteString("  --config FILE\n")
	b.WriteString("        env HELPCASTER_CONFIG\n")
	b.WriteString("        YAML configuration file\n")
	for _, s := range table {
		name := "--" + s.flag
		if s.arg != "" {
			name += " " + s.arg
		}
		def := ""
		if s.def != "" {
			def = fmt.Sprintf(" (default %q)", s.def)
		}
		fmt.Fprintf(&b, "  %s\n        env %s, file key %s%s\n        %s\n", name, s.env(), s.yaml, def, s.usage)
	}
	b.WriteString(`
Organizations in the config file:

  orgs:
    - id: acme                       # [a-z0-9][a-z0-9-_]{0,62}
      api_key: acme-key              # public key id (JWT "kid" header)
      api_secret_env: ACME_SECRET    # or api_secret: "..." (at least 32 bytes)
      origins: ["https://shop.acme.example", "https://*.acme.example"]
      queues:                        # the first is the default queue
        - name: support
          max_length: 100                # new customers beyond it get queue_full
          offer_timeout: 20s             # agents accept or decline; 0 (default): calls start at once
          overflow: {after: 5m, to: general}
          priority:                      # higher first, then longest waiting
            - {attr: tier, value: gold, priority: 10}
          match:                         # customer attr -> agent skill level
            - attr: language
              min_level: 2
              widen: [{after: 60s, min_level: 0}]   # any agent after 60 s
        - general
`)
	_, _ = io.WriteString(w, b.String())
}

// configFile is what the YAML file sets.
type configFile struct {
	values map[string]string // yaml path -> raw value (lists joined with ",")
	orgs   []auth.Org
}

// readConfigFile reads and checks the YAML file at path. Secrets named by
// api_secret_env are read with env.
func readConfigFile(path string, env func(string) string) (*configFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	if len(data) > maxConfigFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxConfigFileBytes)
	}
	cf, err := parseConfigFile(data, env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cf, nil
}

func parseConfigFile(data []byte, env func(string) string) (*configFile, error) {
	cf := &configFile{values: map[string]string{}}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cf, nil // empty file
		}
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	root := confparse.Deref(&doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = confparse.Deref(root.Content[0])
	}
	if confparse.IsNull(root) {
		return cf, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the file must be a mapping of settings", root.Line)
	}
	paths := map[string]kind{}
	for _, s := range settings(&Config{}) {
		paths[s.yaml] = s.kind
	}
	if err := cf.walk(root, "", paths, env); err != nil {
		return nil, err
	}
	return cf, nil
}

func (cf *configFile) walk(m *yaml.Node, prefix string, paths map[string]kind, env func(string) string) error {
	kvs, err := confparse.Pairs(m, prefix)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		k, v := kv[0], kv[1]
		path := prefix + k.Value
		if path == "orgs" {
			orgs, err := auth.ParseOrgs(v, env)
			if err != nil {
				return err
			}
			cf.orgs = orgs
			continue
		}
		if kd, ok := paths[path]; ok {
			if confparse.IsNull(v) {
				continue
			}
			val, err := confparse.Scalar(v, kd == kindList)
			if err != nil {
				return fmt.Errorf("line %d: %s: %w", v.Line, path, err)
			}
			cf.values[path] = val
			continue
		}
		isSection := false
		for p := range paths {
			if strings.HasPrefix(p, path+".") {
				isSection = true
				break
			}
		}
		if !isSection {
			return fmt.Errorf("line %d: unknown key %q", k.Line, path)
		}
		if confparse.IsNull(v) {
			continue
		}
		if v.Kind != yaml.MappingNode {
			return fmt.Errorf("line %d: %s must be a mapping", v.Line, path)
		}
		if err := cf.walk(v, path+".", paths, env); err != nil {
			return err
		}
	}
	return nil
}

// Value parsers. Their errors describe the value; the caller names the setting.

func setHostPort(dst *string, v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%q is not host:port (like 127.0.0.1:8080 or :8080)", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q is not a port (0-65535)", port)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q is not a valid host", host)
	}
	*dst = v
	return nil
}

func setPublicURL(c *Config, v string) error {
	if v == "" {
		c.PublicURL, c.publicURLSet = "", false
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an http(s) URL like https://support.example.com", v)
	}
	c.PublicURL, c.publicURLSet = strings.TrimRight(v, "/"), true
	return nil
}

// setRedisURL accepts a redis:// or rediss:// URL with a host (or unix://
// with a socket path). The error never repeats the URL: it may hold a
// password.
func setRedisURL(dst *string, v string) error {
	if v == "" {
		*dst = ""
		return nil
	}
	u, err := url.Parse(v)
	ok := err == nil && ((u.Scheme == "redis" || u.Scheme == "rediss") && u.Host != "" || u.Scheme == "unix" && u.Path != "")
	if !ok || u.Fragment != "" {
		return errors.New("not a Redis URL like redis://host:6379/0 (or rediss://, unix:///path)")
	}
	*dst = v
	return nil
}

func setNodeID(dst *string, v string) error {
	if err := cluster.ValidateID(v); err != nil {
		return err
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q: use letters, digits, '.', '_' and '-'", v)
		}
	}
	*dst = v
	return nil
}

// finishTURN fills in TURN defaults and checks the TURN settings together.
func (c *Config) finishTURN() error {
	if !c.turnPortSet && c.Dev {
		c.TURNPort = 3478
	}
	if !c.turnTLSPortSet && c.TURNPort != 0 && c.TLSCert != "" {
		c.TURNTLSPort = 5349
	}
	if c.TURNTLSPort != 0 && c.TLSCert == "" {
		return errors.New("turn: --turn-tls-port needs --tls-cert and --tls-key")
	}
	if c.TURNCredentialTTL > turn.MaxTTL {
		return fmt.Errorf("turn: --turn-credential-ttl %v is longer than %v", c.TURNCredentialTTL, turn.MaxTTL)
	}
	embedded := c.TURNPort != 0 || c.TURNTLSPort != 0
	if !embedded && len(c.TURNExternal) == 0 {
		return nil
	}
	switch {
	case c.TURNSecret == "" && len(c.TURNExternal) > 0:
		return errors.New("turn: --turn-external needs the service's shared secret (--turn-secret or HELPCASTER_TURN_SECRET)")
	case c.TURNSecret == "":
		// Only this process checks the credentials it mints: a random
		// secret will do (each node's participants use that node's server).
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("turn: generate secret: %w", err)
		}
		c.TURNSecret = hex.EncodeToString(b)
	case len(c.TURNSecret) < turn.MinSecretLen:
		return fmt.Errorf("turn: the shared secret must be at least %d bytes", turn.MinSecretLen)
	}
	if embedded && c.TURNRelayIP == "" {
		switch {
		case len(c.MediaPublicIPs) > 0:
			c.TURNRelayIP = c.MediaPublicIPs[0]
		case c.MediaListenIP != "" && c.MediaListenIP != "0.0.0.0" && c.MediaListenIP != "::":
			c.TURNRelayIP = c.MediaListenIP
		default:
			return errors.New("turn: give --turn-relay-ip (the address clients reach relays at)")
		}
	}
	return nil
}

func setPortRange(dst *[2]int, v string) error {
	lo, hi, ok := strings.Cut(v, "-")
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
		return fmt.Errorf("%q is not a port range MIN-MAX (1-65535, MIN not above MAX)", v)
	}
	*dst = [2]int{a, b}
	return nil
}

func setPrefixList(dst *[]string, v string) error {
	var out []string
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			a, aerr := netip.ParseAddr(part)
			if aerr != nil {
				return fmt.Errorf("%q is not an address prefix (like 10.0.0.0/8) or address", part)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked().String())
	}
	*dst = out
	return nil
}

func setTURNURLs(dst *[]string, v string) error {
	var out []string
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.HasPrefix(part, "turn:") && !strings.HasPrefix(part, "turns:") {
			return fmt.Errorf("%q is not a turn: or turns: URL", part)
		}
		out = append(out, part)
	}
	*dst = out
	return nil
}

func setEnum(dst *string, v string, options ...string) error {
	if !slices.Contains(options, v) {
		return fmt.Errorf("%q is not one of %s", v, strings.Join(options, ", "))
	}
	*dst = v
	return nil
}

func setLevel(dst *slog.Level, v string) error {
	var s string
	if err := setEnum(&s, strings.ToLower(v), "debug", "info", "warn", "error"); err != nil {
		return err
	}
	return dst.UnmarshalText([]byte(s))
}

func setBool(dst *bool, v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("%q is not a boolean (true or false)", v)
	}
	*dst = b
	return nil
}

func setIP(dst *string, v string) error {
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return fmt.Errorf("%q is not an IP address", v)
	}
	*dst = a.String()
	return nil
}

func setIPList(dst *[]string, v string) error {
	var ips []string
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("%q is not an IP address", part)
		}
		if a.IsUnspecified() || a.IsMulticast() {
			return fmt.Errorf("%s cannot be announced", part)
		}
		ips = append(ips, a.String())
	}
	*dst = ips
	return nil
}

func setPort(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%s is not a port (1-65535)", v)
	}
	*dst = n
	return nil
}

// setPortOrOff is setPort that also takes 0, meaning the listener is off.
func setPortOrOff(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%s is not a port (1-65535, or 0 for off)", v)
	}
	*dst = n
	return nil
}

func setInt(dst *int, v string, lo, hi int) error {
	n, err := confparse.Int(v, lo, hi)
	if err != nil {
		return err
	}
	*dst = n
	return nil
}

func setRate(dst *float64, v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("%q is not a number", v)
	}
	if f <= 0 || f > 100_000 {
		return fmt.Errorf("%s is out of range (more than 0, at most 100000)", v)
	}
	*dst = f
	return nil
}

func setDuration(dst *time.Duration, v string, zeroOK bool) error {
	d, err := confparse.Duration(v, zeroOK)
	if err != nil {
		return err
	}
	*dst = d
	return nil
}

// derivePublicURL is the base URL of a server listening on listen.
func derivePublicURL(listen string, tls bool) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "0" {
		return ""
	}
	if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
		host = "localhost"
	}
	return scheme(tls) + "://" + net.JoinHostPort(host, port)
}

// devOrigins are the web origins of the demo pages: the public URL's origin
// and, for a loopback or all-interfaces listener, the loopback names.
func devOrigins(listen, publicURL string, tls bool) []string {
	var out []string
	add := func(host, port string) {
		o := scheme(tls) + "://" + net.JoinHostPort(host, port)
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	if u, err := url.Parse(publicURL); err == nil && u.Host != "" {
		o := u.Scheme + "://" + u.Host
		out = append(out, strings.ToLower(o))
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "0" {
		return out
	}
	a, ipErr := netip.ParseAddr(host)
	switch {
	case host == "" || (ipErr == nil && a.IsUnspecified()):
		add("127.0.0.1", port)
		add("localhost", port)
		add("::1", port)
	case host == "localhost" || (ipErr == nil && a.IsLoopback()):
		add(host, port)
		add("127.0.0.1", port)
		add("localhost", port)
	default:
		add(host, port)
	}
	return out
}

func scheme(tls bool) string {
	if tls {
		return "https"
	}
	return "http"
}
