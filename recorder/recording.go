// Package recorder records a participant's published tracks into one file
// written as a stream as the call runs: WebM for VP8 or VP9 video and Opus
// audio, Matroska for H.264 video (and Opus). A Recording is one
// participant's file: each of its tracks feeds a Sink (an
// sfu.TrackSink) whose WriteRTP hands packets to the Recording's goroutine
// (Run); that goroutine reorders and depacketizes them (package depack),
// puts them on one wall clock through the publisher's sender reports
// (package rtpclock) and muxes them with ebml-go. The Recording's fields
// below say which are the goroutine's and which are guarded by mu.
package recorder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/helpcaster/helpcaster/recorder/depack"
	"github.com/helpcaster/helpcaster/recorder/rtpclock"
)

// Errors of AddTrack, Pause and Resume.
var (
	ErrUnsupportedCodec = depack.ErrUnsupportedCodec
	ErrKindTaken        = errors.New("the participant's file already records a track of this kind")
	ErrNotInFile        = errors.New("the file was started without a track of this kind")
	ErrStopped          = errors.New("recording stopped")
	ErrPaused           = errors.New("recording already paused")
	ErrNotPaused        = errors.New("recording not paused")
)

// The goroutine drains its queue every drainEvery (and when it is half
// full), and asks again for a keyframe it waits for every askEvery drains.
const (
	drainEvery = 20 * time.Millisecond
	askEvery   = 50
)

// Config holds a Recording's settings; the zero value works.
type Config struct {
	Log *slog.Logger
	// Now is the call clock (default time.Now): packet arrivals, pauses.
	Now func() time.Time
	// QueuePackets is the number of packet slots (1500 bytes each) between
	// the Sinks and the goroutine, also holding what the reorder buffers
	// keep (default 1024).
	QueuePackets int
	// HeaderWait is how much media the file's start waits for the
	// participant's other track (and the video's first keyframe) before it
	// is written without it (default 2 s).
	HeaderWait time.Duration
}

// TrackInfo is what a Recording needs of a published track (the sfu's
// TrackInfo carries it: Kind, Codec.MimeType, Codec.ClockRate,
// Codec.Channels).
type TrackInfo struct {
	Kind      string // "audio" or "video"
	MimeType  string // "video/VP8", "video/VP9", "video/H264" or "audio/opus"
	ClockRate uint32
	Channels  uint16
}

// TrackResult counts one track's frames.
type TrackResult struct {
	Kind          string
	Frames        uint64 // frames written
	LostPackets   uint64 // packets the reorder buffer gave up on
	SkippedFrames uint64 // video frames dropped waiting for a keyframe
	PausedFrames  uint64 // frames not written because the recording was paused
	QueueDrops    uint64 // packets dropped at WriteRTP: queue full
}

// Result describes the file once Run has returned.
type Result struct {
	Start  time.Time // call-clock time of the file's time 0; zero when nothing was written
	End    time.Time // call-clock time of the last frame written
	Bytes  int64
	Paused []Span
	Tracks []TrackResult
}

// Recording is one participant's file.
type Recording struct {
	log        *slog.Logger
	now        func() time.Time
	base       time.Time            // now() at New
	since      func() time.Duration // now() - base, cheaply: the per-packet arrival stamp
	headerWait time.Duration
	out        io.Writer

	sq    *slotQueue            // packets and reports for the goroutine
	slots map[*rtp.Packet]*slot // read-only after New
	batch []*slot               // the goroutine's: slots taken from sq
	ctl   chan ctlMsg
	stop  chan struct{}
	done  chan struct{} // closed when Run returns
	ended atomic.Bool   // set as Run returns: Sinks take nothing more
	once  sync.Once

	mu      sync.Mutex
	tracks  []*track // guarded by mu
	inFile  []string // guarded by mu: kinds the file's header holds, once written
	running bool     // guarded by mu
	format  Format   // guarded by mu: set before the header's first byte
	video   string   // guarded by mu: the MIME type of the file's video, once its header is written

	// The goroutine's own.
	pub     rtpclock.Publisher
	pending []pendingFrame // frames before the header is written
	mux     *muxer
	start   time.Time // also guarded by mu: written here, read by Started
	end     time.Time
	paused  []Span
	pausing bool
}

// ctlMsg is a control message to the goroutine; these are never dropped.
type ctlMsg struct {
	pause  bool
	resume bool
	at     time.Time
	reply  chan error
}

// trackState is a track's part owned by the recording's goroutine.
type trackState struct {
	dp            *depack.Track
	clk           *rtpclock.Track
	srs           map[uint32]rtpclock.SenderReportAt // latest sender report per SSRC
	ssrc          uint32
	started       bool // a packet came: ssrc is set
	lastArrival   time.Time
	seenDrops     uint64
	closed        bool   // guarded by the Recording's mu for writes
	paused        uint64 // frames not written: paused
	skipped       uint64 // video frames not written: waiting for a keyframe after a pause
	keyAfterPause bool   // video: a frame was paused; write again from a keyframe
	written       uint64 // frames written
}

