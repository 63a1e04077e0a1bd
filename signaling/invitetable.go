package signaling

import (
	"sync"
	"time"

	"github.com/helpcaster/helpcaster/signaling/queue"
)

// The invite table: assignments offered to this node's agents (open
// invites, by id) and the invites accepted whose calls are being set up (by
// call id). It has its own lock, a leaf: its methods call nothing outside
// the table, so they may be called with hub.mu held, which is how an
// invite's close is decided in the same step as what the hub then reads of
// its sides. Exactly one of accept, decline, expiry, withdrawal and
// shutdown closes each invite.

// invite is an assignment offered to an agent.
type invite struct {
	id     string // the room the call will have
	a      queue.Assignment
	cust   *session // nil when the customer is on another node
	agent  *session
	timer  *time.Timer
	closed bool // answered, expired or withdrawn; guarded by inviteTable.mu
}

// acceptedInvite is an invite its agent accepted whose call is being set
// up.
type acceptedInvite struct {
	agent *session
	at    time.Time
}

type inviteTable struct {
	mu       sync.Mutex
	open     map[string]*invite
	accepted map[string]acceptedInvite
}

func newInviteTable() *inviteTable {
	return &inviteTable{open: make(map[string]*invite), accepted: make(map[string]acceptedInvite)}
}

// add opens inv, to expire after d. The timer is set in the step that
// publishes the invite, so that a close however soon finds and stops it.
func (t *inviteTable) add(inv *invite, d time.Duration, expire func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.open[inv.id] = inv
	inv.timer = time.AfterFunc(d, expire)
}

// get returns open invite id, or nil.
func (t *inviteTable) get(id string) *invite {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.open[id]
}

// take closes and returns open invite id of agent; nil if there is none.
func (t *inviteTable) take(id string, agent *session) *invite {
	t.mu.Lock()
	defer t.mu.Unlock()
	inv := t.open[id]
	if inv == nil || inv.agent != agent || inv.closed {
		return nil
	}
	inv.closed = true
	delete(t.open, id)
	return inv
}

// close closes inv; false if it was closed already.
func (t *inviteTable) close(inv *invite) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if inv.closed {
		return false
	}
	inv.closed = true
	delete(t.open, inv.id)
	return true
}

// all returns the open invites.
func (t *inviteTable) all() []*invite {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*invite, 0, len(t.open))
	for _, inv := range t.open {
		out = append(out, inv)
	}
	return out
}

// of returns the open invites s is a side of.
func (t *inviteTable) of(s *session) []*invite {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*invite
	for _, inv := range t.open {
		if (inv.cust != nil && inv.cust == s) || inv.agent == s {
			out = append(out, inv)
		}
	}
	return out
}

// customerInvited reports whether customer s is in an open invite.
func (t *inviteTable) customerInvited(s *session) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, inv := range t.open {
		if inv.cust != nil && inv.cust == s {
			return true
		}
	}
	return false
}

// agentInvites counts the open invites of agent s (each holds a slot in
// the store).
func (t *inviteTable) agentInvites(s *session) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, inv := range t.open {
		if inv.agent == s {
			n++
		}
	}
	return n
}

// closeAll closes every open invite and stops its timer (shutdown).
func (t *inviteTable) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, inv := range t.open {
		inv.timer.Stop()
		inv.closed = true
		delete(t.open, id)
	}
}

// accept records that agent accepted invite call, whose call is being set
// up.
func (t *inviteTable) accept(call string, agent *session, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.accepted[call] = acceptedInvite{agent: agent, at: at}
}

// takeAccepted removes and returns accepted invite call.
func (t *inviteTable) takeAccepted(call string) (acceptedInvite, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ai, ok := t.accepted[call]
	delete(t.accepted, call)
	return ai, ok
}

// pruneAccepted forgets accepted invites older than age.
func (t *inviteTable) pruneAccepted(now time.Time, age time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, ai := range t.accepted {
		if now.Sub(ai.at) > age {
			delete(t.accepted, id)
		}
	}
}
