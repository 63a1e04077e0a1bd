package callrec

import (
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
	"go.uber.org/goleak"

	"github.com/helpcaster/helpcaster/internal/mediafile"
	"github.com/helpcaster/helpcaster/internal/mediaprobe"
	"github.com/helpcaster/helpcaster/internal/recordingtest"
	"github.com/helpcaster/helpcaster/objstore"
	"github.com/helpcaster/helpcaster/recorder"
	"github.com/helpcaster/helpcaster/recorder/manifest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is the simulated call clock's start.
var t0 = time.Date(2026, 12, 8, 9, 30, 0, 0, time.UTC)

type simClock struct{ ns atomic.Int64 }

func newSimClock() *simClock {
	c := new(simClock)
	c.set(t0)
	return c
}
func (c *simClock) set(t time.Time) { c.ns.Store(t.UnixNano()) }
func (c *simClock) now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }

// pkt is one packet or sender report of a simulated publisher.
type pkt struct {
	at    time.Duration // after t0
	sink  int           // index into the sinks fed
	p     *rtp.Packet   // nil: a sender report
	ssrc  uint32
	ntp   uint64
	rtpTS uint32
}

// publish packetizes a sample file as sink number sink, from offset on
// the call clock, with a sender report every second.
func publish(t *testing.T, path string, sink int, offset time.Duration) ([]pkt, time.Duration) {
	t.Helper()
	f, err := mediafile.Read(filepath.Join("..", "..", "testdata", path))
	if err != nil {
		t.Fatal(err)
	}
	rate := uint32(48000)
	var pay rtp.Payloader = &codecs.OpusPayloader{}
	if strings.HasSuffix(path, ".ivf") {
		rate, pay = 90000, &codecs.VP8Payloader{EnablePictureID: true}
	}
	ssrc := uint32(1000 + sink)
	p := rtp.NewPacketizerWithOptions(1200, pay, rtp.NewRandomSequencer(), rate, rtp.WithSSRC(ssrc), rtp.WithPayloadType(96), rtp.WithTimestamp(0))
	samples := uint32(f.Duration.Seconds()*float64(rate) + 0.5)
	var out []pkt
	next := time.Duration(0)
	for i, data := range f.Data {
		at := time.Duration(i) * f.Duration
		if at >= next {
			out = append(out, pkt{at: offset + at, sink: sink, ssrc: ssrc,
				ntp: toNTP(t0.Add(offset + at)), rtpTS: uint32(at.Seconds() * float64(rate))})
			next += time.Second
		}
		for _, rp := range p.Packetize(data, samples) {
			out = append(out, pkt{at: offset + at, sink: sink, p: rp})
		}
	}
	return out, time.Duration(len(f.Data)) * f.Duration
}

func toNTP(t time.Time) uint64 {
	sec := uint64(t.Unix() + 2208988800)
	return sec<<32 | uint64(t.Nanosecond())<<32/1e9
}

// feed sends the packets in time order, calling at(d) as the clock passes
// each whole second d.
func feed(t *testing.T, clk *simClock, sinks []*recorder.Sink, pkts []pkt, at func(time.Duration)) {
	t.Helper()
	slices.SortStableFunc(pkts, func(a, b pkt) int { return int(a.at - b.at) })
	nextWhole := time.Duration(0)
	for i, e := range pkts {
		for e.at >= nextWhole {
			if at != nil {
				at(nextWhole)
			}
			nextWhole += time.Second
		}
		clk.set(t0.Add(e.at))
		if e.p == nil {
			sinks[e.sink].SenderReport(e.ssrc, e.ntp, e.rtpTS)
			continue
		}
		b, _ := e.p.Marshal()
		var rp rtp.Packet
		if err := rp.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		sinks[e.sink].WriteRTP(&rp.Header, rp.Payload)
		if i%64 == 0 {
			time.Sleep(time.Millisecond) // let the recorder drain: the test counts every frame
		}
	}
}

