package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/tasks"
)

var jobTests = []subtest{
	{"CreateJob", testCreateJob},
	{"CreateJobIdempotent", testCreateJobIdempotent},
	{"UnknownJob", testUnknownJob},
	{"ListJobs", testListJobs},
	{"ListJobsDefaultLimit", testListJobsDefaultLimit},
	{"CountJobs", testCountJobs},
	{"FinishJob", testFinishJob},
	{"FinishJobError", testFinishJobError},
	{"FinishJobNotDone", testFinishJobNotDone},
	{"JobResultConflict", testJobResultConflict},
	{"TaskOutputs", testTaskOutputs},
	{"CancelJob", testCancelJob},
	{"CancelFinalJob", testCancelFinalJob},
	{"UnfinishedJobs", testUnfinishedJobs},
	{"DeleteFinishedBefore", testDeleteFinishedBefore},
	{"Ping", testPing},
	{"CloseTwice", testCloseTwice},
}

func testCreateJob(t *testing.T, s store.Store) {
	ctx := context.Background()
	nj := NewJob("sleep", 5)
	nj.Job.Name = "five naps"
	nj.Job.Priority = 7
	nj.Job.MaxAttempts = 4
	nj.Job.TaskTimeout = tasks.Duration(90 * time.Second)
	nj.Job.State = "" // the store sets it
	j, created, err := s.CreateJob(ctx, nj)
	if err != nil || !created {
		t.Fatalf("create job: created=%v err=%v", created, err)
	}
	for _, got := range []tasks.Job{j, getJob(t, s, nj.Job.ID)} {
		if got.ID != nj.Job.ID || got.Name != "five naps" || got.Kind != "sleep" || got.Priority != 7 ||
			got.MaxAttempts != 4 || got.TaskTimeout != tasks.Duration(90*time.Second) {
			t.Fatalf("job fields %+v do not match %+v", got, nj.Job)
		}
		if !got.CreatedAt.Equal(nj.Job.CreatedAt) {
			t.Fatalf("created_at %v, want %v", got.CreatedAt, nj.Job.CreatedAt)
		}
		if got.State != tasks.JobQueued || got.StartedAt != nil || got.FinishedAt != nil || got.Error != "" {
			t.Fatalf("new job: state %q started %v finished %v error %q", got.State, got.StartedAt, got.FinishedAt, got.Error)
		}
		want := tasks.Counts{Total: 5, Pending: 5}
		if got.Tasks != want {
			t.Fatalf("counts %+v, want %+v", got.Tasks, want)
		}
	}
	if got := getJob(t, s, nj.Job.ID); !jsonEqual(got.Input, nj.Job.Input) {
		t.Fatalf("GetJob input %s, want %s", got.Input, nj.Job.Input)
	}
	ts := listTasks(t, s, nj.Job.ID, "")
	if len(ts) != 5 {
		t.Fatalf("%d tasks, want 5", len(ts))
	}
	for i, tk := range ts {
		if tk.Index != i || tk.State != tasks.TaskPending || tk.Attempts != 0 || tk.Failures != 0 || tk.Worker != "" || tk.Error != "" {
			t.Fatalf("new task %d: %+v", i, tk)
		}
	}
	outs, err := s.TaskOutputs(ctx, nj.Job.ID)
	if err != nil {
		t.Fatalf("task outputs: %v", err)
	}
	if len(outs) != 5 {
		t.Fatalf("%d outputs, want 5", len(outs))
	}
	for i, o := range outs {
		if o != nil {
			t.Fatalf("output %d of a new job is %s, want nil", i, o)
		}
	}
	CheckCounts(t, s, nj.Job.ID)
}

