package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/internal/mediaprobe"
	"github.com/helpcaster/helpcaster/internal/recordingtest"
	"github.com/helpcaster/helpcaster/internal/s3test"
	"github.com/helpcaster/helpcaster/objstore"
	"github.com/helpcaster/helpcaster/recorder/manifest"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// outageCall is a recorded call, customer and agent on one node that
// records into a private S3-compatible server the test stops and restarts.
type outageCall struct {
	t           *testing.T
	ctx         context.Context
	srv         *s3test.Server
	store       objstore.Store
	tn          *testNode
	cust, agent *client.Client
	room        string
	published   time.Time // no media was sent before
	flowing     time.Time // both sides' media had reached the node by then
	chat        []string  // what was said, in order
}

// startOutageCall starts the server and a node recording into it with
// maxSpool (0: the default), and a call in which the customer publishes
// custVideo and the agent the sample video, both the sample audio, until
// media flows both ways.
func startOutageCall(t *testing.T, ctx context.Context, maxSpool int64, custVideo string) *outageCall {
	t.Helper()
	srv := s3test.Start(t)
	cfg := objstore.S3Config{Endpoint: srv.Endpoint(), Bucket: srv.Bucket, Prefix: "rec", Region: s3test.Region,
		PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	store, err := objstore.NewS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	dir := recordingOrgs(t)
	tn := startRecordingNode(t, dir, &RecordingsConfig{S3: &cfg, SpoolDir: t.TempDir(), MaxSpool: maxSpool})
	oc := &outageCall{t: t, ctx: ctx, srv: srv, store: store, tn: tn}
	oc.agent = joinQueue(t, ctx, dir, tn.ws, protocol.RoleAgent, "Ann", "recorded", false)
	if err := oc.agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	oc.cust = joinQueue(t, ctx, dir, tn.ws, protocol.RoleCustomer, "Bob", "recorded", false)
	oc.room = nextMsg(t, ctx, oc.cust, protocol.TypeAssigned).Room
	nextMsg(t, ctx, oc.agent, protocol.TypeAssigned)
	recordingState(t, ctx, "customer", oc.cust, protocol.RecordingStarted)
	recordingState(t, ctx, "agent", oc.agent, protocol.RecordingStarted)
	oc.published = time.Now()
	if err := oc.cust.PublishFiles(ctx, custVideo, sample("sample.ogg")); err != nil {
		t.Fatal(err)
	}
	if err := oc.agent.PublishFiles(ctx, sample("sample.ivf"), sample("sample.ogg")); err != nil {
		t.Fatal(err)
	}
	waitMedia(t, ctx, "customer", oc.cust)
	waitMedia(t, ctx, "agent", oc.agent)
	oc.flowing = time.Now()
	return oc
}

// say sends text from one side and waits until the other has it. Until
// the recording has stopped (stopped false), no recording message may come
// first: the call's recording goes on unaffected.
func (oc *outageCall) say(fromCust bool, text string, stopped bool) {
	oc.t.Helper()
	from, to := oc.agent, oc.cust
	if fromCust {
		from, to = oc.cust, oc.agent
	}
	if err := from.Send(oc.ctx, protocol.Message{Type: protocol.TypeChat, Text: text}); err != nil {
		oc.t.Fatal(err)
	}
	for {
		m := nextMsg(oc.t, oc.ctx, to, protocol.TypeChat, protocol.TypeRecording, protocol.TypeError, protocol.TypeEnded)
		if m.Type == protocol.TypeChat {
			if m.Text != text {
				oc.t.Fatalf("chat %q arrived as %q", text, m.Text)
			}
			oc.chat = append(oc.chat, text)
			return
		}
		if m.Type != protocol.TypeRecording || !stopped {
			oc.t.Fatalf("waiting for the chat %q: %+v", text, m)
		}
	}
}

// flow is what both sides had received at a moment.
type flow struct {
	at          time.Time
	cust, agent client.Stats
}

func (oc *outageCall) mark() flow {
	return flow{at: time.Now(), cust: oc.cust.Stats(), agent: oc.agent.Stats()}
}

// mediaFlowed waits until both sides have received, since from, at least
// 50 audio and 30 video packets (a second's worth; a busy machine delays
// and bunches packets, a stopped stream sends none), for at most 30 s.
func (oc *outageCall) mediaFlowed(from flow) {
	oc.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		now := oc.mark()
		ca, cv := now.cust.AudioPackets-from.cust.AudioPackets, now.cust.VideoPackets-from.cust.VideoPackets
		aa, av := now.agent.AudioPackets-from.agent.AudioPackets, now.agent.VideoPackets-from.agent.VideoPackets
		if min(ca, aa) >= 50 && min(cv, av) >= 30 {
			return
		}
		if now.at.After(deadline) {
			oc.t.Fatalf("in %v the customer received %d audio and %d video packets, the agent %d and %d; want 50 and 30 each",
				now.at.Sub(from.at), ca, cv, aa, av)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hangUp ends the call and returns when the customer is told.
func (oc *outageCall) hangUp() time.Time {
	oc.t.Helper()
	if err := oc.agent.Send(oc.ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
		oc.t.Fatal(err)
	}
	nextMsg(oc.t, oc.ctx, oc.cust, protocol.TypeEnded)
	return time.Now()
}

// finalManifest waits for the call's manifest as stored at its end (or by
// recovery): every file it names hashed.
func (oc *outageCall) finalManifest() manifest.Manifest {
	oc.t.Helper()
	return recordingtest.WaitManifest(oc.t, oc.ctx, oc.store, oc.room, recordingtest.Final)
}

// mediaFile is a participant's recorded file, probed.
type mediaFile struct {
	f          manifest.File
	info       mediaprobe.Info
	start, end time.Time // on the wall clock, by the manifest's start and offset
}

// files reads m's files: each media file probed (a decode error fails the
// test), and the transcript's texts.
func (oc *outageCall) files(m manifest.Manifest) (media map[string]mediaFile, chat []string) {
	oc.t.Helper()
	tmp := oc.t.TempDir()
	media = make(map[string]mediaFile)
	stored := recordingtest.CheckFiles(oc.t, oc.store, m)
	for _, f := range m.Files {
		data := stored[f.Key]
		switch f.Kind {
		case manifest.KindMedia:
			path := filepath.Join(tmp, f.Role+filepath.Ext(f.Key))
			if err := os.WriteFile(path, data, 0o600); err != nil {
				oc.t.Fatal(err)
			}
			info, err := mediaprobe.Probe(path)
			if err != nil {
				oc.t.Errorf("%s: %v", f.Role, err)
			}
			if _, dup := media[f.Role]; dup {
				oc.t.Errorf("two files of the %s", f.Role)
			}
			start := m.Start.Add(time.Duration(f.StartOffset * float64(time.Second)))
			media[f.Role] = mediaFile{f: f, info: info, start: start, end: start.Add(info.Duration)}
		case manifest.KindTranscript:
			for _, l := range recordingtest.Transcript(oc.t, data) {
				chat = append(chat, l.Text)
			}
		}
	}
	if len(media) != 2 {
		oc.t.Errorf("media files of %d sides, want 2: %+v", len(media), m.Files)
	}
	return media, chat
}

// A storage outage in the middle of a recorded call: the call goes on
// unaffected (media both ways, chat), nobody is told anything, and once
// storage is back the recording is stored whole: the manifest says it is
// complete, the files decode and cover the whole call, the chat said
// during the outage is in the transcript.
func TestRecordingStorageOutage(t *testing.T) {
	mediaprobe.Need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	oc := startOutageCall(t, ctx, 0, sample("sample.ivf"))
	oc.say(true, "hello", false)
	oc.say(false, "hello, how can I help", false)

	oc.srv.Stop()
	down := oc.mark()
	for i := range 6 {
		time.Sleep(time.Second)
		oc.say(i%2 == 0, fmt.Sprintf("during the outage %d", i), false)
	}
	oc.mediaFlowed(down)
	oc.srv.Restart(t)
	back := oc.mark()
	oc.say(true, "storage is back", false)
	oc.mediaFlowed(back)
	time.Sleep(time.Second)
	hungUp := oc.hangUp()

	m := oc.finalManifest()
	if !m.Complete || m.Incomplete != "" {
		t.Errorf("manifest: complete %v, incomplete %q; want complete", m.Complete, m.Incomplete)
	}
	media, chat := oc.files(m)
	for role, f := range media {
		t.Logf("%s: %v of media, from %v after publishing to %v before the hang-up; manifest duration %.3f s",
			role, f.info.Duration, f.start.Sub(oc.published), hungUp.Sub(f.end), f.f.Duration)
		// The file covers the call's media: from before media was seen
		// flowing to the hang-up, within half a second.
		if f.start.Before(oc.published) || f.start.After(oc.flowing) {
			t.Errorf("%s: the file starts %v after publishing; media flowed %v after", role, f.start.Sub(oc.published), oc.flowing.Sub(oc.published))
		}
		if gap := hungUp.Sub(f.end); gap > 500*time.Millisecond || gap < -500*time.Millisecond {
			t.Errorf("%s: the file ends %v before the hang-up, want within 0.5 s", role, gap)
		}
		if diff := f.info.Duration - time.Duration(f.f.Duration*float64(time.Second)); diff > 500*time.Millisecond || diff < -500*time.Millisecond {
			t.Errorf("%s: %v long, the manifest says %.3f s", role, f.info.Duration, f.f.Duration)
		}
	}
	// Every line is there, in the order said.
	if !slices.Equal(chat, oc.chat) {
		t.Errorf("transcript %q, want %q", chat, oc.chat)
	}
}

// highBitrateVP8 encodes a VP8 IVF of noise at about 6 Mbit/s, 2 s long
// (looped by the client), into dir: enough to fill a spool of a few MiB in
// seconds, and little enough for the loopback path to carry it steadily on
// a busy machine (at 12 Mbit/s it lost packets, and the recording skipped
// frames until keyframes).
func highBitrateVP8(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "noise.ivf")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=640x480:rate=30:duration=2,noise=alls=60:allf=t",
		"-an", "-c:v", "libvpx", "-b:v", "6M", "-minrate", "6M", "-maxrate", "6M", "-bufsize", "6M",
		"-g", "30", "-keyint_min", "30", "-auto-alt-ref", "0", "-deadline", "realtime", "-cpu-used", "8",
		"-pix_fmt", "yuv420p", "-f", "ivf", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	return out
}

// When storage stays down long enough for a file's spool to reach its
// bound, the recording stops and both sides are told why; the call goes
// on. Once storage is back, what was recorded is stored: the manifest says
// it is incomplete and why, and the stop is counted.
func TestRecordingSpoolFull(t *testing.T) {
	mediaprobe.Need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	video := highBitrateVP8(t, t.TempDir())
	fi, err := os.Stat(video)
	if err != nil {
		t.Fatal(err)
	}
	rate := float64(fi.Size()) / 2 // bytes a second
	// The smallest bound: twice the part size (S3's minimum, 5 MiB), room
	// for what is written while a part uploads. At the sample's rate it
	// fills in seconds once storage is down.
	const maxSpool = 2 * objstore.MinPartSize
	t.Logf("customer's video: %.1f Mbit/s; a %d MiB spool fills in at most %.1f s", rate*8/1e6, maxSpool>>20, maxSpool/rate)
	oc := startOutageCall(t, ctx, maxSpool, video)
	oc.say(true, "hello", false)

	oc.srv.Stop()
	down := time.Now()
	// Both sides are told, within the time the spool takes to fill and
	// then some; meanwhile and after, the call goes on.
	for _, c := range []struct {
		who string
		c   *client.Client
	}{{"customer", oc.cust}, {"agent", oc.agent}} {
		m := nextMsg(t, ctx, c.c, protocol.TypeRecording)
		if m.State != protocol.RecordingStopped || m.Reason != "storage" || m.Room != oc.room {
			t.Fatalf("%s: %+v, want recording stopped for storage", c.who, m)
		}
	}
	stopped := time.Now()
	t.Logf("recording stopped %v after storage went down", stopped.Sub(down))
	after := oc.mark()
	oc.say(false, "the recording stopped", true)
	oc.mediaFlowed(after)
	oc.srv.Restart(t)
	oc.say(true, "still here", true)
	oc.hangUp()

	m := oc.finalManifest()
	if m.Complete || !strings.Contains(m.Incomplete, "storage") {
		t.Errorf("manifest: complete %v, incomplete %q; want incomplete for storage", m.Complete, m.Incomplete)
	}
	t.Logf("manifest: incomplete %q", m.Incomplete)
	media, chat := oc.files(m)
	for role, f := range media {
		t.Logf("%s: %v of media, %d bytes, ending %v before both sides were told", role, f.info.Duration, f.f.Bytes, stopped.Sub(f.end))
		// Each file holds media up to the stop, none after.
		if f.end.After(stopped.Add(500*time.Millisecond)) || f.end.Before(down) {
			t.Errorf("%s: the file ends %v after storage went down; the recording stopped %v after", role, f.end.Sub(down), stopped.Sub(down))
		}
	}
	// Only what was said before the recording stopped is in the transcript.
	if want := oc.chat[:1]; !slices.Equal(chat, want) {
		t.Errorf("transcript %q, want %q", chat, want)
	}
	code, text := probe(t, oc.tn.n.URL()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics answers %d", code)
	}
	if !slices.Contains(strings.Split(text, "\n"), `helpcaster_recordings_stopped_total{reason="storage"} 1`) {
		t.Errorf("/metrics has no helpcaster_recordings_stopped_total{reason=\"storage\"} 1:\n%s", grepLines(text, "helpcaster_recording"))
	}
}
