package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/coordinator/simtab"
	"github.com/tabgrid/tabgrid/store/redistest"
)

// TestCoordinatorSIGKILLTabsMoveToTheSurvivor runs two `tabgrid serve`
// processes on one Redis behind a proxy, with simulated tabs connected
// through it. One coordinator is SIGKILLed while its tabs hold tasks: the
// tabs reconnect through the proxy to the survivor, the survivor's reaper
// requeues the dead coordinator's leases once they expire, and the job
// ends with exactly the Go reference result, every task counted once.
func TestCoordinatorSIGKILLTabsMoveToTheSurvivor(t *testing.T) {
	rds := redistest.Start(t)
	flags := []string{"--lease-ttl", "2s", "--heartbeat-timeout", "3s"}
	victim := startCoordinator(t, rds.URL(), flags...)
	survivor := startCoordinator(t, rds.URL(), flags...)
	px := startProxy(t, victim.URL(), survivor.URL())
	a := api{t: t, base: survivor.URL()}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(px.URL(), "http") + "/ws"
	var tabs []*simtab.Tab
	for i := range 6 {
		tab, err := simtab.Dial(ctx, wsURL, simtab.Options{
			Capacity: 2, Name: fmt.Sprintf("sim-%d", i), Delay: 40 * time.Millisecond,
			Reconnect: true, ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second,
		})
		if err != nil {
			t.Fatalf("tab %d: %v", i, err)
		}
		t.Cleanup(func() { tab.Close() })
		tabs = append(tabs, tab)
	}
	victimID := victim.coordinatorID(t)
	onVictim := func() int { return len(workersOf(t, survivor.URL(), victimID)) }
	waitFor(t, 20*time.Second, "tabs on both coordinators", func() bool {
		return onVictim() > 0 && onVictim() < len(tabs)
	})

	const input = `{"from": 0, "to": 4000000}`
	const split = 200
	job := a.submit(map[string]any{"kind": "primes", "input": json.RawMessage(input), "split": map[string]int{"tasks": split}})
	waitFor(t, 60*time.Second, "a quarter of the job done with the victim's tabs busy", func() bool {
		j := a.job(job.ID)
		return j.Tasks.Succeeded >= split/4 && j.Tasks.Running > 0
	})
	victim.kill()
	killedAt := time.Now()

	got := a.waitJob(job.ID, 2*time.Minute)
	if got.State != "succeeded" {
		t.Fatalf("job %s: %s (%s), tasks %+v", got.ID, got.State, got.Error, got.Tasks)
	}
	t.Logf("job done %.1f s after the SIGKILL", time.Since(killedAt).Seconds())
	var res, want struct{ Count int }
	json.Unmarshal(got.Result, &res)
	json.Unmarshal(referenceResult(t, "primes", input, split), &want)
	if res.Count != want.Count || want.Count == 0 {
		t.Fatalf("count %d, the Go reference says %d", res.Count, want.Count)
	}
	if got.Tasks.Succeeded != split || got.Tasks.Total != split {
		t.Fatalf("tasks %+v, want all %d succeeded", got.Tasks, split)
	}

	// Every tab is now on the survivor, and the survivor requeued the dead
	// coordinator's leases (none were lost, none counted twice: the store
	// accepted exactly one result per task).
	waitFor(t, 20*time.Second, "every tab reconnected to the survivor", func() bool {
		return len(workersOf(t, survivor.URL(), "")) == len(tabs)
	})
	m, err := readCounters(survivor.URL())
	if err != nil {
		t.Fatal(err)
	}
	if lost := m.requeued["coordinator_lost"]; lost < 1 {
		t.Errorf("survivor requeued %v tasks of the dead coordinator, want > 0 (metrics %+v)", lost, m)
	}
	var tasksList struct {
		Tasks []struct {
			Index int    `json:"index"`
			State string `json:"state"`
		} `json:"tasks"`
	}
	a.call("GET", "/api/v1/jobs/"+job.ID+"/tasks", nil, &tasksList)
	seen := map[int]bool{}
	for _, tk := range tasksList.Tasks {
		if tk.State != "succeeded" || seen[tk.Index] {
			t.Fatalf("task %d: state %s, listed twice %v", tk.Index, tk.State, seen[tk.Index])
		}
		seen[tk.Index] = true
	}
	if len(seen) != split {
		t.Fatalf("%d tasks listed, want %d", len(seen), split)
	}
}

// workersOf lists the ids of the tabs GET /workers reports on the
// coordinator with id coord ("" = on every coordinator).
func workersOf(t testing.TB, base, coord string) []string {
	t.Helper()
	var ws struct {
		Workers []struct {
			ID          string `json:"id"`
			Coordinator string `json:"coordinator"`
		} `json:"workers"`
	}
	api{t: t, base: base}.call("GET", "/api/v1/workers", nil, &ws)
	var ids []string
	for _, w := range ws.Workers {
		if coord == "" || w.Coordinator == coord {
			ids = append(ids, w.ID)
		}
	}
	return ids
}

var coordinatorIDRE = regexp.MustCompile(`msg=listening addr=\S+ coordinator=(\S+)`)

// coordinatorID is the id the process logged when it started listening.
func (c *coordProc) coordinatorID(t testing.TB) string {
	t.Helper()
	m := coordinatorIDRE.FindAllStringSubmatch(c.logs.String(), -1)
	if len(m) == 0 {
		t.Fatalf("coordinator %s logged no id:\n%s", c.addr, c.logs.String())
	}
	return m[len(m)-1][1]
}

// waitFor polls cond until it holds or within runs out.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached within %s: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
