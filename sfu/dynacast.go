package sfu

import (
	"sync"
	"sync/atomic"
	"time"
)

// Dynacast: simulcast layers that no subscriber needs are paused at the
// publisher, saving its uplink and encoder, and resumed as soon as one is
// needed. A layer is needed when a down track forwards it or is waiting to
// switch to it; a layer unneeded for a while (Config.DynacastPause) is paused, so
// short-lived changes do not make the publisher flap.

// defaultDynacastPause is how long a layer must be unneeded before it is
// paused, unless Config.DynacastPause says otherwise.
const defaultDynacastPause = 5 * time.Second

// rateSettle is how long after a layer resumes its measured rate is not yet
// trusted (the encoder ramps up).
const rateSettle = 2 * time.Second

// LayerState tells a publisher which encodings of one of its tracks to send.
type LayerState struct {
	TrackID string   // the publisher's track id (its MediaStreamTrack id)
	Active  []string // RIDs to send
	Paused  []string // RIDs to pause
}

// dynacastState is a published track's record of what its publisher was
// told.
type dynacastState struct {
	mu        sync.Mutex
	known     [maxLayers]bool      // the layer has been seen (publishers start sending every layer)
	active    [maxLayers]bool      // what the publisher is sending, as far as we know
	unneeded  [maxLayers]time.Time // since when each layer has been unneeded (zero: needed)
	resumedAt [maxLayers]time.Time
}

// layerActivity is what one layer knows of its dynacast state.
type layerActivity struct {
	paused  atomic.Bool  // the publisher was told to stop sending it
	nominal atomic.Int64 // its bit rate while it was last sent steadily
}

// neededLayers collects the layers the track's sinks forward or wait for.
func (t *publishedTrack) neededLayers() (need [maxLayers]bool) {
	for _, s := range *t.sinks.Load() {
		switch s := s.(type) {
		case *downTrack:
			target, current := s.wanted()
			for _, l := range []int{target, current} {
				if l >= 0 && l < maxLayers {
					need[l] = true
				}
			}
		case *externalSink:
			if top := t.topLayer(); top != layerNone {
				need[top] = true
			}
		}
	}
	return need
}

// dynacast decides which layers the publisher should send now and returns
// the new state when it changed. Only simulcast video tracks take part.
func (t *publishedTrack) dynacast(now time.Time) (LayerState, bool) {
	if t.kind != "video" {
		return LayerState{}, false
	}
	var present [maxLayers]*layer
	n := 0
	for i := range t.layers {
		if present[i] = t.layers[i].Load(); present[i] != nil && present[i].remote != nil && present[i].remote.RID() != "" {
			n++
		}
	}
	if n < 2 {
		return LayerState{}, false
	}
	need := t.neededLayers()
	d := &t.dyn
	d.mu.Lock()
	defer d.mu.Unlock()
	var want [maxLayers]bool
	for i, l := range present {
		if l == nil {
			continue
		}
		if !d.known[i] {
			d.known[i], d.active[i] = true, true
		}
		switch {
		case need[i]:
			d.unneeded[i] = time.Time{}
			want[i] = true
		case d.unneeded[i].IsZero():
			d.unneeded[i] = now
			want[i] = d.active[i]
		default:
			want[i] = d.active[i] && now.Sub(d.unneeded[i]) < t.dynacastPause
		}
	}
	if want == d.active {
		return LayerState{}, false
	}
	st := LayerState{TrackID: t.id}
	for i, l := range present {
		if l == nil {
			continue
		}
		if want[i] {
			st.Active = append(st.Active, l.remote.RID())
			if !d.active[i] {
				d.resumedAt[i] = now
			}
		} else {
			st.Paused = append(st.Paused, l.remote.RID())
		}
		l.activity.paused.Store(!want[i])
	}
	d.active = want
	return st, true
}

// layerRate is the bit rate to plan with for layer i: what it is measured
// at, or, while it is paused or ramping up after a resume, what it ran at
// before. Layers never measured count as 1 bit/s, so they look affordable.
func (t *publishedTrack) layerRate(l *layer, now time.Time) int64 {
	measured := l.meter.update(l.bytes.Load(), now)
	act := &l.activity
	t.dyn.mu.Lock()
	settling := now.Sub(t.dyn.resumedAt[l.index]) < rateSettle
	t.dyn.mu.Unlock()
	if act.paused.Load() || settling || measured == 0 {
		if nominal := act.nominal.Load(); nominal > 0 {
			return nominal
		}
		return max(measured, 1)
	}
	act.nominal.Store(measured)
	return measured
}
