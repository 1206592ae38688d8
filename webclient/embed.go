// Package webclient holds the browser side of tabgrid as static files: the
// volunteer page (index.html and volunteer/), the JavaScript kinds
// (kinds/) and the dashboard (dashboard.html and dashboard/). Handler
// serves them; the coordinator mounts it for every path it does not serve
// itself. This package imports nothing of tabgrid's.
package webclient

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// The whole directory is embedded so that files added by the kinds and
// dashboard authors are served without touching this file; Handler only
// serves the extensions in contentTypes, so Go sources and tests stay
// private.
//
//go:embed *
var files embed.FS

// FS returns the embedded files (for tests and tools).
func FS() fs.FS { return files }

// contentTypes are the only file types served. JavaScript must be
// text/javascript or browsers refuse to load it as an ES module.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
}

// workerCSP is sent with every compute and heartbeat worker script. A
// dedicated worker takes its policy from its own script's response, so
// submitted code running there (the js kind) cannot fetch, open sockets
// or import from elsewhere: connect-src falls back to default-src 'none'.
// 'self' lets the worker import the kinds; 'unsafe-eval' lets it compile
// the submitted function.
const workerCSP = "default-src 'none'; script-src 'self' 'unsafe-eval'"

// pageCSP is the volunteer page's policy: same-origin scripts, styles,
// fetches and the WebSocket (CSP3 'self' covers ws: to the same host).
const pageCSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// Handler serves the volunteer page at /, the dashboard at /dashboard
// and the assets under their paths. Unknown paths are 404.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := fileFor(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	data, err := files.ReadFile(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentTypes[path.Ext(name)])
	h.Set("X-Content-Type-Options", "nosniff")
	// Revalidate every time: the files change with each release and are
	// small; a stale worker script would speak an old protocol.
	h.Set("Cache-Control", "no-cache")
	switch {
	case isWorker(name):
		h.Set("Content-Security-Policy", workerCSP)
	case name == "index.html":
		h.Set("Content-Security-Policy", pageCSP)
	}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(data)
}

// fileFor maps a URL path to an embedded file name, refusing what must
// not be served: Go files, tests, hidden files and directories.
func fileFor(urlPath string) (string, bool) {
	p := path.Clean("/" + urlPath)
	switch p {
	case "/":
		return "index.html", true
	case "/dashboard", "/dashboard/":
		return "dashboard.html", true
	}
	name := strings.TrimPrefix(p, "/")
	if _, ok := contentTypes[path.Ext(name)]; !ok {
		return "", false
	}
	if strings.HasSuffix(name, ".test.js") || strings.Contains(name, "/testdata/") {
		return "", false
	}
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") || strings.HasPrefix(part, "_") {
			return "", false
		}
	}
	st, err := fs.Stat(files, name)
	if err != nil || st.IsDir() {
		return "", false
	}
	return name, true
}

// isWorker reports whether the file is a Web Worker script that must run
// under workerCSP.
func isWorker(name string) bool {
	return strings.HasSuffix(name, "-worker.js")
}
