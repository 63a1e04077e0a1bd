// This file holds a Call: one call's recording. The call's host feeds it
// (AddTrack, Chat, Pause, Resume) and ends it (End); its files' goroutines
// (one recorder.Recording each) and its heartbeat run beside it. c.mu
// guards the call's state; a Recording's goroutine never takes it (what
// it reaches, the file's upload and the journal, have locks of their own),
// so c.mu may be held while a Recording is paused or resumed.

package callrec

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/helpcaster/helpcaster/objstore"
	"github.com/helpcaster/helpcaster/recorder"
	"github.com/helpcaster/helpcaster/recorder/manifest"
	"github.com/helpcaster/helpcaster/recorder/upload"
)

// Participant is one side of a call, as the organization named it.
type Participant struct {
	Role    string
	Subject string // the token's subject
}

// Info identifies a call to record.
type Info struct {
	Org, Queue, Call string
	Participants     []Participant
}

// Reasons a recording stops before its call ends (Start's onStop).
const (
	// StoppedStorage: storage could not keep up and the spool reached its
	// bound, or the spool's disk is full.
	StoppedStorage = "storage"
	// StoppedFailed: a file could not be written for another reason.
	StoppedFailed = "failed"
)

// Errors of a Call's methods.
var (
	ErrNotRecording = errors.New("callrec: the call is not being recorded")
	ErrPaused       = errors.New("callrec: the recording is already paused")
	ErrNotPaused    = errors.New("callrec: the recording is not paused")
)

const transcriptType = "application/jsonl"

// Call is one call's recording.
type Call struct {
	r      *Recorder
	info   Info
	prefix string    // the call's key prefix
	start  time.Time // the call clock's zero: manifest start, offsets
	onStop func(reason string)
	jr     *journal
	hbStop chan struct{} // closed by End
	hbDone chan struct{} // closed when the heartbeat has ended

	pauseMu sync.Mutex // held through a pause or resume, taken before mu

	mu         sync.Mutex
	files      []*file // guarded by mu
	chat       *lazyUpload
	transcript *manifest.Transcript // nil until the first line
	paused     []manifest.Span
	pausing    bool
	stopped    string // why the recording stopped before the call ended; "" while it records
	chatFailed bool
	ended      bool
	withheld   int // chat lines not written: sent while paused
}

// file is one participant's media file. The Recording's goroutine writes
// out; mu guards codecs and sinks.
type file struct {
	role string
	name string // the object's name without its extension
	rec  *recorder.Recording
	out  *lazyUpload
	done chan struct{} // closed when Run has returned
	res  recorder.Result
	err  error // Run's; res and err are set before done is closed

	mu      sync.Mutex
	codecs  []string
	sinks   []*recorder.Sink
	counted bool // its drops are in the totals; guarded by totals.mu
}

// Start begins recording a call; onStop is called (from a goroutine of the
// recording, never with a lock of the caller's held by the recorder) if
// the recording stops before End, with StoppedStorage or StoppedFailed.
// Nothing is stored for a call that ends with no media and no chat.
func (r *Recorder) Start(info Info, onStop func(reason string)) (*Call, error) {
	if info.Org == "" || info.Call == "" {
		return nil, errors.New("callrec: a call needs an org and an id")
	}
	now := r.cfg.Now()
	c := &Call{
		r: r, info: info, prefix: manifest.CallPrefix(info.Org, info.Call, now), start: now,
		onStop: onStop, hbStop: make(chan struct{}), hbDone: make(chan struct{}),
	}
	jr, err := newJournal(r.gen, c.manifest(now, nil, false, "the recording is in progress, or the node recording it stopped"))
	if err != nil {
		return nil, err
	}
	c.jr = jr
	c.chat = c.lazy(func() (string, string, error) {
		return c.prefix + "/" + manifest.TranscriptName, transcriptType, nil
	}, func(key string) {
		c.jr.addFile(manifest.File{Key: key, Kind: manifest.KindTranscript})
	})
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = jr.remove()
		return nil, ErrClosed
	}
	r.calls[c] = struct{}{}
	r.wg.Add(1)
	r.mu.Unlock()
	r.stats.started.Add(1)
	go c.heartbeat()
	return c, nil
}

// Prefix is the key prefix of the call's objects.
func (c *Call) Prefix() string { return c.prefix }

// manifest is the call's manifest with files.
func (c *Call) manifest(end time.Time, files []manifest.File, complete bool, why string) manifest.Manifest {
	m := manifest.Manifest{
		Org: c.info.Org, Queue: c.info.Queue, Call: c.info.Call, Node: c.r.cfg.Node,
		Start: c.start, End: end, Files: files, Complete: complete,
	}
	if !complete {
		m.Incomplete = why
	}
	for _, p := range c.info.Participants {
		m.Participants = append(m.Participants, manifest.Participant(p))
	}
	if m.Files == nil {
		m.Files = []manifest.File{}
	}
	return m
}

