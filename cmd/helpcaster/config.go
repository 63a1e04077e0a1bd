package main

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/helpcaster/helpcaster/node"
	"github.com/helpcaster/helpcaster/objstore"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/turn"
)

// This file holds the serve configuration (Config) and how it is put
// together: defaults, then the config file, the environment and the flags
// (loadServeConfig), then the checks of settings that depend on each other
// and the organizations (finish). The settings themselves are the table in
// settings.go; the parsers of their values are in values.go; the config
// file is read by configfile.go.

// Demo organization added by --dev.
const (
	devOrgID  = "demo"
	devAPIKey = "demo-key"
	devQueue  = "support"
)

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
	MediaPionPath     bool          // media through pion's goroutines, not the direct path
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

	RecordingsDir        string // local directory of recordings (when RecordingsURL is empty)
	RecordingsURL        string // s3://bucket/prefix: store recordings there instead
	RecordingsEndpoint   string // the S3 endpoint, http(s)://host[:port]
	RecordingsRegion     string // the S3 region ("" = AWS_REGION, else us-east-1)
	RecordingsPathStyle  bool   // path-style bucket addressing
	RecordingsAccessKey  string // "" = AWS_ACCESS_KEY_ID
	RecordingsSecretKey  string
	RecordingsSpool      string // the node's spool directory ("" = default)
	RecordingsMaxSpoolMB int    // bound of one file's bytes waiting for storage

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
	if _, err := c.Recordings(); err != nil {
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
			Queues:    []auth.Queue{{Name: devQueue, Record: auth.RecordConsent}},
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

// warnSharedSecrets logs a warning for each group of organizations that
// share one API secret: each of them can mint tokens for the others, so
// the tenants are not isolated. It names the organizations by id only.
func warnSharedSecrets(logger *slog.Logger, dir *auth.Directory) {
	for _, ids := range dir.SharedSecrets() {
		logger.Warn("organizations share one API secret: each can mint tokens that join as another; give each its own secret", "orgs", ids)
	}
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

// Recordings is where recordings go, for the node.
func (c *Config) Recordings() (*node.RecordingsConfig, error) {
	rc := &node.RecordingsConfig{Dir: c.RecordingsDir, SpoolDir: c.RecordingsSpool, MaxSpool: int64(c.RecordingsMaxSpoolMB) << 20}
	if c.RecordingsURL == "" {
		if rc.Dir == "" {
			return nil, errors.New("recordings: --recordings-dir or --recordings-url is required")
		}
		return rc, nil
	}
	bucket, prefix, err := objstore.ParseS3URL(c.RecordingsURL)
	if err != nil {
		return nil, fmt.Errorf("recordings: --recordings-url: %w", err)
	}
	u, err := url.Parse(c.RecordingsEndpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return nil, fmt.Errorf("recordings: --recordings-endpoint must be http(s)://host[:port]")
	}
	if (c.RecordingsAccessKey == "") != (c.RecordingsSecretKey == "") {
		return nil, errors.New("recordings: --recordings-access-key and --recordings-secret-key go together")
	}
	rc.S3 = &objstore.S3Config{
		Endpoint: u.Host, Secure: u.Scheme == "https", Bucket: bucket, Prefix: prefix,
		Region: c.RecordingsRegion, PathStyle: c.RecordingsPathStyle,
		AccessKey: c.RecordingsAccessKey, SecretKey: c.RecordingsSecretKey,
	}
	return rc, nil
}

// recordingsWhere says where recordings go, for the banner; "" when no
// queue records.
func (c *Config) recordingsWhere() string {
	records := false
	for _, o := range c.Orgs {
		for _, q := range o.Queues {
			records = records || q.Record != auth.RecordOff
		}
	}
	switch {
	case !records:
		return ""
	case c.RecordingsURL != "":
		return c.RecordingsURL
	}
	return c.RecordingsDir
}
