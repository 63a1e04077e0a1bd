// This file holds LocalStore's multipart uploads. Each upload is a directory
// .uploads/<id>/ holding meta.json (key, content type, when begun) and one
// file per part named <number>-<etag>; the directory appears whole (it is
// made under a hidden name and renamed). CompleteUpload concatenates the
// parts into a temporary file beside the object and renames it over the
// key. The state is the directory; nothing is kept in memory.

package objstore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	uploadsDir   = ".uploads"
	uploadMeta   = "meta.json"
	uploadIDLen  = 32 // hex digits
	partNameLen  = 5 + 1 + 8
	stagingIDTag = ".new-"
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// uploadMetaFile is the content of meta.json.
type uploadMetaFile struct {
	Key         string    `json:"key"`
	ContentType string    `json:"content_type,omitempty"`
	Initiated   time.Time `json:"initiated"`
}

// StartUpload implements Store.
func (s *LocalStore) StartUpload(ctx context.Context, key, contentType string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	id := randomHex(uploadIDLen / 2)
	if err := s.startUpload(id, uploadMetaFile{Key: key, ContentType: contentType, Initiated: time.Now().UTC()}); err != nil {
		return "", fmt.Errorf("objstore: start upload to %s: %w", key, err)
	}
	return id, nil
}

func (s *LocalStore) startUpload(id string, meta uploadMetaFile) error {
	b, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	if err := s.root.MkdirAll(uploadsDir, dirPerm); err != nil {
		return err
	}
	staging := path.Join(uploadsDir, stagingIDTag+id)
	if err := s.root.Mkdir(staging, dirPerm); err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			_ = s.root.RemoveAll(staging)
		}
	}()
	f, err := s.root.OpenFile(path.Join(staging, uploadMeta), os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := s.syncDir(staging); err != nil {
		return err
	}
	if err := s.root.Rename(staging, path.Join(uploadsDir, id)); err != nil {
		return err
	}
	ok = true
	return s.syncDir(uploadsDir)
}

// upload returns the directory and meta of upload id, which must be to key.
func (s *LocalStore) upload(key, id string) (string, uploadMetaFile, error) {
	var meta uploadMetaFile
	if !validUploadID(id) {
		return "", meta, fmt.Errorf("%w: no upload %q", ErrNotFound, id)
	}
	dir := path.Join(uploadsDir, id)
	b, err := s.root.ReadFile(path.Join(dir, uploadMeta))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", meta, fmt.Errorf("%w: no upload %s", ErrNotFound, id)
		}
		return "", meta, err
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return "", meta, fmt.Errorf("upload %s: read %s: %w", id, uploadMeta, err)
	}
	if meta.Key != key {
		return "", meta, fmt.Errorf("%w: no upload %s to this key", ErrNotFound, id)
	}
	return dir, meta, nil
}

