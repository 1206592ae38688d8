package coordinator_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tabgrid/tabgrid/coordinator"
	"github.com/tabgrid/tabgrid/coordinator/simtab"
	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/store/memstore"
	"github.com/tabgrid/tabgrid/store/redisstore"
	"github.com/tabgrid/tabgrid/store/redistest"
	"github.com/tabgrid/tabgrid/tasks"
)

// Every test runs against both stores: the memory store, and a Redis
// store on a redis-server of its own (skipped when redis-server is
// missing, unless TABGRID_REQUIRE_ALL=1).

type backend struct {
	st    store.Store
	redis *redistest.Server // nil for the memory store
	url   string
}

func forEachStore(t *testing.T, f func(t *testing.T, b *backend)) {
	t.Run("memory", func(t *testing.T) {
		st, err := memstore.New()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		f(t, &backend{st: st})
	})
	t.Run("redis", func(t *testing.T) {
		f(t, newRedisBackend(t))
	})
}

func newRedisBackend(t testing.TB, opts ...redistest.Option) *backend {
	t.Helper()
	srv := redistest.Start(t, opts...)
	return &backend{st: openRedis(t, srv.URL()), redis: srv, url: srv.URL()}
}

func openRedis(t testing.TB, url string) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := redisstore.New(ctx, url)
	if err != nil {
		t.Fatalf("redis store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func testLogger() *slog.Logger {
	if os.Getenv("TABGRID_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testHub is a hub running on an httptest server on 127.0.0.1:0.
type testHub struct {
	hub    *coordinator.Hub
	m      *coordinator.Metrics
	url    string // ws://127.0.0.1:port/
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func startHub(t testing.TB, st store.Store, cfg coordinator.HubConfig) *testHub {
	t.Helper()
	cfg.Metrics = coordinator.NewMetrics(prometheus.NewRegistry())
	hub, err := coordinator.NewHub(cfg, st, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	th := &testHub{hub: hub, m: cfg.Metrics, cancel: cancel, done: make(chan error, 1)}
	go func() { th.done <- hub.Run(ctx) }()
	srv := httptest.NewServer(hub)
	th.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	t.Cleanup(func() {
		if err := th.stop(); err != nil {
			t.Errorf("hub run: %v", err)
		}
		srv.Close()
	})
	return th
}

// completed is how many results the hub's store accepted.
func (th *testHub) completed() int64 { return th.hub.Stats().Completed }

// stop ends Run (a graceful shutdown) and returns its error.
func (th *testHub) stop() error {
	th.once.Do(func() {
		th.cancel()
		select {
		case th.err = <-th.done:
		case <-time.After(30 * time.Second):
			th.err = errors.New("hub did not stop within 30s")
		}
	})
	return th.err
}

func dialTab(t testing.TB, url string, opts simtab.Options) *simtab.Tab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tab, err := simtab.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial tab: %v", err)
	}
	t.Cleanup(func() { tab.Close() })
	return tab
}

// submit validates, splits and stores a job the way the API does, and
// announces it.
func submit(t testing.TB, st store.Store, spec tasks.Spec) tasks.Job {
	t.Helper()
	lim := tasks.DefaultLimits()
	if err := spec.Validate(lim); err != nil {
		t.Fatal(err)
	}
	inputs, err := spec.SplitTasks(lim)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	rand.Read(b)
	job := tasks.Job{
		ID: "job" + hex.EncodeToString(b), Name: spec.Name, Kind: spec.Kind, Priority: spec.Priority,
		MaxAttempts: spec.MaxAttempts, TaskTimeout: spec.TaskTimeout, CreatedAt: time.Now(), Input: spec.Input,
	}
	ctx := context.Background()
	j, _, err := st.CreateJob(ctx, store.NewJob{Job: job, Inputs: inputs})
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	st.Publish(ctx, store.Event{Type: "work", Data: json.RawMessage(`{"job":"` + j.ID + `"}`)})
	return j
}

// reference computes a job's result with the Go reference implementation.
func reference(t testing.TB, spec tasks.Spec) json.RawMessage {
	t.Helper()
	if err := spec.Validate(tasks.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	split := 0
	if spec.Split != nil {
		split = spec.Split.Tasks
	}
	res, _, err := tasks.Reference(context.Background(), spec.Kind, "ref", spec.Input, split)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// waitJob polls until the job is final or the deadline passes.
func waitJob(t testing.TB, st store.Store, id string, within time.Duration) tasks.Job {
	t.Helper()
	deadline := time.Now().Add(within)
	var j tasks.Job
	var err error
	for time.Now().Before(deadline) {
		j, err = st.GetJob(context.Background(), id)
		if err == nil && j.State.Final() {
			return j
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %s not final after %s: %+v (err %v)", id, within, j.Tasks, err)
	return j
}

func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkSucceeded asserts the exact reference result and that every task
// was accepted once.
func checkSucceeded(t testing.TB, st store.Store, job tasks.Job, spec tasks.Spec, accepted func() int64) {
	t.Helper()
	j := waitJob(t, st, job.ID, 60*time.Second)
	if j.State != tasks.JobSucceeded {
		t.Fatalf("job %s: %s (%s), want succeeded", j.ID, j.State, j.Error)
	}
	got, err := st.JobResult(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := reference(t, spec)
	if !jsonEqual(got, want) {
		t.Fatalf("result %s, want %s", got, want)
	}
	if n := accepted(); n != int64(j.Tasks.Total) {
		t.Fatalf("accepted %d results for %d tasks", n, j.Tasks.Total)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func primesSpec(to, n int) tasks.Spec {
	return tasks.Spec{Kind: "primes", Input: json.RawMessage(fmt.Sprintf(`{"from":0,"to":%d}`, to)), Split: &tasks.SplitHint{Tasks: n}}
}

func sleepSpec(n, ms int) tasks.Spec {
	return tasks.Spec{Kind: "sleep", Input: json.RawMessage(fmt.Sprintf(`{"tasks":%d,"ms":%d}`, n, ms))}
}

func TestHubRunsJob(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		th := startHub(t, b.st, coordinator.HubConfig{})
		dialTab(t, th.url, simtab.Options{Capacity: 2, Name: "a"})
		dialTab(t, th.url, simtab.Options{Capacity: 3, Name: "b"})
		spec := primesSpec(300_000, 40)
		job := submit(t, b.st, spec)
		j := waitJob(t, b.st, job.ID, 60*time.Second)
		checkSucceeded(t, b.st, j, spec, th.completed)
		if s := th.hub.Stats(); s.Tabs != 2 || s.Capacity != 5 {
			t.Errorf("stats %+v, want 2 tabs of capacity 5", s)
		}
		eventually(t, 5*time.Second, "workers listed with their counts", func() bool {
			ws, err := b.st.ListWorkers(context.Background())
			return err == nil && len(ws) == 2
		})
	})
}

func TestTabClosesMidJob(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		th := startHub(t, b.st, coordinator.HubConfig{})
		slow := dialTab(t, th.url, simtab.Options{Capacity: 4, Delay: time.Hour})
		spec := primesSpec(100_000, 30)
		job := submit(t, b.st, spec)
		eventually(t, 10*time.Second, "the slow tab holds tasks", func() bool { return slow.Stats().Received >= 6 })
		slow.Close()
		eventually(t, 2*time.Second, "its tasks released", func() bool {
			running, _ := b.st.ListTasks(context.Background(), job.ID, tasks.TaskRunning)
			return len(running) == 0
		})
		dialTab(t, th.url, simtab.Options{Capacity: 4})
		checkSucceeded(t, b.st, job, spec, th.completed)
		if n := th.m.Requeued("closed"); n < 6 {
			t.Errorf("requeued closed = %v, want ≥ 6", n)
		}
	})
}

func TestSilentTabHeartbeatTimeout(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		th := startHub(t, b.st, coordinator.HubConfig{HeartbeatTimeout: 400 * time.Millisecond})
		silent := dialTab(t, th.url, simtab.Options{Capacity: 2, Silent: true})
		spec := primesSpec(50_000, 10)
		job := submit(t, b.st, spec)
		eventually(t, 10*time.Second, "the silent tab holds tasks", func() bool { return silent.Stats().Received > 0 })
		select {
		case <-silent.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("silent tab not closed")
		}
		if code, reason := silent.CloseStatus(); code != 4002 {
			t.Fatalf("close %d %q, want 4002", code, reason)
		}
		dialTab(t, th.url, simtab.Options{Capacity: 2})
		checkSucceeded(t, b.st, job, spec, th.completed)
		if n := th.m.Requeued("heartbeat"); n < 1 {
			t.Errorf("requeued heartbeat = %v, want ≥ 1", n)
		}
	})
}

func TestTaskTimeout(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		th := startHub(t, b.st, coordinator.HubConfig{})
		slow := dialTab(t, th.url, simtab.Options{Capacity: 1, Delay: time.Hour})
		spec := primesSpec(20_000, 6)
		spec.TaskTimeout = tasks.Duration(300 * time.Millisecond)
		spec.MaxAttempts = 10
		job := submit(t, b.st, spec)
		eventually(t, 10*time.Second, "the slow tab's tasks cancelled for timeout", func() bool { return slow.Stats().Cancelled >= 3 })
		slow.SetCapacity(0) // let the fast tab finish
		dialTab(t, th.url, simtab.Options{Capacity: 2})
		checkSucceeded(t, b.st, job, spec, th.completed)
		if n := th.m.Requeued("timeout"); n < 3 {
			t.Errorf("requeued timeout = %v, want ≥ 3", n)
		}
		ts, _ := b.st.ListTasks(context.Background(), job.ID, "")
		var failures int
		for _, tk := range ts {
			failures += tk.Failures
		}
		if failures < 3 {
			t.Errorf("%d failures counted, want ≥ 3 (a timeout counts an attempt)", failures)
		}
	})
}

func TestTaskErrorRetried(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		th := startHub(t, b.st, coordinator.HubConfig{})
		dialTab(t, th.url, simtab.Options{Capacity: 2, FailIndex: []int{3}, FailTokens: 1})
		spec := primesSpec(50_000, 8)
		job := submit(t, b.st, spec)
		checkSucceeded(t, b.st, job, spec, th.completed)
		if n := th.m.Requeued("error"); n != 1 {
			t.Errorf("requeued error = %v, want 1", n)
		}
	})
}

