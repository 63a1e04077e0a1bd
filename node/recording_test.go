package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/internal/mediaprobe"
	"github.com/helpcaster/helpcaster/internal/recordingtest"
	"github.com/helpcaster/helpcaster/internal/redistest"
	"github.com/helpcaster/helpcaster/internal/s3test"
	"github.com/helpcaster/helpcaster/objstore"
	"github.com/helpcaster/helpcaster/recorder/manifest"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// recordingOrgs is an organization whose queue "recorded" records every
// call, "consent" those of consenting customers, and "support" none.
func recordingOrgs(t *testing.T) *auth.Directory {
	t.Helper()
	dir, err := auth.NewDirectory([]auth.Org{{ID: "acme", APIKey: "acme-key", APISecret: []byte(strings.Repeat("s", 32)),
		Queues: []auth.Queue{{Name: "recorded", Record: auth.RecordAlways}, {Name: "consent", Record: auth.RecordConsent},
			{Name: "support"}}}})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// startRecordingNode runs one node recording into rc.
func startRecordingNode(t *testing.T, dir *auth.Directory, rc *RecordingsConfig) *testNode {
	t.Helper()
	return runTestNode(t, Config{Orgs: dir, Recordings: rc})
}

// joinQueue joins queue q with a token the test mints.
func joinQueue(t *testing.T, ctx context.Context, dir *auth.Directory, ws, role, name, q string, consent bool) *client.Client {
	t.Helper()
	org, _ := dir.Org("acme")
	tok, err := auth.Mint(org, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u-" + name}, Role: role, Name: name,
		Queue: q, RecordConsent: consent}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, client.Options{URL: ws, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.Join(ctx, tok); err != nil {
		t.Fatalf("%s join: %v", name, err)
	}
	return c
}

// recordedCall puts customer Bob (on custWS) in a call with agent Ann (on
// agentWS) in the queue "recorded", checks both are told it is recorded,
// and has both publish the sample files until media flows both ways. It
// returns the call's id and when it was assigned.
func recordedCall(t *testing.T, ctx context.Context, dir *auth.Directory, custWS, agentWS string) (cust, agent *client.Client, room string, started time.Time) {
	t.Helper()
	agent = joinQueue(t, ctx, dir, agentWS, protocol.RoleAgent, "Ann", "recorded", false)
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	cust = joinQueue(t, ctx, dir, custWS, protocol.RoleCustomer, "Bob", "recorded", false)
	room = nextMsg(t, ctx, cust, protocol.TypeAssigned).Room
	nextMsg(t, ctx, agent, protocol.TypeAssigned)
	started = time.Now()
	recordingState(t, ctx, "customer", cust, protocol.RecordingStarted)
	recordingState(t, ctx, "agent", agent, protocol.RecordingStarted)
	for _, c := range []*client.Client{cust, agent} {
		if err := c.PublishFiles(ctx, sample("sample.ivf"), sample("sample.ogg")); err != nil {
			t.Fatal(err)
		}
	}
	waitMedia(t, ctx, "customer", cust)
	waitMedia(t, ctx, "agent", agent)
	return cust, agent, room, started
}

// recordingState waits for c's next recording message and checks its state.
func recordingState(t *testing.T, ctx context.Context, who string, c *client.Client, want string) {
	t.Helper()
	m := nextMsg(t, ctx, c, protocol.TypeRecording)
	if m.State != want {
		t.Fatalf("%s: recording %q, want %q", who, m.State, want)
	}
}

// A recorded call, to local disk and to an S3-compatible server: both
// sides are told it is recorded, paused and resumed; when it ends, storage
// holds both participants' files (they decode, they last as long as the
// media sent), the chat without what was said while paused, and a manifest
// that names them all with their sizes and hashes.
func TestRecordedCall(t *testing.T) {
	mediaprobe.Need(t)
	t.Run("local", func(t *testing.T) {
		dir := t.TempDir()
		store, err := objstore.Local(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		recordCall(t, &RecordingsConfig{Dir: dir, SpoolDir: t.TempDir()}, store)
	})
	t.Run("s3", func(t *testing.T) {
		srv := s3test.Start(t)
		cfg := objstore.S3Config{Endpoint: srv.Endpoint(), Bucket: srv.Bucket, Prefix: "rec", Region: s3test.Region,
			PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
		store, err := objstore.NewS3(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		recordCall(t, &RecordingsConfig{S3: &cfg, SpoolDir: t.TempDir()}, store)
	})
}

func recordCall(t *testing.T, rc *RecordingsConfig, store objstore.Store) {
	dir := recordingOrgs(t)
	tn := startRecordingNode(t, dir, rc)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	cust, agent, room, started := recordedCall(t, ctx, dir, tn.ws, tn.ws)
	flowing := time.Now()

	say := func(c *client.Client, to *client.Client, text string) {
		t.Helper()
		if err := c.Send(ctx, protocol.Message{Type: protocol.TypeChat, Text: text}); err != nil {
			t.Fatal(err)
		}
		if m := nextMsg(t, ctx, to, protocol.TypeChat); m.Text != text {
			t.Fatalf("chat %q arrived as %q", text, m.Text)
		}
	}
	say(cust, agent, "hello, I need help")
	say(agent, cust, "of course")

	// The customer may not pause; the agent may, and both are told.
	if err := cust.Send(ctx, protocol.Message{Type: protocol.TypeRecording, State: protocol.RecordingPaused, ID: "p"}); err != nil {
		t.Fatal(err)
	}
	if m := nextMsg(t, ctx, cust, protocol.TypeError); m.Code != string(protocol.CodeForbidden) {
		t.Fatalf("customer's pause: %+v", m)
	}
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeRecording, State: protocol.RecordingPaused}); err != nil {
		t.Fatal(err)
	}
	recordingState(t, ctx, "customer", cust, protocol.RecordingPaused)
	recordingState(t, ctx, "agent", agent, protocol.RecordingPaused)
	say(cust, agent, "my card number is 4111 1111 1111 1111")
	time.Sleep(time.Second)
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeRecording, State: protocol.RecordingResumed}); err != nil {
		t.Fatal(err)
	}
	recordingState(t, ctx, "customer", cust, protocol.RecordingResumed)
	recordingState(t, ctx, "agent", agent, protocol.RecordingResumed)
	say(agent, cust, "thank you, done")
	time.Sleep(2 * time.Second)

	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
		t.Fatal(err)
	}
	nextMsg(t, ctx, cust, protocol.TypeEnded)
	hungUp := time.Now()

	// The manifest is first stored provisionally, then replaced at the end.
	m := recordingtest.WaitManifest(t, ctx, store, room, recordingtest.Complete)
	if m.Org != "acme" || m.Queue != "recorded" || m.Call != room {
		t.Fatalf("manifest: %+v", m)
	}
	if !slices.Equal([]manifest.Participant{{Role: "customer", Subject: "u-Bob"}, {Role: "agent", Subject: "u-Ann"}}, m.Participants) {
		t.Errorf("participants %+v", m.Participants)
	}
	if len(m.Paused) != 1 || m.Paused[0].End.Sub(m.Paused[0].Start) < time.Second {
		t.Errorf("paused %+v, want one span of at least 1 s", m.Paused)
	}
	tmp := t.TempDir()
	var media int
	stored := recordingtest.CheckFiles(t, store, m)
	for _, f := range m.Files {
		data := stored[f.Key]
		if strings.Contains(f.Key, "Bob") || strings.Contains(f.Key, "u-") {
			t.Errorf("personal data in key %s", f.Key)
		}
		switch f.Kind {
		case manifest.KindMedia:
			media++
			path := filepath.Join(tmp, f.Role+".webm")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			info, err := mediaprobe.Probe(path)
			if err != nil {
				t.Error(err)
			}
			if !slices.Equal(info.Codecs, []string{"opus", "vp8"}) {
				t.Errorf("%s: codecs %v", f.Role, info.Codecs)
			}
			// The file runs from the first frame to the hang-up: at least
			// from when media was flowing, at most from when the call began.
			d := info.Duration
			if d < hungUp.Sub(flowing)-500*time.Millisecond || d > hungUp.Sub(started)+500*time.Millisecond {
				t.Errorf("%s: %v long; media flowed %v, the call lasted %v", f.Role, d, hungUp.Sub(flowing), hungUp.Sub(started))
			}
			if diff := d - time.Duration(f.Duration*float64(time.Second)); diff > 500*time.Millisecond || diff < -500*time.Millisecond {
				t.Errorf("%s: %v long, the manifest says %.3f s", f.Role, d, f.Duration)
			}
			if info.Frames["video"] < 30 || info.Frames["audio"] < 100 {
				t.Errorf("%s: frames %v", f.Role, info.Frames)
			}
		case manifest.KindTranscript:
			var texts []string
			for _, l := range recordingtest.Transcript(t, data) {
				texts = append(texts, l.Role+": "+l.Text)
			}
			want := []string{"customer: hello, I need help", "agent: of course", "agent: thank you, done"}
			if !slices.Equal(texts, want) {
				t.Errorf("transcript %q, want %q", texts, want)
			}
		}
	}
	if media != 2 {
		t.Errorf("%d media files, want 2: %+v", media, m.Files)
	}
}

