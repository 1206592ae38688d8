package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/tasks"
)

// orphanAge is how old an entry of the jobs or ready set must be before a
// reader that finds no job behind it removes it. Entries are written before
// the job (so a crash cannot hide a job); a younger entry may belong to a
// creation still in flight.
const orphanAge = time.Minute

// jobFields are the job hash fields GetJob reads, in parseJob's order.
var jobFields = []string{"id", "name", "kind", "state", "prio", "max", "tmo", "cat", "sat", "fat",
	"total", "pend", "run", "ok", "bad", "err"}

// CreateJob stores the job and all its tasks with one script. The job is
// added to the jobs and ready sets first, so that a crash after the script
// can never leave a job nobody lists or schedules; readers skip (and after
// orphanAge remove) entries whose job does not exist.
func (s *Store) CreateJob(ctx context.Context, nj store.NewJob) (tasks.Job, bool, error) {
	j := nj.Job
	if j.ID == "" || len(nj.Inputs) == 0 {
		return tasks.Job{}, false, fmt.Errorf("create job: %w: job id and tasks are required", tasks.ErrInvalidInput)
	}
	if j.CreatedAt.IsZero() {
		j.CreatedAt = s.now()
	}
	if nj.IdempotencyKey != "" {
		first, found, err := s.claimIdempotencyKey(ctx, nj.IdempotencyKey, j.ID)
		if err != nil {
			return tasks.Job{}, false, err
		}
		if found {
			return first, false, nil
		}
	}
	undo := func() {
		if nj.IdempotencyKey != "" {
			// Best effort: the key would otherwise point at a job that
			// does not exist, which claimIdempotencyKey also repairs.
			_ = delIfEquals.Run(context.WithoutCancel(ctx), s.rdb, []string{s.k.idem(nj.IdempotencyKey)}, j.ID).Err()
		}
	}
	pipe := s.rdb.Pipeline()
	pipe.ZAddNX(ctx, s.k.jobs(), redis.Z{Score: ms(j.CreatedAt), Member: j.ID})
	pipe.ZAddNX(ctx, s.k.ready(), redis.Z{Score: float64(j.Priority), Member: j.ID})
	if _, err := pipe.Exec(ctx); err != nil {
		undo()
		return tasks.Job{}, false, wrapErr("create job", err)
	}
	n := len(nj.Inputs)
	fields := []any{
		"id", j.ID, "name", j.Name, "kind", j.Kind, "state", string(tasks.JobQueued),
		"prio", j.Priority, "max", j.MaxAttempts, "tmo", int64(j.TaskTimeout), "cat", nsString(j.CreatedAt),
		"total", n, "pend", n, "run", 0, "ok", 0, "bad", 0, "input", string(j.Input), "idem", nj.IdempotencyKey,
	}
	args := make([]any, 0, 1+len(fields)+n)
	args = append(args, len(fields)/2)
	args = append(args, fields...)
	for _, in := range nj.Inputs {
		args = append(args, string(in))
	}
	created, err := createJob.Run(ctx, s.rdb, []string{s.k.job(j.ID), s.k.inputs(j.ID), s.k.pending(j.ID)}, args...).Int()
	if err != nil {
		undo()
		return tasks.Job{}, false, wrapErr("create job", err)
	}
	if created == 0 {
		undo()
		return tasks.Job{}, false, fmt.Errorf("create job: %w: job %s exists", tasks.ErrConflict, j.ID)
	}
	j.State = tasks.JobQueued
	j.StartedAt, j.FinishedAt = nil, nil
	j.Tasks = tasks.Counts{Total: n, Pending: n}
	j.Error, j.Result = "", nil
	j.SetProgress()
	return j, true, nil
}

