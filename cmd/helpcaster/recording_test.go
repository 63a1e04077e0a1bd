package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/internal/mediaprobe"
	"github.com/helpcaster/helpcaster/internal/nodetest"
	"github.com/helpcaster/helpcaster/internal/recordingtest"
	"github.com/helpcaster/helpcaster/internal/s3test"
	"github.com/helpcaster/helpcaster/objstore"
	"github.com/helpcaster/helpcaster/recorder/manifest"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// Bounds of what a recording cut short by SIGKILL keeps. A killed process
// loses what it had not handed to the kernel: the spool is written (not
// yet fsynced, which only a machine crash needs) as the muxer emits it, so
// what is lost is what the recording still held: the packets queued for
// its goroutine (drained every 20 ms), the depacketizer's reorder buffer,
// and the muxer's 500 ms window that puts audio and video in time order.
const (
	// killLoss is how much media before the kill a recovered file may
	// lack, besides the packets on their way through the SFU.
	killLoss = 1500 * time.Millisecond
	// killChatLoss: a chat line the other side received this long before
	// the kill is in the transcript (the node writes it to the spool just
	// after relaying it).
	killChatLoss = time.Second
	// frameSlack is what a file's end may pass the wall clock by: its last
	// frame's duration and the RTP-to-wall-clock mapping's error.
	frameSlack = 150 * time.Millisecond
)

// recordedConfig writes an org config whose only queue records every call.
func recordedConfig(t *testing.T) (string, *auth.Org) {
	t.Helper()
	secret := strings.Repeat("r", 40)
	config := filepath.Join(t.TempDir(), "helpcaster.yaml")
	yaml := "orgs:\n  - id: acme\n    api_key: acme-key\n    api_secret: " + secret +
		"\n    queues:\n      - name: recorded\n        record: always\n"
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return config, &auth.Org{ID: "acme", APIKey: "acme-key", APISecret: []byte(secret),
		Queues: []auth.Queue{{Name: "recorded", Record: auth.RecordAlways}}}
}

