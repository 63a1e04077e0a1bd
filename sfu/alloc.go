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
	// temporal[s][t] is the rate of layer s with VP8 temporal layers up to
	// t only; all zero for a layer without temporal layers.
	temporal        [maxLayers][maxTemporal]int64
	current         int  // layer now forwarded (layerNone if none)
	currentTemporal int  // temporal layer now forwarded (temporalAll for all)
	paused          bool // paused by the allocator for lack of bandwidth
}

// VP8 temporal layers: a layer's pictures carry temporal layer ids 0 to 2
// (a higher id would count as 2); forwarding ids up to t only lowers the
// frame rate (with three layers: all, half, a quarter).
const (
	maxTemporal = 3
	temporalAll = maxTemporal - 1
)

// layerChoice is what the allocator gives one video track: a simulcast
// layer (layerNone: paused) and the highest temporal layer of it.
type layerChoice struct {
	spatial, temporal int
}

// allocate returns the layer each video track may use out of budget bits/s,
// after audioRate bits/s for the audio tracks. videos must be in priority
// order. Each track gets the first of these that fits, from its highest
// layer down: the layer at its full frame rate, then at half (temporal
// layers 0 and 1); the lowest layer also at a quarter (base layer only)
// before the track is paused.
func allocate(budget, audioRate int64, videos []videoDemand) []layerChoice {
	out := make([]layerChoice, len(videos))
	left := budget - audioRate
	for i, v := range videos {
		out[i] = layerChoice{layerNone, temporalAll}
		lowest := layerNone
		for l := range maxLayers {
			if v.rates[l] > 0 {
				lowest = l
				break
			}
		}
	search:
		for l := min(v.maxLayer, maxLayers-1); l >= 0; l-- {
			if v.rates[l] <= 0 {
				continue
			}
			for t := temporalAll; t >= 0; t-- {
				rate := v.rates[l]
				if t < temporalAll {
					rate = v.temporal[l][t]
					if rate <= 0 || (t == 0 && l != lowest) {
						break
					}
				}
				// Moving up, or resuming a track paused for bandwidth,
				// needs headroom; staying, or starting a track that has not
				// begun (waiting for its first keyframe), does not.
				need := rate
				moreFrames := l == v.current && t > v.currentTemporal && v.temporal[l][0] > 0
				up := v.current != layerNone && (l > v.current || moreFrames)
				if v.paused || up {
					need = int64(float64(rate) * upswitchMargin)
				}
				if need <= left {
					out[i] = layerChoice{l, t}
					left -= rate
					break search
				}
			}
		}
	}
	return out
}

// sortByPriority orders down tracks for allocation: the speaker's tracks
// first, then by publisher and track id so the order is stable.
func sortByPriority(downs []*downTrack, speaker string) {
	slices.SortFunc(downs, func(a, b *downTrack) int {
		as, bs := speaker != "" && a.src.publisher == speaker, speaker != "" && b.src.publisher == speaker
		switch {
		case as && !bs:
			return -1
		case bs && !as:
			return 1
		}
		if c := strings.Compare(a.src.publisher, b.src.publisher); c != 0 {
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
