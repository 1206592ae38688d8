package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/tasks"
)

// RunInvariants drives fresh stores with random sequences of operations
// (create jobs, claim for several workers, complete with valid, stale,
// duplicate and error results, release workers, cancel, reap, finish,
// delete) next to a simple model of the contract, and after every step
// checks that the store agrees with the model: every task in exactly one
// state, running iff leased, each task's result accepted at most once,
// counts equal to the sum of task states. Run against each store, it
// holds them all to the same operation sequences. It is bounded by rapid's
// checks and steps (-rapid.checks, -rapid.steps); each check closes its
// store when done.
func RunInvariants(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	rapid.Check(t, func(rt *rapid.T) {
		s := newStore(t)
		defer s.Close()
		m := &model{s: s, ctx: context.Background(), base: time.Now().UTC().Truncate(time.Millisecond), salt: NewID()}
		rt.Repeat(map[string]func(*rapid.T){
			"":         m.check,
			"create":   m.create,
			"claim":    m.claim,
			"complete": m.complete,
			"release":  m.release,
			"cancel":   m.cancel,
			"reap":     m.reap,
			"finish":   m.finish,
			"delete":   m.delete,
		})
	})
}

// The workers of the model: w0 and w1 belong to coordinator "short"
// (one-minute lease, reaped by a Reap ten minutes on), w2 and w3 to
// "long" (one-hour lease, never reaped).
var (
	modelWorkers = []string{"w0", "w1", "w2", "w3"}
	modelCoord   = map[string]string{"w0": "short", "w1": "short", "w2": "long", "w3": "long"}
	modelTTL     = map[string]time.Duration{"short": time.Minute, "long": time.Hour}
)

const (
	modelMaxJobs   = 6
	modelMaxTasks  = 5
	modelKind      = "storetest"
	modelReapAhead = 10 * time.Minute
)

type mTask struct {
	state    tasks.TaskState
	attempts int
	failures int
	worker   string
	err      string
	output   string // the accepted result's output
	accepted int    // how many results were accepted; must stay ≤ 1
}

type mJob struct {
	id          string
	idem        string
	prio        int
	maxAttempts int
	state       tasks.JobState
	err         string
	inputs      []json.RawMessage
	tasks       []mTask
	deleted     bool
}

type model struct {
	s    store.Store
	ctx  context.Context
	base time.Time
	salt string // makes idempotency keys unique to one check
	jobs []*mJob
	// leases handed out so far, for valid, stale and duplicate results
	history []store.Lease
	// registered workers per coordinator, since its last reap
	registered map[string]map[string]bool
	seq        int
}

func (m *model) job(id string) *mJob {
	for _, j := range m.jobs {
		if j.id == id && !j.deleted {
			return j
		}
	}
	return nil
}

func (m *model) live() []*mJob {
	var out []*mJob
	for _, j := range m.jobs {
		if !j.deleted {
			out = append(out, j)
		}
	}
	return out
}

func (j *mJob) counts() tasks.Counts {
	c := tasks.Counts{Total: len(j.tasks)}
	for _, t := range j.tasks {
		switch t.state {
		case tasks.TaskPending:
			c.Pending++
		case tasks.TaskRunning:
			c.Running++
		case tasks.TaskSucceeded:
			c.Succeeded++
		case tasks.TaskFailed:
			c.Failed++
		}
	}
	return c
}

// end moves a job to a final state, voiding its leases.
func (j *mJob) end(state tasks.JobState, err string) {
	j.state, j.err = state, err
	for i := range j.tasks {
		if j.tasks[i].state == tasks.TaskRunning {
			j.tasks[i].state = tasks.TaskPending
			j.tasks[i].worker = ""
		}
	}
}

