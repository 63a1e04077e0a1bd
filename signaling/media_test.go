package signaling_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/pion/webrtc/v4"
)

// startCall connects one agent and one customer and returns them assigned,
// with the call's room.
func startCall(t *testing.T, ctx context.Context, e *env) (cust, agent *client.Client, room string) {
	t.Helper()
	agent, _ = e.join(ctx, protocol.RoleAgent, "Ann")
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	cust, _ = e.join(ctx, protocol.RoleCustomer, "Carl")
	next(t, ctx, cust, protocol.TypeAssigned)
	room = next(t, ctx, agent, protocol.TypeAssigned).Room
	return cust, agent, room
}

// TestCallH264: a publisher that sends only H.264 reaches a subscriber that
// could take VP8 too; the subscriber gets H.264 and starts on a keyframe.
func TestCallH264(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cust, agent, _ := startCall(t, ctx, e)
	if err := cust.PublishFiles(ctx, sample("sample.h264"), sample("sample.ogg")); err != nil {
		t.Fatal(err)
	}
	if err := agent.PublishFiles(ctx, sample("sample.ivf"), sample("sample.ogg")); err != nil {
		t.Fatal(err)
	}
	waitMedia(t, ctx, "agent", agent)
	waitMedia(t, ctx, "customer", cust)
	if got := agent.Stats().VideoCodec; !strings.EqualFold(got, webrtc.MimeTypeH264) {
		t.Errorf("agent receives %q, want H.264", got)
	}
	if got := cust.Stats().VideoCodec; !strings.EqualFold(got, webrtc.MimeTypeVP8) {
		t.Errorf("customer receives %q, want VP8", got)
	}
}

// TestTrackGoes: when a publisher stops sending video, the subscriber's sub
// connection is renegotiated, its video track ends, and audio keeps flowing.
func TestTrackGoes(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cust, agent, _ := startCall(t, ctx, e)
	if err := agent.PublishFiles(ctx, sample("sample.ivf"), sample("sample.ogg")); err != nil {
		t.Fatal(err)
	}
	waitMedia(t, ctx, "customer", cust)
	if s := cust.Stats(); s.Tracks != 2 || s.TracksEnded != 0 {
		t.Fatalf("customer tracks %+v, want 2 live", s)
	}

	if err := agent.Unpublish(ctx, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "video track ended at the customer", func() bool { return cust.Stats().TracksEnded == 1 })
	before := cust.Stats()
	time.Sleep(500 * time.Millisecond)
	after := cust.Stats()
	if after.AudioPackets <= before.AudioPackets {
		t.Errorf("audio stopped with the video: %d -> %d packets", before.AudioPackets, after.AudioPackets)
	}
	if after.TracksEnded != 1 {
		t.Errorf("tracks ended = %d, want only the video", after.TracksEnded)
	}
	if got := counter(t, e.reg, "helpcaster_sfu_published_tracks", map[string]string{"kind": "video"}); got != 0 {
		t.Errorf("published video tracks = %v after unpublish, want 0", got)
	}
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting: %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
