package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/helpcaster/helpcaster/internal/mediafile"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// PublishFiles publishes a video track played from videoPath (VP8 in IVF,
// or an H.264 Annex B stream with extension .h264, 30 fps) and an Opus audio
// track played from an Ogg file, each looped and paced in real time until
// the client closes. Either path may be empty.
func (c *Client) PublishFiles(ctx context.Context, videoPath, oggPath string) error {
	var tracks []webrtc.TrackLocal
	var start []func()
	for _, f := range []struct {
		path, kind string
		codec      webrtc.RTPCodecCapability
	}{
		{videoPath, "video", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}},
		{oggPath, "audio", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}},
	} {
		if f.path == "" {
			continue
		}
		if strings.HasSuffix(f.path, ".h264") {
			f.codec.MimeType = webrtc.MimeTypeH264
		}
		frames, err := mediafile.Read(f.path)
		if err != nil {
			return err
		}
		t, err := webrtc.NewTrackLocalStaticSample(f.codec, f.kind, "bot")
		if err != nil {
			return fmt.Errorf("%s track: %w", f.kind, err)
		}
		tracks = append(tracks, t)
		start = append(start, func() { c.Go(func(ctx context.Context) { play(ctx, t, frames.Data, frames.Duration) }) })
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
