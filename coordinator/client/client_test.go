package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/coordinator"
	"github.com/tabgrid/tabgrid/coordinator/client"
	"github.com/tabgrid/tabgrid/coordinator/simtab"
	"github.com/tabgrid/tabgrid/tasks"
)

const token = "client-test-token"

// grid is a real coordinator on loopback with the memory store.
type grid struct {
	t   *testing.T
	srv *coordinator.Server
}

func startGrid(t *testing.T) *grid {
	t.Helper()
	cfg := coordinator.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.APITokens = []string{token}
	srv, err := coordinator.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("new coordinator: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start coordinator: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return &grid{t: t, srv: srv}
}

// tabs connects n simulated tabs that compute with the Go references.
func (g *grid) tabs(n, capacity int) []*simtab.Tab {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*simtab.Tab
	for i := 0; i < n; i++ {
		tab, err := simtab.Dial(ctx, "ws"+strings.TrimPrefix(g.srv.URL(), "http")+"/ws", simtab.Options{Capacity: capacity, Name: "client-test"})
		if err != nil {
			g.t.Fatalf("dial tab: %v", err)
		}
		g.t.Cleanup(func() { tab.Close() })
		out = append(out, tab)
	}
	return out
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// reference computes a job's result with the kind's Go splitter,
// reference implementation and reducer: what the grid must return.
func reference(t *testing.T, kind string, input string, split int) json.RawMessage {
	t.Helper()
	res, _, err := tasks.Reference(context.Background(), kind, "ref", json.RawMessage(input), split)
	if err != nil {
		t.Fatalf("reference %s: %v", kind, err)
	}
	return res
}

func sameJSON(t *testing.T, got, want json.RawMessage) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("result %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("result %s, want %s", gb, wb)
	}
}

// apiError asserts that err is a *client.Error with that status and code.
func apiError(t *testing.T, err error, status int, code string) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want *client.Error %d", err, err, status)
	}
	if e.Status != status || e.Code != code || e.Message == "" {
		t.Fatalf("error %+v, want status %d code %s with a message", e, status, code)
	}
	return e
}

func primesSpec(to int, split int) tasks.Spec {
	in, _ := json.Marshal(map[string]int{"from": 0, "to": to})
	return tasks.Spec{Kind: "primes", Input: in, Split: &tasks.SplitHint{Tasks: split}, Name: "client test"}
}

