// This file holds S3Store, a Store on any S3-compatible service, built on
// minio-go's Core (the plain S3 calls, including the multipart ones). The
// store holds no state of its own beyond the client and its connection pool;
// everything lives in the bucket.
//
// minio-go rather than aws-sdk-go-v2: one module instead of a dozen, made
// for S3-compatible services first (custom endpoints, path-style buckets),
// and its Core exposes each multipart call (initiate, upload part, list
// parts, list uploads, complete, abort) one to one, which resuming an
// interrupted upload needs; aws-sdk-go-v2 also now sends flexible checksums
// by default, which several S3-compatible servers refuse without extra
// settings.

package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config says where and how to reach an S3-compatible store.
type S3Config struct {
	// Endpoint is the service's host[:port], without a scheme
	// ("s3.eu-west-1.amazonaws.com", "127.0.0.1:7070").
	Endpoint string
	Bucket   string
	// Prefix is put before every key ("recordings" stores key k as
	// "recordings/k"). Leading and trailing '/' are ignored; at most
	// MaxPrefixLen bytes of valid key segments.
	Prefix string
	// Region; when empty, AWS_REGION, else us-east-1.
	Region string
	// PathStyle addresses the bucket as endpoint/bucket rather than
	// bucket.endpoint (most self-hosted services need it).
	PathStyle bool
	// Secure uses HTTPS.
	Secure bool
	// AccessKey, SecretKey and SessionToken; when AccessKey is empty, all
	// three come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
	// AWS_SESSION_TOKEN.
	AccessKey    string
	SecretKey    string
	SessionToken string
}

// S3Store is a Store on an S3-compatible service.
type S3Store struct {
	core      *minio.Core
	transport *http.Transport
	bucket    string
	prefix    string // "" or ends with '/'
}

var _ Store = (*S3Store)(nil)

// NewS3 returns a store on cfg's bucket. It does not contact the service;
// Check does.
func NewS3(cfg S3Config) (*S3Store, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("objstore: s3: no endpoint given")
	}
	if strings.Contains(cfg.Endpoint, "://") || strings.Contains(cfg.Endpoint, "/") {
		return nil, fmt.Errorf("objstore: s3: endpoint %q must be host[:port] without a scheme or path (set Secure for HTTPS)", cfg.Endpoint)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("objstore: s3: no bucket given")
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if err := checkS3Prefix(prefix); err != nil {
		return nil, fmt.Errorf("objstore: s3: %w", err)
	}
	if prefix != "" {
		prefix += "/"
	}
	access, secret, token := cfg.AccessKey, cfg.SecretKey, cfg.SessionToken
	if access == "" {
		access, secret, token = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")
	}
	if access == "" || secret == "" {
		return nil, errors.New("objstore: s3: no credentials: give an access key and secret key, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	region := cfg.Region
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		region = "us-east-1"
	}
	lookup := minio.BucketLookupDNS
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	core, err := minio.NewCore(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(access, secret, token),
		Secure:       cfg.Secure,
		Region:       region,
		BucketLookup: lookup,
		Transport:    transport,
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: s3: %w", err)
	}
	return &S3Store{core: core, transport: transport, bucket: cfg.Bucket, prefix: prefix}, nil
}

// ParseS3URL splits "s3://bucket/prefix" into bucket and prefix (which may
// be empty; it is returned without leading or trailing '/').
func ParseS3URL(raw string) (bucket, prefix string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("objstore: s3 URL: %w", err)
	}
	if u.Scheme != "s3" {
		return "", "", fmt.Errorf("objstore: s3 URL %q: scheme must be s3 (s3://bucket/prefix)", raw)
	}
	if u.User != nil || u.Port() != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", "", fmt.Errorf("objstore: s3 URL %q: only s3://bucket/prefix is allowed (no credentials, port, query or fragment; the endpoint is configured apart)", redactURL(u))
	}
	if u.Host == "" {
		return "", "", fmt.Errorf("objstore: s3 URL %q: no bucket (s3://bucket/prefix)", raw)
	}
	prefix = strings.Trim(u.Path, "/")
	if err := checkS3Prefix(prefix); err != nil {
		return "", "", fmt.Errorf("objstore: s3 URL %q: %w", raw, err)
	}
	return u.Host, prefix, nil
}