func (m *model) create(t *rapid.T) {
	if len(m.live()) >= modelMaxJobs {
		t.Skip("enough jobs")
	}
	n := rapid.IntRange(1, modelMaxTasks).Draw(t, "tasks")
	prio := rapid.IntRange(0, 2).Draw(t, "priority")
	maxAttempts := rapid.IntRange(1, 3).Draw(t, "max_attempts")
	idem := rapid.SampledFrom([]string{"", "", "k1", "k2"}).Draw(t, "idempotency_key")
	m.seq++
	nj := NewJob(modelKind, n)
	nj.Job.ID = fmt.Sprintf("job%03d-%s", m.seq, NewID())
	nj.Job.Priority = prio
	nj.Job.MaxAttempts = maxAttempts
	nj.Job.CreatedAt = m.base.Add(time.Duration(m.seq) * time.Millisecond)
	for i := range nj.Inputs {
		nj.Inputs[i] = json.RawMessage(fmt.Sprintf(`{"job":%d,"i":%d}`, m.seq, i))
	}
	if idem != "" {
		nj.IdempotencyKey = idem + "-" + m.salt
	}
	got, created, err := m.s.CreateJob(m.ctx, nj)
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	var first *mJob
	for _, j := range m.live() {
		if nj.IdempotencyKey != "" && j.idem == nj.IdempotencyKey {
			first = j
		}
	}
	if first != nil {
		if created || got.ID != first.id {
			t.Fatalf("create with the used key %q: created=%v id %s, want the first job %s", nj.IdempotencyKey, created, got.ID, first.id)
		}
		return
	}
	if !created || got.ID != nj.Job.ID {
		t.Fatalf("create: created=%v id %s, want a new job %s", created, got.ID, nj.Job.ID)
	}
	j := &mJob{id: nj.Job.ID, idem: nj.IdempotencyKey, prio: prio, maxAttempts: maxAttempts,
		state: tasks.JobQueued, inputs: nj.Inputs, tasks: make([]mTask, n)}
	for i := range j.tasks {
		j.tasks[i].state = tasks.TaskPending
	}
	m.jobs = append(m.jobs, j)
}

func (m *model) register(t *rapid.T, worker string) {
	coord := modelCoord[worker]
	info := store.WorkerInfo{ID: worker, Name: worker, Capacity: 4, ConnectedAt: m.base, LastSeen: m.base}
	if err := m.s.RenewWorkers(m.ctx, coord, []store.WorkerInfo{info}, modelTTL[coord]); err != nil {
		t.Fatalf("renew workers: %v", err)
	}
	if m.registered == nil {
		m.registered = map[string]map[string]bool{}
	}
	if m.registered[coord] == nil {
		m.registered[coord] = map[string]bool{}
	}
	m.registered[coord][worker] = true
}

func (m *model) claim(t *rapid.T) {
	nreq := rapid.IntRange(1, 3).Draw(t, "requests")
	reqs := make([]store.ClaimRequest, nreq)
	maxPer := map[string]int{}
	want := 0
	for i := range reqs {
		w := rapid.SampledFrom(modelWorkers).Draw(t, "worker")
		reqs[i] = store.ClaimRequest{Worker: w, Max: rapid.IntRange(0, 4).Draw(t, "max")}
		maxPer[w] += reqs[i].Max
		want += reqs[i].Max
		m.register(t, w)
	}
	claimable := 0
	for _, j := range m.live() {
		if !j.state.Final() {
			claimable += j.counts().Pending
		}
	}
	ls, err := m.s.Claim(m.ctx, reqs)
	if err != nil {
		t.Fatalf("claim %+v: %v", reqs, err)
	}
	if len(ls) != min(want, claimable) {
		t.Fatalf("claim %+v got %d leases with %d claimable tasks, want %d", reqs, len(ls), claimable, min(want, claimable))
	}
	gotPer := map[string]int{}
	for _, l := range ls {
		j := m.job(l.JobID)
		if j == nil || l.Index < 0 || l.Index >= len(j.tasks) {
			t.Fatalf("lease of an unknown task %+v", l)
		}
		if j.state.Final() {
			t.Fatalf("lease %+v of a %s job", l, j.state)
		}
		tk := &j.tasks[l.Index]
		if tk.state != tasks.TaskPending {
			t.Fatalf("lease %+v of a task that is %s", l, tk.state)
		}
		if l.Token != tk.attempts+1 || l.Kind != modelKind || !jsonEqual(l.Input, j.inputs[l.Index]) {
			t.Fatalf("lease %+v, want token %d kind %s input %s", l, tk.attempts+1, modelKind, j.inputs[l.Index])
		}
		gotPer[l.Worker]++
		if gotPer[l.Worker] > maxPer[l.Worker] {
			t.Fatalf("worker %s got %d leases, asked for %d", l.Worker, gotPer[l.Worker], maxPer[l.Worker])
		}
		tk.state = tasks.TaskRunning
		tk.attempts++
		tk.worker = l.Worker
		if j.state == tasks.JobQueued {
			j.state = tasks.JobRunning
		}
		m.history = append(m.history, l)
	}
	// Priority: nothing was leased from a job while a job of higher
	// priority kept pending tasks.
	top := -1
	for _, j := range m.live() {
		if !j.state.Final() && j.counts().Pending > 0 {
			top = max(top, j.prio)
		}
	}
	for _, l := range ls {
		if j := m.job(l.JobID); j.prio < top {
			t.Fatalf("leased task %d of a priority-%d job while a priority-%d job has pending tasks", l.Index, j.prio, top)
		}
	}
}

