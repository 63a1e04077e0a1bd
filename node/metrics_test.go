package node

import (
	"net/http"
	"strings"
	"testing"

	"github.com/helpcaster/helpcaster/sfu"
)

// TestMetricsAtStartup: a fresh node's /metrics has the signaling
// families alerts are written on, at 0, for every configured queue, before
// anyone has connected.
func TestMetricsAtStartup(t *testing.T) {
	n := runNode(t, Config{Orgs: testOrgs(t), Media: sfu.Config{LoopbackOnly: true}})

	waitProbe(t, n.URL()+"/readyz", http.StatusOK, "ready")
	code, text := probe(t, n.URL()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics answers %d", code)
	}
	lines := make(map[string]bool)
	for _, l := range strings.Split(text, "\n") {
		lines[l] = true
	}
	for _, s := range []string{
		`helpcaster_queue_length{org="acme",queue="support"} 0`,
		`helpcaster_queue_agents_available{org="acme",queue="support"} 0`,
		`helpcaster_queue_longest_wait_seconds{org="acme",queue="support"} 0`,
		`helpcaster_queue_abandoned_total{org="acme",queue="support"} 0`,
		`helpcaster_queue_placements_total{org="acme",queue="support"} 0`,
		`helpcaster_queue_wait_seconds_count{org="acme",queue="support"} 0`,
		`helpcaster_calls_ended_total{reason="hangup"} 0`,
		`helpcaster_calls_ended_total{reason="failed"} 0`,
		`helpcaster_signaling_errors_total{code="invalid_state"} 0`,
		`helpcaster_signaling_errors_total{code="unavailable"} 0`,
		`helpcaster_auth_failures_total{code="bad_token"} 0`,
		`helpcaster_repairs_total{kind="stale_call"} 0`,
	} {
		if !lines[s] {
			t.Errorf("fresh node's /metrics lacks %s", s)
		}
	}
}