var (
	vp8  = recorder.TrackInfo{Kind: "video", MimeType: "video/VP8", ClockRate: 90000}
	opus = recorder.TrackInfo{Kind: "audio", MimeType: "audio/opus", ClockRate: 48000, Channels: 2}
)

func newRecorder(t *testing.T, store objstore.Store, spool string, clk *simClock) *Recorder {
	t.Helper()
	r, err := New(Config{Store: store, SpoolDir: spool, Node: "node-a", Now: clk.now,
		Recording: recorder.Config{QueuePackets: 8192}, Heartbeat: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func localStore(t *testing.T) (*objstore.LocalStore, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := objstore.Local(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func getManifest(t *testing.T, store objstore.Store, prefix string) manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse(recordingtest.ReadObject(t, store, prefix+"/"+manifest.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkStored checks every file the manifest names is in store with its
// size and hash, and returns their local paths (the store's root is dir).
func checkStored(t *testing.T, store objstore.Store, dir string, m manifest.Manifest) map[string]string {
	t.Helper()
	paths := map[string]string{}
	recordingtest.CheckFiles(t, store, m)
	for _, f := range m.Files {
		name := f.Role
		if f.Kind == manifest.KindTranscript {
			name = "chat"
		}
		paths[name] = filepath.Join(dir, filepath.FromSlash(f.Key))
	}
	return paths
}

// probe returns a file's duration and codecs; ffmpeg must decode it
// without an error.
func probe(t *testing.T, path string) (time.Duration, []string) {
	t.Helper()
	info, err := mediaprobe.Probe(path)
	if err != nil {
		t.Error(err)
	}
	return info.Duration, info.Codecs
}

func within(d, want, tol time.Duration) bool { return d > want-tol && d < want+tol }

// A call with both sides publishing, chat, and a pause: both files, the
// transcript and the manifest are stored and agree.
func TestCallRecorded(t *testing.T) {
	mediaprobe.Need(t)
	store, dir := localStore(t)
	clk := newSimClock()
	rec := newRecorder(t, store, t.TempDir(), clk)
	var stops atomic.Int32
	call, err := rec.Start(Info{Org: "acme", Queue: "support", Call: "c1",
		Participants: []Participant{{Role: "customer", Subject: "u-1"}, {Role: "agent", Subject: "a-1"}}},
		func(string) { stops.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	var asks atomic.Int32
	var sinks []*recorder.Sink
	for _, tr := range []struct {
		role string
		info recorder.TrackInfo
	}{{"customer", opus}, {"customer", vp8}, {"agent", opus}, {"agent", vp8}} {
		s, err := call.AddTrack(tr.role, tr.info, func() { asks.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		sinks = append(sinks, s)
	}
	var all []pkt
	var dur time.Duration
	for i, f := range []string{"sample.ogg", "sample.ivf", "sample.ogg", "sample.ivf"} {
		offset := time.Duration(0)
		if i >= 2 {
			offset = 500 * time.Millisecond // the agent's media starts later
		}
		p, d := publish(t, f, i, offset)
		all = append(all, p...)
		dur = max(dur, d)
	}
	feed(t, clk, sinks, all, func(sec time.Duration) {
		switch sec {
		case time.Second:
			call.Chat("customer", "Visitor 1", "hello")
		case 2 * time.Second:
			if err := call.Pause(); err != nil {
				t.Error(err)
			}
			call.Chat("customer", "Visitor 1", "my card is 4111") // withheld
		case 3 * time.Second:
			if err := call.Resume(); err != nil {
				t.Error(err)
			}
			call.Chat("agent", "Agent 7", "thanks")
		}
	})
	for _, s := range sinks {
		if s.Dropped() != 0 {
			t.Fatalf("the recorder dropped %d packets", s.Dropped())
		}
		s.Close()
	}
	call.End()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if stops.Load() != 0 {
		t.Errorf("onStop called %d times", stops.Load())
	}

	m := getManifest(t, store, call.Prefix())
	if !m.Complete || m.Org != "acme" || m.Call != "c1" || m.Node != "node-a" || len(m.Participants) != 2 {
		t.Errorf("manifest: %+v", m)
	}
	if len(m.Paused) != 1 || !within(m.Paused[0].End.Sub(m.Paused[0].Start), time.Second, 50*time.Millisecond) {
		t.Errorf("paused spans %+v, want one of 1 s", m.Paused)
	}
	paths := checkStored(t, store, dir, m)
	for _, role := range []string{"customer", "agent"} {
		path, ok := paths[role]
		if !ok {
			t.Fatalf("no %s file in %+v", role, m.Files)
		}
		d, codecs := probe(t, path)
		if !slices.Equal(codecs, []string{"opus", "vp8"}) {
			t.Errorf("%s: codecs %v", role, codecs)
		}
		if !within(d, dur, 500*time.Millisecond) {
			t.Errorf("%s: duration %v, sent %v", role, d, dur)
		}
	}
	for _, f := range m.Files {
		if f.Role == "agent" && !within(time.Duration(f.StartOffset*float64(time.Second)), 500*time.Millisecond, 40*time.Millisecond) {
			t.Errorf("agent's file starts at %.3f s, want 0.5", f.StartOffset)
		}
		if strings.Contains(f.Key, "u-1") || strings.Contains(f.Key, "Visitor") {
			t.Errorf("personal data in key %s", f.Key)
		}
	}
	lines := readLines(t, paths["chat"])
	if len(lines) != 2 || lines[0].Text != "hello" || lines[1].Text != "thanks" || lines[1].Role != "agent" || lines[1].Name != "Agent 7" {
		t.Errorf("transcript %+v", lines)
	}
	if lines[0].At != 1 || lines[1].At != 3 {
		t.Errorf("transcript times %v, %v; want 1 and 3", lines[0].At, lines[1].At)
	}
	left, _ := os.ReadDir(rec.cfg.SpoolDir)
	if len(left) != 0 {
		t.Errorf("the spool directory still holds %d entries", len(left))
	}
}

func readLines(t *testing.T, path string) []manifest.Line {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return recordingtest.Transcript(t, data)
}

// A node that stops mid-call (its uploads' context ends, as when it is
// killed) leaves spools and a journal; the next run's Recover stores
// what they hold and a manifest marked incomplete.
func TestRecoverCallCutShort(t *testing.T) {
	mediaprobe.Need(t)
	store, dir := localStore(t)
	spool := t.TempDir()
	clk := newSimClock()
	rec := newRecorder(t, store, spool, clk)
	call, err := rec.Start(Info{Org: "acme", Queue: "support", Call: "c2",
		Participants: []Participant{{Role: "customer", Subject: "u-2"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := call.AddTrack("customer", opus, func() {})
	if err != nil {
		t.Fatal(err)
	}
	v, err := call.AddTrack("customer", vp8, func() {})
	if err != nil {
		t.Fatal(err)
	}
	pa, _ := publish(t, "sample.ogg", 0, 0)
	pv, dur := publish(t, "sample.ivf", 1, 0)
	feed(t, clk, []*recorder.Sink{a, v}, append(pa, pv...), nil)
	// Let the heartbeat note the call alive after the last packet.
	waitFor(t, func() bool { return call.jr.snapshot().Files != nil && len(call.jr.snapshot().Files) == 1 })
	time.Sleep(200 * time.Millisecond)

	// The node dies: its goroutines stop without finishing anything, and
	// the kernel drops its lock.
	rec.stop()
	rec.lock.unlock()
	for _, f := range call.fileList() {
		<-f.done
	}
	<-call.hbDone
	if _, err := store.Stat(context.Background(), call.Prefix()+"/customer.webm"); err == nil {
		t.Fatal("the file was stored before the crash; the test needs it in the spool")
	}

	next := newRecorder(t, store, spool, clk)
	got, err := next.Recover(context.Background())
	if err != nil || got.Calls != 1 || got.FilesStored != 1 || got.Left != 0 {
		t.Fatalf("Recover: %+v, %v", got, err)
	}
	m := getManifest(t, store, call.Prefix())
	if m.Complete || m.Incomplete == "" || len(m.Files) != 1 {
		t.Fatalf("manifest after recovery: %+v", m)
	}
	paths := checkStored(t, store, dir, m)
	d, codecs := probe(t, paths["customer"])
	if !slices.Equal(codecs, []string{"opus", "vp8"}) || !within(d, dur, 500*time.Millisecond) {
		t.Errorf("recovered file: %v, %v; sent %v", d, codecs, dur)
	}
	if err := next.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(spool)
	if len(left) != 0 {
		t.Errorf("spool directory holds %d entries after recovery", len(left))
	}
	// The first recorder's goroutines have all ended; its Close returns.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call.End()
	_ = rec.Close(ctx)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Two recorders on one spool directory: neither's Recover takes the
// other's live generation; once one is closed, its leftovers are the
// other's to finish.
func TestRecoverSkipsLiveGeneration(t *testing.T) {
	store, _ := localStore(t)
	spool := t.TempDir()
	clk := newSimClock()
	a := newRecorder(t, store, spool, clk)
	call, err := a.Start(Info{Org: "acme", Queue: "q", Call: "live"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	call.Chat("customer", "", "still talking")
	b := newRecorder(t, store, spool, clk)
	if got, err := b.Recover(context.Background()); err != nil || got.Calls != 0 || got.Left != 0 {
		t.Fatalf("Recover beside a live recorder: %+v, %v", got, err)
	}
	if _, err := os.Stat(a.gen); err != nil {
		t.Fatalf("the live generation is gone: %v", err)
	}
	call.End()
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := getManifest(t, store, call.Prefix())
	if !m.Complete || len(m.Files) != 1 {
		t.Errorf("manifest %+v", m)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A file whose upload storage refuses at the end (it was aborted from
// outside mid-call) does not cost the call its manifest: the manifest is
// stored incomplete, naming what was stored, and the journal stays for the
// next start, whose Recover stores the file from its spool and completes
// the manifest.
func TestFileRefusedAtTheEnd(t *testing.T) {
	store, _ := localStore(t)
	spool := t.TempDir()
	clk := newSimClock()
	rec := newRecorder(t, store, spool, clk)
	call, err := rec.Start(Info{Org: "acme", Queue: "q", Call: "c3"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := call.AddTrack("customer", opus, func() {})
	if err != nil {
		t.Fatal(err)
	}
	pa, _ := publish(t, "sample.ogg", 0, 0)
	feed(t, clk, []*recorder.Sink{a}, pa, nil)
	call.Chat("agent", "Ann", "hello")
	ctx := context.Background()
	var ups []objstore.UploadInfo
	waitFor(t, func() bool {
		ups, err = store.ListUploads(ctx, "")
		return err == nil && len(ups) == 2
	})
	for _, u := range ups {
		if strings.HasSuffix(u.Key, ".webm") {
			if err := store.AbortUpload(ctx, u.Key, u.UploadID); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.Close()
	call.End()
	if err := rec.Close(ctx); err == nil {
		t.Error("Close: nil; want the recording left for the next start")
	}
	m := getManifest(t, store, call.Prefix())
	if m.Complete || len(m.Files) != 1 || m.Files[0].Kind != manifest.KindTranscript || !strings.Contains(m.Incomplete, "not stored yet") {
		t.Fatalf("manifest: %+v", m)
	}
	if gens, _ := filepath.Glob(filepath.Join(spool, genPrefix+"*")); len(gens) != 1 {
		t.Fatalf("generations left: %v; want the one with the journal", gens)
	}
	next := newRecorder(t, store, spool, clk)
	got, err := next.Recover(ctx)
	if err != nil || got.Calls != 1 || got.Left != 0 {
		t.Fatalf("Recover: %+v, %v", got, err)
	}
	m = getManifest(t, store, call.Prefix())
	if !m.Complete || len(m.Files) != 2 {
		t.Errorf("manifest after Recover: %+v", m)
	}
	checkStored(t, store, filepath.Join(spool, "unused"), m)
	if err := next.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
