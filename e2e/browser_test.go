// Package e2e holds the end-to-end test: the real demo pages in headless
// Chromium (fake camera and microphone) in a call through a real node.
// `make test-browser` runs it inside a network namespace that has only
// loopback, so neither the browser nor the server can reach anything else.
package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/helpcaster/helpcaster/internal/freeport"
	"github.com/helpcaster/helpcaster/node"
	"github.com/helpcaster/helpcaster/sfu"
	"github.com/helpcaster/helpcaster/signaling/auth"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startNode runs a node with a demo organization on a free loopback port,
// with the embedded TURN server on another.
func startNode(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	org := auth.Org{ID: "demo", APIKey: "demo-key", APISecret: []byte(strings.Repeat("s", 32)),
		Origins: []string{base}, Queues: []auth.Queue{{Name: "support"}}}
	dir, err := auth.NewDirectory([]auth.Org{org})
	if err != nil {
		t.Fatal(err)
	}
	demo, _ := dir.Org("demo")
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n, err := node.New(node.Config{
		Listen: addr,
		Orgs:   dir,
		DevOrg: demo,
		Media:  sfu.Config{ListenIP: "127.0.0.1", LoopbackOnly: true},
		Logger: logger,
		TURN: &node.TURNConfig{
			Secret: "e2e-turn-secret-0123456789", CredentialTTL: time.Hour, ListenIP: "127.0.0.1",
			Port: freeport.UDPAndTCP(t), RelayIP: "127.0.0.1", RelayMinPort: 42000, RelayMaxPort: 42999,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node: %v", err)
		}
	})
	return n.URL()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func chromiumPath(t *testing.T) string {
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/lib/chromium/chromium", "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Fatal("chromium not found: run `make test` (it installs Debian's chromium) or set CHROMIUM")
	return ""
}

// TestDemoCall: an agent and a customer on the demo pages connect through
// the queue, both decode the other's video and receive audio, chat, and the
// customer hangs up.
func TestDemoCall(t *testing.T) {
	ctx, custTab := startCall(t, "")

	// Both decode the other's video and receive audio.
	for _, tab := range []struct {
		name string
		ctx  context.Context
	}{{"agent", ctx}, {"customer", custTab}} {
		waitMedia(t, tab.ctx, tab.name)
	}

	screenshot(t, ctx, "agent-in-call")
	screenshot(t, custTab, "customer-in-call")

	// Chat both ways.
	run(t, custTab, "customer chat",
		chromedp.SendKeys(chromedp.ID("chat-input"), "Hello from the customer"),
		chromedp.Click(chromedp.ID("chat-send")),
	)
	waitJS(t, ctx, "agent receives chat", `window.hc.chat.includes("Hello from the customer")`)
	run(t, ctx, "agent chat",
		chromedp.SendKeys(chromedp.ID("chat-input"), "Hello from the agent"),
		chromedp.Click(chromedp.ID("chat-send")),
	)
	waitJS(t, custTab, "customer receives chat", `window.hc.chat.includes("Hello from the agent")`)

	// Dynacast: each side is asked to pause the simulcast layer the other
	// does not watch, and video keeps flowing on the one it does.
	waitJS(t, ctx, "agent told which layers to send", `!!(window.hc.layers && window.hc.layers.paused.length)`)
	waitJS(t, custTab, "customer told which layers to send", `!!(window.hc.layers && window.hc.layers.paused.length)`)
	for _, tab := range []struct {
		name string
		ctx  context.Context
	}{{"agent", ctx}, {"customer", custTab}} {
		before := waitMedia(t, tab.ctx, tab.name)
		waitJS(t, tab.ctx, tab.name+" still decoding after dynacast", fmt.Sprintf(`(async () => {
		  let f = 0;
		  (await window.hc.pc.sub.getStats()).forEach(r => { if (r.type === "inbound-rtp" && r.kind === "video") f += r.framesDecoded || 0; });
		  return f > %d + 15;
		})()`, before.Frames))
	}

	// The customer's connection drops: the page resumes with its token and
	// the call goes on with new peer connections; video flows both ways again.
	agentBefore := waitMedia(t, ctx, "agent")
	run(t, custTab, "drop the customer's connection",
		chromedp.Evaluate[chromedp.Void](`window.hc.ws.close(4000, "test: connection lost")`))
	waitJS(t, custTab, "customer resumed into the call", `window.hc.resumes === 1 && window.hc.status === "connected" && !!window.hc.pc.sub && window.hc.pc.sub.connectionState === "connected"`)
	waitMedia(t, custTab, "customer after resume")
	waitJS(t, ctx, "agent decoding the resumed customer's video", fmt.Sprintf(`(async () => {
	  let f = 0;
	  (await window.hc.pc.sub.getStats()).forEach(r => { if (r.type === "inbound-rtp" && r.kind === "video") f += r.framesDecoded || 0; });
	  return f > %d + 30;
	})()`, agentBefore.Frames))

	// The customer hangs up; both see the call end.
	run(t, custTab, "hang up", chromedp.Click(chromedp.ID("hangup")))
	waitJS(t, custTab, "customer ended", `window.hc.status === "ended"`)
	waitJS(t, ctx, "agent ended", `window.hc.status === "ended"`)
	waitJS(t, ctx, "agent available again", `window.hc.agentState === "available"`)
}

// newBrowser starts headless Chromium with a fake camera and microphone;
// it is stopped when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("disable-quic", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	// The first action starts the browser, which lives as long as this
	// context: give it no deadline, and bound the test with derived ones.
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return browser
}

