package main

import (
	"fmt"
	"io"
	"strings"
)

// This file holds the table of serve settings: for each, its flag, its
// environment variable, its key in the config file, its default, its help
// text and the parser that sets it in a Config; and the help that the table
// prints (helpcaster serve --help).

// envPrefix starts every environment variable name; the rest is the flag
// name in upper case with '-' replaced by '_'.
const envPrefix = "HELPCASTER_"

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
			usage: "queue outgoing media and write it with sendmmsg in batches (up to 1 ms more latency, fewer system calls; implies --media-pion-path)",
			set:   func(v string) error { return setBool(&c.MediaBatchWrites, v) }},
		{flag: "media-pion-path", yaml: "media.pion_path", kind: kindBool, def: "false",
			usage: "carry media through pion's own goroutines and SRTP sessions instead of the direct path (for comparisons)",
			set:   func(v string) error { return setBool(&c.MediaPionPath, v) }},
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
		{flag: "recordings-dir", yaml: "recordings.dir", arg: "DIR", def: "recordings",
			usage: "local directory the recorded calls are stored in (queues choose which calls are recorded: record: in the org config)",
			set:   func(v string) error { c.RecordingsDir = v; return nil }},
		{flag: "recordings-url", yaml: "recordings.url", arg: "URL",
			usage: "store recordings in an S3-compatible service instead: s3://bucket/prefix (see --recordings-endpoint; credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY unless set)",
			set:   func(v string) error { c.RecordingsURL = v; return nil }},
		{flag: "recordings-endpoint", yaml: "recordings.s3.endpoint", arg: "URL", def: "https://s3.amazonaws.com",
			usage: "the S3 service's endpoint, https://host[:port] (or http:// for one on a private network)",
			set:   func(v string) error { c.RecordingsEndpoint = v; return nil }},
		{flag: "recordings-region", yaml: "recordings.s3.region", arg: "REGION",
			usage: "the S3 region; default AWS_REGION, else us-east-1",
			set:   func(v string) error { c.RecordingsRegion = v; return nil }},
		{flag: "recordings-path-style", yaml: "recordings.s3.path_style", kind: kindBool, def: "false",
			usage: "address the bucket as endpoint/bucket rather than bucket.endpoint (most self-hosted S3 services need it)",
			set:   func(v string) error { return setBool(&c.RecordingsPathStyle, v) }},
		{flag: "recordings-access-key", yaml: "recordings.s3.access_key", arg: "KEY",
			usage: "S3 access key id (default AWS_ACCESS_KEY_ID; with it, --recordings-secret-key)",
			set:   func(v string) error { c.RecordingsAccessKey = v; return nil }},
		{flag: "recordings-secret-key", yaml: "recordings.s3.secret_key", arg: "SECRET",
			usage: "S3 secret access key (prefer the environment variable)",
			set:   func(v string) error { c.RecordingsSecretKey = v; return nil }},
		{flag: "recordings-spool", yaml: "recordings.spool_dir", arg: "DIR",
			usage: "this node's own local directory for recordings not yet stored and for what a crash left; default DIR/.spool, or recordings-spool with --recordings-url",
			set:   func(v string) error { c.RecordingsSpool = v; return nil }},
		{flag: "recordings-max-spool", yaml: "recordings.max_spool_mb", arg: "MIB", def: "256",
			usage: "MiB of one recorded file that may wait for storage; past it that call's recording stops (the call goes on); at least 10, twice the 5 MiB upload part",
			set:   func(v string) error { return setInt(&c.RecordingsMaxSpoolMB, v, 10, 1<<20) }},
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
