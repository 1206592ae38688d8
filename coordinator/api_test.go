package coordinator_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/coordinator"
	"github.com/tabgrid/tabgrid/coordinator/simtab"
	"github.com/tabgrid/tabgrid/store/redistest"
)

const testToken = "test-token-123"

// startServer runs a real coordinator on 127.0.0.1:0 with the memory
// store (or Redis when redisURL is set) and closes it when the test ends.
func startServer(t testing.TB, redisURL string, tweak ...func(*coordinator.Config)) *coordinator.Server {
	t.Helper()
	cfg := coordinator.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.APITokens = []string{testToken}
	cfg.RedisURL = redisURL
	for _, f := range tweak {
		f(&cfg)
	}
	srv, err := coordinator.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

type apiCall struct {
	method, path, body string
	token              string
	header             map[string]string
}

// do makes one API call and decodes the JSON answer into a generic map.
func do(t testing.TB, srv *coordinator.Server, c apiCall) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(c.method, srv.URL()+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 && json.Unmarshal(b, &out) != nil {
		t.Fatalf("%s %s: answer is not JSON: %q", c.method, c.path, b)
	}
	return resp.StatusCode, out
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestAPIRejectsBadInputWithJSONErrors(t *testing.T) {
	srv := startServer(t, "", func(c *coordinator.Config) {
		c.MaxBodyBytes = 64 << 10
		c.Limits.MaxInputBytes = 32 << 10
	})
	big := `{"kind":"js","input":{"code":"(x)=>x","items":[` + strings.Repeat("1,", 40<<10) + `1]}}`
	tests := []struct {
		name   string
		call   apiCall
		status int
		code   string
	}{
		{"no token", apiCall{method: "POST", path: "/api/v1/jobs", body: `{"kind":"primes","input":{"from":0,"to":10}}`}, 401, "unauthorized"},
		{"wrong token", apiCall{method: "POST", path: "/api/v1/jobs", body: `{}`, token: "nope-nope-nope"}, 401, "unauthorized"},
		{"not json", apiCall{method: "POST", path: "/api/v1/jobs", body: `{`, token: testToken}, 400, "invalid_input"},
		{"unknown field", apiCall{method: "POST", path: "/api/v1/jobs", body: `{"kind":"primes","input":{"from":0,"to":10},"prio":1}`, token: testToken}, 400, "invalid_input"},
		{"no kind", apiCall{method: "POST", path: "/api/v1/jobs", body: `{"input":{}}`, token: testToken}, 400, "invalid_input"},
		{"unknown kind", apiCall{method: "POST", path: "/api/v1/jobs", body: `{"kind":"bitcoin","input":{}}`, token: testToken}, 422, "unprocessable"},
		{"bad primes range", apiCall{method: "POST", path: "/api/v1/jobs", body: `{"kind":"primes","input":{"from":10,"to":5}}`, token: testToken}, 422, "unprocessable"},
		{"body too large", apiCall{method: "POST", path: "/api/v1/jobs", body: big, token: testToken}, 413, "too_large"},
		{"bad wait", apiCall{method: "POST", path: "/api/v1/jobs?wait=soon", body: `{"kind":"sleep","input":{"tasks":1,"ms":0}}`, token: testToken}, 400, "invalid_input"},
		{"unknown job", apiCall{method: "GET", path: "/api/v1/jobs/nope"}, 404, "not_found"},
		{"unknown route", apiCall{method: "GET", path: "/api/v1/nothing"}, 404, "not_found"},
		{"bad state filter", apiCall{method: "GET", path: "/api/v1/jobs?state=sleeping"}, 400, "invalid_input"},
		{"cancel without token", apiCall{method: "DELETE", path: "/api/v1/jobs/x"}, 401, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := do(t, srv, tt.call)
			if status != tt.status || errCode(body) != tt.code {
				t.Fatalf("got %d %v, want %d with code %q", status, body, tt.status, tt.code)
			}
			if msg, _ := body["error"].(map[string]any)["message"].(string); msg == "" {
				t.Fatalf("error without a message: %v", body)
			}
		})
	}
	// Nothing was stored by the refused calls.
	if _, body := do(t, srv, apiCall{method: "GET", path: "/api/v1/jobs"}); len(body["jobs"].([]any)) != 0 {
		t.Fatalf("refused submissions stored jobs: %v", body)
	}
}

func TestAPIJobLifecycleWithoutTabs(t *testing.T) {
	srv := startServer(t, "")
	status, job := do(t, srv, apiCall{method: "POST", path: "/api/v1/jobs", token: testToken,
		body:   `{"kind":"primes","input":{"from":0,"to":1000},"split":{"tasks":4},"name":"small","priority":3}`,
		header: map[string]string{"Idempotency-Key": "k1"}})
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, job)
	}
	id := job["id"].(string)
	if job["state"] != "queued" || job["name"] != "small" || job["priority"].(float64) != 3 {
		t.Fatalf("created job: %v", job)
	}
	if tasks := job["tasks"].(map[string]any); tasks["total"].(float64) != 4 || tasks["pending"].(float64) != 4 {
		t.Fatalf("task counts: %v", tasks)
	}

	status, again := do(t, srv, apiCall{method: "POST", path: "/api/v1/jobs", token: testToken,
		body:   `{"kind":"primes","input":{"from":0,"to":1000},"split":{"tasks":4}}`,
		header: map[string]string{"Idempotency-Key": "k1"}})
	if status != http.StatusOK || again["id"] != id {
		t.Fatalf("idempotent repeat: %d %v, want 200 with id %s", status, again, id)
	}

	if status, body := do(t, srv, apiCall{method: "GET", path: "/api/v1/jobs/" + id + "/result"}); status != 409 || body["error"].(map[string]any)["state"] != "queued" {
		t.Fatalf("result of a queued job: %d %v", status, body)
	}
	if status, body := do(t, srv, apiCall{method: "GET", path: "/api/v1/jobs/" + id + "/tasks?state=pending"}); status != 200 || len(body["tasks"].([]any)) != 4 {
		t.Fatalf("tasks: %d %v", status, body)
	}
	if _, body := do(t, srv, apiCall{method: "GET", path: "/api/v1/jobs?state=queued&limit=10"}); len(body["jobs"].([]any)) != 1 {
		t.Fatalf("list queued: %v", body)
	}

	start := time.Now()
	status, waited := do(t, srv, apiCall{method: "GET", path: "/api/v1/jobs/" + id + "?wait=300ms"})
	if status != 200 || waited["state"] != "queued" || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("wait on a job nobody runs: %d %v after %s", status, waited, time.Since(start))
	}

	status, cancelled := do(t, srv, apiCall{method: "DELETE", path: "/api/v1/jobs/" + id, token: testToken})
	if status != 200 || cancelled["state"] != "cancelled" {
		t.Fatalf("cancel: %d %v", status, cancelled)
	}
	if status, body := do(t, srv, apiCall{method: "DELETE", path: "/api/v1/jobs/" + id, token: testToken}); status != 409 || errCode(body) != "conflict" {
		t.Fatalf("second cancel: %d %v", status, body)
	}
	if _, body := do(t, srv, apiCall{method: "GET", path: "/api/v1/stats"}); body["jobs"].(map[string]any)["cancelled"].(float64) != 1 {
		t.Fatalf("stats: %v", body)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	srv := startServer(t, "")
	for _, p := range []string{"/healthz", "/readyz"} {
		if status, _ := do(t, srv, apiCall{method: "GET", path: p}); status != 200 {
			t.Fatalf("%s: %d", p, status)
		}
	}
	srv.Close()
	if _, err := http.Get(srv.URL() + "/readyz"); err == nil {
		t.Fatal("server still answers after Close")
	}
}