// AddTrack returns the sink recording a newly published track of the
// participant with role. It returns quickly: a room's sink factory calls
// it. A participant's tracks go into one file; a track that file cannot
// take (a second of a kind, or a kind its header lacks) starts another.
func (c *Call) AddTrack(role string, info recorder.TrackInfo, askKeyframe func()) (*recorder.Sink, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended || c.stopped != "" {
		return nil, ErrNotRecording
	}
	n := 0
	for i := len(c.files) - 1; i >= 0; i-- {
		f := c.files[i]
		if f.role != role {
			continue
		}
		n++
		s, err := f.rec.AddTrack(info, askKeyframe)
		if err == nil {
			f.added(info.MimeType, s)
			return s, nil
		}
		if !errors.Is(err, recorder.ErrKindTaken) && !errors.Is(err, recorder.ErrNotInFile) && !errors.Is(err, recorder.ErrStopped) {
			return nil, fmt.Errorf("record %s's %s track: %w", role, info.Kind, err)
		}
	}
	f := c.newFile(role, n)
	s, err := f.rec.AddTrack(info, askKeyframe)
	if err != nil {
		f.rec.Stop()
		return nil, fmt.Errorf("record %s's %s track: %w", role, info.Kind, err)
	}
	f.added(info.MimeType, s)
	c.files = append(c.files, f)
	if c.pausing {
		if err := f.rec.Pause(); err != nil {
			c.r.log.Warn("pausing a new file failed", "err", err)
		}
	}
	return s, nil
}

func (f *file) added(codec string, s *recorder.Sink) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains(f.codecs, codec) {
		f.codecs = append(f.codecs, codec)
	}
	f.sinks = append(f.sinks, s)
}

func (f *file) codecList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.codecs)
}

// drops is the packets the file's sinks dropped.
func (f *file) drops() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n uint64
	for _, s := range f.sinks {
		n += s.Dropped()
	}
	return n
}

// newFile starts the participant's nth further file (0: its first). Called
// with c.mu held.
func (c *Call) newFile(role string, n int) *file {
	f := &file{role: role, name: manifest.Segment(role), done: make(chan struct{})}
	if n > 0 {
		f.name += "-" + strconv.Itoa(n+1)
	}
	f.out = c.lazy(func() (string, string, error) {
		format, ok := f.rec.Format()
		if !ok {
			return "", "", errors.New("callrec: the file's format is not known yet")
		}
		return c.prefix + "/" + f.name + "." + format.Ext, format.ContentType, nil
	}, func(key string) {
		c.jr.addFile(manifest.File{Key: key, Kind: manifest.KindMedia, Role: role, Codecs: f.codecList()})
	})
	f.rec = recorder.New(f.out, c.r.cfg.Recording)
	go func() {
		f.res, f.err = f.rec.Run(c.r.ctx)
		close(f.done)
		if f.err != nil {
			c.fail(f.err)
		}
	}()
	return f
}

// lazy is an upload that begins at its first write, under the key name
// gives then; opened is told the key.
func (c *Call) lazy(name func() (key, contentType string, err error), opened func(key string)) *lazyUpload {
	return &lazyUpload{open: func() (*upload.Writer, string, error) {
		key, ct, err := name()
		if err != nil {
			return nil, "", err
		}
		w, err := upload.New(c.r.ctx, c.r.cfg.Store, key, ct, c.r.gen, c.r.uploadConfig())
		if err != nil {
			return nil, "", fmt.Errorf("start upload: %w", err)
		}
		opened(key)
		return w, key, nil
	}}
}

// fail stops the recording after a file's error (err), unless the call has
// ended; the host is told.
func (c *Call) fail(err error) {
	reason := StoppedFailed
	if errors.Is(err, upload.ErrSpoolFull) {
		reason = StoppedStorage
	}
	c.mu.Lock()
	if c.ended || c.stopped != "" {
		c.mu.Unlock()
		return
	}
	c.stopped = reason
	files := slices.Clone(c.files)
	c.mu.Unlock()
	c.jr.addReason(stoppedWhy(reason))
	for _, f := range files {
		f.rec.Stop()
	}
	c.r.stats.failed(reason)
	c.r.log.Warn("recording stopped before the call ended", "org", c.info.Org, "call", c.info.Call, "reason", reason, "err", err)
	if c.onStop != nil {
		c.onStop(reason)
	}
}