func testCreateJobIdempotent(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := NewJob("sleep", 3)
	first.IdempotencyKey = "key-" + NewID()
	mustCreate(t, s, first)
	Register(t, s, "c1", "w1")
	if ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 1}); len(ls) != 1 {
		t.Fatalf("claimed %d, want 1", len(ls))
	}

	again := NewJob("sleep", 4)
	again.IdempotencyKey = first.IdempotencyKey
	j, created, err := s.CreateJob(ctx, again)
	if err != nil {
		t.Fatalf("repeat create: %v", err)
	}
	if created {
		t.Fatal("a repeated idempotency key created a job")
	}
	if j.ID != first.Job.ID || j.Tasks.Total != 3 {
		t.Fatalf("repeat returned job %s with %d tasks, want the first job %s with 3", j.ID, j.Tasks.Total, first.Job.ID)
	}
	if j.State != tasks.JobRunning || j.Tasks.Running != 1 {
		t.Fatalf("repeat returned state %q counts %+v, want the first job as it is now (running, 1 running)", j.State, j.Tasks)
	}
	_, err = s.GetJob(ctx, again.Job.ID)
	wantErrIs(t, "get the repeated job's id", err, tasks.ErrNotFound)
	jobs, err := s.ListJobs(ctx, store.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 {
		t.Fatalf("%d jobs listed after a repeat, want 1", len(jobs))
	}

	other := NewJob("sleep", 2)
	other.IdempotencyKey = "key-" + NewID()
	mustCreate(t, s, other)
	CheckCounts(t, s, first.Job.ID)
	CheckCounts(t, s, other.Job.ID)
}

func testUnknownJob(t *testing.T, s store.Store) {
	ctx := context.Background()
	id := NewID()
	_, err := s.GetJob(ctx, id)
	wantErrIs(t, "get job", err, tasks.ErrNotFound)
	_, err = s.ListTasks(ctx, id, "")
	wantErrIs(t, "list tasks", err, tasks.ErrNotFound)
	_, err = s.TaskOutputs(ctx, id)
	wantErrIs(t, "task outputs", err, tasks.ErrNotFound)
	_, err = s.FinishJob(ctx, id, json.RawMessage(`1`), "")
	wantErrIs(t, "finish job", err, tasks.ErrNotFound)
	_, err = s.JobResult(ctx, id)
	wantErrIs(t, "job result", err, tasks.ErrNotFound)
	_, err = s.CancelJob(ctx, id)
	wantErrIs(t, "cancel job", err, tasks.ErrNotFound)
}

func testListJobs(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	var ids []string
	for i := range 5 {
		nj := NewJob("sleep", 2)
		nj.Job.CreatedAt = base.Add(time.Duration(i) * time.Second)
		mustCreate(t, s, nj)
		ids = append(ids, nj.Job.ID)
	}
	// Two jobs created in the same millisecond: the larger id comes first.
	tieA, tieB := NewJob("sleep", 1), NewJob("sleep", 1)
	tieA.Job.CreatedAt = base.Add(-time.Minute)
	tieB.Job.CreatedAt = tieA.Job.CreatedAt
	tieA.Job.ID, tieB.Job.ID = "aaaa"+NewID(), "bbbb"+NewID()
	mustCreate(t, s, tieA)
	mustCreate(t, s, tieB)
	newestFirst := []string{ids[4], ids[3], ids[2], ids[1], ids[0], tieB.Job.ID, tieA.Job.ID}

	list := func(f store.JobFilter) []string {
		t.Helper()
		jobs, err := s.ListJobs(ctx, f)
		if err != nil {
			t.Fatalf("list jobs %+v: %v", f, err)
		}
		var got []string
		for _, j := range jobs {
			if j.Tasks.Total == 0 {
				t.Fatalf("listed job %s has no counts", j.ID)
			}
			got = append(got, j.ID)
		}
		return got
	}
	if got := list(store.JobFilter{}); strings.Join(got, ",") != strings.Join(newestFirst, ",") {
		t.Fatalf("list jobs: %v, want newest first %v", got, newestFirst)
	}
	if got := list(store.JobFilter{Limit: 2}); strings.Join(got, ",") != strings.Join(newestFirst[:2], ",") {
		t.Fatalf("list 2 jobs: %v, want %v", got, newestFirst[:2])
	}
	if _, err := s.CancelJob(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	if got := list(store.JobFilter{State: tasks.JobCancelled}); len(got) != 1 || got[0] != ids[1] {
		t.Fatalf("cancelled jobs: %v, want [%s]", got, ids[1])
	}
	want := []string{ids[4], ids[3], ids[2], ids[0], tieB.Job.ID, tieA.Job.ID}
	if got := list(store.JobFilter{State: tasks.JobQueued}); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("queued jobs: %v, want %v", got, want)
	}
	if got := list(store.JobFilter{State: tasks.JobQueued, Limit: 1}); len(got) != 1 || got[0] != ids[4] {
		t.Fatalf("one queued job: %v, want [%s]", got, ids[4])
	}
	if got := list(store.JobFilter{State: tasks.JobSucceeded}); len(got) != 0 {
		t.Fatalf("succeeded jobs: %v, want none", got)
	}
}