// startCall starts a node and a browser, opens the agent page (which goes
// available and is shown its queue) and the customer page (which asks for
// help), both with query, and waits until both are in the call. The agent's
// tab bounds the test (90 s); the customer's is a second tab.
func startCall(t *testing.T, query string) (agent, customer context.Context) {
	t.Helper()
	base := startNode(t)
	browser := newBrowser(t)
	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	t.Cleanup(cancel)
	custTab, cancelCust := chromedp.NewContext(ctx)
	t.Cleanup(cancelCust)

	run(t, ctx, "agent page",
		chromedp.Navigate(base+"/demo/agent.html"+query),
		chromedp.WaitVisible(chromedp.ID("available")),
		chromedp.Click(chromedp.ID("available")),
	)
	waitJS(t, ctx, "agent available", `window.hc && window.hc.agentState === "available"`)
	waitJS(t, ctx, "agent shown its queue", `!!window.hc.queueStats && window.hc.queueStats.available === 1 && !document.getElementById("queue-stats").hidden`)
	run(t, custTab, "customer page",
		chromedp.Navigate(base+"/demo/customer.html"+query),
		chromedp.WaitVisible(chromedp.ID("join")),
		chromedp.Click(chromedp.ID("join")),
	)
	waitJS(t, custTab, "customer connected", `window.hc && window.hc.status === "connected"`)
	waitJS(t, ctx, "agent connected", `window.hc && window.hc.status === "connected"`)
	return ctx, custTab
}

// TestRelayCall: both pages force their media through the embedded TURN
// server (iceTransportPolicy "relay"); the selected candidate pairs are
// relayed and video is decoded on both sides.
func TestRelayCall(t *testing.T) {
	ctx, custTab := startCall(t, "?relay=1")
	for _, tab := range []struct {
		name string
		ctx  context.Context
	}{{"agent", ctx}, {"customer", custTab}} {
		waitMedia(t, tab.ctx, tab.name)
		// Both connections' selected pairs use a relay candidate on this side.
		waitJS(t, tab.ctx, tab.name+" relayed", `(async () => {
		  for (const pc of [window.hc.pc.sub, window.hc.pc.pub]) {
		    const stats = await pc.getStats();
		    let relayed = false;
		    stats.forEach(r => {
		      if (r.type !== "candidate-pair" || !r.nominated || r.state !== "succeeded") return;
		      const local = stats.get(r.localCandidateId);
		      if (local && local.candidateType === "relay") relayed = true;
		    });
		    if (!relayed) return false;
		  }
		  return true;
		})()`)
	}
}

// screenshot saves a PNG of the tab to $HELPCASTER_SCREENSHOTS/name.png when
// that variable names a directory, for a person to look at.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("HELPCASTER_SCREENSHOTS")
	if dir == "" {
		return
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1100, 800)); err != nil {
		t.Fatalf("viewport: %v", err)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitJS polls a JavaScript condition until it is true.
func waitJS(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: timed out (page status: %s)", what, pageState(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

const statsJS = `(async () => {
  const sub = window.hc && window.hc.pc && window.hc.pc.sub;
  const pub = window.hc && window.hc.pc && window.hc.pc.pub;
  let frames = 0, audio = 0, layers = 0;
  if (sub) (await sub.getStats()).forEach(r => {
    if (r.type !== "inbound-rtp") return;
    if (r.kind === "video") frames += r.framesDecoded || 0;
    if (r.kind === "audio") audio += r.packetsReceived || 0;
  });
  if (pub) (await pub.getStats()).forEach(r => {
    if (r.type === "outbound-rtp" && r.kind === "video" && r.rid && (r.framesEncoded || 0) > 0) layers++;
  });
  return {frames, audio, layers};
})()`

type mediaStats struct {
	Frames int `json:"frames"` // video frames decoded
	Audio  int `json:"audio"`  // audio packets received
	Layers int `json:"layers"` // simulcast layers this page is sending
}

func waitMedia(t *testing.T, ctx context.Context, who string) mediaStats {
	t.Helper()
	var s mediaStats
	for {
		var err error
		s, err = chromedp.Run(ctx, chromedp.Evaluate[mediaStats](statsJS, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s stats: %v", who, err)
		}
		if s.Frames > 30 && s.Audio > 0 && s.Layers >= 2 {
			t.Logf("%s: %d video frames decoded, %d audio packets received, sending %d simulcast layers",
				who, s.Frames, s.Audio, s.Layers)
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: media did not flow: %+v (page: %s)", who, s, pageState(ctx))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// pageState describes the page for failure messages.
func pageState(ctx context.Context) string {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(c, chromedp.Evaluate[string](`JSON.stringify({status: window.hc && window.hc.status,
	  agentState: window.hc && window.hc.agentState, lastError: window.hc && window.hc.lastError,
	  text: document.querySelector("#status") && document.querySelector("#status").textContent})`))
	if err != nil {
		return fmt.Sprintf("unavailable: %v", err)
	}
	return s
}
