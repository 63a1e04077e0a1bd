package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/helpcaster/helpcaster/objstore"
	"github.com/helpcaster/helpcaster/recorder/callrec"
	"github.com/helpcaster/helpcaster/recorder/upload"
	"github.com/helpcaster/helpcaster/signaling/auth"
)

// RecordingsConfig says where recorded calls go. Which calls are recorded
// is each queue's policy (record: in the organization's config).
type RecordingsConfig struct {
	// Dir is a local directory holding the recordings (the store when S3
	// is nil).
	Dir string
	// S3, when set, stores recordings in an S3-compatible service instead.
	S3 *objstore.S3Config
	// SpoolDir holds what is recorded and not yet stored, and what a crash
	// left; it must be this node's own. Default: Dir/.spool (hidden from
	// the local store's listing), or "recordings-spool" with S3.
	SpoolDir string
	// MaxSpool bounds the bytes of one file waiting for storage; past it
	// the call's recording stops (0: upload's default, 256 MiB). At least
	// twice the store's part size (10 MiB: parts are 5 MiB).
	MaxSpool int64
}

// spoolDir is the configured spool directory or its default.
func (c *RecordingsConfig) spoolDir() string {
	switch {
	case c.SpoolDir != "":
		return c.SpoolDir
	case c.S3 != nil:
		return "recordings-spool"
	}
	return filepath.Join(c.Dir, ".spool")
}

// recordings is the node's recorder and its store.
type recordings struct {
	store objstore.Store
	rec   *callrec.Recorder
	once  sync.Once // closes store
}

// openRecordings opens the recordings' store and the recorder.
func openRecordings(cfg *RecordingsConfig, nodeID string, log *slog.Logger, reg prometheus.Registerer) (*recordings, error) {
	var store objstore.Store
	var err error
	switch {
	case cfg.S3 != nil:
		store, err = objstore.NewS3(*cfg.S3)
	case cfg.Dir != "":
		store, err = objstore.Local(cfg.Dir)
	default:
		err = errors.New("no recordings directory or S3 store")
	}
	if err != nil {
		return nil, fmt.Errorf("recordings store: %w", err)
	}
	rec, err := callrec.New(callrec.Config{
		Store: store, SpoolDir: cfg.spoolDir(), Node: nodeID, Log: log, Registerer: reg,
		Upload: upload.Config{MaxSpool: cfg.MaxSpool, Logger: log},
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	return &recordings{store: store, rec: rec}, nil
}

// close waits, until ctx ends, for the recordings of the calls that have
// ended to be stored (what is left then waits for the next start), and
// closes the store.
func (r *recordings) close(ctx context.Context) error {
	err := r.rec.Close(ctx)
	return errors.Join(err, r.closeStore())
}

// closeStore closes the store, once.
func (r *recordings) closeStore() error {
	var err error
	r.once.Do(func() { err = r.store.Close() })
	return err
}

// anyQueueRecords reports whether a queue of dir records some calls: the
// recorder (and its directories) exist only then.
func anyQueueRecords(dir *auth.Directory) bool {
	for _, o := range dir.Orgs() {
		for _, q := range o.Queues {
			if q.Record != auth.RecordOff {
				return true
			}
		}
	}
	return false
}

// leftovers reports whether the spool directory holds what an earlier run
// left: the recorder then starts, to finish it, though no queue records.
func (c *RecordingsConfig) leftovers() bool {
	gens, _ := filepath.Glob(filepath.Join(c.spoolDir(), "gen-*"))
	return len(gens) > 0
}
