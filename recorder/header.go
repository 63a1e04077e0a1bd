// The file's start: frames wait until both kinds have one (or HeaderWait
// of media has passed), then the header holds the tracks known and the
// file's time 0 is the earliest frame; the recording's goroutine's own.

package recorder

import (
	"slices"
	"time"

	"github.com/helpcaster/helpcaster/recorder/depack"
)

// pendingFrame is a frame waiting for the file's header.
type pendingFrame struct {
	t    *track
	wall time.Time
	f    depack.Frame
}

// headerReady reports whether the file can start: both kinds have a
// frame (a video one begins with a keyframe), or HeaderWait of media has
// waited for the other.
func (r *Recording) headerReady() bool {
	have := map[string]bool{}
	first, last := r.pending[0].wall, r.pending[0].wall
	for _, p := range r.pending {
		have[p.t.info.Kind] = true
		if p.wall.Before(first) {
			first = p.wall
		}
		if p.wall.After(last) {
			last = p.wall
		}
	}
	// A participant's tracks are added one by one as they arrive: wait
	// for the other kind even when it is not added yet.
	return (have["audio"] && have["video"]) || last.Sub(first) >= r.headerWait
}

// writeHeader starts the file with the tracks known now, at the earliest
// pending frame, and writes the pending frames.
func (r *Recording) writeHeader() error {
	spec := muxSpec{start: r.pending[0].wall, audioChannels: 2, width: 640, height: 480}
	sized := false
	for _, p := range r.pending {
		if p.wall.Before(spec.start) {
			spec.start = p.wall
		}
		if p.f.Width > 0 && !sized {
			spec.width, spec.height, sized = p.f.Width, p.f.Height, true
		}
	}
	var kinds []string
	for _, t := range r.snapshot() {
		switch t.info.Kind {
		case "audio":
			spec.audio = true
			if t.info.Channels > 0 {
				spec.audioChannels = int(t.info.Channels)
			}
		case "video":
			spec.video = true
		}
		kinds = append(kinds, t.info.Kind)
	}
	r.mu.Lock()
	r.format = formatFor(spec)
	r.mu.Unlock()
	m, err := newMuxer(r.out, spec)
	if err != nil {
		return err
	}
	r.mux = m
	r.mu.Lock()
	r.start, r.inFile = spec.start, kinds
	r.mu.Unlock()
	pending := r.pending
	r.pending = nil
	slices.SortStableFunc(pending, func(a, b pendingFrame) int { return a.wall.Compare(b.wall) })
	for _, p := range pending {
		if err := r.write(p.t, p.wall, p.f); err != nil {
			return err
		}
	}
	return nil
}

func (r *Recording) write(t *track, wall time.Time, f depack.Frame) error {
	ms := wall.Sub(r.start).Milliseconds()
	if ms < 0 {
		return nil // before the file's start: only within the first sort window
	}
	n := uint64(audioTrackNumber)
	if t.info.Kind == "video" {
		n = videoTrackNumber
	}
	if err := r.mux.write(n, f.Keyframe, ms, f.Data); err != nil {
		return err
	}
	t.st.written++
	if wall.After(r.end) {
		r.end = wall
	}
	return nil
}
