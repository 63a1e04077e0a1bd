package upload_test

import (
	"context"
	"testing"

	"github.com/helpcaster/helpcaster/recorder/upload"
)

// BenchmarkUploadS3 writes 64 MiB in 64 KiB writes to versitygw on loopback
// and closes: spool, parts and completion, end to end.
func BenchmarkUploadS3(b *testing.B) {
	const size = 64 << 20
	be, _ := openS3Store(b)
	data := randomBytes(b, size)
	ctx := context.Background()
	b.SetBytes(int64(size))
	for b.Loop() {
		w, err := upload.New(ctx, be, "rec/bench.webm", "video/webm", b.TempDir(), upload.Config{})
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < size; off += 64 << 10 {
			if _, err := w.Write(data[off:min(off+64<<10, size)]); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := w.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
