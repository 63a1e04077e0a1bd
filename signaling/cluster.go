package signaling

import (
	"context"
	"encoding/json"
	"time"

	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// Several nodes. Nodes share the queue store and know each other through a
// Cluster (a registry of live nodes with their load, and a message bus). A
// room is placed on the least loaded live node. A participant's WebSocket
// may be on any node: its node and the room's node exchange the signals
// over the bus (relayMsg), so clients never notice where the room is.
//
// Starting a call across nodes: the node that made the assignment asks the
// room's node to host it (relayHost). The host opens the room and asks the
// node of each side to hold it (relayReserve, answered relayHeld); once both
// are held it commits (relayCommit: each side's node tells its client
// assigned), and at the first refusal or after startDeadline it aborts
// (relayAbort: the held sides are let go, a held customer put back at its
// place). setup.go has the rules; docs/architecture.md the state machine.

// Cluster links this node to the others sharing its queue store.
type Cluster interface {
	// NodeID is this node's id.
	NodeID() string
	// RoomNode returns the id of the least loaded live node.
	RoomNode(ctx context.Context) (string, error)
	// Live returns the ids of the live nodes.
	Live(ctx context.Context) (map[string]bool, error)
	// Send delivers msg to node's hub; false when no such node listens.
	Send(ctx context.Context, node string, msg []byte) (bool, error)
	// Listen calls f with each message sent to this node, in order, until
	// ctx ends; ready is closed once messages are being received.
	Listen(ctx context.Context, ready chan<- struct{}, f func([]byte)) error
}

// Relay message kinds.
const (
	relayHost     = "host"     // to the room's node: host a call for A
	relayReserve  = "reserve"  // to a side's node: hold the session for the call; Msg is its assigned
	relayHeld     = "held"     // reply to reserve: held (Why ""), or why not; also: a hold was given up
	relayCommit   = "commit"   // to a side's node: tell the held session assigned
	relayTold     = "told"     // reply to commit: the session was told (a refusal is a held with Why)
	relayAbort    = "abort"    // to a side's node: let the held session go, untold
	relayAudit    = "audit"    // to a room's node: the calls (Calls) this node has sides of
	relayUnknown  = "unknown"  // reply to audit or client: no such calls (Calls) here
	relayBind     = "bind"     // to a resumed customer's node: tell the session assigned (Msg)
	relayBound    = "bound"    // reply: the session was told
	relayGone     = "gone"     // reply: no such session (left, or not waiting)
	relayDeliver  = "deliver"  // to a side's node: send Msg to the session
	relayClient   = "client"   // to the room's node: the session sent Msg
	relayLeft     = "left"     // to the room's node: the session's connection ended
	relayEnded    = "ended"    // to a side's node: the call ended (Msg)
	relayInvite   = "invite"   // to the agent's node: offer A to the agent for Timeout
	relayMoved    = "moved"    // to a customer's old node: it resumed elsewhere
	relayDetach   = "detach"   // to the room's node: the customer's connection ended; keep the call for the grace
	relayRebind   = "rebind"   // to the room's node: the customer resumed on the sender's node
	relayReplaced = "replaced" // to a session's old node: its subject joined on the sender's node (subject.go)
)

// relayMsg is one message between nodes.
type relayMsg struct {
	Kind    string            `json:"k"`
	From    string            `json:"f"`
	Call    string            `json:"c,omitempty"`
	Org     string            `json:"o,omitempty"`
	Queue   string            `json:"q,omitempty"`
	Side    string            `json:"s,omitempty"` // the role of the side concerned
	Session string            `json:"sid,omitempty"`
	A       *queue.Assignment `json:"a,omitempty"`
	Msg     *protocol.Message `json:"m,omitempty"`
	Timeout time.Duration     `json:"t,omitempty"`
	Why     string            `json:"w,omitempty"` // held: why the side is not held ("" held)
	Calls   []string          `json:"cs,omitempty"`
}

// relay sends m to node; false if it could not be delivered.
func (h *hub) relay(node string, m relayMsg) bool {
	ok, _ := h.deliver(node, m)
	return ok
}

// deliver sends m to node. gone says, when it was not delivered, that
// nobody listens on the node's channel (the node is dead or has stopped),
// as opposed to the bus failing (Redis unreachable), after which the node
// may well be alive.
func (h *hub) deliver(node string, m relayMsg) (ok, gone bool) {
	if h.cluster == nil || node == "" {
		return false, true
	}
	m.From = h.self
	data, err := json.Marshal(m)
	if err != nil {
		h.srv.log.Error("encode relay message", "kind", m.Kind, "err", err)
		return false, false
	}
	ctx, cancel := context.WithTimeout(h.srv.ctx, 2*time.Second)
	defer cancel()
	ok, err = h.cluster.Send(ctx, node, data)
	if err != nil {
		h.srv.log.Warn("relay to another node failed", "kind", m.Kind, "node", node, "err", err)
		return false, false
	}
	return ok, !ok
}

// roomNode picks the node for a new room: the least loaded live one, or
// this one when alone or when the registry cannot say.
func (h *hub) roomNode() string {
	if h.cluster == nil {
		return h.self
	}
	ctx, cancel := h.storeCtx()
	defer cancel()
	id, err := h.cluster.RoomNode(ctx)
	if err != nil || id == "" {
		return h.self
	}
	return id
}

func (h *hub) isSelf(node string) bool { return node == "" || node == h.self }

// nodeOf is node as a side records it: "" for this node.
func (h *hub) nodeOf(node string) string {
	if h.isSelf(node) {
		return ""
	}
	return node
}

// startDeadline bounds how long a call started across nodes may take to
// bind both sides.
const startDeadline = 5 * time.Second

// heldBy reports whether node holds the connection of a side of hosted
// call c: only that node may speak for the side.
func (h *hub) heldBy(c *call, role, node string) bool {
	_, at, _ := h.whereIs(c.side(role))
	return at == node
}

// bind tells the resumed customer side of a live call hosted here that it
// is assigned again (resume.go).
func (h *hub) bind(c *call, sd *side) {
	msg := h.assignedMessage(c, sd)
	_, node, id := h.whereIs(sd)
	if node == "" {
		s := h.bindHere(c, c, sd.role, id, msg)
		h.sideBound(c, sd.role, s != nil)
		return
	}
	if !h.relay(node, relayMsg{Kind: relayBind, Call: c.id, Org: c.org, Queue: c.queue, Side: sd.role, Session: id, Msg: &msg}) {
		h.sideBound(c, sd.role, false)
	}
}

// bindHere binds local customer id, resuming into call c, to c or to a
// stub of it when c is hosted elsewhere, and tells it msg (assigned). The
// target's side is set in the step that makes the call the session's, so
// that the session's end, however soon, finds it there. It returns the
// session, or nil if it is gone.
func (h *hub) bindHere(c, target *call, role, id string, msg protocol.Message) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[id]
	if s == nil || s.role != role || s.org.ID != c.org || h.atCapacityLocked(s) {
		return nil
	}
	delete(h.queued, s)
	delete(h.entries, s)
	h.addCallLocked(s, target)
	sd := target.side(role)
	sd.role, sd.id, sd.s = role, s.id, s
	s.send(msg)
	return s
}

