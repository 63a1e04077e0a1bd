package bench

// The queue scenario: a placement storm in which every simulated customer
// and agent behaves as a real widget and agent page would (a lost
// connection is resumed, or joined again, on another node) and records what
// it saw in the ledger, for the exactly-once verdicts of exact.go.

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// waitDropWithin bounds the random moment a customer chosen by --resume
// drops its connection, counted from its first queued.
const waitDropWithin = 2 * time.Second

// queueRun is one queue scenario in progress.
type queueRun struct {
	r        *runner
	cfg      *Config
	led      *ledger
	finished atomic.Int64 // customers whose outcome is known
}

// queueStorm joins the agents, then the customers at the ramp, and ends
// once every customer is served or told why not, or --settle after the
// last one joined; then waits (up to --stuck-after) for calls still ending
// and judges the run before closing the clients.
func (r *runner) queueStorm(ctx context.Context) {
	q := &queueRun{r: r, cfg: &r.cfg, led: newLedger(r.start)}
	endCtx, end := context.WithCancel(ctx)
	defer end()
	var wg sync.WaitGroup
	agentsUp := make(chan struct{}, r.cfg.Agents)
	for i := range r.cfg.Agents {
		wg.Go(func() { q.agent(endCtx, i, agentsUp) })
	}
	for range r.cfg.Agents {
		select {
		case <-agentsUp:
		case <-ctx.Done():
		}
	}
	allStarted := make(chan struct{})
	wg.Go(func() {
		defer close(allStarted)
		var every time.Duration
		if r.cfg.Ramp > 0 {
			every = time.Duration(float64(time.Second) / r.cfg.Ramp)
		}
		next := time.Now()
		for i := range r.cfg.Customers {
			if every > 0 && i > 0 {
				next = next.Add(every)
				select {
				case <-endCtx.Done():
				case <-time.After(time.Until(next)):
				}
			}
			if endCtx.Err() != nil {
				return
			}
			r.started.Add(1)
			wg.Go(func() { q.customer(endCtx, i) })
		}
	})
	select {
	case <-allStarted:
	case <-ctx.Done():
	}
	settle := time.NewTimer(r.cfg.Settle)
	defer settle.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
wait:
	for q.finished.Load() < r.started.Load() {
		select {
		case <-ctx.Done():
			break wait
		case <-settle.C:
			break wait
		case <-tick.C:
		}
	}
	// Calls hung up or ended on one side a moment ago: give the other
	// side its bound to hear of it.
	for deadline := time.Now().Add(r.cfg.StuckAfter); ctx.Err() == nil && time.Now().Before(deadline) &&
		q.led.unsettled(time.Now(), r.cfg.StuckAfter); {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	ex := q.led.exact(&r.cfg, time.Now())
	r.mu.Lock()
	r.exact = ex
	r.mu.Unlock()
	end()
	wg.Wait()
}

// backoff is a reconnect delay: 200 ms to 1 s.
func backoff(rng *rand.Rand) time.Duration {
	return 200*time.Millisecond + time.Duration(rng.Int64N(int64(800*time.Millisecond)))
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// retryable: answers to join or resume after which a client tries again
// later (on another node).
func retryable(code string) bool {
	switch code {
	case string(protocol.CodeUnavailable), string(protocol.CodeInternal), "closed", "timeout", "connect":
		return true
	}
	return false
}

// custDrops are the drops the harness still owes a customer.
type custDrops struct{ waiting, inCall bool }

// customer runs the i-th customer until it is served (its call ended),
// told why not, or the run ends.
func (q *queueRun) customer(ctx context.Context, i int) {
	defer q.finished.Add(1)
	c := q.led.newCustomer(i)
	rng := rand.New(rand.NewPCG(uint64(q.cfg.Seed), uint64(2*i+1)))
	drops := custDrops{waiting: rng.Float64() < q.cfg.Resume, inCall: rng.Float64() < q.cfg.ResumeInCall}
	urls := q.cfg.CustomerURLs
	node := i % len(urls)
	var resume string        // the session's resume token
	var retryUntil time.Time // set while reconnecting
	lastWhy, conn, begin := "", 0, time.Now()
	retry := func(why string) {
		lastWhy = why
		if retryUntil.IsZero() {
			retryUntil = time.Now().Add(q.cfg.RetryFor)
		}
		node = (node + 1) % len(urls)
		sleep(ctx, backoff(rng))
	}
	for {
		if ctx.Err() != nil {
			if !retryUntil.IsZero() {
				q.led.finish(c, "told:run ended while reconnecting ("+lastWhy+")")
			}
			return
		}
		if !retryUntil.IsZero() && time.Now().After(retryUntil) {
			q.led.custResolveAway(c)
			q.led.finish(c, "told:gave up reconnecting ("+lastWhy+")")
			return
		}
		// The client lives as long as the context it is dialled with.
		cl, err := client.Dial(ctx, client.Options{URL: urls[node], NoMedia: true, LoopbackOnly: q.cfg.LoopbackOnly})
		if err != nil {
			retry("connect")
			continue
		}
		resuming := resume != ""
		var w protocol.Message
		jctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		if resuming {
			q.led.with(func() { c.resumeTries++ })
			w, err = cl.Resume(jctx, resume)
		} else {
			var tok string
			if tok, err = q.r.token(ctx, protocol.RoleCustomer, i, node); err == nil {
				w, err = cl.Join(jctx, tok)
			}
		}
		cancel()
		if err != nil {
			cl.Close()
			code := errorCode(err)
			q.led.with(func() {
				if resuming {
					c.resumeFail[code]++
				} else {
					c.errors["join "+code]++
				}
			})
			switch {
			case ctx.Err() != nil:
			case resuming && code == string(protocol.CodeBadResume):
				var placed bool
				q.led.with(func() { placed = len(c.rooms) > 0 })
				if placed {
					// Its call is over (ended while it was away): served.
					q.led.custResolveAway(c)
					q.led.finish(c, "served")
					return
				}
				// Its place is gone: join again, a new session.
				q.led.with(func() { c.placeLost++; c.disturbed = true })
				resume = ""
			case retryable(code):
				retry(code)
			default:
				q.led.custResolveAway(c)
				what := "join "
				if resuming {
					what = "resume "
				}
				q.led.finish(c, "told:"+what+code)
				return
			}
			continue
		}
		if !resuming {
			resume = w.Resume
		}
		conn++
		q.led.with(func() {
			c.conns++
			c.away = false // back: waiting again (queued follows) or in its call (assigned follows)
			c.session, c.resumedConn = w.Session, resuming
			if resuming {
				c.resumeOK++
			} else {
				c.sessions++
			}
		})
		retryUntil, lastWhy = time.Time{}, ""
		done := q.customerConn(ctx, cl, c, conn, rng, &drops, begin)
		cl.Close()
		if done {
			return
		}
		retry("lost")
	}
}

// customerConn reads one customer connection until the customer is done
// (true) or the connection is lost (false).
func (q *queueRun) customerConn(ctx context.Context, cl *client.Client, c *custRec, conn int, rng *rand.Rand, drops *custDrops, begin time.Time) bool {
	var dropAt time.Time
	for {
		nctx, cancel := ctx, context.CancelFunc(func() {})
		if !dropAt.IsZero() {
			nctx, cancel = context.WithDeadline(ctx, dropAt)
		}
		msg, err := cl.Next(nctx)
		cancel()
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return true
			case errors.Is(err, context.DeadlineExceeded):
				cl.Drop()
				q.led.custLost(c, true)
			default:
				code := strconv.Itoa(cl.CloseCode())
				q.led.with(func() { c.closes[code]++ })
				q.led.custLost(c, false)
			}
			return false
		}
		now := time.Now()
		switch msg.Type {
		case protocol.TypeQueued:
			q.led.with(func() {
				if c.firstQueued.IsZero() {
					c.firstQueued = now
				}
				if !c.waiting && c.inCall == "" {
					c.waiting, c.waitingSince = true, now
				}
			})
			if drops.waiting {
				drops.waiting = false
				dropAt = now.Add(time.Duration(rng.Int64N(int64(waitDropWithin))))
			}
		case protocol.TypeAssigned:
			var first bool
			q.led.with(func() { first = len(c.rooms) == 0 })
			q.led.custAssigned(c, msg.Room, conn, now)
			dropAt = time.Time{}
			if first {
				q.r.up.Add(1)
				q.r.mu.Lock()
				q.r.placed = append(q.r.placed, now.Sub(begin))
				q.r.mu.Unlock()
			}
			if drops.inCall {
				drops.inCall = false
				dropAt = now.Add(time.Duration(rng.Int64N(int64(max(q.cfg.Hold, 200*time.Millisecond)))))
			}
		case protocol.TypeEnded:
			call, placed := q.led.custEnded(c, msg.Room, msg.Reason, now)
			switch {
			case !placed:
				q.led.finish(c, "told:ended "+msg.Reason)
				return true
			case call:
				q.led.finish(c, "served")
				return true
			}
		case protocol.TypeError:
			q.led.with(func() { c.errors[msg.Code]++ })
			if msg.Code == string(protocol.CodeQueueFull) {
				q.led.finish(c, "told:"+msg.Code)
				return true
			}
		case protocol.TypeBye:
			q.led.with(func() { c.byes[msg.Reason]++ })
			if msg.Reason == protocol.ReasonResumed {
				// Another connection took this session: not one of ours.
				q.led.finish(c, "told:bye resumed")
				return true
			}
			// shutdown: the close follows; then resume elsewhere.
		}
	}
}