// Only the calls the queue's policy names are recorded: none in a queue
// with record: off, and in a consent queue only a consenting customer's.
func TestRecordingPolicy(t *testing.T) {
	dir := recordingOrgs(t)
	root := t.TempDir()
	tn := startRecordingNode(t, dir, &RecordingsConfig{Dir: root, SpoolDir: t.TempDir()})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, c := range []struct {
		queue    string
		consent  bool
		recorded bool
	}{{"support", true, false}, {"consent", false, false}, {"consent", true, true}} {
		agent := joinQueue(t, ctx, dir, tn.ws, protocol.RoleAgent, fmt.Sprintf("Ann-%d", i), c.queue, false)
		if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
			t.Fatal(err)
		}
		cust := joinQueue(t, ctx, dir, tn.ws, protocol.RoleCustomer, fmt.Sprintf("Bob-%d", i), c.queue, c.consent)
		nextMsg(t, ctx, cust, protocol.TypeAssigned)
		nextMsg(t, ctx, agent, protocol.TypeAssigned)
		if err := cust.Send(ctx, protocol.Message{Type: protocol.TypeChat, Text: "hi"}); err != nil {
			t.Fatal(err)
		}
		// The chat reaches the agent after any recording message.
		m := nextMsg(t, ctx, agent, protocol.TypeChat, protocol.TypeRecording)
		if got := m.Type == protocol.TypeRecording; got != c.recorded {
			t.Errorf("queue %s, consent %v: recorded %v", c.queue, c.consent, got)
		}
		if m.Type == protocol.TypeRecording {
			nextMsg(t, ctx, agent, protocol.TypeChat) // written before the pause
		}
		if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeRecording, State: protocol.RecordingPaused}); err != nil {
			t.Fatal(err)
		}
		if !c.recorded {
			if m := nextMsg(t, ctx, agent, protocol.TypeError); m.Code != string(protocol.CodeInvalidState) {
				t.Errorf("pausing an unrecorded call: %+v", m)
			}
		}
		if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
			t.Fatal(err)
		}
		nextMsg(t, ctx, cust, protocol.TypeEnded)
		agent.Close() // or it would take the next case's customer
	}
	// Only the one recorded call left anything in storage: its chat and
	// manifest.
	store, err := objstore.Local(root)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		objs, err := store.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var manifests []string
		for _, o := range objs {
			if strings.HasSuffix(o.Key, "/"+manifest.ManifestName) {
				manifests = append(manifests, o.Key)
			}
		}
		if len(manifests) == 1 && len(objs) == 2 {
			m, err := manifest.Parse(recordingtest.ReadObject(t, store, manifests[0]))
			if err != nil {
				t.Fatal(err)
			}
			if m.Complete && m.Queue == "consent" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("storage holds %+v; want one consenting call's chat and manifest", objs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A recorded call whose sides are on two nodes: the node hosting the room
// records it, the chat relayed through it is in the transcript, and the
// agent's pause reaches it; the manifest names both sides' files.
func TestRecordedCallAcrossNodes(t *testing.T) {
	mediaprobe.Need(t)
	rs := redistest.Start(t)
	dir := recordingOrgs(t)
	root := t.TempDir() // one store for both nodes, as one bucket would be
	nodes := startNodesWith(t, rs, func(id string) Config {
		return Config{Orgs: dir, NodeID: id, Recordings: &RecordingsConfig{Dir: root, SpoolDir: t.TempDir()}}
	}, "n1", "n2")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cust, agent, room, _ := recordedCall(t, ctx, dir, nodes[0].ws, nodes[1].ws)
	if err := cust.Send(ctx, protocol.Message{Type: protocol.TypeChat, Text: "from the customer"}); err != nil {
		t.Fatal(err)
	}
	nextMsg(t, ctx, agent, protocol.TypeChat)
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeRecording, State: protocol.RecordingPaused}); err != nil {
		t.Fatal(err)
	}
	recordingState(t, ctx, "customer", cust, protocol.RecordingPaused)
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeRecording, State: protocol.RecordingResumed}); err != nil {
		t.Fatal(err)
	}
	recordingState(t, ctx, "customer", cust, protocol.RecordingResumed)
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeChat, Text: "from the agent"}); err != nil {
		t.Fatal(err)
	}
	nextMsg(t, ctx, cust, protocol.TypeChat)
	time.Sleep(time.Second)
	if err := cust.Send(ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
		t.Fatal(err)
	}
	nextMsg(t, ctx, agent, protocol.TypeEnded)

	store, err := objstore.Local(root)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m := recordingtest.WaitManifest(t, ctx, store, room, recordingtest.Complete)
	if len(m.Paused) != 1 || (m.Node != "n1" && m.Node != "n2") {
		t.Errorf("manifest %+v", m)
	}
	kinds := map[string]int{}
	for _, f := range m.Files {
		kinds[f.Kind+":"+f.Role]++
		if f.Kind == manifest.KindTranscript {
			lines := strings.Count(string(recordingtest.ReadObject(t, store, f.Key)), "\n")
			if lines != 2 {
				t.Errorf("transcript has %d lines, want 2", lines)
			}
		}
	}
	if kinds["media:customer"] != 1 || kinds["media:agent"] != 1 || kinds["transcript:"] != 1 {
		t.Errorf("files %+v", m.Files)
	}
}

