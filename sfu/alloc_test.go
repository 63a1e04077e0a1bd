package sfu

import (
	"slices"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

func TestAllocate(t *testing.T) {
	rates := [maxLayers]int64{100_000, 300_000, 900_000}
	cases := []struct {
		name   string
		budget int64
		audio  int64
		videos []videoDemand
		want   []int
	}{
		{"plenty", 5_000_000, 50_000, []videoDemand{{maxLayer: layerFull, rates: rates, current: layerFull}}, []int{layerFull}},
		{"middle", 500_000, 50_000, []videoDemand{{maxLayer: layerFull, rates: rates, current: layerFull}}, []int{layerHalf}},
		{"only the lowest", 200_000, 50_000, []videoDemand{{maxLayer: layerFull, rates: rates, current: layerHalf}}, []int{layerQuarter}},
		{"audio first: video paused", 120_000, 50_000, []videoDemand{{maxLayer: layerFull, rates: rates, current: layerQuarter}}, []int{layerNone}},
		{"request caps the layer", 5_000_000, 0, []videoDemand{{maxLayer: layerQuarter, rates: rates, current: layerQuarter}}, []int{layerQuarter}},
		{"upswitch needs headroom", 950_000, 0, []videoDemand{{maxLayer: layerFull, rates: rates, current: layerHalf}}, []int{layerHalf}},
		{"staying needs none", 950_000, 0, []videoDemand{{maxLayer: layerFull, rates: rates, current: layerFull}}, []int{layerFull}},
		{"resume needs headroom", 105_000, 0, []videoDemand{{maxLayer: layerFull, rates: rates, current: layerNone, paused: true}}, []int{layerNone}},
		{"starting needs none", 105_000, 0, []videoDemand{{maxLayer: layerFull, rates: rates, current: layerNone}}, []int{layerQuarter}},
		{"single layer starts at the estimate", 1_500_000, 0, []videoDemand{{maxLayer: layerFull, rates: [maxLayers]int64{1_500_000}, current: layerNone}}, []int{layerQuarter}},
		{"missing layers skipped", 5_000_000, 0, []videoDemand{{maxLayer: layerFull, rates: [maxLayers]int64{100_000, 0, 0}, current: layerNone}}, []int{layerQuarter}},
		{"single-layer track paused", 400_000, 0, []videoDemand{{maxLayer: layerFull, rates: [maxLayers]int64{600_000}, current: 0}}, []int{layerNone}},
		{"priority order", 1_000_000, 0, []videoDemand{
			{maxLayer: layerFull, rates: rates, current: layerFull},
			{maxLayer: layerFull, rates: rates, current: layerFull},
		}, []int{layerFull, layerQuarter}},
	}
	for _, c := range cases {
		got := allocate(c.budget, c.audio, c.videos)
		if len(got) != len(c.want) {
			t.Fatalf("%s: %v, want %v", c.name, got, c.want)
		}
		for i := range got {
			if got[i] != (layerChoice{c.want[i], temporalAll}) {
				t.Errorf("%s: allocate = %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
}

// TestAllocateTemporal: with VP8 temporal layers a track drops to half its
// frame rate before it drops a simulcast layer, and to a quarter only on its
// lowest layer, before it is paused.
func TestAllocateTemporal(t *testing.T) {
	rates := [maxLayers]int64{100_000, 300_000, 900_000}
	var temporal [maxLayers][maxTemporal]int64
	for i, r := range rates {
		temporal[i] = [maxTemporal]int64{r * 6 / 10, r * 8 / 10, r}
	}
	demand := func(cur, curT int) videoDemand {
		return videoDemand{maxLayer: layerFull, rates: rates, temporal: temporal, current: cur, currentTemporal: curT}
	}
	cases := []struct {
		name   string
		budget int64
		v      videoDemand
		want   layerChoice
	}{
		{"all", 1_000_000, demand(layerFull, temporalAll), layerChoice{layerFull, temporalAll}},
		{"full size, half the frame rate", 800_000, demand(layerFull, temporalAll), layerChoice{layerFull, 1}},
		{"a quarter only on the lowest layer", 650_000, demand(layerFull, 1), layerChoice{layerHalf, temporalAll}},
		{"lowest layer, half rate", 85_000, demand(layerQuarter, temporalAll), layerChoice{layerQuarter, 1}},
		{"lowest layer, quarter rate", 70_000, demand(layerQuarter, 1), layerChoice{layerQuarter, 0}},
		{"then paused", 50_000, demand(layerQuarter, 0), layerChoice{layerNone, temporalAll}},
		{"more frames need headroom", 950_000, demand(layerFull, 1), layerChoice{layerFull, 1}},
		{"more frames with headroom", 1_050_000, demand(layerFull, 1), layerChoice{layerFull, temporalAll}},
	}
	for _, c := range cases {
		got := allocate(c.budget, 0, []videoDemand{c.v})
		if got[0] != c.want {
			t.Errorf("%s: allocate = %+v, want %+v", c.name, got[0], c.want)
		}
	}
}

func TestRateMeter(t *testing.T) {
	var m rateMeter
	t0 := time.Unix(1000, 0)
	if r := m.update(0, t0); r != 0 {
		t.Fatalf("first sample rate %d, want 0", r)
	}
	// 125 000 bytes a second is 1 Mbit/s.
	var bytes uint64
	var r int64
	for i := 1; i <= 20; i++ {
		bytes += 62_500
		r = m.update(bytes, t0.Add(time.Duration(i)*500*time.Millisecond))
	}
	if r < 990_000 || r > 1_010_000 {
		t.Fatalf("rate %d, want about 1 000 000", r)
	}
	// Updates closer together than the window keep the last rate.
	if r2 := m.update(bytes+1_000_000, t0.Add(10*time.Second+10*time.Millisecond)); r2 != r {
		t.Fatalf("rate moved within the window: %d -> %d", r, r2)
	}
	// The rate follows a drop.
	for i := 1; i <= 20; i++ {
		bytes += 6_250
		r = m.update(bytes, t0.Add(10*time.Second+time.Duration(i)*500*time.Millisecond))
	}
	if r > 110_000 {
		t.Fatalf("rate %d after dropping to 100 kbit/s", r)
	}
}

func TestSortByPriority(t *testing.T) {
	track := func(owner, id string) *downTrack {
		return &downTrack{id: id, src: &publishedTrack{trackEnv: trackEnv{publisher: owner}}}
	}
	names := func(ds []*downTrack) (out []string) {
		for _, d := range ds {
			out = append(out, d.src.publisher+"/"+d.id)
		}
		return out
	}
	downs := []*downTrack{track("carl", "video"), track("ann", "video"), track("bob", "video"), track("ann", "screen")}
	sortByPriority(downs, "bob")
	if got, want := names(downs), []string{"bob/video", "ann/screen", "ann/video", "carl/video"}; !slices.Equal(got, want) {
		t.Errorf("order with bob speaking = %v, want %v", got, want)
	}
	sortByPriority(downs, "")
	if got, want := names(downs), []string{"ann/screen", "ann/video", "bob/video", "carl/video"}; !slices.Equal(got, want) {
		t.Errorf("order with nobody speaking = %v, want %v", got, want)
	}
}

// TestPauseDelay: a video track the allocator finds no room for keeps its
// lowest layer for pauseDelay before it is paused, and a moment of room
// starts the count again.
func TestPauseDelay(t *testing.T) {
	src := &publishedTrack{kind: "video", mime: mimeVP8}
	for i := range maxLayers {
		l := &layer{track: src, index: i}
		l.lastKeyReq.Store(1 << 62) // a keyframe was "just" asked for: no RTCP goes out
		src.layers[i].Store(l)
	}
	d := &downTrack{src: src, kind: webrtc.RTPCodecTypeVideo, maxLayer: layerFull, bwLayer: layerFull, target: layerFull, current: layerFull}
	t0 := time.Unix(100, 0)
	d.setBandwidthLayer(layerNone, t0)
	if d.bwLayer != layerQuarter {
		t.Fatalf("paused at once: bwLayer %d", d.bwLayer)
	}
	d.setBandwidthLayer(layerNone, t0.Add(pauseDelay/2))
	d.setBandwidthLayer(layerHalf, t0.Add(pauseDelay*3/4)) // room again
	d.setBandwidthLayer(layerNone, t0.Add(pauseDelay*5/4))
	if d.bwLayer != layerQuarter {
		t.Fatalf("paused although room came back in between: bwLayer %d", d.bwLayer)
	}
	paused := t0.Add(pauseDelay * 9 / 4)
	d.setBandwidthLayer(layerNone, paused)
	if d.bwLayer != layerNone || d.target != layerNone || d.current != layerNone {
		t.Fatalf("not paused after the delay: bw %d target %d current %d", d.bwLayer, d.target, d.current)
	}
	// Paused, it is retried on its lowest layer after probeInterval (the
	// estimator learns nothing while nothing is sent), and paused again if
	// there is still no room after another pauseDelay.
	d.setBandwidthLayer(layerNone, paused.Add(probeInterval/2))
	if d.bwLayer != layerNone {
		t.Fatalf("probed too early: bwLayer %d", d.bwLayer)
	}
	probe := paused.Add(probeInterval)
	d.setBandwidthLayer(layerNone, probe)
	if d.bwLayer != layerQuarter || d.target != layerQuarter {
		t.Fatalf("no probe after %v paused: bw %d target %d", probeInterval, d.bwLayer, d.target)
	}
	d.setBandwidthLayer(layerNone, probe.Add(pauseDelay/2))
	if d.bwLayer != layerQuarter {
		t.Fatalf("probe cut short: bwLayer %d", d.bwLayer)
	}
	d.setBandwidthLayer(layerNone, probe.Add(pauseDelay))
	if d.bwLayer != layerNone {
		t.Fatalf("not paused again after a failed probe: bwLayer %d", d.bwLayer)
	}
}
