// This file holds Recover: what a run of the node left unfinished (it was
// killed, or storage was down when it stopped) is finished by the next.
// Each earlier generation directory is taken whole: its spools are
// uploaded and completed (upload.Recover), then each call's journal
// becomes the call's manifest, marked incomplete when the call was cut
// short. A generation is removed once nothing of it is left.

package callrec

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/helpcaster/helpcaster/objstore"
	"github.com/helpcaster/helpcaster/recorder/manifest"
	"github.com/helpcaster/helpcaster/recorder/upload"
)

// Recovery counts what one Recover did.
type Recovery struct {
	Calls       int // manifests written for calls an earlier run left
	FilesStored int // their files found in storage
	FilesLost   int // their files not in storage (nothing of them was spooled or uploaded)
	Left        int // generations not finished: storage down, or ctx ended
}

// cutShort is the manifest's reason for a call whose node stopped.
const cutShort = "the node recording the call stopped during it: the files end at most a few seconds before it stopped"

// Recover finishes every earlier generation in the spool directory. It
// runs beside recording (which uses this generation only) and may be
// called again for what is Left.
func (r *Recorder) Recover(ctx context.Context) (Recovery, error) {
	var out Recovery
	entries, err := os.ReadDir(r.cfg.SpoolDir)
	if err != nil {
		return out, fmt.Errorf("callrec: recover: %w", err)
	}
	for _, e := range entries {
		dir := filepath.Join(r.cfg.SpoolDir, e.Name())
		if !e.IsDir() || !strings.HasPrefix(e.Name(), genPrefix) || dir == r.gen {
			continue
		}
		if err := r.recoverGen(ctx, dir, &out); err != nil {
			out.Left++
			r.log.Warn("recovering an earlier run's recordings failed; trying again later", "dir", e.Name(), "err", err)
		}
	}
	r.stats.recovered(int64(out.Calls), int64(out.FilesStored), int64(out.FilesLost))
	return out, nil
}

// RecoverLoop runs Recover until nothing is left or ctx ends, waiting
// longer between tries while storage stays down.
func (r *Recorder) RecoverLoop(ctx context.Context) {
	delay := time.Second
	for {
		rec, err := r.Recover(ctx)
		if err != nil {
			r.log.Warn("recovering recordings failed", "err", err)
		}
		if rec.Calls > 0 || rec.FilesLost > 0 {
			r.log.Info("recordings an earlier run left were finished", "calls", rec.Calls,
				"files_stored", rec.FilesStored, "files_lost", rec.FilesLost)
		}
		if err == nil && rec.Left == 0 {
			return
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, time.Minute)
	}
}

// recoverGen finishes one earlier generation, unless a live process holds
// it. The journals are read before the spools are uploaded: both are the
// generation's alone.
func (r *Recorder) recoverGen(ctx context.Context, dir string, out *Recovery) error {
	lock, ok, err := lockGen(dir)
	if err != nil {
		return err
	}
	if !ok {
		return nil // another process records into it
	}
	defer lock.unlock()
	jdir := filepath.Join(dir, journalsDir)
	names, err := filepath.Glob(filepath.Join(jdir, "*.json"))
	if err != nil {
		return err
	}
	spools, err := upload.Recover(ctx, r.cfg.Store, dir, r.cfg.Upload)
	if err != nil {
		return fmt.Errorf("spools: %w", err)
	}
	cut := make(map[string]bool) // keys recovered from a spool the writer had not closed
	var failed error
	for _, s := range spools {
		if s.Err != nil {
			failed = errors.Join(failed, s.Err)
			continue
		}
		if !s.Complete {
			cut[s.Key] = true
		}
	}
	if failed != nil {
		return failed // the journals wait until their files are stored
	}
	for _, name := range names {
		doc, err := readJournal(name)
		if err != nil {
			// Unreadable (torn by a crash before its first save ended): its
			// files, if any, were recovered above; nothing names the call.
			r.log.Warn("dropping an unreadable recording journal", "err", err)
			_ = os.Remove(name)
			continue
		}
		if err := r.recoverCall(ctx, doc, cut, out); err != nil {
			return err
		}
		if err := os.Remove(name); err != nil {
			return err
		}
	}
	return os.RemoveAll(dir)
}

// recoverCall writes the manifest of a call from its journal.
func (r *Recorder) recoverCall(ctx context.Context, doc journalDoc, cut map[string]bool, out *Recovery) error {
	m := doc.Manifest
	var files []manifest.File
	complete := doc.Ended && m.Complete
	for _, f := range m.Files {
		info, sum, err := r.hashObject(ctx, f.Key)
		if errors.Is(err, objstore.ErrNotFound) {
			out.FilesLost++
			complete = false
			continue
		}
		if err != nil {
			return fmt.Errorf("file of call %s: %w", m.Call, err)
		}
		out.FilesStored++
		f.Bytes, f.SHA256 = info.Size, sum
		if !doc.Ended && f.Kind == manifest.KindMedia {
			if d := doc.Alive.Sub(m.Start).Seconds() - f.StartOffset; d > 0 {
				f.Duration = d
			}
		}
		if cut[f.Key] {
			complete = false
		}
		files = append(files, f)
	}
	if !doc.Ended {
		m.End = doc.Alive
		if m.End.Before(m.Start) {
			m.End = m.Start
		}
		for i := range m.Paused {
			if m.Paused[i].End.IsZero() {
				m.Paused[i].End = m.End
			}
		}
	}
	m.Files = files
	if m.Files == nil {
		m.Files = []manifest.File{}
	}
	m.Complete = complete
	if !complete {
		switch {
		case !doc.Ended:
			m.Incomplete = cutShort
		case m.Incomplete == "":
			m.Incomplete = "some files were not stored before the node stopped"
		}
	}
	prefix := manifest.CallPrefix(m.Org, m.Call, m.Start)
	if err := putManifest(ctx, r.cfg.Store, r.log, prefix, m); err != nil {
		return err
	}
	out.Calls++
	return nil
}

// hashObject returns key's size and SHA-256 (hex) as stored.
func (r *Recorder) hashObject(ctx context.Context, key string) (objstore.ObjectInfo, string, error) {
	body, info, err := r.cfg.Store.Get(ctx, key)
	if err != nil {
		return info, "", err
	}
	defer body.Close()
	h := sha256.New()
	n, err := io.Copy(h, body)
	if err != nil {
		return info, "", fmt.Errorf("read %s: %w", key, err)
	}
	info.Size = n
	return info, hex.EncodeToString(h.Sum(nil)), nil
}
