package signaling

import (
	"context"
	"time"

	"github.com/coder/websocket"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

// A customer's call record (queue.CallRecord) outlives its call by the
// resume grace. A customer's connection can be lost with its assigned, or
// its ended, still on the way: the server cannot tell, and the customer
// resumes. While the call lasts it resumes into it (resume.go); once the
// call has ended it is told so, with the call's room and the reason the
// call ended for it, instead of a bad_resume that would leave it taking
// itself for a customer whose place was lost, never learning of the call
// its agent had with it.

// endedFor is the reason a side of a call is given when the call ends:
// reason for the side that hung up (byRole) or for both when the call
// ended for another reason (byRole ""), peer_left for the other side.
func endedFor(byRole, reason, role string) string {
	if byRole != "" && role != byRole {
		return protocol.ReasonPeerLeft
	}
	return reason
}

// keepEnded replaces the call record of c's customer, once c has ended
// (byRole and reason as for endCall), by one saying how it ended for the
// customer, and forgets it after the resume grace. It is forgotten at once
// when the customer ended the call itself (it hung up, or its grace ran
// out: its resume is over), or when this node is shutting down (its
// timers stop, and it keeps no call for a resume), or when c never went
// live (it ended while its sides were being told). Called by endCall.
func (h *hub) keepEnded(ctx context.Context, c *call, byRole, reason string, live bool) {
	c.record.Lock()
	defer c.record.Unlock()
	org, id := c.org, c.cust.id
	if !live || byRole == protocol.RoleCustomer || h.srv.stopping() {
		if err := h.store.records.DeleteCall(ctx, org, id); err != nil {
			h.srv.log.Warn("forgetting the call for resume failed", "org", org, "err", err)
		}
		return
	}
	rec := queue.CallRecord{Call: c.id, Host: h.self, ResumeKey: c.entry.ResumeKey, Ended: endedFor(byRole, reason, protocol.RoleCustomer)}
	if err := h.store.records.SaveCall(ctx, org, id, rec); err != nil {
		h.srv.log.Warn("keeping an ended call for resume failed", "org", org, "err", err)
	}
	time.AfterFunc(h.srv.resumeGrace, func() {
		h.srv.goTracked(func() {
			ctx, cancel := h.storeCtx()
			defer cancel()
			if err := h.store.records.DeleteCall(ctx, org, id); err != nil {
				// On Redis the record expires anyway (queue.CallRecordTTL).
				h.srv.log.Warn("forgetting an ended call failed", "org", org, "err", err)
			}
		})
	})
}

// endedAway tells customer session s, which resumed after its call ended,
// that the call ended and why, and closes its connection, as after any
// ended. Its record stays until the grace is over: a connection lost again
// before the ended arrived resumes and is told again.
func (h *hub) endedAway(s *session, rec queue.CallRecord) {
	s.send(protocol.Message{Type: protocol.TypeEnded, Reason: rec.Ended, Room: rec.Call})
	s.closeWith(websocket.StatusNormalClosure, "call ended")
}
