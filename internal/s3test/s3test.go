// Package s3test runs a private S3-compatible server for tests: a versitygw
// process (posix backend) on a free loopback port, storing into a temporary
// directory, with its own random root credentials and one bucket, stopped
// when the test ends.
//
// The binary is looked up in the repository's bin/versitygw-<version>/
// (where scripts/install-test-deps.sh builds it), then on PATH. When it is
// missing the test is skipped, unless the environment requires S3 (CI=true,
// or HELPCASTER_REQUIRE_S3 set to any non-empty value): then it fails.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/internal/testproc"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const (
	// Version is the versitygw release the tests run; scripts/install-test-deps.sh
	// builds the same one.
	Version = "v1.8.0"
	// startTimeout bounds how long a started server may take to accept a
	// bucket.
	startTimeout = 20 * time.Second
	// Region is the region the server is told it is in.
	Region = "us-east-1"
)

// Server is a private versitygw process.
type Server struct {
	// AccessKey and SecretKey are the server's root credentials.
	AccessKey, SecretKey string
	// Bucket exists, empty, when Start returns.
	Bucket string

	bin  string
	dir  string
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error // receives cmd.Wait's result
	log    string     // path of the server's output
	// hold keeps the port of a stopped server until Restart, so that no
	// other process takes it and answers in its place.
	hold *testproc.PortHold
}

// Required reports whether the environment demands a real S3 server for
// tests: CI=true, or HELPCASTER_REQUIRE_S3 set (to any non-empty value).
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("HELPCASTER_REQUIRE_S3") != ""
}

// Start starts a private versitygw with one empty bucket and stops it when t
// ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findBinary()
	if err != nil {
		if Required() {
			t.Fatalf("s3test: %v, and S3 is required here (CI or HELPCASTER_REQUIRE_S3); run scripts/install-test-deps.sh to build it", err)
		}
		t.Skipf("s3test: %v; skipping. Build it with scripts/install-test-deps.sh, or set HELPCASTER_REQUIRE_S3=1 to make this a failure", err)
	}
	s := &Server{
		AccessKey: "hc" + randomHex(8),
		SecretKey: randomHex(20),
		Bucket:    "hc-test",
		bin:       bin,
		dir:       t.TempDir(),
	}
	t.Cleanup(func() { s.stop(); s.releasePort() })
	// A free port may be taken between choosing it and the server binding
	// it: try a few.
	var lastErr error
	for range 5 {
		if s.port, err = testproc.FreePort(); err != nil {
			t.Fatalf("s3test: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("s3test: %v", lastErr)
	return nil
}

// Endpoint returns the server's host:port (plain HTTP, path-style buckets).
func (s *Server) Endpoint() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// findBinary returns the versitygw to run: the one the install script built
// in the repository's bin/, else one on PATH.
func findBinary() (string, error) {
	if root, err := repoRoot(); err == nil {
		p := filepath.Join(root, "bin", "versitygw-"+Version, "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath("versitygw")
	if err != nil {
		return "", fmt.Errorf("versitygw not found in bin/versitygw-%s/ nor in PATH", Version)
	}
	return p, nil
}

// repoRoot is the nearest directory above the working directory (a test's
// package directory) that holds go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// start runs versitygw on s.port and waits until it has made the bucket. On
// failure no process is left.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	data := filepath.Join(s.dir, "data-"+strconv.Itoa(s.port))
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	s.log = filepath.Join(s.dir, fmt.Sprintf("versitygw-%d.log", s.port))
	logFile, err := os.Create(s.log)
	if err != nil {
		return fmt.Errorf("create log: %w", err)
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(s.bin, "--port", s.Endpoint(), "--quiet", "posix", data)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.Dir = s.dir
	cmd.SysProcAttr = testproc.DieWithParent() // no orphan if the test binary is killed
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.cmd, s.exited = cmd, exited

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	err = s.makeBucket(ctx, exited)
	if err != nil {
		_ = cmd.Process.Kill()
		<-exited
		s.cmd, s.exited = nil, nil
		return fmt.Errorf("versitygw on port %d: %w: %s", s.port, err, testproc.Tail(s.log))
	}
	return nil
}

// makeBucket creates s.Bucket, retrying while the server starts.
func (s *Server) makeBucket(ctx context.Context, exited <-chan error) error {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	defer transport.CloseIdleConnections()
	c, err := minio.New(s.Endpoint(), &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       Region,
		BucketLookup: minio.BucketLookupPath,
		Transport:    transport,
	})
	if err != nil {
		return err
	}
	for {
		err = c.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: Region})
		if err == nil {
			return nil
		}
		// After Restart the bucket is already there.
		if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
			return nil
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("exited (%v) before it made a bucket", werr)
		case <-ctx.Done():
			return fmt.Errorf("no bucket within %v: %w", startTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop kills the server (SIGKILL) and waits for it to exit, as if the
// storage service went down. Its data directory stays for Restart, and so
// does its port: until then a connection to it is closed at once, and no
// other server can answer in its place. Stopping twice is harmless.
func (s *Server) Stop() {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold == nil {
		s.hold = testproc.HoldPort(s.Endpoint())
	}
}

func (s *Server) releasePort() {
	s.mu.Lock()
	h := s.hold
	s.hold = nil
	s.mu.Unlock()
	h.Release()
}

// Restart starts the server again on the same port with the same data
// directory and credentials, as after an outage. The port may be taken by
// another process meanwhile; then the test fails.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.stop()
	s.releasePort()
	if err := testproc.Retry(startTimeout, s.start); err != nil {
		t.Fatalf("s3test: restart on port %d: %v", s.port, err)
	}
}

// stop kills the process and waits for it. Safe to call when not running.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd, s.exited = nil, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
