package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/helpcaster/helpcaster/internal/bidi"
)

// page is one browser tab showing a demo page, in either browser. Every
// step done with it is bounded by ctx.
type page struct {
	name string
	ctx  context.Context
	// eval evaluates a JavaScript expression, awaits the promise it returns,
	// and decodes its value (plain data) into out like json.Unmarshal.
	eval func(ctx context.Context, expr string, out any) error
	// open loads a URL and waits for it.
	open func(ctx context.Context, url string) error
}

// newPages opens a tab for each browser named ("chromium" or "firefox"):
// the first is the agent's, the second the customer's. Each kind of
// browser starts once; every page is bounded by 120 s.
func newPages(t *testing.T, kinds ...string) []*page {
	t.Helper()
	var (
		ff     *bidi.Browser
		ffCtx  context.Context
		chrome context.Context
		pages  []*page
	)
	for i, kind := range kinds {
		name := []string{"agent", "customer"}[i] + " (" + kind + ")"
		switch kind {
		case "firefox":
			if ff == nil {
				ff = newFirefox(t)
				var cancel context.CancelFunc
				ffCtx, cancel = context.WithTimeout(context.Background(), 120*time.Second)
				t.Cleanup(cancel)
			}
			pages = append(pages, firefoxTab(t, ffCtx, ff, name))
		case "chromium":
			if chrome == nil {
				var cancel context.CancelFunc
				chrome, cancel = context.WithTimeout(newBrowser(t), 120*time.Second)
				t.Cleanup(cancel)
				pages = append(pages, chromiumPage(name, chrome))
				continue
			}
			tab, cancel := chromedp.NewContext(chrome)
			t.Cleanup(cancel)
			pages = append(pages, chromiumPage(name, tab))
		default:
			t.Fatalf("unknown browser %q", kind)
		}
	}
	return pages
}

func open(t *testing.T, p *page, url string) {
	t.Helper()
	if err := p.open(p.ctx, url); err != nil {
		t.Fatalf("%s: open %s: %v", p.name, url, err)
	}
}

// click clicks a button once it is enabled, as a user would.
func click(t *testing.T, p *page, id string) {
	t.Helper()
	waitJS(t, p, "button "+id+" enabled", fmt.Sprintf(`(() => {
	  const b = document.getElementById(%q);
	  if (!b || b.disabled || b.offsetParent === null) return false;
	  b.click();
	  return true;
	})()`, id))
}

