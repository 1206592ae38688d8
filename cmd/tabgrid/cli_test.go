package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/coordinator"
	"github.com/tabgrid/tabgrid/coordinator/client"
	"github.com/tabgrid/tabgrid/coordinator/simtab"
	"github.com/tabgrid/tabgrid/tasks"
)

const cliToken = "cli-test-token-1"

// cliGrid starts a real coordinator on loopback with n simulated tabs
// (Go reference implementations speaking the real protocol).
func cliGrid(t *testing.T, n int, opts simtab.Options) string {
	t.Helper()
	cfg := coordinator.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.APITokens = []string{cliToken}
	srv, err := coordinator.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("new coordinator: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start coordinator: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < n; i++ {
		tab, err := simtab.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL(), "http")+"/ws", opts)
		if err != nil {
			t.Fatalf("dial tab: %v", err)
		}
		t.Cleanup(func() { tab.Close() })
	}
	return srv.URL()
}

type cliRun struct {
	code           int
	stdout, stderr string
}

func runCmd(t *testing.T, ctx context.Context, args ...string) cliRun {
	t.Helper()
	var out, errb bytes.Buffer
	code := runCLI(ctx, args[0], args[1:], &out, &errb)
	return cliRun{code, out.String(), errb.String()}
}

func cliCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// goReference computes a job's result with the kind's Go splitter,
// reference implementation and reducer.
func goReference(t *testing.T, kind, input string, split int) any {
	t.Helper()
	res, _, err := tasks.Reference(context.Background(), kind, "ref", json.RawMessage(input), split)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	json.Unmarshal(res, &v)
	return v
}

// countPrimes is an independent check of the primes reference: a plain
// sieve of Eratosthenes.
func countPrimes(to int) int {
	composite := make([]bool, to)
	n := 0
	for i := 2; i < to; i++ {
		if composite[i] {
			continue
		}
		n++
		for j := i * i; j < to; j += i {
			composite[j] = true
		}
	}
	return n
}

func decodeJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, s)
	}
	return v
}

// TestCLISubmitWaitsForTheReferenceResult is the submitter's whole path:
// submit, wait with progress, print exactly what the Go reference
// computes.
func TestCLISubmitWaitsForTheReferenceResult(t *testing.T) {
	url := cliGrid(t, 3, simtab.Options{Capacity: 2})
	ctx := cliCtx(t)
	const input = `{"from":0,"to":2000000}`
	r := runCmd(t, ctx, "submit", "--server", url, "--token", cliToken, "--kind", "primes", "--input", input, "--split", "16", "--name", "two million")
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	got := decodeJSON(t, r.stdout)
	want := goReference(t, "primes", input, 16).(map[string]any)
	if got["count"] != want["count"] || len(got) != len(want) {
		t.Fatalf("printed %v, the Go reference says %v", got, want)
	}
	if got["count"] != float64(countPrimes(2_000_000)) {
		t.Fatalf("printed %v, a sieve counts %d", got["count"], countPrimes(2_000_000))
	}
	if !strings.Contains(r.stderr, "submitted: primes, 16 tasks") || !strings.Contains(r.stderr, "16/16 tasks done (100%)") {
		t.Errorf("stderr lacks the submission or the final progress line:\n%s", r.stderr)
	}

	t.Run("jobs lists it", func(t *testing.T) {
		r := runCmd(t, ctx, "jobs", "--server", url, "--state", "succeeded")
		if r.code != 0 || !strings.Contains(r.stdout, "two million") || !strings.Contains(r.stdout, "16/16") || !strings.HasPrefix(r.stdout, "ID") {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		r = runCmd(t, ctx, "jobs", "--server", url, "--json", "--limit", "1")
		if jobs, _ := decodeJSON(t, r.stdout)["jobs"].([]any); r.code != 0 || len(jobs) != 1 {
			t.Fatalf("jobs --json: exit %d, %s", r.code, r.stdout)
		}
	})
}

func TestCLIInputFileEnvAndPNG(t *testing.T) {
	url := cliGrid(t, 2, simtab.Options{Capacity: 2})
	ctx := cliCtx(t)
	t.Setenv("TABGRID_SERVER", url)
	t.Setenv("TABGRID_TOKEN", cliToken)
	dir := t.TempDir()
	in := filepath.Join(dir, "mandel.json")
	os.WriteFile(in, []byte(`{"width": 80, "height": 60, "x_min": -2.5, "x_max": 1, "y_min": -1.2, "y_max": 1.2, "max_iter": 60}`), 0o644)
	img := filepath.Join(dir, "out.png")

	r := runCmd(t, ctx, "submit", "--kind", "mandelbrot", "--input-file", in, "--out", img)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	res := decodeJSON(t, r.stdout)
	if res["width"] != float64(80) || !strings.HasSuffix(res["image"].(string), "/result.png") {
		t.Fatalf("result %v", res)
	}
	checkPNG(t, img, 80, 60)

	id := strings.TrimSuffix(strings.TrimPrefix(res["image"].(string), "/api/v1/jobs/"), "/result.png")
	img2 := filepath.Join(dir, "again.png")
	if r := runCmd(t, ctx, "result", id, "--out", img2); r.code != 0 {
		t.Fatalf("result --out: exit %d\n%s", r.code, r.stderr)
	}
	checkPNG(t, img2, 80, 60)
}

func checkPNG(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	im, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	if b := im.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("%s is %v, want %dx%d", path, b, w, h)
	}
}

