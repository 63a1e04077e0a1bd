// Integration: the repo's sample files, packetized and sent as a publisher
// would (reordered, one packet lost, sequence numbers and timestamps
// wrapping), recorded to a file that ffprobe and ffmpeg then read.

package recorder

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/helpcaster/helpcaster/sfu"
)

var _ sfu.TrackSink = (*Sink)(nil)

// A Sink is told the publisher's sender reports (sfu.SenderReporter).
var _ sfu.SenderReporter = (*Sink)(nil)

// needFFprobe skips the test when ffprobe is missing, unless in CI.
func needFFprobe(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffprobe", "ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s missing (scripts/install-test-deps.sh installs ffmpeg)", tool)
			}
			t.Skipf("%s missing: run scripts/install-test-deps.sh (ffmpeg) to check recordings", tool)
		}
	}
}

// simClock is the simulated call clock the test moves forward.
type simClock struct{ ns atomic.Int64 }

func (c *simClock) set(t time.Time) { c.ns.Store(t.UnixNano()) }
func (c *simClock) now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }

// feeder sends events to two sinks as the SFU would, never letting the
// recording's queue fill (the test counts every frame).
type feeder struct {
	r            *Recording
	clock        *simClock
	audio, video *Sink
}

func (f *feeder) send(t testing.TB, evs []event) {
	t.Helper()
	for _, e := range evs {
		for f.r.sq.freeSlots() < 64 {
			runtime.Gosched()
		}
		f.clock.set(e.arrival)
		s := f.audio
		if e.video {
			s = f.video
		}
		if e.pkt == nil {
			s.SenderReport(e.ssrc, e.ntp, e.rtpTime)
			continue
		}
		b, err := e.pkt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		s.WriteRTP(&p.Header, p.Payload)
	}
}

// swap exchanges the i-th and j-th packets of frame frame in evs.
func swapInFrame(t *testing.T, evs []event, frame int) {
	t.Helper()
	var at []int
	for i, e := range evs {
		if e.pkt != nil && e.frame == frame {
			at = append(at, i)
		}
	}
	if len(at) < 2 {
		t.Fatalf("frame %d has %d packets, want 2 or more", frame, len(at))
	}
	a, b := at[0], at[len(at)-1]
	evs[a].pkt, evs[b].pkt = evs[b].pkt, evs[a].pkt
}

// dropInFrame removes the second packet of frame frame.
func dropInFrame(t *testing.T, evs []event, frame int) []event {
	t.Helper()
	for i, e := range evs {
		if e.pkt != nil && e.frame == frame && i+1 < len(evs) && evs[i+1].pkt != nil && evs[i+1].frame == frame {
			return append(evs[:i+1:i+1], evs[i+2:]...)
		}
	}
	t.Fatalf("frame %d has one packet", frame)
	return nil
}

// mediaCase is a sample file recorded by TestRecordSampleFiles and what
// the file must say of it.
type mediaCase struct {
	name   string
	video  func(t testing.TB) string // the video sample's path
	codec  string                    // ffprobe's name of the video codec
	format Format
}

var mediaCases = []mediaCase{
	{"VP8", func(testing.TB) string { return "../testdata/sample.ivf" }, "vp8", Format{"webm", "video/webm"}},
	{"H264", func(testing.TB) string { return "../testdata/sample.h264" }, "h264", Format{"mkv", "video/x-matroska"}},
	{"VP9", vp9Sample, "vp9", Format{"webm", "video/webm"}},
}

// vp9Sample encodes a VP9 sample like sample.ivf (320x240, 30 fps, 5 s,
// a keyframe every 30 frames, no hidden alt-ref frames) into the test's
// temp dir: the repo ships no VP9 sample.
func vp9Sample(t testing.TB) string {
	t.Helper()
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-encoders").Output(); err != nil || !strings.Contains(string(out), "libvpx-vp9") {
		if os.Getenv("CI") == "true" {
			t.Fatal("ffmpeg has no libvpx-vp9 encoder")
		}
		t.Skip("ffmpeg has no libvpx-vp9 encoder")
	}
	path := filepath.Join(t.TempDir(), "sample-vp9.ivf")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=30:duration=5",
		"-an", "-c:v", "libvpx-vp9", "-b:v", "250k", "-g", "30", "-keyint_min", "30",
		"-auto-alt-ref", "0", "-lag-in-frames", "0", "-deadline", "realtime", "-cpu-used", "8",
		"-threads", "1", "-pix_fmt", "yuv420p", "-f", "ivf", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("encode VP9 sample: %v: %s", err, out)
	}
	return path
}

func TestRecordSampleFiles(t *testing.T) {
	needFFprobe(t)
	for _, mc := range mediaCases {
		t.Run(mc.name, func(t *testing.T) { recordSample(t, mc) })
	}
}

