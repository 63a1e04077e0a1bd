package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	dto "github.com/prometheus/client_model/go"
)

// TestDirectMediaPath: in a call between pion clients the publisher's
// media is decrypted by its connection's wire.Conn on the socket's reader,
// and the subscriber's is encrypted and sent by its own: the counters of
// both Conns account for what the subscriber received, and no connection
// fell back to pion's path. With Config.PionMediaPath the same call runs
// with no direct path at all.
func TestDirectMediaPath(t *testing.T) {
	t.Run("direct", func(t *testing.T) { testMediaPath(t, Config{LoopbackOnly: true}, true) })
	t.Run("pion", func(t *testing.T) { testMediaPath(t, Config{LoopbackOnly: true, PionMediaPath: true}, false) })
}

func testMediaPath(t *testing.T, cfg Config, direct bool) {
	s, room, ctx := newTestRoom(t, cfg, "direct")
	pub, _ := join(t, ctx, room, "publisher", testAPI(t))
	_, sub := join(t, ctx, room, "subscriber", testAPI(t))
	var c collector
	c.attach(sub)
	sendSimulcast(t, ctx, pub, [maxLayers]int{8, 16, 32})
	waitLayer(t, ctx, "subscriber", &c, layerFull)
	c.reset()
	time.Sleep(time.Second)
	got := c.snapshot()
	checkStream(t, "subscriber", got, false)

	if !direct {
		if s.sock != nil || pub.part.pubWire != nil || sub.part.subWire != nil {
			t.Fatal("a direct path exists with PionMediaPath")
		}
		return
	}
	in, out := pub.part.pubWire.Stats(), sub.part.subWire.Stats()
	// The first packets of each layer reach the SFU through pion (they
	// make the track known); the rest come the direct way.
	if in.Decrypted == 0 || in.Dropped != 0 {
		t.Errorf("publisher's connection: %+v; want packets decrypted on the direct path and none dropped", in)
	}
	// RTCP: the publisher's sender reports (once a second) and the
	// subscriber's transport-wide feedback and receiver reports.
	if in.RTCP == 0 || out.RTCP == 0 {
		t.Errorf("RTCP on the direct path: %d from the publisher, %d from the subscriber; want some of both", in.RTCP, out.RTCP)
	}
	if out.Sent < uint64(len(got)) {
		t.Errorf("subscriber's connection sent %d packets directly; the subscriber received %d in the last second alone", out.Sent, len(got))
	}
	if st := s.sock.Stats(); st.Routed < in.Decrypted {
		t.Errorf("socket routed %d datagrams, fewer than the %d decrypted", st.Routed, in.Decrypted)
	}
	var m dto.Metric
	if err := s.metrics.pionPath.Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != 0 {
		t.Errorf("%v connections stayed on pion's path", n)
	}
}

// TestReceiveKeepsItsOwnHeader: the header the direct path parsed is
// reused by its reader for the next packet, while the layer may parse a
// packet from pion's path into its own; receive must not leave the two
// sharing memory (the race detector sees it if they do).
func TestReceiveKeepsItsOwnHeader(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &publishedTrack{trackEnv: trackEnv{metrics: m}, mime: mimeVP8, kind: "video", in: m.counters("video", "in")}
	empty := []sink{}
	tr.sinks.Store(&empty)
	l := &layer{track: tr, cache: newPacketCache()}
	l.in.starts = switchPoints{video: true, vp8: true, mime: mimeVP8}
	packet := func(seq uint16) []byte {
		h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, SSRC: 1, CSRC: []uint32{7}}
		_ = h.SetExtension(1, []byte{1, 2})
		_ = h.SetExtension(2, []byte{3})
		b, _ := h.Marshal()
		return append(b, 0x90, 0x80, 0x01, 0x02, 0x00)
	}
	var parsed rtp.Header // the direct path's, reused packet after packet
	if _, err := parsed.Unmarshal(packet(1)); err != nil {
		t.Fatal(err)
	}
	l.receive(packet(1), &parsed, time.Now())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := uint16(2); seq < 200; seq++ {
			_, _ = parsed.Unmarshal(packet(seq)) // the reader's next packet
		}
	}()
	for seq := uint16(1000); seq < 1200; seq++ {
		l.receive(packet(seq), nil, time.Now()) // pion's path
	}
	<-done
}
