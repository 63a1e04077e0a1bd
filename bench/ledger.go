package bench

// The queue scenario's ledger: what every simulated customer and agent saw,
// recorded as it happens, from which exact.go draws the verdicts. One lock
// (ledger.mu) guards it all: events are few (a handful per customer) and
// the end-of-run check reads across customers, agents and rooms at once.

import (
	"sync"
	"time"
)

// ledger is the record of one queue run.
type ledger struct {
	t0        time.Time // the run's start
	mu        sync.Mutex
	customers []*custRec          // guarded by mu, as everything below
	agents    []*agentRec         // guarded by mu
	rooms     map[string]*roomRec // guarded by mu; by room id, from either side
	stats     queueStatsSeen      // guarded by mu
}

// queueStatsSeen is the last queue_stats any agent received.
type queueStatsSeen struct {
	at        time.Time
	available int
	waiting   int
}

func newLedger(t0 time.Time) *ledger { return &ledger{t0: t0, rooms: map[string]*roomRec{}} }

// custRec is one simulated customer (a person): every session it had
// (a new one after a refused resume), every connection of each.
type custRec struct {
	idx      int
	session  string // the current session's id (from welcome; opaque, simulated)
	sessions int    // welcomes to a join
	conns    int    // connections that got a welcome (join or resume)

	firstQueued   time.Time // the first queued of the first session
	firstAssigned time.Time
	rooms         []string // distinct rooms assigned, in order
	roomConn      map[string]int
	duplicates    int
	dupWhy        []string

	waiting      bool      // queued, connected, not assigned
	waitingSince time.Time // of the current connection's wait
	inCall       string    // the room of the call in progress
	away         bool      // connection lost, resume not yet answered
	done         string    // outcome once finished: "served" or "told:<why>"
	placeLost    int       // bad_resume while waiting: joined again
	resumedConn  bool      // the current connection began with a resume
	endedEarly   []string  // ended for a room never assigned, not explained by a resume
	disturbed    bool      // dropped or rejoined while waiting: out of the order check

	harnessDrops, serverDrops           int
	resumeTries, resumeOK               int
	resumeFail                          map[string]int
	errors, byes, closes, endedNoCallBy map[string]int
}

// agentRec is one simulated agent, over all its sessions.
type agentRec struct {
	idx        int
	joins      int
	reconnects int
	connected  bool
	wantAvail  bool      // sent available on the current session
	lastState  string    // last agent_state
	stateAt    time.Time // when it came
	stateMsgs  int
	open       map[string]bool // rooms assigned, neither hung up nor ended (current session)
	ending     map[string]bool // rooms hung up, their ended still to come (current session)
	idleSince  time.Time       // available and in no call since
	rooms      int
	hangups    int
	gaveUp     bool
	errors     map[string]int
	byes       map[string]int
	closes     map[string]int
	unexpected int // assigned while already in a call (capacity 1)
}

// roomRec is one call, as its two sides saw it.
type roomRec struct {
	id            string
	agent         *agentRec
	agentAt       time.Time // agent's assigned
	hangupAt      time.Time
	agentEndAt    time.Time
	agentEnd      string
	agentGone     bool // the agent's connection was lost during the call
	cust          *custRec
	custAt        time.Time // the customer's first assigned
	custEndAt     time.Time
	custEnd       string
	custExplained bool // the customer's side ended without an ended it could get (refused resume, gave up)
}

func (l *ledger) room(id string) *roomRec {
	rm := l.rooms[id]
	if rm == nil {
		rm = &roomRec{id: id}
		l.rooms[id] = rm
	}
	return rm
}

func (l *ledger) newCustomer(i int) *custRec {
	c := &custRec{idx: i, roomConn: map[string]int{}, resumeFail: map[string]int{}, errors: map[string]int{},
		byes: map[string]int{}, closes: map[string]int{}, endedNoCallBy: map[string]int{}}
	l.mu.Lock()
	l.customers = append(l.customers, c)
	l.mu.Unlock()
	return c
}

func (l *ledger) newAgent(i int) *agentRec {
	a := &agentRec{idx: i, open: map[string]bool{}, ending: map[string]bool{}, errors: map[string]int{}, byes: map[string]int{}, closes: map[string]int{}}
	l.mu.Lock()
	l.agents = append(l.agents, a)
	l.mu.Unlock()
	return a
}

// with runs f under the ledger's lock.
func (l *ledger) with(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f()
}

// custAssigned records a customer's assigned on connection conn.
func (l *ledger) custAssigned(c *custRec, room string, conn int, now time.Time) {
	l.with(func() {
		rm := l.room(room)
		prev, seen := c.roomConn[room]
		switch {
		case !seen && c.inCall != "" && c.inCall != room:
			c.duplicates++
			c.dupWhy = append(c.dupWhy, "second room during a call")
		case !seen && len(c.rooms) > 0:
			// A customer is served once: a second room after its first
			// (even one that ended) is a second placement.
			c.duplicates++
			c.dupWhy = append(c.dupWhy, "second room")
		case seen && prev == conn:
			c.duplicates++
			c.dupWhy = append(c.dupWhy, "same room twice on one connection")
		}
		if !seen {
			c.rooms = append(c.rooms, room)
		}
		c.roomConn[room] = conn
		if c.firstAssigned.IsZero() {
			c.firstAssigned = now
		}
		c.waiting, c.inCall, c.away = false, room, false
		if rm.cust == nil {
			rm.cust, rm.custAt = c, now
		}
	})
}

