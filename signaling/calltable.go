package signaling

import "iter"

// The call table: which calls each of this node's sessions is in (calls
// hosted here, or stubs of calls hosted elsewhere), and the calls whose room
// is here. It has no lock of its own: hub.mu guards it, because a call is
// recorded in the same step that checks its sides' sessions are still here
// (startCall, bindHere, takeCommit), and forgotten in the same step that
// forgets its session (disconnected). Every method is called with hub.mu
// held.
type callTable struct {
	bySession map[*session]map[string]*call
	hosted    map[string]*call
}

func newCallTable() *callTable {
	return &callTable{bySession: make(map[*session]map[string]*call), hosted: make(map[string]*call)}
}

// add records that local session s is in call c.
func (t *callTable) add(s *session, c *call) {
	m := t.bySession[s]
	if m == nil {
		m = make(map[string]*call, 1)
		t.bySession[s] = m
	}
	m[c.id] = c
}

// remove forgets that s is in c; true if it was.
func (t *callTable) remove(s *session, c *call) bool {
	m := t.bySession[s]
	if c == nil || m[c.id] != c {
		return false
	}
	delete(m, c.id)
	if len(m) == 0 {
		delete(t.bySession, s)
	}
	return true
}

// of returns s's calls by id; the map is the table's, to read only.
func (t *callTable) of(s *session) map[string]*call { return t.bySession[s] }

// get returns s's call id, or nil.
func (t *callTable) get(s *session, id string) *call { return t.bySession[s][id] }

// count is how many calls s is in.
func (t *callTable) count(s *session) int { return len(t.bySession[s]) }

// forget removes and returns s's calls.
func (t *callTable) forget(s *session) map[string]*call {
	m := t.bySession[s]
	delete(t.bySession, s)
	return m
}

// all yields each local session with each call it is in.
func (t *callTable) all() iter.Seq2[*session, *call] {
	return func(yield func(*session, *call) bool) {
		for s, cs := range t.bySession {
			for _, c := range cs {
				if !yield(s, c) {
					return
				}
			}
		}
	}
}

// host records that c's room is on this node.
func (t *callTable) host(c *call) { t.hosted[c.id] = c }

// unhost forgets hosted call id.
func (t *callTable) unhost(id string) { delete(t.hosted, id) }

// hostedCall returns hosted call id, or nil.
func (t *callTable) hostedCall(id string) *call { return t.hosted[id] }

// hostedCount is how many calls are hosted here.
func (t *callTable) hostedCount() int { return len(t.hosted) }

// allHosted yields each call hosted here.
func (t *callTable) allHosted() iter.Seq[*call] {
	return func(yield func(*call) bool) {
		for _, c := range t.hosted {
			if !yield(c) {
				return
			}
		}
	}
}
