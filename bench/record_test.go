package bench

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/recorder/manifest"
)

// testBinary is the helpcaster binary the tests' nodes run.
func testBinary(t *testing.T) string {
	t.Helper()
	nodeBin.once.Do(func() { nodeBin.path = buildBinary(t, nodeBin.dir) })
	if nodeBin.path == "" {
		t.Fatal("no helpcaster binary: its build failed in an earlier test")
	}
	return nodeBin.path
}

// manifests reads every stored manifest.json under a local recordings
// directory (the spool, a hidden directory, left out), by call.
func manifests(t *testing.T, dir string) map[string]manifest.Manifest {
	t.Helper()
	out := map[string]manifest.Manifest{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && path == dir {
				return filepath.SkipDir // nothing recorded yet
			}
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if d.IsDir() || d.Name() != "manifest.json" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var m manifest.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("%s: %v", path, err)
			return nil
		}
		if _, dup := out[m.Call]; dup {
			t.Errorf("call %s has two manifests", m.Call)
		}
		out[m.Call] = m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// demoConfig is a short support run against a server run with --dev,
// taking demo tokens.
func demoConfig(s *server, calls int) Config {
	return Config{Scenario: ScenarioSupport, URLs: []string{"ws" + strings.TrimPrefix(s.base, "http")}, Demo: true,
		Calls: calls, Duration: 2 * time.Minute, MediaHold: 4 * time.Second, LoopbackOnly: true,
		Objectives: Objectives{MaxFailures: -1}}
}

// TestRecordRun: against `helpcaster serve --dev`, whose demo queue records
// the calls of customers who consent, a run with Record has every call
// told "recording started" on both sides, waits until the recordings are
// stored, and each call's recording is there: a complete manifest naming
// both sides' media files, which are on disk at the size it gives. The
// same run without Record records nothing.
func TestRecordRun(t *testing.T) {
	s := startServer(t, testBinary(t))

	plain := run(t, demoConfig(s, 1))
	if plain.Calls.Up != 1 || plain.Calls.Failed != 0 {
		t.Fatalf("unrecorded run: calls %+v", plain.Calls)
	}
	if plain.Recording != nil {
		t.Errorf("unrecorded run reports a recording: %+v", plain.Recording)
	}
	if got := manifests(t, s.recordings); len(got) != 0 {
		t.Fatalf("unrecorded run stored %d recordings", len(got))
	}

	cfg := demoConfig(s, 2)
	cfg.Record = true
	rep := run(t, cfg)
	if rep.Calls.Up != 2 || rep.Calls.Failed != 0 {
		t.Fatalf("recorded run: calls %+v", rep.Calls)
	}
	rec := rep.Recording
	if rec == nil {
		t.Fatal("recorded run has no recording report")
	}
	if rec.Calls != 2 || rec.Told != 2 || rec.NotTold != 0 || rec.Stopped != 0 || rec.Messages < 4 || len(rec.CallIDs) != 2 {
		t.Errorf("recording report: %+v", rec)
	}
	if !rec.Scraped || !rec.Finished || rec.Started != 2 || rec.UploadedMiB <= 0 || rec.MediaInMiB <= 0 {
		t.Errorf("recording figures from the server: %+v", rec)
	}
	if a := rep.Anomalies(); len(a) != 0 {
		t.Errorf("anomalies: %v", a)
	}
	var table, html bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), `2 of 2 calls told "recording started" on both sides`) ||
		!strings.Contains(html.String(), "Recordings stored (upload rate)") {
		t.Errorf("the reports do not show the recording:\n%s", table.String())
	}

	stored := manifests(t, s.recordings)
	var calls []string
	for id := range stored {
		calls = append(calls, id)
	}
	slices.Sort(calls)
	want := slices.Sorted(slices.Values(rec.CallIDs))
	if !slices.Equal(calls, want) {
		t.Fatalf("manifests stored for calls %v; the calls told were %v", calls, want)
	}
	for id, m := range stored {
		if !m.Complete || m.Incomplete != "" || m.Queue != "support" {
			t.Errorf("call %s: manifest complete %v (%q), queue %q", id, m.Complete, m.Incomplete, m.Queue)
		}
		sides := map[string]bool{}
		for _, f := range m.Files {
			if f.Kind != "media" {
				continue
			}
			sides[f.Role] = true
			fi, err := os.Stat(filepath.Join(s.recordings, filepath.FromSlash(f.Key)))
			if err != nil || f.Bytes <= 0 || fi.Size() != f.Bytes {
				t.Errorf("call %s: %s: manifest says %d bytes; on disk: %v", id, f.Key, f.Bytes, err)
			}
		}
		if !sides["customer"] || !sides["agent"] {
			t.Errorf("call %s: media files of %v, want customer and agent", id, sides)
		}
	}
}

// TestRecordRunNotRecorded: a run with Record against a queue that records
// nothing reports each call as not told: a failed call and an anomaly.
func TestRecordRunNotRecorded(t *testing.T) {
	base := startNode(t) // queue "support" with the default policy: off
	cfg := benchConfig(base, ScenarioSupport)
	cfg.Calls, cfg.Record, cfg.MediaHold = 1, true, 2*time.Second
	rep := run(t, cfg)
	if rep.Calls.Up != 1 || rep.Calls.Failures["recording_not_told"] != 1 {
		t.Errorf("calls %+v, want one up and failed recording_not_told", rep.Calls)
	}
	if rec := rep.Recording; rec == nil || rec.Calls != 1 || rec.Told != 0 || rec.NotTold != 1 || rec.Messages != 0 {
		t.Errorf("recording report: %+v", rec)
	}
	if a := rep.Anomalies(); len(a) != 1 || !strings.Contains(a[0], "not told") {
		t.Errorf("anomalies: %v", a)
	}
}
