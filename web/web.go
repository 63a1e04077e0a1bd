// Package web serves HelpCaster's static demo pages: a customer widget and an
// agent console that speak signaling protocol v1 over /v1/signal and do
// WebRTC with two peer connections ("pub" and "sub").
//
// The files live in web/static and are embedded in the binary. Handler serves
// them from the root of whatever prefix it is mounted under, for example
//
//	mux.Handle("/demo/", http.StripPrefix("/demo", web.Handler()))
//
// The pages fetch a dev token from "token?role=customer|agent" relative to
// their own URL (so /demo/token when mounted at /demo/), the customer's with
// "&consent=1" when it agrees to be recorded; that endpoint is not served
// here.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every response. Pages may load scripts,
// styles and images only from their own origin (images also as data: URLs),
// open WebSockets back to any host (ws:/wss:, the signaling connection), and
// play media from blobs. No inline script or style, no frames, no plugins.
const ContentSecurityPolicy = "default-src 'none'; " +
	"script-src 'self'; " +
	"style-src 'self'; " +
	"img-src 'self' data:; " +
	"media-src 'self' blob:; " +
	"connect-src 'self' ws: wss:; " +
	"base-uri 'none'; " +
	"form-action 'none'; " +
	"frame-ancestors 'none'"

// contentTypes are the types of the files we ship, fixed here rather than
// taken from the host's mime database so that they do not vary by machine.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
	".txt":  "text/plain; charset=utf-8",
}

type file struct {
	data  []byte
	ctype string
	etag  string
}

type handler struct {
	files map[string]file // by slash-separated path relative to static/, e.g. "app.js"
}

// Handler returns an http.Handler serving the embedded demo pages. "/" serves
// index.html; only regular files are served (no directory listings); only GET
// and HEAD are allowed. Every response carries ContentSecurityPolicy and
// Cache-Control: no-cache (with an ETag, so revalidation is cheap).
func Handler() http.Handler {
	root, err := fs.Sub(static, "static")
	if err != nil {
		panic("web: embedded static directory missing: " + err.Error())
	}
	h := &handler{files: make(map[string]file)}
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		h.files[p] = file{
			data:  data,
			ctype: contentType(p),
			etag:  `"` + hex.EncodeToString(sum[:12]) + `"`,
		}
		return nil
	})
	if err != nil {
		panic("web: reading embedded files: " + err.Error())
	}
	return h
}

func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}

	p := r.URL.Path
	if p == "" {
		// Mounted with StripPrefix and asked for the bare prefix ("/demo"):
		// redirect to "/demo/" so that the index page's relative links work.
		redirectToSlash(w, r)
		return
	}
	if p == "/" {
		p = "/index.html"
	}
	// Exact lookup of a regular file: directories, "..", and anything not
	// embedded are simply not in the map.
	f, ok := h.files[strings.TrimPrefix(p, "/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hdr.Set("Content-Type", f.ctype)
	hdr.Set("ETag", f.etag)
	http.ServeContent(w, r, p, time.Time{}, bytes.NewReader(f.data))
}

// redirectToSlash redirects to the original request path with a slash added.
func redirectToSlash(w http.ResponseWriter, r *http.Request) {
	u, err := url.ParseRequestURI(r.RequestURI)
	if err != nil || u.Path == "" || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		http.NotFound(w, r)
		return
	}
	target := u.EscapedPath() + "/"
	if u.RawQuery != "" {
		target += "?" + u.RawQuery
	}
	http.Redirect(w, r, target, http.StatusMovedPermanently)
}
