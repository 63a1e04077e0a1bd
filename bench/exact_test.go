package bench

import (
	"strings"
	"testing"
	"time"
)

// TestExactVerdicts builds ledgers by hand and checks each anomaly is
// found, and nothing in a clean one.
func TestExactVerdicts(t *testing.T) {
	t0 := time.Now().Add(-time.Minute)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	cfg := &Config{StuckAfter: 5 * time.Second, LostAfter: 5 * time.Second, OrderTolerance: time.Second}
	served := func(l *ledger, i int, room string, q, a float64) {
		c := l.newCustomer(i)
		c.conns, c.sessions = 1, 1
		c.firstQueued, c.waitingSince = at(q), at(q)
		l.custAssigned(c, room, 1, at(a))
		l.custEnded(c, room, "peer_left", at(a+0.1))
		l.finish(c, "served")
	}
	agent := func(l *ledger, i int, rooms ...string) *agentRec {
		a := l.newAgent(i)
		l.agentUp(a, at(0))
		l.agentState(a, "available", at(0))
		for _, r := range rooms {
			l.agentAssigned(a, r, at(1))
			l.agentHangup(a, r, at(1))
			l.agentEnded(a, r, "hangup", at(1.1))
		}
		return a
	}
	cases := map[string]struct {
		build func(l *ledger)
		want  []string // substrings of the anomalies, in order
	}{
		"clean": {func(l *ledger) {
			served(l, 0, "r1", 0, 1)
			agent(l, 0, "r1")
		}, nil},
		"duplicate": {func(l *ledger) {
			served(l, 0, "r1", 0, 1)
			l.custAssigned(l.customers[0], "r2", 1, at(2))
			agent(l, 0, "r1", "r2")
		}, []string{"1 customers placed more than once", "1 stuck calls (customer got no ended 1)"}},
		"phantom and agent with no ended": {func(l *ledger) {
			a := agent(l, 0)
			l.agentAssigned(a, "r9", at(1))
			l.agentHangup(a, "r9", at(1))
		}, []string{"1 phantom", "1 stuck calls (agent got no ended 1)"}},
		"waiting with an idle agent": {func(l *ledger) {
			c := l.newCustomer(0)
			c.conns, c.sessions, c.waiting, c.waitingSince, c.firstQueued = 1, 1, true, at(1), at(1)
			agent(l, 0)
		}, []string{"1 customers never placed and never told why", "1 agents lost"}},
		"hung up, no ended, dropped from the pool": {func(l *ledger) {
			served(l, 0, "r1", 0, 1)
			a := agent(l, 0)
			l.agentAssigned(a, "r1", at(1))
			l.agentHangup(a, "r1", at(1))
			l.agentState(a, "busy", at(1))
			c := l.newCustomer(1)
			c.conns, c.sessions, c.waiting, c.waitingSince, c.firstQueued = 1, 1, true, at(2), at(2)
		}, []string{"1 customers never placed", "1 stuck calls (agent got no ended 1)", "1 agents lost"}},
		"ended before assigned": {func(l *ledger) {
			c := l.newCustomer(0)
			c.conns, c.sessions = 1, 1
			l.custEnded(c, "r1", "peer_left", at(1))
			l.finish(c, "told:ended peer_left")
			a := agent(l, 0)
			l.agentAssigned(a, "r1", at(1))
			l.agentEnded(a, "r1", "peer_left", at(1))
		}, []string{"1 customers told a call ended that they were never assigned"}},
		"resume into a call that is gone": {func(l *ledger) {
			c := l.newCustomer(0)
			c.conns, c.sessions, c.resumedConn = 2, 1, true
			l.custEnded(c, "r1", "failed", at(1))
			l.finish(c, "told:ended failed")
			a := agent(l, 0)
			l.agentAssigned(a, "r1", at(1))
			l.agentEnded(a, "r1", "failed", at(1))
		}, nil},
		"resume after the call ended while away": {func(l *ledger) {
			// Its assigned was lost with its connection, and its agent hung
			// up before it resumed: it is told so on resume.
			c := l.newCustomer(0)
			c.conns, c.sessions, c.resumedConn = 2, 1, true
			l.custEnded(c, "r1", "peer_left", at(2))
			l.finish(c, "told:ended peer_left")
			agent(l, 0, "r1")
		}, nil},
		"told why": {func(l *ledger) {
			c := l.newCustomer(0)
			c.conns = 0
			l.finish(c, "told:queue_full")
			agent(l, 0)
		}, nil},
		"rebind after resume": {func(l *ledger) {
			served(l, 0, "r1", 0, 1)
			l.custAssigned(l.customers[0], "r1", 2, at(1.05))
			agent(l, 0, "r1")
		}, nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			l := newLedger(t0)
			tc.build(l)
			got := l.exact(cfg, time.Now()).Anomalies()
			if len(got) != len(tc.want) {
				t.Fatalf("anomalies %q, want %q", got, tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("anomaly %q, want %q", got[i], w)
				}
			}
		})
	}
}

// TestInversions: a customer queued well before another but served after
// it is one inversion; within the tolerance it is none.
func TestInversions(t *testing.T) {
	t0 := time.Now()
	l := newLedger(t0)
	for i, qa := range [][2]float64{{0, 5}, {2, 3}, {2.5, 2.6}} {
		c := l.newCustomer(i)
		c.firstQueued = t0.Add(time.Duration(qa[0] * float64(time.Second)))
		c.firstAssigned = t0.Add(time.Duration(qa[1] * float64(time.Second)))
	}
	// Customer 0 (queued at 0 s, served at 5 s) was passed by the others;
	// customer 1 was passed by 2 only within the tolerance.
	if n := l.inversions(time.Second); n != 1 {
		t.Errorf("inversions %d, want 1", n)
	}
}
