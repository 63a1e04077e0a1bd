// The file's start: frames wait until both kinds have one (or HeaderWait
// of media has passed), then the header holds the tracks known and the
// file's time 0 is the earliest frame; the recording's goroutine's own.

package recorder

import (
	"slices"
	"strings"
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
// pending frame, and writes the pending frames. The file's video codec is
// that of the first video frame pending (else of the video track added);
// an H.264 video track is left out when no keyframe of it is pending, as
// its CodecPrivate is made of the parameter sets before its first.
func (r *Recording) writeHeader() error {
	spec := muxSpec{start: r.pending[0].wall, audioChannels: 2, width: 640, height: 480}
	var video *track
	for _, p := range r.pending {
		if p.wall.Before(spec.start) {
			spec.start = p.wall
		}
		if video == nil && p.t.info.Kind == "video" {
			video = p.t
		}
	}
	pendingVideo := video != nil
	var kinds []string
	for _, t := range r.snapshot() {
		switch t.info.Kind {
		case "audio":
			spec.audio = true
			if t.info.Channels > 0 {
				spec.audioChannels = int(t.info.Channels)
			}
		case "video":
			if !pendingVideo && (video == nil || (video.closing.Load() && !t.closing.Load())) {
				video = t
			}
			continue
		}
		kinds = append(kinds, t.info.Kind)
	}
	if video != nil && r.videoSpec(&spec, video) {
		kinds = append(kinds, "video")
	}
	r.mu.Lock()
	r.format = formatFor(spec)
	if spec.video {
		r.video = spec.videoMime
	}
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

// videoSpec sets the file's video from track t and its pending frames:
// codec, frame size (from its first keyframe that says it), H.264
// configuration. It reports false for an H.264 track with no keyframe
// pending: the file goes without video.
func (r *Recording) videoSpec(spec *muxSpec, t *track) bool {
	spec.videoMime = t.info.MimeType
	var config []byte
	for _, p := range r.pending {
		if p.t != t || !p.f.Keyframe {
			continue
		}
		if config == nil {
			config = p.f.Config
		}
		if p.f.Width > 0 && p.f.Height > 0 {
			spec.width, spec.height = p.f.Width, p.f.Height
			break
		}
	}
	switch {
	case strings.EqualFold(t.info.MimeType, "video/H264"):
		if config == nil {
			r.log.Warn("recording without video: no H.264 keyframe before the file's start")
			return false
		}
		spec.videoCodecID, spec.videoPrivate, spec.matroska = "V_MPEG4/ISO/AVC", config, true
	case strings.EqualFold(t.info.MimeType, "video/VP9"):
		spec.videoCodecID = "V_VP9"
	default:
		spec.videoCodecID = "V_VP8"
	}
	spec.video = true
	return true
}

func (r *Recording) write(t *track, wall time.Time, f depack.Frame) error {
	ms := wall.Sub(r.start).Milliseconds()
	if ms < 0 {
		return nil // before the file's start: only within the first sort window
	}
	n := uint64(audioTrackNumber)
	if t.info.Kind == "video" {
		n = videoTrackNumber
		if !r.mux.has(n) || !strings.EqualFold(t.info.MimeType, r.mux.spec.videoMime) {
			return nil // a video the file was started without (writeHeader)
		}
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
