package upload_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/objstore"
	"github.com/helpcaster/helpcaster/recorder/upload"
)

// testConfig retries quickly so that a restored store is noticed at once.
// Its retry warnings, expected in outage tests, are dropped.
var testConfig = upload.Config{
	RetryMin:  20 * time.Millisecond,
	RetryMax:  300 * time.Millisecond,
	SyncEvery: 50 * time.Millisecond,
	Logger:    slog.New(slog.DiscardHandler),
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// chunkSizes are odd sizes a muxer might write, cycled.
var chunkSizes = []int{1, 4093, 65537, 7, 300001, 1 << 20, 12345}

// writeAll writes data in odd-sized chunks, each of which must return
// within a generous deadline even while storage is down.
func writeAll(t *testing.T, w io.Writer, data []byte) {
	t.Helper()
	for i := 0; len(data) > 0; i++ {
		n := min(chunkSizes[i%len(chunkSizes)], len(data))
		writeOne(t, w, data[:n])
		data = data[n:]
	}
}

func writeOne(t *testing.T, w io.Writer, p []byte) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := w.Write(p)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("write blocked for 10 s")
		<-done
	}
}

func newWriter(t *testing.T, ctx context.Context, store objstore.Store, key, spoolDir string, cfg upload.Config) *upload.Writer {
	t.Helper()
	w, err := upload.New(ctx, store, key, "video/webm", spoolDir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// checkObject: key holds exactly want.
func checkObject(t *testing.T, store objstore.Store, key string, want []byte) {
	t.Helper()
	rc, info, err := store.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(want)) || !bytes.Equal(got, want) {
		t.Fatalf("object %s: %d bytes (info %d), want %d; equal %v", key, len(got), info.Size, len(want), bytes.Equal(got, want))
	}
}

// checkClean: no spool file and no upload left.
func checkClean(t *testing.T, store objstore.Store, spoolDir string) {
	t.Helper()
	entries, err := os.ReadDir(spoolDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("spool dir holds %s", e.Name())
	}
	ups, err := store.ListUploads(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 0 {
		t.Errorf("uploads left: %+v", ups)
	}
}

// closeAndCheck closes w within two minutes: the result and the object
// hold exactly data, and nothing is left behind.
func closeAndCheck(t *testing.T, w *upload.Writer, store objstore.Store, key string, data []byte, spool string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := w.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != int64(len(data)) || res.SHA256 != sha256.Sum256(data) || res.Object.Size != int64(len(data)) {
		t.Fatalf("result %d bytes (object %d), sha256 %x; want %d, %x", res.Size, res.Object.Size, res.SHA256, len(data), sha256.Sum256(data))
	}
	checkObject(t, store, key, data)
	checkClean(t, store, spool)
}

func TestRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		spool := t.TempDir()
		data := randomBytes(t, 12<<20+777)
		w := newWriter(t, ctx, be.store, "rec/round-trip.webm", spool, testConfig)
		writeAll(t, w, data)
		closeAndCheck(t, w, be.store, "rec/round-trip.webm", data, spool)
		if st := w.Stats(); st.Parts != 3 || st.BytesUploaded != int64(len(data)) || st.Spooled != 0 {
			t.Errorf("stats %+v, want 3 parts of %d bytes in all, nothing spooled", st, len(data))
		}
	})
}

func TestEmpty(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		spool := t.TempDir()
		w := newWriter(t, ctx, be.store, "rec/empty.webm", spool, testConfig)
		closeAndCheck(t, w, be.store, "rec/empty.webm", nil, spool)
	})
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within a minute", what)
		}
	}
}

func TestOutage(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		spool := t.TempDir()
		data := randomBytes(t, 17<<20+3)
		w := newWriter(t, ctx, be.store, "rec/outage.webm", spool, testConfig)
		first := 6 << 20
		writeAll(t, w, data[:first])
		waitFor(t, "first part", func() bool { return w.Stats().Parts == 1 })

		be.down()
		// Writes return while storage is down, and the uploads fail.
		writeAll(t, w, data[first:])
		waitFor(t, "failed upload", func() bool { return w.Stats().Errors > 0 })
		if st := w.Stats(); st.Parts != 1 || st.Spooled != int64(len(data)-5<<20) {
			t.Fatalf("while down: %+v", st)
		}
		be.up(t)

		closeAndCheck(t, w, be.store, "rec/outage.webm", data, spool)
		if st := w.Stats(); st.Retries == 0 || st.Parts != 4 {
			t.Errorf("stats %+v: want retries, 4 parts", st)
		}
	})
}

func TestSpoolBound(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		spool := t.TempDir()
		cfg := testConfig
		cfg.MaxSpool = 11 << 20
		w := newWriter(t, ctx, be.store, "rec/bound.webm", spool, cfg)
		begunSidecar(t, spool)
		be.down()
		chunk := randomBytes(t, 1<<20-1)
		var accepted int64
		var err error
		for range 100 {
			var n int
			n, err = w.Write(chunk)
			accepted += int64(n)
			if err != nil {
				break
			}
		}
		if !errors.Is(err, upload.ErrSpoolFull) {
			t.Fatalf("write past the bound: %v, want ErrSpoolFull", err)
		}
		if accepted > cfg.MaxSpool || accepted <= cfg.MaxSpool-int64(len(chunk)) {
			t.Fatalf("took %d bytes, want the most chunks that fit in %d", accepted, cfg.MaxSpool)
		}
		if n, err := w.Write([]byte{1}); n != 0 || !errors.Is(err, upload.ErrSpoolFull) {
			t.Fatalf("write after the bound: %d, %v", n, err)
		}
		be.up(t)
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := w.Abort(actx); err != nil {
			t.Fatal(err)
		}
		checkClean(t, be.store, spool)
	})
}

