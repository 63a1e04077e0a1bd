// This file holds LocalStore's objects: Put, Get, Stat, List, Delete. The
// store's state is the directory itself; a LocalStore holds only an open
// os.Root on it, which the kernel-side lookups of os.Root keep every path
// inside (no "..", absolute path or symlink leads out of it).

package objstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
)

const (
	filePerm = 0o640
	dirPerm  = 0o750
	// tempPrefix begins the names of files being written; keys never have
	// a segment that begins with '.', so these never collide with objects
	// and List never shows them.
	tempPrefix = ".tmp-"
)

// LocalStore is a Store on a local directory. Objects are plain files at
// their key's path, so an operator can read them directly. Writes are
// atomic: a temporary file beside the object, fsynced, renamed over it, then
// the directory fsynced. Multipart uploads live in the hidden directory
// .uploads (see local_upload.go).
//
// Unlike S3, a key cannot be both an object and a prefix of other keys
// ("a" and "a/b"): Put refuses the second with an error. Content types are
// not kept. Files left by a crash (temporary files, half-begun uploads) are
// hidden names that List and ListUploads skip; nothing removes them yet.
type LocalStore struct {
	dir  string
	root *os.Root
}

var _ Store = (*LocalStore)(nil)

// Local opens (creating it if needed) a local store on dir.
func Local(dir string) (*LocalStore, error) {
	if dir == "" {
		return nil, errors.New("objstore: local store: no directory given")
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("objstore: local store: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("objstore: local store: %w", err)
	}
	return &LocalStore{dir: dir, root: root}, nil
}

// Close closes the store's directory handle.
func (s *LocalStore) Close() error { return s.root.Close() }

// MinPartSize returns MinPartSize, as S3 does.
func (s *LocalStore) MinPartSize() int64 { return MinPartSize }

// Put implements Store.
func (s *LocalStore) Put(ctx context.Context, key string, body io.Reader, size int64, contentType string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	err := s.writeObject(key, func(f *os.File) error {
		_, err := copyExact(f, body, size)
		return err
	})
	if err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	return nil
}

// Get implements Store.
func (s *LocalStore) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return nil, ObjectInfo{}, err
	}
	f, err := s.root.Open(key)
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("objstore: get %s: %w", key, notFound(err))
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fs.ErrNotExist
	}
	if err != nil {
		_ = f.Close()
		return nil, ObjectInfo{}, fmt.Errorf("objstore: get %s: %w", key, notFound(err))
	}
	return f, objectInfo(key, fi), nil
}

// Stat implements Store.
func (s *LocalStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	fi, err := s.root.Stat(key)
	if err == nil && !fi.Mode().IsRegular() {
		err = fs.ErrNotExist
	}
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("objstore: stat %s: %w", key, notFound(err))
	}
	return objectInfo(key, fi), nil
}

// List implements Store.
func (s *LocalStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	start := "."
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	var out []ObjectInfo
	err := fs.WalkDir(s.root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(notFound(err), ErrNotFound) {
				return fs.SkipAll // nothing under this prefix
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == start && d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") { // uploads, temporary files
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if !strings.HasPrefix(p+"/", prefix) && !strings.HasPrefix(prefix, p+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(p, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // deleted meanwhile
				return nil
			}
			return err
		}
		out = append(out, objectInfo(p, fi))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: list %q: %w", prefix, err)
	}
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Delete implements Store. Directories left empty are removed.
func (s *LocalStore) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	fi, err := s.root.Lstat(key)
	if err != nil {
		if errors.Is(notFound(err), ErrNotFound) {
			return nil
		}
		return fmt.Errorf("objstore: delete %s: %w", key, err)
	}
	if fi.IsDir() { // a prefix of other keys, not an object
		return nil
	}
	if err := s.root.Remove(key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("objstore: delete %s: %w", key, err)
	}
	dir := path.Dir(key)
	if err := s.syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("objstore: delete %s: %w", key, err)
	}
	// Remove fails on a directory that is not empty, which ends the walk.
	for ; dir != "."; dir = path.Dir(dir) {
		if s.root.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// writeObject writes key atomically: fill writes a temporary file in key's
// directory, which is then fsynced and renamed over key, and the directory
// fsynced. On failure the temporary file is removed and key is unchanged.
func (s *LocalStore) writeObject(key string, fill func(*os.File) error) error {
	dir := path.Dir(key)
	f, tmp, err := s.createObjectTemp(dir)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			_ = f.Close()
			_ = s.root.Remove(tmp)
		}
	}()
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := s.root.Rename(tmp, key); err != nil {
		_ = s.root.Remove(tmp)
		done = true
		if fi, serr := s.root.Lstat(key); serr == nil && fi.IsDir() {
			return fmt.Errorf("key is a prefix of other objects (the local store cannot hold both): %w", err)
		}
		return err
	}
	done = true
	return s.syncDir(dir)
}

// createObjectTemp creates a temporary file in dir, making dir first. A
// concurrent Delete may remove an empty dir between the two: retry then.
func (s *LocalStore) createObjectTemp(dir string) (*os.File, string, error) {
	var err error
	for range 5 {
		if dir != "." {
			if err = s.root.MkdirAll(dir, dirPerm); err != nil {
				if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
					return nil, "", fmt.Errorf("a parent of the key is an object (the local store cannot hold both): %w", err)
				}
				return nil, "", err
			}
		}
		var f *os.File
		var tmp string
		f, tmp, err = s.createTemp(dir)
		if err == nil {
			return f, tmp, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, "", err
		}
	}
	return nil, "", err
}

// createTemp creates a new temporary file in dir, which must exist.
func (s *LocalStore) createTemp(dir string) (*os.File, string, error) {
	name := path.Join(dir, tempPrefix+randomHex(8))
	f, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return nil, "", err
	}
	return f, name, nil
}

// syncDir fsyncs a directory, so that renames and removals in it survive a
// crash.
func (s *LocalStore) syncDir(dir string) error {
	d, err := s.root.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyExact copies exactly size bytes from src to dst.
func copyExact(dst io.Writer, src io.Reader, size int64) (int64, error) {
	if size < 0 {
		return 0, fmt.Errorf("negative size %d", size)
	}
	n, err := io.Copy(dst, io.LimitReader(src, size))
	if err != nil {
		return n, fmt.Errorf("write: %w", err)
	}
	if n < size {
		return n, fmt.Errorf("body ended after %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
	}
	return n, nil
}

// notFound maps the file system's "no such file" (also a path through a
// file, ENOTDIR) to ErrNotFound, keeping err's text.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

func objectInfo(key string, fi fs.FileInfo) ObjectInfo {
	return ObjectInfo{Key: key, Size: fi.Size(), LastModified: fi.ModTime()}
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