func TestEventStreamStartsWithSnapshotThenJobs(t *testing.T) {
	srv := startServer(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL()+"/api/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				events <- ev
			}
		}
		close(events)
	}()
	next := func() string {
		select {
		case ev := <-events:
			return ev
		case <-ctx.Done():
			t.Fatal("no event before the deadline")
		}
		return ""
	}
	if ev := next(); ev != "snapshot" {
		t.Fatalf("first event %q, want snapshot", ev)
	}
	do(t, srv, apiCall{method: "POST", path: "/api/v1/jobs", token: testToken, body: `{"kind":"sleep","input":{"tasks":3,"ms":0}}`})
	for {
		if ev := next(); ev == "job" {
			return
		}
	}
}

// TestRedisOutageAnswers503 kills Redis under a running coordinator:
// readiness and submissions answer 503 with a JSON error (nothing is
// half-written), and both recover by themselves once Redis is back.
func TestRedisOutageAnswers503(t *testing.T) {
	rds := redistest.Start(t, redistest.WithAOF(), redistest.WithArgs("--appendfsync", "always"))
	srv := startServer(t, rds.URL())
	submit := apiCall{method: "POST", path: "/api/v1/jobs", token: testToken,
		body: `{"kind": "sleep", "input": {"tasks": 5, "ms": 0}}`}
	if status, body := do(t, srv, submit); status != http.StatusCreated {
		t.Fatalf("submit before the outage: %d %v", status, body)
	}

	rds.Kill()
	if status, body := do(t, srv, apiCall{method: "GET", path: "/readyz"}); status != http.StatusServiceUnavailable || errCode(body) != "unavailable" {
		t.Fatalf("readyz with Redis down: %d %v, want 503 unavailable", status, body)
	}
	if status, body := do(t, srv, submit); status != http.StatusServiceUnavailable || errCode(body) != "unavailable" {
		t.Fatalf("submit with Redis down: %d %v, want 503 unavailable", status, body)
	}
	if status, _ := do(t, srv, apiCall{method: "GET", path: "/healthz"}); status != http.StatusOK {
		t.Fatalf("healthz with Redis down: %d, want 200 (the process is alive)", status)
	}

	rds.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _ := do(t, srv, apiCall{method: "GET", path: "/readyz"})
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz still %d 30 s after Redis came back", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status, body := do(t, srv, submit); status != http.StatusCreated {
		t.Fatalf("submit after the outage: %d %v", status, body)
	}
	// The outage wrote nothing: exactly the two accepted jobs exist.
	_, list := do(t, srv, apiCall{method: "GET", path: "/api/v1/jobs"})
	if jobs, _ := list["jobs"].([]any); len(jobs) != 2 {
		t.Fatalf("%d jobs after the outage, want the 2 accepted ones", len(jobs))
	}
}

// TestPrefetchZero: --prefetch 0 means none, so a tab never holds more
// tasks than its capacity (HubConfig reads 0 as "the default").
func TestPrefetchZero(t *testing.T) {
	srv := startServer(t, "", func(c *coordinator.Config) { c.Prefetch = 0 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tab, err := simtab.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL(), "http")+"/ws", simtab.Options{Capacity: 2, Delay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	status, body := do(t, srv, apiCall{method: "POST", path: "/api/v1/jobs?wait=50s", token: testToken,
		body: `{"kind": "sleep", "input": {"tasks": 40, "ms": 0}}`})
	if status != http.StatusCreated || body["state"] != "succeeded" {
		t.Fatalf("job: %d %v", status, body)
	}
	if got := tab.Stats().MaxInFlight; got > 2 {
		t.Fatalf("a tab of capacity 2 held %d tasks with prefetch 0", got)
	}
}
