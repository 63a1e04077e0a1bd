package signaling

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// Draining. A node being rolled (SIGTERM) first drains: it takes no new
// connection and starts no new call, but lets the calls in progress go on
// until they end, then exits (Server.Drain returns and the caller shuts the
// server down). What it does:
//
//   - Ready is false and ServeHTTP refuses new connections (503), so the
//     load balancer sends clients elsewhere; placement (hub.place) does not
//     run, since it asks Ready.
//   - Connections with no call get bye (shutdown) at once: waiting
//     customers (their places stay in the store, detached, for them to
//     resume on another node), agents not in a call, supervisors not
//     monitoring a call, connections not joined yet.
//   - Agents in a call are set away in the store (no node assigns them a
//     customer), their open invites are withdrawn (reason shutdown), and a
//     later "available" is refused. Each gets bye once its last call ends
//     (drainAfterCall, from sideEnded).
//   - Calls go on: chat, media, hang-up, a customer's resume into a call
//     hosted here (relayed from another node, since this one takes no
//     connection), all as usual. The node holds none of its connections for
//     a new call (reserveHere refuses them); a room another node
//     placed here just before it learned of the drain is hosted here, and
//     the drain waits for it too.
//
// The drain is over when no call is hosted here and no connection is open.
// Shutdown, called after Drain returns (or instead, for a second signal or a
// drain timeout), ends whatever is left as it always did.

// drainPoll is how often Drain checks whether the node is empty.
const drainPoll = 250 * time.Millisecond

// drainSweep is how often Drain looks for connections without a call
// that were also without one at the previous look (a connection whose
// call has just ended is normally told so and closed, or given bye, by
// then): they get bye.
const drainSweep = 5 * time.Second

// drainReport is how often Drain logs how much is left.
const drainReport = 30 * time.Second

// drainer records whether the server drains. Once set it stays set.
type drainer struct {
	on atomic.Bool
}

func (d *drainer) active() bool { return d.on.Load() }

// errDraining answers an agent's "available" during a drain.
var errDraining = protocol.Errorf(protocol.CodeInvalidState,
	"this server is draining: it gives no new customers; reconnect to take calls once your calls here end")

// Draining reports whether Drain has been called.
func (s *Server) Draining() bool { return s.drain.active() }

// Drain stops taking connections and calls and waits, until ctx ends, for
// the calls in progress to end and every connection to close (see the
// comment at the top of drain.go). It returns nil once the node is empty,
// ctx's error (wrapped) if ctx ended first. It may be called again; only
// the first call starts the drain. It does not shut the server down: call
// Shutdown after it, whatever it returned.
func (s *Server) Drain(ctx context.Context) error {
	if s.stopping() {
		return nil
	}
	start := time.Now()
	if s.drain.on.CompareAndSwap(false, true) {
		s.metrics.draining.Set(1)
		calls, conns := s.drainLeft()
		s.log.Info("draining: no new connections or calls; calls in progress go on", "calls", calls, "connections", conns)
		s.hub.drainStart()
	}
	poll := time.NewTicker(drainPoll)
	defer poll.Stop()
	lastSweep, lastReport := start, start
	var idle map[*session]bool // connections without a call at the last sweep
	for {
		calls, conns := s.drainLeft()
		if calls == 0 && conns == 0 {
			s.log.Info("drained: no call or connection left", "duration_s", int(time.Since(start).Seconds()))
			return nil
		}
		now := time.Now()
		if now.Sub(lastReport) >= drainReport {
			lastReport = now
			s.log.Info("draining", "calls", calls, "connections", conns, "elapsed_s", int(now.Sub(start).Seconds()))
		}
		if now.Sub(lastSweep) >= drainSweep {
			lastSweep = now
			idle = s.hub.drainSweep(idle)
		}
		select {
		case <-ctx.Done():
			s.log.Info("drain cut short", "calls", calls, "connections", conns, "err", ctx.Err())
			return fmt.Errorf("signaling drain: %w", ctx.Err())
		case <-poll.C:
		}
	}
}

// stopping reports whether Shutdown has begun.
func (s *Server) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// drainLeft counts the calls hosted here and the open connections.
func (s *Server) drainLeft() (calls, conns int) {
	s.mu.Lock()
	conns = len(s.sessions)
	s.mu.Unlock()
	h := s.hub
	h.mu.Lock()
	calls = h.calls.hostedCount()
	h.mu.Unlock()
	return calls, conns
}

// drainStart sets this node's agents away, withdraws their invites, and
// says bye to every connection without a call.
func (h *hub) drainStart() {
	h.mu.Lock()
	var agents []*session
	for s, st := range h.agents {
		st.wantAvailable = false // what sideEnded and reconcile apply from now on
		agents = append(agents, s)
	}
	h.mu.Unlock()
	for _, inv := range h.invites.all() {
		h.inviteDone(inv, protocol.ReasonShutdown, nil)
	}
	for _, s := range agents {
		ctx, cancel := h.storeCtx()
		err := h.store.presence.SetAgent(ctx, h.agentRecord(s), false)
		cancel()
		if err != nil {
			h.srv.log.Warn("setting an agent away for the drain failed", "org", s.org.ID, "err", err)
		}
	}
	h.drainSweep(nil)
	for _, s := range agents {
		if h.inCall(s) {
			h.sendAgentState(s) // away, or busy
		}
	}
}

// drainSweep says bye to the connections that hold no call, monitor no
// call, and are in prev (nil: all of them); it returns those it left alone
// for lack of being in prev.
func (h *hub) drainSweep(prev map[*session]bool) map[*session]bool {
	h.srv.mu.Lock()
	all := make([]*session, 0, len(h.srv.sessions))
	for s := range h.srv.sessions {
		all = append(all, s)
	}
	h.srv.mu.Unlock()
	later := make(map[*session]bool)
	h.mu.Lock()
	var bye []*session
	for _, s := range all {
		_, monitoring := h.monitoring[s]
		if h.calls.count(s) > 0 || monitoring {
			continue
		}
		if prev == nil || prev[s] {
			bye = append(bye, s)
		} else {
			later[s] = true
		}
	}
	h.mu.Unlock()
	for _, s := range bye {
		sayBye(s)
	}
	return later
}

// drainAfterCall gives bye to an agent whose call has ended while the node
// drains, if it holds no other call. Called by sideEnded.
func (h *hub) drainAfterCall(s *session) {
	if h.srv.drain.active() && !h.inCall(s) {
		sayBye(s)
	}
}

func (h *hub) inCall(s *session) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls.count(s) > 0
}

// sayBye tells a client the server is going away and closes its
// connection (1001): it reconnects, to another node.
func sayBye(s *session) {
	s.send(protocol.Message{Type: protocol.TypeBye, Reason: protocol.ReasonShutdown})
	s.closeWith(websocket.StatusGoingAway, "server draining")
}
