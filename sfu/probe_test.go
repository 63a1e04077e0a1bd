package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/helpcaster/helpcaster/sfu/bwe"
)

// paddingWriter checks and counts probe packets.
type paddingWriter struct {
	t     *testing.T
	n     int
	seqs  []uint16
	first time.Time
	last  time.Time
}

func (w *paddingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if !h.Padding || h.SSRC != 10 || h.PayloadType != 97 || len(payload) != probePadding || payload[len(payload)-1] != probePadding {
		w.t.Fatalf("not a padding-only RTX packet: %+v, %d bytes ending %d", h, len(payload), payload[len(payload)-1])
	}
	if len(h.GetExtension(3)) != 2 {
		w.t.Fatal("probe packet without a transport-wide sequence number")
	}
	now := time.Now()
	if w.n == 0 {
		w.first = now
	}
	w.last = now
	w.n++
	w.seqs = append(w.seqs, h.SequenceNumber)
	return len(payload), nil
}

func (w *paddingWriter) Write(b []byte) (int, error) { return len(b), nil }

func TestSendProbe(t *testing.T) {
	w := &paddingWriter{t: t}
	d := &downTrack{kind: webrtc.RTPCodecTypeVideo, bound: true, connected: true, writer: w, ssrc: 9, pt: 96,
		rtxSSRC: 10, rtxPT: 97, rtxSeq: 65534, twccID: 3, bwe: bwe.New(bwe.Config{})}
	const rate = 2_000_000
	sent := d.sendProbe(1, rate, make(chan struct{}))
	want := rate * int(probeDuration/time.Millisecond) / 1000 / probePacketBits
	if sent != w.n || sent != want {
		t.Fatalf("sent %d packets (writer saw %d), want %d", sent, w.n, want)
	}
	for i := 1; i < len(w.seqs); i++ {
		if w.seqs[i] != w.seqs[i-1]+1 {
			t.Fatalf("RTX sequence numbers not consecutive: %v", w.seqs)
		}
	}
	// Paced, not one burst: the cluster spans most of probeDuration.
	if span := w.last.Sub(w.first); span < probeDuration/2 {
		t.Errorf("cluster sent in %v, want about %v", span, probeDuration)
	}
	// A closed participant stops a probe.
	done := make(chan struct{})
	close(done)
	if n := d.sendProbe(2, rate, done); n >= want {
		t.Errorf("probe ran on after done: %d packets", n)
	}
	// No RTX, no probe.
	d.rtxSSRC = 0
	if n := d.sendProbe(3, rate, make(chan struct{})); n != 0 {
		t.Errorf("%d probe packets without RTX", n)
	}
}

func TestProbeWant(t *testing.T) {
	rates := [maxLayers]int64{100_000, 300_000, 900_000}
	got := probeWant(50_000, []videoDemand{
		{maxLayer: layerFull, rates: rates, current: layerHalf},      // wants to move up: with headroom
		{maxLayer: layerHalf, rates: rates, current: layerHalf},      // has what it asks for
		{maxLayer: layerFull, rates: [maxLayers]int64{}, current: 0}, // nothing received
	})
	top := int64(900_000)
	want := 50_000 + int64(float64(top)*upswitchMargin) + 300_000
	if got != want {
		t.Errorf("probeWant = %d, want %d", got, want)
	}
}
