// Package upload streams a recording into object storage as it is made. A
// Writer takes the recorder's bytes, appends them to a spool file on local
// disk without waiting for the network, and a goroutine of its own uploads
// the spool as the parts of one multipart upload, retrying while storage is
// down. A JSON sidecar beside the spool names the upload, so that after a
// crash Recover finishes what the spool holds.
//
// This file holds the Writer. Write's state (bytes written, the running
// sha256, the sticky error) is guarded by Writer.mu; the sidecar and the
// part list belong to the upload goroutine until it ends, then to Close or
// Abort.
package upload

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/helpcaster/helpcaster/objstore"
)

// Store is the part of objstore.Store that uploads need.
type Store interface {
	StartUpload(ctx context.Context, key, contentType string) (uploadID string, err error)
	UploadPart(ctx context.Context, key, uploadID string, partNumber int, body io.Reader, size int64) (objstore.Part, error)
	CompleteUpload(ctx context.Context, key, uploadID string, parts []objstore.Part) (objstore.ObjectInfo, error)
	AbortUpload(ctx context.Context, key, uploadID string) error
	ListParts(ctx context.Context, key, uploadID string) ([]objstore.Part, error)
	Put(ctx context.Context, key string, body io.Reader, size int64, contentType string) error
	Stat(ctx context.Context, key string) (objstore.ObjectInfo, error)
	MinPartSize() int64
}

var _ Store = objstore.Store(nil)

var (
	// ErrSpoolFull: more than Config.MaxSpool bytes were waiting for
	// storage, or the spool disk refused a write. The Writer takes no more
	// data; the recording is incomplete. What it took is still uploaded by
	// Close.
	ErrSpoolFull = errors.New("upload: spool full")
	// ErrClosed: Write, Close or Abort after Close or Abort.
	ErrClosed = errors.New("upload: writer closed")
)

