// Package objstoretest is a conformance suite for objstore.Store
// implementations: Run checks every method against a fresh store, with exact
// bytes, the errors each failure must wrap, and multipart uploads that are
// resumed after their handle is forgotten, as a restarted node does.
//
// This file holds Run, the helpers and the checks of whole objects;
// uploads.go the checks of multipart uploads.
package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/helpcaster/helpcaster/objstore"
)

// Run runs the suite. newStore must return an empty store; Run does not
// close it (newStore registers that with t.Cleanup).
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s objstore.Store)
	}{
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"Missing", testMissing},
		{"Delete", testDelete},
		{"List", testList},
		{"InvalidKeys", testInvalidKeys},
		{"Multipart", testMultipart},
		{"PartTooSmall", testPartTooSmall},
		{"InvalidParts", testInvalidParts},
		{"ReplacePart", testReplacePart},
		{"ListUploads", testListUploads},
		{"ListParts", testListParts},
		{"Resume", testResume},
		{"ConcurrentUploads", testConcurrentUploads},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// randomBytes returns n bytes from a generator seeded by seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func put(t *testing.T, s objstore.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), "application/octet-stream"); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

// get reads key whole and checks that Get's ObjectInfo matches.
func get(t *testing.T, s objstore.Store, key string) []byte {
	t.Helper()
	rc, info, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	if info.Key != key || info.Size != int64(len(b)) {
		t.Fatalf("Get(%q): info key %q size %d, read %d bytes", key, info.Key, info.Size, len(b))
	}
	return b
}

func checkBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: got %d bytes, want %d; first difference at byte %d", what, len(got), len(want), i)
	}
}

func keys(infos []objstore.ObjectInfo) []string {
	out := make([]string, len(infos))
	for i, o := range infos {
		out[i] = o.Key
	}
	return out
}

func list(t *testing.T, s objstore.Store, prefix string) []string {
	t.Helper()
	infos, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys(infos)
}

func testPutGet(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	for i, n := range []int{0, 1, 1000, 1 << 20} {
		key := fmt.Sprintf("org-1/2026/12/07/call-%d/object.bin", i)
		data := randomBytes(uint64(i), n)
		put(t, s, key, data)
		checkBytes(t, key, get(t, s, key), data)
		info, err := s.Stat(ctx, key)
		if err != nil {
			t.Fatalf("Stat(%q): %v", key, err)
		}
		if info.Key != key || info.Size != int64(n) || info.LastModified.IsZero() {
			t.Fatalf("Stat(%q) = %+v, want size %d and a modification time", key, info, n)
		}
	}
	// A body shorter than the size given is an error, and stores nothing.
	if err := s.Put(ctx, "short", bytes.NewReader([]byte("abc")), 10, ""); err == nil {
		t.Fatal("Put with a body of 3 bytes and size 10 succeeded")
	}
	if _, err := s.Stat(ctx, "short"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Stat after a failed Put = %v, want ErrNotFound", err)
	}
}

func testOverwrite(t *testing.T, s objstore.Store) {
	put(t, s, "a/manifest.json", []byte(`{"v":1,"long":"xxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`))
	put(t, s, "a/manifest.json", []byte(`{"v":2}`))
	checkBytes(t, "overwritten", get(t, s, "a/manifest.json"), []byte(`{"v":2}`))
	if got := list(t, s, ""); !slices.Equal(got, []string{"a/manifest.json"}) {
		t.Fatalf("List after overwrite = %q", got)
	}
}

func testMissing(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	put(t, s, "present/x", []byte("x"))
	for _, key := range []string{"absent", "present/y", "present/x/z", "present"} {
		if _, _, err := s.Get(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Stat(%q) = %v, want ErrNotFound", key, err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Errorf("Delete(%q) of a missing key = %v, want nil", key, err)
		}
	}
	if got := list(t, s, "nothing/"); len(got) != 0 {
		t.Fatalf("List of an unused prefix = %q", got)
	}
	checkBytes(t, "untouched", get(t, s, "present/x"), []byte("x"))
}

