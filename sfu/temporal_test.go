package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/helpcaster/helpcaster/rtpcodec"
)

// vp8TemporalPacket builds the single packet of a VP8 picture with a 15-bit
// picture id, TL0PICIDX and a temporal layer id (with its sync bit).
func vp8TemporalPacket(pid uint16, tl0 uint8, tid int, sync, key bool) []byte {
	y := byte(0)
	if sync {
		y = 0x20
	}
	p := []byte{0x90, 0xe0, 0x80 | byte(pid>>8)&0x7f, byte(pid), tl0, byte(tid)<<6 | y}
	if key {
		return append(p, 0x00, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01)
	}
	return append(p, 0x01, 0, 0)
}

// temporalDownTrack is a connected VP8 down track of a one-layer source,
// writing to w and forwarding temporal layers up to t.
func temporalDownTrack(w webrtc.TrackLocalWriter, t int) *downTrack {
	src := &publishedTrack{kind: "video", mime: mimeVP8}
	l := &layer{track: src}
	l.lastKeyReq.Store(1 << 62) // keyframe requests throttled: there is no publisher
	src.layers[0].Store(l)
	m, _ := newMetrics(nil)
	return &downTrack{src: src, kind: webrtc.RTPCodecTypeVideo, vp8: true, clockRate: 90000, bound: true, connected: true,
		writer: w, ssrc: 9, pt: 96, maxLayer: layerFull, bwLayer: layerFull, target: 0, current: layerNone,
		bwTemporal: t, temporal: t, out: m.counters("video", "out"), switches: m.layerSwitches}
}

// recordingWriter keeps what a down track writes.
type recordingWriter struct {
	seqs []uint16
	pids []uint16
	tids []int
}

func (w *recordingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	d, ok := rtpcodec.ParseVP8Descriptor(payload)
	if !ok {
		return 0, nil
	}
	tid, _, _ := d.Temporal(payload)
	w.seqs = append(w.seqs, h.SequenceNumber)
	w.pids = append(w.pids, d.PictureID(payload))
	w.tids = append(w.tids, tid)
	return len(payload), nil
}

func (w *recordingWriter) Write(b []byte) (int, error) { return len(b), nil }

// TestTemporalLayers: a down track forwards VP8 temporal layers up to the
// one its bandwidth allows, going down at the next picture and up only at a
// layer sync picture, and the subscriber sees consecutive sequence numbers
// and picture ids throughout.
func TestTemporalLayers(t *testing.T) {
	w := &recordingWriter{}
	d := temporalDownTrack(w, temporalAll)

	// The usual three-layer pattern 0 2 1 2; the first picture of layers 1
	// and 2 after each base picture is a layer sync picture.
	pattern := []int{0, 2, 1, 2}
	seq, pid := uint16(65500), uint16(32700) // both wrap during the test
	tl0 := uint8(250)
	send := func(n int) {
		for range n {
			i := int(pid) % len(pattern)
			tid := pattern[i]
			if tid == 0 {
				tl0++
			}
			h := rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(pid) * 3000, SSRC: 5, Marker: true}
			key := seq == 65500
			d.writeRTP(0, &h, vp8TemporalPacket(pid, tl0, tid, tid != 0 && (i == 1 || i == 2), key), key, time.Now())
			seq++
			pid = (pid + 1) & 0x7fff
		}
	}
	// Aligned so that pid%4 == 0 is a base layer picture.
	pid -= pid % 4
	send(16)
	checkCount := func(from int, want []int) {
		t.Helper()
		counts := make([]int, maxTemporal)
		for _, tid := range w.tids[from:] {
			counts[tid]++
		}
		for i := range counts {
			if counts[i] != want[i] {
				t.Fatalf("temporal layers forwarded %v, want %v (tids %v)", counts, want, w.tids[from:])
			}
		}
	}
	checkCount(0, []int{4, 4, 8})

	d.setBandwidthTemporal(0)
	n := len(w.tids)
	send(16)
	checkCount(n, []int{4, 0, 0})

	d.setBandwidthTemporal(1)
	n = len(w.tids)
	send(16)
	checkCount(n, []int{4, 4, 0})

	d.setBandwidthTemporal(temporalAll)
	n = len(w.tids)
	send(16)
	checkCount(n, []int{4, 4, 8})

	for i := 1; i < len(w.seqs); i++ {
		if w.seqs[i] != w.seqs[i-1]+1 {
			t.Fatalf("sequence numbers jump at %d: %v", i, w.seqs)
		}
		if w.pids[i] != (w.pids[i-1]+1)&0x7fff {
			t.Fatalf("picture ids jump at %d: %v", i, w.pids)
		}
	}
}

// TestTemporalUpNeedsSync: raising the temporal layer waits for a layer
// sync picture; a picture of the higher layer that is not one stays dropped.
func TestTemporalUpNeedsSync(t *testing.T) {
	w := &recordingWriter{}
	d := temporalDownTrack(w, 0)
	write := func(seq, pid uint16, tid int, sync, key bool) {
		h := rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(pid) * 3000, Marker: true}
		d.writeRTP(0, &h, vp8TemporalPacket(pid, 1, tid, sync, key), key, time.Now())
	}
	write(1, 10, 0, false, true)
	write(2, 11, 1, false, false) // dropped: layer 1 is off
	d.setBandwidthTemporal(1)
	write(3, 12, 1, false, false) // dropped: not a sync picture
	write(4, 13, 0, false, false)
	write(5, 14, 1, true, false) // sync: forwarded from here
	write(6, 15, 1, false, false)
	want := []int{0, 0, 1, 1}
	if len(w.tids) != len(want) {
		t.Fatalf("forwarded temporal layers %v, want %v", w.tids, want)
	}
	for i := range want {
		if w.tids[i] != want[i] {
			t.Fatalf("forwarded temporal layers %v, want %v", w.tids, want)
		}
	}
}
