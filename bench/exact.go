package bench

// The queue scenario's verdicts: every customer placed exactly once or told
// why not, every call ended on both sides, every agent still in the pool.

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Exact is the queue scenario's exactly-once accounting. The counts named
// in Anomalies must all be zero in a correct run.
type Exact struct {
	Customers  int `json:"customers"`   // customers started
	Joined     int `json:"joined"`      // got a welcome at least once
	PlacedOnce int `json:"placed_once"` // assigned exactly one room
	// Duplicates: customers assigned a second room, or the same room twice
	// on one connection (a resume into the call, on a new connection, is
	// not one).
	Duplicates int `json:"duplicates"`
	// Phantoms: rooms an agent was assigned that no customer was assigned
	// (or told had ended), once the run settled.
	Phantoms int `json:"phantoms"`
	// NeverPlaced: customers never assigned; Unexplained of them were still
	// waiting at the end with nothing said (the bad case), the others were
	// told why (NeverPlacedWhy: an error code, an ended, a refused resume,
	// or the harness gave up reconnecting).
	NeverPlaced    int            `json:"never_placed"`
	Unexplained    int            `json:"never_placed_unexplained"`
	NeverPlacedWhy map[string]int `json:"never_placed_why,omitempty"`
	// EndedUnassigned: customers told a call ended that they were never
	// assigned (other than a resume into a call that is gone, answered
	// ended failed).
	EndedUnassigned int `json:"ended_unassigned"`
	// PlacesLost: a waiting customer's resume refused with bad_resume; it
	// joined again as a new session (counted, not an anomaly: see docs).
	PlacesLost int `json:"places_lost"`
	// StuckCalls: calls hung up or ended on one side whose other side got
	// no ended within StuckAfterS (StuckWhy says which side).
	StuckCalls  int            `json:"stuck_calls"`
	StuckWhy    map[string]int `json:"stuck_why,omitempty"`
	StuckAfterS float64        `json:"stuck_after_s"`
	// AgentsLost: connected agents that asked to be available, hold no
	// call, and were given no one for LostAfterS while customers waited;
	// or whose last agent_state is not available though they are idle; or
	// that could not join again after losing their connection.
	AgentsLost    int            `json:"agents_lost"`
	AgentsLostWhy map[string]int `json:"agents_lost_why,omitempty"`
	LostAfterS    float64        `json:"lost_after_s"`
	// Inversions: customers queued more than OrderToleranceMs before
	// another but assigned after it (customers that dropped or rejoined
	// while waiting are left out). Reported, not an anomaly.
	Inversions       int     `json:"order_inversions"`
	OrderToleranceMs float64 `json:"order_tolerance_ms"`

	Resumes Resumes `json:"resumes"`
	// Drops: customer connections the harness dropped on purpose, and
	// connections (either role) the server or a dead node ended while
	// still needed, by close code.
	HarnessDrops    int            `json:"harness_drops"`
	ServerDrops     int            `json:"server_drops"`
	CloseCodes      map[string]int `json:"close_codes,omitempty"`
	Byes            map[string]int `json:"byes,omitempty"`
	Errors          map[string]int `json:"errors,omitempty"`
	AgentReconnects int            `json:"agent_reconnects"`
	Rooms           int            `json:"rooms"`           // distinct rooms either side was assigned
	Hangups         int            `json:"hangups"`         // sent by agents
	EndedBy         map[string]int `json:"ended,omitempty"` // ended reasons the customers got for their calls
	// ServerAvailable and HarnessAvailable: the last queue_stats' available
	// agents against the agents the harness holds idle and available
	// (information: queue_stats may lag).
	ServerAvailable  int `json:"server_available"`
	HarnessAvailable int `json:"harness_available"`
	// Hosts is where the calls were, per node, from its metrics.
	Hosts []Hosting `json:"hosts,omitempty"`
	// Examples describe a few anomalies, for a first look.
	Examples []string `json:"examples,omitempty"`
}

