package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/coordinator"
	"github.com/tabgrid/tabgrid/tasks"
	"github.com/tabgrid/tabgrid/webclient"
)

const volunteerToken = "volunteer-e2e-token"

// startVolunteerServer starts a coordinator with the in-memory store on
// 127.0.0.1:0. Its log is shown only when the test fails.
func startVolunteerServer(t testing.TB) *coordinator.Server {
	t.Helper()
	logs := &volLog{}
	cfg := coordinator.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.APITokens = []string{volunteerToken}
	srv, err := coordinator.New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatalf("new coordinator: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start coordinator: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close coordinator: %v", err)
		}
		if t.Failed() {
			t.Logf("coordinator log:\n%s", logs.String())
		}
	})
	return srv
}

// volLog is a bytes.Buffer safe for the server's goroutines.
type volLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *volLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *volLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// volJob is the part of the job object these tests read.
type volJob struct {
	ID     string          `json:"id"`
	Kind   string          `json:"kind"`
	State  string          `json:"state"`
	Error  string          `json:"error"`
	Result json.RawMessage `json:"result"`
	Tasks  tasks.Counts    `json:"tasks"`
}

// request calls the REST API and decodes a JSON answer into out.
func volRequest(t testing.TB, method, url string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+volunteerToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, data, err)
		}
	}
	return res.StatusCode
}

// submit posts a job and returns it as created.
func volSubmit(t testing.TB, base string, spec map[string]any) volJob {
	t.Helper()
	var j volJob
	if code := volRequest(t, "POST", base+"/api/v1/jobs", spec, &j); code != http.StatusCreated {
		t.Fatalf("submit %v: status %d", spec["kind"], code)
	}
	return j
}

// volWaitFinal long-polls the job until it is final or within runs out.
func volWaitFinal(t testing.TB, base, id string, within time.Duration) volJob {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var j volJob
		if code := volRequest(t, "GET", base+"/api/v1/jobs/"+id+"?wait=20s", nil, &j); code != http.StatusOK {
			t.Fatalf("get job %s: status %d", id, code)
		}
		if tasks.JobState(j.State).Final() {
			if j.State == string(tasks.JobSucceeded) {
				var r json.RawMessage
				if code := volRequest(t, "GET", base+"/api/v1/jobs/"+id+"/result", nil, &r); code != http.StatusOK {
					t.Fatalf("job %s result: status %d", id, code)
				}
				j.Result = r
			}
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s (%s) still %s after %s: %+v", id, j.Kind, j.State, within, j.Tasks)
		}
	}
}

// reference computes a job's result with the kind's Go code, and the task
// outputs it was reduced from.
func volReference(t testing.TB, kind, jobID string, input json.RawMessage, split int) (json.RawMessage, []json.RawMessage) {
	t.Helper()
	res, outputs, err := tasks.Reference(context.Background(), kind, jobID, input, split)
	if err != nil {
		t.Fatalf("reference %s: %v", kind, err)
	}
	return res, outputs
}