func TestTaskErrorEveryAttempt(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		th := startHub(t, b.st, coordinator.HubConfig{})
		dialTab(t, th.url, simtab.Options{Capacity: 2, FailIndex: []int{2}})
		spec := primesSpec(50_000, 8)
		spec.MaxAttempts = 2
		job := submit(t, b.st, spec)
		j := waitJob(t, b.st, job.ID, 30*time.Second)
		if j.State != tasks.JobFailed || !strings.Contains(j.Error, "task 2") {
			t.Fatalf("job %s %q, want failed naming task 2", j.State, j.Error)
		}
		_ = th
	})
}

func TestStaleAndForgedResultsDropped(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		th := startHub(t, b.st, coordinator.HubConfig{})
		tab := dialTab(t, th.url, simtab.Options{Capacity: 2, Forge: true})
		spec := primesSpec(50_000, 10)
		job := submit(t, b.st, spec)
		checkSucceeded(t, b.st, job, spec, th.completed)
		eventually(t, 5*time.Second, "drops counted", func() bool {
			return th.m.Dropped("forged") >= 10 && th.m.Dropped("stale") >= 10
		})
		if got := tab.Stats().Completed; got != 10 {
			t.Errorf("tab completed %d, want 10", got)
		}
	})
}

// rawTab is a hand-driven client for protocol violations.
type rawTab struct {
	t  testing.TB
	ws *websocket.Conn
}

