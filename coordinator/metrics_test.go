package coordinator_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/coordinator"
	"github.com/tabgrid/tabgrid/coordinator/simtab"
	"github.com/tabgrid/tabgrid/store/redistest"
)

// TestMetricsDuringJob runs a job on a real coordinator with a tab that
// holds its tasks and drops, and a tab that forges results, and scrapes
// /metrics over HTTP before, during and after it: the counters must say
// exactly what happened, and every scrape must pass promtool check metrics.
func TestMetricsDuringJob(t *testing.T) {
	promtool := lookPromtool(t)
	forEachServer(t, func(t *testing.T, redisURL string) {
		srv := startServer(t, redisURL)
		wsURL := srv.URL() + "/ws"

		idle := scrape(t, srv)
		checkFamilies(t, idle)
		for _, r := range []string{"closed", "heartbeat", "timeout", "coordinator_lost", "error", "revoked"} {
			idle.want(t, 0, "tabgrid_tasks_requeued_total", "reason", r)
		}
		for _, r := range []string{"stale", "forged", "duplicate"} {
			idle.want(t, 0, "tabgrid_results_dropped_total", "reason", r)
		}
		idle.want(t, 1, "tabgrid_build_info", "go_version", runtime.Version())
		idle.want(t, 0, "tabgrid_tasks_dispatched_total")
		checkPromtool(t, promtool, idle)

		// The slow tab takes capacity+prefetch tasks and sits on them, so
		// the job cannot end before it drops.
		const total, slowCap, prefetch, forgerCap = 40, 2, 2, 4
		const held = slowCap + prefetch
		slow := dialTab(t, wsURL, simtab.Options{Capacity: slowCap, Delay: time.Hour, Name: "slow"})
		job := postJob(t, srv, fmt.Sprintf(`{"kind":"sleep","input":{"tasks":%d,"ms":2}}`, total))
		eventually(t, 10*time.Second, "the slow tab holds its tasks", func() bool { return slow.Stats().Received == held })
		forger := dialTab(t, wsURL, simtab.Options{Capacity: forgerCap, Forge: true, Name: "forger"})
		dash := openDashboard(t, srv)

		// During: everything but the held tasks is done. The counters
		// and gauges of one dispatcher turn are set one after another, so
		// a scrape may fall between them: wait until the turn is over.
		during := scrapeUntil(t, srv, "the forger finished the tasks it could get", func(s samples) bool {
			return s.value("tabgrid_tasks_completed_total") == total-held &&
				s.value("tabgrid_tasks_in_flight") == held &&
				s.value("tabgrid_dispatch_latency_seconds_count") == total-held
		})
		during.want(t, total, "tabgrid_tasks_dispatched_total") // each task leased once so far
		during.want(t, held, "tabgrid_tasks_in_flight")
		during.want(t, 2, "tabgrid_tabs_connected")
		during.want(t, slowCap+forgerCap, "tabgrid_tabs_capacity")
		during.want(t, 1, "tabgrid_dashboard_clients")
		during.want(t, 1, "tabgrid_jobs", "state", "running")
		during.want(t, held, "tabgrid_tasks", "state", "running")
		during.want(t, total-held, "tabgrid_tasks", "state", "succeeded")
		during.want(t, 0, "tabgrid_tasks", "state", "pending")
		during.want(t, total-held, "tabgrid_dispatch_latency_seconds_count")
		if s := during.value("tabgrid_dispatch_latency_seconds_sum"); s <= 0 {
			t.Errorf("dispatch latency sum %v, want > 0", s)
		}
		// Forge sends two fakes per task before its result, on the same
		// socket: by now every fake of a finished task is counted. The
		// wrong token reaches the store and is fenced (stale); the task
		// never sent is caught by the hub (forged).
		during.want(t, total-held, "tabgrid_results_dropped_total", "reason", "stale")
		during.want(t, total-held, "tabgrid_results_dropped_total", "reason", "forged")
		for _, op := range []string{"claim", "complete", "renew_workers", "count_jobs", "list_jobs"} {
			if n := during.value("tabgrid_store_request_duration_seconds_count", "op", op); n <= 0 {
				t.Errorf("store %s round trips observed: %v, want > 0", op, n)
			}
			during.want(t, 0, "tabgrid_store_errors_total", "op", op)
		}
		checkPromtool(t, promtool, during)

		// The slow tab drops mid-job: its tasks go back, and the forger
		// finishes them.
		slow.Close()
		dash.Close()
		final := getJob(t, srv, job, "?wait=60s")
		if final != "succeeded" {
			t.Fatalf("job %s, want succeeded", final)
		}
		after := scrapeUntil(t, srv, "the job's end reflected", func(s samples) bool {
			return s.value("tabgrid_jobs", "state", "succeeded") == 1 &&
				s.value("tabgrid_results_dropped_total", "reason", "forged") == total &&
				s.value("tabgrid_dashboard_clients") == 0
		})
		after.want(t, total, "tabgrid_tasks_completed_total")
		after.want(t, held, "tabgrid_tasks_requeued_total", "reason", "closed")
		after.want(t, total+held, "tabgrid_tasks_dispatched_total") // = completed + requeued
		for _, r := range []string{"heartbeat", "timeout", "coordinator_lost", "error", "revoked"} {
			after.want(t, 0, "tabgrid_tasks_requeued_total", "reason", r)
		}
		after.want(t, total, "tabgrid_results_dropped_total", "reason", "stale")
		after.want(t, 0, "tabgrid_results_dropped_total", "reason", "duplicate")
		after.want(t, total, "tabgrid_dispatch_latency_seconds_count")
		after.want(t, 0, "tabgrid_tasks_in_flight")
		after.want(t, 1, "tabgrid_tabs_connected")
		after.want(t, forgerCap, "tabgrid_tabs_capacity")
		after.want(t, 0, "tabgrid_jobs", "state", "running")
		for _, st := range []string{"pending", "running", "succeeded", "failed"} {
			after.want(t, 0, "tabgrid_tasks", "state", st) // no job is queued or running
		}
		if got := forger.Stats().Completed; got != total {
			t.Errorf("forger completed %d, want %d", got, total)
		}
		checkPromtool(t, promtool, after)
		skipPromtool(t, promtool)
	})
}

