// Package storetest is the contract suite every store.Store must pass. A
// store's own test calls Run (and RunInvariants, Bench) with a function
// that returns a fresh, empty store. The suite is the precise reading of
// the doc comments in package store; where they leave room, these rules
// hold, and both stores follow them:
//
//   - Task.Attempts is the number of claims of the task so far, which is
//     also the token of its current or last lease; a claim's token is
//     Attempts+1. Task.Failures counts error results against the job's
//     MaxAttempts. ReleaseWorker, Reap and CancelJob count neither.
//   - Task.Worker is the worker holding the lease of a running task, or
//     the worker whose result was accepted for a succeeded task; it is
//     empty for pending and failed tasks. Task.Error is the message of the
//     task's most recent error result; it is kept after a retry.
//   - Complete decides each result, in order, by the first rule that
//     applies: unknown job or index out of range → Stale; task already
//     succeeded → Duplicate; job final (cancelled, failed, succeeded) →
//     Stale; task not running, or leased to another worker, or with another
//     token → Stale; no Error → Accepted (the task succeeds; if it was the
//     job's last, the job is listed in Done); Error with Failures+1 below
//     MaxAttempts → Retried (the task is pending again, Failures+1);
//     otherwise → Failed (the task fails and so does its job, with Error
//     "task <index>: <message>" and FinishedAt set).
//   - A failed or cancelled job keeps its pending tasks pending in its
//     counts; its running tasks go back to pending and their leases are
//     void (results for them are Stale, ReleaseWorker does not count them).
//     Nothing is ever claimed from a final job.
//   - The job stays running after its last task succeeded until FinishJob.
//     FinishJob on a job that is not final and has tasks that did not
//     succeed is an ErrConflict.
//   - ListJobs orders by CreatedAt descending, then ID descending.
//   - Unknown job ids are errors wrapping tasks.ErrNotFound, except in
//     Complete (Stale) and ReleaseWorker of an unknown worker (0).
//   - ListWorkers sets WorkerInfo.Coordinator to the coordinator that
//     renewed the tab, and lists only tabs of coordinators whose lease has
//     not expired.
//   - Close is safe to call twice and returns nil both times.
//
// Tests use times truncated to the millisecond, so a store may keep
// times with millisecond precision.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/tasks"
)

// Run runs the contract suite; every subtest gets a fresh store from
// newStore (which should register its own cleanup).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	groups := []struct {
		name  string
		tests []subtest
	}{
		{"jobs", jobTests},
		{"dispatch", dispatchTests},
		{"workers", workerTests},
		{"events", eventTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, st := range g.tests {
				t.Run(st.name, func(t *testing.T) {
					st.fn(t, newStore(t))
				})
			}
		})
	}
}

type subtest struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// NewID returns a random job id, unique enough for tests.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewJob builds a valid job of n tasks. When kind is a registered kind that
// the helper knows (sleep, primes, pi), the inputs come from the kind's own
// splitter so that simulated tabs can run them; otherwise each task's input
// is {"i": index}. The job has priority 0, max_attempts 3, task_timeout 60s
// and a CreatedAt of now, truncated to the millisecond.
func NewJob(kind string, n int) store.NewJob {
	var input json.RawMessage
	switch kind {
	case "sleep":
		input = json.RawMessage(fmt.Sprintf(`{"tasks":%d,"ms":0}`, n))
	case "primes":
		input = json.RawMessage(fmt.Sprintf(`{"from":0,"to":%d}`, 1000*n))
	case "pi":
		input = json.RawMessage(fmt.Sprintf(`{"samples":%d,"seed":7}`, 1000*n))
	default:
		input = json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))
	}
	var inputs []json.RawMessage
	if k, ok := tasks.Lookup(kind); ok {
		if in, err := k.Split(input, n, tasks.DefaultLimits()); err == nil && len(in) == n {
			inputs = in
		}
	}
	if inputs == nil {
		inputs = make([]json.RawMessage, n)
		for i := range inputs {
			inputs[i] = json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))
		}
	}
	return store.NewJob{
		Job: tasks.Job{
			ID:          NewID(),
			Name:        "test " + kind,
			Kind:        kind,
			Priority:    0,
			MaxAttempts: tasks.DefaultMaxAttempts,
			TaskTimeout: tasks.Duration(tasks.DefaultTaskTimeout),
			CreatedAt:   time.Now().UTC().Truncate(time.Millisecond),
			Input:       input,
		},
		Inputs: inputs,
	}
}