// agent runs the i-th agent until the run ends: it joins, says it is
// available, holds each call --hold (plus jitter) and hangs up; a lost
// connection is joined again (a new session) on the next agent node.
func (q *queueRun) agent(ctx context.Context, i int, up chan<- struct{}) {
	a := q.led.newAgent(i)
	signalled := false
	ready := func() {
		if !signalled {
			signalled = true
			up <- struct{}{}
		}
	}
	defer ready()
	rng := rand.New(rand.NewPCG(uint64(q.cfg.Seed), uint64(2*i+2)))
	urls := q.cfg.AgentURLs
	node := i % len(urls)
	var retryUntil time.Time
	retry := func(why string) {
		ready() // the customers start even when no agent could join
		q.led.with(func() { a.errors[why]++ })
		if retryUntil.IsZero() {
			retryUntil = time.Now().Add(q.cfg.RetryFor)
		}
		node = (node + 1) % len(urls)
		sleep(ctx, backoff(rng))
	}
	for ctx.Err() == nil {
		if !retryUntil.IsZero() && time.Now().After(retryUntil) {
			q.led.with(func() { a.gaveUp = true })
			return
		}
		// The client lives as long as the context it is dialled with.
		cl, err := client.Dial(ctx, client.Options{URL: urls[node], NoMedia: true, LoopbackOnly: q.cfg.LoopbackOnly})
		if err != nil {
			retry("connect")
			continue
		}
		tok, err := q.r.token(ctx, protocol.RoleAgent, i, node)
		if err == nil {
			jctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			if _, err = cl.Join(jctx, tok); err == nil {
				err = cl.Send(jctx, availableMsg())
			}
			cancel()
		}
		if err != nil {
			cl.Close()
			if ctx.Err() == nil {
				retry("join " + errorCode(err))
			}
			continue
		}
		q.led.agentUp(a, time.Now())
		retryUntil = time.Time{}
		ready()
		lost := q.agentConn(ctx, cl, a, rng)
		cl.Close()
		if !lost {
			return
		}
		q.led.agentDown(a)
		q.led.with(func() { a.reconnects++ })
		node = (node + 1) % len(urls)
		retryUntil = time.Now().Add(q.cfg.RetryFor)
		sleep(ctx, backoff(rng))
	}
}