// New returns a Recording writing to w; call Run to start it.
func New(w io.Writer, cfg Config) *Recording {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	fast := cfg.Now == nil
	if fast {
		cfg.Now = time.Now
	}
	if cfg.QueuePackets <= 0 {
		cfg.QueuePackets = 1024
	}
	if cfg.HeaderWait <= 0 {
		cfg.HeaderWait = 2 * time.Second
	}
	r := &Recording{
		log: cfg.Log, now: cfg.Now, headerWait: cfg.HeaderWait, out: w,
		sq:    newSlotQueue(cfg.QueuePackets),
		slots: make(map[*rtp.Packet]*slot, cfg.QueuePackets),
		ctl:   make(chan ctlMsg), stop: make(chan struct{}), done: make(chan struct{}),
	}
	r.base = r.now()
	r.since = func() time.Duration { return r.now().Sub(r.base) }
	if fast {
		// time.Since reads the monotonic clock alone, about a third of
		// time.Now's cost.
		r.since = func() time.Duration { return time.Since(r.base) }
	}
	for _, s := range r.sq.all() {
		r.slots[&s.pkt] = s
	}
	return r
}

// AddTrack returns the Sink for a newly published track of the
// participant; askKeyframe is called (on the recording's goroutine) when
// the recording needs a video keyframe from the publisher. It returns
// quickly, so a room's sink factory may call it. A participant's file holds
// one audio and one video track: a second track of a kind while the first
// is open is refused (ErrKindTaken), and so is a kind the file's header was
// written without, or a video codec other than the one it was written
// with (ErrNotInFile: start another file).
func (r *Recording) AddTrack(info TrackInfo, askKeyframe func()) (*Sink, error) {
	if !depack.Supported(info.MimeType) {
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedCodec, info.MimeType)
	}
	t := &track{info: info}
	dp, err := depack.New(info.MimeType, info.ClockRate, r.release, askKeyframe)
	if err != nil {
		return nil, fmt.Errorf("add %s track: %w", info.Kind, err)
	}
	t.st = &trackState{dp: dp, clk: rtpclock.NewTrack(info.ClockRate), srs: make(map[uint32]rtpclock.SenderReportAt)}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.tracks {
		if o.info.Kind == info.Kind && !o.closing.Load() {
			return nil, fmt.Errorf("add %s track: %w", info.Kind, ErrKindTaken)
		}
	}
	select {
	case <-r.done:
		return nil, fmt.Errorf("add %s track: %w", info.Kind, ErrStopped)
	default:
	}
	if r.inFile != nil && !slices.Contains(r.inFile, info.Kind) {
		return nil, fmt.Errorf("add %s track: %w", info.Kind, ErrNotInFile)
	}
	if r.inFile != nil && info.Kind == "video" && !strings.EqualFold(info.MimeType, r.video) {
		return nil, fmt.Errorf("add %s track: %s in a file of %s: %w", info.Kind, info.MimeType, r.video, ErrNotInFile)
	}
	r.tracks = append(r.tracks, t)
	return &Sink{r: r, t: t}, nil
}

// Stop makes Run finish the file and return. It does not wait.
func (r *Recording) Stop() { r.once.Do(func() { close(r.stop) }) }

// Started returns the call-clock time of the file's time 0 once the
// file's header is written.
func (r *Recording) Started() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.start, r.inFile != nil
}

// Run is the recording's goroutine: it writes the file until Stop is
// called or ctx ends, then writes what is queued, ends the stream and
// returns. The error is the first one writing to w (the recording stops
// writing at it) or from the container.
func (r *Recording) Run(ctx context.Context) (Result, error) {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return Result{}, errors.New("recording: Run called twice")
	}
	r.running = true
	r.mu.Unlock()
	defer close(r.done)
	defer r.ended.Store(true)

	tick := time.NewTicker(drainEvery)
	defer tick.Stop()
	var err error
	ticks := 0
