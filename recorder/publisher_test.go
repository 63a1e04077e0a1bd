// A simulated publisher for the tests: the repo's sample files packetized
// with pion's packetizers as a browser would send them, with sender reports,
// on a simulated clock.

package recorder

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/rtp/codecs/vp9"

	"github.com/helpcaster/helpcaster/internal/mediafile"
)

// t0 is the simulated call clock's capture time of the first frames.
var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// event is one thing the publisher sends: a packet or a sender report.
type event struct {
	arrival time.Time
	video   bool
	pkt     *rtp.Packet // nil: a sender report
	ssrc    uint32
	ntp     uint64
	rtpTime uint32
	frame   int // the frame (or audio packet) index the packet belongs to
}

// stream is one packetized track.
type stream struct {
	mime          string // the codec, as TrackInfo.MimeType
	events        []event
	frames        int    // frames sent
	key           []bool // video: frame i is a keyframe
	dur           time.Duration
	rate, samples uint32 // RTP clock rate; RTP ticks per frame
}

// capture returns frame i's capture time as its RTP timestamp says it,
// exactly (dur is rounded to the nanosecond).
func (s stream) capture(i int) time.Duration {
	return time.Duration(i) * time.Duration(s.samples) * time.Second / time.Duration(s.rate)
}

// publisherClockOffset is how far the publisher's NTP clock is from the
// call clock: sender reports must not depend on the two agreeing.
const publisherClockOffset = 37 * time.Second

// packetize packetizes a sample file as a publisher would, starting at
// seq and ts so tests can place the wraparounds; a sender report goes
// every second from 500 ms. Packets arrive delay after capture. The codec
// is the file's: Opus (.ogg), H.264 (.h264), VP8 or VP9 (.ivf).
func packetize(t testing.TB, path string, video bool, ssrc uint32, seq uint16, ts uint32, delay time.Duration) stream {
	t.Helper()
	f, err := mediafile.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	rate := uint32(48000)
	var pay rtp.Payloader = &codecs.OpusPayloader{}
	mime := "audio/opus"
	if video {
		rate = 90000
		mime, pay = "video/VP8", &codecs.VP8Payloader{EnablePictureID: true}
		switch {
		case strings.HasSuffix(path, ".h264"):
			mime, pay = "video/H264", &codecs.H264Payloader{}
		case ivfFourCC(t, path) == "VP90":
			mime, pay = "video/VP9", &codecs.VP9Payloader{}
			for i, data := range f.Data {
				var h vp9.Header
				f.Key[i] = h.Unmarshal(data) == nil && !h.NonKeyFrame && !h.ShowExistingFrame
			}
		}
	}
	p := rtp.NewPacketizerWithOptions(300, pay, rtp.NewFixedSequencer(seq), rate,
		rtp.WithSSRC(ssrc), rtp.WithPayloadType(96), rtp.WithTimestamp(ts))
	samples := uint32(f.Duration.Seconds()*float64(rate) + 0.5)
	s := stream{mime: mime, frames: len(f.Data), key: f.Key, dur: f.Duration, rate: rate, samples: samples}
	nextSR := 500 * time.Millisecond
	for i, data := range f.Data {
		capture := time.Duration(i) * f.Duration
		frameTS := ts + uint32(i)*samples
		for capture >= nextSR {
			srTS := ts + uint32(nextSR.Seconds()*float64(rate))
			s.events = append(s.events, event{arrival: t0.Add(nextSR + delay), video: video, ssrc: ssrc,
				ntp: ntp(t0.Add(nextSR + publisherClockOffset)), rtpTime: srTS})
			nextSR += time.Second
		}
		for _, pkt := range p.Packetize(data, samples) {
			if pkt.Timestamp != frameTS-samples && pkt.Timestamp != frameTS {
				t.Fatalf("packetizer timestamp %d, want %d", pkt.Timestamp, frameTS)
			}
			s.events = append(s.events, event{arrival: t0.Add(capture + delay), video: video, pkt: pkt, frame: i})
		}
	}
	return s
}

// ivfFourCC returns an IVF file's codec (bytes 8 to 12 of its header).
func ivfFourCC(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 12 || string(b[:4]) != "DKIF" {
		return ""
	}
	return string(b[8:12])
}

// ntp converts t to a 64-bit NTP timestamp.
func ntp(t time.Time) uint64 {
	const ntpToUnix = 2208988800
	sec := uint64(t.Unix() + ntpToUnix)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return sec<<32 | frac
}

// merge orders events of several streams by arrival (stable: a stream's
// own order is kept).
func merge(ss ...[]event) []event {
	var all []event
	for _, s := range ss {
		all = append(all, s...)
	}
	slices.SortStableFunc(all, func(a, b event) int { return a.arrival.Compare(b.arrival) })
	return all
}

// recorded is a recording made by record.
type recorded struct {
	res    Result
	format Format
	path   string // the file, in a test temp dir
	bytes  int    // its size
	asks   int32  // keyframe requests for the video
}

// record sends the events of video and audio, merged by arrival, through
// a Recording as the SFU would (Sinks, then Close, then Stop), calling at
// (if not nil) before each event with the call clock set to its arrival.
func record(t testing.TB, video, audio stream, at func(r *Recording, now time.Time)) recorded {
	t.Helper()
	return recordThen(t, video, audio, at, nil)
}

// recordThen is record calling after (if not nil) once every event is
// sent and both Sinks are closed, before Stop.
func recordThen(t testing.TB, video, audio stream, at func(r *Recording, now time.Time), after func(r *Recording)) recorded {
	t.Helper()
	var buf bytes.Buffer
	clock := &simClock{}
	clock.set(t0)
	r := New(&buf, Config{Now: clock.now})
	var asks atomic.Int32
	as, err := r.AddTrack(TrackInfo{Kind: "audio", MimeType: "audio/opus", ClockRate: 48000, Channels: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := r.AddTrack(TrackInfo{Kind: "video", MimeType: video.mime, ClockRate: 90000}, func() { asks.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	type ran struct {
		res Result
		err error
	}
	done := make(chan ran, 1)
	go func() {
		res, err := r.Run(context.Background())
		done <- ran{res, err}
	}()
	f := &feeder{r: r, clock: clock, audio: as, video: vs}
	for _, e := range merge(video.events, audio.events) {
		if at != nil {
			clock.set(e.arrival)
			at(r, e.arrival)
		}
		f.send(t, []event{e})
	}
	as.Close()
	vs.Close()
	if after != nil {
		after(r)
	}
	r.Stop()
	out := <-done
	if out.err != nil {
		t.Fatal(out.err)
	}
	format, ok := r.Format()
	if !ok {
		t.Fatal("no Format after the file was written")
	}
	path := filepath.Join(t.TempDir(), "participant."+format.Ext)
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return recorded{res: out.res, format: format, path: path, bytes: buf.Len(), asks: asks.Load()}
}
