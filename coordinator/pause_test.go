package coordinator_test

import (
	"context"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/coordinator"
	"github.com/tabgrid/tabgrid/coordinator/simtab"
)

// TestPausedTabHandsBackItsTasks: a tab that reports capacity 0 holds
// tasks it will not run; the hub revokes them at once and requeues them
// without counting an attempt, and another tab finishes the job.
func TestPausedTabHandsBackItsTasks(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		th := startHub(t, b.st, coordinator.HubConfig{})
		paused := dialTab(t, th.url, simtab.Options{Capacity: 2, Delay: time.Hour})
		spec := primesSpec(50_000, 10)
		job := submit(t, b.st, spec)
		eventually(t, 10*time.Second, "the tab holds capacity + prefetch", func() bool { return paused.Stats().Received == 4 })
		if err := paused.SetCapacity(0); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the paused tab told to drop its tasks", func() bool { return paused.Stats().Cancelled == 4 })
		eventually(t, 5*time.Second, "its tasks pending again", func() bool {
			j, err := b.st.GetJob(context.Background(), job.ID)
			return err == nil && j.Tasks.Running == 0 && j.Tasks.Pending == 10
		})
		dialTab(t, th.url, simtab.Options{Capacity: 2})
		checkSucceeded(t, b.st, job, spec, th.completed)
		ts, err := b.st.ListTasks(context.Background(), job.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range ts {
			if tk.Failures != 0 {
				t.Fatalf("task %d has %d failures: the pause counted as an attempt", tk.Index, tk.Failures)
			}
		}
		if got := paused.Stats().Received; got != 4 {
			t.Fatalf("the paused tab received %d tasks, want no more than the 4 it had", got)
		}
	})
}
