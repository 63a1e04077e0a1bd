package sfu

import (
	"slices"
	"testing"
	"time"
)

// TestDynacast: layers no subscriber needs are paused at the publisher after
// the pause delay, and resumed as soon as one is needed again.
func TestDynacast(t *testing.T) {
	_, room, ctx := newTestRoom(t, Config{LoopbackOnly: true, DynacastPause: time.Second}, "dynacast")
	api := testAPI(t)
	pub, _ := join(t, ctx, room, "publisher", api)
	_, sub := join(t, ctx, room, "viewer", api)
	var c collector
	c.attach(sub)

	sendSimulcast(t, ctx, pub, [maxLayers]int{8, 16, 32})

	expect := func(what string, want ...string) {
		t.Helper()
		for {
			select {
			case <-ctx.Done():
				t.Fatalf("%s: publisher never told to send %v", what, want)
			case st := <-pub.layers:
				if st.TrackID != "video" {
					t.Fatalf("layers for track %q, want the published track %q", st.TrackID, "video")
				}
				if slices.Equal(st.Active, want) {
					return
				}
				t.Logf("%s: publisher told to send %v", what, st.Active)
			}
		}
	}

	waitLayer(t, ctx, "viewer", &c, layerFull)
	expect("viewer on the full layer", "f")

	sub.part.SetMaxQuality(QualityLow)
	// The low layer is needed at once; the full one only until the switch.
	expect("viewer asks for low", "q", "f")
	waitLayer(t, ctx, "viewer", &c, layerQuarter)
	expect("viewer on the low layer", "q")

	sub.part.SetMaxQuality(QualityHigh)
	expect("viewer asks for high", "q", "f")
	waitLayer(t, ctx, "viewer", &c, layerFull)
}
