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
	"slices"
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
	// A storage call that fails for good without saying so (a refused
	// credential) is retried by upload.Recover until its context ends:
	// each pass is bounded, and RecoverLoop tries again later.
	sctx, cancel := context.WithTimeout(ctx, recoverPass)
	spools, err := upload.Recover(sctx, r.cfg.Store, dir, r.cfg.Upload)
	cancel()
	if err != nil {
		return fmt.Errorf("spools: %w", err)
	}
	// A call cut short is incomplete whatever its spools held; one that
	// had ended had closed its files, so their spools were whole.
	failed := make(map[string]bool) // keys whose spool is still to be stored
	var problems error
	for _, s := range spools {
		if s.Err != nil {
			failed[s.Key] = true
			problems = errors.Join(problems, fmt.Errorf("spool: %w", s.Err))
		}
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
		if slices.ContainsFunc(slices.Concat(doc.Manifest.Files, doc.Pending), func(f manifest.File) bool { return failed[f.Key] }) {
			continue // it waits until its files are stored
		}
		if err := r.recoverCall(ctx, doc, out); err != nil {
			problems = errors.Join(problems, err) // the other calls go on
			continue
		}
		if err := os.Remove(name); err != nil {
			problems = errors.Join(problems, err)
		}
	}
	if problems != nil {
		return problems
	}
	return os.RemoveAll(dir)
}

// recoverPass bounds the storage calls of one generation's recovery.
const recoverPass = 2 * time.Minute

// recoverCall writes the manifest of a call from its journal: the files it
// names that are in storage, marked incomplete unless the call ended with
// every file whole.
func (r *Recorder) recoverCall(ctx context.Context, doc journalDoc, out *Recovery) error {
	m := doc.Manifest
	reasons := slices.Clone(doc.Reasons)
	if !doc.Ended {
		reasons = append([]string{cutShort}, reasons...)
	}
	var files []manifest.File
	var stored, lost int
	for _, f := range slices.Concat(m.Files, doc.Pending) {
		info, sum, err := r.hashObject(ctx, f.Key)
		if errors.Is(err, objstore.ErrNotFound) {
			lost++
			continue
		}
		if err != nil {
			return fmt.Errorf("file of call %s: %w", m.Call, err)
		}
		stored++
		f.Bytes, f.SHA256 = info.Size, sum
		if !doc.Ended && f.Kind == manifest.KindMedia {
			if d := doc.Alive.Sub(m.Start).Seconds() - f.StartOffset; d > 0 {
				f.Duration = d
			}
		}
		files = append(files, f)
	}
	if lost > 0 {
		reasons = append(reasons, fmt.Sprintf("%d of the call's files were lost", lost))
	}
	if !doc.Ended {
		m.End = doc.Alive
		for i := range m.Paused {
			if m.Paused[i].End.IsZero() {
				m.Paused[i].End = m.End
			}
		}
	}
	if m.End.Before(m.Start) {
		m.End = m.Start // a clock stepped back
	}
	m.Files = files
	if m.Files == nil {
		m.Files = []manifest.File{}
	}
	m.Complete = len(reasons) == 0
	m.Incomplete = joinWhy(reasons)
	prefix := manifest.CallPrefix(m.Org, m.Call, m.Start)
	pctx, cancel := context.WithTimeout(ctx, recoverPass)
	defer cancel()
	if err := putManifest(pctx, r.cfg.Store, r.log, prefix, m); err != nil {
		return err
	}
	out.Calls++
	out.FilesStored += stored
	out.FilesLost += lost
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