// TestRecordingSurvivesKill records a call on a real serve process, with
// media both ways and chat, SIGKILLs the process mid-call and starts it
// again on the same directories: the restarted node finishes the
// recording by itself. Its manifest says it is incomplete and why; each
// participant's file decodes and holds the media up to shortly before the
// kill and no more than was sent; the chat lines sent before then are in
// the transcript. Once with the recordings on local disk, once in an
// S3-compatible server.
func TestRecordingSurvivesKill(t *testing.T) {
	mediaprobe.Need(t)
	bin := nodetest.Build(t, ".")
	t.Run("local", func(t *testing.T) {
		dir := t.TempDir()
		store, err := objstore.Local(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		killMidCall(t, bin, store, []string{"--recordings-dir", dir, "--recordings-spool", t.TempDir()})
	})
	t.Run("s3", func(t *testing.T) {
		srv := s3test.Start(t)
		store, err := objstore.NewS3(objstore.S3Config{Endpoint: srv.Endpoint(), Bucket: srv.Bucket, Prefix: "rec",
			Region: s3test.Region, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		// The node takes its credentials from the environment, as in
		// production.
		t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
		killMidCall(t, bin, store, []string{"--recordings-url", "s3://" + srv.Bucket + "/rec",
			"--recordings-endpoint", "http://" + srv.Endpoint(), "--recordings-path-style",
			"--recordings-region", s3test.Region, "--recordings-spool", t.TempDir()})
	})
}

// chatSent is a chat line and when the other side had it.
type chatSent struct {
	text string
	got  time.Time
}

func killMidCall(t *testing.T, bin string, store objstore.Store, flags []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	config, org := recordedConfig(t)
	f := &procFixture{t: t, ctx: ctx, bin: bin, config: config, org: org}
	n := nodetest.Start(t, bin, nodetest.Options{ID: "rec", Config: config, Extra: flags})

	agent := f.join(n, protocol.RoleAgent, "Ann", 1, true)
	cust := f.join(n, protocol.RoleCustomer, "Bob", 0, true)
	f.send(agent, protocol.Message{Type: protocol.TypeAvailable})
	room := f.next(cust, protocol.TypeAssigned).Room
	f.next(agent, protocol.TypeAssigned)
	for _, c := range []*client.Client{cust, agent} {
		if m := f.next(c, protocol.TypeRecording); m.State != protocol.RecordingStarted {
			t.Fatalf("recording %+v, want started", m)
		}
	}
	published := time.Now() // no media was sent before this
	for _, c := range []*client.Client{cust, agent} {
		if err := c.PublishFiles(ctx, filepath.Join("..", "..", "testdata", "sample.ivf"),
			filepath.Join("..", "..", "testdata", "sample.ogg")); err != nil {
			t.Fatal(err)
		}
	}
	for who, c := range map[string]*client.Client{"customer": cust, "agent": agent} {
		if err := c.WaitMedia(ctx, 50); err != nil {
			t.Fatalf("%s: %v", who, err)
		}
	}
	flowing := time.Now() // both sides' media had reached the node by now

	// Chat both ways while the media flows, for several seconds.
	var sent []chatSent
	for i := 0; time.Since(flowing) < 8*time.Second; i++ {
		from, to := cust, agent
		if i%2 == 1 {
			from, to = agent, cust
		}
		text := fmt.Sprintf("line %d", i)
		f.chat(from, to, text)
		sent = append(sent, chatSent{text: text, got: time.Now()})
		time.Sleep(300 * time.Millisecond)
	}
	// One more line on its way as the node dies: it may be kept or not.
	f.send(cust, protocol.Message{Type: protocol.TypeChat, Text: "last words"})
	killed := time.Now()
	n.Kill()
	t.Logf("killed %v after publishing, %v after media flowed both ways", killed.Sub(published), killed.Sub(flowing))

	n.Restart(t)
	m := recordingtest.WaitManifest(t, ctx, store, room, recordingtest.Final)
	if m.Complete || m.Incomplete == "" {
		t.Fatalf("recovered manifest: complete %v, incomplete %q; want incomplete with a reason", m.Complete, m.Incomplete)
	}
	t.Logf("manifest: incomplete %q", m.Incomplete)

	tmp := t.TempDir()
	roles := map[string]bool{}
	var transcript []manifest.Line
	stored := recordingtest.CheckFiles(t, store, m)
	for _, mf := range m.Files {
		data := stored[mf.Key]
		switch mf.Kind {
		case manifest.KindMedia:
			roles[mf.Role] = true
			path := filepath.Join(tmp, mf.Role+filepath.Ext(mf.Key))
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			info, err := mediaprobe.Probe(path)
			if err != nil {
				t.Errorf("%s: %v", mf.Role, err)
			}
			if !slices.Equal(info.Codecs, []string{"opus", "vp8"}) {
				t.Errorf("%s: codecs %v", mf.Role, info.Codecs)
			}
			// The file starts at its first frame, after publishing began
			// and by the time media flowed; it ends near the kill.
			d := info.Duration
			if d > killed.Sub(published)+frameSlack {
				t.Errorf("%s: %v of media, more than the %v sent", mf.Role, d, killed.Sub(published))
			}
			if d < killed.Sub(flowing)-killLoss {
				t.Errorf("%s: %v of media; media flowed for %v before the kill (at most %v may be lost)",
					mf.Role, d, killed.Sub(flowing), killLoss)
			}
			// Where the file ends on the wall clock, by the manifest's
			// start offset: how much before the kill its media stops.
			end := m.Start.Add(time.Duration((mf.StartOffset) * float64(time.Second))).Add(d)
			t.Logf("%s: %v of media (%d video, %d audio frames), ending %v before the kill; manifest duration %.3f s",
				mf.Role, d, info.Frames["video"], info.Frames["audio"], killed.Sub(end), mf.Duration)
			if end.After(killed.Add(frameSlack)) || killed.Sub(end) > killLoss {
				t.Errorf("%s: the file ends %v before the kill, want within [-%v, %v]", mf.Role, killed.Sub(end), frameSlack, killLoss)
			}
		case manifest.KindTranscript:
			transcript = append(transcript, recordingtest.Transcript(t, data)...)
		}
	}
	if !roles[protocol.RoleCustomer] || !roles[protocol.RoleAgent] || len(roles) != 2 {
		t.Errorf("media files of %v, want the customer's and the agent's: %+v", roles, m.Files)
	}
	// The transcript is the lines in the order sent, perhaps without the
	// last few, perhaps with the one sent as the node died; every line the
	// other side had killChatLoss before the kill is there.
	var texts []string
	for _, l := range transcript {
		texts = append(texts, l.Text)
	}
	var want []string
	for i, s := range sent {
		if killed.Sub(s.got) >= killChatLoss || i < len(texts) {
			want = append(want, s.text)
		}
	}
	if len(texts) == len(sent)+1 {
		want = append(want, "last words")
	}
	if !slices.Equal(texts, want) {
		t.Errorf("transcript %q, want %q", texts, want)
	}
	t.Logf("transcript: %d of %d lines sent before the kill (the last was received %v before it)",
		len(texts), len(sent), killed.Sub(sent[len(sent)-1].got))
}
