package media

import (
	"testing"
	"time"
)

// TestLoad checks the embedded files: ten seconds of each (four of the
// two layers above the simulcast ones), a keyframe every 60 frames, and
// layer bitrates near their names.
func TestLoad(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range s.VP8 {
		secs := 10
		if i >= len(RIDs) {
			secs = 4
		}
		if len(f.Data) != 30*secs || f.Duration != time.Second/30 {
			t.Errorf("layer %d: %d frames of %v, want %d of 33ms", i, len(f.Data), f.Duration, 30*secs)
		}
		bytes := 0
		for j, d := range f.Data {
			bytes += len(d)
			if f.Key[j] != (j%60 == 0) {
				t.Errorf("layer %d frame %d: keyframe %v", i, j, f.Key[j])
			}
		}
		if bps := bytes * 8 / secs; bps < LayerBitrates[i]*8/10 || bps > LayerBitrates[i]*12/10 {
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
	for bps, want := range map[int]int{100_000: 0, 300_000: 0, 400_000: 1, 500_000: 1, 900_000: 2, 1_400_000: 2,
		1_600_000: 3, 1_800_000: 3, 2_200_000: 4, 2_500_000: 4, 5_000_000: 4} {
		if got := LayerFor(bps); got != want {
			t.Errorf("LayerFor(%d) = %d, want %d", bps, got, want)
		}
	}
}

// TestVideoTracks: what a publisher offers for each top layer, with and
// without simulcast. Above 1200k the top file takes f's place in the
// simulcast set, which keeps its three RIDs.
func TestVideoTracks(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		top       int
		simulcast bool
		want      []int // layers, in RID order when simulcast
	}{
		{0, false, []int{0}}, {2, false, []int{2}}, {4, false, []int{4}}, {9, false, []int{4}},
		{0, true, []int{0}}, {1, true, []int{0, 1}}, {2, true, []int{0, 1, 2}},
		{3, true, []int{0, 1, 3}}, {4, true, []int{0, 1, 4}},
	} {
		tracks, err := videoTracks(s, Options{Video: true, Simulcast: tc.simulcast, TopLayer: tc.top})
		if err != nil {
			t.Fatal(err)
		}
		if len(tracks) != len(tc.want) {
			t.Errorf("top %d simulcast %v: %d tracks, want %d", tc.top, tc.simulcast, len(tracks), len(tc.want))
			continue
		}
		for j, tr := range tracks {
			if tr.frames != &s.VP8[tc.want[j]] {
				t.Errorf("top %d simulcast %v: track %d does not play layer %d", tc.top, tc.simulcast, j, tc.want[j])
			}
			wantRID := ""
			if tc.simulcast {
				wantRID = RIDs[j]
			}
			if tr.t.RID() != wantRID {
				t.Errorf("top %d simulcast %v: track %d has RID %q, want %q", tc.top, tc.simulcast, j, tr.t.RID(), wantRID)
			}
		}
	}
}
