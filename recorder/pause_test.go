package recorder

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestPauseResume(t *testing.T) {
	needFFprobe(t)
	for _, mc := range mediaCases {
		t.Run(mc.name, func(t *testing.T) { pauseResume(t, mc.video(t)) })
	}
}

// pauseResume records a video sample with a keyframe every 30 frames
// (1 s) and sample.ogg, paused from 1.5 s to 2.5 s.
func pauseResume(t *testing.T, videoPath string) {
	pauseAt, resumeAt := t0.Add(1505*time.Millisecond), t0.Add(2505*time.Millisecond)
	paused, resumed := false, false
	video := packetize(t, videoPath, true, 0x1111, 1000, 5000, 12*time.Millisecond)
	audio := packetize(t, "../testdata/sample.ogg", false, 0x2222, 2000, 7000, 10*time.Millisecond)
	rec := record(t, video, audio, func(r *Recording, now time.Time) {
		if !paused && !now.Before(pauseAt) {
			paused = true
			if err := r.Pause(); err != nil {
				t.Fatal(err)
			}
			if err := r.Pause(); err != ErrPaused {
				t.Errorf("second Pause: %v, want ErrPaused", err)
			}
		}
		if !resumed && !now.Before(resumeAt) {
			resumed = true
			if err := r.Resume(); err != nil {
				t.Fatal(err)
			}
		}
	})
	res, path := rec.res, rec.path
	// Pause and Resume take the call clock when called: the first event at
	// or after each instant.
	if len(res.Paused) != 1 {
		t.Fatalf("paused spans %v, want one", res.Paused)
	}
	sp := res.Paused[0]
	if sp.Start.Sub(pauseAt) < 0 || sp.Start.Sub(pauseAt) > 20*time.Millisecond ||
		sp.End.Sub(resumeAt) < 0 || sp.End.Sub(resumeAt) > 20*time.Millisecond {
		t.Errorf("paused span %v..%v, want %v..%v (within one packet)", sp.Start, sp.End, pauseAt, resumeAt)
	}
	// Frames land at capture + 10 ms (the first report's delay). Audio j
	// is paused when its time is in the span; video i the same, and after
	// the span video waits for the keyframe at frame 90 (3.0 s).
	inSpan := func(capture time.Duration) bool {
		w := t0.Add(capture + 10*time.Millisecond)
		return !w.Before(sp.Start) && w.Before(sp.End)
	}
	var wantAudioPaused, wantVideoPaused, wantVideoSkipped int
	for j := range audio.frames {
		if inSpan(audio.capture(j)) {
			wantAudioPaused++
		}
	}
	for i := range video.frames {
		c := video.capture(i)
		switch {
		case inSpan(c):
			wantVideoPaused++
		case !t0.Add(c+10*time.Millisecond).Before(sp.End) && i < 90:
			wantVideoSkipped++
		}
	}
	a, v := res.Tracks[0], res.Tracks[1]
	if a.PausedFrames != uint64(wantAudioPaused) || a.Frames != uint64(audio.frames-wantAudioPaused) {
		t.Errorf("audio %+v, want %d paused, %d written", a, wantAudioPaused, audio.frames-wantAudioPaused)
	}
	if v.PausedFrames != uint64(wantVideoPaused) || v.SkippedFrames != uint64(wantVideoSkipped) ||
		v.Frames != uint64(video.frames-wantVideoPaused-wantVideoSkipped) {
		t.Errorf("video %+v, want %d paused, %d skipped to the keyframe, %d written",
			v, wantVideoPaused, wantVideoSkipped, video.frames-wantVideoPaused-wantVideoSkipped)
	}
	// The file: nothing inside the span, video back at 3.0 s, and it decodes.
	from, to := sp.Start.Sub(res.Start).Seconds(), sp.End.Sub(res.Start).Seconds()
	out := ffprobe(t, path, "-show_entries", "packet=stream_index,pts_time", "-of", "csv=p=0")
	firstVideoAfter := math.Inf(1)
	for _, line := range strings.Fields(out) {
		f := strings.Split(line, ",")
		pts, _ := strconv.ParseFloat(f[1], 64)
		if pts >= from && pts < to {
			t.Errorf("stream %s packet at %.3f s, inside the pause %.3f..%.3f", f[0], pts, from, to)
		}
		if f[0] == "1" && pts >= to {
			firstVideoAfter = min(firstVideoAfter, pts)
		}
	}
	if want := 3.0; math.Abs(firstVideoAfter-want) > 0.034 {
		t.Errorf("video resumes at %.3f s, want the keyframe at %.3f s", firstVideoAfter, want)
	}
	if msg, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput(); err != nil || len(msg) > 0 {
		t.Errorf("ffmpeg decode: %v: %s", err, msg)
	}
}

func TestPauseErrors(t *testing.T) {
	r := New(&bytes.Buffer{}, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = r.Run(ctx)
	}()
	if err := r.Resume(); err != ErrNotPaused {
		t.Errorf("Resume before Pause: %v, want ErrNotPaused", err)
	}
	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	if err := r.Resume(); err != ErrStopped {
		t.Errorf("Resume after Run returned: %v, want ErrStopped", err)
	}
}

func TestQueueFullDropsAndAsksForKeyframe(t *testing.T) {
	r := New(&bytes.Buffer{}, Config{QueuePackets: 8})
	asks := make(chan struct{}, 10)
	s, err := r.AddTrack(TrackInfo{Kind: "video", MimeType: "video/VP8", ClockRate: 90000}, func() { asks <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	key := []byte{0x10, 0x00, 0x9d, 0x01, 0x2a}
	h := &rtp.Header{Version: 2, SSRC: 5, Marker: true}
	// Run is not running: the 9th and 10th packets find no slot.
	for i := range 10 {
		h.SequenceNumber, h.Timestamp = uint16(i), uint32(3000*i)
		s.WriteRTP(h, key)
	}
	if d := s.Dropped(); d != 2 {
		t.Fatalf("Dropped = %d, want 2", d)
	}
	s.WriteRTP(h, make([]byte, maxPayload+1))
	if d := s.Dropped(); d != 3 {
		t.Fatalf("Dropped = %d after an oversized packet, want 3", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result, 1)
	go func() {
		res, _ := r.Run(ctx)
		done <- res
	}()
	select {
	case <-asks:
	case <-time.After(10 * time.Second):
		t.Error("no keyframe asked for after drops")
	}
	cancel()
	if res := <-done; res.Tracks[0].QueueDrops != 3 {
		t.Errorf("result %+v, want 3 queue drops", res.Tracks[0])
	}
}

func TestAddTrackRules(t *testing.T) {
	r := New(&bytes.Buffer{}, Config{})
	if _, err := r.AddTrack(TrackInfo{Kind: "video", MimeType: "video/AV1", ClockRate: 90000}, nil); !errors.Is(err, ErrUnsupportedCodec) {
		t.Errorf("AV1: %v, want ErrUnsupportedCodec", err)
	}
	if _, err := r.AddTrack(TrackInfo{Kind: "audio", MimeType: "audio/opus", ClockRate: 48000}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddTrack(TrackInfo{Kind: "audio", MimeType: "audio/opus", ClockRate: 48000}, nil); err == nil {
		t.Error("a second open audio track accepted")
	}
}