// Chat adds a chat message to the transcript, sent now by the side with
// role under the display name its token gave. Messages sent while the
// recording is paused or stopped are not written.
func (c *Call) Chat(role, name, text string) {
	c.mu.Lock()
	if c.ended || c.stopped != "" || c.chatFailed {
		c.mu.Unlock()
		return
	}
	if c.pausing {
		c.withheld++
		c.mu.Unlock()
		return
	}
	if c.transcript == nil {
		c.transcript = manifest.NewTranscript(c.chat, c.start)
	}
	err := c.transcript.Add(c.r.cfg.Now(), role, name, text)
	if err != nil {
		c.chatFailed = true
	}
	c.mu.Unlock()
	if err != nil {
		c.fail(err)
	}
}

// Pause stops writing media and chat from now until Resume.
func (c *Call) Pause() error { return c.setPausing(true) }

// Resume writes again from now; video resumes at its next keyframe.
func (c *Call) Resume() error { return c.setPausing(false) }

// setPausing pauses or resumes the call, then each of its files. The files
// are told without c.mu held (each answers from its own goroutine);
// pauseMu keeps pauses and resumes in order. A file begun meanwhile is
// paused by AddTrack, which sees the new state.
func (c *Call) setPausing(pause bool) error {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	c.mu.Lock()
	switch {
	case c.ended || c.stopped != "":
		c.mu.Unlock()
		return ErrNotRecording
	case pause && c.pausing:
		c.mu.Unlock()
		return ErrPaused
	case !pause && !c.pausing:
		c.mu.Unlock()
		return ErrNotPaused
	}
	c.pausing = pause
	if pause {
		c.paused = append(c.paused, manifest.Span{Start: c.r.cfg.Now()})
	} else {
		c.paused[len(c.paused)-1].End = c.r.cfg.Now()
	}
	c.jr.setPaused(c.paused)
	files := slices.Clone(c.files)
	c.mu.Unlock()
	for _, f := range files {
		var err error
		if pause {
			err = f.rec.Pause()
		} else {
			err = f.rec.Resume()
		}
		if err != nil && !errors.Is(err, recorder.ErrStopped) && !errors.Is(err, recorder.ErrPaused) && !errors.Is(err, recorder.ErrNotPaused) {
			c.r.log.Warn("pausing or resuming a file failed", "pause", pause, "err", err)
		}
	}
	return nil
}

// uploads are the call's uploads, begun or not.
func (c *Call) uploads() []*lazyUpload {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []*lazyUpload{c.chat}
	for _, f := range c.files {
		out = append(out, f.out)
	}
	return out
}

func (c *Call) fileList() []*file {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.files)
}

// State is "recording", "paused" or "stopped" (before End).
func (c *Call) State() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stopped != "" || c.ended:
		return "stopped"
	case c.pausing:
		return "paused"
	}
	return "recording"
}

// End ends the recording with the call: the files are finished, uploaded
// and the manifest written on a goroutine of the Recorder's (Close waits
// for it). It does not wait, and does nothing the second time.
func (c *Call) End() {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	end := c.r.cfg.Now()
	if c.pausing {
		c.paused[len(c.paused)-1].End = end
	}
	c.mu.Unlock()
	close(c.hbStop)
	go c.finish(end)
}

// finish stores the files and the manifest of the call that ended at end.
func (c *Call) finish(end time.Time) {
	defer c.r.wg.Done()
	defer c.r.forget(c)
	<-c.hbDone
	c.mu.Lock()
	files, stopped, paused := slices.Clone(c.files), c.stopped, slices.Clone(c.paused)
	c.mu.Unlock()
	for _, f := range files {
		f.rec.Stop()
	}
	var why []string
	if stopped != "" {
		why = append(why, stoppedWhy(stopped))
	}
	// pending are the files begun but not stored: storage refused them,
	// or the node is stopping. Their spools and the journal stay, and the
	// next start's Recover stores them and rewrites the manifest.
	var stored, pending []manifest.File
	for _, f := range files {
		<-f.done
		c.r.stats.dropped(f)
		if f.out.take() == nil {
			continue // nothing was written
		}
		start, _ := f.rec.Started()
		mf := manifest.File{
			Key: f.out.key(), Kind: manifest.KindMedia, Role: f.role, Codecs: f.codecList(),
			StartOffset: manifest.Offset(c.start, start), Duration: f.res.End.Sub(f.res.Start).Seconds(),
		}
		if f.err != nil && stopped == "" {
			why = append(why, "a file could not be written to the end")
		}
		res, err := c.closeUpload(f.out)
		if err != nil {
			pending = append(pending, mf)
			continue
		}
		mf.Bytes, mf.SHA256 = res.Size, hex.EncodeToString(res.SHA256[:])
		stored = append(stored, mf)
	}
	if c.chat.take() != nil {
		mf := manifest.File{Key: c.chat.key(), Kind: manifest.KindTranscript}
		if res, err := c.closeUpload(c.chat); err == nil {
			mf.Bytes, mf.SHA256 = res.Size, hex.EncodeToString(res.SHA256[:])
			stored = append(stored, mf)
		} else {
			pending = append(pending, mf)
		}
	}
	if len(stored) == 0 && len(pending) == 0 {
		// Nothing was recorded: no manifest, and the provisional one goes.
		c.removeProvisional()
		_ = c.jr.remove()
		return
	}
	reasons := slices.Clone(why)
	if len(pending) > 0 {
		reasons = append(reasons, fmt.Sprintf("%d of the call's files are not stored yet: the node stores them when it starts again", len(pending)))
	}
	m := c.manifest(end, stored, len(reasons) == 0, joinWhy(reasons))
	m.Paused = paused
	c.jr.final(m, pending, why)
	if c.r.ctx.Err() != nil {
		c.r.log.Warn("recording left for the next start", "org", c.info.Org, "call", c.info.Call)
		return // the node is stopping: Recover writes the manifest
	}
	if err := c.putManifest(m); err != nil {
		c.r.log.Warn("manifest left for the next start", "org", c.info.Org, "call", c.info.Call, "err", err)
		return
	}
	c.r.stats.manifestSeconds.Observe(c.r.cfg.Now().Sub(end).Seconds())
	if len(pending) > 0 {
		c.r.log.Warn("files of a recording left for the next start", "org", c.info.Org, "call", c.info.Call, "files", len(pending))
		return // the journal stays for Recover
	}
	if err := c.jr.remove(); err != nil {
		c.r.log.Warn("removing a call's journal failed", "err", err)
	}
}