// checkS3Prefix refuses a store prefix (without leading or trailing '/')
// that is not "" or a valid key of at most MaxPrefixLen bytes.
func checkS3Prefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > MaxPrefixLen {
		return fmt.Errorf("prefix longer than %d bytes", MaxPrefixLen)
	}
	if err := ValidateKey(prefix); err != nil {
		return fmt.Errorf("prefix: %w", err)
	}
	return nil
}

// redactURL renders u without a password.
func redactURL(u *url.URL) string { return u.Redacted() }

// Check verifies that the bucket exists and the credentials are accepted.
func (s *S3Store) Check(ctx context.Context) error {
	// A listing of one key, unlike HEAD bucket, carries the service's
	// reason when it refuses.
	it := s.core.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix, MaxKeys: 1})
	for oi := range it {
		if oi.Err != nil {
			if minio.ToErrorResponse(oi.Err).Code == "NoSuchBucket" {
				return fmt.Errorf("objstore: s3: bucket %q does not exist: %w", s.bucket, oi.Err)
			}
			return s.fail("check bucket", s.bucket, oi.Err)
		}
		break
	}
	return nil
}

// Close closes idle connections.
func (s *S3Store) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

// MinPartSize returns MinPartSize.
func (s *S3Store) MinPartSize() int64 { return MinPartSize }

// Put implements Store.
func (s *S3Store) Put(ctx context.Context, key string, body io.Reader, size int64, contentType string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("objstore: put %s: negative size %d", key, size)
	}
	_, err := s.core.PutObject(ctx, s.bucket, s.prefix+key, body, size, "", "", minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return s.fail("put", key, err)
	}
	return nil
}

// Get implements Store.
func (s *S3Store) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return nil, ObjectInfo{}, err
	}
	rc, oi, _, err := s.core.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, ObjectInfo{}, s.fail("get", key, err)
	}
	return rc, s.info(oi), nil
}

// Stat implements Store.
func (s *S3Store) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	oi, err := s.core.StatObject(ctx, s.bucket, s.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, s.fail("stat", key, err)
	}
	return s.info(oi), nil
}

// List implements Store.
func (s *S3Store) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx) // ends the iterator's work if we stop early
	defer cancel()
	var out []ObjectInfo
	for oi := range s.core.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if oi.Err != nil {
			return nil, s.fail("list", prefix, oi.Err)
		}
		out = append(out, s.info(oi))
	}
	return out, nil
}

// Delete implements Store.
func (s *S3Store) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	err := s.core.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{})
	if err != nil {
		if err = s.fail("delete", key, err); errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// StartUpload implements Store.
func (s *S3Store) StartUpload(ctx context.Context, key, contentType string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	id, err := s.core.NewMultipartUpload(ctx, s.bucket, s.prefix+key, minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return "", s.fail("start upload to", key, err)
	}
	return id, nil
}

// UploadPart implements Store.
func (s *S3Store) UploadPart(ctx context.Context, key, uploadID string, partNumber int, body io.Reader, size int64) (Part, error) {
	if err := ValidateKey(key); err != nil {
		return Part{}, err
	}
	op := fmt.Sprintf("upload part %d of", partNumber)
	if err := checkPartNumber(partNumber); err != nil {
		return Part{}, fmt.Errorf("objstore: %s %s: %w", op, key, err)
	}
	if uploadID == "" {
		return Part{}, fmt.Errorf("objstore: %s %s: %w: empty upload id", op, key, ErrNotFound)
	}
	if size < 0 {
		return Part{}, fmt.Errorf("objstore: %s %s: negative size %d", op, key, size)
	}
	p, err := s.core.PutObjectPart(ctx, s.bucket, s.prefix+key, uploadID, partNumber, body, size, minio.PutObjectPartOptions{})
	if err != nil {
		return Part{}, s.fail(op, key, err)
	}
	return Part{Number: p.PartNumber, ETag: trimETag(p.ETag), Size: p.Size}, nil
}

// CompleteUpload implements Store.
func (s *S3Store) CompleteUpload(ctx context.Context, key, uploadID string, parts []Part) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	if uploadID == "" {
		return ObjectInfo{}, fmt.Errorf("objstore: complete upload to %s: %w: empty upload id", key, ErrNotFound)
	}
	if err := checkPartList(parts); err != nil {
		return ObjectInfo{}, fmt.Errorf("objstore: complete upload to %s: %w", key, err)
	}
	cps := make([]minio.CompletePart, len(parts))
	for i, p := range parts {
		cps[i] = minio.CompletePart{PartNumber: p.Number, ETag: p.ETag}
	}
	if _, err := s.core.CompleteMultipartUpload(ctx, s.bucket, s.prefix+key, uploadID, cps, minio.PutObjectOptions{}); err != nil {
		return ObjectInfo{}, s.fail("complete upload to", key, err)
	}
	return s.Stat(ctx, key)
}

