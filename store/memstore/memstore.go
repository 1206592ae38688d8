// Package memstore is the in-memory store.Store: the default when no Redis
// is configured, so that one `tabgrid serve` runs with nothing else. It is
// not durable: everything is lost when the process exits, and it cannot be
// shared by several coordinators.
//
// All state sits behind one mutex. No call does I/O or blocks under it, so
// every call is short; the layout is chosen for the hot path (claim and
// complete in batches): tasks live in a slice per job indexed by task
// index, each job has a queue of its pending task indexes, jobs with work
// sit in rings per priority level (round robin among equal priority), and
// each worker has a list of its leases so that a release costs O(leases).
//
// Slices handed to the store (task inputs, outputs, results) are kept as
// they are, and slices it returns are shared: callers must not modify
// either.
//
// It imports only store and tasks.
package memstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/tasks"
)

var _ store.Store = (*Store)(nil)

// errClosed is returned by every call after Close.
var errClosed = fmt.Errorf("memstore closed: %w", tasks.ErrUnavailable)

const (
	defaultListLimit   = 50
	defaultEventBuffer = 256
)

// Option configures a Store.
type Option func(*Store)

// WithEventBuffer sets how many events may wait for each subscriber before
// further ones are dropped for it (default 256).
func WithEventBuffer(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.eventBuffer = n
		}
	}
}

// Store keeps every job, task, lease and worker in memory.
type Store struct {
	eventBuffer int

	mu      sync.Mutex
	closed  bool
	jobs    map[string]*job
	idem    map[string]*job
	levels  []*level       // levels with claimable work, highest priority first
	byPrio  map[int]*level // the same levels by priority
	leases  map[string]*leaseSet
	coords  map[string]*coordinator
	subs    map[*subscriber]struct{}
	dropped int64 // events dropped for slow subscribers
}

// New returns an empty store.
func New(opts ...Option) (*Store, error) {
	s := &Store{
		eventBuffer: defaultEventBuffer,
		jobs:        make(map[string]*job),
		idem:        make(map[string]*job),
		byPrio:      make(map[int]*level),
		leases:      make(map[string]*leaseSet),
		coords:      make(map[string]*coordinator),
		subs:        make(map[*subscriber]struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Task states, as small integers for the hot path.
const (
	statePending uint8 = iota
	stateRunning
	stateSucceeded
	stateFailed
)

var stateNames = [...]tasks.TaskState{tasks.TaskPending, tasks.TaskRunning, tasks.TaskSucceeded, tasks.TaskFailed}

type task struct {
	state    uint8
	attempts int32
	failures int32
	lpos     int32     // position in holder.refs while running
	holder   *leaseSet // the lease's worker while running
	worker   string    // while running, and the winner once succeeded
	err      string
	input    json.RawMessage
	output   json.RawMessage
}

type job struct {
	meta   tasks.Job // everything but the counts, progress and result
	counts tasks.Counts
	result json.RawMessage
	idem   string
	tasks  []task

	// pending is a FIFO of task indexes: pending[head:] are waiting.
	pending []int32
	head    int

	// Links in its level's ring while it has claimable work.
	lvl        *level
	prev, next *job
}

// level is a ring of the jobs of one priority that have pending tasks;
// cur is the next to serve.
type level struct {
	prio int
	cur  *job
	n    int
}

type leaseRef struct {
	j *job
	i int32
}

// leaseSet is one worker's live leases, in no order.
type leaseSet struct {
	worker string
	refs   []leaseRef
}

type coordinator struct {
	expires time.Time
	workers map[string]store.WorkerInfo
}

type subscriber struct {
	ch   chan store.Event
	stop func() bool
}

// Ping reports whether the store is open.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	return nil
}

// Close ends every subscription and makes later calls fail. It is safe to
// call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for sub := range s.subs {
		sub.stop()
		close(sub.ch)
	}
	clear(s.subs)
	return nil
}

// ---- jobs ----