func testListJobsDefaultLimit(t *testing.T, s store.Store) {
	base := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	for i := range 53 {
		nj := NewJob("sleep", 1)
		nj.Job.CreatedAt = base.Add(time.Duration(i) * time.Millisecond)
		mustCreate(t, s, nj)
	}
	jobs, err := s.ListJobs(context.Background(), store.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 50 {
		t.Fatalf("listed %d jobs with no limit, want the default 50", len(jobs))
	}
	if !jobs[0].CreatedAt.Equal(base.Add(52 * time.Millisecond)) {
		t.Fatalf("first listed job created at %v, want the newest", jobs[0].CreatedAt)
	}
}

func testCountJobs(t *testing.T, s store.Store) {
	ctx := context.Background()
	var ids []string
	for range 4 {
		nj := NewJob("sleep", 2)
		mustCreate(t, s, nj)
		ids = append(ids, nj.Job.ID)
	}
	if _, err := s.CancelJob(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	Register(t, s, "c1", "w1")
	// Claim everything left, so that each job not cancelled is running.
	if ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 100}); len(ls) != 6 {
		t.Fatalf("claimed %d, want 6", len(ls))
	}
	if _, err := s.CancelJob(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	// One job succeeds, one fails, and one is done but not yet finished
	// (still running).
	ok3 := NewJob("sleep", 1)
	mustCreate(t, s, ok3)
	finishTasks(t, s, ok3.Job.ID, 1)
	if _, err := s.FinishJob(ctx, ok3.Job.ID, json.RawMessage(`{}`), ""); err != nil {
		t.Fatal(err)
	}
	bad := NewJob("sleep", 1)
	mustCreate(t, s, bad)
	finishTasks(t, s, bad.Job.ID, 1)
	if _, err := s.FinishJob(ctx, bad.Job.ID, nil, "reduce: no"); err != nil {
		t.Fatal(err)
	}
	waiting := NewJob("sleep", 1)
	mustCreate(t, s, waiting)
	finishTasks(t, s, waiting.Job.ID, 1)
	claim(t, s, store.ClaimRequest{Worker: "w1", Max: 10})
	counts, err := s.CountJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[tasks.JobState]int{tasks.JobCancelled: 2, tasks.JobRunning: 3, tasks.JobSucceeded: 1, tasks.JobFailed: 1}
	for _, st := range []tasks.JobState{tasks.JobQueued, tasks.JobRunning, tasks.JobSucceeded, tasks.JobFailed, tasks.JobCancelled} {
		if counts[st] != want[st] {
			t.Fatalf("counts %v, want %v", counts, want)
		}
	}
}

// finishTasks claims and completes every task of a fresh store's only job.
func finishTasks(t *testing.T, s store.Store, jobID string, n int) store.Completion {
	t.Helper()
	Register(t, s, "c1", "w1")
	ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: n})
	if len(ls) != n {
		t.Fatalf("claimed %d, want %d", len(ls), n)
	}
	rs := make([]store.Result, len(ls))
	for i, l := range ls {
		rs[i] = ok(l)
	}
	return complete(t, s, rs...)
}