// AbortUpload implements Store.
func (s *S3Store) AbortUpload(ctx context.Context, key, uploadID string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if uploadID == "" {
		return fmt.Errorf("objstore: abort upload to %s: %w: empty upload id", key, ErrNotFound)
	}
	if err := s.core.AbortMultipartUpload(ctx, s.bucket, s.prefix+key, uploadID); err != nil {
		return s.fail("abort upload to", key, err)
	}
	return nil
}

// ListUploads implements Store.
func (s *S3Store) ListUploads(ctx context.Context, prefix string) ([]UploadInfo, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	var out []UploadInfo
	var keyMarker, idMarker string
	for {
		res, err := s.core.ListMultipartUploads(ctx, s.bucket, s.prefix+prefix, keyMarker, idMarker, "", 1000)
		if err != nil {
			return nil, s.fail("list uploads", prefix, err)
		}
		for _, u := range res.Uploads {
			out = append(out, UploadInfo{Key: strings.TrimPrefix(u.Key, s.prefix), UploadID: u.UploadID, Initiated: u.Initiated})
		}
		if !res.IsTruncated {
			return out, nil
		}
		if res.NextKeyMarker == "" && res.NextUploadIDMarker == "" {
			return nil, fmt.Errorf("objstore: list uploads %q: truncated listing without a marker", prefix)
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
}

// ListParts implements Store.
func (s *S3Store) ListParts(ctx context.Context, key, uploadID string) ([]Part, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if uploadID == "" {
		return nil, fmt.Errorf("objstore: list parts of %s: %w: empty upload id", key, ErrNotFound)
	}
	var out []Part
	marker := 0
	for {
		res, err := s.core.ListObjectParts(ctx, s.bucket, s.prefix+key, uploadID, marker, 1000)
		if err != nil {
			return nil, s.fail("list parts of", key, err)
		}
		for _, p := range res.ObjectParts {
			out = append(out, Part{Number: p.PartNumber, ETag: trimETag(p.ETag), Size: p.Size})
		}
		if !res.IsTruncated {
			return out, nil
		}
		if res.NextPartNumberMarker <= marker {
			return nil, fmt.Errorf("objstore: list parts of %s: truncated listing without progress", key)
		}
		marker = res.NextPartNumberMarker
	}
}

func (s *S3Store) info(oi minio.ObjectInfo) ObjectInfo {
	return ObjectInfo{
		Key:          strings.TrimPrefix(oi.Key, s.prefix),
		Size:         oi.Size,
		LastModified: oi.LastModified,
		ETag:         trimETag(oi.ETag),
	}
}

// trimETag removes the quotes S3 puts around ETags in some answers and not
// in others, so that equal ETags compare equal.
func trimETag(etag string) string { return strings.Trim(etag, `"`) }

// fail wraps a service error with the operation and key, mapping S3's error
// codes to this package's errors. The service's message carries no secret
// (S3 never echoes the secret key; request signatures are not in it).
func (s *S3Store) fail(op, key string, err error) error {
	resp := minio.ToErrorResponse(err)
	var class error
	switch resp.Code {
	case "NoSuchKey", "NoSuchUpload", "NotFound":
		class = ErrNotFound
	case "EntityTooSmall":
		class = ErrPartTooSmall
	case "InvalidPart", "InvalidPartOrder":
		class = ErrInvalidPart
	case "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "XAdminUserNotFound",
		"InvalidToken", "ExpiredToken", "InvalidSecurity":
		class = ErrAccessDenied
	}
	code := ""
	if resp.Code != "" {
		code = " (" + resp.Code + ")"
	}
	if class != nil {
		return fmt.Errorf("objstore: %s %s: %w: %w%s", op, key, class, err, code)
	}
	return fmt.Errorf("objstore: %s %s: %w%s", op, key, err, code)
}