func testDelete(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	put(t, s, "d/1", []byte("one"))
	put(t, s, "d/2", []byte("two"))
	put(t, s, "d/sub/3", []byte("three"))
	for _, key := range []string{"d/1", "d/sub/3"} {
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("Delete(%q): %v", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("Stat(%q) after Delete = %v, want ErrNotFound", key, err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("second Delete(%q) = %v, want nil", key, err)
		}
	}
	if got := list(t, s, ""); !slices.Equal(got, []string{"d/2"}) {
		t.Fatalf("List after deletes = %q, want [d/2]", got)
	}
	// The deleted key's place can be used again, also as a prefix.
	put(t, s, "d/sub", []byte("now an object"))
	put(t, s, "d/1/x", []byte("under a deleted key"))
	if got := list(t, s, "d/"); !slices.Equal(got, []string{"d/1/x", "d/2", "d/sub"}) {
		t.Fatalf("List(d/) = %q", got)
	}
}

func testList(t *testing.T, s objstore.Store) {
	// Byte order: '-' < '.' < '/' < '0' < 'A' < '_' < 'a'.
	all := []string{"a-c", "a.b", "a/b", "a/b0/c", "a/b=1", "a/bc", "a0", "aA", "a_", "b", "ba/z"}
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(len(all)) {
		put(t, s, all[i], []byte(all[i]))
	}
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"a", all[:9]},
		{"a/", []string{"a/b", "a/b0/c", "a/b=1", "a/bc"}},
		{"a/b", []string{"a/b", "a/b0/c", "a/b=1", "a/bc"}},
		{"a/b0", []string{"a/b0/c"}},
		{"a/b0/", []string{"a/b0/c"}},
		{"a/bc", []string{"a/bc"}},
		{"b", []string{"b", "ba/z"}},
		{"ba/", []string{"ba/z"}},
		{"c", nil},
		{"a/b/", nil},
	}
	for _, c := range cases {
		got := list(t, s, c.prefix)
		if !slices.Equal(got, c.want) {
			t.Errorf("List(%q) = %q, want %q", c.prefix, got, c.want)
		}
	}
	infos, err := s.List(context.Background(), "a/")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range infos {
		if o.Size != int64(len(o.Key)) || o.LastModified.IsZero() {
			t.Errorf("List entry %+v: want size %d and a modification time", o, len(o.Key))
		}
	}
}

// BadKeys are keys every store refuses with ErrInvalidKey.
var BadKeys = []string{
	"", "/", "/a", "a/", "a//b", ".", "..", "../x", "a/../../x", "a/./b", "a/..", ".hidden", "a/.b",
	"/etc/passwd", `a\b`, `..\x`, "a\x00b", "a b", "a:b", "a?b", "a%2e", "é", "a\nb",
	strings.Repeat("a", objstore.MaxSegmentLen+1), longestKey + "a",
}

// longestKey is a valid key of MaxKeyLen bytes.
var longestKey = strings.Repeat(strings.Repeat("k", 200)+"/", 3) + strings.Repeat("k", objstore.MaxKeyLen-603)

// BadPrefixes are list prefixes every store refuses with ErrInvalidKey.
var BadPrefixes = []string{"/", "//", "a//", "../", "a/../", ".", ".uploads", ".uploads/", "a b", `a\`}

func testInvalidKeys(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	good := "good/key"
	put(t, s, good, []byte("g"))
	id, err := s.StartUpload(ctx, good, "")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.AbortUpload(ctx, good, id) }()
	part, err := s.UploadPart(ctx, good, id, 1, bytes.NewReader([]byte("p")), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range BadKeys {
		calls := map[string]error{}
		calls["Put"] = s.Put(ctx, key, bytes.NewReader([]byte("x")), 1, "")
		_, _, calls["Get"] = s.Get(ctx, key)
		_, calls["Stat"] = s.Stat(ctx, key)
		calls["Delete"] = s.Delete(ctx, key)
		_, calls["StartUpload"] = s.StartUpload(ctx, key, "")
		_, calls["UploadPart"] = s.UploadPart(ctx, key, id, 2, bytes.NewReader([]byte("x")), 1)
		_, calls["CompleteUpload"] = s.CompleteUpload(ctx, key, id, []objstore.Part{part})
		calls["AbortUpload"] = s.AbortUpload(ctx, key, id)
		_, calls["ListParts"] = s.ListParts(ctx, key, id)
		for name, err := range calls {
			if !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("%s(%q) = %v, want ErrInvalidKey", name, key, err)
			}
		}
	}
	for _, p := range BadPrefixes {
		if _, err := s.List(ctx, p); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("List(%q) = %v, want ErrInvalidKey", p, err)
		}
		if _, err := s.ListUploads(ctx, p); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("ListUploads(%q) = %v, want ErrInvalidKey", p, err)
		}
	}
	// Nothing was touched.
	if got := list(t, s, ""); !slices.Equal(got, []string{good}) {
		t.Fatalf("List after refused calls = %q", got)
	}
	parts, err := s.ListParts(ctx, good, id)
	if err != nil || len(parts) != 1 || parts[0].ETag != part.ETag {
		t.Fatalf("ListParts after refused calls = %+v, %v; want only %+v", parts, err, part)
	}
	// The longest key is valid.
	if len(longestKey) != objstore.MaxKeyLen {
		t.Fatalf("longestKey is %d bytes", len(longestKey))
	}
	put(t, s, longestKey, []byte("long"))
	checkBytes(t, "longest key", get(t, s, longestKey), []byte("long"))
}
