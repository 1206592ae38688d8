package storetest

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/tasks"
)

var dispatchTests = []subtest{
	{"ClaimBatch", testClaimBatch},
	{"ClaimTokens", testClaimTokens},
	{"ClaimPriority", testClaimPriority},
	{"ClaimFairness", testClaimFairness},
	{"ClaimFairnessLateJob", testClaimFairnessLateJob},
	{"ClaimNothing", testClaimNothing},
	{"CompleteOutcomes", testCompleteOutcomes},
	{"CompleteRetryThenFail", testCompleteRetryThenFail},
	{"CompleteFailVoidsLeases", testCompleteFailVoidsLeases},
	{"CompleteManyJobs", testCompleteManyJobs},
	{"ReleaseWorker", testReleaseWorker},
}

func testClaimBatch(t *testing.T, s store.Store) {
	nj := NewJob("storetest", 10) // an unregistered kind: every task's input differs
	nj.Job.TaskTimeout = tasks.Duration(42 * time.Second)
	mustCreate(t, s, nj)
	Register(t, s, "c1", "w1", "w2", "w3")
	before := time.Now().Add(-time.Minute)
	ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 3}, store.ClaimRequest{Worker: "w2", Max: 4})
	perWorker := map[string]int{}
	seen := map[int]bool{}
	for _, l := range ls {
		perWorker[l.Worker]++
		if l.JobID != nj.Job.ID || l.Index < 0 || l.Index >= 10 {
			t.Fatalf("lease for job %s task %d", l.JobID, l.Index)
		}
		if seen[l.Index] {
			t.Fatalf("task %d leased twice in one claim", l.Index)
		}
		seen[l.Index] = true
		if l.Token != 1 || l.Kind != "storetest" || l.TaskTimeout != 42*time.Second || !jsonEqual(l.Input, nj.Inputs[l.Index]) {
			t.Fatalf("lease %+v: want token 1, kind storetest, timeout 42s, input %s", l, nj.Inputs[l.Index])
		}
	}
	if perWorker["w1"] != 3 || perWorker["w2"] != 4 {
		t.Fatalf("leases per worker %v, want w1:3 w2:4", perWorker)
	}
	j := CheckCounts(t, s, nj.Job.ID)
	if j.State != tasks.JobRunning || j.StartedAt == nil || j.StartedAt.Before(before) || j.StartedAt.After(time.Now().Add(time.Minute)) {
		t.Fatalf("job after its first claim: state %q started_at %v", j.State, j.StartedAt)
	}
	if j.Tasks.Running != 7 || j.Tasks.Pending != 3 {
		t.Fatalf("counts %+v, want 7 running and 3 pending", j.Tasks)
	}
	for _, tk := range listTasks(t, s, nj.Job.ID, tasks.TaskRunning) {
		var holder string
		for _, l := range ls {
			if l.Index == tk.Index {
				holder = l.Worker
			}
		}
		if tk.Worker != holder || tk.Attempts != 1 || tk.State != tasks.TaskRunning {
			t.Fatalf("running task %+v, want worker %q attempts 1", tk, holder)
		}
	}
	started := *j.StartedAt

	more := claim(t, s, store.ClaimRequest{Worker: "w3", Max: 5})
	if len(more) != 3 {
		t.Fatalf("claimed %d of the 3 tasks left, want 3", len(more))
	}
	for _, l := range more {
		if seen[l.Index] {
			t.Fatalf("task %d leased while already leased", l.Index)
		}
		seen[l.Index] = true
	}
	if got := claim(t, s, store.ClaimRequest{Worker: "w3", Max: 5}); len(got) != 0 {
		t.Fatalf("claimed %d when nothing is pending", len(got))
	}
	j = CheckCounts(t, s, nj.Job.ID)
	if j.StartedAt == nil || !j.StartedAt.Equal(started) {
		t.Fatalf("started_at moved from %v to %v on a later claim", started, j.StartedAt)
	}
	if j.Tasks.Running != 10 {
		t.Fatalf("counts %+v, want 10 running", j.Tasks)
	}
	if got := listTasks(t, s, nj.Job.ID, tasks.TaskPending); len(got) != 0 {
		t.Fatalf("%d pending tasks listed, want none", len(got))
	}
}

func testClaimTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	nj := NewJob("sleep", 1)
	nj.Job.MaxAttempts = 5
	mustCreate(t, s, nj)
	Register(t, s, "c1", "w1", "w2")
	one := func(worker string, token int) store.Lease {
		t.Helper()
		ls := claim(t, s, store.ClaimRequest{Worker: worker, Max: 3})
		if len(ls) != 1 || ls[0].Token != token || ls[0].Worker != worker || ls[0].Index != 0 {
			t.Fatalf("claim for %s: %+v, want one lease of task 0 with token %d", worker, ls, token)
		}
		return ls[0]
	}
	one("w1", 1)
	if n, err := s.ReleaseWorker(ctx, "w1"); err != nil || n != 1 {
		t.Fatalf("release w1: %d, %v; want 1", n, err)
	}
	l := one("w2", 2)
	wantOutcomes(t, complete(t, s, fail(l, "boom")), store.Retried)
	l = one("w1", 3)
	tk := listTasks(t, s, nj.Job.ID, "")[0]
	if tk.Attempts != 3 || tk.Failures != 1 || tk.Worker != "w1" || tk.Error != "boom" {
		t.Fatalf("task after 3 claims and 1 error: %+v", tk)
	}
	wantOutcomes(t, complete(t, s, ok(l)), store.Accepted)
	tk = listTasks(t, s, nj.Job.ID, "")[0]
	if tk.State != tasks.TaskSucceeded || tk.Attempts != 3 || tk.Failures != 1 || tk.Worker != "w1" || tk.Error != "boom" {
		t.Fatalf("task after success: %+v", tk)
	}
	CheckCounts(t, s, nj.Job.ID)
}

func testClaimPriority(t *testing.T, s store.Store) {
	low, high := NewJob("sleep", 3), NewJob("sleep", 3)
	low.Job.Priority = -1
	high.Job.Priority = 5
	low.Job.CreatedAt = high.Job.CreatedAt.Add(-time.Second) // older, yet later
	mid := NewJob("sleep", 3)
	mustCreate(t, s, low)
	mustCreate(t, s, high)
	mustCreate(t, s, mid)
	Register(t, s, "c1", "w1", "w2")
	ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 2}, store.ClaimRequest{Worker: "w2", Max: 2})
	if got := leasedIndexes(ls, high.Job.ID); len(got) != 3 {
		t.Fatalf("claimed %d tasks of the priority-5 job, want all 3 first (leases %+v)", len(got), ls)
	}
	if got := leasedIndexes(ls, mid.Job.ID); len(got) != 1 {
		t.Fatalf("claimed %d tasks of the priority-0 job, want 1 (leases %+v)", len(got), ls)
	}
	ls = claim(t, s, store.ClaimRequest{Worker: "w1", Max: 3})
	if got := leasedIndexes(ls, mid.Job.ID); len(got) != 2 || len(leasedIndexes(ls, low.Job.ID)) != 1 {
		t.Fatalf("second claim %+v, want the priority-0 job's 2 tasks then 1 of the priority -1 job", ls)
	}
	for _, id := range []string{low.Job.ID, mid.Job.ID, high.Job.ID} {
		CheckCounts(t, s, id)
	}
}

func testClaimFairness(t *testing.T, s store.Store) {
	a, b := NewJob("sleep", 10), NewJob("sleep", 10)
	mustCreate(t, s, a)
	mustCreate(t, s, b)
	Register(t, s, "c1", "w1")
	got := map[string]int{}
	for range 10 {
		ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 1})
		if len(ls) != 1 {
			t.Fatalf("claimed %d, want 1", len(ls))
		}
		got[ls[0].JobID]++
	}
	if got[a.Job.ID] < 3 || got[b.Job.ID] < 3 {
		t.Fatalf("ten single claims over two equal jobs took %d and %d tasks; want them spread", got[a.Job.ID], got[b.Job.ID])
	}
	CheckCounts(t, s, a.Job.ID)
	CheckCounts(t, s, b.Job.ID)
}

func testClaimFairnessLateJob(t *testing.T, s store.Store) {
	big := NewJob("sleep", 100)
	mustCreate(t, s, big)
	Register(t, s, "c1", "w1", "w2")
	if ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 20}); len(ls) != 20 {
		t.Fatalf("claimed %d, want 20", len(ls))
	}
	late := NewJob("sleep", 10)
	mustCreate(t, s, late)
	got := map[string]int{}
	for range 10 {
		for _, l := range claim(t, s, store.ClaimRequest{Worker: "w2", Max: 1}) {
			got[l.JobID]++
		}
	}
	if got[late.Job.ID] < 3 || got[big.Job.ID] < 3 {
		t.Fatalf("ten single claims after a new job of equal priority: big %d, late %d; want them spread", got[big.Job.ID], got[late.Job.ID])
	}
}

