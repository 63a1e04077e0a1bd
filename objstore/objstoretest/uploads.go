// This file holds the suite's checks of multipart uploads: round trips,
// the part rules, listing uploads and parts, resuming and concurrency.

package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/helpcaster/helpcaster/objstore"
)

// upload uploads the given parts (numbered from first) and returns them.
func upload(t *testing.T, s objstore.Store, key, id string, first int, chunks ...[]byte) []objstore.Part {
	t.Helper()
	var parts []objstore.Part
	for i, c := range chunks {
		n := first + i
		p, err := s.UploadPart(context.Background(), key, id, n, bytes.NewReader(c), int64(len(c)))
		if err != nil {
			t.Fatalf("UploadPart(%q, part %d): %v", key, n, err)
		}
		if p.Number != n || p.Size != int64(len(c)) || p.ETag == "" {
			t.Fatalf("UploadPart(%q, part %d) = %+v, want number %d, size %d and an ETag", key, n, p, n, len(c))
		}
		parts = append(parts, p)
	}
	return parts
}

func start(t *testing.T, s objstore.Store, key string) string {
	t.Helper()
	id, err := s.StartUpload(context.Background(), key, "video/webm")
	if err != nil {
		t.Fatalf("StartUpload(%q): %v", key, err)
	}
	if id == "" {
		t.Fatalf("StartUpload(%q): empty upload id", key)
	}
	return id
}

func complete(t *testing.T, s objstore.Store, key, id string, parts []objstore.Part, want []byte) {
	t.Helper()
	info, err := s.CompleteUpload(context.Background(), key, id, parts)
	if err != nil {
		t.Fatalf("CompleteUpload(%q): %v", key, err)
	}
	if info.Key != key || info.Size != int64(len(want)) {
		t.Fatalf("CompleteUpload(%q) = %+v, want size %d", key, info, len(want))
	}
	checkBytes(t, "completed "+key, get(t, s, key), want)
}

func uploads(t *testing.T, s objstore.Store, prefix string) []objstore.UploadInfo {
	t.Helper()
	us, err := s.ListUploads(context.Background(), prefix)
	if err != nil {
		t.Fatalf("ListUploads(%q): %v", prefix, err)
	}
	return us
}

func testMultipart(t *testing.T, s objstore.Store) {
	min := int(s.MinPartSize())
	if min != objstore.MinPartSize {
		t.Fatalf("MinPartSize() = %d, want %d", min, objstore.MinPartSize)
	}
	data := randomBytes(7, 2*min+min/3)
	key := "org/2026/12/07/call/agent.webm"
	id := start(t, s, key)
	if got := list(t, s, ""); len(got) != 0 {
		t.Fatalf("List during an upload = %q, want nothing", got)
	}
	if _, err := s.Stat(context.Background(), key); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Stat during an upload = %v, want ErrNotFound", err)
	}
	parts := upload(t, s, key, id, 1, data[:min], data[min:2*min], data[2*min:])
	complete(t, s, key, id, parts, data)
	if us := uploads(t, s, ""); len(us) != 0 {
		t.Fatalf("ListUploads after Complete = %+v", us)
	}
	if got := list(t, s, ""); !slices.Equal(got, []string{key}) {
		t.Fatalf("List after Complete = %q", got)
	}
	// A single part may be of any size.
	id = start(t, s, "small")
	complete(t, s, "small", id, upload(t, s, "small", id, 1, []byte("tiny")), []byte("tiny"))
}

func testPartTooSmall(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	min := int(s.MinPartSize())
	key := "too/small"
	id := start(t, s, key)
	// The last part may be small; an earlier one may not.
	parts := upload(t, s, key, id, 1, randomBytes(1, min), randomBytes(2, min-1), randomBytes(3, 10))
	_, err := s.CompleteUpload(ctx, key, id, parts)
	if !errors.Is(err, objstore.ErrPartTooSmall) {
		t.Fatalf("CompleteUpload with a %d-byte middle part = %v, want ErrPartTooSmall", min-1, err)
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Stat after a refused Complete = %v, want ErrNotFound", err)
	}
	// The upload is still there and can be completed without the small part.
	if us := uploads(t, s, key); len(us) != 1 || us[0].UploadID != id {
		t.Fatalf("ListUploads after a refused Complete = %+v, want upload %s", us, id)
	}
	complete(t, s, key, id, []objstore.Part{parts[0], parts[2]}, append(randomBytes(1, min), randomBytes(3, 10)...))
}