// availableID is the id of an agent's available, to tell which errors
// answer it; hangupRef, followed by the room, the id of a hang-up.
const (
	availableID = "available"
	hangupRef   = "hangup:"
)

func availableMsg() protocol.Message {
	return protocol.Message{Type: protocol.TypeAvailable, ID: availableID}
}

// hold is how long an agent holds the next call.
func (q *queueRun) hold(rng *rand.Rand) time.Duration {
	d := q.cfg.Hold
	if q.cfg.HoldJitter > 0 {
		d += time.Duration(rng.Int64N(int64(q.cfg.HoldJitter)))
	}
	return d
}

// agentConn reads one agent connection until the run ends (false) or the
// connection is lost (true).
func (q *queueRun) agentConn(ctx context.Context, cl *client.Client, a *agentRec, rng *rand.Rand) bool {
	due := map[string]time.Time{}   // hang-ups to send
	again := map[string]time.Time{} // hang-ups refused for now (unavailable), to send again
	sendHangup := func(room string) {
		_ = cl.Send(ctx, protocol.Message{Type: protocol.TypeHangup, Room: room, ID: hangupRef + room})
	}
	hangup := func(room string) {
		q.led.agentHangup(a, room, time.Now())
		sendHangup(room)
	}
	// An available refused while the queue store was out of reach is
	// sent again, as an agent page would.
	var availAgain time.Time
	for {
		next := availAgain
		for _, m := range []map[string]time.Time{due, again} {
			for _, t := range m {
				if next.IsZero() || t.Before(next) {
					next = t
				}
			}
		}
		nctx, cancel := ctx, context.CancelFunc(func() {})
		if !next.IsZero() {
			nctx, cancel = context.WithDeadline(ctx, next)
		}
		msg, err := cl.Next(nctx)
		cancel()
		now := time.Now()
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return false
			case errors.Is(err, context.DeadlineExceeded):
				if !availAgain.IsZero() && !now.Before(availAgain) {
					availAgain = time.Time{}
					_ = cl.Send(ctx, availableMsg())
				}
				for room, t := range due {
					if !now.Before(t) {
						delete(due, room)
						hangup(room)
					}
				}
				for room, t := range again {
					if !now.Before(t) {
						delete(again, room)
						sendHangup(room)
					}
				}
				continue
			}
			code := strconv.Itoa(cl.CloseCode())
			q.led.with(func() { a.closes[code]++ })
			return true
		}
		switch msg.Type {
		case protocol.TypeAgentState:
			q.led.agentState(a, msg.State, now)
		case protocol.TypeAssigned:
			q.led.agentAssigned(a, msg.Room, now)
			if d := q.hold(rng); d > 0 {
				due[msg.Room] = now.Add(d)
			} else {
				hangup(msg.Room)
			}
		case protocol.TypeEnded:
			q.led.agentEnded(a, msg.Room, msg.Reason, now)
			delete(due, msg.Room)
			delete(again, msg.Room)
		case protocol.TypeInvite:
			_ = cl.Send(ctx, protocol.Message{Type: protocol.TypeAccept, Room: msg.Room})
		case protocol.TypeError:
			q.led.with(func() { a.errors[msg.Code]++ })
			if msg.Ref == availableID && retryable(msg.Code) {
				availAgain = now.Add(backoff(rng))
			}
			// A hang-up the server could not pass on to the call's node (the
			// bus down) is sent again, as an agent would press it again.
			if room, ok := strings.CutPrefix(msg.Ref, hangupRef); ok && retryable(msg.Code) {
				again[room] = now.Add(backoff(rng))
			}
		case protocol.TypeBye:
			q.led.with(func() { a.byes[msg.Reason]++ })
		case protocol.TypeQueueStats:
			if s := msg.Stats; s != nil {
				q.led.with(func() { q.led.stats = queueStatsSeen{at: now, available: s.Available, waiting: s.Waiting} })
			}
		}
	}
}