// A customer whose connection drops mid-call, while the recording is
// paused, resumes into the call: it is told the recording is paused, its
// new tracks are recorded once resumed, and storage holds playable files
// with the customer's media from before and after the drop.
func TestRecordedCallResumed(t *testing.T) {
	mediaprobe.Need(t)
	dir := recordingOrgs(t)
	root := t.TempDir()
	tn := startRecordingNode(t, dir, &RecordingsConfig{Dir: root, SpoolDir: t.TempDir()})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	agent := joinQueue(t, ctx, dir, tn.ws, protocol.RoleAgent, "Ann", "recorded", false)
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	org, _ := dir.Org("acme")
	tok, err := auth.Mint(org, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u-Bob"}, Role: protocol.RoleCustomer,
		Name: "Bob", Queue: "recorded"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cust, err := client.Dial(ctx, client.Options{URL: tn.ws, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cust.Close)
	welcome, err := cust.Join(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	room := nextMsg(t, ctx, cust, protocol.TypeAssigned).Room
	recordingState(t, ctx, "customer", cust, protocol.RecordingStarted)
	recordingState(t, ctx, "agent", agent, protocol.RecordingStarted)
	for _, c := range []*client.Client{cust, agent} {
		if err := c.PublishFiles(ctx, sample("sample.ivf"), sample("sample.ogg")); err != nil {
			t.Fatal(err)
		}
	}
	waitMedia(t, ctx, "agent", agent)
	time.Sleep(time.Second)
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeRecording, State: protocol.RecordingPaused}); err != nil {
		t.Fatal(err)
	}
	recordingState(t, ctx, "agent", agent, protocol.RecordingPaused)

	cust.Drop()
	again, err := client.Dial(ctx, client.Options{URL: tn.ws, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Close)
	if _, err := again.Resume(ctx, welcome.Resume); err != nil {
		t.Fatalf("resume: %v", err)
	}
	nextMsg(t, ctx, again, protocol.TypeAssigned)
	recordingState(t, ctx, "resumed customer", again, protocol.RecordingPaused)
	if err := again.PublishFiles(ctx, sample("sample.ivf"), sample("sample.ogg")); err != nil {
		t.Fatal(err)
	}
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeRecording, State: protocol.RecordingResumed}); err != nil {
		t.Fatal(err)
	}
	recordingState(t, ctx, "resumed customer", again, protocol.RecordingResumed)
	before := agent.Stats().VideoPackets
	for agent.Stats().VideoPackets < before+60 { // two seconds of the new tracks
		if ctx.Err() != nil {
			t.Fatal("no video from the resumed customer")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
		t.Fatal(err)
	}
	nextMsg(t, ctx, again, protocol.TypeEnded)

	store, err := objstore.Local(root)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m := recordingtest.WaitManifest(t, ctx, store, room, recordingtest.Complete)
	var custVideo int
	tmp := t.TempDir()
	for _, f := range m.Files {
		if f.Kind != manifest.KindMedia {
			continue
		}
		path := filepath.Join(tmp, filepath.Base(f.Key))
		if err := os.WriteFile(path, recordingtest.ReadObject(t, store, f.Key), 0o600); err != nil {
			t.Fatal(err)
		}
		info, err := mediaprobe.Probe(path)
		if err != nil {
			t.Error(err)
		}
		if f.Role == protocol.RoleCustomer {
			custVideo += info.Frames["video"]
		}
	}
	// About a second before the pause and two after the resume, at 30
	// frames a second.
	if custVideo < 45 {
		t.Errorf("the customer's files hold %d video frames, want those from before the drop and after the resume: %+v", custVideo, m.Files)
	}
}
