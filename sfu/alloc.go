package sfu

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Bandwidth allocation: each subscriber's estimate is shared out among the
// tracks it receives, audio first, then video in priority order, each video
// track getting the highest layer that fits what is left. A video track that
// cannot fit even its lowest layer is paused rather than letting audio
// suffer.

// allocInterval is how often a subscriber's allocation is recomputed.
const allocInterval = 500 * time.Millisecond

// upswitchMargin is how much headroom a layer above the one being forwarded
// needs before the allocator moves up to it, so estimates that hover at a
// layer's rate do not make it flap.
const upswitchMargin = 1.15

// videoDemand is what the allocator knows of one video track.
type videoDemand struct {
	maxLayer int              // the highest layer the subscriber asked for
	rates    [maxLayers]int64 // measured bits/s of each layer; 0 = not being received
	current  int              // layer now forwarded (layerNone if none)
	paused   bool             // paused by the allocator for lack of bandwidth
}

// allocate returns the layer each video track may use (layerNone = paused)
// out of budget bits/s, after audioRate bits/s for the audio tracks. videos
// must be in priority order.
func allocate(budget, audioRate int64, videos []videoDemand) []int {
	out := make([]int, len(videos))
	left := budget - audioRate
	for i, v := range videos {
		out[i] = layerNone
		for l := min(v.maxLayer, maxLayers-1); l >= 0; l-- {
			rate := v.rates[l]
			if rate <= 0 {
				continue
			}
			// Moving up, or resuming a track paused for bandwidth, needs
			// headroom; staying, or starting a track that has not begun
			// (waiting for its first keyframe), does not.
			need := rate
			if v.paused || (v.current != layerNone && l > v.current) {
				need = int64(float64(rate) * upswitchMargin)
			}
			if need <= left {
				out[i] = l
				left -= rate
				break
			}
		}
	}
	return out
}

// sortByPriority orders down tracks for allocation: the speaker's tracks
// first, then by publisher and track id so the order is stable.
func sortByPriority(downs []*downTrack, speaker string) {
	slices.SortFunc(downs, func(a, b *downTrack) int {
		as, bs := speaker != "" && a.src.owner.id == speaker, speaker != "" && b.src.owner.id == speaker
		switch {
		case as && !bs:
			return -1
		case bs && !as:
			return 1
		}
		if c := strings.Compare(a.src.owner.id, b.src.owner.id); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
}

// rateMeter turns a growing byte count into a smoothed bit rate.
type rateMeter struct {
	mu    sync.Mutex
	bytes uint64
	at    time.Time
	rate  float64 // bits per second, exponentially smoothed
}

// rateMinWindow is the shortest interval a rate is computed over.
const rateMinWindow = 250 * time.Millisecond

// update folds in the byte count seen at now and returns the rate.
func (m *rateMeter) update(bytes uint64, now time.Time) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.at.IsZero() {
		m.bytes, m.at = bytes, now
		return 0
	}
	dt := now.Sub(m.at)
	if dt < rateMinWindow {
		return int64(m.rate)
	}
	sample := float64(bytes-m.bytes) * 8 / dt.Seconds()
	if m.rate == 0 {
		m.rate = sample
	} else {
		m.rate += 0.5 * (sample - m.rate)
	}
	m.bytes, m.at = bytes, now
	return int64(m.rate)
}

// layerRates measures the bit rate of each layer being received.
func (t *publishedTrack) layerRates(now time.Time) (rates [maxLayers]int64) {
	for i := range t.layers {
		if l := t.layers[i].Load(); l != nil {
			rates[i] = t.layerRate(l, now)
		}
	}
	return rates
}
