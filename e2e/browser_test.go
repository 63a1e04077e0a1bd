// Package e2e holds the end-to-end tests: the real demo pages in headless
// Chromium and Firefox (fake cameras and microphones) in calls through a
// real node. `make test-browser` runs them inside a network namespace that
// has only loopback, so neither the browsers nor the server can reach
// anything else. Chromium is driven over CDP (chromedp), Firefox over
// WebDriver BiDi (internal/bidi).
package e2e

import (
	"context"
	"encoding/json"
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
// with the embedded TURN server on another. With recordings set, its queue
// records the calls of customers who consent (as `serve --dev` does), in
// the directory recordings (the node's --recordings-dir).
func startNode(t *testing.T, recordings string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	queue := auth.Queue{Name: "support"}
	var rec *node.RecordingsConfig
	if recordings != "" {
		queue.Record = auth.RecordConsent
		rec = &node.RecordingsConfig{Dir: recordings}
	}
	org := auth.Org{ID: "demo", APIKey: "demo-key", APISecret: []byte(strings.Repeat("s", 32)),
		Origins: []string{base}, Queues: []auth.Queue{queue}}
	dir, err := auth.NewDirectory([]auth.Org{org})
	if err != nil {
		t.Fatal(err)
	}
	demo, _ := dir.Org("demo")
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n, err := node.New(node.Config{
		Listen:     addr,
		Orgs:       dir,
		DevOrg:     demo,
		Media:      sfu.Config{ListenIP: "127.0.0.1", LoopbackOnly: true},
		Logger:     logger,
		Recordings: rec,
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
// customer hangs up. The call is recorded (the customer's page consents by
// default): both pages say so, the agent pauses and resumes the recording
// with its button and both pages show it, and once the call has ended the
// recordings directory holds the call's complete manifest, both sides'
// media, and the chat said while not paused.
func TestDemoCall(t *testing.T) {
	recordings := recordingsDir(t)
	base := startNode(t, recordings)
	agent, cust := startCallOn(t, base, "", "chromium", "chromium")
	var room string
	if err := agent.eval(agent.ctx, `window.hc.room`, &room); err != nil || room == "" {
		t.Fatalf("agent: the call's room: %q, %v", room, err)
	}

	// Both decode the other's video and receive audio, on the SFU's
	// direct path.
	for _, p := range []*page{agent, cust} {
		waitMedia(t, p)
	}
	checkDirectPath(t, base)
	// Both show that the call is recorded.
	for _, p := range []*page{agent, cust} {
		waitRecording(t, p, "on")
	}

	screenshot(t, agent, "agent-in-call")
	screenshot(t, cust, "customer-in-call")

	// Chat both ways.
	run(t, cust, "customer chat",
		chromedp.SendKeys(chromedp.ID("chat-input"), "Hello from the customer"),
		chromedp.Click(chromedp.ID("chat-send")),
	)
	waitJS(t, agent, "agent receives chat", `window.hc.chat.includes("Hello from the customer")`)
	run(t, agent, "agent chat",
		chromedp.SendKeys(chromedp.ID("chat-input"), "Hello from the agent"),
		chromedp.Click(chromedp.ID("chat-send")),
	)
	waitJS(t, cust, "customer receives chat", `window.hc.chat.includes("Hello from the agent")`)

	// The agent pauses the recording: both pages show it paused, and what
	// is said then is not recorded. Then the agent resumes it.
	click(t, agent, "record-toggle")
	for _, p := range []*page{agent, cust} {
		waitRecording(t, p, "paused")
	}
	screenshot(t, agent, "agent-recording-paused")
	chat(t, cust, agent, "Off the record, from the customer")
	click(t, agent, "record-toggle")
	for _, p := range []*page{agent, cust} {
		waitRecording(t, p, "on")
	}
	chat(t, agent, cust, "Back on the record, from the agent")

	// Dynacast: each side is asked to pause the simulcast layer the other
	// does not watch, and video keeps flowing on the one it does.
	for _, p := range []*page{agent, cust} {
		checkDynacast(t, p)
	}

	// The customer's connection drops: the page resumes with its token and
	// the call goes on with new peer connections; video flows both ways again.
	agentBefore := waitMedia(t, agent)
	run(t, cust, "drop the customer's connection",
		chromedp.Evaluate[chromedp.Void](`window.hc.ws.close(4000, "test: connection lost")`))
	waitJS(t, cust, "customer resumed into the call", `window.hc.resumes === 1 && window.hc.status === "connected" && !!window.hc.pc.sub && window.hc.pc.sub.connectionState === "connected"`)
	waitMedia(t, cust)
	waitFrames(t, agent, agentBefore.Frames+30)
	// The resumed customer is told again that the call is recorded.
	for _, p := range []*page{agent, cust} {
		waitRecording(t, p, "on")
	}

	// The customer hangs up; both see the call end, and the indicator goes.
	hangUpCleanly(t, base, agent, cust, func() {
		run(t, cust, "hang up", chromedp.Click(chromedp.ID("hangup")))
	})
	for _, p := range []*page{agent, cust} {
		waitRecording(t, p, "off")
	}

	checkRecorded(t, agent, recordings, room, 1, []string{
		"customer: Hello from the customer",
		"agent: Hello from the agent",
		"agent: Back on the record, from the agent",
	})
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

// startCall starts a node (recording nothing) and the browsers, opens the
// agent page (in a browser of kind agentKind; it goes available and is
// shown its queue) and the customer page (customerKind; it asks for help),
// both with query, and waits until both are in the call. It returns the
// node's URL and the pages.
func startCall(t *testing.T, query, agentKind, customerKind string) (base string, agent, customer *page) {
	t.Helper()
	base = startNode(t, "")
	agent, customer = startCallOn(t, base, query, agentKind, customerKind)
	return base, agent, customer
}

// startCallOn is startCall on the node at base.
func startCallOn(t *testing.T, base, query, agentKind, customerKind string) (agent, customer *page) {
	t.Helper()
	pages := newPages(t, agentKind, customerKind)
	agent, customer = pages[0], pages[1]
	open(t, agent, base+"/demo/agent.html"+query)
	click(t, agent, "available")
	waitJS(t, agent, "agent available", `window.hc && window.hc.agentState === "available"`)
	waitJS(t, agent, "agent shown its queue", `!!window.hc.queueStats && window.hc.queueStats.available === 1 && !document.getElementById("queue-stats").hidden`)
	open(t, customer, base+"/demo/customer.html"+query)
	click(t, customer, "join")
	waitJS(t, customer, "customer connected", `window.hc && window.hc.status === "connected"`)
	waitJS(t, agent, "agent connected", `window.hc && window.hc.status === "connected"`)
	return agent, customer
}

// TestRelayCall: both pages force their media through the embedded TURN
// server (iceTransportPolicy "relay"); the selected candidate pairs are
// relayed and video is decoded on both sides.
func TestRelayCall(t *testing.T) {
	_, agent, cust := startCall(t, "?relay=1", "chromium", "chromium")
	for _, p := range []*page{agent, cust} {
		waitMedia(t, p)
		// The node records no call: neither page says the call is recorded.
		waitRecording(t, p, "off")
		// Both connections' selected pairs use a relay candidate on this side.
		waitJS(t, p, p.name+" relayed", `(async () => {
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

// screenshot saves a PNG of a Chromium tab to $HELPCASTER_SCREENSHOTS/name.png
// when that variable names a directory, for a person to look at.
func screenshot(t *testing.T, p *page, name string) {
	t.Helper()
	dir := os.Getenv("HELPCASTER_SCREENSHOTS")
	if dir == "" {
		return
	}
	if err := chromedp.Do(p.ctx, chromedp.EmulateViewport(1100, 800)); err != nil {
		t.Fatalf("viewport: %v", err)
	}
	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// run runs chromedp actions in a Chromium tab.
func run(t *testing.T, p *page, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// chromiumPage is a Chromium tab (a chromedp context) as a page.
func chromiumPage(name string, tab context.Context) *page {
	return &page{
		name: name,
		ctx:  tab,
		eval: func(ctx context.Context, expr string, out any) error {
			raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
			if err != nil {
				return err
			}
			if out == nil {
				return nil
			}
			return json.Unmarshal(raw, out)
		},
		open: func(ctx context.Context, url string) error {
			return chromedp.Do(ctx, chromedp.Navigate(url))
		},
	}
}