func dialRaw(t testing.TB, url string) *rawTab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"tabgrid.v1"}})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(16 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return &rawTab{t: t, ws: ws}
}

func (r *rawTab) send(s string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		r.t.Fatalf("send: %v", err)
	}
}

// read returns the next message's type, or "" and the close status.
func (r *rawTab) read() (string, []byte, websocket.StatusCode) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := r.ws.Read(ctx)
	if err != nil {
		return "", nil, websocket.CloseStatus(err)
	}
	var m struct {
		Type string `json:"type"`
	}
	json.Unmarshal(data, &m)
	return m.Type, data, -1
}

// closeCode reads until the socket closes and returns the code.
func (r *rawTab) closeCode() websocket.StatusCode {
	r.t.Helper()
	for {
		typ, _, code := r.read()
		if typ == "" {
			return code
		}
	}
}

func TestProtocolViolations(t *testing.T) {
	cases := []struct {
		name  string
		hello bool // say hello (and get tasks) first
		send  string
		want  websocket.StatusCode
	}{
		{"not json", true, `{"type": "results", "results": [`, 4000},
		{"bad field", true, `{"type": "capacity", "capacity": "many"}`, 4000},
		{"capacity out of range", true, `{"type": "capacity", "capacity": 100000}`, 4000},
		{"result without token", true, `{"type": "results", "results": [{"job": "x", "index": 0, "output": 1}]}`, 4000},
		{"unknown type", true, `{"type": "gossip"}`, 4001},
		{"second hello", true, `{"type": "hello", "version": 1, "capacity": 1}`, 4001},
		{"results before hello", false, `{"type": "results", "results": []}`, 4001},
		{"version 2", false, `{"type": "hello", "version": 2, "capacity": 1}`, 1008},
		{"oversized", true, `{"type": "heartbeat", "pad": "` + strings.Repeat("x", 4096) + `"}`, 1009},
	}
	forEachStore(t, func(t *testing.T, b *backend) {
		th := startHub(t, b.st, coordinator.HubConfig{MaxMessageBytes: 2048, HelloTimeout: 300 * time.Millisecond})
		spec := primesSpec(200_000, 100)
		job := submit(t, b.st, spec)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := dialRaw(t, th.url)
				if tc.hello {
					r.send(`{"type": "hello", "version": 1, "capacity": 2, "client": "raw"}`)
					if typ, data, _ := r.read(); typ != "welcome" {
						t.Fatalf("got %s, want welcome", data)
					}
					if typ, data, _ := r.read(); typ != "tasks" {
						t.Fatalf("got %s, want tasks", data)
					}
				}
				before := th.m.Requeued("closed")
				r.send(tc.send)
				if code := r.closeCode(); code != tc.want {
					t.Fatalf("close code %d, want %d", code, tc.want)
				}
				if tc.hello {
					eventually(t, 2*time.Second, "tasks of the refused tab requeued", func() bool {
						return th.m.Requeued("closed") > before
					})
				}
			})
		}
		t.Run("no hello", func(t *testing.T) {
			r := dialRaw(t, th.url)
			if code := r.closeCode(); code != 4003 {
				t.Fatalf("close code %d, want 4003", code)
			}
		})
		dialTab(t, th.url, simtab.Options{Capacity: 4})
		checkSucceeded(t, b.st, job, spec, th.completed)
	})
}