func testInvalidParts(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	min := int(s.MinPartSize())
	key := "invalid/parts"
	id := start(t, s, key)
	parts := upload(t, s, key, id, 1, randomBytes(1, min), randomBytes(2, 100))
	bad := map[string][]objstore.Part{
		"no parts":       nil,
		"descending":     {parts[1], parts[0]},
		"repeated":       {parts[0], parts[0]},
		"unknown number": {parts[0], {Number: 3, ETag: parts[1].ETag, Size: 100}},
		"wrong ETag":     {parts[0], {Number: 2, ETag: parts[0].ETag, Size: 100}},
	}
	for name, ps := range bad {
		if _, err := s.CompleteUpload(ctx, key, id, ps); !errors.Is(err, objstore.ErrInvalidPart) {
			t.Errorf("CompleteUpload with %s = %v, want ErrInvalidPart", name, err)
		}
	}
	for _, n := range []int{0, -1, objstore.MaxPartNumber + 1} {
		if _, err := s.UploadPart(ctx, key, id, n, bytes.NewReader([]byte("x")), 1); !errors.Is(err, objstore.ErrInvalidPart) {
			t.Errorf("UploadPart number %d = %v, want ErrInvalidPart", n, err)
		}
	}
	complete(t, s, key, id, parts, append(randomBytes(1, min), randomBytes(2, 100)...))
}

func testReplacePart(t *testing.T, s objstore.Store) {
	key := "replace/part"
	id := start(t, s, key)
	first := upload(t, s, key, id, 1, []byte("first version"))
	second := upload(t, s, key, id, 1, []byte("second"))
	if first[0].ETag == second[0].ETag {
		t.Fatalf("different content, same ETag %q", first[0].ETag)
	}
	parts, err := s.ListParts(context.Background(), key, id)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(parts, second) {
		t.Fatalf("ListParts after replacing part 1 = %+v, want %+v", parts, second)
	}
	complete(t, s, key, id, second, []byte("second"))
}

func testListUploads(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	idA := start(t, s, "u/a")
	idB := start(t, s, "u/b")
	idB2 := start(t, s, "u/b") // two uploads to one key are two uploads
	idV := start(t, s, "v/c")
	us := uploads(t, s, "u/")
	if len(us) != 3 || us[0].Key != "u/a" || us[0].UploadID != idA || us[1].Key != "u/b" || us[2].Key != "u/b" {
		t.Fatalf("ListUploads(u/) = %+v, want u/a, u/b, u/b", us)
	}
	if ids := []string{us[1].UploadID, us[2].UploadID}; !slices.Contains(ids, idB) || !slices.Contains(ids, idB2) {
		t.Fatalf("ListUploads(u/) ids for u/b = %q, want %s and %s", ids, idB, idB2)
	}
	for _, u := range us {
		if u.Initiated.IsZero() {
			t.Fatalf("upload %+v has no initiation time", u)
		}
	}
	if all := uploads(t, s, ""); len(all) != 4 {
		t.Fatalf("ListUploads(\"\") = %+v, want 4", all)
	}
	if none := uploads(t, s, "w"); len(none) != 0 {
		t.Fatalf("ListUploads(w) = %+v", none)
	}

	complete(t, s, "u/a", idA, upload(t, s, "u/a", idA, 1, []byte("a")), []byte("a"))
	if err := s.AbortUpload(ctx, "u/b", idB); err != nil {
		t.Fatalf("AbortUpload: %v", err)
	}
	us = uploads(t, s, "")
	if len(us) != 2 || us[0].UploadID != idB2 || us[1].UploadID != idV {
		t.Fatalf("ListUploads after a Complete and an Abort = %+v, want %s and %s", us, idB2, idV)
	}
	// A finished upload is gone for every method.
	for _, c := range []struct{ key, id string }{{"u/a", idA}, {"u/b", idB}} {
		if _, err := s.ListParts(ctx, c.key, c.id); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("ListParts of finished upload %s = %v, want ErrNotFound", c.key, err)
		}
		if _, err := s.UploadPart(ctx, c.key, c.id, 1, bytes.NewReader([]byte("x")), 1); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("UploadPart to finished upload %s = %v, want ErrNotFound", c.key, err)
		}
		if err := s.AbortUpload(ctx, c.key, c.id); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("AbortUpload of finished upload %s = %v, want ErrNotFound", c.key, err)
		}
	}
	// An aborted upload leaves no object.
	if _, err := s.Stat(ctx, "u/b"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Stat(u/b) after Abort = %v, want ErrNotFound", err)
	}
	for _, c := range []struct{ key, id string }{{"u/b", idB2}, {"v/c", idV}} {
		if err := s.AbortUpload(ctx, c.key, c.id); err != nil {
			t.Fatal(err)
		}
	}
	if us := uploads(t, s, ""); len(us) != 0 {
		t.Fatalf("ListUploads after aborting all = %+v", us)
	}
}

