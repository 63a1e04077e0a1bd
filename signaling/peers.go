package signaling

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// The other nodes. A hub reaches the nodes that share its queue store
// through peers, which has two implementations: alone, when this node is the
// only one, and overBus, when a Cluster links it to others. The hub asks the
// same questions of both (where does a new room go, is that node alive,
// deliver this message there), so a single node is the cluster of one, not
// a branch in every method: alone hosts every room here and delivers
// nothing, and every side of every call is then on this node.
//
// peers owns the message encoding and the bus; what a message means is the
// hub's (relayed.go). Neither implementation has mutable state of its own.

// peers links the hub to the other nodes, if any.
type peers interface {
	// self is this node's id ("" when alone).
	self() string
	// clustered reports whether other nodes may share the store, so that
	// what dead nodes left behind has to be looked after.
	clustered() bool
	// roomNode picks the node for a new room: the least loaded live one, or
	// this one when alone or when the registry cannot say.
	roomNode(ctx context.Context) string
	// live returns the ids of the live nodes.
	live(ctx context.Context) (map[string]bool, error)
	// send delivers m to node's hub. When it was not delivered, gone says
	// that nobody listens on the node's channel (the node is dead or has
	// stopped), as opposed to the bus failing (Redis unreachable), after
	// which the node may well be alive.
	send(ctx context.Context, node string, m relayMsg) (ok, gone bool)
	// listen calls f with each message sent to this node, in order, on one
	// goroutine, until ctx ends.
	listen(ctx context.Context, f func(relayMsg))
}

// alone is peers for a node with no others: every room is here.
type alone struct{}

func (alone) self() string                                           { return "" }
func (alone) clustered() bool                                        { return false }
func (alone) roomNode(context.Context) string                        { return "" }
func (alone) live(context.Context) (map[string]bool, error)          { return map[string]bool{"": true}, nil }
func (alone) send(context.Context, string, relayMsg) (ok, gone bool) { return false, true }
func (alone) listen(context.Context, func(relayMsg))                 {}

// overBus is peers through a Cluster: its registry of live nodes and its
// message bus, with messages encoded as JSON.
type overBus struct {
	cluster Cluster
	id      string
	log     *slog.Logger
}

func newOverBus(c Cluster, log *slog.Logger) *overBus {
	return &overBus{cluster: c, id: c.NodeID(), log: log}
}

func (b *overBus) self() string    { return b.id }
func (b *overBus) clustered() bool { return true }

func (b *overBus) roomNode(ctx context.Context) string {
	id, err := b.cluster.RoomNode(ctx)
	if err != nil || id == "" {
		return b.id
	}
	return id
}

func (b *overBus) live(ctx context.Context) (map[string]bool, error) {
	return b.cluster.Live(ctx)
}

func (b *overBus) send(ctx context.Context, node string, m relayMsg) (ok, gone bool) {
	if node == "" {
		return false, true
	}
	m.From = b.id
	data, err := json.Marshal(m)
	if err != nil {
		b.log.Error("encode relay message", "kind", m.Kind, "err", err)
		return false, false
	}
	ok, err = b.cluster.Send(ctx, node, data)
	if err != nil {
		b.log.Warn("relay to another node failed", "kind", m.Kind, "node", node, "err", err)
		return false, false
	}
	return ok, !ok
}

// listen receives messages until ctx ends, reconnecting after errors. A
// message that does not decode is logged and dropped.
func (b *overBus) listen(ctx context.Context, f func(relayMsg)) {
	decode := func(data []byte) {
		var m relayMsg
		if err := json.Unmarshal(data, &m); err != nil {
			b.log.Warn("malformed relay message", "err", err)
			return
		}
		f(m)
	}
	ready := make(chan struct{})
	for ctx.Err() == nil {
		err := b.cluster.Listen(ctx, ready, decode)
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("cluster bus", "err", err)
		ready = nil
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

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
