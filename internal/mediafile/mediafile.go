// Package mediafile reads pre-encoded media samples for Go participants
// to send: VP8 in IVF, H.264 Annex B byte streams and Opus in Ogg. Each is
// read whole into frames (or pages) with the duration of one.
package mediafile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// Frames is a sequence of encoded frames (video) or packets (audio),
// played one every Duration.
type Frames struct {
	Data     [][]byte
	Key      []bool // video: the frame is a keyframe
	Duration time.Duration
}

// Read reads a file by its extension: .ivf (VP8), .h264 (H.264) or .ogg
// (Opus).
func Read(path string) (Frames, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Frames{}, fmt.Errorf("read media sample: %w", err)
	}
	var f Frames
	switch {
	case strings.HasSuffix(path, ".ivf"):
		f, err = ParseIVF(data)
	case strings.HasSuffix(path, ".h264"):
		f, err = ParseH264(data)
	case strings.HasSuffix(path, ".ogg"):
		f, err = ParseOgg(data)
	default:
		return Frames{}, fmt.Errorf("%s: not .ivf, .h264 or .ogg", path)
	}
	if err != nil {
		return Frames{}, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// ParseIVF reads VP8 frames from an IVF file.
func ParseIVF(data []byte) (Frames, error) {
	r, h, err := ivfreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return Frames{}, fmt.Errorf("parse IVF: %w", err)
	}
	var f Frames
	for {
		frame, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Frames{}, fmt.Errorf("parse IVF: %w", err)
		}
		f.Data = append(f.Data, frame)
		// VP8 frame tag: bit 0 of the first byte is 0 on a keyframe.
		f.Key = append(f.Key, len(frame) > 0 && frame[0]&1 == 0)
	}
	if len(f.Data) == 0 || h.TimebaseDenominator == 0 {
		return Frames{}, errors.New("no frames")
	}
	f.Duration = time.Duration(float64(time.Second) * float64(h.TimebaseNumerator) / float64(h.TimebaseDenominator))
	if f.Duration <= 0 || f.Duration > time.Second {
		f.Duration = time.Second / 30
	}
	return f, nil
}

// ParseH264 splits an Annex B stream with one slice per picture into access
// units, each a frame of its NAL units with start codes, at 30 fps.
func ParseH264(data []byte) (Frames, error) {
	r, err := h264reader.NewReader(bytes.NewReader(data))
	if err != nil {
		return Frames{}, fmt.Errorf("parse H.264: %w", err)
	}
	var f Frames
	var au []byte
	key := false
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Frames{}, fmt.Errorf("parse H.264: %w", err)
		}
		au = append(au, 0, 0, 0, 1)
		au = append(au, nal.Data...)
		switch nal.UnitType {
		case h264reader.NalUnitTypeCodedSliceIdr:
			key = true
			fallthrough
		case h264reader.NalUnitTypeCodedSliceNonIdr:
			f.Data = append(f.Data, au)
			f.Key = append(f.Key, key)
			au, key = nil, false
		}
	}
	if len(f.Data) == 0 {
		return Frames{}, errors.New("no pictures")
	}
	f.Duration = time.Second / 30
	return f, nil
}

// ParseOgg reads Opus packets (one per page) from an Ogg file.
func ParseOgg(data []byte) (Frames, error) {
	r, _, err := oggreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return Frames{}, fmt.Errorf("parse Ogg: %w", err)
	}
	var f Frames
	var lastGranule uint64
	for {
		p, h, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Frames{}, fmt.Errorf("parse Ogg: %w", err)
		}
		if len(p) >= 8 && (string(p[:8]) == "OpusTags" || string(p[:8]) == "OpusHead") {
			continue
		}
		if f.Duration == 0 && lastGranule != 0 && h.GranulePosition > lastGranule {
			f.Duration = time.Duration(h.GranulePosition-lastGranule) * time.Second / 48000
		}
		lastGranule = h.GranulePosition
		f.Data = append(f.Data, p)
		f.Key = append(f.Key, true)
	}
	if len(f.Data) == 0 {
		return Frames{}, errors.New("no audio pages")
	}
	if f.Duration <= 0 || f.Duration > time.Second {
		f.Duration = 20 * time.Millisecond
	}
	return f, nil
}

// NextKey returns the index of the first keyframe at or after i, wrapping
// around; i itself when there is none.
func (f Frames) NextKey(i int) int {
	for k := range len(f.Data) {
		j := (i + k) % len(f.Data)
		if f.Key[j] {
			return j
		}
	}
	return i
}
