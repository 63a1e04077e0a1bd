package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/helpcaster/helpcaster/internal/mediaprobe"
	"github.com/helpcaster/helpcaster/recorder/manifest"
)

// recordingsDir is a fresh directory for a node's recordings: a temporary
// one, or a new one under $HELPCASTER_RECORDINGS when that variable names
// a directory, kept for a person to look at.
func recordingsDir(t *testing.T) string {
	t.Helper()
	parent := os.Getenv("HELPCASTER_RECORDINGS")
	if parent == "" {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp(parent, strings.ReplaceAll(t.Name(), "/", "-")+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recordings kept in %s", dir)
	return dir
}

// recordingView is what a page shows about the call's recording.
type recordingView struct {
	State     string `json:"state"`     // window.hc.recording
	Indicator bool   `json:"indicator"` // the indicator is displayed
	Text      string `json:"text"`      // its text
	Live      bool   `json:"live"`      // it is a live status region
	Button    string `json:"button"`    // the agent's pause button's text when displayed and enabled, else ""
	Notice    string `json:"notice"`    // the notice's text when displayed
}

const recordingViewJS = `(() => {
  const shown = (el) => !!el && !el.hidden && el.offsetParent !== null;
  const ind = document.getElementById("recording");
  const btn = document.getElementById("record-toggle");
  const notice = document.getElementById("notice");
  return {
    state: window.hc.recording,
    indicator: shown(ind),
    text: ind ? ind.textContent : "",
    live: !!ind && ind.getAttribute("role") === "status" && ind.getAttribute("aria-live") === "polite",
    button: shown(btn) && !btn.disabled ? btn.textContent : "",
    notice: shown(notice) ? notice.textContent : "",
  };
})()`

func recordingOf(t *testing.T, p *page) recordingView {
	t.Helper()
	var v recordingView
	if err := p.eval(p.ctx, recordingViewJS, &v); err != nil {
		t.Fatalf("%s: recording indicator: %v", p.name, err)
	}
	return v
}

// showsRecording says whether v is what a page shows with the recording
// in state "on", "paused" or "off" (not recorded): the indicator while
// recorded, saying so, with the agent's button to pause or resume.
func showsRecording(v recordingView, agent bool, state string) bool {
	wantButton := map[string]string{"on": "Pause recording", "paused": "Resume recording", "off": ""}[state]
	if !agent {
		wantButton = ""
	}
	switch {
	case v.State != state || v.Button != wantButton:
		return false
	case state == "off":
		return !v.Indicator
	case state == "paused":
		return v.Indicator && v.Live && v.Text == "Recording paused: this part of the call is not recorded."
	}
	return v.Indicator && v.Live && v.Text == "This call is recorded."
}

// waitRecording waits until the page shows the recording in state ("on",
// "paused" or "off").
func waitRecording(t *testing.T, p *page, state string) {
	t.Helper()
	var v recordingView
	for {
		if err := p.eval(p.ctx, recordingViewJS, &v); err != nil {
			t.Fatalf("%s: waiting for the page to show the recording %s (last seen %+v): %v", p.name, state, v, err)
		}
		if showsRecording(v, strings.HasPrefix(p.name, "agent"), state) {
			return
		}
		select {
		case <-p.ctx.Done():
			t.Fatalf("%s: the page does not show the recording %s: %+v (page: %s)", p.name, state, v, pageState(p))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// findManifest returns the path of call's manifest in the recordings
// directory dir, or "" while there is none.
func findManifest(t *testing.T, dir, org, call string) string {
	t.Helper()
	// {org}/{yyyy}/{mm}/{dd}/{call}/manifest.json
	paths, err := filepath.Glob(filepath.Join(dir, manifest.Segment(org), "*", "*", "*", manifest.Segment(call), manifest.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) > 1 {
		t.Fatalf("several manifests for call %s: %v", call, paths)
	}
	if len(paths) == 0 {
		return ""
	}
	return paths[0]
}

// waitManifest waits, as long as p's steps may take, for call's manifest
// in dir to say the recording is complete: the provisional one stored when
// the call started (complete: false) stays until the one written at its
// end replaces it.
func waitManifest(t *testing.T, p *page, dir, org, call string) manifest.Manifest {
	t.Helper()
	var m manifest.Manifest
	for {
		if path := findManifest(t, dir, org, call); path != "" {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// The store replaces the file whole: a read sees one version.
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatalf("manifest %s: %v", path, err)
			}
			if m.Complete {
				return m
			}
		}
		select {
		case <-p.ctx.Done():
			t.Fatalf("no complete manifest of call %s in %s: last %+v", call, dir, m)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkRecorded checks what the call left in the recordings directory dir
// once it ended: a complete manifest with both participants and the given
// number of paused stretches, files that match it, media of each side that
// decode whole with a video codec and Opus, and the chat transcript
// holding exactly chat ("role: text", in order).
func checkRecorded(t *testing.T, p *page, dir, call string, paused int, chat []string) {
	t.Helper()
	mediaprobe.Need(t)
	m := waitManifest(t, p, dir, "demo", call)
	if m.Org != "demo" || m.Queue != "support" || m.Call != call {
		t.Fatalf("manifest: %+v", m)
	}
	var roles []string
	for _, pt := range m.Participants {
		roles = append(roles, pt.Role)
	}
	if slices.Sort(roles); !slices.Equal(roles, []string{"agent", "customer"}) {
		t.Errorf("participants %+v, want the agent and the customer", m.Participants)
	}
	if len(m.Paused) != paused {
		t.Errorf("paused stretches %+v, want %d", m.Paused, paused)
	}
	for _, s := range m.Paused {
		if !s.End.After(s.Start) {
			t.Errorf("paused stretch %+v ends before it starts", s)
		}
	}
	media := map[string]int{}
	transcripts := 0
	for _, f := range m.Files {
		path := filepath.Join(dir, filepath.FromSlash(f.Key))
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("a file of the manifest: %v", err)
			continue
		}
		sum := sha256.Sum256(data)
		if int64(len(data)) != f.Bytes || hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Errorf("%s: %d bytes with sha256 %x; the manifest says %d bytes, %s", f.Key, len(data), sum, f.Bytes, f.SHA256)
		}
		switch f.Kind {
		case manifest.KindMedia:
			media[f.Role]++
			info, err := mediaprobe.Probe(path)
			if err != nil {
				t.Errorf("%s (%s): %v", f.Key, f.Role, err)
			}
			t.Logf("%s: %s, codecs %v, %v, frames %v", f.Key, f.Role, info.Codecs, info.Duration, info.Frames)
			hasVideo := slices.ContainsFunc(info.Codecs, func(c string) bool { return c == "vp8" || c == "vp9" || c == "h264" })
			if !hasVideo || !slices.Contains(info.Codecs, "opus") {
				t.Errorf("%s (%s): codecs %v, want a video codec (vp8, vp9 or h264) and opus", f.Key, f.Role, info.Codecs)
			}
			if info.Frames["video"] == 0 || info.Frames["audio"] == 0 {
				t.Errorf("%s (%s): frames %v, want video and audio", f.Key, f.Role, info.Frames)
			}
		case manifest.KindTranscript:
			transcripts++
			var got []string
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				var l manifest.Line
				if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
					t.Fatalf("%s: %v", f.Key, err)
				}
				got = append(got, l.Role+": "+l.Text)
			}
			if !slices.Equal(got, chat) {
				t.Errorf("transcript %q, want %q", got, chat)
			}
		default:
			t.Errorf("%s: unknown kind %q", f.Key, f.Kind)
		}
	}
	if media["customer"] == 0 || media["agent"] == 0 || len(media) != 2 {
		t.Errorf("media files by side %v, want the customer's and the agent's: %+v", media, m.Files)
	}
	if transcripts != 1 {
		t.Errorf("%d transcripts, want 1: %+v", transcripts, m.Files)
	}
}

// TestRecordingChoices: a customer who unticks "Record this call" is not
// recorded (neither page shows the indicator, the agent has no pause
// button, and nothing of the call is stored); asking again with the box
// ticked, the call is recorded. When the server refuses the agent's pause
// (here the request is altered on its way out to ask for a resume), the
// agent's page shows the server's error and keeps showing the state the
// server last confirmed.
func TestRecordingChoices(t *testing.T) {
	recordings := recordingsDir(t)
	base := startNode(t, recordings)
	pages := newPages(t, "chromium", "chromium")
	agent, cust := pages[0], pages[1]
	open(t, agent, base+"/demo/agent.html")
	click(t, agent, "available")
	waitJS(t, agent, "agent available", `window.hc && window.hc.agentState === "available"`)
	open(t, cust, base+"/demo/customer.html")

	// Not recorded.
	waitJS(t, cust, "untick the consent box", `(() => {
	  const box = document.getElementById("record-consent");
	  if (!box || box.disabled || !box.checked) return false;
	  box.click();
	  return !box.checked;
	})()`)
	click(t, cust, "join")
	room := waitRoom(t, agent)
	waitJS(t, cust, "customer connected", `window.hc.status === "connected"`)
	for _, p := range []*page{agent, cust} {
		waitMedia(t, p)
		waitRecording(t, p, "off")
	}
	chat(t, cust, agent, "Please do not record this")
	click(t, cust, "hangup")
	waitJS(t, agent, "agent available again", `window.hc.status === "ended" && window.hc.agentState === "available"`)
	waitJS(t, cust, "customer ended", `window.hc.status === "ended"`)

	// Recorded: the box is ticked again before asking for help again.
	waitJS(t, cust, "tick the consent box", `(() => {
	  const box = document.getElementById("record-consent");
	  if (!box || box.disabled) return false;
	  if (!box.checked) box.click();
	  return box.checked;
	})()`)
	click(t, cust, "join")
	waitJS(t, agent, "agent in the next call", `window.hc.status === "connected" && window.hc.room !== `+strconv.Quote(room))
	recorded := waitRoom(t, agent)
	for _, p := range []*page{agent, cust} {
		waitRecording(t, p, "on")
	}
	for _, p := range []*page{agent, cust} {
		waitMedia(t, p) // so that both sides' media is recorded before the pause
	}
	chat(t, cust, agent, "You may record this")

	// The agent's pause goes out as a resume, which the server refuses:
	// the page shows why, and the recording is still on.
	run(t, agent, "alter the next recording request", chromedp.Evaluate[chromedp.Void](`(() => {
	  const send = WebSocket.prototype.send;
	  WebSocket.prototype.send = function (data) {
	    const m = JSON.parse(data);
	    if (m.type === "recording") {
	      WebSocket.prototype.send = send;
	      m.state = m.state === "paused" ? "resumed" : "paused";
	      data = JSON.stringify(m);
	    }
	    return send.call(this, data);
	  };
	})()`))
	click(t, agent, "record-toggle")
	waitJS(t, agent, "the refusal shown", `(() => {
	  const n = document.getElementById("notice");
	  return !n.hidden && n.textContent === "Could not pause the recording: the recording is not paused.";
	})()`)
	if e := agentLastError(t, agent); e.Code != "invalid_state" {
		t.Errorf("agent: last error %+v, want invalid_state", e)
	}
	for _, p := range []*page{agent, cust} {
		waitRecording(t, p, "on")
	}
	// The next pause, unaltered, is done, and the refusal no longer shown.
	click(t, agent, "record-toggle")
	for _, p := range []*page{agent, cust} {
		waitRecording(t, p, "paused")
	}
	if v := recordingOf(t, agent); v.Notice != "" {
		t.Errorf("agent: the notice still says %q", v.Notice)
	}
	click(t, agent, "hangup")
	waitJS(t, cust, "customer ended", `window.hc.status === "ended"`)
	for _, p := range []*page{agent, cust} {
		waitRecording(t, p, "off")
	}

	// The recorded call was stored; the other left nothing.
	checkRecorded(t, agent, recordings, recorded, 1, []string{"customer: You may record this"})
	if path := findManifest(t, recordings, "demo", room); path != "" {
		t.Errorf("the call the customer did not agree to record has a manifest: %s", path)
	}
	err := filepath.WalkDir(recordings, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(path, room) {
			t.Errorf("the call the customer did not agree to record left %s", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitRoom waits until the page is in a call and returns its room.
func waitRoom(t *testing.T, p *page) string {
	t.Helper()
	waitJS(t, p, "in a call", `window.hc.status === "connected" && !!window.hc.room`)
	var room string
	if err := p.eval(p.ctx, `window.hc.room`, &room); err != nil {
		t.Fatalf("%s: room: %v", p.name, err)
	}
	return room
}

type lastError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref"`
}

func agentLastError(t *testing.T, p *page) lastError {
	t.Helper()
	var e lastError
	if err := p.eval(p.ctx, `window.hc.lastError`, &e); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	return e
}