// recordSample records a video sample and sample.ogg, with packets
// reordered and one lost, and checks the file with ffprobe and ffmpeg.
func recordSample(t *testing.T, mc mediaCase) {
	// Sequence numbers wrap after 36 packets (video) and 6 (audio);
	// timestamps after 2 s (video) and 1 s (audio).
	video := packetize(t, mc.video(t), true, 0x1111, 65500, math.MaxUint32-2*90000+1, 12*time.Millisecond)
	audio := packetize(t, "../testdata/sample.ogg", false, 0x2222, 65530, math.MaxUint32-48000+1, 10*time.Millisecond)
	const lostFrame, nextKey = 40, 60
	if !video.key[0] || !video.key[nextKey] || slices_any(video.key[lostFrame:nextKey]) {
		t.Fatalf("%s: want keyframes at 0 and %d and none in [%d,%d)", mc.name, nextKey, lostFrame, nextKey)
	}
	swapInFrame(t, video.events, 30)
	swapInFrame(t, video.events, 95)
	video.events = dropInFrame(t, video.events, lostFrame)
	audio.events[20].pkt, audio.events[21].pkt = audio.events[21].pkt, audio.events[20].pkt

	rec := record(t, video, audio, nil)
	res := rec.res
	if rec.format != mc.format {
		t.Errorf("format %+v, want %+v", rec.format, mc.format)
	}
	// The EBML header's DocType: "webm" or "matroska", as Ext says.
	docType := map[string]string{"webm": "webm", "mkv": "matroska"}[mc.format.Ext]
	if head, err := os.ReadFile(rec.path); err != nil || !bytes.Contains(head[:min(len(head), 64)], append([]byte{0x42, 0x82, 0x80 | byte(len(docType))}, docType...)) {
		t.Errorf("file's EBML header has no DocType %q (%v)", docType, err)
	}

	wantVideo := video.frames - (nextKey - lostFrame)
	if got := res.Tracks[1].Frames; got != uint64(wantVideo) {
		t.Errorf("video frames written: %d, want %d (%+v)", got, wantVideo, res.Tracks[1])
	}
	if got := res.Tracks[0].Frames; got != uint64(audio.frames) {
		t.Errorf("audio frames written: %d, want %d (%+v)", got, audio.frames, res.Tracks[0])
	}
	if rec.asks == 0 {
		t.Error("no keyframe asked for after the loss")
	}
	if want := t0.Add(10 * time.Millisecond); res.Start.Sub(want).Abs() > time.Millisecond {
		t.Errorf("file start %v, want %v (the first audio packet's arrival)", res.Start, want)
	}
	if res.Bytes != int64(rec.bytes) {
		t.Errorf("result says %d bytes, %d written", res.Bytes, rec.bytes)
	}
	path := rec.path
	probe := ffprobe(t, path, "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0")
	if got, want := strings.Join(strings.Fields(probe), " "), "opus "+mc.codec+",320,240"; got != want {
		t.Errorf("streams %q, want %q", got, want)
	}
	// A file written as a stream has no Duration element (ffprobe says
	// N/A): its duration is where its last packet ends.
	dur := fileDuration(t, path)
	sent := time.Duration(video.frames) * video.dur
	if (dur - sent).Abs() > 500*time.Millisecond {
		t.Errorf("duration %v, want %v within 0.5 s", dur, sent)
	}
	t.Logf("%s: duration %v (sent %v), %d bytes, %d video frames", mc.name, dur, sent, rec.bytes, wantVideo)
	nf := ffprobe(t, path, "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0")
	if strings.TrimSpace(nf) != strconv.Itoa(wantVideo) {
		t.Errorf("ffprobe video frames %q, want %d", nf, wantVideo)
	}
	if msg, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput(); err != nil || len(msg) > 0 {
		t.Errorf("ffmpeg decode: %v: %s", err, msg)
	}
	checkSync(t, path, video, audio, lostFrame, nextKey)
}

func slices_any(b []bool) bool {
	for _, v := range b {
		if v {
			return true
		}
	}
	return false
}

// checkSync checks each packet's time in the file against its capture time:
// every frame within a frame's duration of where it belongs, on one clock.
func checkSync(t *testing.T, path string, video, audio stream, lostFrame, nextKey int) {
	t.Helper()
	out := ffprobe(t, path, "-show_entries", "packet=stream_index,pts_time", "-of", "csv=p=0")
	var vi, ai int
	// The file's time 0 is the first audio packet's arrival, 10 ms after
	// its capture: capture times are offsets from t0, shifted by that.
	for _, line := range strings.Fields(out) {
		var idx int
		var pts float64
		if _, err := fmt.Sscanf(strings.ReplaceAll(line, ",", " "), "%d %g", &idx, &pts); err != nil {
			t.Fatalf("ffprobe packet line %q: %v", line, err)
		}
		got := time.Duration(pts * float64(time.Second))
		var want, tol time.Duration
		if idx == 1 {
			if vi == lostFrame {
				vi = nextKey
			}
			want, tol = time.Duration(vi)*video.dur+2*time.Millisecond, video.dur
			vi++
		} else {
			want, tol = time.Duration(ai)*audio.dur, audio.dur
			ai++
		}
		if (got - want).Abs() > tol {
			t.Errorf("stream %d packet at %v, want %v within %v", idx, got, want, tol)
		}
	}
}

// fileDuration returns the end of the file's last packet.
func fileDuration(t *testing.T, path string) time.Duration {
	t.Helper()
	out := ffprobe(t, path, "-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0")
	var end float64
	for _, line := range strings.Fields(out) {
		f := strings.Split(line, ",")
		pts, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			t.Fatalf("ffprobe packet %q: %v", line, err)
		}
		if d, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil && len(f) > 1 {
			pts += d
		}
		end = max(end, pts)
	}
	return time.Duration(end * float64(time.Second))
}

func ffprobe(t *testing.T, path string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", append([]string{"-v", "error"}, append(args, path)...)...).Output()
	if err != nil {
		t.Fatalf("ffprobe %v: %v", args, err)
	}
	return string(out)
}
