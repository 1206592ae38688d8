package bench

import (
	"context"
	"fmt"
	"time"
)

// batch is what one timed run of no-op tasks measured.
type batch struct {
	tasks     int
	elapsed   time.Duration
	cpu       time.Duration // coordinators' CPU over the run
	cpuOK     bool
	redis     commandCalls // Redis commands over the run
	retried   int          // tasks leased more than once
	tabCounts int64        // results the tabs sent
}

func (b batch) rate() float64 { return float64(b.tasks) / b.elapsed.Seconds() }

// runBatch connects tabsPer tabs of capacity to every coordinator, then
// times total tasks of ms each from the first submission to the last job
// succeeded, and checks that every task was accepted exactly once.
func (r *runner) runBatch(ctx context.Context, e *env, tabsPer, capacity, total, ms int) (batch, error) {
	var fleets []*fleet
	defer func() {
		for _, f := range fleets {
			f.close()
		}
	}()
	for i := range e.coords {
		f, err := dialFleet(ctx, e.wsURL(i), tabsPer, capacity)
		if err != nil {
			return batch{}, err
		}
		fleets = append(fleets, f)
		if err := e.waitTabs(ctx, i, tabsPer); err != nil {
			return batch{}, err
		}
	}
	before, err := e.completedTotal(ctx)
	if err != nil {
		return batch{}, err
	}
	rcBefore, err := e.redisCalls(ctx)
	if err != nil {
		return batch{}, err
	}
	cpuBefore, cpuOK, err := e.cpu()
	if err != nil {
		return batch{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	start := time.Now()
	jobs, err := e.submitSleep(rctx, total, ms)
	if err != nil {
		return batch{}, err
	}
	jobs, err = e.waitJobs(rctx, jobs)
	if err != nil {
		return batch{}, err
	}
	b := batch{tasks: total, elapsed: time.Since(start), cpuOK: cpuOK}
	cpuAfter, _, err := e.cpu()
	if err != nil {
		return b, err
	}
	b.cpu = cpuAfter - cpuBefore
	rcAfter, err := e.redisCalls(ctx)
	if err != nil {
		return b, err
	}
	if e.redis != nil {
		b.redis = rcAfter.sub(rcBefore)
	}
	// Exactly once: the coordinators accepted one result per task, every
	// task is succeeded, and the tabs sent one result per lease.
	after, err := e.completedTotal(ctx)
	if err != nil {
		return b, err
	}
	if got := int(after - before); got != total {
		return b, fmt.Errorf("coordinators accepted %d results for %d tasks", got, total)
	}
	if b.retried, err = e.checkTasks(ctx, jobs); err != nil {
		return b, err
	}
	for _, f := range fleets {
		b.tabCounts += f.completed()
	}
	if b.tabCounts < int64(total) {
		return b, fmt.Errorf("tabs sent %d results for %d tasks", b.tabCounts, total)
	}
	return b, nil
}

func (b batch) figures(row *Row) string {
	row.Figures["tasks_per_second"] = b.rate()
	row.Figures["tasks"] = float64(b.tasks)
	row.Figures["tab_results"] = float64(b.tabCounts)
	row.Figures["retried_tasks"] = float64(b.retried)
	s := fmt.Sprintf("%s tasks/s (%d tasks in %.2f s)", thousands(b.rate()), b.tasks, b.elapsed.Seconds())
	if b.cpuOK {
		per := b.cpu.Seconds() / float64(b.tasks) * 1000
		row.Figures["cpu_seconds_per_1000_tasks"] = per
		s += fmt.Sprintf("; coordinator CPU %.3f s per 1,000 tasks", per)
	}
	if b.redis.all > 0 {
		all := float64(b.redis.all) / float64(b.tasks)
		scripts := float64(b.redis.scripts) / float64(b.tasks)
		row.Figures["redis_commands_per_task"] = all
		row.Figures["redis_script_calls_per_task"] = scripts
		s += fmt.Sprintf("; Redis commands per task %.3f , counting the commands Lua scripts run; %.4f script calls per task; most called: %s)", all, scripts, b.redis.top(4, b.tasks))
	}
	if b.retried > 0 {
		s += fmt.Sprintf("; %d tasks leased twice", b.retried)
	}
	return s
}

func (r *runner) throughput(ctx context.Context, st string, row *Row) error {
	n, tabs := r.scale.ThroughputTasks, r.scale.ThroughputTabs
	row.Setup = fmt.Sprintf("%s no-op tasks (sleep 0 ms), %d tabs × capacity 8", thousands(float64(n)), tabs)
	row.Target = "memory ≥ 100k tasks/s, Redis ≥ 40k tasks/s, Redis commands per task ≤ 0.2"
	e, err := r.newEnv(ctx, st, 1)
	if err != nil {
		return err
	}
	defer e.close()
	b, err := r.runBatch(ctx, e, tabs, 8, n, 0)
	if err != nil {
		return err
	}
	r.maxRate[st] = b.rate()
	row.Result = b.figures(row)
	return nil
}

func (r *runner) twoCoordinators(ctx context.Context, st string, row *Row) error {
	n, tabs := r.scale.ThroughputTasks, r.scale.ThroughputTabs
	row.Setup = fmt.Sprintf("2 coordinators on one Redis, %d tabs × capacity 8 each, %s no-op tasks, jobs submitted alternately to each", tabs/2, thousands(float64(n)))
	row.Target = "total above one coordinator's"
	e, err := r.newEnv(ctx, st, 2)
	if err != nil {
		return err
	}
	defer e.close()
	b, err := r.runBatch(ctx, e, tabs/2, 8, n, 0)
	if err != nil {
		return err
	}
	row.Result = "total " + b.figures(row)
	if one, ok := r.maxRate[st]; ok {
		row.Result += fmt.Sprintf("; %.2f× one coordinator", b.rate()/one)
	}
	return nil
}

func (r *runner) efficiency(ctx context.Context, st string, row *Row) error {
	tabs, n := r.scale.EfficiencyTabs, r.scale.EfficiencyTasks
	const ms = 1000
	ideal := float64(tabs) * 1000 / ms
	row.Setup = fmt.Sprintf("%s tabs × capacity 1, %s tasks of 1 s (ideal %s tasks/s)", thousands(float64(tabs)), thousands(float64(n)), thousands(ideal))
	row.Target = "≥ 98% of ideal"
	e, err := r.newEnv(ctx, st, 1)
	if err != nil {
		return err
	}
	defer e.close()
	b, err := r.runBatch(ctx, e, tabs, 1, n, ms)
	if err != nil {
		return err
	}
	pct := 100 * b.rate() / ideal
	row.Figures["tasks_per_second"] = b.rate()
	row.Figures["percent_of_ideal"] = pct
	row.Result = fmt.Sprintf("%.1f tasks/s = %.1f%% of ideal (%.2f s for %d tasks, ideal %.2f s)",
		b.rate(), pct, b.elapsed.Seconds(), n, float64(n)/ideal)
	return nil
}

// thousands formats n rounded, with commas.
func thousands(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
