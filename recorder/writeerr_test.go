package recorder

import (
	"context"
	"errors"
	"testing"
	"time"
)

// failingWriter accepts n bytes, then fails every write.
type failingWriter struct{ n int }

var errStorage = errors.New("storage gone")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n < len(p) {
		return 0, errStorage
	}
	w.n -= len(p)
	return len(p), nil
}

// TestWriteErrorStopsRecording: a failing writer ends Run with its error
// (wrapped), the SFU side never blocks, and every goroutine ends (goleak).
func TestWriteErrorStopsRecording(t *testing.T) {
	video := packetize(t, "../testdata/sample.ivf", true, 0x1111, 1000, 5000, 12*time.Millisecond)
	audio := packetize(t, "../testdata/sample.ogg", false, 0x2222, 2000, 7000, 10*time.Millisecond)
	clock := &simClock{}
	clock.set(t0)
	r := New(&failingWriter{n: 20000}, Config{Now: clock.now})
	as, err := r.AddTrack(TrackInfo{Kind: "audio", MimeType: "audio/opus", ClockRate: 48000, Channels: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := r.AddTrack(TrackInfo{Kind: "video", MimeType: "video/VP8", ClockRate: 90000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Run(context.Background())
		done <- err
	}()
	// Sent without waiting for the queue: once Run has stopped, packets
	// are ignored, never blocking.
	for _, e := range merge(video.events, audio.events) {
		clock.set(e.arrival)
		s := as
		if e.video {
			s = vs
		}
		if e.pkt != nil {
			s.WriteRTP(&e.pkt.Header, e.pkt.Payload)
		}
	}
	as.Close()
	vs.Close()
	r.Stop()
	if err := <-done; !errors.Is(err, errStorage) {
		t.Fatalf("Run: %v, want the writer's error", err)
	}
	if err := r.Pause(); !errors.Is(err, ErrStopped) {
		t.Errorf("Pause after the error: %v, want ErrStopped", err)
	}
}

// TestPauseWhenDrainFails: a Pause that Run takes and then fails to apply,
// because writing what was queued before it fails, returns ErrStopped
// instead of waiting forever for a reply. The queued packets and the Pause
// race the recording's tick, so the test tries many times.
func TestPauseWhenDrainFails(t *testing.T) {
	audio := packetize(t, "../testdata/sample.ogg", false, 0x2222, 2000, 7000, 10*time.Millisecond)
	for i := range 40 {
		clock := &simClock{}
		clock.set(t0)
		r := New(&failingWriter{}, Config{Now: clock.now, HeaderWait: time.Millisecond})
		as, err := r.AddTrack(TrackInfo{Kind: "audio", MimeType: "audio/opus", ClockRate: 48000, Channels: 2}, nil)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := r.Run(context.Background())
			done <- err
		}()
		for _, e := range audio.events[:40] {
			clock.set(e.arrival)
			if e.pkt != nil {
				as.WriteRTP(&e.pkt.Header, e.pkt.Payload)
			}
		}
		paused := make(chan error, 1)
		go func() { paused <- r.Pause() }()
		select {
		case err := <-paused:
			if err != nil && !errors.Is(err, ErrStopped) {
				t.Fatalf("try %d: Pause: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("try %d: Pause still waiting 10 s after the recording failed", i)
		}
		as.Close()
		r.Stop()
		if err := <-done; !errors.Is(err, errStorage) {
			t.Fatalf("try %d: Run: %v, want the writer's error", i, err)
		}
	}
}