func testListParts(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	key := "list/parts"
	id := start(t, s, key)
	parts, err := s.ListParts(ctx, key, id)
	if err != nil || len(parts) != 0 {
		t.Fatalf("ListParts of a new upload = %+v, %v; want none", parts, err)
	}
	p3 := upload(t, s, key, id, 3, []byte("three"))
	p1 := upload(t, s, key, id, 1, []byte("one"))
	want := append(p1, p3...)
	parts, err = s.ListParts(ctx, key, id)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(parts, want) {
		t.Fatalf("ListParts = %+v, want %+v", parts, want)
	}
	// The upload id belongs to its key.
	if _, err := s.ListParts(ctx, "list/other", id); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("ListParts with another key = %v, want ErrNotFound", err)
	}
	if _, err := s.ListParts(ctx, key, "no-such-upload"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("ListParts with an unknown id = %v, want ErrNotFound", err)
	}
	if err := s.AbortUpload(ctx, key, id); err != nil {
		t.Fatal(err)
	}
}

// testResume does what a node does after a restart: it finds an upload it
// began but holds no handle for, lists its parts, adds more and completes.
func testResume(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	min := int(s.MinPartSize())
	key := "org/2026/12/07/call-9/customer.webm"
	data := randomBytes(42, 3*min+12345)
	func() { // the first "process": begins and uploads two parts, then is gone
		id := start(t, s, key)
		upload(t, s, key, id, 1, data[:min], data[min:2*min])
	}()

	us := uploads(t, s, "org/")
	if len(us) != 1 || us[0].Key != key {
		t.Fatalf("ListUploads after the restart = %+v, want one upload to %s", us, key)
	}
	id := us[0].UploadID
	parts, err := s.ListParts(ctx, key, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 || parts[0].Number != 1 || parts[1].Number != 2 || parts[0].Size != int64(min) || parts[1].Size != int64(min) {
		t.Fatalf("ListParts after the restart = %+v, want parts 1 and 2 of %d bytes", parts, min)
	}
	parts = append(parts, upload(t, s, key, id, 3, data[2*min:3*min], data[3*min:])...)
	complete(t, s, key, id, parts, data)
	if us := uploads(t, s, ""); len(us) != 0 {
		t.Fatalf("ListUploads after the resumed Complete = %+v", us)
	}
}

func testConcurrentUploads(t *testing.T, s objstore.Store) {
	ctx := context.Background()
	min := int(s.MinPartSize())
	const n = 4
	want := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		want[i] = randomBytes(uint64(100+i), min+1000*i+1)
		wg.Go(func() {
			key := fmt.Sprintf("concurrent/%d", i)
			errs[i] = func() error {
				id, err := s.StartUpload(ctx, key, "")
				if err != nil {
					return err
				}
				var parts []objstore.Part
				for j, c := range [][]byte{want[i][:min], want[i][min:]} {
					p, err := s.UploadPart(ctx, key, id, j+1, bytes.NewReader(c), int64(len(c)))
					if err != nil {
						return err
					}
					parts = append(parts, p)
				}
				_, err = s.CompleteUpload(ctx, key, id, parts)
				return err
			}()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		checkBytes(t, fmt.Sprintf("concurrent/%d", i), get(t, s, fmt.Sprintf("concurrent/%d", i)), want[i])
	}
	if got := list(t, s, "concurrent/"); len(got) != n {
		t.Fatalf("List(concurrent/) = %q, want %d objects", got, n)
	}
}