// CreateJob stores the job and its tasks.
func (s *Store) CreateJob(ctx context.Context, nj store.NewJob) (tasks.Job, bool, error) {
	if nj.Job.ID == "" {
		return tasks.Job{}, false, fmt.Errorf("create job: %w: empty id", tasks.ErrInvalidInput)
	}
	if len(nj.Inputs) == 0 {
		return tasks.Job{}, false, fmt.Errorf("create job %s: %w: no tasks", nj.Job.ID, tasks.ErrInvalidInput)
	}
	if nj.Job.MaxAttempts < 1 {
		return tasks.Job{}, false, fmt.Errorf("create job %s: %w: max_attempts %d", nj.Job.ID, tasks.ErrInvalidInput, nj.Job.MaxAttempts)
	}
	// Build outside the lock: it is the only part that grows with the job.
	j := &job{meta: nj.Job, idem: nj.IdempotencyKey}
	j.meta.State = tasks.JobQueued
	j.meta.StartedAt, j.meta.FinishedAt = nil, nil
	j.meta.Error, j.meta.Result = "", nil
	j.meta.Tasks, j.meta.Progress = tasks.Counts{}, 0
	n := len(nj.Inputs)
	j.tasks = make([]task, n)
	j.pending = make([]int32, n)
	for i, in := range nj.Inputs {
		j.tasks[i].input = in
		j.pending[i] = int32(i)
	}
	j.counts = tasks.Counts{Total: n, Pending: n}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return tasks.Job{}, false, errClosed
	}
	if j.idem != "" {
		if first, ok := s.idem[j.idem]; ok {
			return first.snapshot(), false, nil
		}
	}
	if _, ok := s.jobs[j.meta.ID]; ok {
		return tasks.Job{}, false, fmt.Errorf("create job %s: %w: the id is taken", j.meta.ID, tasks.ErrConflict)
	}
	s.jobs[j.meta.ID] = j
	if j.idem != "" {
		s.idem[j.idem] = j
	}
	s.makeReady(j)
	return j.snapshot(), true, nil
}

// snapshot is the job as callers see it, sharing nothing mutable.
func (j *job) snapshot() tasks.Job {
	out := j.meta
	out.Tasks = j.counts
	if j.meta.StartedAt != nil {
		t := *j.meta.StartedAt
		out.StartedAt = &t
	}
	if j.meta.FinishedAt != nil {
		t := *j.meta.FinishedAt
		out.FinishedAt = &t
	}
	out.SetProgress()
	return out
}

// lookup returns the job or an error wrapping ErrNotFound. Callers hold mu.
func (s *Store) lookup(id string) (*job, error) {
	if s.closed {
		return nil, errClosed
	}
	j, ok := s.jobs[id]
	if !ok {
		return nil, fmt.Errorf("job %s: %w", id, tasks.ErrNotFound)
	}
	return j, nil
}

// GetJob returns the job with its counts.
func (s *Store) GetJob(ctx context.Context, id string) (tasks.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.lookup(id)
	if err != nil {
		return tasks.Job{}, err
	}
	return j.snapshot(), nil
}

// ListJobs returns jobs newest first.
func (s *Store) ListJobs(ctx context.Context, f store.JobFilter) ([]tasks.Job, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	var sel []*job
	for _, j := range s.jobs {
		if f.State == "" || j.meta.State == f.State {
			sel = append(sel, j)
		}
	}
	slices.SortFunc(sel, func(a, b *job) int {
		if c := b.meta.CreatedAt.Compare(a.meta.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.meta.ID, a.meta.ID)
	})
	if len(sel) > limit {
		sel = sel[:limit]
	}
	out := make([]tasks.Job, len(sel))
	for i, j := range sel {
		out[i] = j.snapshot()
	}
	return out, nil
}

// ListTasks returns the job's tasks in index order, filtered by state.
func (s *Store) ListTasks(ctx context.Context, jobID string, state tasks.TaskState) ([]tasks.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.lookup(jobID)
	if err != nil {
		return nil, err
	}
	var out []tasks.Task
	for i := range j.tasks {
		t := &j.tasks[i]
		st := stateNames[t.state]
		if state != "" && st != state {
			continue
		}
		out = append(out, tasks.Task{
			JobID:    jobID,
			Index:    i,
			State:    st,
			Attempts: int(t.attempts),
			Failures: int(t.failures),
			Worker:   t.worker,
			Error:    t.err,
			Input:    t.input,
			Output:   t.output,
		})
	}
	return out, nil
}

// TaskOutputs returns every task's accepted output in task order.
func (s *Store) TaskOutputs(ctx context.Context, jobID string) ([]json.RawMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.lookup(jobID)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, len(j.tasks))
	for i := range j.tasks {
		if j.tasks[i].state == stateSucceeded {
			out[i] = j.tasks[i].output
		}
	}
	return out, nil
}

