package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/coordinator"
	"github.com/tabgrid/tabgrid/coordinator/simtab"
	"github.com/tabgrid/tabgrid/store/redistest"
)

// startServer starts an in-process coordinator on a free loopback port,
// on Redis when redisURL is set, closed at cleanup.
func startServer(t testing.TB, redisURL string) *coordinator.Server {
	t.Helper()
	cfg := coordinator.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.APITokens = []string{apiToken}
	cfg.RedisURL = redisURL
	cfg.ShutdownTimeout = 3 * time.Second
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := coordinator.New(cfg, log)
	if err != nil {
		t.Fatalf("new coordinator: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start coordinator: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// jobRow is the selector of a job's row on the dashboard.
func jobRow(id string) string {
	return fmt.Sprintf(`#jobs tr[data-job-id=%q]`, id)
}

// watchProgress polls the job's data-progress on the dashboard until it
// is 1 and returns every distinct value seen, in order.
func watchProgress(t *testing.T, dash *browserTab, id string, within time.Duration) []float64 {
	t.Helper()
	expr := fmt.Sprintf(`document.querySelector(%q)?.dataset.progress ?? ""`, jobRow(id)+" .progress")
	deadline := time.Now().Add(within)
	var seen []float64
	for {
		var s string
		if err := dash.eval(expr, &s); err != nil {
			t.Fatal(err)
		}
		if s != "" {
			p, err := strconv.ParseFloat(s, 64)
			if err != nil || p < 0 || p > 1 {
				t.Fatalf("data-progress %q is not a number in 0..1", s)
			}
			if len(seen) == 0 || seen[len(seen)-1] != p {
				seen = append(seen, p)
			}
			if p == 1 {
				return seen
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: progress did not reach 1 within %s; seen %v", id, within, seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func checkRising(t *testing.T, seen []float64) {
	t.Helper()
	for i := 1; i < len(seen); i++ {
		if seen[i] < seen[i-1] {
			t.Fatalf("progress went back: %v", seen)
		}
	}
}

// TestDashboardLive runs the whole grid in one browser: two volunteer tabs
// compute a mandelbrot job while a dashboard tab shows it. It reads the
// dashboard's DOM only: the job's progress reaching 100%, both tabs with
// completed tasks, the image, then a failed job's failed tasks and a
// cancel through the token form.
func TestDashboardLive(t *testing.T) {
	requireChromium(t)
	srv := startServer(t, "")
	a := api{t: t, base: srv.URL()}
	b := startBrowser(t, browserOptions{})
	dash := b.open("dashboard", srv.URL()+"/dashboard")
	dash.waitText(t, "#connection", 15*time.Second, "live", func(s string) bool { return s == "live" })
	b.open("vol-1", srv.URL()+"/?autostart=1&threads=2&name=vol-1")
	b.open("vol-2", srv.URL()+"/?autostart=1&threads=2&name=vol-2")
	dash.waitEval(t, `document.querySelectorAll('#tabs tbody tr:not(.dropped)').length === 2`, 30*time.Second)
	dash.waitText(t, "#stat-tabs", 10*time.Second, "2 tabs", func(s string) bool { return s == "2" })

	job := a.submit(map[string]any{
		"kind": "mandelbrot", "name": "dashboard e2e",
		"input": map[string]any{"width": 640, "height": 480, "x_min": -2.5, "x_max": 1, "y_min": -1.2, "y_max": 1.2, "max_iter": 3000},
		"split": map[string]any{"tasks": 48},
	})
	seen := watchProgress(t, dash, job.ID, 2*time.Minute)
	t.Logf("progress values seen on the dashboard: %v", seen)
	checkRising(t, seen)
	row := jobRow(job.ID)
	dash.waitText(t, row+" .state", 10*time.Second, "succeeded", func(s string) bool { return s == "succeeded" })
	if s, _ := dash.text(row + " .pct"); s != "100%" {
		t.Errorf("percent shown: %q, want 100%%", s)
	}
	if s, _ := dash.text(row + " .counts"); !strings.HasPrefix(s, "48/48 done") {
		t.Errorf("counts shown: %q, want 48/48 done", s)
	}
	dash.waitEval(t, fmt.Sprintf(`!document.querySelector(%q).hidden`, row+" a.result"), 5*time.Second)
	dash.waitEval(t, fmt.Sprintf(`document.querySelector(%q).hidden`, row+" button.cancel"), 5*time.Second)

	// Both volunteer tabs computed tiles; the counts come with the
	// periodic tab list (every 2 s).
	dash.waitEval(t, `[...document.querySelectorAll('#tabs tbody tr')].filter(r => Number(r.querySelector('.completed').dataset.value) > 0).length === 2`, 15*time.Second)
	var completed []string
	if err := dash.eval(`[...document.querySelectorAll('#tabs tbody tr .completed')].map(c => c.textContent)`, &completed); err != nil {
		t.Fatal(err)
	}
	t.Logf("completed per tab on the dashboard: %v", completed)

	// The preview shows this job's final image.
	dash.waitEval(t, fmt.Sprintf(`(() => { const img = document.querySelector('#preview-img');
		return img.dataset.jobId === %q && img.dataset.succeeded === "48" && img.complete && img.naturalWidth === 640 })()`, job.ID), 15*time.Second)
	var loads string
	_ = dash.eval(`document.querySelector('#preview-img').dataset.loads`, &loads)
	t.Logf("preview image loads for the job: %s", loads)

	shot := filepath.Join(t.TempDir(), "dashboard.png")
	if err := dash.screenshot(shot, "/tmp/tabgrid-dashboard.png"); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (and /tmp/tabgrid-dashboard.png)", shot)

	t.Run("failed job shows its failed tasks", func(t *testing.T) {
		bad := a.submit(map[string]any{
			"kind": "js", "name": "throws", "max_attempts": 1,
			"input": map[string]any{"code": "(x) => { if (x === 2) throw new Error('boom on ' + x); return x }", "items": []int{1, 2, 3}},
			"split": map[string]any{"tasks": 3},
		})
		row := jobRow(bad.ID)
		dash.waitText(t, row+" .state", time.Minute, "failed", func(s string) bool { return s == "failed" })
		dash.waitText(t, row+" .error", 10*time.Second, "an error", func(s string) bool { return s != "" })
		got := dash.waitText(t, row+" .failed-tasks", 10*time.Second, "the failed task", func(s string) bool {
			return strings.Contains(s, "task 1") && strings.Contains(s, "boom on 2")
		})
		t.Logf("failed tasks shown: %q", got)
	})

	t.Run("cancel asks for the token and cancels", func(t *testing.T) {
		long := a.submit(map[string]any{
			"kind": "sleep", "name": "long sleep",
			"input": map[string]any{"tasks": 200, "ms": 2000},
		})
		row := jobRow(long.ID)
		dash.waitText(t, row+" .state", 30*time.Second, "running", func(s string) bool { return s == "running" })
		if err := dash.click(row + " button.cancel"); err != nil {
			t.Fatal(err)
		}
		enter := func(token string) {
			t.Helper()
			dash.waitEval(t, `!document.querySelector('#token-form').hidden`, 10*time.Second)
			if err := dash.eval(fmt.Sprintf(`(() => { document.querySelector('#token-input').value = %q;
				document.querySelector('#token-form').requestSubmit(); return true })()`, token), nil); err != nil {
				t.Fatal(err)
			}
		}
		enter("not-the-token")
		// The refused token is forgotten and the form asks again.
		dash.waitText(t, "#token-form .message", 10*time.Second, "refused", func(s string) bool { return strings.Contains(s, "refused") })
		enter(apiToken)
		dash.waitText(t, row+" .state", 15*time.Second, "cancelled", func(s string) bool { return s == "cancelled" })
		dash.waitEval(t, fmt.Sprintf(`document.querySelector(%q).hidden`, row+" button.cancel"), 5*time.Second)
		if j := a.job(long.ID); j.State != "cancelled" {
			t.Fatalf("job state on the server: %s, want cancelled", j.State)
		}
		var stored string
		if err := dash.eval(`sessionStorage.getItem('tabgrid.api_token') ?? ""`, &stored); err != nil || stored != apiToken {
			t.Fatalf("token kept in sessionStorage: %q %v", stored, err)
		}
	})
}

// TestDashboardTwoCoordinators checks that a dashboard sees the whole
// grid, not one coordinator: it is connected to the first coordinator
// while the job's tasks all run on simulated tabs of the second, both on
// one Redis.
func TestDashboardTwoCoordinators(t *testing.T) {
	requireChromium(t)
	rs := redistest.Start(t)
	first := startServer(t, rs.URL())
	second := startServer(t, rs.URL())

	b := startBrowser(t, browserOptions{})
	dash := b.open("dashboard", first.URL()+"/dashboard")
	dash.waitText(t, "#connection", 15*time.Second, "live", func(s string) bool { return s == "live" })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ids []string
	for i := range 3 {
		tab, err := simtab.Dial(ctx, second.URL()+"/ws", simtab.Options{Capacity: 4, Name: fmt.Sprintf("sim-%d", i), Delay: 20 * time.Millisecond})
		if err != nil {
			t.Fatalf("dial simulated tab: %v", err)
		}
		t.Cleanup(func() { _ = tab.Close() })
		ids = append(ids, tab.WorkerID())
	}
	for _, id := range ids {
		sel := fmt.Sprintf(`#tabs tr[data-worker-id=%q] .coordinator`, id)
		dash.waitText(t, sel, 30*time.Second, "the second coordinator", func(s string) bool { return s == second.Hub().ID() })
	}

	a := api{t: t, base: first.URL()}
	job := a.submit(map[string]any{
		"kind": "sleep", "name": "runs elsewhere",
		"input": map[string]any{"tasks": 120, "ms": 10},
	})
	seen := watchProgress(t, dash, job.ID, time.Minute)
	t.Logf("progress values seen on the first coordinator's dashboard: %v", seen)
	checkRising(t, seen)
	dash.waitText(t, jobRow(job.ID)+" .state", 10*time.Second, "succeeded", func(s string) bool { return s == "succeeded" })
	// The tabs' completed counts, kept by the second coordinator, reach
	// the first one's dashboard and add up to the job's tasks.
	dash.waitEval(t, fmt.Sprintf(`[...document.querySelectorAll('#tabs tbody tr')].reduce((n, r) => n + Number(r.querySelector('.completed').dataset.value || 0), 0) >= %d`, 120), 15*time.Second)
	shot := filepath.Join(t.TempDir(), "dashboard-two-coordinators.png")
	if err := dash.screenshot(shot); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
}