// TestMetricsStoreDown checks that a scrape still answers, without the
// store-derived series and with the failure counted, when Redis is gone.
func TestMetricsStoreDown(t *testing.T) {
	promtool := lookPromtool(t)
	rs := redistest.Start(t)
	srv := startServer(t, rs.URL())
	scrape(t, srv).want(t, 0, "tabgrid_jobs", "state", "queued")
	rs.Kill()
	s := scrape(t, srv)
	if _, ok := s.get("tabgrid_jobs", "state", "queued"); ok {
		t.Error("tabgrid_jobs reported while the store is unreachable")
	}
	// The failure is counted during the scrape that met it, so it shows
	// for sure in the next one.
	if n := scrape(t, srv).value("tabgrid_store_errors_total", "op", "count_jobs"); n < 1 {
		t.Errorf("count_jobs errors %v, want ≥ 1", n)
	}
	checkPromtool(t, promtool, s)
	skipPromtool(t, promtool)
}

func forEachServer(t *testing.T, f func(t *testing.T, redisURL string)) {
	t.Run("memory", func(t *testing.T) { f(t, "") })
	t.Run("redis", func(t *testing.T) { f(t, redistest.Start(t).URL()) })
}

// checkFamilies holds /metrics to its documented list: name and type.
func checkFamilies(t *testing.T, s samples) {
	t.Helper()
	want := map[string]string{
		"tabgrid_tabs_connected":                 "gauge",
		"tabgrid_tabs_capacity":                  "gauge",
		"tabgrid_tasks_in_flight":                "gauge",
		"tabgrid_jobs":                           "gauge",
		"tabgrid_tasks":                          "gauge",
		"tabgrid_tasks_dispatched_total":         "counter",
		"tabgrid_tasks_completed_total":          "counter",
		"tabgrid_tasks_requeued_total":           "counter",
		"tabgrid_results_dropped_total":          "counter",
		"tabgrid_dispatch_latency_seconds":       "histogram",
		"tabgrid_store_request_duration_seconds": "histogram",
		"tabgrid_store_errors_total":             "counter",
		"tabgrid_dashboard_clients":              "gauge",
		"tabgrid_build_info":                     "gauge",
		"go_goroutines":                          "gauge",
		"process_resident_memory_bytes":          "gauge",
	}
	for name, typ := range want {
		if got := s.types[name]; got != typ {
			t.Errorf("metric %s: type %q, want %q", name, got, typ)
		}
	}
	for name := range s.types {
		if strings.HasPrefix(name, "tabgrid_") && want[name] == "" {
			t.Errorf("metric %s is not in the documented list", name)
		}
	}
}

func lookPromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("TABGRID_REQUIRE_ALL") == "1" {
			t.Fatal("promtool not on PATH and TABGRID_REQUIRE_ALL=1 forbids skipping (apt-get install prometheus)")
		}
		t.Log("promtool not on PATH: the metrics are checked, their format is not")
	}
	return p
}

// skipPromtool marks a test that could not run promtool as skipped, at
// its end, after everything else was checked.
func skipPromtool(t *testing.T, promtool string) {
	t.Helper()
	if promtool == "" {
		t.Skip("promtool not on PATH: the metrics were checked, promtool check metrics was not")
	}
}

