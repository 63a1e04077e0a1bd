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
// room's node to host it (relayHost). The host opens the room and binds the
// agent first (relayBind to the agent's node, which checks the agent is
// still there, tells it assigned and answers relayBound or relayGone), then
// the customer. If the agent is gone, the customer was never told and goes
// back to its place. If the customer is gone, the agent gets ended
// (peer_left) and is available again. A customer whose node has died keeps
// its place, detached, so it can resume elsewhere.

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
	relayHost    = "host"    // to the room's node: host a call for A
	relayBind    = "bind"    // to a side's node: tell the session assigned (Msg)
	relayBound   = "bound"   // reply: the session was told
	relayGone    = "gone"    // reply: no such session (left, or not waiting)
	relayDeliver = "deliver" // to a side's node: send Msg to the session
	relayClient  = "client"  // to the room's node: the session sent Msg
	relayLeft    = "left"    // to the room's node: the session's connection ended
	relayEnded   = "ended"   // to a side's node: the call ended (Msg)
	relayInvite  = "invite"  // to the agent's node: offer A to the agent for Timeout
	relayMoved   = "moved"   // to a customer's old node: it resumed elsewhere
	relayDetach  = "detach"  // to the room's node: the customer's connection ended; keep the call for the grace
	relayRebind  = "rebind"  // to the room's node: the customer resumed on the sender's node
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
	Resume  bool              `json:"r,omitempty"` // bind: the customer resumes into a call (it is not waiting)
}