func testFinishJob(t *testing.T, s store.Store) {
	ctx := context.Background()
	nj := NewJob("sleep", 3)
	mustCreate(t, s, nj)
	c := finishTasks(t, s, nj.Job.ID, 3)
	if len(c.Done) != 1 || c.Done[0] != nj.Job.ID {
		t.Fatalf("done %v, want [%s]", c.Done, nj.Job.ID)
	}
	j := CheckCounts(t, s, nj.Job.ID)
	if j.State != tasks.JobRunning || j.Progress != 1 {
		t.Fatalf("job with all tasks done: state %q progress %v, want running and 1 until FinishJob", j.State, j.Progress)
	}
	_, err := s.JobResult(ctx, nj.Job.ID)
	wantErrIs(t, "result before FinishJob", err, tasks.ErrConflict)

	before := time.Now().Add(-time.Minute)
	j, err = s.FinishJob(ctx, nj.Job.ID, json.RawMessage(`{"tasks":3}`), "")
	if err != nil {
		t.Fatalf("finish job: %v", err)
	}
	if j.State != tasks.JobSucceeded || j.FinishedAt == nil || j.FinishedAt.Before(before) || j.Error != "" {
		t.Fatalf("finished job: state %q finished_at %v error %q", j.State, j.FinishedAt, j.Error)
	}
	res, err := s.JobResult(ctx, nj.Job.ID)
	if err != nil || !jsonEqual(res, json.RawMessage(`{"tasks":3}`)) {
		t.Fatalf("job result %s, %v", res, err)
	}
	// Finishing a final job again changes nothing.
	j2, err := s.FinishJob(ctx, nj.Job.ID, json.RawMessage(`{"tasks":99}`), "")
	if err != nil {
		t.Fatalf("finish a finished job: %v", err)
	}
	if j2.State != tasks.JobSucceeded || j2.FinishedAt == nil || !j2.FinishedAt.Equal(*j.FinishedAt) {
		t.Fatalf("second finish changed the job: %+v", j2)
	}
	j2, err = s.FinishJob(ctx, nj.Job.ID, nil, "too late")
	if err != nil || j2.State != tasks.JobSucceeded || j2.Error != "" {
		t.Fatalf("finish with an error after success: state %q error %q err %v", j2.State, j2.Error, err)
	}
	res, err = s.JobResult(ctx, nj.Job.ID)
	if err != nil || !jsonEqual(res, json.RawMessage(`{"tasks":3}`)) {
		t.Fatalf("job result after a repeated finish: %s, %v", res, err)
	}
	if got := getJob(t, s, nj.Job.ID); got.State != tasks.JobSucceeded || got.FinishedAt == nil {
		t.Fatalf("GetJob after finish: %+v", got)
	}
	CheckCounts(t, s, nj.Job.ID)
}

func testFinishJobError(t *testing.T, s store.Store) {
	ctx := context.Background()
	nj := NewJob("sleep", 2)
	mustCreate(t, s, nj)
	finishTasks(t, s, nj.Job.ID, 2)
	j, err := s.FinishJob(ctx, nj.Job.ID, nil, "reduce: bad output")
	if err != nil {
		t.Fatalf("finish job with an error: %v", err)
	}
	if j.State != tasks.JobFailed || j.Error != "reduce: bad output" || j.FinishedAt == nil {
		t.Fatalf("job after a reducer error: state %q error %q finished_at %v", j.State, j.Error, j.FinishedAt)
	}
	_, err = s.JobResult(ctx, nj.Job.ID)
	wantErrIs(t, "result of a failed job", err, tasks.ErrConflict)
	wantErrContains(t, "result of a failed job", err, "failed")
	if ids, err := s.UnfinishedJobs(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("unfinished jobs %v, %v; want none", ids, err)
	}
}

func testFinishJobNotDone(t *testing.T, s store.Store) {
	ctx := context.Background()
	nj := NewJob("sleep", 2)
	mustCreate(t, s, nj)
	_, err := s.FinishJob(ctx, nj.Job.ID, json.RawMessage(`1`), "")
	wantErrIs(t, "finish a job with pending tasks", err, tasks.ErrConflict)
	if j := CheckCounts(t, s, nj.Job.ID); j.State != tasks.JobQueued {
		t.Fatalf("state %q after a refused finish, want queued", j.State)
	}
}

