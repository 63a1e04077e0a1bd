package signaling

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/helpcaster/helpcaster/sfu"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/pion/webrtc/v4"
)

// A call's room. Each call hosted here has a room in the SFU with one
// participant per side; this file is where signaling meets the SFU: it opens
// and closes rooms, turns the SFU's signals for a participant into messages
// to its side, and applies a side's offers, answers, candidates, quality
// requests and chat. A participant's callbacks run on SFU goroutines: they
// take hub.mu only briefly and never call into the SFU under it.

// openRoom creates c's room and both participants.
func (h *hub) openRoom(c *call) error {
	room, err := h.srv.sfu.Room(c.id)
	if err == nil {
		c.room = room
		h.startRecording(c)
		c.cust.part, err = h.joinRoom(c, protocol.RoleCustomer)
	}
	if err == nil {
		c.agent.part, err = h.joinRoom(c, protocol.RoleAgent)
	}
	if err != nil {
		h.closeRoom(c)
		return fmt.Errorf("create room: %w", err)
	}
	return nil
}

// partRef names the participant whose signals a callback relays, once
// Join has returned it (guarded by hub.mu): the failure of a participant
// that has been replaced (a resumed customer's old one) or whose
// monitoring has ended must not end what came after it.
type partRef struct{ part *sfu.Participant }

// joinRoom adds a participant for one side of c to c's room.
func (h *hub) joinRoom(c *call, role string) (*sfu.Participant, error) {
	self := new(partRef)
	part, err := c.room.Join(randomID(9), h.mediaSignals(c, role, self))
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	self.part = part
	h.mu.Unlock()
	return part, nil
}

func (h *hub) closeRoom(c *call) {
	h.mu.Lock()
	parts := []*sfu.Participant{c.cust.part, c.agent.part}
	h.mu.Unlock()
	for _, p := range parts {
		if p != nil {
			p.Close()
		}
	}
	if c.room != nil {
		c.room.Close()
	}
	if c.rec != nil {
		c.rec.End() // after the room: its tracks' sinks are closed
	}
}

// speakerSignals tells both sides of c who is speaking whenever the room's
// active speaker changes. It runs on SFU goroutines (one call at a time, in
// order, no SFU lock held) and takes hub.mu only briefly, never calling
// into the SFU under it; once endCall has closed the room it is no longer
// called.
func (h *hub) speakerSignals(c *call) func(participantID string) {
	return func(id string) {
		h.mu.Lock()
		cust, agent := c.cust.part, c.agent.part // a resumed customer has a new one
		h.mu.Unlock()
		m := protocol.Message{Type: protocol.TypeSpeaker}
		switch {
		case id == "":
		case cust != nil && id == cust.ID():
			m.Role = protocol.RoleCustomer
		case agent != nil && id == agent.ID():
			m.Role = protocol.RoleAgent
		default:
			return // not one of the call's two sides
		}
		h.sendTo(c, &c.cust, m)
		h.sendTo(c, &c.agent, m)
	}
}

// mediaSignals relays the SFU's signals for one side to its session; self
// is the participant they come from.
func (h *hub) mediaSignals(c *call, role string, self *partRef) func(sfu.Signal) {
	return func(sig sfu.Signal) {
		sd := c.side(role)
		h.mu.Lock()
		ended := c.ended
		h.mu.Unlock()
		if ended {
			// endCall closes the room after marking the call ended: the
			// renegotiation of the other side's tracks going away (an offer
			// for sub, its candidates) would only reach a client that is
			// about to get ended, and its answer would come too late.
			return
		}
		switch {
		case sig.Offer != "":
			h.sendTo(c, sd, protocol.Message{Type: protocol.TypeOffer, PC: sig.PC, SDP: sig.Offer})
		case sig.Candidate != nil:
			h.sendTo(c, sd, protocol.Message{Type: protocol.TypeCandidate, PC: sig.PC, Candidate: toProtoCandidate(sig.Candidate)})
		case sig.Layers != nil:
			h.sendTo(c, sd, protocol.Message{Type: protocol.TypeLayers, Track: sig.Layers.TrackID, Active: sig.Layers.Active, Paused: sig.Layers.Paused})
		case sig.Failed:
			h.mu.Lock()
			replaced := self.part == nil || sd.part != self.part
			detached := role == protocol.RoleCustomer && c.cust.grace != nil
			h.mu.Unlock()
			if replaced || detached {
				// A replaced participant's failure ends nothing; a detached
				// customer's connection is gone anyway, and the resume grace
				// decides.
				return
			}
			// Not from this callback's goroutine: ending closes the connection
			// that is calling us.
			h.srv.goTracked(func() { h.endCall(c, "", protocol.ReasonFailed) })
		}
	}
}