func (m *model) complete(t *rapid.T) {
	if len(m.history) == 0 {
		t.Skip("no leases yet")
	}
	n := rapid.IntRange(1, 4).Draw(t, "results")
	rs := make([]store.Result, n)
	for i := range rs {
		l := m.history[rapid.IntRange(0, len(m.history)-1).Draw(t, "lease")]
		r := store.Result{Worker: l.Worker, JobID: l.JobID, Index: l.Index, Token: l.Token}
		switch rapid.SampledFrom([]string{"ok", "ok", "ok", "error", "other_worker", "other_token"}).Draw(t, "result") {
		case "error":
			r.Error = fmt.Sprintf("boom %d", len(m.history))
		case "other_worker":
			r.Worker = modelWorkers[(slices.Index(modelWorkers, l.Worker)+1)%len(modelWorkers)]
		case "other_token":
			r.Token += rapid.SampledFrom([]int{-1, 1}).Draw(t, "token_delta")
		}
		if r.Error == "" {
			r.Output = json.RawMessage(fmt.Sprintf(`{"w":%q,"t":%d}`, r.Worker, r.Token))
		}
		rs[i] = r
	}
	var wantOut []store.Outcome
	var wantDone []string
	for _, r := range rs {
		wantOut = append(wantOut, m.apply(r, &wantDone))
	}
	c, err := m.s.Complete(m.ctx, rs)
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	if !slices.Equal(c.Outcomes, wantOut) {
		t.Fatalf("complete %+v: outcomes %v, want %v", rs, c.Outcomes, wantOut)
	}
	got := slices.Clone(c.Done)
	slices.Sort(got)
	slices.Sort(wantDone)
	if !slices.Equal(got, wantDone) {
		t.Fatalf("complete %+v: done %v, want %v", rs, c.Done, wantDone)
	}
}

// apply is the contract's rule for one result (see the package comment).
func (m *model) apply(r store.Result, done *[]string) store.Outcome {
	j := m.job(r.JobID)
	if j == nil || r.Index < 0 || r.Index >= len(j.tasks) {
		return store.Stale
	}
	tk := &j.tasks[r.Index]
	if tk.state == tasks.TaskSucceeded {
		return store.Duplicate
	}
	if j.state.Final() || tk.state != tasks.TaskRunning || tk.worker != r.Worker || tk.attempts != r.Token {
		return store.Stale
	}
	if r.Error == "" {
		tk.state = tasks.TaskSucceeded
		tk.output = string(r.Output)
		tk.accepted++
		if j.counts().Succeeded == len(j.tasks) {
			*done = append(*done, j.id)
		}
		return store.Accepted
	}
	tk.failures++
	tk.err = r.Error
	tk.worker = ""
	if tk.failures >= j.maxAttempts {
		tk.state = tasks.TaskFailed
		j.end(tasks.JobFailed, fmt.Sprintf("task %d: %s", r.Index, r.Error))
		return store.Failed
	}
	tk.state = tasks.TaskPending
	return store.Retried
}

