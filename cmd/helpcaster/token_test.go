package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

func TestToken(t *testing.T) {
	dir, err := auth.NewDirectory([]auth.Org{{
		ID: "acme", APIKey: "acme-key", APISecret: []byte(testSecret),
		Queues: []auth.Queue{{Name: "support"}, {Name: "sales"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	configPath := writeFile(t, strings.Replace(orgsYAML, "[{name: support}]", "[support, sales]", 1))
	env := envFunc(map[string]string{"ACME_SECRET": testSecret})
	tests := []struct {
		name string
		args []string
		role string
	}{
		{"secret env", []string{"--org", "acme", "--key", "acme-key", "--secret-env", "ACME_SECRET", "--sub", "visitor-1", "--name", "Ada", "--queue", "sales", "--attr", "language=en", "--attr", "tier=gold"}, protocol.RoleCustomer},
		{"secret flag no key", []string{"--org", "acme", "--secret", testSecret, "--sub", "agent-1", "--role", "agent", "--ttl", "5m"}, protocol.RoleAgent},
		{"config file", []string{"--org", "acme", "--config", configPath, "--sub", "visitor-2", "--queue", "sales"}, protocol.RoleCustomer},
		{"agent skills", []string{"--org", "acme", "--secret-env", "ACME_SECRET", "--sub", "agent-2", "--role", "agent",
			"--skill", "language=de:3", "--skill", "language=en:1", "--skill", "product=billing:2", "--capacity", "2"}, protocol.RoleAgent},
		{"supervisor", []string{"--org", "acme", "--secret-env", "ACME_SECRET", "--sub", "sup-1", "--role", "supervisor"}, protocol.RoleSupervisor},
	}
	v := &auth.Verifier{Dir: dir}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append([]string{"token"}, tt.args...), env, &stdout, &stderr); code != 0 {
				t.Fatalf("exit code %d: %s", code, stderr.String())
			}
			tok, ok := strings.CutSuffix(stdout.String(), "\n")
			if !ok || strings.Contains(tok, "\n") {
				t.Fatalf("stdout %q is not one line", stdout.String())
			}
			c, org, err := v.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if org.ID != "acme" || c.Role != tt.role || c.ExpiresAt == nil {
				t.Errorf("claims %+v", c)
			}
			if tt.name == "agent skills" && (c.Skills["language"]["de"] != 3 || c.Skills["language"]["en"] != 1 ||
				c.Skills["product"]["billing"] != 2 || c.Capacity != 2) {
				t.Errorf("skills %v capacity %d", c.Skills, c.Capacity)
			}
		})
	}

	errTests := []struct {
		name string
		args []string
		want string
	}{
		{"no org", []string{"--secret-env", "ACME_SECRET", "--sub", "x"}, "--org is required"},
		{"no sub", []string{"--org", "acme", "--secret-env", "ACME_SECRET"}, "--sub is required"},
		{"no secret", []string{"--org", "acme", "--sub", "x"}, "a secret is required"},
		{"secret env unset", []string{"--org", "acme", "--secret-env", "NOPE", "--sub", "x"}, "NOPE is empty or unset"},
		{"short secret", []string{"--org", "acme", "--secret", "short", "--sub", "x"}, "at least 32"},
		{"bad role", []string{"--org", "acme", "--secret-env", "ACME_SECRET", "--sub", "x", "--role", "admin"}, "role must be"},
		{"ttl too long", []string{"--org", "acme", "--secret-env", "ACME_SECRET", "--sub", "x", "--ttl", "48h"}, "ttl 48h0m0s is out of range"},
		{"bad ttl", []string{"--org", "acme", "--secret-env", "ACME_SECRET", "--sub", "x", "--ttl", "long"}, "invalid value"},
		{"bad attr", []string{"--org", "acme", "--secret-env", "ACME_SECRET", "--sub", "x", "--attr", "novalue"}, `"novalue" is not key=value`},
		{"duplicate attr", []string{"--org", "acme", "--secret-env", "ACME_SECRET", "--sub", "x", "--attr", "a=1", "--attr", "a=2"}, "given twice"},
		{"bad skill", []string{"--org", "acme", "--secret-env", "ACME_SECRET", "--sub", "x", "--role", "agent", "--skill", "language=de"}, "is not skill=value:level"},
		{"skill level out of range", []string{"--org", "acme", "--secret-env", "ACME_SECRET", "--sub", "x", "--role", "agent", "--skill", "language=de:11"}, "levels are 1 to 10"},
		{"customer with skills", []string{"--org", "acme", "--secret-env", "ACME_SECRET", "--sub", "x", "--skill", "language=de:1"}, "for agents only"},
		{"capacity too high", []string{"--org", "acme", "--secret-env", "ACME_SECRET", "--sub", "x", "--role", "agent", "--capacity", "9"}, "capacity 9 is out of range"},
		{"bad org id", []string{"--org", "Acme", "--secret-env", "ACME_SECRET", "--sub", "x"}, "not a valid organization id"},
		{"unknown queue in config", []string{"--org", "acme", "--config", configPath, "--sub", "x", "--queue", "billing"}, "does not exist"},
		{"org not in config", []string{"--org", "globex", "--config", configPath, "--sub", "x"}, `"globex" is not in`},
		{"config and secret", []string{"--org", "acme", "--config", configPath, "--secret-env", "ACME_SECRET", "--sub", "x"}, "not both"},
		{"unknown flag", []string{"--org", "acme", "--colour", "x"}, "flag provided but not defined"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append([]string{"token"}, tt.args...), env, &stdout, &stderr); code != 2 {
				t.Fatalf("exit code %d; want 2", code)
			}
			out := stderr.String()
			if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "helpcaster: token: ") || !strings.Contains(out, tt.want) {
				t.Fatalf("stderr %q; want one line containing %q", out, tt.want)
			}
			if strings.Contains(out, testSecret) || stdout.Len() != 0 {
				t.Errorf("stderr %q stdout %q", out, stdout.String())
			}
		})
	}
}
