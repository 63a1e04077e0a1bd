package recorder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/internal/mediaprobe"
)

// TestWholeUnits: of a stream as the live muxer writes it, cut anywhere,
// the whole units are those up to the last boundary before the cut.
func TestWholeUnits(t *testing.T) {
	units := [][]byte{
		{0x1a, 0x45, 0xdf, 0xa3, 0x84, 0x42, 0x86, 0x81, 0x01},                   // EBML header, 4 bytes: EBMLVersion 1
		{0x18, 0x53, 0x80, 0x67, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // Segment, unknown size (8-byte size)
		{0x16, 0x54, 0xae, 0x6b, 0x40, 0x03, 0xae, 0x81, 0x00},                   // Tracks, a 2-byte size of 3
		{0x1f, 0x43, 0xb6, 0x75, 0xff},                                           // Cluster, unknown size (1-byte size)
		{0xe7, 0x81, 0x00},                                                       // Timecode 0
		append([]byte{0xa3, 0x85, 0x81, 0x00, 0x00, 0x80}, 0x9d),                 // SimpleBlock, 5 bytes
		append([]byte{0xa3, 0x41, 0x00}, bytes.Repeat([]byte{7}, 256)...),        // SimpleBlock, 256 bytes
	}
	var stream []byte
	bounds := []int{0}
	for _, u := range units {
		stream = append(stream, u...)
		bounds = append(bounds, len(stream))
	}
	for cut := 0; cut <= len(stream); cut++ {
		want := 0
		for _, b := range bounds {
			if b <= cut {
				want = b
			}
		}
		if n, ok := wholeUnits(stream[:cut]); n != want || !ok {
			t.Fatalf("cut at %d: %d whole (ok %v), want %d", cut, n, ok, want)
		}
	}
	// A zero byte starts no ID.
	if n, ok := wholeUnits(append(slices.Clone(units[0]), 0, 1, 2)); ok || n != len(units[0]) {
		t.Errorf("garbage after a unit: %d, %v", n, ok)
	}
}

// boundedWriter keeps what it takes and, like an upload whose spool is
// full, refuses any write that would take it past max bytes, and all
// after.
type boundedWriter struct {
	buf bytes.Buffer
	max int
	err error
}

func (w *boundedWriter) Write(p []byte) (int, error) {
	if w.err == nil && w.buf.Len()+len(p) > w.max {
		w.err = errStorage
	}
	if w.err != nil {
		return 0, w.err
	}
	return w.buf.Write(p)
}

// TestRefusedWriteEndsBetweenElements: when the writer refuses a write
// (storage's spool is full), what it took is a file that decodes without
// error: it ends between elements, never inside one.
func TestRefusedWriteEndsBetweenElements(t *testing.T) {
	needFFprobe(t)
	video := packetize(t, "../testdata/sample.ivf", true, 0x1111, 1000, 5000, 12*time.Millisecond)
	audio := packetize(t, "../testdata/sample.ogg", false, 0x2222, 2000, 7000, 10*time.Millisecond)
	for _, max := range []int{3000, 20000, 45000, 90001} {
		clock := &simClock{}
		clock.set(t0)
		w := &boundedWriter{max: max}
		r := New(w, Config{Now: clock.now})
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
		f := &feeder{r: r, clock: clock, audio: as, video: vs}
		f.send(t, merge(video.events, audio.events))
		as.Close()
		vs.Close()
		r.Stop()
		if err := <-done; !errors.Is(err, errStorage) {
			t.Fatalf("max %d: Run: %v, want the writer's error", max, err)
		}
		path := filepath.Join(t.TempDir(), "cut.webm")
		if err := os.WriteFile(path, w.buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		info, err := mediaprobe.Probe(path)
		if err != nil {
			t.Errorf("max %d: %d bytes taken: %v", max, w.buf.Len(), err)
		}
		t.Logf("max %d: %d bytes taken, %v of media", max, w.buf.Len(), info.Duration)
	}
}