// releaseModel puts the worker's running tasks back to pending.
func (m *model) releaseModel(worker string) int {
	n := 0
	for _, j := range m.live() {
		for i := range j.tasks {
			if tk := &j.tasks[i]; tk.state == tasks.TaskRunning && tk.worker == worker {
				tk.state = tasks.TaskPending
				tk.worker = ""
				n++
			}
		}
	}
	return n
}

func (m *model) release(t *rapid.T) {
	w := rapid.SampledFrom(modelWorkers).Draw(t, "worker")
	want := m.releaseModel(w)
	n, err := m.s.ReleaseWorker(m.ctx, w)
	if err != nil || n != want {
		t.Fatalf("release %s: %d, %v; want %d", w, n, err, want)
	}
}

func (m *model) pickJob(t *rapid.T) *mJob {
	if len(m.jobs) == 0 {
		t.Skip("no jobs yet")
	}
	return m.jobs[rapid.IntRange(0, len(m.jobs)-1).Draw(t, "job")]
}

func (m *model) cancel(t *rapid.T) {
	j := m.pickJob(t)
	got, err := m.s.CancelJob(m.ctx, j.id)
	switch {
	case j.deleted:
		if !errors.Is(err, tasks.ErrNotFound) {
			t.Fatalf("cancel a deleted job: %v, want not found", err)
		}
	case j.state.Final():
		if !errors.Is(err, tasks.ErrConflict) {
			t.Fatalf("cancel a %s job: %v, want a conflict", j.state, err)
		}
	default:
		if err != nil || got.State != tasks.JobCancelled {
			t.Fatalf("cancel: state %q, %v", got.State, err)
		}
		j.end(tasks.JobCancelled, "")
	}
}

func (m *model) reap(t *rapid.T) {
	want := 0
	for w := range m.registered["short"] {
		want += m.releaseModel(w)
	}
	n, err := m.s.Reap(m.ctx, time.Now().Add(modelReapAhead))
	if err != nil || n != want {
		t.Fatalf("reap: %d, %v; want %d", n, err, want)
	}
	delete(m.registered, "short")
}

func (m *model) finish(t *rapid.T) {
	j := m.pickJob(t)
	errMsg := rapid.SampledFrom([]string{"", "", "reduce failed"}).Draw(t, "reduce_error")
	got, err := m.s.FinishJob(m.ctx, j.id, json.RawMessage(`{"done":true}`), errMsg)
	switch {
	case j.deleted:
		if !errors.Is(err, tasks.ErrNotFound) {
			t.Fatalf("finish a deleted job: %v, want not found", err)
		}
	case j.state.Final():
		if err != nil || got.State != j.state {
			t.Fatalf("finish a %s job: state %q, %v; want a no-op", j.state, got.State, err)
		}
	case j.counts().Succeeded != len(j.tasks):
		if !errors.Is(err, tasks.ErrConflict) {
			t.Fatalf("finish a job with unfinished tasks: %v, want a conflict", err)
		}
	default:
		want := tasks.JobSucceeded
		if errMsg != "" {
			want = tasks.JobFailed
		}
		if err != nil || got.State != want {
			t.Fatalf("finish: state %q, %v; want %s", got.State, err, want)
		}
		j.end(want, errMsg)
	}
}

func (m *model) delete(t *rapid.T) {
	want := 0
	for _, j := range m.live() {
		if j.state.Final() {
			j.deleted = true
			want++
		}
	}
	n, err := m.s.DeleteFinishedBefore(m.ctx, time.Now().Add(time.Hour))
	if err != nil || n != want {
		t.Fatalf("delete finished jobs: %d, %v; want %d", n, err, want)
	}
}

