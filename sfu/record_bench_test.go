package sfu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/helpcaster/helpcaster/recorder"
	"github.com/helpcaster/helpcaster/rtpcodec"
)

// recordBatch is how many ingress packets are timed between two drains
// of the recording's queue. A recording's goroutine drains every 20 ms;
// a participant's audio and video bring it a few packets per drain, a
// busy screen share some tens. 64 keeps the queue (1024 slots) nearly
// empty, as in a call, and never full.
const recordBatch = 64

// The recorder sub-benchmarks of BenchmarkFanOutRecorder.
const (
	sinkNone    = "none"             // no sink: the baseline
	sinkPaused  = "recorder"         // the recording paused: its work is all off the clock
	sinkWriting = "recorder-writing" // the recording writes its file beside the timed loop
)

// BenchmarkFanOutRecorder is BenchmarkFanOut's packet loop without and
// with a real recorder.Recording's Sink on the track, attached as
// Room.trackPublished attaches a sink factory's sink. The difference
// between sink=none and sink=recorder of a subscriber count is what the
// recorder costs the forwarding goroutine per ingress packet.
//
// The recording's goroutine (Run) runs, writing to io.Discard. Every
// recordBatch packets the timer stops while the recording drains its
// queue, so the queue is never full and the timed path is always the
// copy into a slot, never the cheaper drop; a drop fails the benchmark.
// The drain is a control message, which the goroutine handles after the
// packets queued before it (Pause on a paused recording, Resume on one
// that is not: both change nothing).
//
// sink=recorder keeps the recording paused: its goroutine still takes,
// depacketizes and releases every packet, but writes no frame, so no
// work of the recorder's runs while the clock does and allocs/op is the
// forwarding goroutine's alone. sink=recorder-writing writes the file:
// the muxer's goroutines (ebml-go's) finish each batch's frames while the
// next batch is timed, as they would in a call, so their allocations are
// counted in allocs/op too and their CPU competes with the timed loop.
// Every sub-benchmark stops and drains alike.
func BenchmarkFanOutRecorder(b *testing.B) {
	for _, n := range []int{1, 10, 50, 100} {
		for _, sink := range []string{sinkNone, sinkPaused, sinkWriting} {
			b.Run(fmt.Sprintf("subscribers=%d/sink=%s", n, sink), func(b *testing.B) {
				benchFanOutRecorder(b, n, sink)
			})
		}
	}
}

func benchFanOutRecorder(b *testing.B, n int, sink string) {
	t := benchTrack(b, n)
	rec := recorder.New(io.Discard, recorder.Config{Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	type runResult struct {
		res recorder.Result
		err error
	}
	ran := make(chan runResult, 1)
	go func() {
		res, err := rec.Run(ctx)
		ran <- runResult{res, err}
	}()
	stop := func() runResult {
		cancel()
		return <-ran
	}
	var s *recorder.Sink
	if sink != sinkNone {
		var err error
		s, err = rec.AddTrack(recorder.TrackInfo{Kind: "video", MimeType: "video/VP8", ClockRate: 90000}, nil)
		if err != nil {
			stop()
			b.Fatal(err)
		}
		t.addSink(newExternalSink(s, t))
	}
	drain, want := rec.Resume, recorder.ErrNotPaused
	if sink == sinkPaused {
		if err := rec.Pause(); err != nil {
			stop()
			b.Fatal(err)
		}
		drain, want = rec.Pause, recorder.ErrPaused
	}
	payload := make([]byte, 1200)
	payload[0] = 0x10 // VP8 descriptor: start of partition 0
	payload[1] = 0x00 // key frame
	h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 42}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// The packet and the loop are BenchmarkFanOut's.
		h.SequenceNumber = uint16(i)
		h.Timestamp = uint32(i/6) * 3000
		h.Marker = i%6 == 5
		key := rtpcodec.IsKeyframe(t.mime, payload)
		now := time.Unix(0, int64(i)*1e6)
		t.layers[0].Load().cache.put(h.SequenceNumber, h.Timestamp, h.Marker, payload, int64(i)*1e6)
		for _, s := range *t.sinks.Load() {
			s.writeRTP(0, &h, payload, key, now)
		}
		if i%recordBatch == recordBatch-1 {
			b.StopTimer()
			if err := drain(); !errors.Is(err, want) {
				stop()
				b.Fatalf("draining the recording: %v, want %v", err, want)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	r := stop()
	if r.err != nil {
		b.Fatalf("recording: %v", r.err)
	}
	if s == nil {
		return
	}
	drops := s.Dropped()
	b.ReportMetric(float64(drops), "drops")
	if drops != 0 {
		b.Fatalf("%d of %d packets dropped: the queue filled", drops, b.N)
	}
	// The recording took every packet: as frames written or, paused,
	// as frames not written.
	if len(r.res.Tracks) != 1 {
		b.Fatalf("the recording has %d tracks, want 1", len(r.res.Tracks))
	}
	tr := r.res.Tracks[0]
	if got := tr.Frames + tr.PausedFrames; b.N >= 12 && got == 0 {
		b.Fatalf("the recording took no frame of %d packets: %+v", b.N, tr)
	}
}

// TestRecorderSinkAllocs: the forwarding loop with a recorder's Sink on
// the track allocates nothing, the recording's queue passing half full
// (its goroutine's kick) included. The recording is not run, so nothing
// else allocates while the packets are counted.
func TestRecorderSinkAllocs(t *testing.T) {
	tr := benchTrack(t, 2)
	payload := make([]byte, 1200)
	payload[0] = 0x10 // VP8 descriptor: start of partition 0
	payload[1] = 0x00 // key frame
	h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 42}
	i := 0
	forward := func(n int) {
		for range n {
			h.SequenceNumber = uint16(i)
			h.Timestamp = uint32(i/6) * 3000
			h.Marker = i%6 == 5
			key := rtpcodec.IsKeyframe(tr.mime, payload)
			now := time.Unix(0, int64(i)*1e6)
			tr.layers[0].Load().cache.put(h.SequenceNumber, h.Timestamp, h.Marker, payload, int64(i)*1e6)
			for _, s := range *tr.sinks.Load() {
				s.writeRTP(0, &h, payload, key, now)
			}
			i++
		}
	}
	// The packet cache allocates each slot's buffer once: fill it first.
	forward(2 * cacheMaxSlots)

	rec := recorder.New(io.Discard, recorder.Config{Log: slog.New(slog.DiscardHandler)})
	s, err := rec.AddTrack(recorder.TrackInfo{Kind: "video", MimeType: "video/VP8", ClockRate: 90000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.addSink(newExternalSink(s, tr))
	// AllocsPerRun calls once to warm up, then once counted: 800 packets
	// in all, under the queue's 1024 slots; the counted run passes 512.
	const perRun = 400
	if a := testing.AllocsPerRun(1, func() { forward(perRun) }); a != 0 {
		t.Errorf("%v allocations forwarding %d packets with a recorder sink", a, perRun)
	}
	if d := s.Dropped(); d != 0 {
		t.Fatalf("%d packets dropped: the test meant every packet to be queued", d)
	}
}
