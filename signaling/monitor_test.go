package signaling_test

import (
	"context"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// TestMonitor: a supervisor of the call's organization listens in and gets
// both parties' media; it cannot publish, chat or monitor twice; another
// organization's supervisor, or one naming no live call, is refused the
// same way; hanging up ends the monitoring, and so does the call's end.
func TestMonitor(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cust, agent, room := startCall(t, ctx, e)
	for _, c := range []*client.Client{cust, agent} {
		if err := c.PublishFiles(ctx, sample("sample.ivf"), sample("sample.ogg")); err != nil {
			t.Fatal(err)
		}
	}
	waitMedia(t, ctx, "customer", cust)

	// Refusals first: not a supervisor, no such call, another org's call.
	refused := func(who string, c *client.Client, room string) {
		t.Helper()
		if err := c.Send(ctx, protocol.Message{ID: "m", Type: protocol.TypeMonitor, Room: room}); err != nil {
			t.Fatal(err)
		}
		for {
			m := next(t, ctx, c, protocol.TypeError, protocol.TypeAssigned)
			if m.Type == protocol.TypeError && m.Ref == "" {
				continue // a late candidate of an earlier monitoring
			}
			if m.Type != protocol.TypeError || m.Code != string(protocol.CodeInvalidState) || m.Ref != "m" {
				t.Errorf("%s: monitor answered %+v, want invalid_state", who, m)
			}
			return
		}
	}
	refused("agent", agent, room)
	other := e.dial(ctx, "http://globex.test")
	if _, err := other.Join(ctx, e.token("globex", protocol.RoleSupervisor, "Gus")); err != nil {
		t.Fatal(err)
	}
	refused("another org's supervisor", other, room)
	sup, _ := e.join(ctx, protocol.RoleSupervisor, "Sue")
	refused("unknown call", sup, "no-such-call")

	if err := sup.Send(ctx, protocol.Message{Type: protocol.TypeMonitor, Room: room}); err != nil {
		t.Fatal(err)
	}
	m := next(t, ctx, sup, protocol.TypeAssigned)
	if m.Room != room || m.Role != protocol.RoleSupervisor || m.Peer == nil || m.Peer.Role != protocol.RoleCustomer {
		t.Fatalf("monitoring supervisor got %+v", m)
	}
	waitMedia(t, ctx, "supervisor", sup)
	if s := sup.Stats(); s.Tracks != 4 {
		t.Errorf("supervisor receives %d tracks, want 4 (both parties' audio and video)", s.Tracks)
	}
	if got := counter(t, e.reg, "helpcaster_monitors_active", nil); got != 1 {
		t.Errorf("monitors active = %v, want 1", got)
	}
	refused("second monitor", sup, room)
	for _, typ := range []string{protocol.TypeChat, protocol.TypeOffer} {
		msg := protocol.Message{ID: typ, Type: typ, Text: "psst", PC: protocol.PCPub, SDP: "v=0"}
		if typ == protocol.TypeChat {
			msg.PC, msg.SDP = "", ""
		} else {
			msg.Text = ""
		}
		if err := sup.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
		if m := next(t, ctx, sup, protocol.TypeError); m.Code != string(protocol.CodeInvalidState) || m.Ref != typ {
			t.Errorf("monitoring supervisor's %s: %+v", typ, m)
		}
	}

	// Hanging up ends the monitoring only.
	if err := sup.Send(ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, sup, protocol.TypeEnded); m.Room != room || m.Reason != protocol.ReasonHangup {
		t.Errorf("supervisor hangup: %+v", m)
	}
	waitFor(t, ctx, "monitor gone", func() bool { return counter(t, e.reg, "helpcaster_monitors_active", nil) == 0 })

	// Again; then the call ends, and the supervisor is told.
	if err := sup.Send(ctx, protocol.Message{Type: protocol.TypeMonitor, Room: room}); err != nil {
		t.Fatal(err)
	}
	next(t, ctx, sup, protocol.TypeAssigned)
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, sup, protocol.TypeEnded); m.Room != room || m.Reason != protocol.ReasonHangup {
		t.Errorf("supervisor at the call's end: %+v", m)
	}
	waitFor(t, ctx, "monitor gone at the call's end", func() bool { return counter(t, e.reg, "helpcaster_monitors_active", nil) == 0 })
	refused("ended call", sup, room)
}
