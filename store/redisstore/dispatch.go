package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/tasks"
)

// claimRounds bounds the round trips of one Claim: a round serves the
// highest-priority jobs not yet found empty; leftover demand goes on to the
// next round.
const claimRounds = 6

// readyPage is how many jobs of the ready set one round looks at.
const readyPage = 64

// demand is what one worker still wants.
type demand struct {
	worker string
	n      int
}

// grant is part of a worker's demand assigned to one job.
type grant struct {
	worker string
	n      int
	di     int // index into the demand slice
}

// Claim leases pending tasks. Each round reads the top of the ready set,
// spreads the demand evenly over the jobs of the highest priority there
// (starting at a rotating job, so equal jobs are served equally over
// time), records intent (worker → job) where not recently recorded, then
// runs one claim script per job, all pipelined.
func (s *Store) Claim(ctx context.Context, reqs []store.ClaimRequest) ([]store.Lease, error) {
	var ds []demand
	want := 0
	for _, r := range reqs {
		if r.Max > 0 && r.Worker != "" {
			ds = append(ds, demand{r.Worker, r.Max})
			want += r.Max
		}
	}
	var leases []store.Lease
	empty := map[string]bool{} // jobs that gave less than asked this call
	for round := 0; round < claimRounds && want > 0; round++ {
		stop := int64(readyPage + len(empty) - 1)
		zs, err := s.rdb.ZRevRangeWithScores(ctx, s.k.ready(), 0, stop).Result()
		if err != nil {
			return leases, wrapErr("claim tasks", err)
		}
		var top []string
		best := topScore(zs, empty)
		for _, z := range zs {
			if id := z.Member.(string); !empty[id] && z.Score == best {
				top = append(top, id)
			}
		}
		if len(top) == 0 {
			break
		}
		alloc := s.allocate(ds, want, top, round == 0)
		if err := s.recordIntents(ctx, alloc); err != nil {
			return leases, err
		}
		jobs := make([]string, 0, len(alloc))
		calls := make([]*scriptCall, 0, len(alloc))
		for _, id := range top {
			gs := alloc[id]
			if len(gs) == 0 {
				continue
			}
			keys := []string{s.k.job(id), s.k.inputs(id), s.k.pending(id), s.k.lease(id), s.k.tokens(id), s.k.workers(id)}
			args := []any{nsString(s.now())}
			for _, g := range gs {
				keys = append(keys, s.k.workerLeases(id, g.worker))
				args = append(args, g.worker, g.n)
			}
			jobs = append(jobs, id)
			calls = append(calls, &scriptCall{script: claim, keys: keys, args: args})
		}
		s.runScripts(ctx, calls)
		var drained, missing []string
		var firstErr error
		for i, c := range calls {
			id, gs := jobs[i], alloc[jobs[i]]
			asked := 0
			for _, g := range gs {
				asked += g.n
			}
			v, err := c.cmd.Slice()
			if err != nil {
				firstErr = cmpErr(firstErr, err)
				empty[id] = true
				continue
			}
			status, _ := v[0].(int64)
			switch {
			case status == -1:
				missing = append(missing, id)
			case status == -2:
				drained = append(drained, id)
			}
			if status < int64(asked) {
				empty[id] = true
			}
			if status <= 0 {
				continue
			}
			kind, _ := v[1].(string)
			tmo, _ := strconv.ParseInt(fmt.Sprint(v[2]), 10, 64)
			for p := 3; p+3 < len(v); p += 4 {
				gi, _ := v[p].(int64)
				idx, _ := strconv.Atoi(fmt.Sprint(v[p+1]))
				tok, _ := v[p+2].(int64)
				in, _ := v[p+3].(string)
				g := gs[gi-1]
				ds[g.di].n--
				want--
				leases = append(leases, store.Lease{Worker: g.worker, JobID: id, Index: idx, Token: int(tok),
					Kind: kind, Input: json.RawMessage(in), TaskTimeout: time.Duration(tmo)})
			}
		}
		if err := s.tidyReady(ctx, drained, missing); err != nil {
			firstErr = cmpErr(firstErr, err)
		}
		if firstErr != nil {
			// Leases already made are returned with the error: they are
			// real, and dropping them would strand tasks until a release.
			return leases, wrapErr("claim tasks", firstErr)
		}
		if int64(len(zs)) <= stop && allEmpty(zs, empty) {
			break // the whole ready set was read and gave what it had
		}
	}
	return leases, nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// allEmpty reports whether every job of zs was found empty.
func allEmpty(zs []redis.Z, empty map[string]bool) bool {
	for _, z := range zs {
		if !empty[z.Member.(string)] {
			return false
		}
	}
	return true
}

// topScore is the highest score among jobs not found empty.
func topScore(zs []redis.Z, empty map[string]bool) float64 {
	for _, z := range zs {
		if !empty[z.Member.(string)] {
			return z.Score
		}
	}
	return 0
}

// allocate splits the demand over the jobs: each gets an even share (the
// remainder to the jobs from a rotating start), never more than batchMax,
// filled from the workers in order so a worker touches few jobs.
//
// In a first round (few says so) the demand goes to as few jobs as can
// take it in full batches, starting at the rotating job: one script and
// its fixed cost per batchMax tasks, not per job, and equal jobs still
// take turns call after call. Later rounds spread what is left over every
// job not found empty.
func (s *Store) allocate(ds []demand, want int, jobs []string, few bool) map[string][]grant {
	k := len(jobs)
	start := int(s.rr.Add(1) % uint64(k))
	share := make([]int, k)
	spread := k
	if few {
		spread = min(k, (want+batchMax-1)/batchMax)
	}
	for n := range spread {
		i := (start + n) % k
		share[i] = want / spread
		if n < want%spread {
			share[i]++
		}
		share[i] = min(share[i], batchMax)
	}
	alloc := map[string][]grant{}
	j := start
	left := share[j]
	for di, d := range ds {
		n := d.n
		for n > 0 {
			for left == 0 {
				j = (j + 1) % k
				if j == start {
					return alloc
				}
				left = share[j]
			}
			take := min(n, left)
			alloc[jobs[j]] = append(alloc[jobs[j]], grant{worker: d.worker, n: take, di: di})
			n -= take
			left -= take
		}
	}
	return alloc
}

// recordIntents adds each job to its workers' job sets before any claim
// script runs, so Reap and ReleaseWorker always find the leases even if
// this coordinator dies right after the claim. Pairs recorded within
// intentTTL are not sent again.
func (s *Store) recordIntents(ctx context.Context, alloc map[string][]grant) error {
	now := time.Now()
	type pair struct{ worker, job string }
	var todo []pair
	s.mu.Lock()
	for job, gs := range alloc {
		for _, g := range gs {
			m := s.intents[g.worker]
			if m == nil {
				m = map[string]time.Time{}
				s.intents[g.worker] = m
			}
			if t, ok := m[job]; ok && now.Sub(t) < intentTTL {
				continue
			}
			todo = append(todo, pair{g.worker, job})
		}
	}
	s.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, p := range todo {
		pipe.SAdd(ctx, s.k.workerJobs(p.worker), p.job)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return wrapErr("claim tasks: record intent", err)
	}
	s.mu.Lock()
	for _, p := range todo {
		if m := s.intents[p.worker]; m != nil {
			m[p.job] = now
		}
	}
	s.mu.Unlock()
	return nil
}

// tidyReady removes drained jobs from the ready set. A drained job has
// nothing pending and nothing running (or is final), so no task of it can
// become pending again and the removal cannot race a requeue. A missing
// job is removed only when its entry in the jobs set is absent or older
// than orphanAge: a younger one may be a creation in flight.
func (s *Store) tidyReady(ctx context.Context, drained, missing []string) error {
	if len(drained) == 0 && len(missing) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	if len(drained) > 0 {
		pipe.ZRem(ctx, s.k.ready(), toAny(drained)...)
	}
	scores := make([]*redis.FloatCmd, len(missing))
	for i, id := range missing {
		scores[i] = pipe.ZScore(ctx, s.k.jobs(), id)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	var orphans []any
	for i, c := range scores {
		sc, err := c.Result()
		if errors.Is(err, redis.Nil) || (err == nil && s.now().UnixMilli()-int64(sc) > orphanAge.Milliseconds()) {
			orphans = append(orphans, missing[i])
		}
	}
	if len(orphans) > 0 {
		pipe := s.rdb.Pipeline()
		pipe.ZRem(ctx, s.k.ready(), orphans...)
		pipe.ZRem(ctx, s.k.jobs(), orphans...)
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Complete applies results: one complete script per job and batchMax
// results, all pipelined.
func (s *Store) Complete(ctx context.Context, results []store.Result) (store.Completion, error) {
	c := store.Completion{Outcomes: make([]store.Outcome, len(results))}
	type chunk struct {
		job     string
		members []int // indexes into results
	}
	var chunks []*chunk
	open := map[string]*chunk{}
	for i, r := range results {
		c.Outcomes[i] = store.Stale
		if r.JobID == "" || r.Index < 0 || r.Worker == "" {
			continue
		}
		ch := open[r.JobID]
		if ch == nil || len(ch.members) == batchMax {
			ch = &chunk{job: r.JobID}
			open[r.JobID] = ch
			chunks = append(chunks, ch)
		}
		ch.members = append(ch.members, i)
	}
	if len(chunks) == 0 {
		return c, nil
	}
	now := s.now()
	calls := make([]*scriptCall, len(chunks))
	for ci, ch := range chunks {
		id := ch.job
		keys := []string{s.k.job(id), s.k.pending(id), s.k.lease(id), s.k.fails(id), s.k.errs(id), s.k.outputs(id)}
		wnum := map[string]int{}
		var wargs []any
		for _, i := range ch.members {
			w := results[i].Worker
			if wnum[w] == 0 {
				wnum[w] = len(wargs) + 1
				wargs = append(wargs, w)
			}
		}
		args := make([]any, 0, 2+len(wargs)+5*len(ch.members))
		args = append(args, nsString(now), len(wargs))
		args = append(args, wargs...)
		for _, i := range ch.members {
			r := results[i]
			isErr, payload := "0", string(r.Output)
			if r.Error != "" {
				isErr, payload = "1", r.Error
			} else if len(r.Output) == 0 {
				payload = "null"
			}
			args = append(args, r.Index, wnum[r.Worker], r.Token, isErr, payload)
		}
		calls[ci] = &scriptCall{script: complete, keys: keys, args: args}
	}
	s.runScripts(ctx, calls)
	var firstErr error
	var ended []string
	for ci, call := range calls {
		ch := chunks[ci]
		v, err := call.cmd.Slice()
		if err != nil {
			// Outcomes of this chunk are unknown: leave them Stale and
			// report the error; a retry of the same results is safe (an
			// applied result comes back Duplicate or Stale).
			firstErr = cmpErr(firstErr, err)
			continue
		}
		if st, _ := v[0].(int64); st == -1 {
			continue
		}
		if d, _ := v[1].(int64); d == 1 {
			// Its last task just succeeded. It stays in the ready set
			// until FinishJob records its end.
			c.Done = append(c.Done, ch.job)
		}
		for k, i := range ch.members {
			o, _ := v[3+k].(int64)
			c.Outcomes[i] = store.Outcome(o)
		}
		if final, _ := v[2].(int64); final == 1 {
			// The job failed in this call, or results came for a job
			// that had ended (late or repeated ones): record its end,
			// again in case the call that ended it lost that step. Rare.
			ended = append(ended, ch.job)
		}
	}
	for _, id := range ended {
		if _, err := s.recordEnd(ctx, id); err != nil && !errors.Is(err, tasks.ErrNotFound) {
			firstErr = cmpErr(firstErr, err)
		}
	}
	return c, wrapErr("complete tasks", firstErr)
}

// ReleaseWorker puts the worker's leases back to pending in every job it
// may hold leases in, one release script per job, pipelined; then forgets
// those jobs from the worker's set (SREM of what was read, so an intent
// added meanwhile stays).
func (s *Store) ReleaseWorker(ctx context.Context, workerID string) (int, error) {
	s.mu.Lock()
	delete(s.intents, workerID)
	s.mu.Unlock()
	jobs, err := s.rdb.SMembers(ctx, s.k.workerJobs(workerID)).Result()
	if err != nil {
		return 0, wrapErr("release worker", err)
	}
	if len(jobs) == 0 {
		return 0, nil
	}
	calls := make([]*scriptCall, len(jobs))
	for i, id := range jobs {
		calls[i] = &scriptCall{script: release, args: []any{workerID},
			keys: []string{s.k.job(id), s.k.pending(id), s.k.lease(id), s.k.workerLeases(id, workerID)}}
	}
	s.runScripts(ctx, calls)
	n := 0
	for _, c := range calls {
		k, err := c.cmd.Int()
		if err != nil {
			return n, wrapErr("release worker", err)
		}
		n += k
	}
	if err := s.rdb.SRem(ctx, s.k.workerJobs(workerID), toAny(jobs)...).Err(); err != nil {
		return n, wrapErr("release worker", err)
	}
	return n, nil
}