// waitJS polls a JavaScript condition until it is true.
func waitJS(t *testing.T, p *page, what, cond string) {
	t.Helper()
	for {
		var ok bool
		if err := p.eval(p.ctx, cond, &ok); err != nil {
			t.Fatalf("%s: %s: %v", p.name, what, err)
		}
		if ok {
			return
		}
		select {
		case <-p.ctx.Done():
			t.Fatalf("%s: %s: timed out (page: %s)", p.name, what, pageState(p))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// statsJS sums what the page receives and counts the simulcast layers it
// sends.
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

func mediaOf(t *testing.T, p *page) mediaStats {
	t.Helper()
	var s mediaStats
	if err := p.eval(p.ctx, statsJS, &s); err != nil {
		t.Fatalf("%s stats: %v", p.name, err)
	}
	return s
}

// waitMedia waits until the page decodes video, receives audio and sends
// at least two simulcast layers.
func waitMedia(t *testing.T, p *page) mediaStats {
	t.Helper()
	for {
		s := mediaOf(t, p)
		if s.Frames > 30 && s.Audio > 0 && s.Layers >= 2 {
			t.Logf("%s: %d video frames decoded, %d audio packets received, sending %d simulcast layers",
				p.name, s.Frames, s.Audio, s.Layers)
			return s
		}
		select {
		case <-p.ctx.Done():
			t.Fatalf("%s: media did not flow: %+v (page: %s)", p.name, s, pageState(p))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitFrames waits until the page has decoded more than n video frames.
func waitFrames(t *testing.T, p *page, n int) {
	t.Helper()
	for {
		s := mediaOf(t, p)
		if s.Frames > n {
			return
		}
		select {
		case <-p.ctx.Done():
			t.Fatalf("%s: decoded %d video frames, waited for more than %d (page: %s)", p.name, s.Frames, n, pageState(p))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// layersJS reports what the server last asked the page to send and what
// its video encodings have sent so far, by RID.
const layersJS = `(async () => {
  const pub = window.hc && window.hc.pc && window.hc.pc.pub;
  const sent = {};
  if (pub) (await pub.getStats()).forEach(r => {
    if (r.type === "outbound-rtp" && r.kind === "video" && r.rid) sent[r.rid] = {bytes: r.bytesSent || 0, frames: r.framesEncoded || 0};
  });
  const l = window.hc.layers;
  return {active: (l && l.active) || [], paused: (l && l.paused) || [], sent};
})()`

type layerReport struct {
	Active []string `json:"active"`
	Paused []string `json:"paused"`
	Sent   map[string]struct {
		Bytes  int64 `json:"bytes"`
		Frames int64 `json:"frames"`
	} `json:"sent"`
}

// checkDynacast waits until the server has asked the page to pause a
// simulcast layer nobody watches and the browser has stopped sending it:
// over a few seconds its bytes and frames do not grow while those of the
// layers still wanted do. The page keeps decoding the other side's video.
func checkDynacast(t *testing.T, p *page) {
	t.Helper()
	waitJS(t, p, "told which layers to send", `!!(window.hc.layers && window.hc.layers.paused.length)`)
	framesBefore := mediaOf(t, p).Frames
	const window = 2 * time.Second
	var prev layerReport
	if err := p.eval(p.ctx, layersJS, &prev); err != nil {
		t.Fatalf("%s: layers: %v", p.name, err)
	}
	for {
		select {
		case <-p.ctx.Done():
			t.Fatalf("%s: a paused layer kept sending: last %+v", p.name, prev)
		case <-time.After(window):
		}
		var cur layerReport
		if err := p.eval(p.ctx, layersJS, &cur); err != nil {
			t.Fatalf("%s: layers: %v", p.name, err)
		}
		if stopped(prev, cur) {
			var b strings.Builder
			for _, rid := range []string{"q", "h", "f"} {
				fmt.Fprintf(&b, " %s: +%d bytes +%d frames;", rid,
					cur.Sent[rid].Bytes-prev.Sent[rid].Bytes, cur.Sent[rid].Frames-prev.Sent[rid].Frames)
			}
			t.Logf("%s: dynacast: active %v, paused %v; over %v:%s", p.name, cur.Active, cur.Paused, window, b.String())
			break
		}
		prev = cur
	}
	waitFrames(t, p, framesBefore+15)
}

// stopped says whether, between two reports with the same request, every
// paused layer sent nothing while every active one sent frames.
func stopped(prev, cur layerReport) bool {
	if len(cur.Paused) == 0 || !slices.Equal(prev.Paused, cur.Paused) || !slices.Equal(prev.Active, cur.Active) {
		return false
	}
	for _, rid := range cur.Paused {
		before, ok := prev.Sent[rid]
		if !ok || cur.Sent[rid] != before {
			return false
		}
	}
	for _, rid := range cur.Active {
		if cur.Sent[rid].Frames <= prev.Sent[rid].Frames {
			return false
		}
	}
	return true
}

// endWatchJS records, on a page in a call, the messages about the call it
// sends (and whether it had already seen "ended") and the offers, "ended"
// and errors it receives, in order, in window.hcEndLog.
const endWatchJS = `(() => {
  const about = new Set(["offer", "answer", "candidate", "chat", "quality", "hangup"]);
  const log = [];
  window.hcEndLog = log;
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try {
      const m = JSON.parse(data);
      if (about.has(m.type)) log.push({dir: "out", type: m.type, ended: window.hc.status === "ended"});
    } catch (_) {}
    return send.call(this, data);
  };
  window.hc.ws.addEventListener("message", (ev) => {
    const m = JSON.parse(ev.data);
    if (["offer", "ended", "error"].includes(m.type)) log.push({dir: "in", type: m.type, code: m.code || "", message: m.message || ""});
  });
})()`

type endEntry struct {
	Dir     string `json:"dir"` // "in" or "out"
	Type    string `json:"type"`
	Ended   bool   `json:"ended"` // out: sent after the page saw "ended"
	Code    string `json:"code"`
	Message string `json:"message"`
}

// hangUpCleanly hangs up (with hangup, on either page) and checks that the
// call ends cleanly: both pages see it end, the agent is available again,
// neither page sends anything about the call once it has seen "ended", and
// no page receives an error nor does the server count one. (The server
// sends nothing about a call once it has ended it, and ignores a message
// that crossed "ended" on the wire, such as the answer to a sub offer made
// just before.)
func hangUpCleanly(t *testing.T, base string, agent, customer *page, hangup func()) {
	t.Helper()
	for _, p := range []*page{agent, customer} {
		if err := p.eval(p.ctx, endWatchJS, nil); err != nil {
			t.Fatalf("%s: watch the end of the call: %v", p.name, err)
		}
	}
	hangup()
	waitJS(t, customer, "customer ended", `window.hc.status === "ended"`)
	waitJS(t, agent, "agent ended", `window.hc.status === "ended"`)
	waitJS(t, agent, "agent available again", `window.hc.agentState === "available"`)
	// Whatever a page sends after "ended" reaches the server within moments.
	time.Sleep(2 * time.Second)
	for _, p := range []*page{agent, customer} {
		var log []endEntry
		if err := p.eval(p.ctx, `window.hcEndLog`, &log); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		late, errs := judgeEnd(log)
		for _, typ := range late {
			t.Errorf("%s: sent %q after it saw the call end", p.name, typ)
		}
		for _, e := range errs {
			t.Errorf("%s: the page received an error in a clean session: %s (messages: %+v)", p.name, e, log)
		}
	}
	if errs := signalingErrors(t, base); len(errs) != 0 {
		t.Errorf("the server counted signaling errors in a clean session: %v", errs)
	}
}

// judgeEnd reads a page's end-of-call log: the messages about the call it
// sent after it saw "ended", and the errors it received.
func judgeEnd(log []endEntry) (late, errs []string) {
	for _, e := range log {
		switch {
		case e.Dir == "out" && e.Ended:
			late = append(late, e.Type)
		case e.Dir == "in" && e.Type == "error":
			errs = append(errs, e.Code+" "+strconv.Quote(e.Message))
		}
	}
	return late, errs
}

// signalingErrors scrapes the node's metrics and returns the
// helpcaster_signaling_errors_total series that are not 0.
func signalingErrors(t *testing.T, base string) []string {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("metrics: HTTP %d", res.StatusCode)
	}
	var nonzero []string
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "helpcaster_signaling_errors_total") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err != nil || v != 0 {
			nonzero = append(nonzero, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("metrics: %v", err)
	}
	return nonzero
}

// metricValue scrapes the node's metrics and returns the value of the
// series whose line starts with series (name and labels), or -1.
func metricValue(t *testing.T, base, series string) float64 {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(line[len(series)+1:], 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", line, err)
			}
			return v
		}
	}
	return -1
}

// checkDirectPath asserts that the browsers' media took the SFU's direct
// path: datagrams were routed there, and no connection stayed on pion's.
func checkDirectPath(t *testing.T, base string) {
	t.Helper()
	if n := metricValue(t, base, `helpcaster_sfu_media_datagrams_total{path="direct"}`); n <= 0 {
		t.Errorf("the direct media path took %v datagrams", n)
	}
	if n := metricValue(t, base, "helpcaster_sfu_pion_path_connections_total"); n != 0 {
		t.Errorf("%v connections stayed on pion's media path", n)
	}
}

// pageState describes the page for failure messages.
func pageState(p *page) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), 2*time.Second)
	defer cancel()
	var s string
	err := p.eval(ctx, `JSON.stringify({status: window.hc && window.hc.status,
	  agentState: window.hc && window.hc.agentState, lastError: window.hc && window.hc.lastError,
	  text: document.querySelector("#status") && document.querySelector("#status").textContent})`, &s)
	if err != nil {
		return fmt.Sprintf("unavailable: %v", err)
	}
	return s
}

func TestJudgeEnd(t *testing.T) {
	in := func(typ, code, msg string) endEntry { return endEntry{Dir: "in", Type: typ, Code: code, Message: msg} }
	out := func(typ string, ended bool) endEntry { return endEntry{Dir: "out", Type: typ, Ended: ended} }
	for _, tc := range []struct {
		name string
		log  []endEntry
		late []string
		errs []string
	}{
		{"clean", []endEntry{out("hangup", false), in("ended", "", "")}, nil, nil},
		{"answer crossed ended", []endEntry{in("offer", "", ""), out("answer", false), in("ended", "", ""), in("error", "invalid_state", "not in a call")}, nil, []string{`invalid_state "not in a call"`}},
		{"sent after ended", []endEntry{in("ended", "", ""), out("chat", true)}, []string{"chat"}, nil},
		{"other error", []endEntry{in("ended", "", ""), in("error", "rate_limited", "slow down")}, nil, []string{`rate_limited "slow down"`}},
	} {
		late, errs := judgeEnd(tc.log)
		if !slices.Equal(late, tc.late) || !slices.Equal(errs, tc.errs) {
			t.Errorf("%s: got late %v, errors %v; want %v, %v", tc.name, late, errs, tc.late, tc.errs)
		}
	}
}
