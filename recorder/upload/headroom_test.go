package upload_test

import (
	"context"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/objstore"
)

// TestSmallestSpoolBound: with the smallest spool bound Config accepts and
// storage up, a recording written at a steady pace is stored whole. A
// part is uploaded once a part's worth waits, so the bound leaves room for
// what is written meanwhile: a bound of one part refused the first write
// past it, storage up or not.
func TestSmallestSpoolBound(t *testing.T) {
	ctx := context.Background()
	store, err := objstore.Local(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	part := store.MinPartSize()
	cfg := testConfig
	for _, bound := range []int64{part, 2*part - 1} {
		cfg.MaxSpool = bound
		if err := cfg.Check(store); err == nil {
			t.Errorf("a bound of %d bytes, parts of %d: accepted", bound, part)
		}
	}
	cfg.MaxSpool = 2 * part
	if err := cfg.Check(store); err != nil {
		t.Fatal(err)
	}
	spool := t.TempDir()
	w := newWriter(t, ctx, store, "rec/small.webm", spool, cfg)
	data := randomBytes(t, int(3*part))
	for off := 0; off < len(data); {
		n := min(65537, len(data)-off) // never ends on a part's boundary
		writeOne(t, w, data[off:off+n])
		off += n
		time.Sleep(2 * time.Millisecond) // some 30 MB/s at most
	}
	closeAndCheck(t, w, store, "rec/small.webm", data, spool)
}