// mortalStore is a real store that can be made to fail every call, the
// way a coordinator process that died stops talking to Redis.
type mortalStore struct {
	store.Store
	dead atomic.Bool
}

var errDead = errors.New("coordinator is dead")

func (m *mortalStore) Claim(ctx context.Context, r []store.ClaimRequest) ([]store.Lease, error) {
	if m.dead.Load() {
		return nil, errDead
	}
	return m.Store.Claim(ctx, r)
}

func (m *mortalStore) Complete(ctx context.Context, r []store.Result) (store.Completion, error) {
	if m.dead.Load() {
		return store.Completion{}, errDead
	}
	return m.Store.Complete(ctx, r)
}

func (m *mortalStore) ReleaseWorker(ctx context.Context, w string) (int, error) {
	if m.dead.Load() {
		return 0, errDead
	}
	return m.Store.ReleaseWorker(ctx, w)
}

func (m *mortalStore) RenewWorkers(ctx context.Context, c string, w []store.WorkerInfo, ttl time.Duration) error {
	if m.dead.Load() {
		return errDead
	}
	return m.Store.RenewWorkers(ctx, c, w, ttl)
}

func (m *mortalStore) RemoveWorker(ctx context.Context, c, w string) error {
	if m.dead.Load() {
		return errDead
	}
	return m.Store.RemoveWorker(ctx, c, w)
}

func (m *mortalStore) Reap(ctx context.Context, now time.Time) (int, error) {
	if m.dead.Load() {
		return 0, errDead
	}
	return m.Store.Reap(ctx, now)
}

