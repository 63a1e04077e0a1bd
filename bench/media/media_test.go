package media

import (
	"testing"
	"time"
)

// TestLoad checks the embedded files: ten seconds of each, a keyframe
// every 60 frames, and layer bitrates near their names.
func TestLoad(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range s.VP8 {
		if len(f.Data) != 300 || f.Duration != time.Second/30 {
			t.Errorf("layer %d: %d frames of %v, want 300 of 33ms", i, len(f.Data), f.Duration)
		}
		bytes := 0
		for j, d := range f.Data {
			bytes += len(d)
			if f.Key[j] != (j%60 == 0) {
				t.Errorf("layer %d frame %d: keyframe %v", i, j, f.Key[j])
			}
		}
		if bps := bytes * 8 / 10; bps < LayerBitrates[i]*8/10 || bps > LayerBitrates[i]*12/10 {
			t.Errorf("layer %d: %d bit/s, want about %d", i, bps, LayerBitrates[i])
		}
	}
	if len(s.H264.Data) != 300 || !s.H264.Key[0] || s.H264.Key[1] || !s.H264.Key[60] {
		t.Errorf("h264: %d frames, keys at 0 %v, 1 %v, 60 %v", len(s.H264.Data), s.H264.Key[0], s.H264.Key[1], s.H264.Key[60])
	}
	if len(s.Audio.Data) < 490 || s.Audio.Duration != 20*time.Millisecond {
		t.Errorf("audio: %d packets of %v", len(s.Audio.Data), s.Audio.Duration)
	}
	// A keyframe request in the middle of a group goes to the next one,
	// and wraps around at the end.
	f := s.VP8[0]
	if got := f.NextKey(61); got != 120 {
		t.Errorf("NextKey(61) = %d, want 120", got)
	}
	if got := f.NextKey(250); got != 0 {
		t.Errorf("NextKey(250) = %d, want 0 (wrapped)", got)
	}
	if got := f.NextKey(60); got != 60 {
		t.Errorf("NextKey(60) = %d, want 60", got)
	}
}

func TestLayerFor(t *testing.T) {
	for bps, want := range map[int]int{100_000: 0, 300_000: 0, 400_000: 1, 500_000: 1, 900_000: 2, 5_000_000: 2} {
		if got := LayerFor(bps); got != want {
			t.Errorf("LayerFor(%d) = %d, want %d", bps, got, want)
		}
	}
}