func testClaimNothing(t *testing.T, s store.Store) {
	Register(t, s, "c1", "w1")
	if ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 8}); len(ls) != 0 {
		t.Fatalf("claimed %d from an empty store", len(ls))
	}
	if ls := claim(t, s); len(ls) != 0 {
		t.Fatalf("claimed %d with no requests", len(ls))
	}
	nj := NewJob("sleep", 2)
	mustCreate(t, s, nj)
	if ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 0}); len(ls) != 0 {
		t.Fatalf("claimed %d with max 0", len(ls))
	}
	if j := CheckCounts(t, s, nj.Job.ID); j.State != tasks.JobQueued {
		t.Fatalf("a claim of nothing moved the job to %q", j.State)
	}
}

func testCompleteOutcomes(t *testing.T, s store.Store) {
	ctx := context.Background()
	nj := NewJob("sleep", 4)
	mustCreate(t, s, nj)
	Register(t, s, "c1", "w1", "w2")
	ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 4})
	if len(ls) != 4 {
		t.Fatalf("claimed %d, want 4", len(ls))
	}
	slices.SortFunc(ls, func(a, b store.Lease) int { return a.Index - b.Index })

	wrongWorker := ok(ls[1])
	wrongWorker.Worker = "w2"
	oldToken := ok(ls[2])
	oldToken.Token = 0
	futureToken := ok(ls[2])
	futureToken.Token = 2
	unknownJob := ok(ls[0])
	unknownJob.JobID = NewID()
	badIndex := ok(ls[0])
	badIndex.Index = 4
	negIndex := ok(ls[0])
	negIndex.Index = -1
	c := complete(t, s, ok(ls[0]), ok(ls[0]), wrongWorker, oldToken, futureToken, unknownJob, badIndex, negIndex)
	wantOutcomes(t, c, store.Accepted, store.Duplicate, store.Stale, store.Stale, store.Stale, store.Stale, store.Stale, store.Stale)
	// A result for a succeeded task from anyone is a duplicate.
	dupOther := ok(ls[0])
	dupOther.Worker = "w2"
	dupOther.Token = 7
	wantOutcomes(t, complete(t, s, dupOther, fail(ls[0], "late error")), store.Duplicate, store.Duplicate)

	// After a release, the released lease's results are stale, and so is
	// the old token once the same worker claimed the task again.
	if n, err := s.ReleaseWorker(ctx, "w1"); err != nil || n != 3 {
		t.Fatalf("release w1: %d, %v; want 3", n, err)
	}
	wantOutcomes(t, complete(t, s, ok(ls[1]), fail(ls[2], "boom")), store.Stale, store.Stale)
	re := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 3})
	if len(re) != 3 {
		t.Fatalf("reclaimed %d, want 3", len(re))
	}
	for _, l := range re {
		if l.Token != 2 {
			t.Fatalf("reclaimed lease %+v, want token 2", l)
		}
	}
	slices.SortFunc(re, func(a, b store.Lease) int { return a.Index - b.Index })
	wantOutcomes(t, complete(t, s, ok(ls[1]), ok(re[0]), ok(re[1]), ok(re[2])),
		store.Stale, store.Accepted, store.Accepted, store.Accepted)
	j := CheckCounts(t, s, nj.Job.ID)
	if j.Tasks.Succeeded != 4 {
		t.Fatalf("counts %+v, want 4 succeeded", j.Tasks)
	}
	for _, tk := range listTasks(t, s, nj.Job.ID, "") {
		wantAttempts := 2
		if tk.Index == 0 {
			wantAttempts = 1
		}
		if tk.Attempts != wantAttempts || tk.Failures != 0 || tk.Worker != "w1" {
			t.Fatalf("task %+v, want attempts %d, failures 0, worker w1", tk, wantAttempts)
		}
	}
}