// Resumes counts the customers' resume attempts.
type Resumes struct {
	Attempted int            `json:"attempted"`
	Succeeded int            `json:"succeeded"`
	Failed    int            `json:"failed"`
	FailedBy  map[string]int `json:"failed_by,omitempty"`
}

// Hosting is one node's share of the calls, from the increase of its
// counters over the run (a restarted node's counters start again from 0,
// and their increase is added).
type Hosting struct {
	Node       string  `json:"node"`
	Placements float64 `json:"placements"`  // helpcaster_queue_placements_total
	CallsEnded float64 `json:"calls_ended"` // helpcaster_calls_ended_total
	Restarts   int     `json:"restarts"`    // counter resets seen
	Scraped    bool    `json:"scraped"`
}

// Anomalies lists the counts that must be zero and are not, one line each;
// empty when the run was exactly-once.
func (e *Exact) Anomalies() []string {
	if e == nil {
		return nil
	}
	var out []string
	add := func(n int, what string, why map[string]int) {
		if n == 0 {
			return
		}
		s := fmt.Sprintf("%d %s", n, what)
		if len(why) > 0 {
			s += " (" + countList(why) + ")"
		}
		out = append(out, s)
	}
	add(e.Duplicates, "customers placed more than once", nil)
	add(e.Phantoms, "phantom rooms (an agent assigned, no customer)", nil)
	add(e.Unexplained, "customers never placed and never told why", nil)
	add(e.EndedUnassigned, "customers told a call ended that they were never assigned", nil)
	add(e.StuckCalls, "stuck calls", e.StuckWhy)
	add(e.AgentsLost, "agents lost from the pool", e.AgentsLostWhy)
	return out
}

