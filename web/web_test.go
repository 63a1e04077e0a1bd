package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"
)

// get performs a request against h and returns the recorded response.
func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func embedded(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(static, "static/"+name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkCommonHeaders(t *testing.T, res *http.Response) {
	t.Helper()
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"connect-src 'self' ws: wss:",
		"media-src 'self' blob:",
		"img-src 'self' data:",
	} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("Content-Security-Policy %q allows unsafe sources", csp)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control = %q, want no-cache", got)
	}
	if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
	}
}

func TestServesFiles(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		path, file, ctype string
	}{
		{"/", "index.html", "text/html; charset=utf-8"},
		{"/index.html", "index.html", "text/html; charset=utf-8"},
		{"/customer.html", "customer.html", "text/html; charset=utf-8"},
		{"/agent.html", "agent.html", "text/html; charset=utf-8"},
		{"/app.js", "app.js", "text/javascript; charset=utf-8"},
		{"/style.css", "style.css", "text/css; charset=utf-8"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			res := get(t, h, http.MethodGet, tc.path, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type = %q, want %q", got, tc.ctype)
			}
			checkCommonHeaders(t, res)
			if got, want := body(t, res), embedded(t, tc.file); got != want {
				t.Errorf("body differs from static/%s (%d bytes, want %d)", tc.file, len(got), len(want))
			}
			etag := res.Header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			res = get(t, h, http.MethodGet, tc.path, map[string]string{"If-None-Match": etag})
			if res.StatusCode != http.StatusNotModified {
				t.Errorf("revalidation with If-None-Match: status %d, want 304", res.StatusCode)
			}
			res = get(t, h, http.MethodHead, tc.path, nil)
			if res.StatusCode != http.StatusOK || body(t, res) != "" {
				t.Errorf("HEAD: status %d, want 200 with no body", res.StatusCode)
			}
		})
	}
}

func TestNotFoundAndNoListing(t *testing.T) {
	h := Handler()
	for _, p := range []string{
		"/nope.html",
		"/customer",
		"/static/",
		"/static/app.js",
		"/index.html/",
		"/./",
		"//",
		"/%2e%2e/web.go",
		"/../web.go",
		"/web.go",
		"/token",
	} {
		res := get(t, h, http.MethodGet, p, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, res.StatusCode)
		}
		checkCommonHeaders(t, res)
	}
	// "/" is the index page, never a generated listing.
	res := get(t, h, http.MethodGet, "/", nil)
	if b := body(t, res); b != embedded(t, "index.html") {
		t.Errorf("GET / is not index.html: %.200q", b)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	res := get(t, Handler(), http.MethodPost, "/app.js", nil)
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: status %d, want 405", res.StatusCode)
	}
	if got := res.Header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("Allow = %q", got)
	}
}

// TestMountedUnderDemo mounts the handler as the server does and checks the
// public paths, including the redirect from the bare prefix.
func TestMountedUnderDemo(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/demo/", http.StripPrefix("/demo", Handler()))
	stripped := http.StripPrefix("/demo", Handler())
	mux.Handle("/demo", stripped)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	for _, p := range []string{"/demo/", "/demo/customer.html", "/demo/agent.html", "/demo/app.js", "/demo/style.css"} {
		res, err := client.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", p, res.StatusCode)
		}
	}
	res, err := client.Get(srv.URL + "/demo?x=1")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/demo/?x=1" {
		t.Errorf("GET /demo: status %d Location %q, want 301 to /demo/?x=1", res.StatusCode, res.Header.Get("Location"))
	}
}

var (
	attrURL     = regexp.MustCompile(`(?i)\b(src|href|action|poster|srcset)\s*=\s*["']?([^"'\s>]*)`)
	remoteURL   = regexp.MustCompile(`(?i)(https?:)?//[a-z0-9]`)
	scriptTag   = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)
	inlineStyle = regexp.MustCompile(`(?i)<[a-z][^>]*\sstyle\s*=`)
	inlineEvent = regexp.MustCompile(`(?i)<[a-z][^>]*\son[a-z]+\s*=`)
	styleTag    = regexp.MustCompile(`(?i)<style\b`)
	idAttr      = regexp.MustCompile(`\bid="([^"]+)"`)
	cssURL      = regexp.MustCompile(`(?i)(url\(|@import)`)
	jsRemoteURL = regexp.MustCompile(`(?i)https?://`)
)

func htmlFiles(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(static, "static/*.html")
	if err != nil || len(names) == 0 {
		t.Fatalf("no html files: %v", err)
	}
	for i, n := range names {
		names[i] = strings.TrimPrefix(n, "static/")
	}
	return names
}

