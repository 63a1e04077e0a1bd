// This file holds the spool's on-disk layout: a spool file of raw bytes and
// a JSON sidecar that names the upload they belong to. The Writer's upload
// goroutine owns a live sidecar; Recover owns those left by a crash.

package upload

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/helpcaster/helpcaster/objstore"
)

const (
	sidecarExt = ".json"
	spoolExt   = ".spool"
)

// sidecar is what a restart needs to finish an upload from its spool.
type sidecar struct {
	Key string `json:"key"`
	// UploadID is empty until storage has begun the upload.
	UploadID    string `json:"upload_id,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	PartSize    int64  `json:"part_size"`
	// Parts are the parts uploaded so far, in order; Uploaded is their total
	// size, the spool offset the next part starts at. A part may have been
	// uploaded after the last save: Recover asks the store.
	Parts    []objstore.Part `json:"parts"`
	Uploaded int64           `json:"uploaded"`
	// Aborted: the writer gave up but could not abort the upload; Recover
	// aborts it.
	Aborted bool `json:"aborted,omitempty"`
}

// spoolFiles names one spool: <dir>/<id>.spool and <dir>/<id>.json. The id
// is random, so no key (which could say whose call it was) names a file.
type spoolFiles struct{ spool, sidecar string }

func newSpoolFiles(dir string) spoolFiles {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return spoolFilesFor(filepath.Join(dir, hex.EncodeToString(b[:])))
}

func spoolFilesFor(base string) spoolFiles {
	return spoolFiles{spool: base + spoolExt, sidecar: base + sidecarExt}
}

// save replaces the sidecar atomically (write a temporary file, fsync,
// rename, fsync the directory) so that a crash leaves the old one or the
// new one, and the spool's name with it.
func (f spoolFiles) save(sc *sidecar) error {
	data, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	tmp := f.sidecar + ".tmp"
	if err := writeSynced(tmp, data); err != nil {
		return fmt.Errorf("upload: save sidecar: %w", err)
	}
	if err := os.Rename(tmp, f.sidecar); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("upload: save sidecar: %w", err)
	}
	if err := syncDir(filepath.Dir(f.sidecar)); err != nil {
		return fmt.Errorf("upload: save sidecar: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

func writeSynced(name string, data []byte) error {
	fh, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = fh.Write(data)
	if err == nil {
		err = fh.Sync()
	}
	return errors.Join(err, fh.Close())
}

func (f spoolFiles) load() (*sidecar, error) {
	data, err := os.ReadFile(f.sidecar)
	if err != nil {
		return nil, err
	}
	var sc sidecar
	if err := json.Unmarshal(data, &sc); err != nil {
		return nil, fmt.Errorf("upload: sidecar %s: %w", filepath.Base(f.sidecar), err)
	}
	if sc.Key == "" || sc.PartSize <= 0 {
		return nil, fmt.Errorf("upload: sidecar %s: missing key or part size", filepath.Base(f.sidecar))
	}
	return &sc, nil
}

// remove deletes the spool, then the sidecar (a sidecar without a spool is
// an empty spool to Recover; the reverse would be an orphan).
func (f spoolFiles) remove() error {
	err1 := os.Remove(f.spool)
	if errors.Is(err1, os.ErrNotExist) {
		err1 = nil
	}
	err2 := os.Remove(f.sidecar)
	if errors.Is(err2, os.ErrNotExist) {
		err2 = nil
	}
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("upload: remove spool: %w", err)
	}
	return nil
}

// listSpools returns the spools in dir that have a sidecar.
func listSpools(dir string) ([]spoolFiles, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("upload: list spool dir: %w", err)
	}
	var out []spoolFiles
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), sidecarExt); ok && e.Type().IsRegular() {
			out = append(out, spoolFilesFor(filepath.Join(dir, name)))
		}
	}
	return out, nil
}
