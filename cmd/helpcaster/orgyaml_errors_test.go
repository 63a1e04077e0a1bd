package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestOrgYAMLErrorMessages pins whole error lines about the orgs section
// of the config file, with their line numbers and YAML paths, as a user
// sees them on stderr ("FILE" stands for the file's path).
func TestOrgYAMLErrorMessages(t *testing.T) {
	org := func(rest string) string {
		return "orgs:\n  - id: a\n    api_key: k\n    api_secret: " + testSecret + "\n" + rest
	}
	const matchType = `struct { Attr string "yaml:\"attr\""; Skill string "yaml:\"skill\""; MinLevel *int "yaml:\"min_level\""; Widen []struct { After string "yaml:\"after\""; MinLevel *int "yaml:\"min_level\"" } "yaml:\"widen\"" }`
	tests := []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{"orgs not list", "orgs: acme\n", nil, "FILE: line 1: orgs must be a list"},
		{"org not mapping", "orgs: [acme]\n", nil, "FILE: line 1: orgs[0] must be a mapping"},
		{"org key not plain", "orgs:\n  - {[x]: 1}\n", nil, "FILE: line 2: keys must be plain names"},
		{"duplicate org key", orgsYAML + "    id: other\n", nil, `FILE: line 8: key "orgs[0].id" appears twice`},
		{"unknown org key", orgsYAML + "    colour: red\n", nil, `FILE: line 8: unknown key "orgs[0].colour"`},
		{"id list", "orgs:\n  - id: [a, b]\n", nil, "FILE: line 2: orgs[0].id: must be a single value, not a list"},
		{"origins mapping", org("    origins: {a: b}\n    queues: [q]\n"), nil, "FILE: line 5: orgs[0].origins: must be a list"},
		{"origins item list", org("    origins: [[a]]\n    queues: [q]\n"), nil, "FILE: line 5: orgs[0].origins: list items must be single values"},
		{"queues not list", org("    queues: q\n"), nil, "FILE: line 5: orgs[0].queues: must be a list of {name, max_length}"},
		{"queue item list", org("    queues: [[q]]\n"), nil, "FILE: line 5: orgs[0].queues[0]: must be a mapping {name, max_length} or a name"},
		{"unknown queue key", org("    queues: [{name: q, size: 3}]\n"), nil, `FILE: line 5: unknown key "orgs[0].queues[0].size"`},
		{"duplicate queue key", org("    queues:\n      - name: q\n        name: r\n"), nil, `FILE: line 7: key "orgs[0].queues[0].name" appears twice`},
		{"bad max_length", org("    queues: [{name: q, max_length: lots}]\n"), nil, `FILE: line 5: orgs[0].queues[0].max_length: "lots" is not an integer`},
		{"max_length out of range", org("    queues: [{name: q, max_length: 2000000}]\n"), nil, "FILE: line 5: orgs[0].queues[0].max_length: 2000000 is out of range (0-1000000)"},
		{"name list", org("    queues: [{name: [q]}]\n"), nil, "FILE: line 5: orgs[0].queues[0].name: must be a single value, not a list"},
		{"bad offer timeout value", org("    queues: [{name: q, offer_timeout: soon}]\n"), nil, `FILE: line 5: orgs[0].queues[0].offer_timeout: "soon" is not a duration (like 15s, 500ms or 2m)`},
		{"negative offer timeout", org("    queues: [{name: q, offer_timeout: -1s}]\n"), nil, "FILE: line 5: orgs[0].queues[0].offer_timeout: -1s must be positive"},
		{"unknown match key", routingYAML("match: [{attr: language, level: 3}]"), nil, "FILE: line 7: orgs[0].queues[0].match: field level not found in type " + matchType},
		{"match not a list", routingYAML("match: language"), nil, "FILE: line 7: orgs[0].queues[0].match: cannot unmarshal !!str `language` into []" + matchType},
		{"bad widen duration", routingYAML("match: [{attr: language, widen: [{after: soon, min_level: 0}]}]"), nil, `FILE: line 6: orgs[0].queues[0]: match[0].widen[0].after: "soon" is not a duration (like 15s, 500ms or 2m)`},
		{"widen without level", routingYAML("match: [{attr: language, widen: [{after: 1m}]}]"), nil, "FILE: line 6: orgs[0].queues[0]: match[0].widen[0]: min_level is required (0 means any agent)"},
		{"widen raises level", routingYAML("match: [{attr: language, min_level: 1, widen: [{after: 1m, min_level: 3}]}]"), nil, `orgs: org "a": queue "q" routing: match rule 1: step 2 raises the level; steps may only widen the match`},
		{"priority not a number", routingYAML("priority: [{attr: tier, value: gold, priority: high}]"), nil, "FILE: line 7: orgs[0].queues[0].priority: cannot unmarshal !!str `high` into int"},
		{"overflow unknown key", routingYAML("overflow: {after: 1m, into: other}"), nil, `FILE: line 7: orgs[0].queues[0].overflow: field into not found in type struct { After string "yaml:\"after\""; To string "yaml:\"to\"" }`},
		{"overflow unknown queue", routingYAML("overflow: {after: 1m, to: nowhere}"), nil, `orgs: org "a": queue "q" overflows into "nowhere", which the organization does not have`},
		{"overflow bad after", routingYAML("overflow: {after: -1m, to: q}"), nil, "FILE: line 6: orgs[0].queues[0]: overflow.after: -1m must be positive"},
		{"overflow no after", routingYAML("overflow: {to: other}"), nil, `FILE: line 6: orgs[0].queues[0]: overflow.after: "" is not a duration (like 15s, 500ms or 2m)`},
		{"bad offer timeout", routingYAML("offer_timeout: 1h"), nil, `orgs: org "a": queue "q" offer timeout 1h0m0s is out of range (0 for none, or whole seconds from 1s to 5m0s)`},
		{"short secret", "orgs:\n  - id: acme\n    api_key: k\n    api_secret: short\n    queues: [q]\n", nil, `orgs: org "acme": api secret is 5 bytes; it must be at least 32`},
		{"bad org id", "orgs:\n  - id: Acme Inc\n    api_key: k\n    api_secret: " + testSecret + "\n    queues: [q]\n", nil, `orgs: org "Acme Inc": id: "Acme Inc" is invalid; use lower-case letters, digits, '-' and '_', starting with a letter or digit`},
		{"no queues", "orgs:\n  - id: acme\n    api_key: k\n    api_secret: " + testSecret + "\n", nil, `orgs: org "acme": no queues; at least one is required`},
		{"bad origin", "orgs:\n  - id: acme\n    api_key: k\n    api_secret: " + testSecret + "\n    origins: [shop.example.com]\n    queues: [q]\n", nil, `orgs: org "acme": origin "shop.example.com": must look like "https://host[:port]"`},
		{"secret env unset", "orgs:\n  - id: acme\n    api_key: k\n    api_secret_env: ACME_SECRET\n    queues: [q]\n", nil, "FILE: line 2: orgs[0] (acme): api_secret_env: environment variable ACME_SECRET is empty or unset"},
		{"secret and secret env", "orgs:\n  - id: acme\n    api_key: k\n    api_secret: x\n    api_secret_env: S\n    queues: [q]\n", map[string]string{"S": testSecret}, "FILE: line 2: orgs[0] (acme): give api_secret or api_secret_env, not both"},
		{"no secret", "orgs:\n  - id: acme\n    api_key: k\n    queues: [q]\n", nil, "FILE: line 2: orgs[0] (acme): api_secret or api_secret_env is required"},
		{"no secret no id", "orgs:\n  - api_key: k\n    queues: [q]\n", nil, "FILE: line 2: orgs[0]: api_secret or api_secret_env is required"},
		{"secret env list", "orgs:\n  - id: acme\n    api_secret_env: [A]\n", nil, "FILE: line 3: orgs[0].api_secret_env: must be a single value, not a list"},
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