// sideBound follows a resumed customer's rebind: one that is gone again
// is detached, and the grace goes on.
func (h *hub) sideBound(c *call, role string, ok bool) {
	h.mu.Lock()
	ended := c.ended
	h.mu.Unlock()
	if !ended && !ok {
		h.detachSide(c, role, nil)
	}
}

// onRelay handles a message from another node. It runs on the bus's
// goroutine, in order; slow work goes to tracked goroutines.
func (h *hub) onRelay(data []byte) {
	var m relayMsg
	if err := json.Unmarshal(data, &m); err != nil {
		h.srv.log.Warn("malformed relay message", "err", err)
		return
	}
	switch m.Kind {
	case relayHost:
		if m.A != nil {
			a := *m.A
			h.srv.goTracked(func() { h.setUp(a, m.Call) })
		}
	case relayReserve:
		if m.Msg == nil {
			return
		}
		stub := &call{id: m.Call, org: m.Org, queue: m.Queue, host: m.From, started: time.Now()}
		why := h.reserveHere(stub, m.Side, m.Session, *m.Msg)
		h.srv.log.Debug("call setup: reserve", "call", m.Call, "role", m.Side, "refused", why)
		from := m.From
		h.srv.goTracked(func() { h.relay(from, relayMsg{Kind: relayHeld, Call: m.Call, Side: m.Side, Why: why}) })
	case relayHeld:
		if c := h.hostedCall(m.Call); c != nil && h.heldBy(c, m.Side, m.From) {
			h.srv.goTracked(func() { h.reserved(c, m.Side, m.Why) })
		}
	case relayCommit:
		from, reply := m.From, relayMsg{Kind: relayTold, Call: m.Call, Side: m.Side}
		if h.commitHere(holdKey{m.Call, m.Side}) != commitTold {
			reply = relayMsg{Kind: relayHeld, Call: m.Call, Side: m.Side, Why: refusedGone}
		}
		h.srv.goTracked(func() { h.relay(from, reply) })
	case relayTold:
		if c := h.hostedCall(m.Call); c != nil && m.Side == protocol.RoleCustomer && h.heldBy(c, m.Side, m.From) {
			h.srv.goTracked(func() { h.customerTold(c) })
		}
	case relayAbort:
		k := holdKey{m.Call, m.Side}
		h.srv.goTracked(func() { h.abortHere(k) })
	case relayAudit:
		if unknown := h.unknownCalls(m.From, m.Calls); len(unknown) > 0 {
			from := m.From
			h.srv.goTracked(func() { h.relay(from, relayMsg{Kind: relayUnknown, Calls: unknown}) })
		}
	case relayUnknown:
		h.srv.goTracked(func() { h.endUnknownStubs(m.From, m.Calls) })
	case relayBind:
		if m.Msg == nil {
			return
		}
		stub := &call{id: m.Call, org: m.Org, queue: m.Queue, host: m.From, started: time.Now()}
		reply := relayGone
		if h.bindHere(stub, stub, m.Side, m.Session, *m.Msg) != nil {
			reply = relayBound
		}
		from := m.From
		h.srv.goTracked(func() { h.relay(from, relayMsg{Kind: reply, Call: m.Call, Side: m.Side}) })
	case relayBound, relayGone:
		if c := h.hostedCall(m.Call); c != nil {
			h.srv.goTracked(func() { h.sideBound(c, m.Side, m.Kind == relayBound) })
		} else if m.Kind == relayGone && m.Session != "" {
			h.resumeFailed(m.Session, m.Call) // the call this customer resumed into is gone
		}
	case relayDetach:
		if c := h.hostedCall(m.Call); c != nil && h.heldBy(c, m.Side, m.From) {
			from := m.From
			h.srv.goTracked(func() { h.detachSide(c, m.Side, func(sd *side) bool { return sd.node == from }) })
		}
	case relayRebind:
		from, call, session := m.From, m.Call, m.Session
		h.srv.goTracked(func() { h.rebind(call, from, session) })
	case relayDeliver:
		if s := h.boundSession(m.Session, m.Call); s != nil && m.Msg != nil {
			s.send(*m.Msg)
		}
	case relayClient:
		c := h.hostedCall(m.Call)
		if c == nil {
			// Its end was lost on the way: the sender ends its side now.
			from, calls := m.From, []string{m.Call}
			h.srv.goTracked(func() { h.relay(from, relayMsg{Kind: relayUnknown, Calls: calls}) })
			return
		}
		if m.Msg == nil || !h.heldBy(c, m.Side, m.From) {
			return
		}
		if err := h.callMsg(c, m.Side, *m.Msg); err != nil {
			em := protocol.ErrorMessage(err, m.Msg.ID)
			h.sendTo(c, c.side(m.Side), em)
		}
	case relayLeft:
		if c := h.hostedCall(m.Call); c != nil && h.heldBy(c, m.Side, m.From) {
			h.srv.goTracked(func() { h.endCall(c, m.Side, protocol.ReasonHangup) })
		}
	case relayEnded:
		if m.Msg == nil {
			return
		}
		h.srv.log.Debug("call ended elsewhere", "call", m.Call, "role", m.Side)
		msg := *m.Msg
		if h.endedHeld(holdKey{m.Call, m.Side}, msg) {
			return
		}
		s := h.boundSession(m.Session, m.Call)
		if s == nil {
			return
		}
		h.mu.Lock()
		c := h.calls[s][m.Call]
		h.removeCallLocked(s, c)
		h.mu.Unlock()
		if c == nil {
			return
		}
		h.srv.goTracked(func() { h.sideEnded(s, msg, c.org, c.queue) })
	case relayInvite:
		if m.A != nil {
			a, timeout := *m.A, m.Timeout
			h.srv.goTracked(func() { h.invite(a, timeout) })
		}
	case relayMoved:
		h.movedAway(m.Session)
	case relayReplaced:
		id := m.Session
		h.srv.goTracked(func() { h.replacedHere(id) })
	}
}

func (h *hub) hostedCall(id string) *call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hosted[id]
}

// boundSession returns local session id if it is in call callID.
func (h *hub) boundSession(id, callID string) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[id]
	if s == nil || h.calls[s][callID] == nil {
		return nil
	}
	return s
}

// listen receives relay messages until the server's context ends,
// reconnecting after errors.
func (h *hub) listen() {
	ready := make(chan struct{})
	for h.srv.ctx.Err() == nil {
		err := h.cluster.Listen(h.srv.ctx, ready, h.onRelay)
		if h.srv.ctx.Err() != nil {
			return
		}
		h.srv.log.Warn("cluster bus", "err", err)
		ready = nil
		select {
		case <-h.srv.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
