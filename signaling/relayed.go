package signaling

import (
	"context"
	"time"

	"github.com/helpcaster/helpcaster/signaling/protocol"
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
//
// This file is the hub's end of the relay: how it sends to a node, and what
// each message from another node means here (onRelay, on the bus's one
// goroutine, in order). peers.go carries the messages.

// relay sends m to node; false if it could not be delivered.
func (h *hub) relay(node string, m relayMsg) bool {
	ok, _ := h.deliver(node, m)
	return ok
}

// deliver sends m to node (peers.send says what ok and gone mean).
func (h *hub) deliver(node string, m relayMsg) (ok, gone bool) {
	ctx, cancel := context.WithTimeout(h.srv.ctx, 2*time.Second)
	defer cancel()
	return h.peers.send(ctx, node, m)
}

// roomNode picks the node for a new room (peers.roomNode).
func (h *hub) roomNode() string {
	ctx, cancel := h.storeCtx()
	defer cancel()
	return h.peers.roomNode(ctx)
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

// onRelay handles a message from another node. It runs on the bus's
// goroutine, in order; slow work goes to tracked goroutines.
func (h *hub) onRelay(m relayMsg) {
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
		c := h.calls.get(s, m.Call)
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