// Config tunes a Writer. The zero value is usable.
type Config struct {
	// PartSize is the size of every part but the last; at least the store's
	// MinPartSize, which is also the default.
	PartSize int64
	// MaxSpool bounds the bytes written but not yet uploaded (default
	// 256 MiB). At least twice PartSize: a part is uploaded once PartSize
	// bytes wait, and writing goes on while it uploads.
	MaxSpool int64
	// SyncEvery is how often the spool is fsynced when it has grown
	// (default 1 s): a machine crash loses at most the bytes written in
	// that time. A crash of the process alone loses nothing written.
	SyncEvery time.Duration
	// RetryMin and RetryMax bound the backoff between failed storage calls
	// (default 200 ms and 10 s).
	RetryMin, RetryMax time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

const (
	defaultMaxSpool  = 256 << 20
	defaultSyncEvery = time.Second
	defaultRetryMin  = 200 * time.Millisecond
	defaultRetryMax  = 10 * time.Second
)

// Check reports whether c is a valid configuration of uploads to store, as
// New would find it.
func (c Config) Check(store Store) error {
	_, err := c.withDefaults(store)
	return err
}

func (c Config) withDefaults(store Store) (Config, error) {
	if c.PartSize == 0 {
		c.PartSize = store.MinPartSize()
	}
	if c.PartSize < store.MinPartSize() {
		return c, fmt.Errorf("upload: part size %d below the store's minimum %d", c.PartSize, store.MinPartSize())
	}
	if c.MaxSpool == 0 {
		c.MaxSpool = defaultMaxSpool
	}
	if c.MaxSpool < 2*c.PartSize {
		return c, fmt.Errorf("upload: max spool %d below twice the part size %d", c.MaxSpool, c.PartSize)
	}
	if c.SyncEvery <= 0 {
		c.SyncEvery = defaultSyncEvery
	}
	if c.RetryMin <= 0 {
		c.RetryMin = defaultRetryMin
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(defaultRetryMax, c.RetryMin)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Stats are a Writer's counters, for metrics.
type Stats struct {
	// BytesUploaded and Parts count the parts stored.
	BytesUploaded, Parts int64
	// Retries counts storage calls repeated after a failure; Errors the
	// failed calls.
	Retries, Errors int64
	// Spooled is the bytes written and not yet uploaded.
	Spooled int64
}

// Result is what a completed upload stored.
type Result struct {
	Object objstore.ObjectInfo
	// Size and SHA256 are of every byte written, computed as they came.
	Size   int64
	SHA256 [sha256.Size]byte
}

// Writer is an io.Writer that uploads what it is given to one object. Write
// is called from one goroutine at a time; Stats from any. The owner calls
// Close or Abort exactly once.
type Writer struct {
	store Store
	cfg   Config
	files spoolFiles
	spool *os.File
	sc    *sidecar // owned by the upload goroutine, then by Close/Abort
	retry retrier

	mu      sync.Mutex
	hash    hash.Hash // guarded by mu
	err     error     // sticky Write error; guarded by mu
	closing bool      // guarded by mu

	written                           atomic.Int64 // bytes in the spool; changed only under mu
	uploaded                          atomic.Int64 // spool offset the next part starts at
	synced                            int64        // owned by the sync goroutine
	parts, bytesUp, retries, failures atomic.Int64

	kick   chan struct{}       // capacity 1: the spool has grown by a part
	finish chan int64          // Close hands the final size to the upload goroutine
	result chan error          // the upload goroutine's last word, sent once
	info   objstore.ObjectInfo // set by the upload goroutine before result
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New makes a spool in spoolDir for an object at key; its goroutine begins
// the multipart upload, retrying while storage is down, so New does not
// wait for storage. The goroutines run until Close, Abort, or the end of
// ctx; if ctx ends first, the spool and sidecar stay for Recover, as after
// a crash.
func New(ctx context.Context, store Store, key, contentType, spoolDir string, cfg Config) (*Writer, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	cfg, err := cfg.withDefaults(store)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(spoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("upload: spool dir: %w", err)
	}
	files := newSpoolFiles(spoolDir)
	spool, err := os.OpenFile(files.spool, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("upload: create spool: %w", err)
	}
	sc := &sidecar{Key: key, ContentType: contentType, PartSize: cfg.PartSize, Parts: []objstore.Part{}}
	if err := files.save(sc); err != nil {
		_ = spool.Close()
		_ = files.remove()
		return nil, err
	}
	w := &Writer{
		store:  store,
		cfg:    cfg,
		files:  files,
		spool:  spool,
		sc:     sc,
		hash:   sha256.New(),
		kick:   make(chan struct{}, 1),
		finish: make(chan int64),
		result: make(chan error, 1),
	}
	w.retry = retrier{min: cfg.RetryMin, max: cfg.RetryMax, log: cfg.Logger, retries: &w.retries, failures: &w.failures}
	ctx, w.cancel = context.WithCancel(ctx)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.syncLoop(ctx)
	}()
	go func() { w.result <- w.uploadLoop(ctx) }()
	return w, nil
}

// Write appends p to the spool. It waits for the local disk only, never for
// storage. Past MaxSpool it takes nothing and returns ErrSpoolFull, and so
// does every later Write; so too with the error that ended the upload if
// storage refused it for good (the upload was aborted elsewhere). After any
// error the recording is incomplete; after ErrSpoolFull, Close still
// stores what was taken.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closing {
		return 0, ErrClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	off := w.written.Load()
	if pending := off - w.uploaded.Load(); pending+int64(len(p)) > w.cfg.MaxSpool {
		w.err = fmt.Errorf("%w: %d bytes wait for storage, max %d", ErrSpoolFull, pending, w.cfg.MaxSpool)
		return 0, w.err
	}
	n, err := w.spool.WriteAt(p, off)
	w.hash.Write(p[:n])
	w.written.Store(off + int64(n))
	if err != nil {
		w.err = fmt.Errorf("%w: %w", ErrSpoolFull, err)
		return n, w.err
	}
	if off+int64(n)-w.uploaded.Load() >= w.cfg.PartSize {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return n, nil
}

// Stats returns the counters now.
func (w *Writer) Stats() Stats {
	return Stats{
		BytesUploaded: w.bytesUp.Load(),
		Parts:         w.parts.Load(),
		Retries:       w.retries.Load(),
		Errors:        w.failures.Load(),
		Spooled:       w.written.Load() - w.uploaded.Load(),
	}
}

// Close uploads the rest of the spool as the last part, completes the
// upload and removes the spool. If ctx ends first (storage still down), or
// the Writer's own context ended before, the upload is left to Recover with
// the spool and sidecar, and Close returns an error.
func (w *Writer) Close(ctx context.Context) (Result, error) {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return Result{}, ErrClosed
	}
	w.closing = true
	res := Result{Size: w.written.Load()}
	w.hash.Sum(res.SHA256[:0])
	w.mu.Unlock()

	stop := context.AfterFunc(ctx, w.cancel) // Close's deadline ends the retries
	defer stop()
	var err error
	select {
	case w.finish <- res.Size:
		err = <-w.result
	case err = <-w.result: // the goroutine had already stopped
		if err == nil {
			err = errors.New("upload: stopped before Close")
		}
	}
	w.cancel()
	w.wg.Wait()
	if err != nil {
		err = errors.Join(err, w.spool.Sync(), w.spool.Close())
		return Result{}, fmt.Errorf("upload: close: upload left for Recover: %w", err)
	}
	res.Object = w.info
	if err := w.spool.Close(); err != nil {
		return res, fmt.Errorf("upload: close spool: %w", err)
	}
	return res, w.files.remove()
}

// Abort stops the Writer, discards the upload and removes the spool. If
// storage cannot be reached before ctx ends, the sidecar stays, marked, and
// Recover aborts the upload later.
func (w *Writer) Abort(ctx context.Context) error {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closing = true
	w.mu.Unlock()
	w.cancel()
	<-w.result
	w.wg.Wait()
	err := errors.Join(w.spool.Close(), os.Remove(w.files.spool))
	if aerr := abortUpload(ctx, w.store, w.retry, w.sc); aerr != nil {
		w.sc.Aborted = true
		return errors.Join(err, aerr, w.files.save(w.sc))
	}
	return errors.Join(err, w.files.remove())
}

// startUpload begins sc's upload and saves its id in the sidecar.
func startUpload(ctx context.Context, store Store, r retrier, files spoolFiles, sc *sidecar) error {
	var id string
	err := r.do(ctx, "start upload", func(ctx context.Context) error {
		var err error
		id, err = store.StartUpload(ctx, sc.Key, sc.ContentType)
		return err
	})
	if err != nil {
		return fmt.Errorf("upload: start: %w", err)
	}
	sc.UploadID = id
	return files.save(sc)
}

// abortUpload discards sc's upload, if one was begun.
func abortUpload(ctx context.Context, store Store, r retrier, sc *sidecar) error {
	if sc.UploadID == "" {
		return nil
	}
	err := r.do(ctx, "abort upload", func(ctx context.Context) error {
		return store.AbortUpload(ctx, sc.Key, sc.UploadID)
	})
	if err != nil && !errors.Is(err, objstore.ErrNotFound) {
		return fmt.Errorf("upload: abort: %w", err)
	}
	return nil
}

// syncLoop fsyncs the spool every SyncEvery when it has grown.
func (w *Writer) syncLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.SyncEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := w.written.Load()
		if n == w.synced {
			continue
		}
		if err := w.spool.Sync(); err != nil {
			w.cfg.Logger.Error("upload: fsync spool", "err", err)
			continue
		}
		w.synced = n
	}
}

