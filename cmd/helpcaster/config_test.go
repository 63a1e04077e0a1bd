package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const testSecret = "acme-secret-0123456789abcdef0123456789"

// orgsYAML is a valid orgs section.
const orgsYAML = `
orgs:
  - id: acme
    api_key: acme-key
    api_secret: ` + testSecret + `
    origins: ["https://shop.acme.example"]
    queues: [{name: support}]
`

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "helpcaster.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// precedenceCase gives one setting a different value in each layer.
type precedenceCase struct {
	flag       string
	yamlKey    string // "a.b" is written as nested mappings
	def        string
	file, env  string
	flagValue  string
	get        func(*Config) string
	fileQuoted bool
}

// precedenceEnv is environment a setting's precedence test needs besides
// its own variable.
var precedenceEnv = map[string]map[string]string{
	"turn-external":         {"HELPCASTER_TURN_SECRET": "turn-secret-0123456789"},
	"recordings-access-key": {"HELPCASTER_RECORDINGS_SECRET_KEY": "secret"},
	"recordings-secret-key": {"HELPCASTER_RECORDINGS_ACCESS_KEY": "key"},
}

func TestPrecedence(t *testing.T) {
	tests := []precedenceCase{
		{"listen", "listen", "127.0.0.1:8080", "10.0.0.1:81", "10.0.0.2:82", "10.0.0.3:83", func(c *Config) string { return c.Listen }, true},
		{"public-url", "public_url", "http://127.0.0.1:8080", "https://a.example", "https://b.example", "https://c.example", func(c *Config) string { return c.PublicURL }, true},
		{"log-format", "log.format", "text", "json", "text", "json", func(c *Config) string { return c.LogFormat }, false},
		{"log-level", "log.level", "info", "debug", "warn", "error", func(c *Config) string { return strings.ToLower(c.LogLevel.String()) }, false},
		{"dev", "dev", "false", "true", "false", "true", func(c *Config) string { return fmt.Sprint(c.Dev) }, false},
		{"media-listen-ip", "media.listen_ip", "127.0.0.1", "10.1.1.1", "10.2.2.2", "::1", func(c *Config) string { return c.MediaListenIP }, true},
		{"media-udp-port", "media.udp_port", "7881", "7001", "7002", "7003", func(c *Config) string { return fmt.Sprint(c.MediaUDPPort) }, false},
		{"media-tcp-port", "media.tcp_port", "7881", "7001", "0", "7003", func(c *Config) string { return fmt.Sprint(c.MediaTCPPort) }, false},
		{"media-public-ip", "media.public_ips", "", "203.0.113.1,203.0.113.2", "203.0.113.3", "203.0.113.4", func(c *Config) string { return strings.Join(c.MediaPublicIPs, ",") }, false},
		{"media-loopback-only", "media.loopback_only", "false", "true", "false", "true", func(c *Config) string { return fmt.Sprint(c.MediaLoopbackOnly) }, false},
		{"media-batch-writes", "media.batch_writes", "false", "true", "false", "true", func(c *Config) string { return fmt.Sprint(c.MediaBatchWrites) }, false},
		{"media-pion-path", "media.pion_path", "false", "true", "false", "true", func(c *Config) string { return fmt.Sprint(c.MediaPionPath) }, false},
		{"redis", "redis.url", "", "redis://a:1/0", "redis://b:2/1", "rediss://u:p@c:3/2", func(c *Config) string { return c.RedisURL }, true},
		{"node-id", "redis.node_id", "", "n1", "n2", "n3", func(c *Config) string { return c.NodeID }, false},
		{"resume-grace", "signaling.resume_grace", "1m0s", "10s", "20s", "30s", func(c *Config) string { return c.ResumeGrace.String() }, false},
		{"turn-port", "turn.port", "0", "3480", "3481", "3482", func(c *Config) string { return fmt.Sprint(c.TURNPort) }, false},
		{"turn-tls-port", "turn.tls_port", "0", "0", "0", "0", func(c *Config) string { return fmt.Sprint(c.TURNTLSPort) }, false},
		{"turn-relay-ip", "turn.relay_ip", "", "203.0.113.1", "203.0.113.2", "203.0.113.3", func(c *Config) string { return c.TURNRelayIP }, true},
		{"turn-relay-ports", "turn.relay_ports", "49152-65535", "40000-40100", "41000-41100", "42000-42100", func(c *Config) string { return fmt.Sprintf("%d-%d", c.TURNRelayPorts[0], c.TURNRelayPorts[1]) }, true},
		{"turn-host", "turn.host", "", "turn.a.example", "turn.b.example", "turn.c.example", func(c *Config) string { return c.TURNHost }, true},
		{"turn-secret", "turn.secret", "", "secret-a-0123456789", "secret-b-0123456789", "secret-c-0123456789", func(c *Config) string { return c.TURNSecret }, true},
		{"turn-credential-ttl", "turn.credential_ttl", "4h0m0s", "1h0m0s", "2h0m0s", "3h0m0s", func(c *Config) string { return c.TURNCredentialTTL.String() }, false},
		{"turn-allow", "turn.allow", "", "10.0.0.0/8,192.168.1.0/24", "172.16.0.0/12", "127.0.0.1/32", func(c *Config) string { return strings.Join(c.TURNAllow, ",") }, false},
		{"turn-external", "turn.external", "", "turn:a.example:3478", "turns:b.example:5349", "turn:c.example:3478?transport=tcp", func(c *Config) string { return strings.Join(c.TURNExternal, ",") }, true},
		{"turn-allocations-per-user", "turn.allocations_per_user", "10", "1", "2", "3", func(c *Config) string { return fmt.Sprint(c.TURNPerUser) }, false},
		{"turn-allocations-per-ip", "turn.allocations_per_ip", "50", "5", "6", "7", func(c *Config) string { return fmt.Sprint(c.TURNPerIP) }, false},
		{"turn-bandwidth", "turn.bandwidth", "10000000", "1000000", "2000000", "3000000", func(c *Config) string { return fmt.Sprint(c.TURNBandwidth) }, false},
		{"recordings-dir", "recordings.dir", "recordings", "/rec/a", "/rec/b", "/rec/c", func(c *Config) string { return c.RecordingsDir }, false},
		{"recordings-url", "recordings.url", "", "s3://a/p", "s3://b", "s3://c/x/y", func(c *Config) string { return c.RecordingsURL }, true},
		{"recordings-endpoint", "recordings.s3.endpoint", "https://s3.amazonaws.com", "http://127.0.0.1:9000", "https://b.example", "https://c.example:8443", func(c *Config) string { return c.RecordingsEndpoint }, true},
		{"recordings-region", "recordings.s3.region", "", "eu-1", "eu-2", "eu-3", func(c *Config) string { return c.RecordingsRegion }, false},
		{"recordings-path-style", "recordings.s3.path_style", "false", "true", "false", "true", func(c *Config) string { return fmt.Sprint(c.RecordingsPathStyle) }, false},
		{"recordings-access-key", "recordings.s3.access_key", "", "ka", "kb", "kc", func(c *Config) string { return c.RecordingsAccessKey }, false},
		{"recordings-secret-key", "recordings.s3.secret_key", "", "sa", "sb", "sc", func(c *Config) string { return c.RecordingsSecretKey }, false},
		{"recordings-spool", "recordings.spool_dir", "", "/sp/a", "/sp/b", "/sp/c", func(c *Config) string { return c.RecordingsSpool }, false},
		{"recordings-max-spool", "recordings.max_spool_mb", "256", "10", "20", "30", func(c *Config) string { return fmt.Sprint(c.RecordingsMaxSpoolMB) }, false},
		{"debug-pprof", "debug.pprof", "false", "true", "false", "true", func(c *Config) string { return fmt.Sprint(c.Pprof) }, false},
		{"max-message-bytes", "signaling.max_message_bytes", "65536", "2048", "4096", "8192", func(c *Config) string { return fmt.Sprint(c.MaxMessageBytes) }, false},
		{"messages-per-second", "signaling.messages_per_second", "20", "1.5", "2", "3", func(c *Config) string { return fmt.Sprint(c.MessagesPerSecond) }, false},
		{"message-burst", "signaling.message_burst", "40", "5", "6", "7", func(c *Config) string { return fmt.Sprint(c.MessageBurst) }, false},
		{"ping-interval", "signaling.ping_interval", "15s", "20s", "25s", "30s", func(c *Config) string { return c.PingInterval.String() }, false},
		{"write-timeout", "signaling.write_timeout", "10s", "1s", "2s", "3s", func(c *Config) string { return c.WriteTimeout.String() }, false},
		{"token-max-lifetime", "signaling.token_max_lifetime", "24h0m0s", "1h0m0s", "2h0m0s", "168h0m0s", func(c *Config) string { return c.TokenMaxLifetime.String() }, false},
		{"shutdown-timeout", "shutdown_timeout", "10s", "0s", "1m0s", "1h0m0s", func(c *Config) string { return c.ShutdownTimeout.String() }, false},
		{"drain-timeout", "drain_timeout", "30m0s", "0s", "2m0s", "1h0m0s", func(c *Config) string { return c.DrainTimeout.String() }, false},
	}
	// Every setting is covered (TLS by TestTLSPrecedence).
	for _, s := range settings(&Config{}) {
		if s.flag == "tls-cert" || s.flag == "tls-key" {
			continue
		}
		if !slices.ContainsFunc(tests, func(tt precedenceCase) bool {
			return tt.flag == s.flag && tt.yamlKey == s.yaml
		}) {
			t.Errorf("setting --%s (%s) has no precedence test", s.flag, s.yaml)
		}
	}
	for _, tt := range tests {
		t.Run(tt.flag, func(t *testing.T) {
			val := tt.file
			if tt.fileQuoted {
				val = fmt.Sprintf("%q", val)
			}
			if strings.Contains(val, ",") {
				val = "[" + val + "]"
			}
			yamlSetting := nestYAML(tt.yamlKey, val)
			envName := "HELPCASTER_" + strings.ToUpper(strings.ReplaceAll(tt.flag, "-", "_"))
			steps := []struct {
				name     string
				withFile bool
				env      map[string]string
				args     []string
				want     string
			}{
				{"default", false, nil, nil, tt.def},
				{"file over default", true, nil, nil, tt.file},
				{"env over file", true, map[string]string{envName: tt.env}, nil, tt.env},
				{"flag over env", true, map[string]string{envName: tt.env}, []string{"--" + tt.flag + "=" + tt.flagValue}, tt.flagValue},
			}
			for _, st := range steps {
				// Settings that need another one to be valid get it from
				// the environment.
				if extra := precedenceEnv[tt.flag]; extra != nil {
					env := map[string]string{}
					maps.Copy(env, extra)
					maps.Copy(env, st.env)
					st.env = env
				}
				content := orgsYAML
				if st.withFile {
					content += yamlSetting
				}
				path := writeFile(t, content)
				args := append([]string{"--config", path}, st.args...)
				cfg, err := loadServeConfig(args, envFunc(st.env), &bytes.Buffer{})
				if err != nil {
					t.Fatalf("%s: %v\nfile:\n%s", st.name, err, content)
				}
				if got := tt.get(cfg); got != st.want {
					t.Errorf("%s: got %q; want %q", st.name, got, st.want)
				}
			}
		})
	}
}