func testCompleteRetryThenFail(t *testing.T, s store.Store) {
	ctx := context.Background()
	nj := NewJob("sleep", 3)
	nj.Job.MaxAttempts = 2
	mustCreate(t, s, nj)
	Register(t, s, "c1", "w1", "w2")
	ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 3})
	if len(ls) != 3 {
		t.Fatalf("claimed %d, want 3", len(ls))
	}
	slices.SortFunc(ls, func(a, b store.Lease) int { return a.Index - b.Index })
	c := complete(t, s, fail(ls[1], "boom"))
	wantOutcomes(t, c, store.Retried)
	tk := listTasks(t, s, nj.Job.ID, "")[1]
	if tk.State != tasks.TaskPending || tk.Failures != 1 || tk.Attempts != 1 || tk.Error != "boom" || tk.Worker != "" {
		t.Fatalf("task after a retried error: %+v", tk)
	}
	wantOutcomes(t, complete(t, s, fail(ls[1], "boom")), store.Stale)
	if j := CheckCounts(t, s, nj.Job.ID); j.State != tasks.JobRunning || j.Tasks.Pending != 1 || j.Tasks.Running != 2 {
		t.Fatalf("job after a retry: state %q counts %+v", j.State, j.Tasks)
	}

	re := claim(t, s, store.ClaimRequest{Worker: "w2", Max: 5})
	if len(re) != 1 || re[0].Index != 1 || re[0].Token != 2 {
		t.Fatalf("reclaim %+v, want task 1 with token 2", re)
	}
	before := time.Now().Add(-time.Minute)
	c = complete(t, s, fail(re[0], "boom again"))
	wantOutcomes(t, c, store.Failed)
	if len(c.Done) != 0 {
		t.Fatalf("done %v for a failed job", c.Done)
	}
	j := CheckCounts(t, s, nj.Job.ID)
	if j.State != tasks.JobFailed || j.Error != "task 1: boom again" || j.FinishedAt == nil || j.FinishedAt.Before(before) {
		t.Fatalf("job after its task failed: state %q error %q finished_at %v", j.State, j.Error, j.FinishedAt)
	}
	want := tasks.Counts{Total: 3, Pending: 2, Failed: 1}
	if j.Tasks != want {
		t.Fatalf("counts %+v, want %+v (the other leases are void)", j.Tasks, want)
	}
	failed := listTasks(t, s, nj.Job.ID, tasks.TaskFailed)
	if len(failed) != 1 || failed[0].Index != 1 || failed[0].Failures != 2 || failed[0].Attempts != 2 ||
		failed[0].Error != "boom again" || failed[0].Worker != "" {
		t.Fatalf("failed tasks %+v", failed)
	}
	wantOutcomes(t, complete(t, s, ok(ls[0]), fail(ls[2], "x"), ok(re[0])), store.Stale, store.Stale, store.Stale)
	if got := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 5}); len(got) != 0 {
		t.Fatalf("claimed %d tasks of a failed job", len(got))
	}
	if n, err := s.ReleaseWorker(ctx, "w1"); err != nil || n != 0 {
		t.Fatalf("release after the job failed: %d, %v; want 0", n, err)
	}
	_, err := s.CancelJob(ctx, nj.Job.ID)
	wantErrIs(t, "cancel a failed job", err, tasks.ErrConflict)
	CheckCounts(t, s, nj.Job.ID)
}

func testCompleteFailVoidsLeases(t *testing.T, s store.Store) {
	doomed, other := NewJob("sleep", 4), NewJob("sleep", 2)
	doomed.Job.MaxAttempts = 1
	doomed.Job.Priority = 1
	mustCreate(t, s, doomed)
	mustCreate(t, s, other)
	Register(t, s, "c1", "w1", "w2")
	ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 2}, store.ClaimRequest{Worker: "w2", Max: 3})
	var mine, theirs []store.Lease
	for _, l := range ls {
		if l.JobID == doomed.Job.ID {
			mine = append(mine, l)
		} else {
			theirs = append(theirs, l)
		}
	}
	if len(mine) != 4 || len(theirs) != 1 {
		t.Fatalf("claimed %d of the priority-1 job and %d of the other, want 4 and 1", len(mine), len(theirs))
	}
	// One call: the first error fails the job; its other results are
	// stale; the other job's result still counts.
	c := complete(t, s, fail(mine[0], "kaput"), ok(mine[1]), ok(theirs[0]), fail(mine[2], "later"))
	wantOutcomes(t, c, store.Failed, store.Stale, store.Accepted, store.Stale)
	j := CheckCounts(t, s, doomed.Job.ID)
	want := tasks.Counts{Total: 4, Pending: 3, Failed: 1}
	if j.State != tasks.JobFailed || j.Tasks != want || j.Error != "task "+strconv.Itoa(mine[0].Index)+": kaput" {
		t.Fatalf("failed job: state %q counts %+v error %q", j.State, j.Tasks, j.Error)
	}
	// w2's leases of the failed job are void and its other one succeeded.
	if n, err := s.ReleaseWorker(context.Background(), "w2"); err != nil || n != 0 {
		t.Fatalf("release w2: %d, %v; want 0", n, err)
	}
	CheckCounts(t, s, other.Job.ID)
}