// uploadLoop uploads full parts as the spool fills, and on Close the rest;
// it returns when done, when a call fails for good, or when ctx ends.
func (w *Writer) uploadLoop(ctx context.Context) error {
	if err := startUpload(ctx, w.store, w.retry, w.files, w.sc); err != nil {
		w.fail(err)
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-w.kick:
			if err := w.uploadParts(ctx, w.written.Load(), false); err != nil {
				w.fail(err)
				return err
			}
		case size := <-w.finish:
			return w.complete(ctx, size)
		}
	}
}

// fail makes later Writes return err: the upload cannot go on.
func (w *Writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = fmt.Errorf("upload: %w", err)
	}
}

// complete uploads up to size, the last part included, and completes the
// upload.
func (w *Writer) complete(ctx context.Context, size int64) error {
	if size == 0 {
		// No parts at all: an empty object, put whole.
		if err := abortUpload(ctx, w.store, w.retry, w.sc); err != nil {
			return err
		}
		return w.retry.do(ctx, "put empty object", func(ctx context.Context) error {
			if err := w.store.Put(ctx, w.sc.Key, strings.NewReader(""), 0, w.sc.ContentType); err != nil {
				return err
			}
			info, err := w.store.Stat(ctx, w.sc.Key)
			w.info = info
			return err
		})
	}
	if err := w.uploadParts(ctx, size, true); err != nil {
		return err
	}
	return w.retry.do(ctx, "complete upload", func(ctx context.Context) error {
		info, err := w.store.CompleteUpload(ctx, w.sc.Key, w.sc.UploadID, w.sc.Parts)
		w.info = info
		return err
	})
}

// uploadParts uploads the spool from the uploaded offset up to limit in
// parts of PartSize; a shorter tail too when last.
func (w *Writer) uploadParts(ctx context.Context, limit int64, last bool) error {
	for {
		off := w.uploaded.Load()
		n := min(limit-off, w.sc.PartSize)
		if n <= 0 || (n < w.sc.PartSize && !last) {
			return nil
		}
		p, err := uploadPart(ctx, w.store, w.retry, w.sc, w.spool, off, n)
		if err != nil {
			return err
		}
		w.sc.Parts = append(w.sc.Parts, p)
		w.sc.Uploaded = off + n
		w.uploaded.Store(off + n)
		w.parts.Add(1)
		w.bytesUp.Add(n)
		if err := w.files.save(w.sc); err != nil {
			// Recover asks the store for the parts; the sidecar only
			// needs the upload id, which it has.
			w.cfg.Logger.Error("upload: save sidecar", "err", err)
		}
	}
}

// uploadPart stores spool[off:off+n] as the next part after sc.Parts.
func uploadPart(ctx context.Context, store Store, r retrier, sc *sidecar, spool io.ReaderAt, off, n int64) (objstore.Part, error) {
	var p objstore.Part
	num := len(sc.Parts) + 1
	err := r.do(ctx, "upload part", func(ctx context.Context) error {
		var err error
		p, err = store.UploadPart(ctx, sc.Key, sc.UploadID, num, io.NewSectionReader(spool, off, n), n)
		return err
	})
	if err != nil {
		return p, fmt.Errorf("upload: part %d: %w", num, err)
	}
	return p, nil
}