// TestHTMLUsesOnlyLocalResources checks that the pages reference nothing on
// the network (no CDN, no web fonts), that every local reference is served,
// and that nothing inline would be blocked by the CSP.
func TestHTMLUsesOnlyLocalResources(t *testing.T) {
	h := Handler()
	for _, name := range htmlFiles(t) {
		page := embedded(t, name)
		refs := attrURL.FindAllStringSubmatch(page, -1)
		if len(refs) == 0 {
			t.Errorf("%s: no src/href found; is the regexp broken?", name)
		}
		for _, m := range refs {
			ref := m[2]
			if remoteURL.MatchString(ref) {
				t.Errorf("%s: %s=%q is not a local resource", name, m[1], ref)
				continue
			}
			if strings.HasPrefix(ref, "data:") || strings.HasPrefix(ref, "#") {
				continue
			}
			u, err := url.Parse(ref)
			if err != nil || u.Scheme != "" {
				t.Errorf("%s: %s=%q is not a relative URL", name, m[1], ref)
				continue
			}
			target := path.Join("/", path.Dir("/"+name), u.Path)
			if strings.HasSuffix(u.Path, "/") && !strings.HasSuffix(target, "/") {
				target += "/"
			}
			if res := get(t, h, http.MethodGet, target, nil); res.StatusCode != http.StatusOK {
				t.Errorf("%s: %s=%q -> GET %s: status %d", name, m[1], ref, target, res.StatusCode)
			}
		}
		for _, m := range scriptTag.FindAllStringSubmatch(page, -1) {
			if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
				t.Errorf("%s: inline script (blocked by the CSP): %.80q", name, m[0])
			}
		}
		if inlineStyle.MatchString(page) || styleTag.MatchString(page) {
			t.Errorf("%s: inline style (blocked by the CSP)", name)
		}
		if inlineEvent.MatchString(page) {
			t.Errorf("%s: inline event handler (blocked by the CSP)", name)
		}
	}
	if css := embedded(t, "style.css"); cssURL.MatchString(css) {
		t.Errorf("style.css loads other resources (url() or @import)")
	}
	if js := embedded(t, "app.js"); jsRemoteURL.MatchString(js) {
		t.Errorf("app.js mentions a remote http(s) URL")
	}
}

// TestPageIDs pins the element ids that automated browser tests use.
func TestPageIDs(t *testing.T) {
	common := []string{"status", "recording", "hangup", "chat-input", "chat-send", "chat-log", "remote-video", "local-video"}
	want := map[string][]string{
		"customer.html": append([]string{"join", "queue-position", "record-consent"}, common...),
		"agent.html":    append([]string{"available", "away", "record-toggle"}, common...),
	}
	for name, ids := range want {
		page := embedded(t, name)
		have := map[string]int{}
		for _, m := range idAttr.FindAllStringSubmatch(page, -1) {
			have[m[1]]++
		}
		for id, n := range have {
			if n > 1 {
				t.Errorf("%s: id %q used %d times", name, id, n)
			}
		}
		for _, id := range ids {
			if have[id] == 0 {
				t.Errorf("%s: no element with id %q", name, id)
			}
		}
		if !strings.Contains(page, `src="app.js"`) {
			t.Errorf("%s does not load app.js", name)
		}
	}
	index := embedded(t, "index.html")
	for _, link := range []string{`href="customer.html"`, `href="agent.html"`} {
		if !strings.Contains(index, link) {
			t.Errorf("index.html lacks %s", link)
		}
	}
}

// tagWithID returns the start tag of the element with id in page, or "".
func tagWithID(page, id string) string {
	m := regexp.MustCompile(`<[a-z]+\b[^>]*\bid="` + regexp.QuoteMeta(id) + `"[^>]*>`).FindString(page)
	return m
}

// TestRecordingControls checks the markup of what a recorded call shows:
// the indicator on both pages is a live status region, hidden until the
// server says the call is recorded; the agent's pause button is hidden
// until then too; the customer's consent checkbox is labelled and checked
// by default, and app.js asks for a consenting token when it is checked.
func TestRecordingControls(t *testing.T) {
	for _, name := range []string{"customer.html", "agent.html"} {
		tag := tagWithID(embedded(t, name), "recording")
		for _, attr := range []string{`role="status"`, `aria-live="polite"`, ` hidden`} {
			if !strings.Contains(tag, attr) {
				t.Errorf("%s: the recording indicator %s lacks %s", name, tag, attr)
			}
		}
	}
	agent := embedded(t, "agent.html")
	if tag := tagWithID(agent, "record-toggle"); !strings.Contains(tag, `type="button"`) || !strings.Contains(tag, " hidden") {
		t.Errorf("agent.html: the pause button %q is not a button hidden at first", tag)
	}
	if tagWithID(embedded(t, "customer.html"), "record-toggle") != "" {
		t.Error("customer.html has the agent's pause button")
	}
	if tagWithID(agent, "record-consent") != "" {
		t.Error("agent.html has the customer's consent checkbox")
	}
	cust := embedded(t, "customer.html")
	tag := tagWithID(cust, "record-consent")
	if !strings.Contains(tag, `type="checkbox"`) || !strings.Contains(tag, " checked") {
		t.Errorf("customer.html: consent %q is not a checkbox checked by default", tag)
	}
	label := regexp.MustCompile(`(?s)<label\b[^>]*\bfor="record-consent"[^>]*>(.*?)</label>`).FindStringSubmatch(cust)
	if label == nil || !strings.Contains(label[1], "Record this call") {
		t.Errorf("customer.html: the consent checkbox has no label saying \"Record this call\": %q", label)
	}
	js := embedded(t, "app.js")
	for _, want := range []string{`"&consent=1"`, `type: "recording"`, `case "recording":`} {
		if !strings.Contains(js, want) {
			t.Errorf("app.js lacks %s", want)
		}
	}
}