// FinishJob stores the reduced result (or the reducer's error) of a job
// whose tasks all succeeded.
func (s *Store) FinishJob(ctx context.Context, jobID string, result json.RawMessage, errMsg string) (tasks.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.lookup(jobID)
	if err != nil {
		return tasks.Job{}, err
	}
	if j.meta.State.Final() {
		return j.snapshot(), nil
	}
	if j.counts.Succeeded != j.counts.Total {
		return tasks.Job{}, fmt.Errorf("finish job %s: %w: %d of %d tasks succeeded",
			jobID, tasks.ErrConflict, j.counts.Succeeded, j.counts.Total)
	}
	if errMsg != "" {
		s.endJob(j, tasks.JobFailed, errMsg)
	} else {
		j.result = result
		s.endJob(j, tasks.JobSucceeded, "")
	}
	return j.snapshot(), nil
}

// JobResult returns a succeeded job's result.
func (s *Store) JobResult(ctx context.Context, jobID string) (json.RawMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.lookup(jobID)
	if err != nil {
		return nil, err
	}
	if j.meta.State != tasks.JobSucceeded {
		return nil, fmt.Errorf("job %s is %s: %w", jobID, j.meta.State, tasks.ErrConflict)
	}
	return j.result, nil
}

// CancelJob cancels a job that is not final and voids its leases.
func (s *Store) CancelJob(ctx context.Context, jobID string) (tasks.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.lookup(jobID)
	if err != nil {
		return tasks.Job{}, err
	}
	if j.meta.State.Final() {
		return tasks.Job{}, fmt.Errorf("cancel job %s: it is %s: %w", jobID, j.meta.State, tasks.ErrConflict)
	}
	s.endJob(j, tasks.JobCancelled, "")
	return j.snapshot(), nil
}

// endJob moves a job to a final state: it leaves the ready rings and its
// running tasks go back to pending with their leases void.
func (s *Store) endJob(j *job, state tasks.JobState, errMsg string) {
	now := time.Now().UTC()
	j.meta.State = state
	j.meta.FinishedAt = &now
	j.meta.Error = errMsg
	s.unready(j)
	for i := range j.tasks {
		t := &j.tasks[i]
		if t.state != stateRunning {
			continue
		}
		t.holder.remove(t, j)
		t.state = statePending
		t.worker = ""
		j.counts.Running--
		j.counts.Pending++
	}
}

// CountJobs counts retained jobs by state.
func (s *Store) CountJobs(ctx context.Context) (map[tasks.JobState]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	out := make(map[tasks.JobState]int)
	for _, j := range s.jobs {
		out[j.meta.State]++
	}
	return out, nil
}