// TestCLIFailedJob: a task that throws on every attempt fails the job;
// submit prints the error and exits 1.
func TestCLIFailedJob(t *testing.T) {
	url := cliGrid(t, 1, simtab.Options{Capacity: 2, FailIndex: []int{1}})
	r := runCmd(t, cliCtx(t), "submit", "--server", url, "--token", cliToken, "--kind", "sleep", "--input", `{"tasks":4,"ms":0}`, "--max-attempts", "2")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "failed") || !strings.Contains(r.stderr, "task 1") {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestCLICancelStatusResult: with no tab connected a job waits; cancel
// ends it, a waiting submit exits 1, and result refuses.
func TestCLICancelStatusResult(t *testing.T) {
	url := cliGrid(t, 0, simtab.Options{})
	ctx := cliCtx(t)
	common := []string{"--server", url, "--token", cliToken}

	var wg sync.WaitGroup
	var waiting cliRun
	wg.Add(1)
	go func() {
		defer wg.Done()
		var out, errb bytes.Buffer
		code := runCLI(ctx, "submit", append(common, "--kind", "sleep", "--input", `{"tasks":3,"ms":0}`, "--name", "to cancel"), &out, &errb)
		waiting = cliRun{code, out.String(), errb.String()}
	}()

	// Find the job the waiting submit made.
	cl := client.New(url, cliToken)
	var id string
	for deadline := time.Now().Add(30 * time.Second); id == ""; {
		jobs, err := cl.Jobs(ctx, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) == 1 {
			id = jobs[0].ID
		} else if time.Now().After(deadline) {
			t.Fatal("the submitted job did not appear")
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}

	r := runCmd(t, ctx, "status", id, "--server", url)
	if st := decodeJSON(t, r.stdout)["state"]; r.code != 0 || st != "queued" {
		t.Fatalf("status: exit %d, state %v", r.code, st)
	}
	r = runCmd(t, ctx, "result", id, "--server", url)
	if r.code != 1 || !strings.Contains(r.stderr, "is queued") {
		t.Fatalf("result of a queued job: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCmd(t, ctx, "cancel", id, "--server", url); r.code != 1 || !strings.Contains(r.stderr, "TABGRID_TOKEN") {
		t.Fatalf("cancel without a token: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCmd(t, ctx, append([]string{"cancel", id}, common...)...)
	if st := decodeJSON(t, r.stdout)["state"]; r.code != 0 || st != "cancelled" {
		t.Fatalf("cancel: exit %d, state %v, stderr %s", r.code, st, r.stderr)
	}

	wg.Wait()
	if waiting.code != 1 || waiting.stdout != "" || !strings.Contains(waiting.stderr, "cancelled") {
		t.Fatalf("the waiting submit: exit %d, stdout %q, stderr:\n%s", waiting.code, waiting.stdout, waiting.stderr)
	}
	r = runCmd(t, ctx, "cancel", id, "--server", url, "--token", cliToken)
	if r.code != 1 || !strings.Contains(r.stderr, "409") {
		t.Fatalf("second cancel: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCmd(t, ctx, "status", "nosuchjob", "--server", url)
	if r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Fatalf("status of an unknown job: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestCLIStopsWaitingWithContext: Ctrl-C while waiting leaves the job
// running and says how to follow it.
func TestCLIStopsWaitingWithContext(t *testing.T) {
	url := cliGrid(t, 0, simtab.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r := runCmd(t, ctx, "submit", "--server", url, "--token", cliToken, "--kind", "sleep", "--input", `{"tasks":1,"ms":0}`)
	if r.code != 1 || !strings.Contains(r.stderr, "stopped waiting") {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// TestCLIUsageAndAPIErrors: usage mistakes exit 2 before any request;
// errors from the API exit 1 with the API's message.
func TestCLIUsageAndAPIErrors(t *testing.T) {
	url := cliGrid(t, 0, simtab.Options{})
	ctx := cliCtx(t)
	dir := t.TempDir()
	both := filepath.Join(dir, "in.json")
	os.WriteFile(both, []byte(`{"tasks":1,"ms":0}`), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no kind", []string{"submit", "--input", "{}"}, 2, "--kind is required"},
		{"no input", []string{"submit", "--kind", "primes"}, 2, "--input or --input-file is required"},
		{"bad json", []string{"submit", "--kind", "primes", "--input", "{from:1}"}, 2, "not valid JSON"},
		{"both inputs", []string{"submit", "--kind", "sleep", "--input", "{}", "--input-file", both}, 2, "not both"},
		{"missing file", []string{"submit", "--kind", "sleep", "--input-file", filepath.Join(dir, "nope.json")}, 2, "no such file"},
		{"unknown flag", []string{"submit", "--kinds", "primes"}, 2, "flag provided but not defined"},
		{"out without wait", []string{"submit", "--kind", "mandelbrot", "--input", "{}", "--no-wait", "--out", "x.png"}, 2, "--out needs the result"},
		{"status without id", []string{"status"}, 2, "want 1 argument"},
		{"extra argument", []string{"jobs", "running"}, 2, "unexpected argument"},
		{"bad state", []string{"jobs", "--state", "sleeping"}, 2, "unknown state"},
		{"bad limit", []string{"jobs", "--limit", "0"}, 2, "--limit"},
		{"help", []string{"jobs", "-h"}, 0, "Usage: tabgrid jobs"},
		{"wrong token", []string{"submit", "--token", "wrong-token-99", "--kind", "sleep", "--input", `{"tasks":1,"ms":0}`}, 1, "401 unauthorized"},
		{"unknown kind", []string{"submit", "--token", cliToken, "--kind", "prime", "--input", `{"to":10}`}, 1, "422 unprocessable"},
		{"out of range", []string{"submit", "--token", cliToken, "--kind", "primes", "--input", `{"from":10,"to":5}`}, 1, "422"},
		{"task timeout too short", []string{"submit", "--token", cliToken, "--kind", "sleep", "--input", `{"tasks":1,"ms":0}`, "--task-timeout", "1ms"}, 1, "task_timeout"},
		{"server down", []string{"jobs", "--server", "http://127.0.0.1:1"}, 1, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{tc.args[0], "--server", url}, tc.args[1:]...)
			r := runCmd(t, ctx, args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d (want %d), stderr does not contain %q:\n%s", r.code, tc.code, tc.want, r.stderr)
			}
		})
	}
	t.Run("no-wait prints the queued job", func(t *testing.T) {
		r := runCmd(t, ctx, "submit", "--server", url, "--token", cliToken, "--kind", "sleep", "--input", `{"tasks":2,"ms":0}`, "--no-wait", "--idempotency-key", "k1")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		j := decodeJSON(t, r.stdout)
		if j["state"] != "queued" || j["id"] == "" {
			t.Fatalf("exit %d, %v", r.code, j)
		}
		again := runCmd(t, ctx, "submit", "--server", url, "--token", cliToken, "--kind", "sleep", "--input", `{"tasks":2,"ms":0}`, "--no-wait", "--idempotency-key", "k1")
		if decodeJSON(t, again.stdout)["id"] != j["id"] {
			t.Fatalf("same idempotency key, different jobs: %s vs %s", again.stdout, r.stdout)
		}
	})
}

// TestCLIProgressBarOnTerminal draws the bar into a buffer standing in
// for a terminal. Not parallel: it swaps isTerminal.
func TestCLIProgressBarOnTerminal(t *testing.T) {
	url := cliGrid(t, 2, simtab.Options{Capacity: 2, Delay: 20 * time.Millisecond})
	old := isTerminal
	isTerminal = func(io.Writer) bool { return true }
	t.Cleanup(func() { isTerminal = old })
	r := runCmd(t, cliCtx(t), "submit", "--server", url, "--token", cliToken, "--kind", "sleep", "--input", `{"tasks":40,"ms":10}`)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if decodeJSON(t, r.stdout)["tasks"] != float64(40) {
		t.Fatalf("result %s", r.stdout)
	}
	if !strings.Contains(r.stderr, "/40") || strings.Contains(r.stderr, "tasks done (") {
		t.Errorf("stderr is not a progress bar:\n%q", r.stderr)
	}
}

// TestServeRefusesBadEnvironment: a TABGRID_* value that does not parse
// stops serve with a message naming it, instead of quietly using the
// default.
func TestServeRefusesBadEnvironment(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"TABGRID_LEASE_TTL", "15", `TABGRID_LEASE_TTL="15": want a duration`},
		{"TABGRID_PREFETCH", "two", `TABGRID_PREFETCH="two": want an integer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.name, tc.value)
			var stdout, stderr strings.Builder
			code := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0"}, &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tc.want)
			}
		})
	}
}
