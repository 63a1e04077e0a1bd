package signaling

import (
	"errors"

	"github.com/helpcaster/helpcaster/recorder"
	"github.com/helpcaster/helpcaster/recorder/callrec"
	"github.com/helpcaster/helpcaster/sfu"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// A call's recording, on the node hosting its room. Whether a call is
// recorded is decided when its room opens, by its queue's policy and the
// customer's consent; from then on the room's sink factory gives each
// track a participant publishes to the recording, the chat goes to its
// transcript, and both sides are told its state: started once both know
// of the call, paused and resumed as the agent asks, stopped if it ends
// before the call (storage could not keep up). The recording ends with the
// room. callrec's goroutines call back only through onStop, which takes
// hub.mu briefly (sendTo) and nothing else.

// startRecording begins recording c if its queue records its customer's
// calls, and has the room's tracks recorded. Called by openRoom before
// either side publishes. A recording that cannot start leaves the call
// unrecorded; the call goes on.
func (h *hub) startRecording(c *call) {
	if h.srv.recorder == nil {
		return
	}
	org, ok := h.srv.verifier.Dir.Org(c.org)
	if !ok {
		return
	}
	q, ok := org.Queue(c.queue)
	if !ok || !q.Record.Records(c.entry.RecordConsent) {
		return
	}
	info := callrec.Info{Org: c.org, Queue: c.queue, Call: c.id, Participants: []callrec.Participant{
		{Role: protocol.RoleCustomer, Subject: c.entry.Subject},
		{Role: protocol.RoleAgent, Subject: c.agentSubject},
	}}
	rec, err := h.srv.recorder.Start(info, func(reason string) { h.recordingStopped(c, reason) })
	if err != nil {
		h.srv.log.Warn("the call could not be recorded", "org", c.org, "queue", c.queue, "call", c.id, "err", err)
		return
	}
	c.rec = rec
	c.room.SetSinkFactory(h.recordSink(c))
}

// recordSink gives each track a side of c publishes to c's recording. It
// runs on the track's goroutine and must return quickly.
func (h *hub) recordSink(c *call) func(sfu.TrackInfo) sfu.TrackSink {
	return func(t sfu.TrackInfo) sfu.TrackSink {
		role := h.roleOf(c, t.Participant)
		if role == "" {
			return nil // a supervisor listening in
		}
		info := recorder.TrackInfo{Kind: t.Kind, MimeType: t.Codec.MimeType, ClockRate: t.Codec.ClockRate, Channels: t.Codec.Channels}
		s, err := c.rec.AddTrack(role, info, t.RequestKeyframe)
		if err != nil {
			if !errors.Is(err, callrec.ErrNotRecording) {
				h.srv.log.Warn("a track of the call is not recorded", "org", c.org, "call", c.id, "kind", t.Kind,
					"codec", t.Codec.MimeType, "err", err)
			}
			return nil
		}
		return s
	}
}

// roleOf is the side of c whose participant has id; "" for none.
func (h *hub) roleOf(c *call, id string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case c.cust.part != nil && c.cust.part.ID() == id:
		return protocol.RoleCustomer
	case c.agent.part != nil && c.agent.part.ID() == id:
		return protocol.RoleAgent
	}
	return ""
}

// recordingState tells both sides of c the recording's state.
func (h *hub) recordingState(c *call, state, reason string) {
	for _, sd := range []*side{&c.cust, &c.agent} {
		h.sendTo(c, sd, protocol.Message{Type: protocol.TypeRecording, State: state, Reason: reason})
	}
}

// recordingStopped tells both sides the recording ended before the call.
func (h *hub) recordingStopped(c *call, reason string) {
	h.mu.Lock()
	ended := c.ended
	h.mu.Unlock()
	if !ended {
		h.recordingState(c, protocol.RecordingStopped, reason)
	}
}

// recordingNow is the message that tells a side joining (or resuming
// into) c the recording's state; ok is false when c is not recorded.
func recordingNow(c *call) (protocol.Message, bool) {
	if c.rec == nil {
		return protocol.Message{}, false
	}
	m := protocol.Message{Type: protocol.TypeRecording, State: protocol.RecordingStarted}
	switch c.rec.State() {
	case "paused":
		m.State = protocol.RecordingPaused
	case "stopped":
		return protocol.Message{}, false
	}
	return m, true
}

// tellRecording tells one side of c, just told it is in c, whether it is
// recorded.
func (h *hub) tellRecording(c *call, sd *side) {
	if m, ok := recordingNow(c); ok {
		h.sendTo(c, sd, m)
	}
}

// recordingMsg applies the agent's pause or resume of c's recording.
func (h *hub) recordingMsg(c *call, role string, m protocol.Message) error {
	if role != protocol.RoleAgent {
		return protocol.Errorf(protocol.CodeForbidden, "only the agent pauses or resumes the recording")
	}
	if c.rec == nil {
		return protocol.Errorf(protocol.CodeInvalidState, "the call is not recorded")
	}
	var err error
	if m.State == protocol.RecordingPaused {
		err = c.rec.Pause()
	} else {
		err = c.rec.Resume()
	}
	switch {
	case errors.Is(err, callrec.ErrPaused):
		return protocol.Errorf(protocol.CodeInvalidState, "the recording is paused already")
	case errors.Is(err, callrec.ErrNotPaused):
		return protocol.Errorf(protocol.CodeInvalidState, "the recording is not paused")
	case errors.Is(err, callrec.ErrNotRecording):
		return protocol.Errorf(protocol.CodeInvalidState, "the recording has stopped")
	case err != nil:
		return err
	}
	h.recordingState(c, m.State, "")
	return nil
}