// check compares the store with the model.
func (m *model) check(t *rapid.T) {
	wantCounts := map[tasks.JobState]int{}
	var wantUnfinished []string
	for _, j := range m.jobs {
		if j.deleted {
			if _, err := m.s.GetJob(m.ctx, j.id); !errors.Is(err, tasks.ErrNotFound) {
				t.Fatalf("deleted job %s: %v, want not found", j.id, err)
			}
			continue
		}
		wantCounts[j.state]++
		c := j.counts()
		if j.state == tasks.JobRunning && c.Succeeded == c.Total {
			wantUnfinished = append(wantUnfinished, j.id)
		}
		got, err := m.s.GetJob(m.ctx, j.id)
		if err != nil {
			t.Fatalf("get job %s: %v", j.id, err)
		}
		if got.State != j.state || got.Tasks != c || got.Error != j.err {
			t.Fatalf("job %s: state %q counts %+v error %q; model: %q %+v %q", j.id, got.State, got.Tasks, got.Error, j.state, c, j.err)
		}
		if (got.StartedAt != nil) != (j.state != tasks.JobQueued && anyClaimed(j)) {
			t.Fatalf("job %s (%s): started_at %v", j.id, j.state, got.StartedAt)
		}
		if (got.FinishedAt != nil) != j.state.Final() {
			t.Fatalf("job %s (%s): finished_at %v", j.id, j.state, got.FinishedAt)
		}
		ts, err := m.s.ListTasks(m.ctx, j.id, "")
		if err != nil {
			t.Fatalf("list tasks of %s: %v", j.id, err)
		}
		if len(ts) != len(j.tasks) {
			t.Fatalf("job %s: %d tasks, want %d", j.id, len(ts), len(j.tasks))
		}
		for i, tk := range ts {
			mt := j.tasks[i]
			if tk.Index != i || tk.State != mt.state || tk.Attempts != mt.attempts || tk.Failures != mt.failures ||
				tk.Worker != mt.worker || tk.Error != mt.err {
				t.Fatalf("job %s task %d: %+v; model %+v", j.id, i, tk, mt)
			}
			if (tk.State == tasks.TaskRunning) != (tk.Worker != "" && tk.State != tasks.TaskSucceeded) {
				t.Fatalf("job %s task %d: state %s with worker %q", j.id, i, tk.State, tk.Worker)
			}
			if mt.accepted > 1 {
				t.Fatalf("job %s task %d: %d results accepted", j.id, i, mt.accepted)
			}
		}
		outs, err := m.s.TaskOutputs(m.ctx, j.id)
		if err != nil {
			t.Fatalf("task outputs of %s: %v", j.id, err)
		}
		for i, o := range outs {
			mt := j.tasks[i]
			if mt.state == tasks.TaskSucceeded {
				if !jsonEqual(o, json.RawMessage(mt.output)) {
					t.Fatalf("job %s task %d: output %s, want the accepted %s", j.id, i, o, mt.output)
				}
			} else if o != nil {
				t.Fatalf("job %s task %d (%s): output %s, want none", j.id, i, mt.state, o)
			}
		}
	}
	counts, err := m.s.CountJobs(m.ctx)
	if err != nil {
		t.Fatalf("count jobs: %v", err)
	}
	for _, st := range []tasks.JobState{tasks.JobQueued, tasks.JobRunning, tasks.JobSucceeded, tasks.JobFailed, tasks.JobCancelled} {
		if counts[st] != wantCounts[st] {
			t.Fatalf("count jobs %v, want %v", counts, wantCounts)
		}
	}
	un, err := m.s.UnfinishedJobs(m.ctx)
	if err != nil {
		t.Fatalf("unfinished jobs: %v", err)
	}
	slices.Sort(un)
	slices.Sort(wantUnfinished)
	if !slices.Equal(un, wantUnfinished) {
		t.Fatalf("unfinished jobs %v, want %v", un, wantUnfinished)
	}
}

func anyClaimed(j *mJob) bool {
	for _, t := range j.tasks {
		if t.attempts > 0 {
			return true
		}
	}
	return false
}