// claimIdempotencyKey records key → id, or finds the job the key created.
// A key whose job does not exist (its creation failed, or is in flight) is
// waited for briefly, then taken over.
func (s *Store) claimIdempotencyKey(ctx context.Context, key, id string) (tasks.Job, bool, error) {
	ik := s.k.idem(key)
	for range 3 {
		ok, err := s.rdb.SetNX(ctx, ik, id, 0).Result()
		if err != nil {
			return tasks.Job{}, false, wrapErr("create job: idempotency key", err)
		}
		if ok {
			return tasks.Job{}, false, nil
		}
		prev, err := s.rdb.Get(ctx, ik).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return tasks.Job{}, false, wrapErr("create job: idempotency key", err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for {
			j, err := s.GetJob(ctx, prev)
			if err == nil {
				return j, true, nil
			}
			if !errors.Is(err, tasks.ErrNotFound) {
				return tasks.Job{}, false, err
			}
			if time.Now().After(deadline) {
				break
			}
			select {
			case <-ctx.Done():
				return tasks.Job{}, false, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		if err := delIfEquals.Run(ctx, s.rdb, []string{ik}, prev).Err(); err != nil {
			return tasks.Job{}, false, wrapErr("create job: idempotency key", err)
		}
	}
	return tasks.Job{}, false, fmt.Errorf("create job: %w: idempotency key %q is contended", tasks.ErrConflict, key)
}

// GetJob returns the job with its live counts and its input.
func (s *Store) GetJob(ctx context.Context, id string) (tasks.Job, error) {
	vals, err := s.rdb.HMGet(ctx, s.k.job(id), append(jobFields, "input")...).Result()
	if err != nil {
		return tasks.Job{}, wrapErr("get job", err)
	}
	j, ok := parseJob(vals)
	if !ok {
		return tasks.Job{}, fmt.Errorf("get job %s: %w", id, tasks.ErrNotFound)
	}
	if in, ok := vals[len(jobFields)].(string); ok && in != "" {
		j.Input = json.RawMessage(in)
	}
	return j, nil
}

// parseJob reads the values of jobFields; ok is false for a missing job.
func parseJob(v []any) (tasks.Job, bool) {
	str := func(i int) string { s, _ := v[i].(string); return s }
	num := func(i int) int64 { n, _ := strconv.ParseInt(str(i), 10, 64); return n }
	tm := func(i int) *time.Time {
		if str(i) == "" {
			return nil
		}
		t := time.Unix(0, num(i))
		return &t
	}
	if str(0) == "" {
		return tasks.Job{}, false
	}
	j := tasks.Job{
		ID: str(0), Name: str(1), Kind: str(2), State: tasks.JobState(str(3)),
		Priority: int(num(4)), MaxAttempts: int(num(5)), TaskTimeout: tasks.Duration(num(6)),
		CreatedAt: time.Unix(0, num(7)), StartedAt: tm(8), FinishedAt: tm(9),
		Tasks: tasks.Counts{Total: int(num(10)), Pending: int(num(11)), Running: int(num(12)),
			Succeeded: int(num(13)), Failed: int(num(14))},
		Error: str(15),
	}
	j.SetProgress()
	return j, true
}

// scanJobs reads the jobs set newest first, a page at a time, and calls fn
// with each existing job until fn returns false. Entries without a job are
// skipped, and removed once older than orphanAge.
// readJobs reads the jobs with these ids (without their inputs) in one
// pipeline, in order; where no job stands behind an id its Job is zero.
func (s *Store) readJobs(ctx context.Context, ids []string) ([]tasks.Job, error) {
	jobs := make([]tasks.Job, len(ids))
	if len(ids) == 0 {
		return jobs, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, s.k.job(id), jobFields...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	for i, c := range cmds {
		jobs[i], _ = parseJob(c.Val())
	}
	return jobs, nil
}

func (s *Store) scanJobs(ctx context.Context, fn func(tasks.Job) bool) error {
	const page = 200
	for start := int64(0); ; start += page {
		zs, err := s.rdb.ZRevRangeWithScores(ctx, s.k.jobs(), start, start+page-1).Result()
		if err != nil {
			return wrapErr("list jobs", err)
		}
		if len(zs) == 0 {
			return nil
		}
		ids := make([]string, len(zs))
		for i, z := range zs {
			ids[i] = z.Member.(string)
		}
		jobs, err := s.readJobs(ctx, ids)
		if err != nil {
			return wrapErr("list jobs", err)
		}
		var orphans []any
		for i, j := range jobs {
			if j.ID == "" {
				if z := zs[i]; s.now().UnixMilli()-int64(z.Score) > orphanAge.Milliseconds() {
					orphans = append(orphans, z.Member)
				}
				continue
			}
			if !fn(j) {
				return nil
			}
		}
		if len(orphans) > 0 {
			pipe := s.rdb.Pipeline()
			pipe.ZRem(ctx, s.k.jobs(), orphans...)
			pipe.ZRem(ctx, s.k.ready(), orphans...)
			if _, err := pipe.Exec(ctx); err != nil {
				return wrapErr("list jobs: remove orphans", err)
			}
			start -= int64(len(orphans))
		}
		if len(zs) < page {
			return nil
		}
	}
}

// ListJobs returns jobs newest first.
func (s *Store) ListJobs(ctx context.Context, f store.JobFilter) ([]tasks.Job, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	var out []tasks.Job
	switch {
	case f.State == "":
		err := s.scanJobs(ctx, func(j tasks.Job) bool {
			out = append(out, j)
			return len(out) < limit
		})
		return out, err
	case f.State.Final():
		// The state's index is ordered by creation, ties by id, as
		// ListJobs must answer.
		ids, err := s.rdb.ZRevRange(ctx, s.k.finishedIn(f.State), 0, int64(limit-1)).Result()
		if err != nil {
			return nil, wrapErr("list jobs", err)
		}
		jobs, err := s.readJobs(ctx, ids)
		if err != nil {
			return nil, wrapErr("list jobs", err)
		}
		for _, j := range jobs {
			if j.State == f.State {
				out = append(out, j)
			}
		}
		return out, nil
	default:
		err := s.scanActive(ctx, func(j tasks.Job) {
			if j.State == f.State {
				out = append(out, j)
			}
		})
		slices.SortFunc(out, func(a, b tasks.Job) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(b.ID, a.ID)
		})
		return out[:min(len(out), limit)], err
	}
}

// CountJobs counts retained jobs by state: final ones from the size of
// their state's index, queued and running ones by reading the jobs of the
// ready set (every job that is not final is there until it is finished).
// Its cost follows the active jobs, not the retained ones.
func (s *Store) CountJobs(ctx context.Context) (map[tasks.JobState]int, error) {
	counts := map[tasks.JobState]int{}
	pipe := s.rdb.Pipeline()
	cards := make([]*redis.IntCmd, len(finalStates))
	for i, st := range finalStates {
		cards[i] = pipe.ZCard(ctx, s.k.finishedIn(st))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, wrapErr("count jobs", err)
	}
	for i, st := range finalStates {
		if n := int(cards[i].Val()); n > 0 {
			counts[st] = n
		}
	}
	err := s.scanActive(ctx, func(j tasks.Job) {
		if !j.State.Final() {
			counts[j.State]++
		}
	})
	return counts, err
}

// UnfinishedJobs lists running jobs whose tasks all succeeded but whose
// result is not stored. Such a job is still in the ready set.
func (s *Store) UnfinishedJobs(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.scanActive(ctx, func(j tasks.Job) {
		if !j.State.Final() && j.Tasks.Total > 0 && j.Tasks.Succeeded == j.Tasks.Total {
			ids = append(ids, j.ID)
		}
	})
	return ids, err
}

// scanActive calls fn for every job of the ready set, reading them a page
// at a time. Entries with no job behind them are skipped (tidyReady and
// ListJobs remove those).
func (s *Store) scanActive(ctx context.Context, fn func(tasks.Job)) error {
	const page = 500
	for start := int64(0); ; start += page {
		ids, err := s.rdb.ZRange(ctx, s.k.ready(), start, start+page-1).Result()
		if err != nil {
			return wrapErr("scan active jobs", err)
		}
		if len(ids) == 0 {
			return nil
		}
		jobs, err := s.readJobs(ctx, ids)
		if err != nil {
			return wrapErr("scan active jobs", err)
		}
		for _, j := range jobs {
			if j.ID != "" {
				fn(j)
			}
		}
		if len(ids) < page {
			return nil
		}
	}
}

// ListTasks derives each task's state from the lease hash: "=worker" →
// succeeded, "failed" → failed, "token|worker" → running, none → pending.
func (s *Store) ListTasks(ctx context.Context, jobID string, state tasks.TaskState) ([]tasks.Task, error) {
	pipe := s.rdb.Pipeline()
	total := pipe.HGet(ctx, s.k.job(jobID), "total")
	leases := pipe.HGetAll(ctx, s.k.lease(jobID))
	toks := pipe.HGetAll(ctx, s.k.tokens(jobID))
	fails := pipe.HGetAll(ctx, s.k.fails(jobID))
	errs := pipe.HGetAll(ctx, s.k.errs(jobID))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrapErr("list tasks", err)
	}
	n, err := total.Int()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list tasks of %s: %w", jobID, tasks.ErrNotFound)
	}
	if err != nil {
		return nil, wrapErr("list tasks", err)
	}
	lm, tm, fm, em := leases.Val(), toks.Val(), fails.Val(), errs.Val()
	out := []tasks.Task{}
	for i := range n {
		idx := strconv.Itoa(i)
		t := tasks.Task{JobID: jobID, Index: i, State: tasks.TaskPending, Error: em[idx]}
		t.Attempts, _ = strconv.Atoi(tm[idx])
		t.Failures, _ = strconv.Atoi(fm[idx])
		switch l := lm[idx]; {
		case strings.HasPrefix(l, "="):
			t.State = tasks.TaskSucceeded
			t.Worker = l[1:]
		case l == "failed":
			t.State = tasks.TaskFailed
		case l != "":
			t.State = tasks.TaskRunning
			if _, w, ok := cutLease(l); ok {
				t.Worker = w
			}
		}
		if state == "" || t.State == state {
			out = append(out, t)
		}
	}
	return out, nil
}

// cutLease splits "token|worker".
func cutLease(v string) (token int, worker string, ok bool) {
	for i := 0; i < len(v); i++ {
		if v[i] == '|' {
			t, err := strconv.Atoi(v[:i])
			return t, v[i+1:], err == nil
		}
	}
	return 0, "", false
}

// TaskOutputs returns every task's accepted output in task order.
func (s *Store) TaskOutputs(ctx context.Context, jobID string) ([]json.RawMessage, error) {
	pipe := s.rdb.Pipeline()
	total := pipe.HGet(ctx, s.k.job(jobID), "total")
	outs := pipe.HGetAll(ctx, s.k.outputs(jobID))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrapErr("task outputs", err)
	}
	n, err := total.Int()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("task outputs of %s: %w", jobID, tasks.ErrNotFound)
	}
	if err != nil {
		return nil, wrapErr("task outputs", err)
	}
	res := make([]json.RawMessage, n)
	for k, v := range outs.Val() {
		if i, err := strconv.Atoi(k); err == nil && i >= 0 && i < n {
			res[i] = json.RawMessage(v)
		}
	}
	return res, nil
}