// CheckCounts fails the test unless the job's counts, as GetJob reports
// them, equal the states of its tasks as ListTasks reports them, and
// returns the job.
func CheckCounts(t testing.TB, s store.Store, jobID string) tasks.Job {
	t.Helper()
	ctx := context.Background()
	j, err := s.GetJob(ctx, jobID)
	if err != nil {
		t.Fatalf("get job %s: %v", jobID, err)
	}
	ts, err := s.ListTasks(ctx, jobID, "")
	if err != nil {
		t.Fatalf("list tasks of %s: %v", jobID, err)
	}
	var c tasks.Counts
	c.Total = len(ts)
	for i, tk := range ts {
		if tk.Index != i {
			t.Fatalf("job %s: task at position %d has index %d", jobID, i, tk.Index)
		}
		switch tk.State {
		case tasks.TaskPending:
			c.Pending++
		case tasks.TaskRunning:
			c.Running++
		case tasks.TaskSucceeded:
			c.Succeeded++
		case tasks.TaskFailed:
			c.Failed++
		default:
			t.Fatalf("job %s: task %d in unknown state %q", jobID, i, tk.State)
		}
	}
	if j.Tasks != c {
		t.Fatalf("job %s: counts %+v, but its tasks are %+v", jobID, j.Tasks, c)
	}
	if j.Tasks.Total > 0 {
		want := float64(j.Tasks.Succeeded) / float64(j.Tasks.Total)
		if j.Progress != want {
			t.Fatalf("job %s: progress %v, want %v", jobID, j.Progress, want)
		}
	}
	return j
}

// Register renews one coordinator's lease with a one-minute ttl and
// registers the given worker ids as its tabs.
func Register(t testing.TB, s store.Store, coordinator string, workerIDs ...string) {
	t.Helper()
	RegisterTTL(t, s, coordinator, time.Minute, workerIDs...)
}

// RegisterTTL is Register with a chosen ttl.
func RegisterTTL(t testing.TB, s store.Store, coordinator string, ttl time.Duration, workerIDs ...string) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	ws := make([]store.WorkerInfo, len(workerIDs))
	for i, id := range workerIDs {
		ws[i] = store.WorkerInfo{ID: id, Name: "tab " + id, Capacity: 2, ConnectedAt: now, LastSeen: now}
	}
	if err := s.RenewWorkers(context.Background(), coordinator, ws, ttl); err != nil {
		t.Fatalf("renew workers of %s: %v", coordinator, err)
	}
}

// mustCreate stores nj and fails the test unless it was created.
func mustCreate(t testing.TB, s store.Store, nj store.NewJob) tasks.Job {
	t.Helper()
	j, created, err := s.CreateJob(context.Background(), nj)
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	if !created {
		t.Fatalf("create job %s: created=false for a new job", nj.Job.ID)
	}
	return j
}

// claim claims and fails the test on error.
func claim(t testing.TB, s store.Store, reqs ...store.ClaimRequest) []store.Lease {
	t.Helper()
	ls, err := s.Claim(context.Background(), reqs)
	if err != nil {
		t.Fatalf("claim %+v: %v", reqs, err)
	}
	return ls
}

// complete completes and fails the test on error or when the number of
// outcomes is not the number of results.
func complete(t testing.TB, s store.Store, rs ...store.Result) store.Completion {
	t.Helper()
	c, err := s.Complete(context.Background(), rs)
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	if len(c.Outcomes) != len(rs) {
		t.Fatalf("complete: %d outcomes for %d results", len(c.Outcomes), len(rs))
	}
	return c
}

// ok is the result that completes a lease successfully.
func ok(l store.Lease) store.Result {
	return store.Result{Worker: l.Worker, JobID: l.JobID, Index: l.Index, Token: l.Token,
		Output: json.RawMessage(fmt.Sprintf(`{"index":%d}`, l.Index))}
}

// fail is the result that reports an error for a lease.
func fail(l store.Lease, msg string) store.Result {
	return store.Result{Worker: l.Worker, JobID: l.JobID, Index: l.Index, Token: l.Token, Error: msg}
}

func listTasks(t testing.TB, s store.Store, jobID string, state tasks.TaskState) []tasks.Task {
	t.Helper()
	ts, err := s.ListTasks(context.Background(), jobID, state)
	if err != nil {
		t.Fatalf("list tasks of %s: %v", jobID, err)
	}
	return ts
}

func getJob(t testing.TB, s store.Store, id string) tasks.Job {
	t.Helper()
	j, err := s.GetJob(context.Background(), id)
	if err != nil {
		t.Fatalf("get job %s: %v", id, err)
	}
	return j
}

func wantOutcomes(t testing.TB, c store.Completion, want ...store.Outcome) {
	t.Helper()
	if !slices.Equal(c.Outcomes, want) {
		t.Fatalf("outcomes %v, want %v", c.Outcomes, want)
	}
}

func wantErrIs(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want one wrapping %v", what, err, target)
	}
}

func wantErrContains(t testing.TB, what string, err error, sub string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), sub) {
		t.Fatalf("%s: error %v, want one that says %q", what, err, sub)
	}
}

// leasedIndexes returns the sorted task indexes of the leases of one job.
func leasedIndexes(ls []store.Lease, jobID string) []int {
	var idx []int
	for _, l := range ls {
		if l.JobID == jobID {
			idx = append(idx, l.Index)
		}
	}
	slices.Sort(idx)
	return idx
}

// jsonEqual compares two JSON documents by value, so that a store may
// re-encode what it keeps.
func jsonEqual(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return string(a) == string(b)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return string(ja) == string(jb)
}
