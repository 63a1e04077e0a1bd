// Tests of LocalStore: the conformance suite, and what only a directory can
// get wrong: paths that lead out of it, files left by a crash, and failed
// writes.
package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/helpcaster/helpcaster/objstore"
	"github.com/helpcaster/helpcaster/objstore/objstoretest"
)

func newLocal(t *testing.T, dir string) *objstore.LocalStore {
	t.Helper()
	s, err := objstore.Local(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestLocalConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store { return newLocal(t, t.TempDir()) })
}

// files lists every file and directory under dir, relative to it.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "." {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLocalTraversal(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("not yours"), 0o644); err != nil {
		t.Fatal(err)
	}
	rootDir := filepath.Join(base, "root")
	s := newLocal(t, rootDir)

	for _, key := range []string{"../outside/secret", "a/../../outside/secret", secret, "/" + secret, `..\outside\secret`, "x\x00/../outside/secret", "./x", "../outside/new"} {
		if err := s.Put(ctx, key, strings.NewReader("evil"), 4, ""); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, _, err := s.Get(ctx, key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", key, err)
		}
	}

	// A symlink inside the root that points out of it (put there by
	// someone else: the store makes none) leads nowhere.
	if err := os.Symlink(outside, filepath.Join(rootDir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(rootDir, "filelink")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, "link/secret"); err == nil {
		t.Error("Get(link/secret) read a file outside the root")
	}
	if _, _, err := s.Get(ctx, "filelink"); err == nil {
		t.Error("Get(filelink) read a file outside the root")
	}
	if err := s.Put(ctx, "link/new", strings.NewReader("evil"), 4, ""); err == nil {
		t.Error("Put(link/new) wrote through a symlink out of the root")
	}
	if err := s.Delete(ctx, "link/secret"); err != nil {
		t.Logf("Delete(link/secret) = %v", err)
	}
	if got := files(t, outside); !slices.Equal(got, []string{"secret"}) {
		t.Errorf("outside directory now holds %q, want only secret", got)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "not yours" {
		t.Errorf("outside file now %q, %v", b, err)
	}
	infos, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 0 {
		t.Errorf("List shows %+v: symlinks are not objects", infos)
	}
}

// TestLocalCrashLeftovers simulates a crash in the middle of a Put, of a
// Complete and of a StartUpload: the files they leave are never listed.
func TestLocalCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newLocal(t, dir)
	if err := s.Put(ctx, "org/call/manifest.json", strings.NewReader("{}"), 2, ""); err != nil {
		t.Fatal(err)
	}
	leftovers := map[string]string{
		".tmp-0123456789abcdef":          "half a put at the top",
		"org/call/.tmp-fedcba9876543210": "half a manifest",
		"org/.tmp-00":                    "half a completed upload",
		".uploads/.new-0123456789abcdef0123456789abcdef/meta.json": `{"key":"org/x"}`,
	}
	for name, content := range leftovers {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, prefix := range []string{"", "org/", "org/call/", "org/call/manifest.json"} {
		infos, err := s.List(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range infos {
			keys = append(keys, o.Key)
		}
		if !slices.Equal(keys, []string{"org/call/manifest.json"}) {
			t.Errorf("List(%q) = %q, want only the manifest", prefix, keys)
		}
	}
	if us, err := s.ListUploads(ctx, ""); err != nil || len(us) != 0 {
		t.Errorf("ListUploads = %+v, %v; a half-begun upload is not an upload", us, err)
	}
}

// TestLocalFailedWrites: a Put or Complete that fails leaves the old object
// and no temporary file behind.
func TestLocalFailedWrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newLocal(t, dir)
	if err := s.Put(ctx, "k/obj", strings.NewReader("old"), 3, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "k/obj", strings.NewReader("new but short"), 100, ""); err == nil {
		t.Fatal("Put with a short body succeeded")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Put(canceled, "k/obj", strings.NewReader("new"), 3, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a canceled context = %v", err)
	}
	rc, _, err := s.Get(ctx, "k/obj")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(rc)
	_ = rc.Close()
	if buf.String() != "old" {
		t.Fatalf("after failed Puts the object is %q, want old", buf.String())
	}
	if got := files(t, dir); !slices.Equal(got, []string{"k", "k/obj"}) {
		t.Fatalf("directory holds %q, want only k/obj", got)
	}
}

// TestLocalKeyConflict: the local store cannot hold "a" and "a/b" at once;
// it refuses the second with an error and keeps the first.
func TestLocalKeyConflict(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t, t.TempDir())
	if err := s.Put(ctx, "a", strings.NewReader("a"), 1, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/b", strings.NewReader("b"), 1, ""); err == nil || !strings.Contains(err.Error(), "cannot hold both") {
		t.Fatalf("Put(a/b) over object a = %v, want a conflict error", err)
	}
	if err := s.Put(ctx, "x/y", strings.NewReader("y"), 1, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "x", strings.NewReader("x"), 1, ""); err == nil || !strings.Contains(err.Error(), "cannot hold both") {
		t.Fatalf("Put(x) over prefix x/ = %v, want a conflict error", err)
	}
	infos, err := s.List(ctx, "")
	if err != nil || len(infos) != 2 || infos[0].Key != "a" || infos[1].Key != "x/y" {
		t.Fatalf("List = %+v, %v; want a and x/y", infos, err)
	}
}

// TestLocalUploadsSurviveReopen: an upload begun by one LocalStore is found,
// resumed and completed by another on the same directory (a restarted node).
func TestLocalUploadsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	first := newLocal(t, dir)
	id, err := first.StartUpload(ctx, "r/obj", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.UploadPart(ctx, "r/obj", id, 1, strings.NewReader("hello "), 6); err != nil {
		t.Fatal(err)
	}
	_ = first.Close()
	second := newLocal(t, dir)
	us, err := second.ListUploads(ctx, "")
	if err != nil || len(us) != 1 || us[0].UploadID != id {
		t.Fatalf("ListUploads after reopening = %+v, %v", us, err)
	}
	parts, err := second.ListParts(ctx, "r/obj", id)
	if err != nil || len(parts) != 1 {
		t.Fatalf("ListParts after reopening = %+v, %v", parts, err)
	}
	if _, err := second.CompleteUpload(ctx, "r/obj", id, parts); err != nil {
		t.Fatal(err)
	}
	if got := files(t, dir); !slices.Equal(got, []string{".uploads", "r", "r/obj"}) {
		t.Fatalf("directory after Complete holds %q", got)
	}
}