func TestCoordinatorLost(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		mortal := &mortalStore{Store: b.st}
		ttl := 600 * time.Millisecond
		dying := startHub(t, mortal, coordinator.HubConfig{LeaseTTL: ttl})
		held := dialTab(t, dying.url, simtab.Options{Capacity: 2, Delay: time.Hour})
		spec := primesSpec(50_000, 12)
		job := submit(t, b.st, spec)
		eventually(t, 10*time.Second, "the dying coordinator's tab holds tasks", func() bool { return held.Stats().Received >= 4 })
		mortal.dead.Store(true) // no renewals, no release: as if killed

		survivor := startHub(t, b.st, coordinator.HubConfig{LeaseTTL: ttl, ReapInterval: 100 * time.Millisecond})
		dialTab(t, survivor.url, simtab.Options{Capacity: 3})
		checkSucceeded(t, b.st, job, spec, survivor.completed)
		if n := survivor.m.Requeued("coordinator_lost"); n < 4 {
			t.Errorf("requeued coordinator_lost = %v, want ≥ 4", n)
		}
	})
}

func TestRedisRestartMidJob(t *testing.T) {
	b := newRedisBackend(t, redistest.WithAOF(), redistest.WithArgs("--appendfsync", "always"))
	th := startHub(t, b.st, coordinator.HubConfig{})
	dialTab(t, th.url, simtab.Options{Capacity: 4, Delay: 10 * time.Millisecond})
	dialTab(t, th.url, simtab.Options{Capacity: 4, Delay: 10 * time.Millisecond})
	spec := primesSpec(200_000, 400)
	job := submit(t, b.st, spec)
	eventually(t, 20*time.Second, "the job under way", func() bool { return th.hub.Stats().Completed >= 50 })
	b.redis.Kill()
	time.Sleep(time.Second) // an outage, not a blip: dispatch must pause
	paused := th.hub.Stats().Completed
	b.redis.Restart()
	// A Complete whose reply the kill cut off is applied but unknown to
	// the hub; it retries it after the restart and the store answers
	// Duplicate. So: accepted plus such duplicates make every task, and
	// nothing is accepted twice.
	checkSucceeded(t, b.st, job, spec, func() int64 {
		n := th.completed()
		if n < 400 && n+int64(th.m.Dropped("duplicate")) >= 400 {
			return 400
		}
		return n
	})
	if paused >= 400 {
		t.Errorf("the job finished during the outage")
	}
}

func TestGracefulShutdown(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		th := startHub(t, b.st, coordinator.HubConfig{})
		tab := dialTab(t, th.url, simtab.Options{Capacity: 3, Delay: time.Hour})
		spec := primesSpec(50_000, 10)
		job := submit(t, b.st, spec)
		eventually(t, 10*time.Second, "the tab holds tasks", func() bool { return tab.Stats().Received >= 5 })
		if err := th.stop(); err != nil {
			t.Fatalf("run: %v", err)
		}
		select {
		case <-tab.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("tab socket not closed")
		}
		if code, reason := tab.CloseStatus(); code != websocket.StatusGoingAway {
			t.Fatalf("close %d %q, want 1001", code, reason)
		}
		running, err := b.st.ListTasks(context.Background(), job.ID, tasks.TaskRunning)
		if err != nil || len(running) != 0 {
			t.Fatalf("%d tasks still running after shutdown (err %v)", len(running), err)
		}
		pending, _ := b.st.ListTasks(context.Background(), job.ID, tasks.TaskPending)
		if len(pending) != 10 {
			t.Fatalf("%d tasks pending, want 10", len(pending))
		}
		if s := th.hub.Stats(); s.Tabs != 0 || s.InFlight != 0 {
			t.Errorf("stats after shutdown %+v", s)
		}
	})
}

func TestCapacityShare(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		th := startHub(t, b.st, coordinator.HubConfig{})
		one := dialTab(t, th.url, simtab.Options{Capacity: 1})
		eight := dialTab(t, th.url, simtab.Options{Capacity: 8})
		spec := sleepSpec(450, 5)
		job := submit(t, b.st, spec)
		checkSucceeded(t, b.st, job, spec, th.completed)
		s1, s8 := one.Stats(), eight.Stats()
		ratio := float64(s8.Completed) / float64(max(s1.Completed, 1))
		t.Logf("capacity 1 ran %d, capacity 8 ran %d (%.1fx)", s1.Completed, s8.Completed, ratio)
		if ratio < 4 || ratio > 16 {
			t.Errorf("capacity 8 ran %.1fx the tasks of capacity 1, want 4x..16x", ratio)
		}
		if s1.MaxInFlight > 1+2 || s8.MaxInFlight > 8+2 {
			t.Errorf("max in flight %d and %d, want ≤ capacity + prefetch", s1.MaxInFlight, s8.MaxInFlight)
		}
	})
}

