package e2e

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/internal/bidi"
)

// firefoxPrefs make a headless Firefox do a WebRTC call over loopback with
// fake devices and no prompts. Without the permissions.default lines
// Firefox offers only its default addresses, and ICE fails on a
// loopback-only server.
func firefoxPrefs() map[string]any {
	return map[string]any{
		"media.navigator.streams.fake":                      true,
		"media.navigator.permission.disabled":               true,
		"permissions.default.camera":                        1,
		"permissions.default.microphone":                    1,
		"media.peerconnection.ice.loopback":                 true,
		"media.peerconnection.ice.default_address_only":     false,
		"media.peerconnection.ice.obfuscate_host_addresses": false,
		"media.autoplay.default":                            0, // allow audible autoplay
		"media.autoplay.blocking_policy":                    0,
		// Nothing to fetch in a test (and nowhere to fetch it from).
		"app.update.disabledForTesting":              true,
		"browser.safebrowsing.malware.enabled":       false,
		"browser.safebrowsing.phishing.enabled":      false,
		"network.captive-portal-service.enabled":     false,
		"network.connectivity-service.enabled":       false,
		"datareporting.policy.dataSubmissionEnabled": false,
		"toolkit.telemetry.reportingpolicy.firstRun": false,
		"browser.shell.checkDefaultBrowser":          false,
	}
}

func firefoxPath(t *testing.T) string {
	if p := os.Getenv("FIREFOX"); p != "" {
		return p
	}
	p, err := bidi.FirefoxPath()
	if err != nil {
		t.Fatalf("%v: run `make test` (it installs Debian's firefox-esr) or set FIREFOX", err)
	}
	return p
}

// newFirefox starts headless Firefox with a fresh profile; it is stopped
// (its whole process group) and its profile removed when the test ends.
// Its output goes to the test log when -v is given.
func newFirefox(t *testing.T) *bidi.Browser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := bidi.LaunchFirefox(ctx, bidi.FirefoxOptions{
		Path:  firefoxPath(t),
		Prefs: firefoxPrefs(),
		Log:   func(line string) { logVerbose(t, "firefox: "+line) },
	})
	if err != nil {
		t.Fatalf("start firefox: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("stop firefox: %v", err)
		}
	})
	return b
}

// logVerbose logs a line while the test runs, and not after it ended (a
// browser may write while it is being stopped).
func logVerbose(t *testing.T, line string) {
	if testing.Verbose() {
		defer func() { _ = recover() }() // t.Log after the test ended panics
		t.Log(line)
	}
}

// firefoxTab opens a tab as a page bounded by ctx.
func firefoxTab(t *testing.T, ctx context.Context, b *bidi.Browser, name string) *page {
	t.Helper()
	tab, err := bidi.NewTab(ctx, b.Conn)
	if err != nil {
		t.Fatalf("firefox: new tab: %v", err)
	}
	return &page{
		name: name,
		ctx:  ctx,
		eval: tab.Evaluate,
		open: tab.Navigate,
	}
}

// TestFirefox: calls between Firefox and Firefox, and between Firefox and
// Chromium either way round. Each comes up, decodes video and receives audio
// on both sides, chats both ways, pauses the simulcast layer nobody watches
// (and the browser stops sending it), and ends cleanly when the customer
// hangs up: no page is sent an error and the server counts none.
func TestFirefox(t *testing.T) {
	for _, tc := range []struct {
		name            string
		agent, customer string
	}{
		{"firefox-firefox", "firefox", "firefox"},
		{"chromium-agent-firefox-customer", "chromium", "firefox"},
		{"firefox-agent-chromium-customer", "firefox", "chromium"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, agent, cust := startCall(t, "", tc.agent, tc.customer)
			for _, p := range []*page{agent, cust} {
				waitMedia(t, p)
			}
			checkDirectPath(t, base)
			chat(t, cust, agent, "Hello from the customer")
			chat(t, agent, cust, "Hello from the agent")
			for _, p := range []*page{agent, cust} {
				checkDynacast(t, p)
			}
			hangUpCleanly(t, base, agent, cust, func() { click(t, cust, "hangup") })
		})
	}
}

// chat sends text from one page and waits for the other to show it.
func chat(t *testing.T, from, to *page, text string) {
	t.Helper()
	waitJS(t, from, "send chat", fmt.Sprintf(`(() => {
	  const input = document.getElementById("chat-input"), send = document.getElementById("chat-send");
	  if (input.disabled || send.disabled) return false;
	  input.value = %q;
	  send.click();
	  return true;
	})()`, text))
	waitJS(t, to, "receive chat", fmt.Sprintf(`window.hc.chat.includes(%q)`, text))
}

// TestFirefoxDriver: the BiDi client against the real browser. Values of
// every plain kind come back from the page, a thrown error and a rejected
// promise are errors, and Close leaves no process of the browser's group
// and no profile behind.
func TestFirefoxDriver(t *testing.T) {
	base := startNode(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b, err := bidi.LaunchFirefox(ctx, bidi.FirefoxOptions{Path: firefoxPath(t), Prefs: firefoxPrefs()})
	if err != nil {
		t.Fatalf("start firefox: %v", err)
	}
	closed := false
	defer func() {
		if !closed {
			b.Close()
		}
	}()
	tab, err := bidi.NewTab(ctx, b.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Navigate(ctx, base+"/demo/index.html"); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Title  string         `json:"title"`
		N      float64        `json:"n"`
		Yes    bool           `json:"yes"`
		None   *int           `json:"none"`
		List   []any          `json:"list"`
		Nested map[string]any `json:"nested"`
	}
	err = tab.Evaluate(ctx, `(async () => {
	  await new Promise((resolve) => setTimeout(resolve, 10));
	  return {title: document.title, n: 1.5, yes: true, none: null, list: [1, "two", [3]], nested: {a: {b: "c"}}};
	})()`, &got)
	if err != nil {
		t.Fatal(err)
	}
	if got.Title == "" || got.N != 1.5 || !got.Yes || got.None != nil || len(got.List) != 3 || got.Nested["a"].(map[string]any)["b"] != "c" {
		t.Errorf("evaluate: got %+v", got)
	}
	var scriptErr *bidi.ScriptError
	if err := tab.Evaluate(ctx, `(() => { throw new Error("boom"); })()`, nil); !errors.As(err, &scriptErr) || !strings.Contains(scriptErr.Text, "boom") {
		t.Errorf("a thrown error: err = %v, want a ScriptError saying boom", err)
	}
	if err := tab.Evaluate(ctx, `Promise.reject(new Error("nope"))`, nil); !errors.As(err, &scriptErr) || !strings.Contains(scriptErr.Text, "nope") {
		t.Errorf("a rejected promise: err = %v, want a ScriptError saying nope", err)
	}

	pid, profile := b.PID(), b.ProfileDir()
	closed = true
	if err := b.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if live := liveInGroup(t, pid); len(live) > 0 {
		t.Errorf("firefox's process group %d after Close still has running processes: %v", pid, live)
	}
	if _, err := os.Stat(profile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("profile %s after Close: %v, want it removed", profile, err)
	}
}

// liveInGroup lists the processes of process group pgid that are not
// zombies (a killed child of a killed browser is a zombie until init reaps
// it).
func liveInGroup(t *testing.T, pgid int) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var live []string
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 3 || fields[0] == "Z" || fields[2] != strconv.Itoa(pgid) {
			continue
		}
		live = append(live, strings.TrimSpace(s[:i+1]))
	}
	return live
}