// closeUpload completes an upload, counting it.
func (c *Call) closeUpload(l *lazyUpload) (upload.Result, error) {
	w := l.take()
	res, err := w.Close(c.r.ctx)
	c.r.stats.closed(l, w.Stats())
	if err != nil {
		c.r.log.Warn("storing a recording's file failed", "org", c.info.Org, "call", c.info.Call, "err", err)
	}
	return res, err
}

func (c *Call) putManifest(m manifest.Manifest) error {
	return putManifest(c.r.ctx, c.r.cfg.Store, c.r.log, c.prefix, m)
}

// putManifest stores m under prefix, retrying until ctx ends.
func putManifest(ctx context.Context, store objstore.Store, log *slog.Logger, prefix string, m manifest.Manifest) error {
	data, err := manifest.Marshal(m)
	if err != nil {
		return err
	}
	key := prefix + "/" + manifest.ManifestName
	return retry(ctx, log, "put manifest", func(ctx context.Context) error {
		return store.Put(ctx, key, bytesReader(data), int64(len(data)), "application/json")
	})
}

// removeProvisional deletes the manifest the heartbeat stored, if it tried.
func (c *Call) removeProvisional() {
	if !c.jr.provisionalTried() {
		return
	}
	ctx, cancel := context.WithTimeout(c.r.ctx, 10*time.Second)
	defer cancel()
	err := c.r.cfg.Store.Delete(ctx, c.prefix+"/"+manifest.ManifestName)
	if err != nil && !errors.Is(err, objstore.ErrNotFound) {
		c.r.log.Warn("removing a provisional manifest failed", "org", c.info.Org, "call", c.info.Call, "err", err)
	}
}

// heartbeat stores the provisional manifest once storage takes it, and
// notes in the journal, every Heartbeat, that the call is still being
// recorded and where its files start. It ends at End.
func (c *Call) heartbeat() {
	defer close(c.hbDone)
	t := time.NewTicker(c.r.cfg.Heartbeat)
	defer t.Stop()
	for {
		if !c.jr.provisionalStored() && c.jr.hasFiles() {
			ctx, cancel := context.WithTimeout(c.r.ctx, 5*time.Second)
			m := c.jr.snapshot()
			if data, err := manifest.Marshal(m); err == nil {
				err := c.r.cfg.Store.Put(ctx, c.prefix+"/"+manifest.ManifestName, bytesReader(data), int64(len(data)), "application/json")
				c.jr.provisional(err == nil)
			}
			cancel()
		}
		select {
		case <-c.hbStop:
			return
		case <-c.r.ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		files := slices.Clone(c.files)
		c.mu.Unlock()
		starts := make(map[string]time.Time)
		for _, f := range files {
			if key := f.out.key(); key != "" {
				if st, ok := f.rec.Started(); ok {
					starts[key] = st
				}
			}
		}
		if err := c.jr.alive(c.r.cfg.Now(), c.start, starts); err != nil {
			c.r.log.Warn("saving a call's journal failed", "err", err)
		}
	}
}

func stoppedWhy(reason string) string {
	if reason == StoppedStorage {
		return "storage could not keep up: the recording stopped when its spool was full"
	}
	return "a file could not be written: the recording stopped"
}

func joinWhy(why []string) string {
	out := ""
	for i, w := range why {
		if i > 0 {
			out += "; "
		}
		out += w
	}
	return out
}