func testCompleteManyJobs(t *testing.T, s store.Store) {
	a, b := NewJob("sleep", 3), NewJob("sleep", 2)
	mustCreate(t, s, a)
	mustCreate(t, s, b)
	Register(t, s, "c1", "w1", "w2", "w3")
	ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 2}, store.ClaimRequest{Worker: "w2", Max: 2},
		store.ClaimRequest{Worker: "w3", Max: 2})
	if len(ls) != 5 {
		t.Fatalf("claimed %d, want 5", len(ls))
	}
	rs := make([]store.Result, 0, 7)
	for _, l := range ls {
		rs = append(rs, ok(l))
	}
	rs = append(rs, ok(ls[0]), ok(ls[4]))
	c := complete(t, s, rs...)
	wantOutcomes(t, c, store.Accepted, store.Accepted, store.Accepted, store.Accepted, store.Accepted, store.Duplicate, store.Duplicate)
	done := slices.Clone(c.Done)
	slices.Sort(done)
	want := []string{a.Job.ID, b.Job.ID}
	slices.Sort(want)
	if !slices.Equal(done, want) {
		t.Fatalf("done %v, want each of %v once", c.Done, want)
	}
	if c = complete(t, s, rs...); len(c.Done) != 0 {
		t.Fatalf("done %v on repeated results, want none", c.Done)
	}
	for _, o := range c.Outcomes {
		if o != store.Duplicate {
			t.Fatalf("outcomes %v on repeated results, want all duplicate", c.Outcomes)
		}
	}
	CheckCounts(t, s, a.Job.ID)
	CheckCounts(t, s, b.Job.ID)
}

func testReleaseWorker(t *testing.T, s store.Store) {
	ctx := context.Background()
	nj := NewJob("sleep", 6)
	mustCreate(t, s, nj)
	Register(t, s, "c1", "w1", "w2")
	ls := claim(t, s, store.ClaimRequest{Worker: "w1", Max: 3}, store.ClaimRequest{Worker: "w2", Max: 2})
	if len(ls) != 5 {
		t.Fatalf("claimed %d, want 5", len(ls))
	}
	n, err := s.ReleaseWorker(ctx, "w1")
	if err != nil || n != 3 {
		t.Fatalf("release w1: %d, %v; want 3", n, err)
	}
	w1 := leasedIndexes(filterWorker(ls, "w1"), nj.Job.ID)
	for _, tk := range listTasks(t, s, nj.Job.ID, "") {
		switch {
		case slices.Contains(w1, tk.Index):
			if tk.State != tasks.TaskPending || tk.Worker != "" || tk.Attempts != 1 || tk.Failures != 0 {
				t.Fatalf("released task %+v, want pending, no worker, attempts 1, failures 0", tk)
			}
		case tk.State == tasks.TaskRunning:
			if tk.Worker != "w2" {
				t.Fatalf("running task %+v, want w2's", tk)
			}
		}
	}
	if j := CheckCounts(t, s, nj.Job.ID); j.Tasks.Running != 2 || j.Tasks.Pending != 4 || j.State != tasks.JobRunning {
		t.Fatalf("job after release: state %q counts %+v", j.State, j.Tasks)
	}
	if n, err := s.ReleaseWorker(ctx, "w1"); err != nil || n != 0 {
		t.Fatalf("second release: %d, %v; want 0", n, err)
	}
	if n, err := s.ReleaseWorker(ctx, "nobody"); err != nil || n != 0 {
		t.Fatalf("release of an unknown worker: %d, %v; want 0", n, err)
	}
	// w2's leases are still valid.
	var rs []store.Result
	for _, l := range filterWorker(ls, "w2") {
		rs = append(rs, ok(l))
	}
	wantOutcomes(t, complete(t, s, rs...), store.Accepted, store.Accepted)
	re := claim(t, s, store.ClaimRequest{Worker: "w2", Max: 10})
	if len(re) != 4 {
		t.Fatalf("claimed %d after the release, want 4", len(re))
	}
	for _, l := range re {
		want := 1
		if slices.Contains(w1, l.Index) {
			want = 2
		}
		if l.Token != want {
			t.Fatalf("lease %+v, want token %d", l, want)
		}
	}
	CheckCounts(t, s, nj.Job.ID)
}

func filterWorker(ls []store.Lease, worker string) []store.Lease {
	var out []store.Lease
	for _, l := range ls {
		if l.Worker == worker {
			out = append(out, l)
		}
	}
	return out
}
