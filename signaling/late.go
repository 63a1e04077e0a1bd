package signaling

import (
	"sync"
	"time"

	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// Late messages. A call ends on the server while its clients go on
// talking: a page hangs up as the other side does, answers an offer sent
// just before ended, trickles a last candidate. Such a message about a
// call the session was in and that has ended is a natural race, not a
// protocol error: it is acknowledged silently (nothing to undo, nothing
// counted in helpcaster_signaling_errors_total). A chat is still refused,
// since its text was not delivered; a message from a session that had no
// such call is still invalid_state.

// lateWindow is how long after its last call ended a session's message
// that names no call is taken for a late one.
const lateWindow = 10 * time.Second

// keptEnds bounds how many ended calls are remembered per session.
const keptEnds = 8

// endedCalls remembers, for each local session, the calls it was in that
// have ended. It has its own lock, taken inside hub.mu or alone.
type endedCalls struct {
	mu sync.Mutex
	by map[*session]*endedLog // guarded by mu
}

type endedLog struct {
	ids  []string  // the most recent last
	last time.Time // when the last one ended
}

// note records that s is no longer in call id.
func (e *endedCalls) note(s *session, id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.by == nil {
		e.by = make(map[*session]*endedLog)
	}
	l := e.by[s]
	if l == nil {
		l = &endedLog{}
		e.by[s] = l
	}
	if len(l.ids) == keptEnds {
		l.ids = l.ids[1:]
	}
	l.ids = append(l.ids, id)
	l.last = time.Now()
}

// ended reports whether a message of s naming room (or none) concerns a
// call of s that has ended: room is one of them, or room is "" and its
// last call ended within lateWindow.
func (e *endedCalls) ended(s *session, room string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.by[s]
	if l == nil {
		return false
	}
	if room == "" {
		return time.Since(l.last) < lateWindow
	}
	for _, id := range l.ids {
		if id == room {
			return true
		}
	}
	return false
}

// forget drops what is remembered of s (its connection ended).
func (e *endedCalls) forget(s *session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.by, s)
}

// errCallEnded refuses a chat sent to a call that has ended.
var errCallEnded = protocol.Errorf(protocol.CodeInvalidState, "the call has ended; the message was not delivered")

// lateAnswer is what a message m of s that found no call of s gets:
// nothing when it is late for a call that has ended (a chat excepted),
// else err.
func (h *hub) lateAnswer(s *session, m protocol.Message, err error) error {
	if !h.ended.ended(s, m.Room) {
		return err
	}
	if m.Type == protocol.TypeChat {
		return errCallEnded
	}
	s.log.Debug("message after its call ended; ignored", "type", m.Type)
	return nil
}