// volSameJSON compares two JSON texts as values.
func volSameJSON(t testing.TB, a, b json.RawMessage) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("decode %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// openVolunteers opens n volunteer tabs with autostart and waits until
// the coordinator lists all of them as workers.
func openVolunteers(t testing.TB, b *browser, base string, n int) []*browserTab {
	t.Helper()
	tabs := make([]*browserTab, n)
	for i := range tabs {
		name := fmt.Sprintf("tab%d", i+1)
		tabs[i] = b.open(name, base+"/?autostart=1&threads=2&name="+name)
	}
	for _, tab := range tabs {
		tab.waitText(t, "#state", 30*time.Second, "connected", func(s string) bool { return s == "connected" })
		tab.waitText(t, "#threads", 5*time.Second, "2 threads", func(s string) bool { return s == "2" })
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var ws struct {
			Workers []struct {
				Name     string `json:"name"`
				Capacity int    `json:"capacity"`
			} `json:"workers"`
		}
		volRequest(t, "GET", base+"/api/v1/workers", nil, &ws)
		lent := 0
		for _, w := range ws.Workers {
			if strings.HasPrefix(w.Name, "tab") {
				lent += w.Capacity
			}
		}
		if lent == 2*n {
			return tabs
		}
		if time.Now().After(deadline) {
			t.Fatalf("coordinator lists %+v, want %d tabs of 2 threads", ws.Workers, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestVolunteerTabsComputeJobs has three real browser tabs compute one
// job of each kind submitted through the REST API, and checks every
// result equals the Go reference exactly.
func TestVolunteerTabsComputeJobs(t *testing.T) {
	requireChromium(t)
	srv := startVolunteerServer(t)
	base := srv.URL()
	b := startBrowser(t, browserOptions{})
	tabs := openVolunteers(t, b, base, 3)

	items := make([]int, 200)
	squares := make([]int, len(items))
	for i := range items {
		items[i] = i - 50
		squares[i] = items[i]*items[i] + 1
	}
	jobs := []struct {
		kind  string
		input string
		split int
	}{
		{"primes", `{"from": 1000000, "to": 3000000}`, 8},
		{"pi", `{"samples": 2000000, "seed": 7}`, 6},
		{"mandelbrot", `{"width": 300, "height": 200, "x_min": -2.5, "x_max": 1, "y_min": -1.2, "y_max": 1.2, "max_iter": 300}`, 12},
		{"js", `{"code": "async (x) => { await new Promise((r) => setTimeout(r, 1)); return x * x + 1 }", "items": ` + volJSON(t, items) + `}`, 5},
	}
	submitted := make([]volJob, len(jobs))
	for i, j := range jobs {
		submitted[i] = volSubmit(t, base, map[string]any{
			"kind": j.kind, "name": "e2e " + j.kind, "input": json.RawMessage(j.input), "split": map[string]int{"tasks": j.split},
		})
	}
	for i, j := range jobs {
		t.Run(j.kind, func(t *testing.T) {
			got := volWaitFinal(t, base, submitted[i].ID, 3*time.Minute)
			if got.State != string(tasks.JobSucceeded) {
				t.Fatalf("job %s: state %s, error %q, tasks %+v", got.ID, got.State, got.Error, got.Tasks)
			}
			if j.kind == "js" {
				want := json.RawMessage(`{"outputs": ` + volJSON(t, squares) + `}`)
				if !volSameJSON(t, got.Result, want) {
					t.Fatalf("js result %s, want %s", got.Result, want)
				}
				return
			}
			want, outputs := volReference(t, j.kind, got.ID, json.RawMessage(j.input), j.split)
			if !volSameJSON(t, got.Result, want) {
				t.Fatalf("%s result %s, want the Go reference %s", j.kind, got.Result, want)
			}
			t.Logf("%s: %s", j.kind, got.Result)
			if j.kind == "mandelbrot" {
				checkMandelbrotPNG(t, base, got, json.RawMessage(j.input), outputs)
			}
		})
	}

	// Every tab took part, and the page shows it.
	for _, tab := range tabs {
		tab.waitText(t, "#tasks-done", 10*time.Second, "> 0", func(s string) bool { n, _ := strconv.Atoi(s); return n > 0 })
	}
}

// checkMandelbrotPNG fetches the job's image and compares it with the Go
// reference rendering, pixel for pixel.
func checkMandelbrotPNG(t *testing.T, base string, job volJob, input json.RawMessage, outputs []json.RawMessage) {
	t.Helper()
	var res struct {
		Width  int    `json:"width"`
		Height int    `json:"height"`
		Image  string `json:"image"`
	}
	if err := json.Unmarshal(job.Result, &res); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(base + res.Image)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("GET %s: %d %s", res.Image, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	got, err := png.Decode(resp.Body)
	if err != nil {
		t.Fatalf("decode %s: %v", res.Image, err)
	}
	if s := got.Bounds().Size(); s.X != 300 || s.Y != 200 {
		t.Fatalf("image is %v, want 300x200", s)
	}
	refPNG, err := tasks.MandelbrotPNG(input, outputs)
	if err != nil {
		t.Fatal(err)
	}
	want, err := png.Decode(bytes.NewReader(refPNG))
	if err != nil {
		t.Fatal(err)
	}
	if diff := volPixelDiff(got, want); diff != "" {
		t.Fatalf("image differs from the Go reference: %s", diff)
	}
}

// volPixelDiff names the first pixel where two images differ, or "".
func volPixelDiff(a, b image.Image) string {
	if a.Bounds() != b.Bounds() {
		return fmt.Sprintf("bounds %v vs %v", a.Bounds(), b.Bounds())
	}
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			r1, g1, b1, a1 := a.At(x, y).RGBA()
			r2, g2, b2, a2 := b.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
				return fmt.Sprintf("pixel (%d,%d) is %v, want %v", x, y, a.At(x, y), b.At(x, y))
			}
		}
	}
	return ""
}

func volJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestVolunteerJSCannotFetch submits js code that calls fetch on the
// coordinator itself: the sandboxed worker refuses, and the job fails
// with that error instead of producing a result.
func TestVolunteerJSCannotFetch(t *testing.T) {
	requireChromium(t)
	srv := startVolunteerServer(t)
	base := srv.URL()
	b := startBrowser(t, browserOptions{})
	openVolunteers(t, b, base, 1)

	job := volSubmit(t, base, map[string]any{
		"kind":         "js",
		"name":         "phone home",
		"max_attempts": 2,
		"input": map[string]any{
			"code":  fmt.Sprintf("async (x) => { const r = await fetch(%q); return await r.text() }", base+"/healthz"),
			"items": []int{1, 2},
		},
	})
	got := volWaitFinal(t, base, job.ID, 2*time.Minute)
	if got.State != string(tasks.JobFailed) {
		t.Fatalf("job %s: state %s (result %s), want failed", got.ID, got.State, got.Result)
	}
	if !strings.Contains(got.Error, "Failed to fetch") {
		t.Fatalf("job error %q does not name the fetch failure", got.Error)
	}
	t.Logf("job error: %s", got.Error)
	var failed struct {
		Tasks []struct {
			Index int    `json:"index"`
			Error string `json:"error"`
		} `json:"tasks"`
	}
	volRequest(t, "GET", base+"/api/v1/jobs/"+job.ID+"/tasks?state=failed", nil, &failed)
	if len(failed.Tasks) == 0 || !strings.Contains(failed.Tasks[0].Error, "TypeError: Failed to fetch") {
		t.Fatalf("failed tasks %+v, want a TypeError naming the fetch failure", failed.Tasks)
	}
}

// TestVolunteerPageScreenshot shows the page at work: counters moving
// while a job runs. The screenshot goes under the test's temp dir and to
// /tmp/tabgrid-volunteer.png for a human to look at.
func TestVolunteerPageScreenshot(t *testing.T) {
	requireChromium(t)
	srv := startVolunteerServer(t)
	base := srv.URL()
	b := startBrowser(t, browserOptions{})
	tabs := openVolunteers(t, b, base, 1)
	tab := tabs[0]

	job := volSubmit(t, base, map[string]any{
		"kind":  "sleep",
		"name":  "screenshot demo",
		"input": map[string]any{"tasks": 400, "ms": 50},
	})
	count := func(s string) int { n, _ := strconv.Atoi(s); return n }
	first := count(tab.waitText(t, "#tasks-done", 60*time.Second, "> 0", func(s string) bool { return count(s) > 0 }))
	tab.waitText(t, "#tasks-done", 60*time.Second, "moving", func(s string) bool { return count(s) > first })
	tab.waitText(t, "#rate", 10*time.Second, "> 0", func(s string) bool { v, _ := strconv.ParseFloat(s, 64); return v > 0 })
	tab.waitText(t, "#job", 10*time.Second, "naming the job", func(s string) bool { return strings.Contains(s, "screenshot demo (sleep)") })

	path := filepath.Join(t.TempDir(), "volunteer.png")
	if err := tab.screenshot(path, "/tmp/tabgrid-volunteer.png"); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the running volunteer page: %s (also /tmp/tabgrid-volunteer.png)", path)
	if st, err := os.Stat(path); err != nil || st.Size() < 1000 {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	final := volWaitFinal(t, base, job.ID, 2*time.Minute)
	if final.State != string(tasks.JobSucceeded) {
		t.Fatalf("sleep job %s: %s %q", final.ID, final.State, final.Error)
	}
}

// TestComputeWorkerSandbox runs the compute worker exactly as the page
// does, without a coordinator, and checks that submitted code cannot
// reach the network, even its own origin: the worker's
// Content-Security-Policy forbids connections.
func TestComputeWorkerSandbox(t *testing.T) {
	srv := httptest.NewServer(webclient.Handler())
	t.Cleanup(srv.Close)
	b := startBrowser(t, browserOptions{})
	tab := b.open("page", srv.URL+"/")

	run := func(kind string, input string) map[string]any {
		t.Helper()
		var out map[string]any
		err := tab.eval(`new Promise((resolve) => {
			const w = new Worker("/volunteer/compute-worker.js", {type: "module"});
			w.onmessage = (e) => { w.terminate(); resolve(e.data); };
			w.onerror = (e) => resolve({error: "worker error: " + e.message});
			w.postMessage({id: 1, kind: `+"`"+kind+"`"+`, input: `+input+`});
		})`, &out)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := run("js", `{code: "async (x) => { const r = await fetch('/'); return r.status }", items: [1]}`)
	if e, _ := out["error"].(string); !strings.Contains(e, "Failed to fetch") {
		t.Fatalf("fetch from the sandbox: got %v, want a task error naming the fetch failure", out)
	}
	out = run("js", `{code: "(x) => x * x", items: [1, 2, 3]}`)
	if out["json"] != `{"outputs":[1,4,9]}` {
		t.Fatalf("js kind: got %v", out)
	}
	out = run("primes", `{from: 0, to: 100}`)
	if out["json"] != `{"count":25}` {
		t.Fatalf("primes kind: got %v", out)
	}
	// The page itself may fetch (it does, for job names): the sandbox
	// is the worker, not the origin.
	var status int
	if err := tab.eval(`fetch("/").then(r => r.status)`, &status); err != nil || status != 200 {
		t.Fatalf("page fetch: %d %v", status, err)
	}
	tab.waitText(t, "#state", 10*time.Second, "stopped", func(s string) bool { return s == "stopped" })
}
