package webclient

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)

	tests := []struct {
		path        string
		status      int
		contentType string
		csp         string // substring of Content-Security-Policy; "" = none expected
		body        string // substring of the body
	}{
		{"/", 200, "text/html; charset=utf-8", "connect-src 'self'", `id="start"`},
		{"/volunteer/main.js", 200, "text/javascript; charset=utf-8", "", "import"},
		{"/volunteer/style.css", 200, "text/css; charset=utf-8", "", "body"},
		{"/volunteer/compute-worker.js", 200, "text/javascript; charset=utf-8", "default-src 'none'; script-src 'self' 'unsafe-eval'", "onmessage"},
		{"/volunteer/heartbeat-worker.js", 200, "text/javascript; charset=utf-8", "default-src 'none'", "tick"},
		{"/volunteer/../volunteer/pool.js", 200, "text/javascript; charset=utf-8", "", "class Pool"},
		{"/embed.go", 404, "", "", ""},
		{"/volunteer/pool.test.js", 404, "", "", ""},
		{"/volunteer/", 404, "", "", ""},
		{"/nope.js", 404, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			res, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if tc.status != 200 {
				return
			}
			if got := res.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			csp := res.Header.Get("Content-Security-Policy")
			if tc.csp != "" && !strings.Contains(csp, tc.csp) {
				t.Errorf("Content-Security-Policy %q, want it to contain %q", csp, tc.csp)
			}
			if tc.csp == "" && csp != "" {
				t.Errorf("unexpected Content-Security-Policy %q", csp)
			}
			if !strings.Contains(string(body), tc.body) {
				t.Errorf("body does not contain %q", tc.body)
			}
		})
	}
}

// TestWorkersCannotConnect checks every worker script gets the policy
// that forbids connections, so no kind can phone out.
func TestWorkersCannotConnect(t *testing.T) {
	entries, err := os.ReadDir("volunteer")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), "-worker.js") {
			continue
		}
		n++
		rec := httptest.NewRecorder()
		Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/volunteer/"+e.Name(), nil))
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "connect-src") {
			t.Errorf("%s: Content-Security-Policy %q lets it connect", e.Name(), csp)
		}
	}
	if n < 2 {
		t.Fatalf("found %d worker scripts, want the compute and heartbeat workers", n)
	}
}

func TestHandlerRefusesWrites(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST / = %d, want 405", rec.Code)
	}
}

func TestDashboardRoute(t *testing.T) {
	if _, err := os.Stat("dashboard.html"); err != nil {
		t.Skip("dashboard.html is not written yet")
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/dashboard", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /dashboard = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}
