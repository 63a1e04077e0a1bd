// Package objstore is the object storage that recordings are written to: one
// Store interface with two implementations, a local directory (LocalStore,
// the embedded default) and any S3-compatible service (S3Store). Both pass
// the conformance suite in objstore/objstoretest.
//
// Objects are written in one of two ways. Put stores a whole small object
// (a manifest, a chat transcript): readers see all of it or nothing.
// Multipart uploads (StartUpload, UploadPart, CompleteUpload) stream a large
// object as it is produced; an upload outlives the process that began it, so
// that after a restart ListUploads and ListParts let a node finish or abort
// what an interrupted recorder left. Every part but the last must be at least
// MinPartSize bytes (S3's rule, enforced by both stores so that code tested on
// disk works on S3).
//
// This file holds the interface and its types; the stores own their state.
package objstore

import (
	"context"
	"errors"
	"io"
	"time"
)

// Errors every Store returns, wrapped with context; test with errors.Is.
var (
	// ErrNotFound: no such object, or no such upload (never begun, or
	// completed or aborted since).
	ErrNotFound = errors.New("objstore: not found")
	// ErrInvalidKey: a key or prefix that ValidateKey or ValidatePrefix
	// refuses.
	ErrInvalidKey = errors.New("objstore: invalid key")
	// ErrPartTooSmall: CompleteUpload was given a part, other than the last,
	// smaller than MinPartSize. The upload is left as it was.
	ErrPartTooSmall = errors.New("objstore: part too small")
	// ErrInvalidPart: CompleteUpload was given an empty part list, parts out
	// of ascending order, or a part (number and ETag) that was not uploaded;
	// or UploadPart a part number outside 1..MaxPartNumber.
	ErrInvalidPart = errors.New("objstore: invalid part")
	// ErrAccessDenied: the service refused the credentials or their
	// permissions (S3 only).
	ErrAccessDenied = errors.New("objstore: access denied (check the access key, secret key and their permissions)")
)

const (
	// MinPartSize is the smallest size of every part of a multipart upload
	// but the last: 5 MiB, S3's limit.
	MinPartSize = 5 << 20
	// MaxPartNumber is the highest part number, S3's limit.
	MaxPartNumber = 10000
)

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key          string
	Size         int64
	LastModified time.Time
	// ETag is the store's opaque entity tag where it has one for free: S3's
	// ETag (an MD5 for a Put, a composite for a multipart upload); empty
	// for the local store. It is not a sha256 of the content.
	ETag string
}

// Part is one uploaded part of a multipart upload. CompleteUpload takes the
// parts as UploadPart or ListParts returned them.
type Part struct {
	Number int
	ETag   string
	Size   int64
}

// UploadInfo is a multipart upload that was begun and neither completed nor
// aborted.
type UploadInfo struct {
	Key      string
	UploadID string
	// Initiated is when the upload was begun, as the store recorded it.
	Initiated time.Time
}

// Store is an object store. All methods are safe for concurrent use. Keys
// must pass ValidateKey and list prefixes ValidatePrefix; otherwise the
// methods return ErrInvalidKey and touch nothing.
type Store interface {
	// Put stores body, exactly size bytes, as key, replacing any object
	// there. Readers see the old object or the whole new one, never part.
	Put(ctx context.Context, key string, body io.Reader, size int64, contentType string) error
	// Get opens key for reading; the caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error)
	// Stat describes key.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List returns every object whose key begins with prefix ("" for all),
	// in ascending byte order of keys. Uploads in progress are not objects.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error

	// StartUpload begins a multipart upload to key and returns its id.
	StartUpload(ctx context.Context, key, contentType string) (uploadID string, err error)
	// UploadPart stores part number partNumber (1..MaxPartNumber) of an
	// upload, exactly size bytes, replacing a part of the same number.
	UploadPart(ctx context.Context, key, uploadID string, partNumber int, body io.Reader, size int64) (Part, error)
	// CompleteUpload makes the object key the concatenation of parts, in
	// ascending part number order, atomically; the upload is then gone.
	CompleteUpload(ctx context.Context, key, uploadID string, parts []Part) (ObjectInfo, error)
	// AbortUpload discards an upload and its parts.
	AbortUpload(ctx context.Context, key, uploadID string) error
	// ListUploads returns the uploads begun to keys beginning with prefix
	// and neither completed nor aborted, by key, then by initiation time.
	ListUploads(ctx context.Context, prefix string) ([]UploadInfo, error)
	// ListParts returns an upload's parts in ascending part number order.
	ListParts(ctx context.Context, key, uploadID string) ([]Part, error)
	// MinPartSize is the smallest allowed size of a part that is not the
	// last.
	MinPartSize() int64

	// Close releases what the store holds (files, idle connections).
	Close() error
}