// relay sends m to node; false if it could not be delivered.
func (h *hub) relay(node string, m relayMsg) bool {
	if h.cluster == nil || node == "" {
		return false
	}
	m.From = h.self
	data, err := json.Marshal(m)
	if err != nil {
		h.srv.log.Error("encode relay message", "kind", m.Kind, "err", err)
		return false
	}
	ctx, cancel := context.WithTimeout(h.srv.ctx, 2*time.Second)
	defer cancel()
	ok, err := h.cluster.Send(ctx, node, data)
	if err != nil {
		h.srv.log.Warn("relay to another node failed", "kind", m.Kind, "node", node, "err", err)
		return false
	}
	return ok
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

// hostCall opens the room for an assignment made by any node and binds
// its sides, the agent first.
func (h *hub) hostCall(a queue.Assignment, id string) {
	c := h.newCall(a, id)
	if err := h.openRoom(c); err != nil {
		h.srv.log.Error("could not host a call", "org", a.Org, "queue", a.Queue, "err", err)
		ctx, cancel := h.storeCtx()
		defer cancel()
		if err := h.srv.store.Requeue(ctx, a.Customer); err != nil {
			h.srv.log.Error("requeue failed", "org", a.Org, "queue", a.Queue, "err", err)
		}
		if err := h.srv.store.Release(ctx, a.Org, a.Agent); err != nil {
			h.srv.log.Error("release agent failed", "org", a.Org, "err", err)
		}
		return
	}
	c.deadline = time.AfterFunc(startDeadline, func() {
		h.srv.goTracked(func() {
			h.mu.Lock()
			role, pending := protocol.RoleAgent, !c.live && !c.ended
			if c.bound {
				role = protocol.RoleCustomer
			}
			h.mu.Unlock()
			if pending {
				h.startFailed(c, role, startTimedOut)
			}
		})
	})
	h.mu.Lock()
	h.hosted[id] = c
	h.mu.Unlock()
	h.bind(c, &c.agent)
}

// heldBy reports whether node holds the connection of a side of hosted
// call c: only that node may speak for the side.
func (h *hub) heldBy(c *call, role, node string) bool {
	_, at, _ := h.whereIs(c.side(role))
	return at == node
}

// bind tells one side of a hosted call that it is assigned.
func (h *hub) bind(c *call, sd *side) {
	msg := h.assignedMessage(c, sd)
	_, node, id := h.whereIs(sd)
	if node == "" {
		s := h.bindHere(c, c, sd.role, id, msg, c.live)
		h.sideBound(c, sd.role, s != nil, false)
		return
	}
	if !h.relay(node, relayMsg{Kind: relayBind, Call: c.id, Org: c.org, Queue: c.queue, Side: sd.role, Session: id, Msg: &msg, Resume: c.live}) {
		h.sideBound(c, sd.role, false, true)
	}
}

// bindHere binds local session id (with role) to call c, or to a stub of it
// when c is hosted elsewhere, and tells it msg (assigned). A customer must
// still be waiting here, unless it is resuming into the call. The target's
// side is set in the step that makes the call the session's, so that the
// session's end, however soon, finds it there. It returns the session, or
// nil if it is gone.
func (h *hub) bindHere(c, target *call, role, id string, msg protocol.Message, resume bool) *session {
	h.mu.Lock()
	s := h.sessions[id]
	ok := s != nil && s.role == role && s.org.ID == c.org && !h.atCapacityLocked(s)
	if ok && role == protocol.RoleCustomer && !resume {
		_, ok = h.entries[s]
	}
	if ok {
		delete(h.queued, s)
		delete(h.entries, s)
		h.addCallLocked(s, target)
		sd := target.side(role)
		sd.role, sd.id, sd.s = role, s.id, s
	}
	h.mu.Unlock()
	if !ok {
		return nil
	}
	if role == protocol.RoleAgent {
		h.sendAgentState(s)
	}
	s.send(msg)
	return s
}

// sideBound advances a call started across nodes once a side answered.
// dead means its node could not be reached.
func (h *hub) sideBound(c *call, role string, ok, dead bool) {
	h.mu.Lock()
	ended, live := c.ended, c.live
	if ok && role == protocol.RoleAgent {
		c.bound = true
	}
	h.mu.Unlock()
	switch {
	case ended:
	case live && !ok:
		h.detachSide(c, role, nil) // a resumed customer gone again: the grace goes on
	case live:
	case !ok:
		why := startGone
		if dead {
			why = startDead
		}
		h.startFailed(c, role, why)
	case role == protocol.RoleAgent:
		h.bind(c, &c.cust)
	default:
		c.deadline.Stop()
		h.callLive(c)
		h.kick(c.org, c.queue)
	}
}

// Why a side of a call started across nodes could not be bound.
const (
	startGone     = iota // its node says the session is not there
	startDead            // its node could not be reached
	startTimedOut        // no answer before startDeadline
)

// startFailed undoes a call whose side role could not be bound. Without an
// agent, the customer (never told) goes back to its place; an agent that is
// gone is forgotten, one that did not answer in time is released and told
// the call ended, in case it was told assigned after all. Without a
// customer, the agent's call ends (peer_left); a customer whose node died
// goes back to its place, detached, to resume within the grace.
func (h *hub) startFailed(c *call, role string, why int) {
	ctx, cancel := h.storeCtx()
	defer cancel()
	if role == protocol.RoleAgent {
		h.mu.Lock()
		if c.ended {
			h.mu.Unlock()
			return
		}
		c.ended = true
		delete(h.hosted, c.id)
		h.mu.Unlock()
		c.deadline.Stop()
		h.closeRoom(c)
		if err := h.srv.store.Requeue(ctx, c.entry); err != nil {
			h.srv.log.Error("requeue failed", "org", c.org, "queue", c.queue, "err", err)
		}
		var err error
		if why == startTimedOut {
			err = h.srv.store.Release(ctx, c.org, c.agent.id)
			ended := protocol.Message{Type: protocol.TypeEnded, Reason: protocol.ReasonFailed, Room: c.id}
			h.relay(c.agent.node, relayMsg{Kind: relayEnded, Call: c.id, Side: protocol.RoleAgent, Session: c.agent.id, Msg: &ended})
		} else {
			err = h.srv.store.RemoveAgent(ctx, c.org, c.agent.id)
		}
		if err != nil {
			h.srv.log.Error("undo agent after a failed start", "org", c.org, "err", err)
		}
		h.srv.goTracked(func() { h.place(c.org, c.queue) })
		return
	}
	if why == startDead {
		if err := h.srv.store.Requeue(ctx, c.entry); err == nil {
			_, _ = h.srv.store.Detach(ctx, c.org, c.queue, c.entry.Session, time.Now())
		}
	}
	h.endCall(c, protocol.RoleCustomer, protocol.ReasonHangup)
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
			h.srv.goTracked(func() { h.hostCall(a, m.Call) })
		}
	case relayBind:
		if m.Msg == nil {
			return
		}
		stub := &call{id: m.Call, org: m.Org, queue: m.Queue, host: m.From}
		reply := relayGone
		if !h.drainRefusesBind(m.Resume) && h.bindHere(stub, stub, m.Side, m.Session, *m.Msg, m.Resume) != nil {
			reply = relayBound
		}
		from := m.From
		h.srv.goTracked(func() { h.relay(from, relayMsg{Kind: reply, Call: m.Call, Side: m.Side}) })
	case relayBound, relayGone:
		if c := h.hostedCall(m.Call); c != nil {
			h.srv.goTracked(func() { h.sideBound(c, m.Side, m.Kind == relayBound, false) })
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
		if c == nil || m.Msg == nil || !h.heldBy(c, m.Side, m.From) {
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
		s := h.boundSession(m.Session, m.Call)
		if s == nil || m.Msg == nil {
			return
		}
		h.mu.Lock()
		c := h.calls[s][m.Call]
		h.removeCallLocked(s, c)
		h.mu.Unlock()
		if c == nil {
			return
		}
		msg := *m.Msg
		h.srv.goTracked(func() { h.sideEnded(s, msg, c.org, c.queue) })
	case relayInvite:
		if m.A != nil {
			a, timeout := *m.A, m.Timeout
			h.srv.goTracked(func() { h.invite(a, timeout) })
		}
	case relayMoved:
		h.movedAway(m.Session)
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