// BenchmarkHubThroughput runs no-op tasks through one hub and 100
// simulated tabs of capacity 8 in this process (tabs and coordinator
// share the CPU), and reports tasks per second and, on Redis, commands
// per task:
//
//	go test -run '^$' -bench HubThroughput -benchtime 4x ./coordinator/
func BenchmarkHubThroughput(b *testing.B) {
	const tabs, capacity, perJob = 100, 8, 50_000
	for _, name := range []string{"memory", "redis"} {
		b.Run(name, func(b *testing.B) {
			var st store.Store
			var rdb *redis.Client
			if name == "memory" {
				ms, err := memstore.New()
				if err != nil {
					b.Fatal(err)
				}
				st = ms
			} else {
				srv := redistest.Start(b)
				st = openRedis(b, srv.URL())
				rdb = redis.NewClient(&redis.Options{Addr: srv.Addr()})
				defer rdb.Close()
			}
			th := startHub(b, st, coordinator.HubConfig{})
			for i := 0; i < tabs; i++ {
				dialTab(b, th.url, simtab.Options{Capacity: capacity})
			}
			cmds := func() int64 {
				if rdb == nil {
					return 0
				}
				info, err := rdb.Info(context.Background(), "stats").Result()
				if err != nil {
					b.Fatal(err)
				}
				for _, line := range strings.Split(info, "\r\n") {
					if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
						n, _ := strconv.ParseInt(v, 10, 64)
						return n
					}
				}
				return 0
			}
			b.ResetTimer()
			start, cmds0 := time.Now(), cmds()
			for i := 0; i < b.N; i++ {
				job := submit(b, st, sleepSpec(perJob, 0))
				if j := waitJob(b, st, job.ID, 5*time.Minute); j.State != tasks.JobSucceeded {
					b.Fatalf("job %s", j.State)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			n := float64(b.N * perJob)
			b.ReportMetric(n/elapsed.Seconds(), "tasks/s")
			if rdb != nil {
				b.ReportMetric(float64(cmds()-cmds0)/n, "redis-cmds/task")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

func TestCancelledJobTasksDropped(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		th := startHub(t, b.st, coordinator.HubConfig{})
		tab := dialTab(t, th.url, simtab.Options{Capacity: 2, Delay: time.Hour})
		job := submit(t, b.st, primesSpec(50_000, 10))
		eventually(t, 10*time.Second, "the tab holds tasks", func() bool { return tab.Stats().Received == 4 })
		ctx := context.Background()
		if _, err := b.st.CancelJob(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
		b.st.Publish(ctx, store.Event{Type: "cancel", Data: json.RawMessage(`{"job":"` + job.ID + `"}`)})
		eventually(t, 5*time.Second, "the tab told to drop the tasks", func() bool { return tab.Stats().Cancelled == 4 })
		eventually(t, 5*time.Second, "slots freed", func() bool { return th.hub.Stats().InFlight == 0 })
		// The freed slots take the next job's tasks.
		next := submit(t, b.st, primesSpec(50_000, 10))
		eventually(t, 10*time.Second, "the next job's tasks sent", func() bool { return tab.Stats().Received == 8 })
		_ = next
	})
}

// lossyStore applies one Claim and then reports it failed, as when Redis
// dies between running a script and answering.
type lossyStore struct {
	store.Store
	calls atomic.Int32
	lose  int32
}

func (l *lossyStore) Claim(ctx context.Context, r []store.ClaimRequest) ([]store.Lease, error) {
	leases, err := l.Store.Claim(ctx, r)
	if l.calls.Add(1) == l.lose && err == nil && len(leases) > 0 {
		return nil, errors.New("connection reset (the claim was applied)")
	}
	return leases, err
}

func TestClaimAnswerLost(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		lossy := &lossyStore{Store: b.st, lose: 3}
		th := startHub(t, lossy, coordinator.HubConfig{})
		dialTab(t, th.url, simtab.Options{Capacity: 2, Delay: 5 * time.Millisecond})
		spec := primesSpec(100_000, 60)
		job := submit(t, b.st, spec)
		checkSucceeded(t, b.st, job, spec, th.completed)
		if n := th.m.Requeued("revoked"); n < 1 {
			t.Errorf("requeued revoked = %v, want ≥ 1", n)
		}
	})
}
