package signaling_test

import (
	"context"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// joinWithLevel dials a client that stamps its audio with level and joins.
func (e *env) joinWithLevel(ctx context.Context, role, name string, level *client.AudioLevel) *client.Client {
	e.t.Helper()
	c, err := client.Dial(ctx, client.Options{URL: e.wsURL, Origin: testOrigin, LoopbackOnly: true, AudioLevel: level})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(c.Close)
	if _, err := c.Join(ctx, e.token("acme", role, name)); err != nil {
		e.t.Fatalf("%s join: %v", name, err)
	}
	return c
}

// expectSpeaker waits for the next speaker message on each client and
// checks it names role ("" for nobody).
func expectSpeaker(t *testing.T, ctx context.Context, what, role string, cs ...*client.Client) {
	t.Helper()
	for i, c := range cs {
		if m := next(t, ctx, c, protocol.TypeSpeaker); m.Role != role {
			t.Fatalf("%s: client %d told the speaker is %q, want %q", what, i, m.Role, role)
		}
	}
}

// TestSpeaker: both sides of a call publish the Ogg sample with RFC 6464
// audio levels; whoever is loud is announced to both as the speaker, and
// nobody once both are silent.
func TestSpeaker(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const loud, silent = 20, 127
	agentLevel := client.NewAudioLevel(silent, false)
	agent := e.joinWithLevel(ctx, protocol.RoleAgent, "Ann", agentLevel)
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	custLevel := client.NewAudioLevel(loud, true)
	cust := e.joinWithLevel(ctx, protocol.RoleCustomer, "Carl", custLevel)
	next(t, ctx, cust, protocol.TypeAssigned)
	next(t, ctx, agent, protocol.TypeAssigned)
	for _, c := range []*client.Client{cust, agent} {
		if err := c.PublishFiles(ctx, "", sample("sample.ogg")); err != nil {
			t.Fatal(err)
		}
	}

	expectSpeaker(t, ctx, "customer talks", protocol.RoleCustomer, cust, agent)

	custLevel.Set(silent, false)
	agentLevel.Set(loud, true)
	expectSpeaker(t, ctx, "agent answers", protocol.RoleAgent, cust, agent)

	agentLevel.Set(silent, false)
	expectSpeaker(t, ctx, "both silent", "", cust, agent)

	if got := counter(t, e.reg, "helpcaster_signaling_messages_total", map[string]string{"direction": "out", "type": protocol.TypeSpeaker}); got != 6 {
		t.Errorf("speaker messages counted = %v, want 6", got)
	}
}

// TestSpeakerWithoutLevels: publishers that send no audio levels (pion's
// default) are never announced as speakers, and their call works as before.
func TestSpeakerWithoutLevels(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cust, agent, _ := startCall(t, ctx, e)
	for _, c := range []*client.Client{cust, agent} {
		if err := c.PublishFiles(ctx, "", sample("sample.ogg")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "audio both ways", func() bool {
		return cust.Stats().AudioPackets >= 100 && agent.Stats().AudioPackets >= 100
	})
	if got := counter(t, e.reg, "helpcaster_signaling_messages_total", map[string]string{"type": protocol.TypeSpeaker}); got != 0 {
		t.Errorf("%v speaker messages sent for a call without audio levels", got)
	}
}