// countList is "key n, key n" in key order.
func countList(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// maxExamples bounds Exact.Examples.
const maxExamples = 12

// exact draws the verdicts from the ledger at the end of the run (now).
func (l *ledger) exact(cfg *Config, now time.Time) *Exact {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := &Exact{Customers: len(l.customers), NeverPlacedWhy: map[string]int{}, StuckWhy: map[string]int{},
		AgentsLostWhy: map[string]int{}, CloseCodes: map[string]int{}, Byes: map[string]int{}, Errors: map[string]int{},
		EndedBy: map[string]int{}, Resumes: Resumes{FailedBy: map[string]int{}},
		StuckAfterS: cfg.StuckAfter.Seconds(), LostAfterS: cfg.LostAfter.Seconds(), OrderToleranceMs: ms(cfg.OrderTolerance)}
	example := func(format string, args ...any) {
		if len(e.Examples) < maxExamples {
			e.Examples = append(e.Examples, fmt.Sprintf(format, args...))
		}
	}
	merge := func(dst, src map[string]int, prefix string) {
		for k, v := range src {
			dst[prefix+k] += v
		}
	}
	var waiting []*custRec
	for _, c := range l.customers {
		if c.conns > 0 {
			e.Joined++
		}
		switch n := len(c.rooms); {
		case n == 1 && c.duplicates == 0:
			e.PlacedOnce++
		case n == 0:
			e.NeverPlaced++
			why := strings.TrimPrefix(c.done, "told:")
			switch {
			case c.done == "" && c.away:
				why = "reconnecting at the end"
			case c.done == "" || c.done == "served":
				why = ""
			}
			if why == "" {
				e.Unexplained++
				waiting = append(waiting, c)
				since := "never joined"
				if !c.waitingSince.IsZero() {
					since = fmt.Sprintf("waiting since %.1f s into the run", c.waitingSince.Sub(l.start()).Seconds())
				}
				example("customer %d (session %s): never placed, %s, nothing said (sessions %d, connections %d)", c.idx, orDash(c.session),
					since, c.sessions, c.conns)
			} else {
				e.NeverPlacedWhy[why]++
			}
		}
		if c.duplicates > 0 {
			e.Duplicates++
			example("customer %d: duplicate placement: %s (rooms %v)", c.idx, strings.Join(c.dupWhy, ", "), c.rooms)
		}
		if len(c.endedEarly) > 0 {
			e.EndedUnassigned++
			example("customer %d: ended (%s) for a room it was never assigned", c.idx, strings.Join(c.endedEarly, ", "))
		}
		e.PlacesLost += c.placeLost
		e.HarnessDrops += c.harnessDrops
		e.ServerDrops += c.serverDrops
		e.Resumes.Attempted += c.resumeTries
		e.Resumes.Succeeded += c.resumeOK
		for k, v := range c.resumeFail {
			e.Resumes.Failed += v
			e.Resumes.FailedBy[k] += v
		}
		merge(e.CloseCodes, c.closes, "customer ")
		merge(e.Byes, c.byes, "customer ")
		merge(e.Errors, c.errors, "customer ")
	}
	for _, rm := range l.rooms {
		e.Rooms++
		if rm.cust != nil && !rm.custEndAt.IsZero() {
			e.EndedBy[rm.custEnd]++
		}
		if rm.agent != nil && rm.cust == nil {
			e.Phantoms++
			example("room %s: agent %d assigned %.1f s into the run, no customer was", rm.id, rm.agent.idx, rm.agentAt.Sub(l.start()).Seconds())
		}
		t := rm.trigger()
		if t.IsZero() {
			continue
		}
		late := func(end time.Time, done bool) bool {
			if end.IsZero() {
				return !done
			}
			return end.Sub(t) > cfg.StuckAfter
		}
		var why []string
		if rm.agent != nil && !rm.agentGone && late(rm.agentEndAt, rm.agentDone()) {
			why = append(why, "agent got no ended")
		}
		if rm.cust != nil && !rm.custExplained && late(rm.custEndAt, rm.custDone()) {
			why = append(why, "customer got no ended")
		}
		if len(why) > 0 {
			e.StuckCalls++
			for _, w := range why {
				e.StuckWhy[w]++
			}
			example("room %s: %s (hung up %v, agent ended %q, customer ended %q)", rm.id, strings.Join(why, ", "),
				!rm.hangupAt.IsZero(), rm.agentEnd, rm.custEnd)
		}
	}
	// An agent is lost when it sits idle while customers wait unserved.
	for _, a := range l.agents {
		e.AgentReconnects += a.reconnects
		e.Hangups += a.hangups
		merge(e.CloseCodes, a.closes, "agent ")
		for _, n := range a.closes {
			e.ServerDrops += n
		}
		merge(e.Byes, a.byes, "agent ")
		merge(e.Errors, a.errors, "agent ")
		if a.gaveUp {
			e.AgentsLost++
			e.AgentsLostWhy["could not join again"]++
			example("agent %d: could not join again after losing its connection", a.idx)
			continue
		}
		if !a.connected || !a.wantAvail || len(a.open) > 0 {
			continue
		}
		e.HarnessAvailable++
		if a.lastState != "available" && now.Sub(a.stateAt) > cfg.StuckAfter {
			e.AgentsLostWhy["agent_state not available while idle"]++
			e.AgentsLost++
			example("agent %d: idle, last agent_state %q", a.idx, a.lastState)
			continue
		}
		for _, c := range waiting {
			from := a.idleSince
			if c.waitingSince.After(from) {
				from = c.waitingSince
			}
			if !from.IsZero() && now.Sub(from) >= cfg.LostAfter {
				e.AgentsLost++
				e.AgentsLostWhy["idle while customers waited"]++
				example("agent %d: available and idle since %.1f s into the run while customer %d waited", a.idx,
					a.idleSince.Sub(l.start()).Seconds(), c.idx)
				break
			}
		}
	}
	e.ServerAvailable = l.stats.available
	e.Inversions = l.inversions(cfg.OrderTolerance)
	return e
}

// start is the earliest time the ledger knows of, for "seconds into the
// run" in the examples. Called with l.mu held.
func (l *ledger) start() time.Time { return l.t0 }

// inversions counts customers queued more than tol before another that
// was assigned before them. Called with l.mu held.
func (l *ledger) inversions(tol time.Duration) int {
	var cs []*custRec
	for _, c := range l.customers {
		if !c.disturbed && c.placeLost == 0 && !c.firstQueued.IsZero() && !c.firstAssigned.IsZero() {
			cs = append(cs, c)
		}
	}
	slices.SortFunc(cs, func(a, b *custRec) int { return a.firstQueued.Compare(b.firstQueued) })
	n := 0
	for i, a := range cs {
		for _, b := range cs[i+1:] {
			if b.firstQueued.Sub(a.firstQueued) > tol && b.firstAssigned.Before(a.firstAssigned) {
				n++
				break
			}
		}
	}
	return n
}

// rows are the accounting's lines of the table and the HTML report.
func (e *Exact) rows(add func(label, format string, args ...any)) {
	verdict := "exactly once"
	if a := e.Anomalies(); len(a) > 0 {
		verdict = "ANOMALIES: " + strings.Join(a, "; ")
	}
	add("accounting", "%s", verdict)
	add("customers", "%d started, %d joined, %d placed exactly once, %d duplicates, %d never placed (%d unexplained)",
		e.Customers, e.Joined, e.PlacedOnce, e.Duplicates, e.NeverPlaced, e.Unexplained)
	if len(e.NeverPlacedWhy) > 0 {
		add("never placed, told why", "%s", countList(e.NeverPlacedWhy))
	}
	add("ended before assigned", "%d customers", e.EndedUnassigned)
	add("rooms", "%d; %d phantoms; %d hang-ups; customers' calls ended: %s", e.Rooms, e.Phantoms, e.Hangups, orDash(countList(e.EndedBy)))
	add("stuck calls", "%d (no ended within %.0f s)%s", e.StuckCalls, e.StuckAfterS, parenList(e.StuckWhy))
	add("agents lost", "%d (idle %.0f s while customers waited, or state disagrees)%s; %d reconnects; available: harness %d, last queue_stats %d",
		e.AgentsLost, e.LostAfterS, parenList(e.AgentsLostWhy), e.AgentReconnects, e.HarnessAvailable, e.ServerAvailable)
	add("order of service", "%d inversions beyond %.0f ms", e.Inversions, e.OrderToleranceMs)
	add("resumes", "%d attempted, %d succeeded, %d failed%s; %d waiting places lost (joined again)",
		e.Resumes.Attempted, e.Resumes.Succeeded, e.Resumes.Failed, parenList(e.Resumes.FailedBy), e.PlacesLost)
	add("connections dropped", "%d by the harness, %d by the server; close codes: %s", e.HarnessDrops, e.ServerDrops, orDash(countList(e.CloseCodes)))
	if len(e.Byes)+len(e.Errors) > 0 {
		add("byes, errors", "%s; %s", orDash(countList(e.Byes)), orDash(countList(e.Errors)))
	}
	hosts := make([]string, 0, len(e.Hosts))
	for _, h := range slices.SortedFunc(slices.Values(e.Hosts), func(a, b Hosting) int { return cmp.Compare(a.Node, b.Node) }) {
		s := fmt.Sprintf("%s %.0f placed, %.0f ended", h.Node, h.Placements, h.CallsEnded)
		if h.Restarts > 0 {
			s += fmt.Sprintf(", %d restarts", h.Restarts)
		}
		if !h.Scraped {
			s += " (not scraped)"
		}
		hosts = append(hosts, s)
	}
	add("calls by node", "%s", orDash(strings.Join(hosts, "; ")))
	for _, x := range e.Examples {
		add("example", "%s", x)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func parenList(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	return " (" + countList(m) + ")"
}
