// This file holds lazyUpload: an upload that begins with its first byte,
// when the key it is stored under is known (a media file's extension
// depends on its codecs, fixed as its header is written).

package callrec

import (
	"bytes"
	"io"
	"sync/atomic"

	"github.com/helpcaster/helpcaster/recorder/upload"
)

// lazyUpload is an io.Writer for one writing goroutine at a time; key,
// live and take may be called from others.
type lazyUpload struct {
	open func() (*upload.Writer, string, error)
	err  error // the writer's: the open's error, sticky

	w    atomic.Pointer[upload.Writer]
	k    atomic.Pointer[string]
	done atomic.Bool // closed and counted in the totals; set under totals.mu
}

func (l *lazyUpload) Write(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	w := l.w.Load()
	if w == nil {
		var key string
		w, key, l.err = l.open()
		if l.err != nil {
			return 0, l.err
		}
		l.k.Store(&key)
		l.w.Store(w)
	}
	return w.Write(p)
}

// key is the object's key once the upload has begun, else "".
func (l *lazyUpload) key() string {
	if k := l.k.Load(); k != nil {
		return *k
	}
	return ""
}

// take returns the upload once writing is over; nil if nothing was
// written.
func (l *lazyUpload) take() *upload.Writer { return l.w.Load() }

// live returns the upload while it is neither closed nor counted.
func (l *lazyUpload) live() *upload.Writer {
	if l.done.Load() {
		return nil
	}
	return l.w.Load()
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
