// Package recordingtest reads what a recorded call left in storage, for
// the tests of the recorder and of what records through it.
package recordingtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/objstore"
	"github.com/helpcaster/helpcaster/recorder/manifest"
)

// ReadObject returns an object's bytes, failing t if it cannot be read.
func ReadObject(t testing.TB, store objstore.Store, key string) []byte {
	t.Helper()
	body, _, err := store.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

// WaitManifest polls store until the manifest of call exists and done
// accepts it (nil: any), and returns it; it fails t when ctx ends first.
// It finds the manifest by listing, so the call's date need not be known.
func WaitManifest(t testing.TB, ctx context.Context, store objstore.Store, call string, done func(manifest.Manifest) bool) manifest.Manifest {
	t.Helper()
	suffix := "/" + manifest.Segment(call) + "/" + manifest.ManifestName
	var last manifest.Manifest
	var err error
	for {
		var objs []objstore.ObjectInfo
		if objs, err = store.List(ctx, ""); err == nil {
			for _, o := range objs {
				if !strings.HasSuffix(o.Key, suffix) {
					continue
				}
				m, perr := manifest.Parse(ReadObject(t, store, o.Key))
				if perr != nil {
					t.Fatalf("%s: %v", o.Key, perr)
				}
				if done == nil || done(m) {
					return m
				}
				last = m
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("manifest of call %s: not as awaited; last %+v (list: %v)", call, last, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Complete accepts a complete manifest (for WaitManifest).
func Complete(m manifest.Manifest) bool { return m.Complete }

// Final accepts a manifest as stored at the call's end or by recovery,
// complete or not: it names files, each with its hash.
func Final(m manifest.Manifest) bool {
	return len(m.Files) > 0 && !slices.ContainsFunc(m.Files, func(f manifest.File) bool { return f.SHA256 == "" })
}

// CheckFiles checks that every file m names is stored with the size and
// SHA-256 m gives, and returns their bytes by key.
func CheckFiles(t testing.TB, store objstore.Store, m manifest.Manifest) map[string][]byte {
	t.Helper()
	out := make(map[string][]byte, len(m.Files))
	for _, f := range m.Files {
		data := ReadObject(t, store, f.Key)
		sum := sha256.Sum256(data)
		if int64(len(data)) != f.Bytes || hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Errorf("%s: %d bytes, sha256 %x; the manifest says %d, %s", f.Key, len(data), sum, f.Bytes, f.SHA256)
		}
		out[f.Key] = data
	}
	return out
}

// Transcript reads a stored transcript's lines.
func Transcript(t testing.TB, data []byte) []manifest.Line {
	t.Helper()
	lines, err := manifest.ReadTranscript(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return lines
}