// checkPromtool pipes a scrape to promtool check metrics (lint included).
func checkPromtool(t *testing.T, promtool string, s samples) {
	t.Helper()
	if promtool == "" {
		return // lookPromtool said so; skipPromtool marks the test
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(s.raw)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func postJob(t *testing.T, srv *coordinator.Server, body string) string {
	t.Helper()
	status, job := do(t, srv, apiCall{method: "POST", path: "/api/v1/jobs", body: body, token: testToken})
	if status != http.StatusCreated {
		t.Fatalf("submit: %d %v", status, job)
	}
	return job["id"].(string)
}

func getJob(t *testing.T, srv *coordinator.Server, id, query string) string {
	t.Helper()
	status, job := do(t, srv, apiCall{method: "GET", path: "/api/v1/jobs/" + id + query})
	if status != http.StatusOK {
		t.Fatalf("get job: %d %v", status, job)
	}
	state, _ := job["state"].(string)
	return state
}

// openDashboard opens the event stream and reads its snapshot, so the
// stream is registered when it returns.
func openDashboard(t *testing.T, srv *coordinator.Server) io.Closer {
	t.Helper()
	resp, err := http.Get(srv.URL() + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read events: %v", err)
		}
		if strings.HasPrefix(line, "event: snapshot") {
			return resp.Body
		}
	}
}

// samples is one parsed scrape in the text exposition format.
type samples struct {
	raw    []byte
	types  map[string]string // family → counter, gauge, histogram, ...
	series []sample
}

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func scrape(t testing.TB, srv *coordinator.Server) samples {
	t.Helper()
	resp, err := http.Get(srv.URL() + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v: %s", resp.StatusCode, err, raw)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape content type %q, want the text format", ct)
	}
	s, err := parseExposition(raw)
	if err != nil {
		t.Fatalf("parse scrape: %v\n%s", err, raw)
	}
	return s
}

// scrapeUntil scrapes until cond holds, then returns that scrape.
func scrapeUntil(t testing.TB, srv *coordinator.Server, what string, cond func(samples) bool) samples {
	t.Helper()
	var s samples
	eventually(t, 30*time.Second, what, func() bool {
		s = scrape(t, srv)
		return cond(s)
	})
	return s
}

// get finds the series with exactly this name and at least these label
// pairs.
func (s samples) get(name string, labels ...string) (float64, bool) {
next:
	for _, x := range s.series {
		if x.name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if x.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return x.value, true
	}
	return 0, false
}

func (s samples) value(name string, labels ...string) float64 {
	v, _ := s.get(name, labels...)
	return v
}

func (s samples) want(t testing.TB, want float64, name string, labels ...string) {
	t.Helper()
	v, ok := s.get(name, labels...)
	if !ok {
		t.Errorf("%s%v: missing from the scrape", name, labels)
		return
	}
	if v != want {
		t.Errorf("%s%v = %v, want %v", name, labels, v, want)
	}
}

func parseExposition(raw []byte) (samples, error) {
	s := samples{raw: raw, types: map[string]string{}}
	for i, line := range strings.Split(string(raw), "\n") {
		if line == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			s.types[name] = typ
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		x, err := parseSample(line)
		if err != nil {
			return s, fmt.Errorf("line %d %q: %w", i+1, line, err)
		}
		s.series = append(s.series, x)
	}
	return s, nil
}

func parseSample(line string) (sample, error) {
	x := sample{labels: map[string]string{}}
	end := strings.IndexAny(line, "{ ")
	if end <= 0 {
		return x, fmt.Errorf("no name")
	}
	x.name, line = line[:end], line[end:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, ", ")
			if strings.HasPrefix(line, "}") {
				line = line[1:]
				break
			}
			key, rest, ok := strings.Cut(line, `="`)
			if !ok {
				return x, fmt.Errorf("bad label")
			}
			var val strings.Builder
			j := 0
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
					if rest[j] == 'n' {
						val.WriteByte('\n')
						continue
					}
				}
				val.WriteByte(rest[j])
			}
			if j == len(rest) {
				return x, fmt.Errorf("unterminated label value")
			}
			x.labels[key] = val.String()
			line = rest[j+1:]
		}
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return x, fmt.Errorf("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return x, err
	}
	x.value = v
	return x, nil
}

func TestParseExposition(t *testing.T) {
	s, err := parseExposition([]byte(`# HELP a_total A.
# TYPE a_total counter
a_total{reason="odd } \"value\"",op="x"} 3
b 1.5e+06
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.types["a_total"] != "counter" {
		t.Errorf("types %v", s.types)
	}
	if v := s.value("a_total", "reason", `odd } "value"`, "op", "x"); v != 3 {
		t.Errorf("a_total = %v, want 3", v)
	}
	if v := s.value("b"); v != 1.5e6 {
		t.Errorf("b = %v", v)
	}
	if _, ok := s.get("a"); ok {
		t.Error("a prefix of a name matched")
	}
}
