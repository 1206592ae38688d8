package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tabgrid/tabgrid/coordinator/client"
	"github.com/tabgrid/tabgrid/tasks"
)

// maxJobTasks is the size of the jobs a large batch is cut into: within
// the coordinator's default limit, and small enough that the first job
// runs while the next is being stored.
const maxJobTasks = 50_000

func sleepSpec(n, ms int) tasks.Spec {
	return tasks.Spec{
		Kind:  "sleep",
		Name:  "bench",
		Input: json.RawMessage(fmt.Sprintf(`{"tasks":%d,"ms":%d}`, n, ms)),
	}
}

// submitSleep submits total sleep tasks of ms each, in jobs of at most
// maxJobTasks, round robin over the coordinators, and returns the jobs.
func (e *env) submitSleep(ctx context.Context, total, ms int) ([]tasks.Job, error) {
	var jobs []tasks.Job
	for i := 0; total > 0; i++ {
		n := min(total, maxJobTasks)
		total -= n
		j, err := e.api(i%len(e.coords)).Submit(ctx, sleepSpec(n, ms), client.SubmitOptions{})
		if err != nil {
			return jobs, fmt.Errorf("submit: %w", err)
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// waitJobs waits until every job is final and returns them as they
// ended. A job that did not succeed is an error.
func (e *env) waitJobs(ctx context.Context, jobs []tasks.Job) ([]tasks.Job, error) {
	out := make([]tasks.Job, len(jobs))
	for i, j := range jobs {
		for !j.State.Final() {
			var err error
			j, err = e.api(i%len(e.coords)).Job(ctx, j.ID, 30*time.Second)
			if err != nil {
				return out, fmt.Errorf("wait job %s: %w", jobs[i].ID, err)
			}
		}
		if j.State != tasks.JobSucceeded {
			return out, fmt.Errorf("job %s ended %s: %s", j.ID, j.State, j.Error)
		}
		out[i] = j
	}
	return out, nil
}

// checkTasks reads every task of the jobs and returns how many were
// leased more than once. A task not succeeded is an error.
func (e *env) checkTasks(ctx context.Context, jobs []tasks.Job) (retried int, err error) {
	for _, j := range jobs {
		list, err := e.api(0).Tasks(ctx, j.ID, "")
		if err != nil {
			return retried, fmt.Errorf("list tasks of %s: %w", j.ID, err)
		}
		if len(list) != j.Tasks.Total {
			return retried, fmt.Errorf("job %s lists %d tasks of %d", j.ID, len(list), j.Tasks.Total)
		}
		for _, t := range list {
			if t.State != tasks.TaskSucceeded {
				return retried, fmt.Errorf("job %s task %d is %s", j.ID, t.Index, t.State)
			}
			if t.Attempts > 1 {
				retried++
			}
		}
	}
	return retried, nil
}

// completedTotal sums tabgrid_tasks_completed_total over the
// coordinators: results accepted, counted once per task.
func (e *env) completedTotal(ctx context.Context) (float64, error) {
	var n float64
	for i := range e.coords {
		m, err := e.metrics(ctx, i)
		if err != nil {
			return 0, err
		}
		n += m.sum("tabgrid_tasks_completed_total")
	}
	return n, nil
}
