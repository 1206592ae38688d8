package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/tabgrid/tabgrid/coordinator/client"
	"github.com/tabgrid/tabgrid/tasks"
)

// defaultLatencyRate is the task rate when no throughput was measured in
// the same run for the store.
const defaultLatencyRate = 1000

// latencyJobRate caps how many jobs per second the scenario submits. The
// figure is about moving tasks, not about the REST API: at 10% of the
// task throughput (thousands per second) one-task jobs would measure the
// HTTP server on two shared cores, so the task rate is reached with jobs
// of several tasks instead.
const latencyJobRate = 200

// latencySubmitters is how many submissions may be in flight at once.
// Each holds its POST ?wait= open until its job ends, so this bounds
// rate × latency; the pacer counts the slots it could not start on time.
const latencySubmitters = 256

// latency submits no-op tasks at a steady 10% of the task throughput
// measured for the store, in jobs of k tasks at no more than
// latencyJobRate jobs per second, each with POST ?wait=, and reads each
// job's created_at and finished_at. Both are stamped by the coordinator,
// so the figure runs from the job and its tasks being stored to the last
// of its tasks' results accepted and the job reduced and stored: an upper
// bound of each task's creation → accepted time, without the HTTP round
// trip. The client-side round trip is reported beside it.
func (r *runner) latency(ctx context.Context, st string, row *Row) error {
	rate, ok := r.maxRate[st]
	how := "10% of the throughput measured above"
	switch {
	case r.opts.LatencyRate > 0:
		rate, how = r.opts.LatencyRate, "set by --latency-rate"
	case ok:
		rate /= 10
	default:
		rate, how = defaultLatencyRate, "a fixed rate (throughput not run)"
	}
	perJob := max(1, int(math.Ceil(rate/latencyJobRate)))
	jobRate := rate / float64(perJob)
	dur := r.scale.LatencyFor
	total := max(1, int(jobRate*dur.Seconds()))
	tabs := r.scale.ThroughputTabs
	row.Setup = fmt.Sprintf("%s no-op tasks/s (%s) as %s jobs/s of %d tasks for %s, %d tabs × capacity 8; latency = finished_at − created_at of each job (its last task accepted, reduced, stored)",
		thousands(rate), how, thousands(jobRate), perJob, dur, tabs)
	row.Target = "p50 < 1 ms, p99 < 10 ms"
	e, err := r.newEnv(ctx, st, 1)
	if err != nil {
		return err
	}
	defer e.close()
	f, err := dialFleet(ctx, e.wsURL(0), tabs, 8)
	if err != nil {
		return err
	}
	defer f.close()
	if err := e.waitTabs(ctx, 0, tabs); err != nil {
		return err
	}

	rctx, cancel := context.WithTimeout(ctx, dur+2*time.Minute)
	defer cancel()
	api := e.api(0)
	slots := make(chan struct{}, total)
	var (
		mu       sync.Mutex
		server   []time.Duration
		roundTr  []time.Duration
		firstErr error
		pending  []string // jobs not final when their wait ran out
	)
	var wg sync.WaitGroup
	for range latencySubmitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range slots {
				t0 := time.Now()
				j, err := api.Submit(rctx, sleepSpec(perJob, 0), client.SubmitOptions{Wait: 30 * time.Second})
				rt := time.Since(t0)
				mu.Lock()
				switch {
				case err != nil:
					if firstErr == nil {
						firstErr = fmt.Errorf("submit: %w", err)
					}
				case !j.State.Final():
					pending = append(pending, j.ID)
				default:
					if j.State != tasks.JobSucceeded {
						if firstErr == nil {
							firstErr = fmt.Errorf("job %s ended %s: %s", j.ID, j.State, j.Error)
						}
					} else {
						server = append(server, j.FinishedAt.Sub(j.CreatedAt))
						roundTr = append(roundTr, rt)
					}
				}
				mu.Unlock()
			}
		}()
	}
	// The pacer releases slot i at start + i/rate; a slot no submitter
	// could take at once waits in the channel, and counts as late.
	start := time.Now()
	late := 0
	for i := range total {
		at := start.Add(time.Duration(float64(i) / jobRate * float64(time.Second)))
		if d := time.Until(at); d > 0 {
			if err := sleepCtx(rctx, d); err != nil {
				break
			}
		}
		if len(slots) > 0 {
			late++
		}
		slots <- struct{}{}
	}
	close(slots)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return firstErr
	}
	for _, id := range pending {
		j, err := api.Job(rctx, id, 30*time.Second)
		if err != nil {
			return fmt.Errorf("wait job %s: %w", id, err)
		}
		if j.State != tasks.JobSucceeded {
			return fmt.Errorf("job %s is %s after its wait", id, j.State)
		}
		server = append(server, j.FinishedAt.Sub(j.CreatedAt))
	}
	if len(server) != total {
		return fmt.Errorf("%d latencies for %d jobs", len(server), total)
	}
	slices.Sort(server)
	slices.Sort(roundTr)
	p := func(xs []time.Duration, q float64) time.Duration {
		if len(xs) == 0 {
			return 0
		}
		return xs[min(len(xs)-1, int(math.Ceil(q*float64(len(xs))))-1)]
	}
	for name, q := range map[string]float64{"p50": 0.5, "p99": 0.99, "p999": 0.999} {
		row.Figures[name+"_ms"] = ms(p(server, q))
	}
	row.Result = fmt.Sprintf("p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms over %s jobs (%s jobs/s achieved, %d submissions late); client POST?wait round trip p50 %.3f ms, p99 %.3f ms",
		ms(p(server, 0.5)), ms(p(server, 0.99)), ms(p(server, 0.999)), ms(server[len(server)-1]),
		thousands(float64(total)), thousands(float64(total)/elapsed.Seconds()), late,
		ms(p(roundTr, 0.5)), ms(p(roundTr, 0.99)))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
