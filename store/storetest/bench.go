package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/store"
)

// benchJobTasks is the size of each job the benchmark drains; a new one is
// stored (outside the timer) when the current one has less than a batch
// left.
const benchJobTasks = 20_000

// Bench measures the dispatch hot path: each iteration claims one batch
// of tasks for one worker and completes all of them in one call. It runs
// batches of 1, 16 and 128 tasks and reports tasks/s (claimed and
// completed). Job creation, finishing and deletion happen with the timer
// stopped.
func Bench(b *testing.B, newStore func(b *testing.B) store.Store) {
	for _, batch := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			benchClaimComplete(b, newStore(b), batch)
		})
	}
}

func benchClaimComplete(b *testing.B, s store.Store, batch int) {
	ctx := context.Background()
	Register(b, s, "bench", "w1")
	reqs := []store.ClaimRequest{{Worker: "w1", Max: batch}}
	results := make([]store.Result, batch)
	output := json.RawMessage(`{}`)
	var jobID string
	left := 0
	nextJob := func() {
		if jobID != "" {
			// Drain what is left so the old job can finish and go.
			for {
				ls, err := s.Claim(ctx, []store.ClaimRequest{{Worker: "w1", Max: 1024}})
				if err != nil {
					b.Fatalf("claim: %v", err)
				}
				if len(ls) == 0 {
					break
				}
				rs := make([]store.Result, len(ls))
				for i, l := range ls {
					rs[i] = store.Result{Worker: l.Worker, JobID: l.JobID, Index: l.Index, Token: l.Token, Output: output}
				}
				if _, err := s.Complete(ctx, rs); err != nil {
					b.Fatalf("complete: %v", err)
				}
			}
			if _, err := s.FinishJob(ctx, jobID, json.RawMessage(`{}`), ""); err != nil {
				b.Fatalf("finish job: %v", err)
			}
			if _, err := s.DeleteFinishedBefore(ctx, time.Now().Add(time.Hour)); err != nil {
				b.Fatalf("delete finished jobs: %v", err)
			}
		}
		nj := NewJob("sleep", benchJobTasks)
		if _, _, err := s.CreateJob(ctx, nj); err != nil {
			b.Fatalf("create job: %v", err)
		}
		jobID, left = nj.Job.ID, benchJobTasks
	}
	nextJob()
	done := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if left < batch {
			b.StopTimer()
			nextJob()
			b.StartTimer()
		}
		ls, err := s.Claim(ctx, reqs)
		if err != nil {
			b.Fatalf("claim: %v", err)
		}
		if len(ls) != batch {
			b.Fatalf("claimed %d, want %d", len(ls), batch)
		}
		for i, l := range ls {
			results[i] = store.Result{Worker: l.Worker, JobID: l.JobID, Index: l.Index, Token: l.Token, Output: output}
		}
		c, err := s.Complete(ctx, results)
		if err != nil {
			b.Fatalf("complete: %v", err)
		}
		for _, o := range c.Outcomes {
			if o != store.Accepted {
				b.Fatalf("outcome %v, want accepted", o)
			}
		}
		left -= batch
		done += batch
	}
	b.StopTimer()
	if sec := b.Elapsed().Seconds(); sec > 0 {
		b.ReportMetric(float64(done)/sec, "tasks/s")
	}
}
