// This file holds Recover, which finishes the uploads that a crashed node
// left in its spool directory. It owns the spools it finds while it runs;
// nothing else may use the directory meanwhile.

package upload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/helpcaster/helpcaster/objstore"
)

// Recovered is one spool that Recover dealt with.
type Recovered struct {
	Key string
	// Stored: the object exists now; Bytes is its size (0 when not stored).
	Stored bool
	Bytes  int64
	// Uploaded is how many bytes of the spool Recover uploaded itself,
	// beyond the parts the store already had.
	Uploaded int64
	// Complete: the Writer's Close had completed the upload before the
	// crash (only the spool was left), so the recording is whole. Otherwise
	// the recording was cut short and its owner marks it incomplete.
	Complete bool
	// Err: the spool could not be finished; it is left for the next
	// Recover (storage down, ctx ended) unless the sidecar is unreadable.
	Err error
}

// Recover finishes every upload whose sidecar is in spoolDir: it uploads
// what the spool holds beyond the parts the store already has, completes
// the upload and removes the spool. An upload that no longer exists
// (aborted elsewhere) is begun again and the whole spool stored. Call it on
// start, before any Writer uses spoolDir.
func Recover(ctx context.Context, store Store, spoolDir string, cfg Config) ([]Recovered, error) {
	cfg, err := cfg.withDefaults(store)
	if err != nil {
		return nil, err
	}
	spools, err := listSpools(spoolDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var retries, failures atomic.Int64
	r := retrier{min: cfg.RetryMin, max: cfg.RetryMax, log: cfg.Logger, retries: &retries, failures: &failures}
	out := make([]Recovered, 0, len(spools))
	for _, f := range spools {
		out = append(out, recoverSpool(ctx, store, r, f))
	}
	return out, nil
}

func recoverSpool(ctx context.Context, store Store, r retrier, f spoolFiles) Recovered {
	sc, err := f.load()
	if err != nil {
		return Recovered{Err: err}
	}
	rec := Recovered{Key: sc.Key}
	spool, err := os.Open(f.spool)
	var size int64
	switch {
	case errors.Is(err, os.ErrNotExist):
		// Removed by Close or Abort just before the crash: nothing to add.
	case err != nil:
		rec.Err = fmt.Errorf("upload: recover: open spool: %w", err)
		return rec
	default:
		defer spool.Close()
		fi, err := spool.Stat()
		if err != nil {
			rec.Err = fmt.Errorf("upload: recover: %w", err)
			return rec
		}
		size = fi.Size()
	}
	if sc.Aborted {
		if rec.Err = abortUpload(ctx, store, r, sc); rec.Err == nil {
			rec.Err = f.remove()
		}
		return rec
	}
	if sc.UploadID == "" {
		// The node died before storage began the upload.
		if size == 0 {
			rec.Err = f.remove()
			return rec
		}
		if rec.Err = startUpload(ctx, store, r, f, sc); rec.Err != nil {
			return rec
		}
	}
	var parts []objstore.Part
	err = r.do(ctx, "list parts", func(ctx context.Context) error {
		parts, err = store.ListParts(ctx, sc.Key, sc.UploadID)
		return err
	})
	if errors.Is(err, objstore.ErrNotFound) {
		// Completed by Close, or aborted elsewhere (a lifecycle rule, say,
		// during a long outage).
		if info, serr := store.Stat(ctx, sc.Key); serr == nil && info.Size >= size {
			rec.Stored, rec.Bytes, rec.Complete = true, info.Size, true
			rec.Err = f.remove()
			return rec
		}
		if size == 0 {
			rec.Err = f.remove()
			return rec
		}
		// The spool holds every byte written: store it all again.
		sc.UploadID, parts, err = "", nil, nil
		if rec.Err = startUpload(ctx, store, r, f, sc); rec.Err != nil {
			return rec
		}
	}
	if err != nil {
		rec.Err = fmt.Errorf("upload: recover: %w", err)
		return rec
	}
	sc.Parts = usableParts(parts, sc.PartSize, size)
	sc.Uploaded = 0
	for _, p := range sc.Parts {
		sc.Uploaded += p.Size
	}
	for off := sc.Uploaded; off < size; off += sc.PartSize {
		n := min(size-off, sc.PartSize)
		p, err := uploadPart(ctx, store, r, sc, spool, off, n)
		if err != nil {
			rec.Err = fmt.Errorf("upload: recover: %w", err)
			return rec
		}
		sc.Parts = append(sc.Parts, p)
		rec.Uploaded += n
	}
	if len(sc.Parts) == 0 {
		// Nothing was written: there is no recording to keep.
		if rec.Err = abortUpload(ctx, store, r, sc); rec.Err == nil {
			rec.Err = f.remove()
		}
		return rec
	}
	var info objstore.ObjectInfo
	err = r.do(ctx, "complete upload", func(ctx context.Context) error {
		info, err = store.CompleteUpload(ctx, sc.Key, sc.UploadID, sc.Parts)
		return err
	})
	if err != nil {
		rec.Err = fmt.Errorf("upload: recover: complete: %w", err)
		return rec
	}
	rec.Stored, rec.Bytes = true, info.Size
	rec.Err = f.remove()
	return rec
}

// usableParts returns the leading parts, numbered from 1 without a gap,
// that a Writer with this part size would have uploaded: full parts, and a
// shorter one only as the last, ending where the spool ends (Close had
// uploaded its tail). The spool may be shorter than the parts after a
// machine crash; the store's copy of those bytes stands.
func usableParts(parts []objstore.Part, partSize, spoolSize int64) []objstore.Part {
	var off int64
	var out []objstore.Part
	for i, p := range parts {
		if p.Number != i+1 {
			break
		}
		if p.Size != partSize {
			if p.Size < partSize && off+p.Size == spoolSize {
				out = append(out, p)
			}
			break
		}
		out = append(out, p)
		off += p.Size
	}
	return out
}
