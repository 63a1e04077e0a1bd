package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// PublishFiles publishes a video track played from videoPath (VP8 in IVF,
// or an H.264 Annex B stream with extension .h264, 30 fps) and an Opus audio
// track played from an Ogg file, each looped and paced in real time until
// the client closes. Either path may be empty.
func (c *Client) PublishFiles(ctx context.Context, videoPath, oggPath string) error {
	var tracks []webrtc.TrackLocal
	var start []func()
	if videoPath != "" {
		mime := webrtc.MimeTypeVP8
		read := readIVF
		if strings.HasSuffix(videoPath, ".h264") {
			mime, read = webrtc.MimeTypeH264, readH264
		}
		frames, frameDur, err := read(videoPath)
		if err != nil {
			return err
		}
		t, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}, "video", "bot")
		if err != nil {
			return fmt.Errorf("video track: %w", err)
		}
		tracks = append(tracks, t)
		start = append(start, func() { c.Go(func(ctx context.Context) { play(ctx, t, frames, frameDur) }) })
	}
	if oggPath != "" {
		pages, pageDur, err := readOgg(oggPath)
		if err != nil {
			return err
		}
		t, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "bot")
		if err != nil {
			return fmt.Errorf("audio track: %w", err)
		}
		tracks = append(tracks, t)
		start = append(start, func() { c.Go(func(ctx context.Context) { play(ctx, t, pages, pageDur) }) })
	}
	if err := c.Publish(ctx, tracks...); err != nil {
		return err
	}
	for _, f := range start {
		f()
	}
	return nil
}

// play writes samples in a loop, one every d, until ctx ends.
func play(ctx context.Context, t *webrtc.TrackLocalStaticSample, samples [][]byte, d time.Duration) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for i := 0; ; i = (i + 1) % len(samples) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := t.WriteSample(media.Sample{Data: samples[i], Duration: d}); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return
		}
	}
}

func readIVF(path string) ([][]byte, time.Duration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("read video sample: %w", err)
	}
	r, h, err := ivfreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return nil, 0, fmt.Errorf("parse %s: %w", path, err)
	}
	var frames [][]byte
	for {
		f, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("parse %s: %w", path, err)
		}
		frames = append(frames, f)
	}
	if len(frames) == 0 || h.TimebaseDenominator == 0 {
		return nil, 0, fmt.Errorf("%s has no frames", path)
	}
	d := time.Duration(float64(time.Second) * float64(h.TimebaseNumerator) / float64(h.TimebaseDenominator))
	if d <= 0 || d > time.Second {
		d = time.Second / 30
	}
	return frames, d, nil
}

// readH264 splits an Annex B stream with one slice per picture into access
// units, each a sample of its NAL units with start codes.
func readH264(path string) ([][]byte, time.Duration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("read video sample: %w", err)
	}
	r, err := h264reader.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, 0, fmt.Errorf("parse %s: %w", path, err)
	}
	var frames [][]byte
	var au []byte
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("parse %s: %w", path, err)
		}
		au = append(au, 0, 0, 0, 1)
		au = append(au, nal.Data...)
		if t := nal.UnitType; t == h264reader.NalUnitTypeCodedSliceNonIdr || t == h264reader.NalUnitTypeCodedSliceIdr {
			frames = append(frames, au)
			au = nil
		}
	}
	if len(frames) == 0 {
		return nil, 0, fmt.Errorf("%s has no pictures", path)
	}
	return frames, time.Second / 30, nil
}

func readOgg(path string) ([][]byte, time.Duration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("read audio sample: %w", err)
	}
	r, _, err := oggreader.NewWith(bytes.NewReader(data))
	if err != nil {
		return nil, 0, fmt.Errorf("parse %s: %w", path, err)
	}
	var pages [][]byte
	var lastGranule uint64
	var d time.Duration
	for {
		p, h, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("parse %s: %w", path, err)
		}
		if len(p) >= 8 && (string(p[:8]) == "OpusTags" || string(p[:8]) == "OpusHead") {
			continue
		}
		if d == 0 && lastGranule != 0 && h.GranulePosition > lastGranule {
			d = time.Duration(h.GranulePosition-lastGranule) * time.Second / 48000
		}
		lastGranule = h.GranulePosition
		pages = append(pages, p)
	}
	if len(pages) == 0 {
		return nil, 0, fmt.Errorf("%s has no audio pages", path)
	}
	if d <= 0 || d > time.Second {
		d = 20 * time.Millisecond
	}
	return pages, d, nil
}
