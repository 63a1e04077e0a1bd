package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBenchFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "s.yaml")
	yaml := "scenario: support\nurl: [ws://a:7880, 'ws://b:7880/v1/signal']\norg: acme\nsecret-env: ACME\ncalls: 7\nduration: 90s\nsimulcast: true\nbitrate: 1.2M\nmax-loss: 0.5\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(k string) string {
		if k == "ACME" {
			return "s3cret-s3cret-s3cret-s3cret-s3cret"
		}
		return ""
	}
	// Flags after the file override it.
	o, err := parseBench([]string{file, "--calls", "9", "--json", "-", "--quiet", "--record"}, env, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Scenario != "support" || c.Calls != 9 || c.Duration != 90*time.Second || !c.Simulcast || c.Bitrate != 1_200_000 ||
		c.Objectives.MaxLossPct != 0.5 || string(c.Secret) != env("ACME") || len(c.URLs) != 2 || o.jsonPath != "" || !c.Record ||
		!strings.HasPrefix(o.html, "bench-support-") {
		t.Errorf("config from file and flags: %+v (json %q, html %q)", c, o.jsonPath, o.html)
	}

	// The queue accounting's keys.
	qfile := writeFile(t, "scenario: queue\ncustomer-url: [ws://a:1, ws://b:1]\nagent-url: ws://c:1\ndemo: true\nhold: 500ms\n"+
		"hold-jitter: 1s\nresume: 0.1\nresume-in-call: 0.05\nsettle: 45s\nseed: 9\n")
	o, err = parseBench([]string{qfile, "--json", "-", "--html", "-", "--quiet"}, env, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c := o.cfg; len(c.CustomerURLs) != 2 || len(c.AgentURLs) != 1 || c.Hold != 500*time.Millisecond || c.HoldJitter != time.Second ||
		c.Resume != 0.1 || c.ResumeInCall != 0.05 || c.Settle != 45*time.Second || c.Seed != 9 {
		t.Errorf("queue config from file: %+v", c)
	}

	bad := map[string][]string{
		"no scenario":       {},
		"unknown flag":      {"support", "--nope", "1"},
		"no org":            {"support", "--url", "ws://a:1"},
		"bad bitrate":       {"support", "--demo", "--bitrate", "fast"},
		"resume > 1":        {"queue", "--demo", "--url", "ws://a:1", "--resume", "2", "--json", "-", "--html", "-", "--quiet"},
		"broadcast, 2 urls": {"broadcast", "--demo", "--url", "ws://a:1,ws://b:1", "--json", "-", "--html", "-", "--quiet"},
		"record a queue":    {"queue", "--demo", "--url", "ws://a:1", "--record", "--json", "-", "--html", "-", "--quiet"},
		"record broadcast":  {"broadcast", "--demo", "--url", "ws://a:1", "--record", "--json", "-", "--html", "-", "--quiet"},
		"secret in file":    {writeFile(t, "scenario: support\nsecret: abc\n")},
		"file w/o name":     {writeFile(t, "calls: 3\n")},
		"nested in file":    {writeFile(t, "scenario: support\nurl: {a: b}\n")},
		"unknown in file":   {writeFile(t, "scenario: support\ncallz: 3\n")},
	}
	for name, args := range bad {
		var stderr bytes.Buffer
		if code := run(append([]string{"bench"}, args...), env, &bytes.Buffer{}, &stderr); code != 2 {
			t.Errorf("%s: exit %d, want 2 (%s)", name, code, stderr.String())
		}
	}
}

// TestBenchBitrate: --bitrate goes above the simulcast layers' 1200k, and
// the help says which rates exist.
func TestBenchBitrate(t *testing.T) {
	for arg, want := range map[string]int{"2500k": 2_500_000, "1.8M": 1_800_000, "2500000": 2_500_000} {
		o, err := parseBench([]string{"support", "--demo", "--bitrate", arg, "--json", "-", "--html", "-", "--quiet"}, os.Getenv, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if o.cfg.Bitrate != want {
			t.Errorf("--bitrate %s: %d bit/s, want %d", arg, o.cfg.Bitrate, want)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"bench", "support", "--help"}, os.Getenv, &bytes.Buffer{}, &stderr); code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, rate := range []string{"150k", "500k", "1200k", "1800k", "2500k"} {
		if !strings.Contains(stderr.String(), rate) {
			t.Errorf("help does not name the %s layer:\n%s", rate, stderr.String())
		}
	}
}

// TestBenchExitCode: a run whose objective is missed exits 1 (here every
// client fails to connect: nothing listens on the port).
func TestBenchExitCode(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "queue", "--url", "ws://127.0.0.1:1", "--demo", "--customers", "3", "--agents", "1",
		"--duration", "10s", "--ramp", "0", "--max-failures", "0", "--json", "-", "--html", "-", "--quiet"}
	if code := run(args, os.Getenv, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "objective max-failures") || !strings.Contains(stdout.String(), "MISSED") {
		t.Errorf("table does not show the missed objective:\n%s", stdout.String())
	}
}
