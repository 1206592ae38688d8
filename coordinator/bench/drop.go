package bench

import (
	"context"
	"fmt"
	"time"
)

const (
	dropTaskMS     = 200                    // each task's run time
	dropTasksPer   = 60                     // tasks per tab: work for 12 s at full strength
	dropPoll       = 10 * time.Millisecond  // how often the coordinator's metrics are read
	dropWindow     = 250 * time.Millisecond // throughput is measured over windows this long
	dropRecovered  = 0.9                    // share of the survivors' rate that counts as recovered
	dropSettleTime = 3 * time.Second        // watched at least this long after the drop
)

type dropSample struct {
	at        time.Time
	tabs      int
	requeued  float64
	completed float64
}

// massDrop keeps many tabs of capacity 1 busy, closes half of them at
// once, and reads the coordinator's metrics every 10 ms to see when the
// dropped tabs' tasks are all back to pending (the requeue counter
// reaches its final value and the coordinator counts only the
// survivors) and when accepted results flow again at the rate the
// survivors had before the drop.
func (r *runner) massDrop(ctx context.Context, st string, row *Row) error {
	n := r.scale.DropTabs
	half := n / 2
	row.Setup = fmt.Sprintf("%s tabs × capacity 1 running 200 ms tasks; %s close at once", thousands(float64(n)), thousands(float64(half)))
	row.Target = "requeue < 1 s, recovery < 2 s"
	e, err := r.newEnv(ctx, st, 1)
	if err != nil {
		return err
	}
	defer e.close()
	f, err := dialFleet(ctx, e.wsURL(0), n, 1)
	if err != nil {
		return err
	}
	defer f.close()
	if err := e.waitTabs(ctx, 0, n); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	jobs, err := e.submitSleep(rctx, n*dropTasksPer, dropTaskMS)
	if err != nil {
		return err
	}
	defer func() {
		// The job would run on for many seconds: cancel what is left.
		for _, j := range jobs {
			e.api(0).Cancel(context.WithoutCancel(ctx), j.ID)
		}
	}()
	// Warm up: every tab busy for two rounds; then the full rate.
	for f.completed() < int64(2*n) {
		if err := sleepCtx(rctx, 20*time.Millisecond); err != nil {
			return fmt.Errorf("warm up: %w", err)
		}
	}
	c1, t1 := f.completed(), time.Now()
	if err := sleepCtx(rctx, time.Second); err != nil {
		return err
	}
	full := float64(f.completed()-c1) / time.Since(t1).Seconds()
	want := full * float64(n-half) / float64(n)

	dropped, _ := f.split(half)
	s0, err := e.dropSample(rctx)
	if err != nil {
		return err
	}
	closed := make(chan struct{})
	tDrop := time.Now()
	go func() {
		defer close(closed)
		dropped.close()
	}()
	var samples []dropSample
	var sampleErr error
	for {
		s, err := e.dropSample(rctx)
		if err != nil {
			sampleErr = err
			break
		}
		samples = append(samples, s)
		if s.at.Sub(tDrop) >= dropSettleTime && s.tabs == n-half && stableFor(samples, time.Second) {
			break
		}
		if s.at.Sub(tDrop) > 30*time.Second {
			break
		}
		if err := sleepCtx(rctx, dropPoll); err != nil {
			sampleErr = err
			break
		}
	}
	<-closed
	if sampleErr != nil {
		return sampleErr
	}
	last := samples[len(samples)-1]
	if last.tabs != n-half {
		return fmt.Errorf("coordinator counts %d tabs 30 s after the drop, want %d", last.tabs, n-half)
	}
	requeueAt := time.Duration(-1)
	for _, s := range samples {
		if s.tabs == n-half && s.requeued == last.requeued {
			requeueAt = s.at.Sub(tDrop)
			break
		}
	}
	recoverAt := time.Duration(-1)
	for i, s := range samples {
		for _, s2 := range samples[i+1:] {
			if d := s2.at.Sub(s.at); d >= dropWindow {
				if (s2.completed-s.completed)/d.Seconds() >= dropRecovered*want {
					recoverAt = s.at.Sub(tDrop)
				}
				break
			}
		}
		if recoverAt >= 0 {
			break
		}
	}
	row.Figures["requeue_seconds"] = requeueAt.Seconds()
	row.Figures["recovery_seconds"] = recoverAt.Seconds()
	row.Figures["requeued_tasks"] = last.requeued - s0.requeued
	fmtDur := func(d time.Duration) string {
		if d < 0 {
			return "never (within the watch)"
		}
		return fmt.Sprintf("%.3f s", d.Seconds())
	}
	row.Result = fmt.Sprintf("requeue %s (%.0f tasks back to pending); recovery %s (first %s window at ≥ %.0f%% of the survivors' rate %.0f tasks/s; full rate before the drop %.0f tasks/s)",
		fmtDur(requeueAt), last.requeued-s0.requeued, fmtDur(recoverAt), dropWindow, 100*dropRecovered, want, full)
	return nil
}

func (e *env) dropSample(ctx context.Context) (dropSample, error) {
	m, err := e.metrics(ctx, 0)
	if err != nil {
		return dropSample{}, err
	}
	return dropSample{
		at:        time.Now(),
		tabs:      int(m.sum("tabgrid_tabs_connected")),
		requeued:  m.sum("tabgrid_tasks_requeued_total"),
		completed: m.sum("tabgrid_tasks_completed_total"),
	}, nil
}

// stableFor reports whether the requeue counter has not moved over the
// last d of samples.
func stableFor(samples []dropSample, d time.Duration) bool {
	last := samples[len(samples)-1]
	for i := len(samples) - 1; i >= 0; i-- {
		if samples[i].requeued != last.requeued {
			return false
		}
		if last.at.Sub(samples[i].at) >= d {
			return true
		}
	}
	return false
}