// FinishJob stores the reduced result (or the reducer's error).
func (s *Store) FinishJob(ctx context.Context, jobID string, result json.RawMessage, errMsg string) (tasks.Job, error) {
	now := s.now()
	rc, err := finish.Run(ctx, s.rdb, []string{s.k.job(jobID), s.k.result(jobID)},
		nsString(now), string(result), errMsg).Int()
	if err != nil {
		return tasks.Job{}, wrapErr("finish job", err)
	}
	switch rc {
	case -1:
		return tasks.Job{}, fmt.Errorf("finish job %s: %w", jobID, tasks.ErrNotFound)
	case -3:
		return tasks.Job{}, fmt.Errorf("finish job %s: %w: not every task has succeeded", jobID, tasks.ErrConflict)
	}
	// 0 (finished now) or -2 (final already: maybe a repeat of a call
	// whose end was not recorded).
	return s.recordEnd(ctx, jobID)
}

// recordEnd reads the job and, when it is final, records it in the
// cross-job indexes: retention finds it in finished (by finish time),
// CountJobs and ListJobs in the index of its state (by creation time),
// and ready no longer lists it. It runs after the script that ended the
// job, so a crash in between leaves the job final but unrecorded; every
// later call that finds the job final (a repeated finish or cancel, a
// late result) records it again, and recording is idempotent.
func (s *Store) recordEnd(ctx context.Context, jobID string) (tasks.Job, error) {
	j, err := s.GetJob(ctx, jobID)
	if err != nil || !j.State.Final() || j.FinishedAt == nil {
		return j, err
	}
	pipe := s.rdb.Pipeline()
	pipe.ZAdd(ctx, s.k.finished(), redis.Z{Score: ms(*j.FinishedAt), Member: jobID})
	pipe.ZAdd(ctx, s.k.finishedIn(j.State), redis.Z{Score: ms(j.CreatedAt), Member: jobID})
	pipe.ZRem(ctx, s.k.ready(), jobID)
	if _, err := pipe.Exec(ctx); err != nil {
		return tasks.Job{}, wrapErr("record finished job", err)
	}
	return j, nil
}