// nestYAML writes "a.b: v" as nested mappings.
func nestYAML(key, val string) string {
	parts := strings.Split(key, ".")
	var b strings.Builder
	for i, p := range parts {
		b.WriteString(strings.Repeat("  ", i) + p + ":")
		if i == len(parts)-1 {
			b.WriteString(" " + val)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// writeKeyPair writes a self-signed certificate and its key as PEM files.
func writeKeyPair(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{certFile, "CERTIFICATE", der}, {keyFile, "PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

func TestTLSPrecedence(t *testing.T) {
	dir := t.TempDir()
	fileCert, fileKey := writeKeyPair(t, dir, "file")
	envCert, envKey := writeKeyPair(t, dir, "env")
	flagCert, flagKey := writeKeyPair(t, dir, "flag")
	file := orgsYAML + fmt.Sprintf("tls:\n  cert: %q\n  key: %q\n", fileCert, fileKey)
	env := map[string]string{"HELPCASTER_TLS_CERT": envCert, "HELPCASTER_TLS_KEY": envKey}
	tests := []struct {
		name       string
		file       string
		env        map[string]string
		args       []string
		cert, key  string
		publicURL  string
		devOrigins string
	}{
		{"default", orgsYAML, nil, nil, "", "", "http://127.0.0.1:8080", ""},
		{"file", file, nil, nil, fileCert, fileKey, "https://127.0.0.1:8080", ""},
		{"env over file", file, env, nil, envCert, envKey, "https://127.0.0.1:8080", ""},
		{"flag over env", file, env, []string{"--tls-cert", flagCert, "--tls-key", flagKey}, flagCert, flagKey, "https://127.0.0.1:8080", ""},
		{"dev origins use https", orgsYAML, env, []string{"--dev"}, envCert, envKey, "https://127.0.0.1:8080", "https://localhost:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--config", writeFile(t, tt.file)}, tt.args...)
			cfg, err := loadServeConfig(args, envFunc(tt.env), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.TLSCert != tt.cert || cfg.TLSKey != tt.key || cfg.TLS() != (tt.cert != "") || cfg.PublicURL != tt.publicURL {
				t.Errorf("cert %q key %q public URL %q", cfg.TLSCert, cfg.TLSKey, cfg.PublicURL)
			}
			if tt.devOrigins != "" && !(&cfg.Orgs[len(cfg.Orgs)-1]).AllowsOrigin(tt.devOrigins) {
				t.Errorf("dev origins %v do not allow %s", cfg.Orgs[len(cfg.Orgs)-1].Origins, tt.devOrigins)
			}
		})
	}
	// A certificate with another certificate's key is refused.
	_, err := loadServeConfig([]string{"--dev", "--tls-cert", fileCert, "--tls-key", envKey}, envFunc(nil), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "cannot load certificate and key") {
		t.Errorf("mismatched pair: %v", err)
	}
}

func TestConfigFileAndEnv(t *testing.T) {
	path := writeFile(t, orgsYAML)
	// HELPCASTER_CONFIG names the file; --config overrides it.
	cfg, err := loadServeConfig(nil, envFunc(map[string]string{"HELPCASTER_CONFIG": path}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ConfigFile != path || len(cfg.Orgs) != 1 || cfg.Dev || cfg.DevOrgID != "" {
		t.Errorf("ConfigFile %q orgs %d Dev %v DevOrgID %q", cfg.ConfigFile, len(cfg.Orgs), cfg.Dev, cfg.DevOrgID)
	}
	// A secret named by api_secret_env comes from the environment.
	envOrg := writeFile(t, strings.Replace(orgsYAML, "api_secret: ", "api_secret_env: ACME_SECRET\n    # ", 1))
	cfg, err = loadServeConfig([]string{"--config", envOrg}, envFunc(map[string]string{"ACME_SECRET": testSecret}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if string(cfg.Orgs[0].APISecret) != testSecret {
		t.Errorf("secret from api_secret_env not read")
	}
	_, err = loadServeConfig([]string{"--config", path}, envFunc(map[string]string{"HELPCASTER_CONFIG": "/nonexistent.yaml"}), &bytes.Buffer{})
	if err != nil {
		t.Errorf("--config should override HELPCASTER_CONFIG: %v", err)
	}
	// Repeated and comma-separated public IPs accumulate.
	cfg, err = loadServeConfig([]string{"--dev", "--media-public-ip", "203.0.113.1,203.0.113.2", "--media-public-ip=2001:db8::1"}, envFunc(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"203.0.113.1", "203.0.113.2", "2001:db8::1"}; !slices.Equal(cfg.MediaPublicIPs, want) {
		t.Errorf("public IPs %v; want %v", cfg.MediaPublicIPs, want)
	}
	if cfg.LogLevel != slog.LevelInfo || cfg.PingInterval != 15*time.Second || cfg.ShutdownTimeout != 10*time.Second {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestRunConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string // config file content; passed with --config when set
		want string // exact stderr line without "helpcaster: config: " when starting with "=", else a substring
	}{
		{"udp port file", nil, nil, orgsYAML + "media:\n  udp_port: 70000\n", "=media.udp_port: 70000 is not a port (1-65535)"},
		{"udp port env", []string{"--dev"}, map[string]string{"HELPCASTER_MEDIA_UDP_PORT": "0"}, "", "=HELPCASTER_MEDIA_UDP_PORT: 0 is not a port (1-65535)"},
		{"udp port flag", []string{"--dev", "--media-udp-port", "x"}, nil, "", "=--media-udp-port: x is not a port (1-65535)"},
		{"tcp port file", nil, nil, orgsYAML + "media:\n  tcp_port: 65536\n", "=media.tcp_port: 65536 is not a port (1-65535, or 0 for off)"},
		{"tcp port env", []string{"--dev"}, map[string]string{"HELPCASTER_MEDIA_TCP_PORT": "-1"}, "", "=HELPCASTER_MEDIA_TCP_PORT: -1 is not a port (1-65535, or 0 for off)"},
		{"tcp port flag", []string{"--dev", "--media-tcp-port", "tcp"}, nil, "", "=--media-tcp-port: tcp is not a port (1-65535, or 0 for off)"},
		{"bad duration flag", []string{"--dev", "--ping-interval", "fast"}, nil, "", `--ping-interval: "fast" is not a duration`},
		{"bad duration env", []string{"--dev"}, map[string]string{"HELPCASTER_WRITE_TIMEOUT": "10"}, "", `HELPCASTER_WRITE_TIMEOUT: "10" is not a duration`},
		{"negative duration", []string{"--dev", "--shutdown-timeout", "-1s"}, nil, "", "must be positive"},
		{"zero ping", []string{"--dev", "--ping-interval", "0s"}, nil, "", "must be positive"},
		{"bad listen", []string{"--dev", "--listen", "localhost"}, nil, "", `--listen: "localhost" is not host:port`},
		{"bad listen port", []string{"--dev", "--listen", "127.0.0.1:99999"}, nil, "", "is not a port (0-65535)"},
		{"bad log format", []string{"--dev", "--log-format", "xml"}, nil, "", `"xml" is not one of text, json`},
		{"bad log level", []string{"--dev"}, map[string]string{"HELPCASTER_LOG_LEVEL": "loud"}, "", "HELPCASTER_LOG_LEVEL"},
		{"bad bool env", []string{"--dev"}, map[string]string{"HELPCASTER_MEDIA_LOOPBACK_ONLY": "maybe"}, "", "is not a boolean"},
		{"bad listen ip", []string{"--dev", "--media-listen-ip", "localhost"}, nil, "", `"localhost" is not an IP address`},
		{"bad public ip", []string{"--dev", "--media-public-ip", "1.2.3.4,nope"}, nil, "", `"nope" is not an IP address`},
		{"unspecified public ip", []string{"--dev", "--media-public-ip", "0.0.0.0"}, nil, "", "cannot be announced"},
		{"bad rate", []string{"--dev", "--messages-per-second", "0"}, nil, "", "out of range"},
		{"bad burst", []string{"--dev", "--message-burst", "many"}, nil, "", `"many" is not an integer`},
		{"small max message", []string{"--dev", "--max-message-bytes", "10"}, nil, "", "out of range"},
		{"bad public url", []string{"--dev", "--public-url", "ftp://x"}, nil, "", "is not an http(s) URL"},
		{"bad redis url", []string{"--dev", "--redis", "localhost:6379"}, nil, "", "--redis: not a Redis URL"},
		{"bad node id", []string{"--dev", "--node-id", "node one"}, nil, "", "--node-id:"},
		{"turn tls without cert", []string{"--dev", "--turn-tls-port", "5349"}, nil, "", "--turn-tls-port needs --tls-cert"},
		{"turn bad relay ports", []string{"--dev", "--turn-relay-ports", "5000-4000"}, nil, "", "is not a port range"},
		{"turn bad allow", []string{"--dev", "--turn-allow", "10.0.0.0/33"}, nil, "", "is not an address prefix"},
		{"turn bad external", []string{"--dev", "--turn-external", "stun:x.example"}, nil, "", "is not a turn: or turns: URL"},
		{"turn external without secret", []string{"--dev", "--turn-external", "turn:x.example:3478"}, nil, "", "needs the service's shared secret"},
		{"turn short secret", []string{"--dev", "--turn-secret", "short"}, nil, "", "at least 16 bytes"},
		{"turn credential ttl too long", []string{"--dev", "--turn-credential-ttl", "48h"}, nil, "", "is longer than 24h"},
		{"turn no relay ip", []string{"--dev", "--media-listen-ip", "0.0.0.0"}, nil, "", "give --turn-relay-ip"},
		{"token max lifetime too long", []string{"--dev", "--token-max-lifetime", "169h"}, nil, "", "=signaling: --token-max-lifetime 169h0m0s is longer than 168h0m0s"},
		{"token max lifetime zero", []string{"--dev"}, map[string]string{"HELPCASTER_TOKEN_MAX_LIFETIME": "0s"}, "", "=HELPCASTER_TOKEN_MAX_LIFETIME: 0s must be positive"},
		{"token max lifetime file", nil, nil, orgsYAML + "signaling:\n  token_max_lifetime: 10 years\n", `=signaling.token_max_lifetime: "10 years" is not a duration (like 15s, 500ms or 2m)`},
		{"zero resume grace", []string{"--dev", "--resume-grace", "0s"}, nil, "", "--resume-grace:"},
		{"redis url without host", []string{"--dev"}, map[string]string{"HELPCASTER_REDIS": "redis://"}, "", "HELPCASTER_REDIS: not a Redis URL"},
		{"tls cert without key", []string{"--dev", "--tls-cert", "cert.pem"}, nil, "", "--tls-cert and --tls-key must be given together"},
		{"tls key without cert", []string{"--dev"}, map[string]string{"HELPCASTER_TLS_KEY": "key.pem"}, "", "must be given together"},
		{"tls files missing", []string{"--dev", "--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}, nil, "", "cannot load certificate and key"},
		{"unknown flag", []string{"--dev", "--colour"}, nil, "", "flag provided but not defined"},
		{"positional", []string{"--dev", "extra"}, nil, "", `unexpected argument "extra"`},
		{"no orgs", nil, nil, "", "=no organizations configured; pass --dev for a demo organization or add orgs to the config file"},
		{"no orgs in file", nil, nil, "listen: 127.0.0.1:9000\n", "no organizations configured"},
		{"missing file", []string{"--config", "/nonexistent/helpcaster.yaml"}, nil, "", "read config file"},
		{"missing file env", nil, map[string]string{"HELPCASTER_CONFIG": "/nonexistent/helpcaster.yaml"}, "", "read config file"},
		{"yaml syntax", nil, nil, "listen: [\n", "invalid YAML"},
		{"yaml not mapping", nil, nil, "- a\n- b\n", "must be a mapping of settings"},
		{"two documents", nil, nil, orgsYAML + "---\nlisten: x\n", "more than one YAML document"},
		{"unknown key", nil, nil, orgsYAML + "lissen: 127.0.0.1:80\n", `unknown key "lissen"`},
		{"unknown nested key", nil, nil, orgsYAML + "media:\n  udp_prot: 7000\n", `unknown key "media.udp_prot"`},
		{"section not mapping", nil, nil, orgsYAML + "media: 7\n", "media must be a mapping"},
		{"duplicate key", nil, nil, orgsYAML + "listen: a:1\nlisten: b:2\n", `key "listen" appears twice`},
		{"duplicate nested key", nil, nil, orgsYAML + "log:\n  level: info\n  level: debug\n", `key "log.level" appears twice`},
		{"list for scalar", nil, nil, orgsYAML + "listen: [a, b]\n", "listen: must be a single value"},
		{"file bad duration", nil, nil, orgsYAML + "shutdown_timeout: soon\n", `shutdown_timeout: "soon" is not a duration`},
		{"dev clashes with file org", []string{"--dev"}, nil, strings.ReplaceAll(orgsYAML, "id: acme", "id: demo"), `org "demo": id is used by another organization`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve"}, tt.args...)
			if tt.file != "" {
				args = append(args, "--config", writeFile(t, tt.file))
			}
			// run would start the server on a valid configuration.
			if _, err := loadServeConfig(args[1:], envFunc(tt.env), &bytes.Buffer{}); err == nil {
				t.Fatal("configuration accepted; want an error")
			}
			var stdout, stderr bytes.Buffer
			code := run(args, envFunc(tt.env), &stdout, &stderr)
			if code != 2 {
				t.Fatalf("exit code %d; want 2 (stderr %q)", code, stderr.String())
			}
			out := stderr.String()
			if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
				t.Fatalf("stderr is not one line: %q", out)
			}
			line := strings.TrimSuffix(out, "\n")
			if !strings.HasPrefix(line, "helpcaster: config: ") {
				t.Fatalf("stderr %q does not start with %q", line, "helpcaster: config: ")
			}
			if want, exact := strings.CutPrefix(tt.want, "="); exact {
				if got := strings.TrimPrefix(line, "helpcaster: config: "); got != want {
					t.Fatalf("stderr %q; want %q", got, want)
				}
			} else if !strings.Contains(line, tt.want) {
				t.Fatalf("stderr %q does not contain %q", line, tt.want)
			}
			if strings.Contains(line, testSecret) {
				t.Errorf("stderr echoes the secret: %q", line)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q; want nothing", stdout.String())
			}
		})
	}
}

func TestServeHelp(t *testing.T) {
	names := []string{"HELPCASTER_CONFIG"}
	for _, s := range settings(&Config{}) {
		names = append(names, s.env(), "--"+s.flag, s.yaml)
		if s.def != "" {
			names = append(names, fmt.Sprintf("(default %q)", s.def))
		}
	}
	tests := []struct {
		name     string
		args     []string
		toStdout bool
	}{
		{"--help", []string{"serve", "--help"}, false},
		{"-h", []string{"serve", "-h"}, false},
		{"help serve", []string{"help", "serve"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, envFunc(nil), &stdout, &stderr); code != 0 {
				t.Fatalf("exit code %d; want 0 (stderr %q)", code, stderr.String())
			}
			out := stderr.String()
			if tt.toStdout {
				out = stdout.String()
			}
			for _, n := range names {
				if !strings.Contains(out, n) {
					t.Errorf("help does not mention %s", n)
				}
			}
		})
	}
	if _, err := loadServeConfig([]string{"--help"}, envFunc(nil), &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("loadServeConfig(--help) error %v; want flag.ErrHelp", err)
	}
}

func TestDevOrg(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		publicURL string
		origins   []string
	}{
		{"default listen", nil, "http://127.0.0.1:8080", []string{"http://127.0.0.1:8080", "http://localhost:8080"}},
		{"localhost", []string{"--listen", "localhost:9000"}, "http://localhost:9000", []string{"http://localhost:9000", "http://127.0.0.1:9000"}},
		{"all interfaces", []string{"--listen", "0.0.0.0:9000"}, "http://localhost:9000", []string{"http://localhost:9000", "http://127.0.0.1:9000", "http://[::1]:9000"}},
		{"public url", []string{"--public-url", "https://Help.Example.com/"}, "https://Help.Example.com", []string{"https://help.example.com", "http://127.0.0.1:8080", "http://localhost:8080"}},
		{"specific ip", []string{"--listen", "192.0.2.7:80"}, "http://192.0.2.7:80", []string{"http://192.0.2.7:80"}},
		{"port 0", []string{"--listen", "127.0.0.1:0"}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadServeConfig(append([]string{"--dev"}, tt.args...), envFunc(nil), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if !cfg.Dev || cfg.DevOrgID != "demo" || len(cfg.Orgs) != 1 {
				t.Fatalf("dev config %+v", cfg)
			}
			o := cfg.Orgs[0]
			if o.ID != "demo" || o.APIKey != "demo-key" || len(o.APISecret) != 64 || len(o.Queues) != 1 || o.Queues[0].Name != "support" {
				t.Errorf("demo org %+v", o)
			}
			if cfg.PublicURL != tt.publicURL {
				t.Errorf("PublicURL %q; want %q", cfg.PublicURL, tt.publicURL)
			}
			for _, origin := range tt.origins {
				if !(&o).AllowsOrigin(origin) {
					t.Errorf("origin %s not allowed; origins %v", origin, o.Origins)
				}
			}
			if (&o).AllowsOrigin("https://evil.example") {
				t.Errorf("foreign origin allowed; origins %v", o.Origins)
			}
		})
	}
	// Two --dev starts get different secrets.
	a, _ := loadServeConfig([]string{"--dev"}, envFunc(nil), &bytes.Buffer{})
	b, _ := loadServeConfig([]string{"--dev"}, envFunc(nil), &bytes.Buffer{})
	if bytes.Equal(a.Orgs[0].APISecret, b.Orgs[0].APISecret) {
		t.Error("dev secret is not random")
	}
	// After binding port 0 the lead reports the real address.
	cfg, err := loadServeConfig([]string{"--dev", "--listen", "127.0.0.1:0"}, envFunc(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetListenAddr("127.0.0.1:43210")
	if cfg.PublicURL != "http://127.0.0.1:43210" || !(&cfg.Orgs[0]).AllowsOrigin("http://localhost:43210") {
		t.Errorf("after SetListenAddr: %q %v", cfg.PublicURL, cfg.Orgs[0].Origins)
	}
}

// TestRedisURLErrorHidesPassword: a rejected Redis URL is not repeated in
// the error, since it may carry a password.
func TestRedisURLErrorHidesPassword(t *testing.T) {
	_, err := loadServeConfig([]string{"--dev", "--redis", "http://user:hunter2@cache:6379"}, envFunc(nil), &bytes.Buffer{})
	if err == nil {
		t.Fatal("an http URL was accepted as a Redis URL")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error repeats the password: %v", err)
	}
}