// UnfinishedJobs lists running jobs whose every task succeeded.
func (s *Store) UnfinishedJobs(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	var ids []string
	for id, j := range s.jobs {
		if j.meta.State == tasks.JobRunning && j.counts.Succeeded == j.counts.Total {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// DeleteFinishedBefore forgets final jobs that ended before t.
func (s *Store) DeleteFinishedBefore(ctx context.Context, t time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errClosed
	}
	n := 0
	for id, j := range s.jobs {
		if j.meta.State.Final() && j.meta.FinishedAt != nil && j.meta.FinishedAt.Before(t) {
			delete(s.jobs, id)
			if j.idem != "" && s.idem[j.idem] == j {
				delete(s.idem, j.idem)
			}
			n++
		}
	}
	return n, nil
}

// ---- dispatch ----

// makeReady puts a job with pending tasks into its level's ring, at the
// end of the round. Callers hold mu.
func (s *Store) makeReady(j *job) {
	if j.lvl != nil || j.meta.State.Final() || j.head == len(j.pending) {
		return
	}
	lv, ok := s.byPrio[j.meta.Priority]
	if !ok {
		lv = &level{prio: j.meta.Priority}
		s.byPrio[lv.prio] = lv
		i, _ := slices.BinarySearchFunc(s.levels, lv.prio, func(l *level, p int) int { return p - l.prio })
		s.levels = slices.Insert(s.levels, i, lv)
	}
	j.lvl = lv
	if lv.cur == nil {
		j.prev, j.next = j, j
		lv.cur = j
	} else {
		// Just before cur: served after every job already waiting.
		last := lv.cur.prev
		j.prev, j.next = last, lv.cur
		last.next = j
		lv.cur.prev = j
	}
	lv.n++
}

// unready takes a job out of its ring, dropping the level when it empties.
func (s *Store) unready(j *job) {
	lv := j.lvl
	if lv == nil {
		return
	}
	j.lvl = nil
	lv.n--
	if lv.n == 0 {
		lv.cur = nil
		delete(s.byPrio, lv.prio)
		if i := slices.Index(s.levels, lv); i >= 0 {
			s.levels = slices.Delete(s.levels, i, i+1)
		}
	} else {
		if lv.cur == j {
			lv.cur = j.next
		}
		j.prev.next = j.next
		j.next.prev = j.prev
	}
	j.prev, j.next = nil, nil
}

// pushPending queues a task that became pending again.
func (s *Store) pushPending(j *job, i int32) {
	if j.head > 0 && j.head == len(j.pending) {
		j.pending, j.head = j.pending[:0], 0
	}
	j.pending = append(j.pending, i)
	s.makeReady(j)
}

func (ls *leaseSet) add(t *task, j *job, i int32) {
	t.holder = ls
	t.lpos = int32(len(ls.refs))
	ls.refs = append(ls.refs, leaseRef{j: j, i: i})
}

// remove drops t's lease from the set by moving the last lease into its
// place.
func (ls *leaseSet) remove(t *task, j *job) {
	last := len(ls.refs) - 1
	pos := t.lpos
	if int(pos) != last {
		moved := ls.refs[last]
		ls.refs[pos] = moved
		moved.j.tasks[moved.i].lpos = pos
	}
	ls.refs[last] = leaseRef{}
	ls.refs = ls.refs[:last]
	t.holder = nil
	t.lpos = -1
}

// Claim leases pending tasks: the highest priority level first, and
// within it one task per job in turn.
func (s *Store) Claim(ctx context.Context, reqs []store.ClaimRequest) ([]store.Lease, error) {
	want := 0
	for _, r := range reqs {
		if r.Max > 0 {
			want += r.Max
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if want == 0 || len(s.levels) == 0 {
		return nil, nil
	}
	out := make([]store.Lease, 0, min(want, 1024))
	var now *time.Time
	for _, r := range reqs {
		if r.Max <= 0 {
			continue
		}
		ls := s.leases[r.Worker]
		if ls == nil {
			ls = &leaseSet{worker: r.Worker}
			s.leases[r.Worker] = ls
		}
		for range r.Max {
			if len(s.levels) == 0 {
				return out, nil
			}
			lv := s.levels[0]
			j := lv.cur
			idx := j.pending[j.head]
			j.head++
			t := &j.tasks[idx]
			t.state = stateRunning
			t.attempts++
			t.worker = r.Worker
			ls.add(t, j, idx)
			j.counts.Pending--
			j.counts.Running++
			if j.meta.State == tasks.JobQueued {
				if now == nil {
					n := time.Now().UTC()
					now = &n
				}
				started := *now
				j.meta.State = tasks.JobRunning
				j.meta.StartedAt = &started
			}
			out = append(out, store.Lease{
				Worker:      r.Worker,
				JobID:       j.meta.ID,
				Index:       int(idx),
				Token:       int(t.attempts),
				Kind:        j.meta.Kind,
				Input:       t.input,
				TaskTimeout: time.Duration(j.meta.TaskTimeout),
			})
			if j.head == len(j.pending) {
				j.pending, j.head = j.pending[:0], 0
				s.unready(j)
			} else {
				lv.cur = j.next
			}
		}
	}
	return out, nil
}

// Complete applies results in order; see storetest for the rules.
func (s *Store) Complete(ctx context.Context, results []store.Result) (store.Completion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.Completion{}, errClosed
	}
	c := store.Completion{Outcomes: make([]store.Outcome, len(results))}
	var j *job
	for k := range results {
		r := &results[k]
		if j == nil || j.meta.ID != r.JobID {
			j = s.jobs[r.JobID]
		}
		c.Outcomes[k] = s.apply(j, r, &c.Done)
	}
	return c, nil
}

func (s *Store) apply(j *job, r *store.Result, done *[]string) store.Outcome {
	if j == nil || r.Index < 0 || r.Index >= len(j.tasks) {
		return store.Stale
	}
	t := &j.tasks[r.Index]
	if t.state == stateSucceeded {
		return store.Duplicate
	}
	if j.meta.State.Final() || t.state != stateRunning || int(t.attempts) != r.Token || t.worker != r.Worker {
		return store.Stale
	}
	t.holder.remove(t, j)
	j.counts.Running--
	if r.Error == "" {
		t.state = stateSucceeded
		t.output = r.Output
		j.counts.Succeeded++
		if j.counts.Succeeded == j.counts.Total {
			*done = append(*done, j.meta.ID)
		}
		return store.Accepted
	}
	t.failures++
	t.err = r.Error
	t.worker = ""
	if int(t.failures) >= j.meta.MaxAttempts {
		t.state = stateFailed
		j.counts.Failed++
		s.endJob(j, tasks.JobFailed, fmt.Sprintf("task %d: %s", r.Index, r.Error))
		return store.Failed
	}
	t.state = statePending
	j.counts.Pending++
	s.pushPending(j, int32(r.Index))
	return store.Retried
}

// ReleaseWorker puts the worker's leased tasks back to pending.
func (s *Store) ReleaseWorker(ctx context.Context, workerID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errClosed
	}
	return s.release(workerID), nil
}

func (s *Store) release(workerID string) int {
	ls := s.leases[workerID]
	if ls == nil {
		return 0
	}
	delete(s.leases, workerID)
	n := len(ls.refs)
	for _, ref := range ls.refs {
		j := ref.j
		t := &j.tasks[ref.i]
		t.holder, t.lpos = nil, -1
		t.state = statePending
		t.worker = ""
		j.counts.Running--
		j.counts.Pending++
		s.pushPending(j, ref.i)
	}
	return n
}

// ---- workers ----

// RenewWorkers extends the coordinator's lease and records its tabs.
func (s *Store) RenewWorkers(ctx context.Context, coord string, workers []store.WorkerInfo, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	c := s.coords[coord]
	if c == nil {
		c = &coordinator{workers: make(map[string]store.WorkerInfo)}
		s.coords[coord] = c
	}
	c.expires = time.Now().Add(ttl)
	for _, w := range workers {
		w.Coordinator = coord
		c.workers[w.ID] = w
	}
	return nil
}

// RemoveWorker forgets one tab.
func (s *Store) RemoveWorker(ctx context.Context, coord, workerID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if c := s.coords[coord]; c != nil {
		delete(c.workers, workerID)
	}
	if ls := s.leases[workerID]; ls != nil && len(ls.refs) == 0 {
		delete(s.leases, workerID)
	}
	return nil
}

// ListWorkers lists the tabs of live coordinators, by id.
func (s *Store) ListWorkers(ctx context.Context) ([]store.WorkerInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	now := time.Now()
	var out []store.WorkerInfo
	for _, c := range s.coords {
		if !c.expires.After(now) {
			continue
		}
		for _, w := range c.workers {
			out = append(out, w)
		}
	}
	slices.SortFunc(out, func(a, b store.WorkerInfo) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Reap releases the tasks of every tab of coordinators whose lease
// expired before now, and forgets them.
func (s *Store) Reap(ctx context.Context, now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errClosed
	}
	n := 0
	for id, c := range s.coords {
		if !c.expires.Before(now) {
			continue
		}
		for wid := range c.workers {
			n += s.release(wid)
		}
		delete(s.coords, id)
	}
	return n, nil
}

// ---- events ----

// Publish hands the event to every subscriber that has room for it; for
// the others it is dropped (delivery is best effort).
func (s *Store) Publish(ctx context.Context, ev store.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	for sub := range s.subs {
		select {
		case sub.ch <- ev:
		default:
			s.dropped++
		}
	}
	return nil
}

// Subscribe delivers events until ctx ends or the store closes; the
// channel is then closed.
func (s *Store) Subscribe(ctx context.Context) (<-chan store.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	sub := &subscriber{ch: make(chan store.Event, s.eventBuffer)}
	s.subs[sub] = struct{}{}
	// AfterFunc rather than a goroutine per subscriber: nothing waits
	// while the subscription is live, and Close stops it.
	sub.stop = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.subs[sub]; ok {
			delete(s.subs, sub)
			close(sub.ch)
		}
	})
	return sub.ch, nil
}

// DroppedEvents returns how many events were dropped because a subscriber
// had no room.
func (s *Store) DroppedEvents() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}