func testJobResultConflict(t *testing.T, s store.Store) {
	ctx := context.Background()
	nj := NewJob("sleep", 2)
	mustCreate(t, s, nj)
	_, err := s.JobResult(ctx, nj.Job.ID)
	wantErrIs(t, "result of a queued job", err, tasks.ErrConflict)
	wantErrContains(t, "result of a queued job", err, "queued")
	if _, err := s.CancelJob(ctx, nj.Job.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.JobResult(ctx, nj.Job.ID)
	wantErrIs(t, "result of a cancelled job", err, tasks.ErrConflict)
	wantErrContains(t, "result of a cancelled job", err, "cancelled")
}

func testTaskOutputs(t *testing.T, s store.Store) {
	ctx := context.Background()
	nj := NewJob("sleep", 3)
	mustCreate(t, s, nj)
	Register(t, s, "c1", "w1")
	ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 3})
	if len(ls) != 3 {
		t.Fatalf("claimed %d, want 3", len(ls))
	}
	var rs []store.Result
	for _, l := range ls {
		if l.Index != 1 {
			r := ok(l)
			r.Output = json.RawMessage(fmt.Sprintf(`{"out":"task %d"}`, l.Index))
			rs = append(rs, r)
		}
	}
	wantOutcomes(t, complete(t, s, rs...), store.Accepted, store.Accepted)
	outs, err := s.TaskOutputs(ctx, nj.Job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 3 || !jsonEqual(outs[0], json.RawMessage(`{"out":"task 0"}`)) || outs[1] != nil ||
		!jsonEqual(outs[2], json.RawMessage(`{"out":"task 2"}`)) {
		t.Fatalf("outputs %q, want task 0's, nil, task 2's", outs)
	}
	CheckCounts(t, s, nj.Job.ID)
}

func testCancelJob(t *testing.T, s store.Store) {
	ctx := context.Background()
	nj := NewJob("sleep", 4)
	mustCreate(t, s, nj)
	Register(t, s, "c1", "w1")
	ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 2})
	if len(ls) != 2 {
		t.Fatalf("claimed %d, want 2", len(ls))
	}
	before := time.Now().Add(-time.Minute)
	j, err := s.CancelJob(ctx, nj.Job.ID)
	if err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if j.State != tasks.JobCancelled || j.FinishedAt == nil || j.FinishedAt.Before(before) {
		t.Fatalf("cancelled job: state %q finished_at %v", j.State, j.FinishedAt)
	}
	want := tasks.Counts{Total: 4, Pending: 4}
	if j.Tasks != want {
		t.Fatalf("cancelled job counts %+v, want %+v (its leases are void)", j.Tasks, want)
	}
	if got := CheckCounts(t, s, nj.Job.ID); got.State != tasks.JobCancelled || got.Tasks != want {
		t.Fatalf("GetJob after cancel: state %q counts %+v", got.State, got.Tasks)
	}
	for _, tk := range listTasks(t, s, nj.Job.ID, "") {
		if tk.Worker != "" {
			t.Fatalf("task %d of a cancelled job still names worker %q", tk.Index, tk.Worker)
		}
	}
	c := complete(t, s, ok(ls[0]), fail(ls[1], "boom"))
	wantOutcomes(t, c, store.Stale, store.Stale)
	if len(c.Done) != 0 {
		t.Fatalf("done %v after stale results", c.Done)
	}
	if got := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 10}); len(got) != 0 {
		t.Fatalf("claimed %d tasks of a cancelled job", len(got))
	}
	if n, err := s.ReleaseWorker(ctx, "w1"); err != nil || n != 0 {
		t.Fatalf("release after cancel: %d, %v; want 0 (the leases are void)", n, err)
	}
	_, err = s.CancelJob(ctx, nj.Job.ID)
	wantErrIs(t, "cancel twice", err, tasks.ErrConflict)
	CheckCounts(t, s, nj.Job.ID)
}

func testCancelFinalJob(t *testing.T, s store.Store) {
	ctx := context.Background()
	nj := NewJob("sleep", 1)
	mustCreate(t, s, nj)
	finishTasks(t, s, nj.Job.ID, 1)
	if _, err := s.FinishJob(ctx, nj.Job.ID, json.RawMessage(`{"tasks":1}`), ""); err != nil {
		t.Fatal(err)
	}
	_, err := s.CancelJob(ctx, nj.Job.ID)
	wantErrIs(t, "cancel a succeeded job", err, tasks.ErrConflict)
	if j := getJob(t, s, nj.Job.ID); j.State != tasks.JobSucceeded {
		t.Fatalf("state %q after a refused cancel", j.State)
	}
}

