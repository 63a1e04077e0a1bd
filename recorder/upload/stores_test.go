// This file holds the two real stores the tests run against and the way
// each is taken down: the local store behind a switch that fails its calls,
// and a versitygw process that is killed and restarted.

package upload_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/helpcaster/helpcaster/internal/s3test"
	"github.com/helpcaster/helpcaster/objstore"
)

// backend is a real store and a way to cut it off.
type backend struct {
	store objstore.Store
	down  func()
	up    func(t *testing.T)
}

var backends = []struct {
	name string
	open func(t *testing.T) backend
}{
	{"local", openLocal},
	{"s3", openS3},
}

// eachBackend runs test as a subtest against each store.
func eachBackend(t *testing.T, test func(t *testing.T, be backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b.open(t)) })
	}
}

func openLocal(t *testing.T) backend {
	s, err := objstore.Local(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	sw := &switchedStore{Store: s}
	return backend{store: sw, down: func() { sw.off.Store(true) }, up: func(*testing.T) { sw.off.Store(false) }}
}

func openS3(t *testing.T) backend {
	s, srv := openS3Store(t)
	return backend{store: s, down: srv.Stop, up: func(t *testing.T) { srv.Restart(t) }}
}

func openS3Store(t testing.TB) (*objstore.S3Store, *s3test.Server) {
	srv := s3test.Start(t)
	s, err := objstore.NewS3(objstore.S3Config{
		Endpoint:  srv.Endpoint(),
		Bucket:    srv.Bucket,
		Region:    s3test.Region,
		PathStyle: true,
		AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, srv
}

var errOutage = errors.New("test: storage unreachable")

// switchedStore is a real store whose calls fail while off is set, as a
// store behind a dead network would.
type switchedStore struct {
	objstore.Store
	off atomic.Bool
}

func (s *switchedStore) check() error {
	if s.off.Load() {
		return errOutage
	}
	return nil
}

func (s *switchedStore) UploadPart(ctx context.Context, key, id string, n int, body io.Reader, size int64) (objstore.Part, error) {
	if err := s.check(); err != nil {
		return objstore.Part{}, err
	}
	return s.Store.UploadPart(ctx, key, id, n, body, size)
}

func (s *switchedStore) CompleteUpload(ctx context.Context, key, id string, parts []objstore.Part) (objstore.ObjectInfo, error) {
	if err := s.check(); err != nil {
		return objstore.ObjectInfo{}, err
	}
	return s.Store.CompleteUpload(ctx, key, id, parts)
}

func (s *switchedStore) AbortUpload(ctx context.Context, key, id string) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.Store.AbortUpload(ctx, key, id)
}

func (s *switchedStore) ListParts(ctx context.Context, key, id string) ([]objstore.Part, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return s.Store.ListParts(ctx, key, id)
}

func (s *switchedStore) StartUpload(ctx context.Context, key, contentType string) (string, error) {
	if err := s.check(); err != nil {
		return "", err
	}
	return s.Store.StartUpload(ctx, key, contentType)
}
