package s3test_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"go.uber.org/goleak"

	"github.com/helpcaster/helpcaster/internal/s3test"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestStart: the server takes signed requests for its bucket, refuses a
// wrong secret, and is gone when the test that started it ends.
func TestStart(t *testing.T) {
	var endpoint string
	t.Run("server", func(t *testing.T) {
		srv := s3test.Start(t)
		endpoint = srv.Endpoint()
		ctx := context.Background()
		for _, c := range []struct {
			secret string
			ok     bool
		}{{srv.SecretKey, true}, {srv.SecretKey + "x", false}} {
			transport := http.DefaultTransport.(*http.Transport).Clone()
			cl, err := minio.New(endpoint, &minio.Options{
				Creds:        credentials.NewStaticV4(srv.AccessKey, c.secret, ""),
				Region:       s3test.Region,
				BucketLookup: minio.BucketLookupPath,
				Transport:    transport,
			})
			if err != nil {
				t.Fatal(err)
			}
			buckets, err := cl.ListBuckets(ctx)
			transport.CloseIdleConnections()
			if c.ok && (err != nil || len(buckets) != 1 || buckets[0].Name != srv.Bucket) {
				t.Fatalf("ListBuckets = %+v, %v; want [%s]", buckets, err, srv.Bucket)
			}
			if !c.ok && err == nil {
				t.Fatal("ListBuckets with a wrong secret succeeded")
			}
		}
	})
	if c, err := net.DialTimeout("tcp", endpoint, time.Second); err == nil {
		_ = c.Close()
		t.Fatalf("something still listens on %s after the test ended", endpoint)
	}
}

// TestInstallScriptVersion: the install script builds the version the
// harness looks for.
func TestInstallScriptVersion(t *testing.T) {
	b, err := os.ReadFile("../../scripts/install-test-deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	if want := "versitygw_version=" + s3test.Version + "\n"; !strings.Contains(string(b), want) {
		t.Fatalf("scripts/install-test-deps.sh does not set %q", strings.TrimSpace(want))
	}
}
