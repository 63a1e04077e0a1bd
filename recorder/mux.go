// The container: one participant's frames into WebM (Matroska for H.264)
// through ebml-go's live SimpleBlock writer (unknown-size Segment and
// Clusters, nothing written twice), on the recording's goroutine.

package recorder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/at-wat/ebml-go/mkvcore"
	"github.com/at-wat/ebml-go/webm"
)

// Track numbers in the file: audio before video, as ebml-go's sorter asks.
const (
	audioTrackNumber = 1
	videoTrackNumber = 2
)

// Interleaving and clusters (milliseconds): frames of the two tracks are
// put in time order within sortWindow; a cluster starts at each video
// keyframe, and at least every maxCluster.
const (
	sortWindow = 500
	maxCluster = 5000
)

// muxSpec says what the file holds, fixed when its header is written.
type muxSpec struct {
	start         time.Time // the file's time 0
	audio, video  bool
	audioChannels int
	width, height int
	videoMime     string // the video track's codec, as TrackInfo.MimeType
	videoCodecID  string // Matroska's name of it: V_VP8, V_VP9, V_MPEG4/ISO/AVC
	videoPrivate  []byte // its CodecPrivate: H.264's AVCDecoderConfigurationRecord
	matroska      bool   // DocType matroska (H.264 is not WebM's)
}

// muxer writes one WebM (or Matroska) stream. Its ebml-go writer runs goroutines of its
// own that end on close.
type muxer struct {
	spec muxSpec
	out  *latchWriter
	ws   map[uint64]webm.BlockWriteCloser

	mu    sync.Mutex // guards fatal (set on ebml-go's goroutine)
	fatal error
}

func newMuxer(w io.Writer, spec muxSpec) (*muxer, error) {
	m := &muxer{spec: spec, out: &latchWriter{w: w}, ws: make(map[uint64]webm.BlockWriteCloser)}
	var tracks []webm.TrackEntry
	if spec.audio {
		tracks = append(tracks, webm.TrackEntry{
			Name: "audio", TrackNumber: audioTrackNumber, TrackUID: audioTrackNumber,
			CodecID: "A_OPUS", TrackType: 2, CodecPrivate: opusHead(spec.audioChannels),
			Audio: &webm.Audio{SamplingFrequency: 48000, Channels: uint64(spec.audioChannels)},
		})
	}
	if spec.video {
		tracks = append(tracks, webm.TrackEntry{
			Name: "video", TrackNumber: videoTrackNumber, TrackUID: videoTrackNumber,
			CodecID: spec.videoCodecID, TrackType: 1, CodecPrivate: spec.videoPrivate,
			Video: &webm.Video{PixelWidth: uint64(spec.width), PixelHeight: uint64(spec.height)},
		})
	}
	if len(tracks) == 0 {
		return nil, errors.New("mux: no tracks")
	}
	main := uint64(videoTrackNumber)
	minCluster := int64(0)
	if !spec.video {
		main, minCluster = audioTrackNumber, maxCluster
	}
	sorter, err := mkvcore.NewMultiTrackBlockSorter(
		mkvcore.WithMaxTimescaleDelay(sortWindow), mkvcore.WithSortRule(mkvcore.BlockSorterWriteOutdated))
	if err != nil {
		return nil, fmt.Errorf("mux: sorter: %w", err)
	}
	header := *webm.DefaultEBMLHeader
	if spec.matroska {
		header.DocType = "matroska"
	}
	ws, err := webm.NewSimpleBlockWriter(m.out, tracks,
		mkvcore.WithEBMLHeader(&header),
		mkvcore.WithSegmentInfo(&webm.Info{
			TimecodeScale: uint64(time.Millisecond), MuxingApp: "helpcaster", WritingApp: "helpcaster",
			DateUTC: spec.start.UTC(),
		}),
		mkvcore.WithBlockInterceptor(sorter),
		mkvcore.WithMinMaxClusterDuration(main, minCluster, maxCluster),
		mkvcore.WithOnFatalHandler(m.setFatal),
		mkvcore.WithOnErrorHandler(func(error) {}),
	)
	if err != nil {
		return nil, fmt.Errorf("mux: header: %w", err)
	}
	for i, t := range tracks {
		m.ws[t.TrackNumber] = ws[i]
	}
	return m, nil
}

// has reports whether the file holds track number n.
func (m *muxer) has(n uint64) bool {
	_, ok := m.ws[n]
	return ok
}

// write writes one frame at ms milliseconds from the file's start; data
// must not be changed afterwards (the writer keeps it until written).
func (m *muxer) write(trackNumber uint64, key bool, ms int64, data []byte) error {
	w, ok := m.ws[trackNumber]
	if !ok {
		return fmt.Errorf("mux: no track %d in the file", trackNumber)
	}
	if _, err := w.Write(key, ms, data); err != nil {
		return fmt.Errorf("mux: %w", err)
	}
	return m.err()
}

// close flushes and ends the stream (ebml-go writes a last empty Cluster)
// and returns the first error writing it.
func (m *muxer) close() error {
	for _, n := range []uint64{audioTrackNumber, videoTrackNumber} {
		if w, ok := m.ws[n]; ok {
			_ = w.Close()
		}
	}
	return m.err()
}

func (m *muxer) err() error {
	if err := m.out.error(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fatal
}

func (m *muxer) setFatal(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fatal == nil {
		m.fatal = fmt.Errorf("mux: %w", err)
	}
}

// latchWriter passes writes on, in whole EBML units (elements.go), until
// the first error, then drops them and keeps the error: ebml-go's writer
// stops on a failed write and would block the next frame, so it is never
// told. What it has written is then a file that ends between elements.
type latchWriter struct {
	w io.Writer

	mu   sync.Mutex // guards the rest (written on ebml-go's goroutine)
	err  error
	n    int64
	held []byte // the start of a unit not yet whole
	raw  bool   // the stream did not parse as EBML: passed on as it comes
}

func (l *latchWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return len(p), nil
	}
	l.held = append(l.held, p...)
	whole := len(l.held)
	if !l.raw {
		var ok bool
		if whole, ok = wholeUnits(l.held); !ok {
			l.raw, whole = true, len(l.held)
		}
	}
	if whole == 0 {
		return len(p), nil
	}
	n, err := l.w.Write(l.held[:whole])
	l.n += int64(n)
	if err == nil && n < whole {
		err = io.ErrShortWrite
	}
	l.held = append(l.held[:0], l.held[whole:]...)
	if err != nil {
		l.err = fmt.Errorf("write recording: %w", err)
		l.held = nil
	}
	return len(p), nil
}

// Close is called by ebml-go at the end; the writer belongs to the caller.
func (l *latchWriter) Close() error { return nil }

func (l *latchWriter) error() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *latchWriter) bytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// opusHead is the Opus identification header Matroska's A_OPUS keeps as
// CodecPrivate (RFC 7845 section 5.1): RTP carries no pre-skip, so 0.
func opusHead(channels int) []byte {
	h := make([]byte, 19)
	copy(h, "OpusHead")
	h[8] = 1 // version
	h[9] = byte(channels)
	binary.LittleEndian.PutUint16(h[10:], 0)     // pre-skip
	binary.LittleEndian.PutUint32(h[12:], 48000) // input sample rate
	return h                                     // gain 0, mapping family 0
}