loop:
	for err == nil {
		select {
		case <-r.sq.kick:
			err = r.drain()
		case m := <-r.ctl:
			err = r.drain()
			if err == nil {
				err = r.control1(m)
			}
		case <-tick.C:
			err = r.drain()
			if ticks++; ticks%askEvery == 0 {
				r.askAgain()
			}
		case <-r.stop:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	if err == nil {
		err = r.drain()
	}
	if err == nil {
		err = r.finish()
	}
	if r.mux != nil {
		if cerr := r.mux.close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		r.log.Warn("recording stopped on error", "err", err)
	}
	return r.result(), err
}

// drain handles what is queued now, so that a control message takes
// effect after every packet sent before it. A track whose Sink was closed
// before the queue is taken is ended after: its packets were all queued
// before Close, so they are in the batch (a flag read after the take could
// be newer than the batch).
func (r *Recording) drain() error {
	var ending []*track
	for _, t := range r.snapshot() {
		if !t.st.closed && t.closing.Load() {
			ending = append(ending, t)
		}
	}
	r.batch = r.sq.take(r.batch[:0])
	for i, sl := range r.batch {
		if err := r.handle(sl); err != nil {
			for _, rest := range r.batch[i+1:] {
				r.sq.release(rest)
			}
			return err
		}
	}
	for _, t := range ending {
		err := r.frames(t, t.st.dp.End())
		t.st.closed = true
		if err != nil {
			return err
		}
	}
	return nil
}

// release returns a packet's slot to the free list (the depacketizer's
// release handler; also for reports).
func (r *Recording) release(p *rtp.Packet) {
	if sl, ok := r.slots[p]; ok {
		r.sq.release(sl)
	}
}

func (r *Recording) handle(sl *slot) error {
	t := sl.t
	st := t.st
	if st.closed {
		r.release(&sl.pkt)
		return nil
	}
	if sl.sr {
		wall := r.pub.Local(sl.ntp, r.base.Add(sl.arrival))
		st.srs[sl.pkt.SSRC] = rtpclock.SenderReportAt{RTP: sl.rtpTime, Wall: wall}
		if sl.pkt.SSRC == st.ssrc {
			st.clk.SenderReport(sl.rtpTime, wall)
		}
		r.release(&sl.pkt)
		return nil
	}
	if d := t.dropped.Load(); d != st.seenDrops {
		st.seenDrops = d
		st.dp.NeedKeyframe()
	}
	if sl.arrival != noArrival {
		st.lastArrival = r.base.Add(sl.arrival)
	}
	ssrc, ts := sl.pkt.SSRC, sl.pkt.Timestamp
	if st.started && ssrc != st.ssrc {
		// Another layer: the old one's last frames go out on its clock.
		if err := r.frames(t, st.dp.End()); err != nil {
			r.release(&sl.pkt)
			return err
		}
	}
	if st.dp.Push(&sl.pkt) || !st.started {
		st.started = true
		st.ssrc = ssrc
		st.clk.Reset()
		if sr, ok := st.srs[ssrc]; ok {
			st.clk.SenderReport(sr.RTP, sr.Wall)
		}
	}
	st.clk.Anchor(ts, st.lastArrival)
	return r.pop(t)
}

// pop takes the track's ready frames to the file.
func (r *Recording) pop(t *track) error {
	for {
		f, ok := t.st.dp.Pop()
		if !ok {
			return nil
		}
		if err := r.frame(t, f); err != nil {
			return err
		}
	}
}

// frames takes frames the track returned at its end to the file.
func (r *Recording) frames(t *track, fs []depack.Frame) error {
	for _, f := range fs {
		if err := r.frame(t, f); err != nil {
			return err
		}
	}
	return nil
}

// frame puts one frame on the call clock and writes it unless paused.
func (r *Recording) frame(t *track, f depack.Frame) error {
	st := t.st
	wall := st.clk.Wall(f.Timestamp, st.lastArrival)
	if r.inPause(wall) {
		st.paused++
		st.keyAfterPause = st.dp.Video() // what follows refers to this frame
		return nil
	}
	if st.keyAfterPause {
		if !f.Keyframe {
			st.skipped++
			return nil
		}
		st.keyAfterPause = false
	}
	if r.mux == nil {
		r.pending = append(r.pending, pendingFrame{t: t, wall: wall, f: f})
		if !r.headerReady() {
			return nil
		}
		return r.writeHeader()
	}
	return r.write(t, wall, f)
}

// finish flushes every track and writes what they held.
func (r *Recording) finish() error {
	for _, t := range r.snapshot() {
		if t.st.closed {
			continue
		}
		if err := r.frames(t, t.st.dp.End()); err != nil {
			return err
		}
	}
	if r.mux == nil && len(r.pending) > 0 {
		return r.writeHeader()
	}
	return nil
}

func (r *Recording) askAgain() {
	for _, t := range r.snapshot() {
		if !t.st.closed && !r.pausing {
			t.st.dp.AskAgain()
		}
	}
}

func (r *Recording) snapshot() []*track {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.tracks)
}

func (r *Recording) result() Result {
	res := Result{Start: r.start, End: r.end, Paused: slices.Clone(r.paused)}
	if n := len(res.Paused); n > 0 && res.Paused[n-1].End.IsZero() {
		res.Paused[n-1].End = r.now()
	}
	if r.mux != nil {
		res.Bytes = r.mux.out.bytes()
	}
	for _, t := range r.snapshot() {
		s := t.st.dp.Stats()
		res.Tracks = append(res.Tracks, TrackResult{
			Kind: t.info.Kind, Frames: t.st.written, LostPackets: s.LostPackets, SkippedFrames: s.SkippedFrames + t.st.skipped,
			PausedFrames: t.st.paused, QueueDrops: t.dropped.Load(),
		})
	}
	return res
}