func validUploadID(id string) bool {
	if len(id) != uploadIDLen {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// UploadPart implements Store.
func (s *LocalStore) UploadPart(ctx context.Context, key, uploadID string, partNumber int, body io.Reader, size int64) (Part, error) {
	if err := ValidateKey(key); err != nil {
		return Part{}, err
	}
	p, err := s.uploadPart(ctx, key, uploadID, partNumber, body, size)
	if err != nil {
		return Part{}, fmt.Errorf("objstore: upload part %d of %s: %w", partNumber, key, err)
	}
	return p, nil
}

func (s *LocalStore) uploadPart(ctx context.Context, key, id string, n int, body io.Reader, size int64) (Part, error) {
	if err := checkPartNumber(n); err != nil {
		return Part{}, err
	}
	dir, _, err := s.upload(key, id)
	if err != nil {
		return Part{}, err
	}
	if err := ctx.Err(); err != nil {
		return Part{}, err
	}
	f, tmp, err := s.createTemp(dir)
	if err != nil {
		return Part{}, notFound(err) // aborted meanwhile
	}
	defer func() { _ = s.root.Remove(tmp) }() // fails harmlessly once renamed
	h := crc32.New(crc32c)
	_, err = copyExact(io.MultiWriter(f, h), body, size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Part{}, err
	}
	etag := hex.EncodeToString(h.Sum(nil))
	name := partName(n, etag)
	if err := s.root.Rename(tmp, path.Join(dir, name)); err != nil {
		return Part{}, notFound(err)
	}
	// An earlier upload of the same part number is replaced.
	entries, err := fs.ReadDir(s.root.FS(), dir)
	if err != nil {
		return Part{}, notFound(err)
	}
	for _, e := range entries {
		if num, _, ok := parsePartName(e.Name()); ok && num == n && e.Name() != name {
			_ = s.root.Remove(path.Join(dir, e.Name()))
		}
	}
	if err := s.syncDir(dir); err != nil {
		return Part{}, notFound(err)
	}
	return Part{Number: n, ETag: etag, Size: size}, nil
}

func partName(n int, etag string) string { return fmt.Sprintf("%05d-%s", n, etag) }

func parsePartName(name string) (int, string, bool) {
	if len(name) != partNameLen || name[5] != '-' {
		return 0, "", false
	}
	n, err := strconv.Atoi(name[:5])
	if err != nil || n < 1 || n > MaxPartNumber {
		return 0, "", false
	}
	return n, name[6:], true
}

// ListParts implements Store.
func (s *LocalStore) ListParts(ctx context.Context, key, uploadID string) ([]Part, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	dir, _, err := s.upload(key, uploadID)
	if err == nil {
		var parts []Part
		parts, err = s.parts(dir)
		if err == nil {
			return parts, nil
		}
	}
	return nil, fmt.Errorf("objstore: list parts of %s: %w", key, err)
}

// parts lists the parts in an upload directory by number.
func (s *LocalStore) parts(dir string) ([]Part, error) {
	entries, err := fs.ReadDir(s.root.FS(), dir)
	if err != nil {
		return nil, notFound(err)
	}
	var parts []Part
	var times []time.Time // modification times, to pick the newer of two same-numbered parts
	for _, e := range entries {
		n, etag, ok := parsePartName(e.Name())
		if !ok {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // replaced meanwhile
		}
		p := Part{Number: n, ETag: etag, Size: fi.Size()}
		if len(parts) > 0 && parts[len(parts)-1].Number == n { // entries are sorted by name
			if fi.ModTime().After(times[len(times)-1]) {
				parts[len(parts)-1], times[len(times)-1] = p, fi.ModTime()
			}
			continue
		}
		parts = append(parts, p)
		times = append(times, fi.ModTime())
	}
	return parts, nil
}

// CompleteUpload implements Store.
func (s *LocalStore) CompleteUpload(ctx context.Context, key, uploadID string, parts []Part) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	if err := s.completeUpload(ctx, key, uploadID, parts); err != nil {
		return ObjectInfo{}, fmt.Errorf("objstore: complete upload to %s: %w", key, err)
	}
	return s.Stat(ctx, key)
}

func (s *LocalStore) completeUpload(ctx context.Context, key, id string, parts []Part) error {
	dir, _, err := s.upload(key, id)
	if err != nil {
		return err
	}
	if err := checkPartList(parts); err != nil {
		return err
	}
	have, err := s.parts(dir)
	if err != nil {
		return err
	}
	names := make([]string, len(parts))
	for i, p := range parts {
		j, found := slices.BinarySearchFunc(have, p.Number, func(h Part, n int) int { return h.Number - n })
		if !found || have[j].ETag != p.ETag {
			return fmt.Errorf("%w: part %d with ETag %q was not uploaded", ErrInvalidPart, p.Number, p.ETag)
		}
		if i < len(parts)-1 && have[j].Size < MinPartSize {
			return fmt.Errorf("%w: part %d is %d bytes, under %d (only the last part may be smaller)", ErrPartTooSmall, p.Number, have[j].Size, MinPartSize)
		}
		names[i] = path.Join(dir, partName(p.Number, p.ETag))
	}
	err = s.writeObject(key, func(f *os.File) error {
		for _, name := range names {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := s.appendFile(f, name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.root.RemoveAll(dir); err != nil {
		return fmt.Errorf("object written, but removing the upload: %w", err)
	}
	return s.syncDir(uploadsDir)
}

func (s *LocalStore) appendFile(dst *os.File, name string) error {
	src, err := s.root.Open(name)
	if err != nil {
		return notFound(err)
	}
	defer src.Close()
	if _, err := io.Copy(dst, src); err != nil {
		return fmt.Errorf("copy %s: %w", path.Base(name), err)
	}
	return nil
}

// AbortUpload implements Store.
func (s *LocalStore) AbortUpload(ctx context.Context, key, uploadID string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	dir, _, err := s.upload(key, uploadID)
	if err == nil {
		err = s.root.RemoveAll(dir)
	}
	if err == nil {
		err = s.syncDir(uploadsDir)
	}
	if err != nil {
		return fmt.Errorf("objstore: abort upload to %s: %w", key, err)
	}
	return nil
}

// ListUploads implements Store.
func (s *LocalStore) ListUploads(ctx context.Context, prefix string) ([]UploadInfo, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(s.root.FS(), uploadsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("objstore: list uploads: %w", err)
	}
	var out []UploadInfo
	for _, e := range entries {
		if !e.IsDir() || !validUploadID(e.Name()) {
			continue // staging directories of uploads being begun
		}
		b, err := s.root.ReadFile(path.Join(uploadsDir, e.Name(), uploadMeta))
		if errors.Is(err, fs.ErrNotExist) {
			continue // completed or aborted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("objstore: list uploads: %w", err)
		}
		var meta uploadMetaFile
		if err := json.Unmarshal(b, &meta); err != nil {
			return nil, fmt.Errorf("objstore: list uploads: upload %s: %w", e.Name(), err)
		}
		if strings.HasPrefix(meta.Key, prefix) {
			out = append(out, UploadInfo{Key: meta.Key, UploadID: e.Name(), Initiated: meta.Initiated})
		}
	}
	slices.SortFunc(out, func(a, b UploadInfo) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		if c := a.Initiated.Compare(b.Initiated); c != 0 {
			return c
		}
		return strings.Compare(a.UploadID, b.UploadID)
	})
	return out, nil
}
