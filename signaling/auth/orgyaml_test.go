package auth

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const yamlSecret = "acme-secret-0123456789abcdef0123456789"

// orgYAML is an orgs section of one org "a" with a secret, followed by
// rest.
func orgYAML(rest string) string {
	return "orgs:\n  - id: a\n    api_key: k\n    api_secret: " + yamlSecret + "\n" + rest
}

// parseOrgsYAML reads the orgs section of doc, a config file, with
// ParseOrgs. Line numbers count from the top of doc, as in the file.
func parseOrgsYAML(t *testing.T, doc string, env map[string]string) ([]Org, error) {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatalf("test YAML: %v\n%s", err, doc)
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "orgs" {
			return ParseOrgs(m.Content[i+1], func(k string) string { return env[k] })
		}
	}
	t.Fatalf("test YAML has no orgs:\n%s", doc)
	return nil, nil
}

// yamlDirectory builds a Directory from the orgs section of doc.
func yamlDirectory(t *testing.T, doc string, env map[string]string) *Directory {
	t.Helper()
	orgs, err := parseOrgsYAML(t, doc, env)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := NewDirectory(orgs)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// routingYAML is an org whose first queue "q" has the given extra line;
// a second queue "other" exists.
func routingYAML(line string) string {
	return "orgs:\n  - id: a\n    api_key: k\n    api_secret: " + yamlSecret +
		"\n    queues:\n      - name: q\n        " + line + "\n      - other\n"
}

func TestParseOrgs(t *testing.T) {
	doc := `
listen: 127.0.0.1:9000
orgs:
  - id: acme
    api_key: acme-key
    api_secret: ` + yamlSecret + `
    origins:
      - https://shop.acme.example
      - https://*.acme.example
    queues:
      - name: support
      - {name: sales, max_length: 5}
  - id: globex
    api_key: globex-key
    api_secret_env: GLOBEX_SECRET
    origins: [&o "https://globex.example"]
    queues: [help]
`
	env := map[string]string{"GLOBEX_SECRET": "globex-secret-0123456789abcdef0123456789"}
	dir := yamlDirectory(t, doc, env)
	tests := []struct {
		id, key, secret string
		origins         []string
		queues          []Queue
	}{
		{"acme", "acme-key", yamlSecret, []string{"https://shop.acme.example", "https://*.acme.example"},
			[]Queue{{Name: "support", MaxLength: 100}, {Name: "sales", MaxLength: 5}}},
		{"globex", "globex-key", env["GLOBEX_SECRET"], []string{"https://globex.example"}, []Queue{{Name: "help", MaxLength: 100}}},
	}
	for _, tt := range tests {
		o, ok := dir.Org(tt.id)
		if !ok {
			t.Errorf("org %s missing", tt.id)
			continue
		}
		if o.APIKey != tt.key || string(o.APISecret) != tt.secret || !slices.Equal(o.Origins, tt.origins) || !slices.Equal(o.Queues, tt.queues) {
			t.Errorf("org %s = %+v", tt.id, o)
		}
	}
	// An empty or null orgs section is no organizations.
	for _, doc := range []string{"orgs:\n", "orgs: null\n"} {
		if orgs, err := parseOrgsYAML(t, doc, nil); err != nil || orgs != nil {
			t.Errorf("%q: %v, %v; want none", doc, orgs, err)
		}
	}
}

func TestParseOrgsRouting(t *testing.T) {
	doc := `
orgs:
  - id: acme
    api_key: acme-key
    api_secret: ` + yamlSecret + `
    queues:
      - name: support
        max_length: 50
        offer_timeout: 20s
        record: consent
        overflow: {after: 5m, to: general}
        priority:
          - {attr: tier, value: gold, priority: 10}
        match:
          - attr: language
            min_level: 3
            widen:
              - {after: 30s, min_level: 1}
              - {after: 60s, min_level: 0}
          - {attr: product, skill: products}
      - general
`
	o, _ := yamlDirectory(t, doc, nil).Org("acme")
	q, ok := o.Queue("support")
	if !ok || q.MaxLength != 50 || q.OfferTimeout != 20*time.Second || q.Overflow != (Overflow{After: 5 * time.Minute, To: "general"}) ||
		q.Record != RecordConsent {
		t.Fatalf("queue = %+v", q)
	}
	want := `[{"a":"language","s":"language","st":[[0,3],[30000,1],[60000,0]]},{"a":"product","s":"products","st":[[0,1]]}]`
	if got := q.Policy.Encoded(); got != want {
		t.Errorf("match rules = %s, want %s", got, want)
	}
	if q.Policy.Priority(map[string]string{"tier": "gold"}) != 10 {
		t.Errorf("priority rules = %+v", q.Policy.Priorities)
	}
	if g, _ := o.Queue("general"); g.Policy != nil || g.OfferTimeout != 0 || g.Overflow != (Overflow{}) || g.Record != RecordOff {
		t.Errorf("general = %+v, want no rules", g)
	}
}

// TestParseOrgsErrors pins whole error messages: those of ParseOrgs, which
// name the line and the YAML path, and, for a form ParseOrgs accepts, those
// of NewDirectory.
func TestParseOrgsErrors(t *testing.T) {
	// yaml names the type it decodes into; see queueRules.
	const matchType = `struct { Attr string "yaml:\"attr\""; Skill string "yaml:\"skill\""; MinLevel *int "yaml:\"min_level\""; Widen []struct { After string "yaml:\"after\""; MinLevel *int "yaml:\"min_level\"" } "yaml:\"widen\"" }`
	tests := []struct {
		name, doc string
		env       map[string]string
		want      string
	}{
		{"orgs not list", "orgs: acme\n", nil, "line 1: orgs must be a list"},
		{"org not mapping", "orgs: [acme]\n", nil, "line 1: orgs[0] must be a mapping"},
		{"org key not plain", "orgs:\n  - {[x]: 1}\n", nil, "line 2: keys must be plain names"},
		{"duplicate org key", orgYAML("    queues: [q]\n    id: other\n"), nil, `line 6: key "orgs[0].id" appears twice`},
		{"unknown org key", orgYAML("    queues: [q]\n    colour: red\n"), nil, `line 6: unknown key "orgs[0].colour"`},
		{"id list", "orgs:\n  - id: [a, b]\n", nil, "line 2: orgs[0].id: must be a single value, not a list"},
		{"origins mapping", orgYAML("    origins: {a: b}\n    queues: [q]\n"), nil, "line 5: orgs[0].origins: must be a list"},
		{"origins item list", orgYAML("    origins: [[a]]\n    queues: [q]\n"), nil, "line 5: orgs[0].origins: list items must be single values"},
		{"queues not list", orgYAML("    queues: q\n"), nil, "line 5: orgs[0].queues: must be a list of {name, max_length}"},
		{"queue item list", orgYAML("    queues: [[q]]\n"), nil, "line 5: orgs[0].queues[0]: must be a mapping {name, max_length} or a name"},
		{"unknown queue key", orgYAML("    queues: [{name: q, size: 3}]\n"), nil, `line 5: unknown key "orgs[0].queues[0].size"`},
		{"duplicate queue key", orgYAML("    queues:\n      - name: q\n        name: r\n"), nil, `line 7: key "orgs[0].queues[0].name" appears twice`},
		{"bad max_length", orgYAML("    queues: [{name: q, max_length: lots}]\n"), nil, `line 5: orgs[0].queues[0].max_length: "lots" is not an integer`},
		{"max_length out of range", orgYAML("    queues: [{name: q, max_length: 2000000}]\n"), nil, "line 5: orgs[0].queues[0].max_length: 2000000 is out of range (0-1000000)"},
		{"name list", orgYAML("    queues: [{name: [q]}]\n"), nil, "line 5: orgs[0].queues[0].name: must be a single value, not a list"},
		{"bad offer timeout value", orgYAML("    queues: [{name: q, offer_timeout: soon}]\n"), nil, `line 5: orgs[0].queues[0].offer_timeout: "soon" is not a duration (like 15s, 500ms or 2m)`},
		{"bad record policy", orgYAML("    queues: [{name: q, record: yes}]\n"), nil, "line 5: orgs[0].queues[0].record: must be off, always or consent"},
		{"negative offer timeout", orgYAML("    queues: [{name: q, offer_timeout: -1s}]\n"), nil, "line 5: orgs[0].queues[0].offer_timeout: -1s must be positive"},
		{"unknown match key", routingYAML("match: [{attr: language, level: 3}]"), nil, "line 7: orgs[0].queues[0].match: field level not found in type " + matchType},
		{"match not a list", routingYAML("match: language"), nil, "line 7: orgs[0].queues[0].match: cannot unmarshal !!str `language` into []" + matchType},
		{"bad widen duration", routingYAML("match: [{attr: language, widen: [{after: soon, min_level: 0}]}]"), nil, `line 6: orgs[0].queues[0]: match[0].widen[0].after: "soon" is not a duration (like 15s, 500ms or 2m)`},
		{"widen without level", routingYAML("match: [{attr: language, widen: [{after: 1m}]}]"), nil, "line 6: orgs[0].queues[0]: match[0].widen[0]: min_level is required (0 means any agent)"},
		{"priority not a number", routingYAML("priority: [{attr: tier, value: gold, priority: high}]"), nil, "line 7: orgs[0].queues[0].priority: cannot unmarshal !!str `high` into int"},
		{"overflow unknown key", routingYAML("overflow: {after: 1m, into: other}"), nil, `line 7: orgs[0].queues[0].overflow: field into not found in type struct { After string "yaml:\"after\""; To string "yaml:\"to\"" }`},
		{"overflow bad after", routingYAML("overflow: {after: -1m, to: q}"), nil, "line 6: orgs[0].queues[0]: overflow.after: -1m must be positive"},
		{"overflow no after", routingYAML("overflow: {to: other}"), nil, `line 6: orgs[0].queues[0]: overflow.after: "" is not a duration (like 15s, 500ms or 2m)`},
		{"secret env unset", "orgs:\n  - id: acme\n    api_key: k\n    api_secret_env: ACME_SECRET\n    queues: [q]\n", nil, "line 2: orgs[0] (acme): api_secret_env: environment variable ACME_SECRET is empty or unset"},
		{"secret and secret env", "orgs:\n  - id: acme\n    api_key: k\n    api_secret: x\n    api_secret_env: S\n    queues: [q]\n", map[string]string{"S": yamlSecret}, "line 2: orgs[0] (acme): give api_secret or api_secret_env, not both"},
		{"no secret", "orgs:\n  - id: acme\n    api_key: k\n    queues: [q]\n", nil, "line 2: orgs[0] (acme): api_secret or api_secret_env is required"},
		{"no secret no id", "orgs:\n  - api_key: k\n    queues: [q]\n", nil, "line 2: orgs[0]: api_secret or api_secret_env is required"},
		{"secret env list", "orgs:\n  - id: acme\n    api_secret_env: [A]\n", nil, "line 3: orgs[0].api_secret_env: must be a single value, not a list"},

		// Parsed, then refused by NewDirectory.
		{"widen raises level", routingYAML("match: [{attr: language, min_level: 1, widen: [{after: 1m, min_level: 3}]}]"), nil, `org "a": queue "q" routing: match rule 1: step 2 raises the level; steps may only widen the match`},
		{"overflow unknown queue", routingYAML("overflow: {after: 1m, to: nowhere}"), nil, `org "a": queue "q" overflows into "nowhere", which the organization does not have`},
		{"bad offer timeout", routingYAML("offer_timeout: 1h"), nil, `org "a": queue "q" offer timeout 1h0m0s is out of range (0 for none, or whole seconds from 1s to 5m0s)`},
		{"short secret", "orgs:\n  - id: acme\n    api_key: k\n    api_secret: short\n    queues: [q]\n", nil, `org "acme": api secret is 5 bytes; it must be at least 32`},
		{"bad org id", "orgs:\n  - id: Acme Inc\n    api_key: k\n    api_secret: " + yamlSecret + "\n    queues: [q]\n", nil, `org "Acme Inc": id: "Acme Inc" is invalid; use lower-case letters, digits, '-' and '_', starting with a letter or digit`},
		{"no queues", "orgs:\n  - id: acme\n    api_key: k\n    api_secret: " + yamlSecret + "\n", nil, `org "acme": no queues; at least one is required`},
		{"bad origin", "orgs:\n  - id: acme\n    api_key: k\n    api_secret: " + yamlSecret + "\n    origins: [shop.example.com]\n    queues: [q]\n", nil, `org "acme": origin "shop.example.com": must look like "https://host[:port]"`},
		{"duplicate org", orgYAML("    queues: [q]\n  - {id: a, api_key: k2, api_secret: " + yamlSecret + ", queues: [q]}\n"), nil, `org "a": id is used by another organization`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orgs, err := parseOrgsYAML(t, tt.doc, tt.env)
			if err == nil {
				_, err = NewDirectory(orgs)
			}
			if err == nil {
				t.Fatalf("accepted; want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n%q\nwant\n%q", err, tt.want)
			}
			if strings.Contains(err.Error(), yamlSecret) {
				t.Errorf("the error echoes the secret")
			}
		})
	}
}

// FuzzParseOrgs feeds ParseOrgs any YAML: it returns organizations or an
// error that starts with the line, and never panics.
func FuzzParseOrgs(f *testing.F) {
	f.Add(orgYAML("    origins: [\"https://shop.acme.example\"]\n    queues: [{name: support}, sales]\n"))
	f.Add(routingYAML("match: [{attr: language, min_level: 1, widen: [{after: 1m, min_level: 0}]}]"))
	f.Add(routingYAML("overflow: {after: 1m, to: other}"))
	f.Add("orgs: [&a {id: x, queues: [*a]}]\n")
	f.Fuzz(func(t *testing.T, doc string) {
		var root yaml.Node
		if yaml.Unmarshal([]byte(doc), &root) != nil || len(root.Content) == 0 {
			return
		}
		orgs, err := ParseOrgs(root.Content[0], func(string) string { return "env-secret-0123456789abcdef0123456789" })
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Errorf("error %q does not start with the line", err)
			}
			return
		}
		_, _ = NewDirectory(orgs)
	})
}
