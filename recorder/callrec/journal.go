// This file holds a call's journal: the provisional manifest, kept on
// local disk beside the spools while the call is recorded, so that after a
// crash Recover knows which files made up the call and writes its
// manifest. A journal has its own lock, a leaf: the Call's lock and a
// Recording's goroutine both use it.

package callrec

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/helpcaster/helpcaster/recorder/manifest"
)

// journalDoc is a journal's content.
type journalDoc struct {
	Manifest manifest.Manifest `json:"manifest"`
	// Alive is the last time the node noted the call was being recorded.
	Alive time.Time `json:"alive"`
	// Ended: the call ended and Manifest is its final manifest, not yet
	// stored, or stored while Pending files were not.
	Ended bool `json:"ended,omitempty"`
	// Pending are files begun but not stored when the call ended.
	Pending []manifest.File `json:"pending,omitempty"`
	// Reasons are why the recording is incomplete, besides a cut-short
	// call or pending files: it stopped for storage, a file failed.
	Reasons []string `json:"reasons,omitempty"`
}

type journal struct {
	path string

	mu  sync.Mutex
	doc journalDoc
	// The provisional manifest: a Put was tried (it may have landed though
	// it failed), and one succeeded.
	provTried, provStored bool
}

// newJournal saves a journal for a call in the generation directory gen.
func newJournal(gen string, m manifest.Manifest) (*journal, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	j := &journal{path: filepath.Join(gen, journalsDir, hex.EncodeToString(b[:])+".json"),
		doc: journalDoc{Manifest: m, Alive: m.Start}}
	if err := j.save(); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *journal) addFile(f manifest.File) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.doc.Manifest.Files = append(j.doc.Manifest.Files, f)
	_ = j.save()
}

func (j *journal) setPaused(spans []manifest.Span) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.doc.Manifest.Paused = slices.Clone(spans)
	_ = j.save()
}

// alive notes the call is still recorded at now, and the start of its
// files (by key) on the call's clock that began at start.
func (j *journal) alive(now, start time.Time, starts map[string]time.Time) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.doc.Alive = now
	for i, f := range j.doc.Manifest.Files {
		if st, ok := starts[f.Key]; ok {
			j.doc.Manifest.Files[i].StartOffset = manifest.Offset(start, st)
		}
	}
	return j.save()
}

// final records the call's final manifest before it is stored, the
// files not stored and why the recording is incomplete.
func (j *journal) final(m manifest.Manifest, pending []manifest.File, reasons []string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.doc.Manifest, j.doc.Ended, j.doc.Pending, j.doc.Reasons = m, true, pending, reasons
	_ = j.save()
}

// addReason notes why the recording is incomplete.
func (j *journal) addReason(why string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.doc.Reasons = append(j.doc.Reasons, why)
	_ = j.save()
}

// hasFiles reports whether any file of the call has begun.
func (j *journal) hasFiles() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.doc.Manifest.Files) > 0
}

func (j *journal) snapshot() manifest.Manifest {
	j.mu.Lock()
	defer j.mu.Unlock()
	m := j.doc.Manifest
	m.Files = slices.Clone(m.Files)
	return m
}

func (j *journal) provisionalStored() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.provStored
}

func (j *journal) provisionalTried() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.provTried
}

// provisional notes a Put of the provisional manifest, and whether it
// succeeded.
func (j *journal) provisional(stored bool) {
	j.mu.Lock()
	j.provTried, j.provStored = true, stored
	j.mu.Unlock()
}

func (j *journal) remove() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := os.Remove(j.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("callrec: remove journal: %w", err)
	}
	return nil
}

// save replaces the journal's file: a crash leaves the old one or the new.
// Called with j.mu held.
func (j *journal) save() error {
	data, err := json.Marshal(j.doc)
	if err != nil {
		return fmt.Errorf("callrec: journal: %w", err)
	}
	return replaceFile(j.path, data)
}

// replaceFile writes data to name through a synced temporary file and a
// rename, then syncs the directory.
func replaceFile(name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("callrec: journal: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("callrec: journal: %w", err)
	}
	d, err := os.Open(filepath.Dir(name))
	if err != nil {
		return fmt.Errorf("callrec: journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("callrec: journal: %w", err)
	}
	return nil
}

// readJournal reads a journal file a crashed run left.
func readJournal(path string) (journalDoc, error) {
	var doc journalDoc
	data, err := os.ReadFile(path)
	if err != nil {
		return doc, fmt.Errorf("callrec: read journal: %w", err)
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return doc, fmt.Errorf("callrec: read journal %s: %w", filepath.Base(path), err)
	}
	return doc, nil
}