// custEnded records a customer's ended; it reports whether it ends the
// customer's call, and whether the customer was ever assigned one.
func (l *ledger) custEnded(c *custRec, room, reason string, now time.Time) (call, placed bool) {
	l.with(func() {
		placed = len(c.rooms) > 0
		if room == "" {
			c.endedNoCallBy[reason]++
			return
		}
		rm := l.room(room)
		if rm.custEndAt.IsZero() {
			rm.custEndAt, rm.custEnd = now, reason
		}
		// Only a resume may be answered with an ended for a room this
		// customer never heard of: its assigned was lost with its
		// connection, and the call ended (with any reason) or is gone
		// (failed) before it came back.
		if _, seen := c.roomConn[room]; !seen && !c.resumedConn {
			c.endedEarly = append(c.endedEarly, reason)
		}
		if rm.cust == nil {
			// ended for a call it was never told of (its resume found the
			// call ended or gone): it knows, so this is no phantom.
			rm.cust = c
		}
		c.waiting, c.away = false, false
		if c.inCall == room || c.inCall == "" {
			c.inCall = ""
			call = true
		}
	})
	return call, placed
}

// custLost records that a customer's connection ended before it finished.
func (l *ledger) custLost(c *custRec, byHarness bool) {
	l.with(func() {
		if byHarness {
			c.harnessDrops++
		} else {
			c.serverDrops++
		}
		if c.waiting {
			c.disturbed = true
		}
		c.waiting, c.away = false, true
	})
}

// custResolveAway: the customer's resume was refused (or it gave up) while
// its call may have been going on: that side of the call is explained.
func (l *ledger) custResolveAway(c *custRec) {
	l.with(func() {
		if c.inCall != "" {
			l.room(c.inCall).custExplained = true
			c.inCall = ""
		}
		c.away = false
	})
}

// finish sets a customer's outcome once.
func (l *ledger) finish(c *custRec, outcome string) {
	l.with(func() {
		if c.done == "" {
			c.done = outcome
		}
		c.waiting = false
	})
}

func (l *ledger) agentAssigned(a *agentRec, room string, now time.Time) {
	l.with(func() {
		rm := l.room(room)
		if len(a.open) > 0 {
			a.unexpected++
		}
		rm.agent, rm.agentAt = a, now
		a.open[room] = true
		a.rooms++
		a.idleSince = time.Time{}
	})
}

// agentHangup records a hang-up: for the agent, as for an agent page, the
// call is over (its ended is still expected, or the call is stuck).
func (l *ledger) agentHangup(a *agentRec, room string, now time.Time) {
	l.with(func() {
		a.hangups++
		if rm := l.room(room); rm.hangupAt.IsZero() {
			rm.hangupAt = now
		}
		if a.open[room] {
			delete(a.open, room)
			a.ending[room] = true
			if len(a.open) == 0 && a.wantAvail {
				a.idleSince = now
			}
		}
	})
}

func (l *ledger) agentEnded(a *agentRec, room, reason string, now time.Time) {
	l.with(func() {
		rm := l.room(room)
		if rm.agentEndAt.IsZero() {
			rm.agentEndAt, rm.agentEnd = now, reason
		}
		delete(a.ending, room)
		if a.open[room] {
			delete(a.open, room)
			if len(a.open) == 0 && a.wantAvail {
				a.idleSince = now
			}
		}
	})
}

func (l *ledger) agentState(a *agentRec, state string, now time.Time) {
	l.with(func() {
		a.lastState, a.stateAt = state, now
		a.stateMsgs++
	})
}

// agentUp records a session that joined and asked to be available.
func (l *ledger) agentUp(a *agentRec, now time.Time) {
	l.with(func() {
		a.joins++
		a.connected, a.wantAvail = true, true
		a.idleSince = now
	})
}

// agentDown records a lost agent connection: its calls are ended by the
// server, and it is told nothing more of them.
func (l *ledger) agentDown(a *agentRec) {
	l.with(func() {
		for _, rooms := range []map[string]bool{a.open, a.ending} {
			for room := range rooms {
				l.room(room).agentGone = true
			}
			clear(rooms)
		}
		a.connected, a.wantAvail = false, false
		a.idleSince = time.Time{}
	})
}

// unsettled reports whether a call ended or hung up less than bound ago
// still waits for a side's ended, or an agent's state has yet to follow
// its last call: the run waits for these before judging.
func (l *ledger) unsettled(now time.Time, bound time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, rm := range l.rooms {
		t := rm.trigger()
		if t.IsZero() || now.Sub(t) > bound {
			continue
		}
		if !rm.agentDone() || !rm.custDone() {
			return true
		}
	}
	for _, a := range l.agents {
		if a.connected && a.wantAvail && len(a.open) == 0 && a.lastState != "available" && now.Sub(a.stateAt) < bound {
			return true
		}
	}
	return false
}

// trigger is when the call was first known to end: the agent's hangup or
// either side's ended.
func (rm *roomRec) trigger() time.Time {
	var t time.Time
	for _, x := range []time.Time{rm.hangupAt, rm.agentEndAt, rm.custEndAt} {
		if !x.IsZero() && (t.IsZero() || x.Before(t)) {
			t = x
		}
	}
	return t
}

func (rm *roomRec) agentDone() bool {
	return rm.agent == nil || !rm.agentEndAt.IsZero() || rm.agentGone
}

func (rm *roomRec) custDone() bool {
	return rm.cust == nil || !rm.custEndAt.IsZero() || rm.custExplained || rm.cust.done != "" && rm.cust.inCall != rm.id
}
