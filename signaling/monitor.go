package signaling

import (
	"github.com/helpcaster/helpcaster/sfu"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/pion/webrtc/v4"
)

// Monitoring. A supervisor listens in on a live call of its own
// organization: "monitor" with the call's room makes it a third participant
// of the room that only receives. The two parties are not told; an
// organization that monitors calls says so to its customers, as call
// centers do. It serves coaching and quality checks, and it is how the load
// harness measures fan-out (many supervisors on one call). A supervisor
// monitors one call at a time, and only a call whose room is on the node
// its connection reached.

// monitor starts s monitoring the call room.
func (h *hub) monitor(s *session, room string) error {
	if s.role != protocol.RoleSupervisor {
		return protocol.Errorf(protocol.CodeInvalidState, "only supervisors monitor calls")
	}
	h.mu.Lock()
	if _, busy := h.monitoring[s]; busy {
		h.mu.Unlock()
		return protocol.Errorf(protocol.CodeInvalidState, "already monitoring a call: hang up first")
	}
	c := h.calls.hostedCall(room)
	// Another organization's call is answered as a call that does not
	// exist: its id tells the supervisor nothing.
	if c == nil || c.org != s.org.ID || c.ended || !c.live {
		h.mu.Unlock()
		return protocol.Errorf(protocol.CodeInvalidState, "no such call in progress on this server")
	}
	h.monitoring[s] = c
	h.mu.Unlock()

	// assigned goes first: the room offers the call's tracks as soon as
	// the supervisor joins it.
	peer := c.cust.peer
	s.send(protocol.Message{Type: protocol.TypeAssigned, Room: c.id, Role: protocol.RoleSupervisor, Peer: &peer,
		ICEServers: h.srv.iceServers(c.org, s.id)})
	self := new(partRef)
	part, err := c.room.Join(randomID(9), h.monitorSignals(c, s, self))
	h.mu.Lock()
	stale := c.ended || h.monitoring[s] != c // the call ended, or the supervisor left, meanwhile
	if err == nil && !stale {
		if c.monitors == nil {
			c.monitors = make(map[*session]*sfu.Participant)
		}
		c.monitors[s] = part
		self.part = part
	}
	if err != nil || stale {
		if h.monitoring[s] == c {
			delete(h.monitoring, s)
		}
		reason := protocol.ReasonFailed
		if c.ended {
			reason = c.endReason // the call ended while the supervisor joined it
		}
		h.mu.Unlock()
		if part != nil {
			part.Close()
		}
		s.send(protocol.Message{Type: protocol.TypeEnded, Room: c.id, Reason: reason})
		return nil
	}
	h.mu.Unlock()
	h.srv.metrics.monitors.Inc()
	return nil
}

// monitorSignals relays the SFU's signals for a monitoring supervisor.
func (h *hub) monitorSignals(c *call, s *session, self *partRef) func(sfu.Signal) {
	return func(sig sfu.Signal) {
		switch {
		case sig.Offer != "":
			s.send(protocol.Message{Type: protocol.TypeOffer, PC: sig.PC, SDP: sig.Offer, Room: c.id})
		case sig.Candidate != nil:
			s.send(protocol.Message{Type: protocol.TypeCandidate, PC: sig.PC, Candidate: toProtoCandidate(sig.Candidate), Room: c.id})
		case sig.Failed:
			h.srv.goTracked(func() {
				h.mu.Lock()
				part := self.part
				h.mu.Unlock()
				if part != nil {
					h.stopMonitor(s, protocol.ReasonFailed, part)
				}
			})
		}
	}
}

// monitorMsg applies a media message of a monitoring supervisor.
func (h *hub) monitorMsg(s *session, m protocol.Message) error {
	h.mu.Lock()
	c := h.monitoring[s]
	var part *sfu.Participant
	if c != nil {
		part = c.monitors[s]
	}
	h.mu.Unlock()
	if part == nil || (m.Room != "" && m.Room != c.id) {
		return errNotInCall
	}
	switch m.Type {
	case protocol.TypeAnswer:
		return mediaError(part.Answer(m.SDP))
	case protocol.TypeCandidate:
		if m.Candidate == nil || m.Candidate.Candidate == "" {
			return nil
		}
		cd := m.Candidate
		return mediaError(part.AddCandidate(m.PC, webrtc.ICECandidateInit{
			Candidate: cd.Candidate, SDPMid: cd.SDPMid, SDPMLineIndex: cd.SDPMLineIndex, UsernameFragment: cd.UsernameFragment,
		}))
	case protocol.TypeQuality:
		part.SetMaxQuality(qualityOf(part, m))
		return nil
	}
	return protocol.Errorf(protocol.CodeInvalidState, "a monitoring supervisor only receives: no %s", m.Type)
}

// stopMonitor ends s's monitoring, telling it with reason ("" tells
// nothing: its connection is gone); with only set, just the monitoring
// that runs as that participant.
func (h *hub) stopMonitor(s *session, reason string, only *sfu.Participant) {
	h.mu.Lock()
	c := h.monitoring[s]
	var part *sfu.Participant
	if c != nil {
		part = c.monitors[s]
	}
	if only != nil && part != only {
		h.mu.Unlock()
		return
	}
	delete(h.monitoring, s)
	if c != nil {
		delete(c.monitors, s)
	}
	h.mu.Unlock()
	if part == nil {
		return
	}
	part.Close()
	h.srv.metrics.monitors.Dec()
	if reason != "" {
		s.send(protocol.Message{Type: protocol.TypeEnded, Room: c.id, Reason: reason})
	}
}

// endMonitors tells c's supervisors that it ended and closes their
// participants (endCall, once c is marked ended).
func (h *hub) endMonitors(c *call, reason string) {
	h.mu.Lock()
	mons := c.monitors
	c.monitors = nil
	for s := range mons {
		if h.monitoring[s] == c {
			delete(h.monitoring, s)
		}
	}
	h.mu.Unlock()
	for s, part := range mons {
		part.Close()
		h.srv.metrics.monitors.Dec()
		s.send(protocol.Message{Type: protocol.TypeEnded, Room: c.id, Reason: reason})
	}
}