// JobResult returns the result of a succeeded job.
func (s *Store) JobResult(ctx context.Context, jobID string) (json.RawMessage, error) {
	pipe := s.rdb.Pipeline()
	st := pipe.HGet(ctx, s.k.job(jobID), "state")
	res := pipe.Get(ctx, s.k.result(jobID))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrapErr("job result", err)
	}
	state, err := st.Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("job result of %s: %w", jobID, tasks.ErrNotFound)
	}
	if state != string(tasks.JobSucceeded) {
		return nil, fmt.Errorf("job result of %s: %w: job is %s", jobID, tasks.ErrConflict, state)
	}
	r, err := res.Result()
	if err != nil {
		return nil, wrapErr("job result", err)
	}
	return json.RawMessage(r), nil
}

// CancelJob cancels a job that is not final and voids its leases.
func (s *Store) CancelJob(ctx context.Context, jobID string) (tasks.Job, error) {
	now := s.now()
	rc, err := cancel.Run(ctx, s.rdb, []string{s.k.job(jobID), s.k.lease(jobID)}, nsString(now)).Int()
	if err != nil {
		return tasks.Job{}, wrapErr("cancel job", err)
	}
	switch rc {
	case -1:
		return tasks.Job{}, fmt.Errorf("cancel job %s: %w", jobID, tasks.ErrNotFound)
	case -2:
		j, err := s.recordEnd(ctx, jobID)
		if err != nil {
			return tasks.Job{}, err
		}
		return j, fmt.Errorf("cancel job %s: %w: job is %s", jobID, tasks.ErrConflict, j.State)
	}
	return s.recordEnd(ctx, jobID)
}

