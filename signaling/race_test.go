package signaling_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/signaling"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// TestLeavingAtAssignment: customers and agents who vanish around an
// assignment leave nobody stuck: afterwards a fresh customer still reaches
// the remaining agent, and no call is left open. (It exercises the undo paths
// of startCall; it does not reliably land inside the few milliseconds while
// a room is being built.)
func TestLeavingAtAssignment(t *testing.T) {
	// Customers who vanish keep their place or call for the resume grace;
	// a short one lets the test see the end of it.
	e := newEnv(t, withGrace(500*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	agent, _ := e.join(ctx, protocol.RoleAgent, "steady")
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	next(t, ctx, agent, protocol.TypeAgentState)
	next(t, ctx, agent, protocol.TypeAgentState)

	for i := range 15 {
		// A customer who leaves straight after joining, racing the placement.
		c := e.dial(ctx, testOrigin)
		if err := c.Send(ctx, protocol.Message{Type: protocol.TypeJoin, Token: e.token("acme", protocol.RoleCustomer, fmt.Sprint("gone", i))}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i%5) * time.Millisecond)
		c.Close()
		// An agent who goes available and leaves at once, while the steady
		// agent may be busy with the call above.
		a := e.dial(ctx, testOrigin)
		if _, err := a.Join(ctx, e.token("acme", protocol.RoleAgent, fmt.Sprint("flaky", i))); err != nil {
			t.Fatal(err)
		}
		if err := a.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
			t.Fatal(err)
		}
		a.Close()
	}
	// Drain what the steady agent was told; it must end up available.
	waitFor(t, ctx, "no call left open", func() bool {
		return counter(t, e.reg, "helpcaster_calls_active", nil) == 0
	})

	final, _ := e.join(ctx, protocol.RoleCustomer, "final")
	m := next(t, ctx, final, protocol.TypeAssigned)
	if m.Peer.Name != "steady" {
		t.Fatalf("final customer got %q, want the remaining agent", m.Peer.Name)
	}
	if got := counter(t, e.reg, "helpcaster_sfu_rooms", nil); got != 1 {
		t.Errorf("rooms open = %v, want just the final call", got)
	}
}

// TestMediaLimits: a client cannot make the SFU take unbounded candidates or
// media sections.
func TestMediaLimits(t *testing.T) {
	e := newEnv(t, withLimits(signaling.Limits{MessagesPerSec: 1000, Burst: 1000}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cust, _, _ := startCall(t, ctx, e)

	var sdp strings.Builder
	sdp.WriteString("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE")
	for i := range 9 {
		fmt.Fprintf(&sdp, " %d", i)
	}
	sdp.WriteString("\r\n")
	for i := range 9 {
		fmt.Fprintf(&sdp, "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:%d\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n", i)
	}
	if err := cust.Send(ctx, protocol.Message{ID: "big", Type: protocol.TypeOffer, PC: protocol.PCPub, SDP: sdp.String()}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, cust, protocol.TypeError); m.Code != string(protocol.CodeBadSDP) || m.Ref != "big" {
		t.Fatalf("9 media sections: %+v, want bad_sdp", m)
	}

	mid, idx := "0", uint16(0)
	for i := range 70 {
		cand := fmt.Sprintf("candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host", i, 10000+i)
		err := cust.Send(ctx, protocol.Message{ID: fmt.Sprint("c", i), Type: protocol.TypeCandidate, PC: protocol.PCSub,
			Candidate: &protocol.ICECandidate{Candidate: cand, SDPMid: &mid, SDPMLineIndex: &idx}})
		if err != nil {
			t.Fatal(err)
		}
	}
	m := next(t, ctx, cust, protocol.TypeError)
	if m.Code != string(protocol.CodeInvalidState) || m.Ref != "c64" {
		t.Fatalf("65th candidate: %+v, want invalid_state for c64", m)
	}
}
