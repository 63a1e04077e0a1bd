// Tests of S3Store: the conformance suite against a real versitygw process,
// and what only a remote service can get wrong: credentials and URLs.
package objstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/helpcaster/helpcaster/internal/s3test"
	"github.com/helpcaster/helpcaster/objstore"
	"github.com/helpcaster/helpcaster/objstore/objstoretest"
)

func s3Config(srv *s3test.Server, prefix string) objstore.S3Config {
	return objstore.S3Config{
		Endpoint:  srv.Endpoint(),
		Bucket:    srv.Bucket,
		Prefix:    prefix,
		Region:    s3test.Region,
		PathStyle: true,
		AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey,
	}
}

func newS3(t *testing.T, cfg objstore.S3Config) *objstore.S3Store {
	t.Helper()
	s, err := objstore.NewS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestS3Conformance(t *testing.T) {
	srv := s3test.Start(t)
	var n atomic.Int64
	// Each store has its own prefix in the one bucket: keys under another
	// prefix must never show.
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		return newS3(t, s3Config(srv, fmt.Sprintf("run-%d", n.Add(1))))
	})
}

func TestS3Prefix(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	a := newS3(t, s3Config(srv, "/tenant-a/"))
	b := newS3(t, s3Config(srv, "tenant-b"))
	whole := newS3(t, s3Config(srv, ""))
	if err := a.Put(ctx, "k", strings.NewReader("a"), 1, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.StartUpload(ctx, "k", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "k"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("b sees a's object: %v", err)
	}
	if us, err := a.ListUploads(ctx, ""); err != nil || len(us) != 0 {
		t.Fatalf("a sees b's uploads: %+v, %v", us, err)
	}
	infos, err := whole.List(ctx, "")
	if err != nil || len(infos) != 1 || infos[0].Key != "tenant-a/k" {
		t.Fatalf("the whole bucket holds %+v, %v; want tenant-a/k", infos, err)
	}
	us, err := whole.ListUploads(ctx, "")
	if err != nil || len(us) != 1 || us[0].Key != "tenant-b/k" {
		t.Fatalf("the whole bucket's uploads are %+v, %v; want tenant-b/k", us, err)
	}
}

func TestS3WrongCredentials(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	good := newS3(t, s3Config(srv, ""))
	if err := good.Check(ctx); err != nil {
		t.Fatalf("Check with the right credentials: %v", err)
	}
	wrongSecret := s3Config(srv, "")
	wrongSecret.SecretKey = "not-the-secret-" + srv.SecretKey[:4]
	wrongKey := s3Config(srv, "")
	wrongKey.AccessKey = "nobody"
	for name, cfg := range map[string]objstore.S3Config{"wrong secret": wrongSecret, "unknown access key": wrongKey} {
		s := newS3(t, cfg)
		errs := map[string]error{"Check": s.Check(ctx)}
		errs["Put"] = s.Put(ctx, "k", strings.NewReader("x"), 1, "")
		_, errs["StartUpload"] = s.StartUpload(ctx, "k", "")
		for op, err := range errs {
			if err == nil {
				t.Fatalf("%s with %s succeeded", op, name)
			}
			msg := err.Error()
			if !errors.Is(err, objstore.ErrAccessDenied) || !strings.Contains(msg, "access denied") {
				t.Errorf("%s with %s: error %q does not say the credentials were refused", op, name, msg)
			}
			if strings.Contains(msg, cfg.SecretKey) || strings.Contains(msg, srv.SecretKey) {
				t.Errorf("%s with %s: error %q holds a secret", op, name, msg)
			}
			if errors.Is(err, objstore.ErrNotFound) {
				t.Errorf("%s with %s: refused credentials reported as ErrNotFound", op, name)
			}
		}
	}
	missing := s3Config(srv, "")
	missing.Bucket = "no-such-bucket"
	if err := newS3(t, missing).Check(ctx); err == nil || !strings.Contains(err.Error(), "no-such-bucket") {
		t.Errorf("Check of a missing bucket = %v, want an error naming it", err)
	}
}

func TestNewS3Config(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	base := objstore.S3Config{Endpoint: "127.0.0.1:9", Bucket: "b", AccessKey: "k", SecretKey: "s"}
	bad := map[string]func(c *objstore.S3Config){
		"no endpoint":     func(c *objstore.S3Config) { c.Endpoint = "" },
		"endpoint scheme": func(c *objstore.S3Config) { c.Endpoint = "http://127.0.0.1:9" },
		"no bucket":       func(c *objstore.S3Config) { c.Bucket = "" },
		"bad prefix":      func(c *objstore.S3Config) { c.Prefix = "a/../b" },
		"long prefix":     func(c *objstore.S3Config) { c.Prefix = strings.Repeat("p/", 129) },
		"no credentials":  func(c *objstore.S3Config) { c.AccessKey, c.SecretKey = "", "" },
		"no secret":       func(c *objstore.S3Config) { c.SecretKey = "" },
	}
	for name, change := range bad {
		c := base
		change(&c)
		if s, err := objstore.NewS3(c); err == nil {
			_ = s.Close()
			t.Errorf("NewS3 with %s succeeded", name)
		}
	}
	// Credentials from the environment.
	t.Setenv("AWS_ACCESS_KEY_ID", "env-key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
	c := base
	c.AccessKey, c.SecretKey = "", ""
	s, err := objstore.NewS3(c)
	if err != nil {
		t.Fatalf("NewS3 with credentials from the environment: %v", err)
	}
	_ = s.Close()
}

func TestS3EnvCredentials(t *testing.T) {
	srv := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", s3test.Region)
	cfg := s3Config(srv, "")
	cfg.AccessKey, cfg.SecretKey, cfg.Region = "", "", ""
	if err := newS3(t, cfg).Check(context.Background()); err != nil {
		t.Fatalf("Check with credentials from the environment: %v", err)
	}
}

func TestParseS3URL(t *testing.T) {
	good := []struct{ url, bucket, prefix string }{
		{"s3://bucket", "bucket", ""},
		{"s3://bucket/", "bucket", ""},
		{"s3://bucket/recordings", "bucket", "recordings"},
		{"s3://my-bucket.example/a/b/", "my-bucket.example", "a/b"},
	}
	for _, g := range good {
		b, p, err := objstore.ParseS3URL(g.url)
		if err != nil || b != g.bucket || p != g.prefix {
			t.Errorf("ParseS3URL(%q) = %q, %q, %v; want %q, %q", g.url, b, p, err, g.bucket, g.prefix)
		}
	}
	bad := []struct{ url, says string }{
		{"", "scheme"},
		{"bucket/prefix", "scheme"},
		{"https://bucket/prefix", "scheme"},
		{"s3://", "no bucket"},
		{"s3:///prefix", "no bucket"},
		{"s3://key:hunter2@bucket/p", "only s3://bucket/prefix"},
		{"s3://bucket:9000/p", "only s3://bucket/prefix"},
		{"s3://bucket/p?x=1", "only s3://bucket/prefix"},
		{"s3://bucket/p#f", "only s3://bucket/prefix"},
		{"s3://bucket/a//b", "prefix"},
		{"s3://bucket/../b", "prefix"},
		{"s3://bucket/a b", "prefix"},
		{"s3://bucket/" + strings.Repeat("p", objstore.MaxPrefixLen+1), "prefix longer"},
		{"s3:bucket", "only s3://bucket/prefix"},
		{"s3://bu%zz", "s3 URL"},
	}
	for _, b := range bad {
		_, _, err := objstore.ParseS3URL(b.url)
		if err == nil || !strings.Contains(err.Error(), b.says) {
			t.Errorf("ParseS3URL(%q) = %v, want an error saying %q", b.url, err, b.says)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseS3URL(%q): error %q holds the password", b.url, err)
		}
	}
}
