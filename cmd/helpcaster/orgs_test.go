package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestOrgErrorLines: errors in the orgs section reach stderr whole, as one
// line: those of the YAML form (signaling/auth's ParseOrgs, whose own tests
// pin every message) after the file's path ("FILE" here), and those of
// auth.NewDirectory after "orgs: ".
func TestOrgErrorLines(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{"bad max_length", "orgs:\n  - id: a\n    api_key: k\n    api_secret: " + testSecret + "\n    queues: [{name: q, max_length: lots}]\n", nil,
			`FILE: line 5: orgs[0].queues[0].max_length: "lots" is not an integer`},
		{"secret env unset", "orgs:\n  - id: acme\n    api_key: k\n    api_secret_env: ACME_SECRET\n    queues: [q]\n", map[string]string{"OTHER": testSecret},
			"FILE: line 2: orgs[0] (acme): api_secret_env: environment variable ACME_SECRET is empty or unset"},
		{"short secret", "orgs:\n  - id: acme\n    api_key: k\n    api_secret: short\n    queues: [q]\n", nil,
			`orgs: org "acme": api secret is 5 bytes; it must be at least 32`},
		{"widen raises level", "orgs:\n  - id: a\n    api_key: k\n    api_secret: " + testSecret + "\n    queues:\n      - name: q\n        match: [{attr: language, min_level: 1, widen: [{after: 1m, min_level: 3}]}]\n", nil,
			`orgs: org "a": queue "q" routing: match rule 1: step 2 raises the level; steps may only widen the match`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.file)
			var stdout, stderr bytes.Buffer
			if code := run([]string{"serve", "--config", path}, envFunc(tt.env), &stdout, &stderr); code != 2 {
				t.Fatalf("exit code %d; want 2 (stderr %q)", code, stderr.String())
			}
			want := "helpcaster: config: " + strings.ReplaceAll(tt.want, "FILE", path) + "\n"
			if got := stderr.String(); got != want {
				t.Errorf("stderr\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// TestServeHelpOrgsExample: the orgs example that serve --help prints is a
// config file the server accepts, so it stays in step with auth.ParseOrgs.
func TestServeHelpOrgsExample(t *testing.T) {
	var help bytes.Buffer
	printServeUsage(&help, settings(&Config{}))
	_, example, ok := strings.Cut(help.String(), "Organizations in the config file:\n")
	if !ok {
		t.Fatal("help has no orgs example")
	}
	cfg, err := loadServeConfig([]string{"--config", writeFile(t, example)}, envFunc(map[string]string{"ACME_SECRET": testSecret}), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("the example is refused: %v\n%s", err, example)
	}
	if len(cfg.Orgs) != 1 || len(cfg.Orgs[0].Queues) != 2 || cfg.Orgs[0].Queues[0].Policy == nil {
		t.Errorf("orgs %+v", cfg.Orgs)
	}
}