// TestClientAgainstServer exercises every method on a real coordinator
// with simulated tabs, including the API's error answers.
func TestClientAgainstServer(t *testing.T) {
	g := startGrid(t)
	ctx := testCtx(t)
	c := client.New(g.srv.URL(), token)
	anon := client.New(g.srv.URL()+"/api/v1/", "")

	t.Run("submit without a token is 401", func(t *testing.T) {
		_, err := anon.Submit(ctx, primesSpec(1000, 2), client.SubmitOptions{})
		apiError(t, err, http.StatusUnauthorized, "unauthorized")
		_, err = client.New(g.srv.URL(), "wrong-token-123").Submit(ctx, primesSpec(1000, 2), client.SubmitOptions{})
		apiError(t, err, http.StatusUnauthorized, "unauthorized")
	})
	t.Run("bad specs are 400 and 422", func(t *testing.T) {
		_, err := c.Submit(ctx, tasks.Spec{Input: json.RawMessage(`{}`)}, client.SubmitOptions{})
		apiError(t, err, http.StatusBadRequest, "invalid_input")
		if !errors.Is(err, tasks.ErrInvalidInput) {
			t.Errorf("errors.Is(%v, ErrInvalidInput) = false", err)
		}
		_, err = c.Submit(ctx, tasks.Spec{Kind: "no-such-kind", Input: json.RawMessage(`{}`)}, client.SubmitOptions{})
		apiError(t, err, http.StatusUnprocessableEntity, "unprocessable")
		_, err = c.Submit(ctx, tasks.Spec{Kind: "primes", Input: json.RawMessage(`{"from":10,"to":5}`)}, client.SubmitOptions{})
		apiError(t, err, http.StatusUnprocessableEntity, "unprocessable")
	})
	t.Run("unknown job is 404", func(t *testing.T) {
		_, err := c.Job(ctx, "nosuchjob", 0)
		apiError(t, err, http.StatusNotFound, "not_found")
		if !errors.Is(err, tasks.ErrNotFound) {
			t.Errorf("errors.Is(%v, ErrNotFound) = false", err)
		}
		_, err = c.Result(ctx, "nosuchjob")
		apiError(t, err, http.StatusNotFound, "not_found")
		_, err = c.Cancel(ctx, "nosuchjob")
		apiError(t, err, http.StatusNotFound, "not_found")
		_, err = c.Tasks(ctx, "nosuchjob", "")
		apiError(t, err, http.StatusNotFound, "not_found")
	})

	// No tab is connected yet, so this job stays queued.
	queued, err := c.Submit(ctx, primesSpec(10_000, 4), client.SubmitOptions{})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	if queued.ID == "" || queued.State != tasks.JobQueued || queued.Tasks.Total != 4 || queued.Tasks.Pending != 4 {
		t.Fatalf("submitted job %+v, want queued with 4 pending tasks", queued)
	}
	t.Run("result of an unfinished job is 409 naming its state", func(t *testing.T) {
		_, err := c.Result(ctx, queued.ID)
		e := apiError(t, err, http.StatusConflict, "conflict")
		if e.State != tasks.JobQueued {
			t.Errorf("409 names state %q, want queued", e.State)
		}
		if !errors.Is(err, tasks.ErrConflict) {
			t.Errorf("errors.Is(%v, ErrConflict) = false", err)
		}
	})
	t.Run("wait on an unfinished job returns when the wait runs out", func(t *testing.T) {
		j, err := c.Job(ctx, queued.ID, 200*time.Millisecond)
		if err != nil || j.State != tasks.JobQueued {
			t.Fatalf("job %+v, %v; want queued", j, err)
		}
	})
	t.Run("tasks of a queued job", func(t *testing.T) {
		ts, err := c.Tasks(ctx, queued.ID, tasks.TaskPending)
		if err != nil || len(ts) != 4 {
			t.Fatalf("pending tasks %+v, %v; want 4", ts, err)
		}
		for i, task := range ts {
			if task.Index != i || task.State != tasks.TaskPending || task.JobID != queued.ID {
				t.Errorf("task %d: %+v", i, task)
			}
		}
	})
	t.Run("cancel without a token is 401, with one cancels, twice is 409", func(t *testing.T) {
		_, err := anon.Cancel(ctx, queued.ID)
		apiError(t, err, http.StatusUnauthorized, "unauthorized")
		j, err := c.Cancel(ctx, queued.ID)
		if err != nil || j.State != tasks.JobCancelled {
			t.Fatalf("cancel: %+v, %v", j, err)
		}
		_, err = c.Cancel(ctx, queued.ID)
		apiError(t, err, http.StatusConflict, "conflict")
		_, err = c.Result(ctx, queued.ID)
		if e := apiError(t, err, http.StatusConflict, "conflict"); e.State != tasks.JobCancelled {
			t.Errorf("409 names state %q, want cancelled", e.State)
		}
	})

	tabs := g.tabs(3, 2)
	t.Run("workers and stats see the tabs", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			ws, err := c.Workers(ctx)
			if err != nil {
				t.Fatalf("workers: %v", err)
			}
			st, err := c.Stats(ctx)
			if err != nil {
				t.Fatalf("stats: %v", err)
			}
			if len(ws) == len(tabs) && st.Tabs == len(tabs) && st.Capacity == 2*len(tabs) {
				for _, w := range ws {
					if w.ID == "" || w.Capacity != 2 || w.Name != "client-test" || w.Coordinator == "" || w.ConnectedAt.IsZero() {
						t.Errorf("worker %+v", w)
					}
				}
				if st.Jobs[tasks.JobCancelled] != 1 {
					t.Errorf("stats jobs %v, want one cancelled", st.Jobs)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("workers %+v, stats %+v; want %d tabs of capacity 2", ws, st, len(tabs))
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	spec := primesSpec(300_000, 12)
	want := reference(t, "primes", string(spec.Input), 12)
	var done tasks.Job
	t.Run("submit and wait returns the reference result", func(t *testing.T) {
		var seen []tasks.Job
		job, err := c.Submit(ctx, spec, client.SubmitOptions{IdempotencyKey: "client-test-primes"})
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		done, err = c.Wait(ctx, job.ID, time.Second, func(j tasks.Job) { seen = append(seen, j) })
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
		if done.State != tasks.JobSucceeded || done.Tasks.Succeeded != 12 || done.Progress != 1 || done.FinishedAt == nil {
			t.Fatalf("final job %+v", done)
		}
		if len(seen) == 0 || seen[len(seen)-1].State != tasks.JobSucceeded {
			t.Errorf("progress callback saw %d jobs, the last not final", len(seen))
		}
		sameJSON(t, done.Result, want)
		res, err := c.Result(ctx, job.ID)
		if err != nil {
			t.Fatalf("result: %v", err)
		}
		sameJSON(t, res, want)
	})
	t.Run("idempotency key returns the first job", func(t *testing.T) {
		again, err := c.Submit(ctx, spec, client.SubmitOptions{IdempotencyKey: "client-test-primes"})
		if err != nil || again.ID != done.ID {
			t.Fatalf("resubmit with the same key: %+v, %v; want job %s", again, err, done.ID)
		}
	})
	t.Run("submit with wait carries the result", func(t *testing.T) {
		spec := primesSpec(50_000, 5)
		job, err := c.Submit(ctx, spec, client.SubmitOptions{Wait: time.Minute})
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		if job.State != tasks.JobSucceeded {
			t.Fatalf("job %+v, want succeeded within the wait", job)
		}
		sameJSON(t, job.Result, reference(t, "primes", string(spec.Input), 5))
	})
	t.Run("jobs and tasks list the finished job", func(t *testing.T) {
		jobs, err := c.Jobs(ctx, tasks.JobSucceeded, 10)
		if err != nil {
			t.Fatalf("jobs: %v", err)
		}
		if len(jobs) != 2 || jobs[1].ID != done.ID {
			t.Fatalf("succeeded jobs %+v, want 2, newest first, the older %s", jobs, done.ID)
		}
		all, err := c.Jobs(ctx, "", 1)
		if err != nil || len(all) != 1 {
			t.Fatalf("jobs with limit 1: %d, %v", len(all), err)
		}
		_, err = c.Jobs(ctx, "sleeping", 0)
		apiError(t, err, http.StatusBadRequest, "invalid_input")
		ts, err := c.Tasks(ctx, done.ID, "")
		if err != nil || len(ts) != 12 {
			t.Fatalf("tasks: %d, %v", len(ts), err)
		}
		for _, task := range ts {
			if task.State != tasks.TaskSucceeded || task.Attempts < 1 || task.Worker == "" {
				t.Errorf("task %+v", task)
			}
		}
		failed, err := c.Tasks(ctx, done.ID, tasks.TaskFailed)
		if err != nil || len(failed) != 0 {
			t.Fatalf("failed tasks: %+v, %v", failed, err)
		}
	})
	t.Run("result png of a mandelbrot job", func(t *testing.T) {
		spec := tasks.Spec{Kind: "mandelbrot", Input: json.RawMessage(`{"width":64,"height":48,"x_min":-2.5,"x_max":1,"y_min":-1.2,"y_max":1.2,"max_iter":50}`)}
		job, err := c.Submit(ctx, spec, client.SubmitOptions{Wait: time.Minute})
		if err != nil || job.State != tasks.JobSucceeded {
			t.Fatalf("mandelbrot job: %+v, %v", job, err)
		}
		b, err := c.ResultPNG(ctx, job.ID)
		if err != nil {
			t.Fatalf("result png: %v", err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("not a PNG: %v", err)
		}
		if r := img.Bounds(); r.Dx() != 64 || r.Dy() != 48 {
			t.Errorf("image is %v, want 64x48", r)
		}
		_, err = c.ResultPNG(ctx, done.ID)
		apiError(t, err, http.StatusNotFound, "not_found")
	})
}

// TestErrorFromNonAPIAnswer: a proxy in front of the coordinator may
// answer with its own HTML page; the client still returns an *Error.
// (A fake server is right here: this is about parsing, not the API.)
func TestErrorFromNonAPIAnswer(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html><body>502 Bad Gateway</body></html>")
	}))
	t.Cleanup(ts.Close)
	_, err := client.New(ts.URL, token).Stats(context.Background())
	e := apiError(t, err, http.StatusBadGateway, "http_502")
	if !strings.Contains(e.Message, "502 Bad Gateway") {
		t.Errorf("message %q does not carry the body", e.Message)
	}
	if errors.Is(err, tasks.ErrUnavailable) {
		t.Errorf("a 502 must not match ErrUnavailable (503)")
	}
}

// TestWaitStopsWithContext: Wait gives up when its context ends, even
// against a server that answers at once.
func TestWaitStopsWithContext(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"j","state":"running","tasks":{"total":1,"pending":0,"running":1,"succeeded":0,"failed":0}}`)
	}))
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	calls := 0
	_, err := client.New(ts.URL, "").Wait(ctx, "j", time.Second, func(tasks.Job) { calls++ })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait: %v, want the context's deadline", err)
	}
	// minPoll (200ms) spaces the polls: a spinning loop would make
	// thousands of calls in 500ms.
	if calls == 0 || calls > 20 {
		t.Errorf("%d polls in 2s", calls)
	}
}
