package sfu

import "testing"

func TestLoad(t *testing.T) {
	s, room, ctx := newTestRoom(t, Config{LoopbackOnly: true}, "load")
	if l := s.Load(); l.Rooms != 1 || l.Participants != 0 || l.Tracks != 0 {
		t.Fatalf("empty room: load %+v", l)
	}
	pub, _ := join(t, ctx, room, "publisher", testAPI(t))
	join(t, ctx, room, "subscriber", testAPI(t))
	sendSimulcast(t, ctx, pub, [maxLayers]int{8, 16, 32})
	waitFor(t, ctx, "the published track counted", func() bool { return s.Load().Tracks == 1 })
	if l := s.Load(); l.Rooms != 1 || l.Participants != 2 {
		t.Fatalf("load %+v, want 1 room and 2 participants", l)
	}
}
