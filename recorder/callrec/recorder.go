// Package callrec records whole calls: for each call, one file per
// participant (package recorder) streamed into object storage (package
// upload), the chat transcript, and the manifest that ties them together
// (package manifest). A Recorder is the node's: it owns the storage, the
// spool directory and the calls being recorded or finished; a Call is one
// call's recording, fed by the call's host (its tracks, its chat, the
// agent's pause and resume) and ended by it.
//
// Crash safety. Every upload spools to local disk first; beside the spools
// each call keeps a journal, a provisional manifest naming its files. The
// spool directory holds one subdirectory per run of the node (a
// generation); on start, Recover finishes the uploads and manifests that
// earlier generations left, marking those calls incomplete, while this
// generation records into its own subdirectory.
package callrec

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/helpcaster/helpcaster/objstore"
	"github.com/helpcaster/helpcaster/recorder"
	"github.com/helpcaster/helpcaster/recorder/upload"
)

// Config holds a Recorder's collaborators and settings.
type Config struct {
	Store objstore.Store
	// SpoolDir is this node's local directory for spools and journals; no
	// other node may use it.
	SpoolDir string
	// Node is this node's id, written in manifests ("" for a single node).
	Node string
	// Upload tunes every upload (part size, spool bound, retries).
	Upload upload.Config
	// Recording tunes every participant's file.
	Recording recorder.Config
	// Heartbeat is how often a call's journal notes the call is still
	// being recorded (default 2 s): after a crash, the recovered files are
	// said to end at the last heartbeat.
	Heartbeat time.Duration
	Log       *slog.Logger
	// Registerer, if set, gets the recorder's Prometheus series.
	Registerer prometheus.Registerer
	// Now is the call clock (default time.Now).
	Now func() time.Time
}

// Recorder records this node's calls. Its methods are safe for concurrent
// use.
type Recorder struct {
	cfg   Config
	log   *slog.Logger
	gen   string  // this generation's spool subdirectory
	lock  genLock // held while the Recorder runs
	ctx   context.Context
	stop  context.CancelFunc // ends uploads' retries: what is left goes to Recover
	wg    sync.WaitGroup     // calls being recorded or finished
	stats *totals

	mu     sync.Mutex
	calls  map[*Call]struct{} // guarded by mu: not yet finished
	closed bool               // guarded by mu
}

// ErrClosed is Start's error once Close has begun.
var ErrClosed = errors.New("callrec: recorder closed")

// Spool subdirectory names: a generation is genPrefix and random hex.
const (
	genPrefix   = "gen-"
	journalsDir = "calls"
)

// New makes a Recorder with a fresh generation directory under
// cfg.SpoolDir. Call Recover (it may run alongside recording) to finish
// what earlier runs left.
func New(cfg Config) (*Recorder, error) {
	if cfg.Store == nil || cfg.SpoolDir == "" {
		return nil, errors.New("callrec: a store and a spool directory are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.Upload.Logger == nil {
		cfg.Upload.Logger = cfg.Log
	}
	if cfg.Recording.Log == nil {
		cfg.Recording.Log = cfg.Log
	}
	if cfg.Recording.Now == nil {
		cfg.Recording.Now = cfg.Now
	}
	if err := cfg.Upload.Check(cfg.Store); err != nil {
		return nil, fmt.Errorf("callrec: %w", err)
	}
	gen, lock, err := newGen(cfg.SpoolDir)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &Recorder{cfg: cfg, log: cfg.Log, gen: gen, lock: lock, ctx: ctx, stop: stop, stats: newTotals(),
		calls: make(map[*Call]struct{})}
	if cfg.Registerer != nil {
		if err := r.register(cfg.Registerer); err != nil {
			stop()
			lock.unlock()
			return nil, fmt.Errorf("callrec: metrics: %w", err)
		}
	}
	return r, nil
}

// Close ends the calls still recorded and waits, until ctx ends, for every
// call's files and manifest to be stored. What is still unstored then is
// left in the spool directory for the next run's Recover.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	open := make([]*Call, 0, len(r.calls))
	for c := range r.calls {
		open = append(open, c)
	}
	r.mu.Unlock()
	for _, c := range open {
		c.End()
	}
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("callrec: recordings left for the next start: %w", context.Cause(ctx))
	}
	r.stop()
	<-done
	journals, _ := filepath.Glob(filepath.Join(r.gen, journalsDir, "*.json"))
	if err == nil && len(journals) == 0 {
		// Nothing is left for a later run: this generation goes.
		if rmErr := os.RemoveAll(r.gen); rmErr != nil {
			r.log.Warn("removing the spool directory failed", "err", rmErr)
		}
	}
	r.lock.unlock()
	if err == nil && len(journals) > 0 {
		err = fmt.Errorf("callrec: %d recordings left for the next start", len(journals))
	}
	return err
}

// newGen makes and locks a new generation directory in spoolDir. It is
// made under a name Recover ignores and renamed once locked, so that
// another process's Recover never takes it.
func newGen(spoolDir string) (string, genLock, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	tmp := filepath.Join(spoolDir, "new-"+id)
	if err := os.MkdirAll(filepath.Join(tmp, journalsDir), 0o700); err != nil {
		return "", genLock{}, fmt.Errorf("callrec: spool directory: %w", err)
	}
	lock, ok, err := lockGen(tmp)
	if err == nil && !ok {
		err = errors.New("held elsewhere")
	}
	if err != nil {
		return "", genLock{}, fmt.Errorf("callrec: lock the spool directory: %w", err)
	}
	gen := filepath.Join(spoolDir, genPrefix+id)
	if err := os.Rename(tmp, gen); err != nil {
		lock.unlock()
		return "", genLock{}, fmt.Errorf("callrec: spool directory: %w", err)
	}
	return gen, lock, nil
}

// forget drops a finished call.
func (r *Recorder) forget(c *Call) {
	r.mu.Lock()
	delete(r.calls, c)
	r.mu.Unlock()
}

// active returns the calls not yet finished.
func (r *Recorder) active() []*Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Call, 0, len(r.calls))
	for c := range r.calls {
		out = append(out, c)
	}
	return out
}

// uploadConfig is the config of every upload.
func (r *Recorder) uploadConfig() upload.Config { return r.cfg.Upload }

// retry runs op until it succeeds or ctx ends, backing off from 200 ms to
// 10 s.
func retry(ctx context.Context, log *slog.Logger, what string, op func(context.Context) error) error {
	delay := 200 * time.Millisecond
	for {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		log.Warn("recording: storage call failed; retrying", "op", what, "retry_in", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", what, err)
		case <-t.C:
		}
		delay = min(2*delay, 10*time.Second)
	}
}