// DeleteFinishedBefore removes jobs that ended before t: first each job's
// keys (one script per job, pipelined), then its idempotency key and its
// entries in the cross-job sets, so a crash in between leaves only entries
// that point at nothing, which the next run removes.
func (s *Store) DeleteFinishedBefore(ctx context.Context, t time.Time) (int, error) {
	deleted := 0
	for {
		ids, err := s.rdb.ZRangeByScore(ctx, s.k.finished(), &redis.ZRangeBy{
			Min: "-inf", Max: "(" + strconv.FormatInt(t.UnixMilli(), 10), Count: 200,
		}).Result()
		if err != nil {
			return deleted, wrapErr("delete finished jobs", err)
		}
		if len(ids) == 0 {
			return deleted, nil
		}
		pipe := s.rdb.Pipeline()
		ws := make([]*redis.StringSliceCmd, len(ids))
		for i, id := range ids {
			ws[i] = pipe.SMembers(ctx, s.k.workers(id))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return deleted, wrapErr("delete finished jobs", err)
		}
		calls := make([]*scriptCall, len(ids))
		for i, id := range ids {
			keys := s.k.jobKeys(id)
			for _, w := range ws[i].Val() {
				keys = append(keys, s.k.workerLeases(id, w))
			}
			calls[i] = &scriptCall{script: deleteJob, keys: keys}
		}
		s.runScripts(ctx, calls)
		var gone []any
		pipe = s.rdb.Pipeline()
		for i, c := range calls {
			v, err := c.cmd.Result()
			switch {
			case errors.Is(err, redis.Nil):
				gone = append(gone, ids[i]) // deleted by an earlier run
			case err != nil:
				return deleted, wrapErr("delete finished jobs", err)
			default:
				if key, ok := v.(string); ok {
					deleted++
					gone = append(gone, ids[i])
					if key != "" {
						// Eval, not EVALSHA: in a pipeline a NOSCRIPT reply
						// would come too late to fall back.
						delIfEquals.Eval(ctx, pipe, []string{s.k.idem(key)}, ids[i])
					}
				}
			}
		}
		if len(gone) == 0 {
			return deleted, nil // only jobs that are not final: leave them
		}
		pipe.ZRem(ctx, s.k.jobs(), gone...)
		pipe.ZRem(ctx, s.k.ready(), gone...)
		pipe.ZRem(ctx, s.k.finished(), gone...)
		for _, st := range finalStates {
			pipe.ZRem(ctx, s.k.finishedIn(st), gone...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return deleted, wrapErr("delete finished jobs", err)
		}
	}
}
