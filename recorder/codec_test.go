// The file's video codec: fixed by its header, a later video track of
// another codec refused; an H.264 track with no keyframe before the file's
// start left out of it.

package recorder

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// waitStarted waits until the file's header is written.
func waitStarted(t *testing.T, r *Recording) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, ok := r.Started(); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the file's header was not written")
		}
	}
}

// A file started with VP8 video takes no H.264 or VP9 track, even after
// the VP8 one ended; another VP8 track it takes.
func TestAddTrackOtherVideoCodec(t *testing.T) {
	video := packetize(t, "../testdata/sample.ivf", true, 0x1111, 1000, 5000, 12*time.Millisecond)
	audio := packetize(t, "../testdata/sample.ogg", false, 0x2222, 2000, 7000, 10*time.Millisecond)
	recordThen(t, video, audio, nil, func(r *Recording) {
		waitStarted(t, r)
		for _, mime := range []string{"video/H264", "video/VP9"} {
			if _, err := r.AddTrack(TrackInfo{Kind: "video", MimeType: mime, ClockRate: 90000}, nil); !errors.Is(err, ErrNotInFile) {
				t.Errorf("%s in a VP8 file: %v, want ErrNotInFile", mime, err)
			}
		}
		s, err := r.AddTrack(TrackInfo{Kind: "video", MimeType: "video/vp8", ClockRate: 90000}, nil)
		if err != nil {
			t.Fatalf("another VP8 track: %v", err)
		}
		s.Close()
	})
}

// An H.264 track whose first keyframe comes after HeaderWait: the file
// starts without video (its CodecPrivate would be made of that keyframe's
// parameter sets), its frames are dropped without error, and the file is
// WebM audio.
func TestH264KeyframeAfterHeaderWait(t *testing.T) {
	needFFprobe(t)
	video := packetize(t, "../testdata/sample.h264", true, 0x1111, 1000, 5000, 12*time.Millisecond)
	audio := packetize(t, "../testdata/sample.ogg", false, 0x2222, 2000, 7000, 10*time.Millisecond)
	if !video.key[90] || slices_any(video.key[61:90]) {
		t.Fatal("sample.h264: want a keyframe at 90 (3 s) and none in [61,90)")
	}
	var late []event
	for _, e := range video.events {
		if e.pkt == nil || e.frame > 60 {
			late = append(late, e)
		}
	}
	video.events = late
	rec := recordThen(t, video, audio, nil, func(r *Recording) {
		waitStarted(t, r)
		if _, err := r.AddTrack(TrackInfo{Kind: "video", MimeType: "video/H264", ClockRate: 90000}, nil); !errors.Is(err, ErrNotInFile) {
			t.Errorf("H.264 track after a file without video: %v, want ErrNotInFile", err)
		}
	})
	if want := (Format{"webm", "audio/webm"}); rec.format != want {
		t.Errorf("format %+v, want %+v", rec.format, want)
	}
	if n := rec.res.Tracks[1].Frames; n != 0 {
		t.Errorf("%d video frames written", n)
	}
	if rec.asks == 0 {
		t.Error("no keyframe asked for at the start")
	}
	if got := strings.TrimSpace(ffprobe(t, rec.path, "-show_entries", "stream=codec_name", "-of", "csv=p=0")); got != "opus" {
		t.Errorf("streams %q, want opus alone", got)
	}
}