func testUnfinishedJobs(t *testing.T, s store.Store) {
	ctx := context.Background()
	done, open, queued := NewJob("sleep", 2), NewJob("sleep", 2), NewJob("sleep", 2)
	mustCreate(t, s, done)
	mustCreate(t, s, open)
	mustCreate(t, s, queued)
	Register(t, s, "c1", "w1")
	var doneLeases, openLeases []store.Lease
	for len(doneLeases) < 2 || len(openLeases) < 1 {
		ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 1})
		if len(ls) != 1 {
			t.Fatalf("claimed %d, want 1", len(ls))
		}
		switch ls[0].JobID {
		case done.Job.ID:
			doneLeases = append(doneLeases, ls[0])
		case open.Job.ID:
			openLeases = append(openLeases, ls[0])
		}
	}
	c := complete(t, s, ok(doneLeases[0]), ok(doneLeases[1]), ok(openLeases[0]))
	wantOutcomes(t, c, store.Accepted, store.Accepted, store.Accepted)
	// A claim that meets the done job (nothing left to lease in it) must
	// not hide it from UnfinishedJobs.
	claim(t, s, store.ClaimRequest{Worker: "w1", Max: 10})
	ids, err := s.UnfinishedJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != done.Job.ID {
		t.Fatalf("unfinished jobs %v, want [%s]", ids, done.Job.ID)
	}
	if _, err := s.FinishJob(ctx, done.Job.ID, json.RawMessage(`{}`), ""); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.UnfinishedJobs(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("unfinished jobs after finish: %v, %v", ids, err)
	}
}

func testDeleteFinishedBefore(t *testing.T, s store.Store) {
	ctx := context.Background()
	old, running, queued := NewJob("sleep", 2), NewJob("sleep", 2), NewJob("sleep", 2)
	old.IdempotencyKey = "key-" + NewID()
	running.IdempotencyKey = "key-" + NewID()
	mustCreate(t, s, old)
	mustCreate(t, s, running)
	if _, err := s.CancelJob(ctx, old.Job.ID); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, queued)
	Register(t, s, "c1", "w1")
	for {
		ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 1})
		if len(ls) != 1 {
			t.Fatal("the running job never got a claim")
		}
		if ls[0].JobID == running.Job.ID {
			break
		}
	}

	n, err := s.DeleteFinishedBefore(ctx, time.Now().Add(-time.Hour))
	if err != nil || n != 0 {
		t.Fatalf("delete finished an hour ago: %d, %v; want 0", n, err)
	}
	getJob(t, s, old.Job.ID)
	n, err = s.DeleteFinishedBefore(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("delete finished before in an hour: %d, %v; want 1", n, err)
	}
	_, err = s.GetJob(ctx, old.Job.ID)
	wantErrIs(t, "get a deleted job", err, tasks.ErrNotFound)
	_, err = s.ListTasks(ctx, old.Job.ID, "")
	wantErrIs(t, "list tasks of a deleted job", err, tasks.ErrNotFound)
	CheckCounts(t, s, running.Job.ID)
	CheckCounts(t, s, queued.Job.ID)
	jobs, err := s.ListJobs(ctx, store.JobFilter{})
	if err != nil || len(jobs) != 2 {
		t.Fatalf("listed %d jobs after delete (%v), want 2", len(jobs), err)
	}
	counts, err := s.CountJobs(ctx)
	if err != nil || counts[tasks.JobCancelled] != 0 {
		t.Fatalf("counts after delete %v, %v", counts, err)
	}

	// The deleted job's idempotency key is free again; the kept one's is not.
	again := NewJob("sleep", 1)
	again.IdempotencyKey = old.IdempotencyKey
	j, created, err := s.CreateJob(ctx, again)
	if err != nil || !created || j.ID != again.Job.ID {
		t.Fatalf("create with a deleted job's key: created=%v id %s err %v", created, j.ID, err)
	}
	dup := NewJob("sleep", 1)
	dup.IdempotencyKey = running.IdempotencyKey
	j, created, err = s.CreateJob(ctx, dup)
	if err != nil || created || j.ID != running.Job.ID {
		t.Fatalf("create with a kept job's key: created=%v id %s err %v", created, j.ID, err)
	}
	if n, err := s.DeleteFinishedBefore(ctx, time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("second delete: %d, %v; want 0", n, err)
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

func testCloseTwice(t *testing.T, s store.Store) {
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}