// callMsg applies a client message from one side of a call hosted here.
func (h *hub) callMsg(c *call, role string, m protocol.Message) error {
	sd := c.side(role)
	h.mu.Lock()
	part, ended := sd.part, c.ended
	h.mu.Unlock()
	if ended {
		// It ended since the message was routed here: see late.go.
		if m.Type == protocol.TypeChat {
			return errCallEnded
		}
		return nil
	}
	if part == nil {
		return errNotInCall
	}
	switch m.Type {
	case protocol.TypeOffer:
		answer, err := part.Offer(m.SDP)
		if err != nil {
			return mediaError(err)
		}
		h.sendTo(c, sd, protocol.Message{Type: protocol.TypeAnswer, PC: protocol.PCPub, SDP: answer})
	case protocol.TypeAnswer:
		return mediaError(part.Answer(m.SDP))
	case protocol.TypeCandidate:
		if m.Candidate == nil || m.Candidate.Candidate == "" {
			return nil // end of candidates
		}
		cd := m.Candidate
		return mediaError(part.AddCandidate(m.PC, webrtc.ICECandidateInit{
			Candidate: cd.Candidate, SDPMid: cd.SDPMid, SDPMLineIndex: cd.SDPMLineIndex, UsernameFragment: cd.UsernameFragment,
		}))
	case protocol.TypeQuality:
		part.SetMaxQuality(qualityOf(part, m))
	case protocol.TypeChat:
		from := sd.peer
		if c.rec != nil {
			// Before it is passed on: an answer sent straight back must
			// not be recorded ahead of it.
			c.rec.Chat(role, from.Name, m.Text)
		}
		h.sendTo(c, c.other(role), protocol.Message{Type: protocol.TypeChat, Text: m.Text, From: &from, TS: time.Now().UnixMilli()})
	case protocol.TypeHangup:
		h.endCall(c, role, protocol.ReasonHangup)
	case protocol.TypeRecording:
		return h.recordingMsg(c, role, m)
	}
	return nil
}

// qualityOf is the layer a quality message asks part to receive at most.
func qualityOf(part *sfu.Participant, m protocol.Message) int {
	switch m.Quality {
	case protocol.QualityLow:
		return sfu.QualityLow
	case protocol.QualityMedium:
		return sfu.QualityMedium
	case protocol.QualityHigh:
		return sfu.QualityHigh
	}
	return part.QualityForSize(m.Width, m.Height)
}

func toProtoCandidate(c *webrtc.ICECandidateInit) *protocol.ICECandidate {
	return &protocol.ICECandidate{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
}

// mediaError turns an SFU error into the client's: a short fixed sentence
// safe to show a user (the SFU's wording and the parser's error chain stay
// in the cause, which only the debug log shows).
func mediaError(err error) error {
	has := func(s string) bool { return strings.Contains(err.Error(), s) }
	reason := func(code protocol.Code, msg string) error {
		return &protocol.Error{Code: code, Message: msg, Cause: err}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sfu.ErrBadSDP):
		switch {
		case has("media sections"):
			return reason(protocol.CodeBadSDP, "too many media sections (max 8)")
		case has("apply offer"):
			return reason(protocol.CodeBadSDP, "the offer could not be parsed")
		case has("create answer"):
			return reason(protocol.CodeBadSDP, "the offer has no usable media section")
		case has("apply answer"):
			return reason(protocol.CodeBadSDP, "the answer could not be applied")
		case has("candidate"):
			return reason(protocol.CodeBadSDP, "the candidate could not be applied")
		}
		return reason(protocol.CodeBadSDP, "the session description could not be applied")
	case errors.Is(err, sfu.ErrState):
		switch {
		case has("candidates"):
			return reason(protocol.CodeInvalidState, "too many candidates for one connection (max 64)")
		case has("without an outstanding offer"):
			return reason(protocol.CodeInvalidState, "no offer is waiting for an answer")
		}
		return reason(protocol.CodeInvalidState, "the message does not fit the connection's state")
	case errors.Is(err, sfu.ErrClosed):
		return errNotInCall
	default:
		return err
	}
}
