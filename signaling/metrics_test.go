package signaling_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// TestMetricsPresetAtZero: on a server nobody has used yet, every series
// whose labels are known at start-up exists at 0 (per queue of each
// organization, per error code, end reason, repair kind, message type), so
// that an alert sees 0 rather than no data.
func TestMetricsPresetAtZero(t *testing.T) {
	e := newEnv(t)
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// series holds, per family, its label sets ("k=v,k=v", sorted) and
	// the value of each (a histogram's sample count).
	series := make(map[string]map[string]float64)
	for _, mf := range mfs {
		m := make(map[string]float64)
		for _, s := range mf.GetMetric() {
			var kv []string
			for _, l := range s.GetLabel() {
				kv = append(kv, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(kv)
			m[strings.Join(kv, ",")] = s.GetCounter().GetValue() + s.GetGauge().GetValue() + float64(s.GetHistogram().GetSampleCount())
		}
		series[mf.GetName()] = m
	}
	want := func(family string, labels ...string) {
		t.Helper()
		for _, l := range labels {
			v, ok := series[family][l]
			switch {
			case !ok:
				t.Errorf("%s{%s} missing at start-up", family, l)
			case v != 0:
				t.Errorf("%s{%s} = %v at start-up, want 0", family, l, v)
			}
		}
	}
	queues := []string{"org=acme,queue=support", "org=globex,queue=support"}
	for _, f := range []string{"helpcaster_queue_length", "helpcaster_queue_longest_wait_seconds", "helpcaster_queue_agents_available",
		"helpcaster_queue_agents_busy", "helpcaster_queue_agents_away", "helpcaster_queue_placements_total",
		"helpcaster_queue_abandoned_total", "helpcaster_queue_overflowed_total", "helpcaster_queue_invites_declined_total",
		"helpcaster_queue_invites_expired_total", "helpcaster_call_setups_aborted_total", "helpcaster_queue_wait_seconds",
		"helpcaster_queue_handle_seconds"} {
		want(f, queues...)
	}
	for _, code := range []protocol.Code{protocol.CodeInvalidState, protocol.CodeBadMessage, protocol.CodeUnavailable,
		protocol.CodeRateLimited, protocol.CodeBadSDP, protocol.CodeInternal, protocol.CodeBadResume, protocol.CodeQueueFull, "in_call"} {
		want("helpcaster_signaling_errors_total", "code="+string(code))
	}
	for _, code := range []protocol.Code{protocol.CodeBadToken, protocol.CodeTokenExpired, protocol.CodeForbiddenOrigin, protocol.CodeBadResume} {
		want("helpcaster_auth_failures_total", "code="+string(code))
	}
	for _, r := range []string{protocol.ReasonHangup, protocol.ReasonFailed, protocol.ReasonShutdown} {
		want("helpcaster_calls_ended_total", "reason="+r)
	}
	for _, k := range []string{"stale_call", "agent_slot", "customer_missing", "customer_detached"} {
		want("helpcaster_repairs_total", "kind="+k)
	}
	for _, typ := range []string{protocol.TypeJoin, protocol.TypeHangup, protocol.TypeMonitor, "invalid"} {
		want("helpcaster_signaling_messages_total", "direction=in,type="+typ)
	}
	for _, typ := range []string{protocol.TypeError, protocol.TypeEnded, protocol.TypeQueued} {
		want("helpcaster_signaling_messages_total", "direction=out,type="+typ)
	}
	// Nothing else: no label set is made up for a queue that does not exist.
	if n := len(series["helpcaster_queue_length"]); n != len(queues) {
		t.Errorf("helpcaster_queue_length has %d series, want %d: %v", n, len(queues), series["helpcaster_queue_length"])
	}
}