// crash stops w's goroutines without completing, as a killed process
// would, and releases its file; the spool and sidecar stay.
func crash(t *testing.T, cancel context.CancelFunc, w *upload.Writer) {
	t.Helper()
	cancel()
	if _, err := w.Close(context.Background()); err == nil {
		t.Fatal("close after the writer's context ended completed the upload")
	}
}

func TestCrashRecover(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		spool := t.TempDir()
		data := randomBytes(t, 13<<20+5)
		wctx, cancel := context.WithCancel(context.Background())
		w := newWriter(t, wctx, be.store, "rec/crash.webm", spool, testConfig)
		writeAll(t, w, data)
		waitFor(t, "two parts", func() bool { return w.Stats().Parts == 2 })
		crash(t, cancel, w)

		want := upload.Recovered{Key: "rec/crash.webm", Stored: true, Bytes: int64(len(data)), Uploaded: int64(len(data) - 10<<20)}
		recoverAndCheck(t, be.store, spool, want, data)
	})
}

// TestCrashStaleSidecar: the node died after a part was stored and before
// the sidecar said so. Recover asks the store and uploads only the rest.
func TestCrashStaleSidecar(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		spool := t.TempDir()
		data := randomBytes(t, 11<<20)
		wctx, cancel := context.WithCancel(context.Background())
		w := newWriter(t, wctx, be.store, "rec/stale.webm", spool, testConfig)
		// The sidecar as it is once the upload has begun, before any part.
		name, stale := begunSidecar(t, spool)
		writeAll(t, w, data)
		waitFor(t, "two parts", func() bool { return w.Stats().Parts == 2 })
		crash(t, cancel, w)
		if err := os.WriteFile(name, stale, 0o600); err != nil {
			t.Fatal(err)
		}

		want := upload.Recovered{Key: "rec/stale.webm", Stored: true, Bytes: int64(len(data)), Uploaded: int64(len(data) - 10<<20)}
		recoverAndCheck(t, be.store, spool, want, data)
	})
}

func TestRecoverAborted(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		spool := t.TempDir()
		wctx, cancel := context.WithCancel(context.Background())
		w := newWriter(t, wctx, be.store, "rec/aborted.webm", spool, testConfig)
		data := randomBytes(t, 1<<20)
		writeAll(t, w, data)
		begunSidecar(t, spool)
		crash(t, cancel, w)
		ctx := context.Background()
		ups, err := be.store.ListUploads(ctx, "")
		if err != nil || len(ups) != 1 {
			t.Fatalf("uploads %+v, %v", ups, err)
		}
		if err := be.store.AbortUpload(ctx, ups[0].Key, ups[0].UploadID); err != nil {
			t.Fatal(err)
		}
		// The spool holds it all: it is stored again.
		recoverAndCheck(t, be.store, spool, upload.Recovered{Key: "rec/aborted.webm", Stored: true, Bytes: 1 << 20, Uploaded: 1 << 20}, data)
	})
}

// recoverAndCheck runs Recover on spool, allowing it two minutes: it
// reports want alone, the object holds exactly data (none when want is not
// stored), and nothing is left behind.
func recoverAndCheck(t *testing.T, store objstore.Store, spool string, want upload.Recovered, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got, err := upload.Recover(ctx, store, spool, testConfig)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("recovered %+v, want %+v", got, want)
	}
	if want.Stored {
		checkObject(t, store, want.Key, data)
	} else if _, err := store.Stat(ctx, want.Key); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("stat %s: %v, want not found", want.Key, err)
	}
	checkClean(t, store, spool)
}

// TestCloseWhileDown: with storage down from before New to after Close,
// writes go to the spool, Close gives up when its context ends and leaves
// the spool, and Recover begins the upload and stores all of it.
func TestCloseWhileDown(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		spool := t.TempDir()
		data := randomBytes(t, 7<<20+1)
		// Storage is down from the start: New does not need it.
		be.down()
		w := newWriter(t, context.Background(), be.store, "rec/close-down.webm", spool, testConfig)
		writeAll(t, w, data)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if _, err := w.Close(ctx); err == nil {
			t.Fatal("close completed with storage down")
		}
		be.up(t)
		want := upload.Recovered{Key: "rec/close-down.webm", Stored: true, Bytes: int64(len(data)), Uploaded: int64(len(data))}
		recoverAndCheck(t, be.store, spool, want, data)
	})
}

// TestAbortWhileDown: an Abort that cannot reach storage frees the spool
// and leaves the sidecar for Recover, which aborts the upload.
func TestAbortWhileDown(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		spool := t.TempDir()
		w := newWriter(t, context.Background(), be.store, "rec/abort-down.webm", spool, testConfig)
		writeAll(t, w, randomBytes(t, 6<<20))
		waitFor(t, "first part", func() bool { return w.Stats().Parts == 1 })
		be.down()
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if err := w.Abort(ctx); err == nil {
			t.Fatal("abort succeeded with storage down")
		}
		be.up(t)
		recoverAndCheck(t, be.store, spool, upload.Recovered{Key: "rec/abort-down.webm"}, nil)
	})
}

// begunSidecar waits until the one sidecar in spool names its upload, and
// returns its path and content.
func begunSidecar(t *testing.T, spool string) (string, []byte) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(spool, "*.json"))
	if err != nil || len(names) != 1 {
		t.Fatalf("sidecars %v, %v", names, err)
	}
	var data []byte
	waitFor(t, "upload id in the sidecar", func() bool {
		data, err = os.ReadFile(names[0])
		return err == nil && bytes.Contains(data, []byte(`"upload_id"`))
	})
	return names[0], data
}
