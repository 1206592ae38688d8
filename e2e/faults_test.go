package e2e

// The fault suite: DESIGN.md's promise (every task executed, every result
// counted once, jobs finish through failures) with the real binary, real
// redis-server processes and real headless Chromium tabs. Each scenario
// injects one kind of failure mid-job, waits for every job to end, checks
// the result against the Go reference, proves that no task was lost and
// none counted twice, and records how long recovery took (report_test.go
// prints the table).
//
// No double counting is shown twice over: in the store (every task
// succeeded, and the job's succeeded counter, which only an accepted
// result moves, equals the task count) and in the coordinators' metrics
// (results accepted, summed over every coordinator process, equal the
// tasks succeeded; exact unless a coordinator died uncleanly between its
// last scrape and its end, when it is a lower bound, marked †).

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/store/redistest"
)

// faultFlags make recovery quick: a silent tab is dropped after 2 s, a
// silent coordinator presumed dead after 3 s (reaped within 1 s more).
var faultFlags = []string{"--heartbeat-timeout", "2s", "--lease-ttl", "3s", "--shutdown-timeout", "5s"}

// counters are the metrics one coordinator process reports.
type counters struct {
	accepted   int
	dispatched int
	requeued   map[string]int
	dropped    map[string]int
}

func newCounters() counters {
	return counters{requeued: map[string]int{}, dropped: map[string]int{}}
}

func (c *counters) add(o counters) {
	c.accepted += o.accepted
	c.dispatched += o.dispatched
	for k, v := range o.requeued {
		c.requeued[k] += v
	}
	for k, v := range o.dropped {
		c.dropped[k] += v
	}
}

func (c counters) requeuedTotal() int {
	n := 0
	for _, v := range c.requeued {
		n += v
	}
	return n
}

var metricLine = regexp.MustCompile(`^(tabgrid_[a-z_]+)(?:\{reason="([a-z_]+)"\})? ([0-9.e+]+)$`)

// readCounters reads a coordinator's /metrics.
func readCounters(base string) (counters, error) {
	c := newCounters()
	cl := http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Get(base + "/metrics")
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return c, err
	}
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("GET /metrics: %d", resp.StatusCode)
	}
	for _, line := range strings.Split(string(body), "\n") {
		m := metricLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		switch m[1] {
		case "tabgrid_tasks_completed_total":
			c.accepted = int(v)
		case "tabgrid_tasks_dispatched_total":
			c.dispatched = int(v)
		case "tabgrid_tasks_requeued_total":
			c.requeued[m[2]] = int(v)
		case "tabgrid_results_dropped_total":
			c.dropped[m[2]] = int(v)
		}
	}
	return c, nil
}

// grid is one scenario's deployment: a redis-server, coordinators, maybe
// a proxy in front of them, and the address tabs and API calls use.
type grid struct {
	t      *testing.T
	rds    *redistest.Server
	coords []*coordProc
	alive  []bool
	px     *proxy
	base   string
	a      api

	*gridState // shared with the copies sub makes for subtests

	// A subtest's rows count from where it started.
	mark     counters
	jobsFrom int
}

type gridState struct {
	settled counters // metrics of coordinator processes that have ended
	exact   bool     // false once a coordinator ended without a final scrape
	jobs    []string // every job the scenario submitted
}

// sub is the grid as seen from a subtest: failures go to t.
func (g *grid) sub(t *testing.T) *grid {
	c := *g
	c.t = t
	c.a.t = t
	c.mark = g.counters()
	c.jobsFrom = len(g.jobs)
	return &c
}

type gridOptions struct {
	coordinators int
	aof          bool // Redis keeps an append-only file, so a restart keeps the data
	proxy        bool // tabs and API calls go through a proxy in front of every coordinator
}

func newGrid(t *testing.T, o gridOptions) *grid {
	t.Helper()
	requireChromium(t)
	opts := []redistest.Option{redistest.WithArgs("--maxmemory-policy", "noeviction")}
	if o.aof {
		opts = append(opts, redistest.WithAOF())
	}
	g := &grid{t: t, rds: redistest.Start(t, opts...), gridState: &gridState{settled: newCounters(), exact: true}, mark: newCounters()}
	for range max(1, o.coordinators) {
		g.coords = append(g.coords, startCoordinator(t, g.rds.URL(), faultFlags...))
		g.alive = append(g.alive, true)
	}
	g.base = g.coords[0].URL()
	if o.proxy {
		var urls []string
		for _, c := range g.coords {
			urls = append(urls, c.URL())
		}
		g.px = startProxy(t, urls...)
		g.base = g.px.URL()
	}
	g.a = api{t: t, base: g.base}
	t.Cleanup(func() {
		if t.Failed() {
			for i, c := range g.coords {
				t.Logf("coordinator %d log (last lines):\n%s", i, c.logs.String())
			}
		}
	})
	return g
}

// settle takes a coordinator's final metrics just before it ends.
func (g *grid) settle(i int) {
	g.t.Helper()
	c, err := readCounters(g.coords[i].URL())
	if err != nil {
		g.t.Fatalf("scrape coordinator %d before it ends: %v", i, err)
	}
	g.settled.add(c)
	g.alive[i] = false
}

// crash SIGKILLs coordinator i. Results it accepted after the last scrape
// are not in the metrics, so the accepted count becomes a lower bound.
func (g *grid) crash(i int) {
	g.t.Helper()
	g.settle(i)
	g.coords[i].kill()
	g.exact = false
}

// term stops coordinator i with SIGTERM and waits for its clean exit. It
// hands its tasks back after the last scrape, so counts become a lower
// bound here too.
func (g *grid) term(i int) {
	g.t.Helper()
	g.settle(i)
	g.coords[i].term()
	g.exact = false
}

func (g *grid) restart(i int) {
	g.t.Helper()
	g.coords[i].restart()
	g.alive[i] = true
}

// counters sums the metrics of every coordinator process so far.
func (g *grid) counters() counters {
	g.t.Helper()
	sum := newCounters()
	sum.add(g.settled)
	for i, c := range g.coords {
		if !g.alive[i] {
			continue
		}
		var got counters
		var err error
		for range 20 { // a coordinator just restarted may be busy for a moment
			if got, err = readCounters(c.URL()); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			g.t.Fatalf("scrape coordinator %d: %v", i, err)
		}
		sum.add(got)
	}
	return sum
}

// waitCounters polls the metrics until ok accepts them and returns when.
func (g *grid) waitCounters(within time.Duration, what string, ok func(counters) bool) time.Time {
	g.t.Helper()
	deadline := time.Now().Add(within)
	for {
		c := g.counters()
		if ok(c) {
			return time.Now()
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("%s not seen within %s: requeued %v, dropped %v, accepted %d", what, within, c.requeued, c.dropped, c.accepted)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitRequeued waits until the tasks requeued for reason grew by at least
// n over base.
func (g *grid) waitRequeued(base counters, reason string, n int, within time.Duration) time.Time {
	g.t.Helper()
	return g.waitCounters(within, fmt.Sprintf("%d tasks requeued (%s)", n, reason), func(c counters) bool {
		return c.requeued[reason]-base.requeued[reason] >= n
	})
}

// jobCase is a job spec and the result the Go reference gives for it.
type jobCase struct {
	spec  map[string]any
	want  json.RawMessage
	tasks int
}

// slowJS is a js job whose items each wait ms in the worker (so tasks are
// reliably in flight when a fault strikes) and map x to 3x+1, so a
// misplaced or doubled output would show in the result.
func slowJS(t testing.TB, name string, items, ms, tasks int) jobCase {
	t.Helper()
	in := make([]int, items)
	out := make([]int, items)
	for i := range in {
		in[i] = i
		out[i] = 3*i + 1
	}
	want, err := json.Marshal(map[string]any{"outputs": out})
	if err != nil {
		t.Fatal(err)
	}
	return jobCase{
		spec: map[string]any{
			"kind": "js", "name": name,
			"input": map[string]any{
				"code":  fmt.Sprintf("async (x) => { await new Promise((r) => setTimeout(r, %d)); return 3 * x + 1 }", ms),
				"items": in,
			},
			"split": map[string]int{"tasks": tasks},
		},
		want:  want,
		tasks: tasks,
	}
}

// primesJob counts primes in the browsers; the Go reference checks it.
func primesJob(t *testing.T, name string, from, to, tasks int) jobCase {
	t.Helper()
	input := fmt.Sprintf(`{"from": %d, "to": %d}`, from, to)
	return jobCase{
		spec:  map[string]any{"kind": "primes", "name": name, "input": json.RawMessage(input), "split": map[string]int{"tasks": tasks}},
		want:  referenceResult(t, "primes", input, tasks),
		tasks: tasks,
	}
}

func (g *grid) submit(jc jobCase) jobView {
	g.t.Helper()
	j := g.a.submit(jc.spec)
	g.jobs = append(g.jobs, j.ID)
	if j.Tasks.Total != jc.tasks {
		g.t.Fatalf("job %s has %d tasks, want %d", j.ID, j.Tasks.Total, jc.tasks)
	}
	return j
}

type taskView struct {
	Index    int    `json:"index"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	Failures int    `json:"failures"`
	Worker   string `json:"worker"`
	Error    string `json:"error"`
}

func (g *grid) tasks(jobID, state string) []taskView {
	g.t.Helper()
	var out struct {
		Tasks []taskView `json:"tasks"`
	}
	path := "/api/v1/jobs/" + jobID + "/tasks"
	if state != "" {
		path += "?state=" + state
	}
	if code := g.a.call("GET", path, nil, &out); code != http.StatusOK {
		g.t.Fatalf("GET %s: %d", path, code)
	}
	return out.Tasks
}

// finish waits for a job to end and checks that it succeeded with the Go
// reference's result, every task succeeded once and none is missing.
func (g *grid) finish(j jobView, jc jobCase, within time.Duration) jobView {
	g.t.Helper()
	got := g.a.waitJob(j.ID, within)
	if got.State != "succeeded" {
		g.t.Fatalf("job %s (%s): state %s, error %q, tasks %+v", got.ID, jc.spec["name"], got.State, got.Error, got.Tasks)
	}
	if !volSameJSON(g.t, got.Result, jc.want) {
		g.t.Fatalf("job %s (%s): result %s, want the Go reference %s", got.ID, jc.spec["name"], clipText(string(got.Result)), clipText(string(jc.want)))
	}
	if c := got.Tasks; c.Total != jc.tasks || c.Succeeded != jc.tasks || c.Pending+c.Running+c.Failed != 0 {
		g.t.Fatalf("job %s counts %+v: want all %d tasks succeeded exactly once", got.ID, c, jc.tasks)
	}
	ts := g.tasks(j.ID, "")
	if len(ts) != jc.tasks {
		g.t.Fatalf("job %s lists %d tasks, want %d", j.ID, len(ts), jc.tasks)
	}
	for i, tk := range ts {
		if tk.Index != i || tk.State != "succeeded" || tk.Worker == "" {
			g.t.Fatalf("job %s task %d: %+v, want succeeded by some worker", j.ID, i, tk)
		}
	}
	return got
}

func clipText(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// row fills a recovery row with the counts every scenario reports and
// checks the counting invariants over every job of the scenario: results
// accepted (metrics) equal tasks succeeded (store), exactly when every
// coordinator was scraped at its end and at most otherwise; duplicates
// are only ever dropped.
func (g *grid) row(r recoveryRow) recoveryRow {
	g.t.Helper()
	c := g.counters()
	c.accepted -= g.mark.accepted
	for k, v := range g.mark.requeued {
		c.requeued[k] -= v
	}
	for k, v := range g.mark.dropped {
		c.dropped[k] -= v
	}
	succeeded, total := 0, 0
	for _, id := range g.jobs[g.jobsFrom:] {
		j := g.a.job(id)
		succeeded += j.Tasks.Succeeded
		total += j.Tasks.Total
	}
	r.Requeued = c.requeued
	r.Stale += c.dropped["stale"]
	r.Duplicate = c.dropped["duplicate"]
	r.Accepted, r.Succeeded, r.Tasks, r.Exact = c.accepted, succeeded, total, g.exact
	if g.exact && c.accepted != succeeded {
		g.t.Errorf("coordinators accepted %d results, the store has %d tasks succeeded: a result was counted twice or lost", c.accepted, succeeded)
	}
	if !g.exact && c.accepted > succeeded {
		g.t.Errorf("coordinators accepted %d results (a lower bound), the store has only %d tasks succeeded: a result was counted twice", c.accepted, succeeded)
	}
	if f := c.dropped["forged"]; f != 0 {
		g.t.Errorf("%d results dropped as forged: real tabs never forge", f)
	}
	return r
}

// volTab is one volunteer tab and the renderer process it runs in.
type volTab struct {
	*browserTab
	renderer int // 0 when it could not be told apart
}

// rendererPIDs lists the browser's renderer processes that run a
// dedicated worker (every started volunteer page runs its heartbeat
// worker).
func rendererPIDs(b *browser) map[int]bool {
	out := map[int]bool{}
	for _, pid := range pidsUsing(b.dataDir) {
		dir := filepath.Join("/proc", strconv.Itoa(pid))
		cmd, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil || !strings.Contains(string(cmd), "--type=renderer") {
			continue
		}
		threads, _ := os.ReadDir(filepath.Join(dir, "task"))
		for _, th := range threads {
			comm, _ := os.ReadFile(filepath.Join(dir, "task", th.Name(), "comm"))
			if strings.HasPrefix(string(comm), "DedicatedWorker") {
				out[pid] = true
				break
			}
		}
	}
	return out
}

// startFaultBrowser starts a browser whose first tab (which chromedp
// opened at start and which closes only with the browser) is taken by a
// blank page, so that every volunteer tab can be closed on its own.
func startFaultBrowser(t testing.TB) *browser {
	t.Helper()
	b := startBrowser(t, browserOptions{})
	b.open("blank", "about:blank")
	return b
}

// openTab opens a volunteer tab with two threads on base, waits until it
// is connected and finds its renderer process (the one new renderer
// that runs workers).
func openTab(t testing.TB, b *browser, base, name string) *volTab {
	t.Helper()
	before := rendererPIDs(b)
	tab := b.open(name, base+"/?autostart=1&threads=2&name="+name)
	tab.waitText(t, "#state", 30*time.Second, "connected", func(s string) bool { return s == "connected" })
	v := &volTab{browserTab: tab}
	deadline := time.Now().Add(5 * time.Second)
	for v.renderer == 0 && time.Now().Before(deadline) {
		var fresh []int
		for pid := range rendererPIDs(b) {
			if !before[pid] {
				fresh = append(fresh, pid)
			}
		}
		if len(fresh) == 1 {
			v.renderer = fresh[0]
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return v
}

// openTabs opens n volunteer tabs and waits until the coordinators list
// them all.
func (g *grid) openTabs(b *browser, prefix string, n int) []*volTab {
	g.t.Helper()
	tabs := make([]*volTab, n)
	for i := range tabs {
		tabs[i] = openTab(g.t, b, g.base, fmt.Sprintf("%s%d", prefix, i+1))
	}
	g.waitWorkers(g.t, 20*time.Second, func(ws []workerView) bool {
		k := 0
		for _, w := range ws {
			if strings.HasPrefix(w.Name, prefix) && w.Capacity == 2 {
				k++
			}
		}
		return k == n
	})
	return tabs
}

type workerView struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Capacity    int    `json:"capacity"`
	InFlight    int    `json:"in_flight"`
	Coordinator string `json:"coordinator"`
}

func (g *grid) workers() []workerView {
	g.t.Helper()
	var ws struct {
		Workers []workerView `json:"workers"`
	}
	g.a.call("GET", "/api/v1/workers", nil, &ws)
	return ws.Workers
}

func (g *grid) waitWorkers(t testing.TB, within time.Duration, ok func([]workerView) bool) []workerView {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ws := g.workers()
		if ok(ws) {
			return ws
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers %+v: condition not reached within %s", ws, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (tab *volTab) workerID(t testing.TB) string {
	t.Helper()
	id := tab.waitText(t, "#worker-id", 10*time.Second, "a worker id", func(s string) bool { return strings.HasPrefix(s, "t-") })
	return id
}

func (tab *volTab) number(t testing.TB, selector string) int {
	t.Helper()
	s, err := tab.text(selector)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(s)
	return n
}

// waitBusy waits until the tab shows a task running in a worker.
func (tab *volTab) waitBusy(t testing.TB) {
	t.Helper()
	tab.waitText(t, "#busy", 30*time.Second, "busy", func(s string) bool { n, _ := strconv.Atoi(s); return n > 0 })
}

// waitProgress waits until at least n tasks of a job succeeded.
func (g *grid) waitProgress(id string, n int, within time.Duration) {
	g.t.Helper()
	deadline := time.Now().Add(within)
	for {
		j := g.a.job(id)
		if j.Tasks.Succeeded >= n {
			return
		}
		if j.State != "running" && j.State != "queued" {
			g.t.Fatalf("job %s ended (%s) before the fault: make it longer", id, j.State)
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("job %s: %d tasks succeeded after %s, waiting for %d", id, j.Tasks.Succeeded, within, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signalPIDs sends sig to each process, ignoring those already gone.
func signalPIDs(pids []int, sig syscall.Signal) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig)
	}
}

// TestFaultTabsClosed: a tab closed mid-job (its target closed), then a
// renderer SIGKILLed mid-job. The coordinator requeues their tasks at
// once and the other tabs finish the jobs.
func TestFaultTabsClosed(t *testing.T) {
	g := newGrid(t, gridOptions{coordinators: 1})
	b := startFaultBrowser(t)
	tabs := g.openTabs(b, "closed-", 4)

	t.Run("tab closed", func(t *testing.T) {
		g := g.sub(t)
		jc := slowJS(t, "1a close a tab", 120, 300, 60)
		j := g.submit(jc)
		victim := tabs[0]
		g.waitProgress(j.ID, 4, 30*time.Second)
		victim.waitBusy(t)
		base := g.counters()
		fault := time.Now()
		victim.close()
		requeued := g.waitRequeued(base, "closed", 1, 20*time.Second)
		g.finish(j, jc, 2*time.Minute)
		done := time.Now()
		recordRecovery(t, g.row(recoveryRow{
			Scenario: "1a tab closed mid-job", Recovery: "its tasks requeued",
			ToRecover: requeued.Sub(fault), ToDone: done.Sub(requeued),
		}))
	})

	t.Run("renderer killed", func(t *testing.T) {
		g := g.sub(t)
		victim := tabs[1]
		if victim.renderer == 0 {
			t.Fatal("could not tell the tab's renderer process apart")
		}
		jc := slowJS(t, "1b kill a renderer", 120, 300, 60)
		j := g.submit(jc)
		g.waitProgress(j.ID, 4, 30*time.Second)
		victim.waitBusy(t)
		base := g.counters()
		fault := time.Now()
		signalPIDs([]int{victim.renderer}, syscall.SIGKILL)
		requeued := g.waitRequeued(base, "closed", 1, 20*time.Second)
		g.finish(j, jc, 2*time.Minute)
		done := time.Now()
		recordRecovery(t, g.row(recoveryRow{
			Scenario: "1b renderer SIGKILLed mid-job", Recovery: "its tasks requeued",
			ToRecover: requeued.Sub(fault), ToDone: done.Sub(requeued),
		}))
	})
}

// TestFaultTabFrozen: a tab's renderer is SIGSTOPped mid-task, its socket
// left open. After the heartbeat timeout its tasks move to other tabs;
// after SIGCONT it reconnects as a new worker, and the results it
// finished late are dropped (the page counts them) and never counted.
func TestFaultTabFrozen(t *testing.T) {
	g := newGrid(t, gridOptions{coordinators: 1})
	b := startFaultBrowser(t)
	tabs := g.openTabs(b, "frozen-", 3)
	victim := tabs[0]
	if victim.renderer == 0 {
		t.Fatal("could not tell the tab's renderer process apart")
	}
	// One item per task: a task running when the tab froze has its
	// result ready the moment the tab wakes.
	jc := slowJS(t, "2 freeze a tab", 40, 1200, 40)
	j := g.submit(jc)
	oldID := victim.workerID(t)
	victim.waitBusy(t)
	g.waitProgress(j.ID, 3, 30*time.Second)

	base := g.counters()
	fault := time.Now()
	syscall.Kill(victim.renderer, syscall.SIGSTOP)
	t.Cleanup(func() { syscall.Kill(victim.renderer, syscall.SIGCONT) })
	// What the frozen tab holds, once what it sent before it froze has
	// been taken in.
	time.Sleep(300 * time.Millisecond)
	held := map[int]bool{}
	for _, tk := range g.tasks(j.ID, "running") {
		if tk.Worker == oldID {
			held[tk.Index] = true
		}
	}
	if len(held) == 0 {
		t.Fatalf("the frozen tab %s held no task", oldID)
	}
	requeued := g.waitRequeued(base, "heartbeat", len(held), 20*time.Second)
	// Stay frozen past the moment the tasks it was running would have
	// finished, so that it has late results when it wakes.
	time.Sleep(time.Second)
	syscall.Kill(victim.renderer, syscall.SIGCONT)

	// It wakes, finds its socket closed, drops what it finished late and
	// reconnects as a new worker.
	victim.waitText(t, "#worker-id", 30*time.Second, "a new worker id", func(s string) bool { return strings.HasPrefix(s, "t-") && s != oldID })
	victim.waitText(t, "#state", 10*time.Second, "connected", func(s string) bool { return s == "connected" })
	// Whether it has late results at all is a race inside the woken
	// page: if its socket's close is handled before its workers' replies,
	// the pool is cleared and the late tasks never finish. Either way
	// nothing of it may count, which is what is checked below.
	late := victim.number(t, "#results-dropped")
	t.Logf("the woken tab dropped %d late results", late)
	g.finish(j, jc, 2*time.Minute)
	done := time.Now()
	for _, tk := range g.tasks(j.ID, "") {
		if held[tk.Index] && tk.Worker == oldID {
			t.Errorf("task %d, requeued from the frozen tab, was credited to it: %+v", tk.Index, tk)
		}
	}
	recordRecovery(t, g.row(recoveryRow{
		Scenario: "2 tab frozen (SIGSTOP) mid-task", Recovery: "heartbeat timeout requeued its tasks",
		ToRecover: requeued.Sub(fault), ToDone: done.Sub(requeued), Stale: late,
		Note: fmt.Sprintf("frozen tab held %d tasks; after SIGCONT it dropped %d late results (counted in the page, never sent)", len(held), late),
	}))
}

// TestFaultBrowserKilled: one whole browser (every process of it) is
// SIGKILLed mid-job while a second browser keeps computing.
func TestFaultBrowserKilled(t *testing.T) {
	g := newGrid(t, gridOptions{coordinators: 1})
	doomed := startFaultBrowser(t)
	keeper := startFaultBrowser(t)
	dtabs := g.openTabs(doomed, "doomed-", 3)
	g.openTabs(keeper, "keeper-", 2)

	jc := slowJS(t, "3 kill a browser", 90, 250, 45)
	pc := primesJob(t, "3 primes", 0, 20_000_000, 40)
	j := g.submit(jc)
	p := g.submit(pc)
	dtabs[0].waitBusy(t)
	g.waitProgress(j.ID, 4, 30*time.Second)

	base := g.counters()
	fault := time.Now()
	signalPIDs(pidsUsing(doomed.dataDir), syscall.SIGKILL)
	requeued := g.waitRequeued(base, "closed", 1, 20*time.Second)
	// All three tabs are gone from the grid.
	g.waitWorkers(t, 20*time.Second, func(ws []workerView) bool {
		for _, w := range ws {
			if strings.HasPrefix(w.Name, "doomed-") {
				return false
			}
		}
		return true
	})
	g.finish(j, jc, 2*time.Minute)
	g.finish(p, pc, 2*time.Minute)
	done := time.Now()
	recordRecovery(t, g.row(recoveryRow{
		Scenario: "3 whole browser SIGKILLed", Recovery: "its tasks requeued",
		ToRecover: requeued.Sub(fault), ToDone: done.Sub(requeued),
		Note: "3 of 5 tabs killed; a js and a primes job",
	}))
}

// TestFaultCoordinatorKilledBehindProxy: two coordinators share Redis
// behind a proxy; one is SIGKILLed mid-job. Its tabs reconnect through
// the proxy to the survivor, which requeues the dead one's leases once
// its lease expires, and the jobs complete.
func TestFaultCoordinatorKilledBehindProxy(t *testing.T) {
	g := newGrid(t, gridOptions{coordinators: 2, proxy: true})
	b := startFaultBrowser(t)
	// The proxy spreads requests, not tabs: open tabs until both
	// coordinators hold some.
	tabCount := 0
	for {
		tabCount++
		openTab(t, b, g.base, fmt.Sprintf("px-%d", tabCount))
		ws := g.waitWorkers(t, 20*time.Second, func(ws []workerView) bool { return len(ws) == tabCount })
		perCoord := map[string]int{}
		for _, w := range ws {
			perCoord[w.Coordinator]++
		}
		if tabCount >= 4 && len(perCoord) == 2 {
			break
		}
		if tabCount == 6 {
			t.Fatalf("six tabs, all on one coordinator: %+v", ws)
		}
	}

	jc := slowJS(t, "4 kill a coordinator", 100, 250, 50)
	pc := primesJob(t, "4 primes", 10_000_000, 30_000_000, 40)
	j := g.submit(jc)
	p := g.submit(pc)
	g.waitProgress(j.ID, 5, 30*time.Second)
	// The victim must hold leases when it dies.
	victimID := ""
	g.waitWorkers(t, 10*time.Second, func(ws []workerView) bool {
		victimID = ""
		for _, w := range ws {
			if w.InFlight > 0 {
				victimID = w.Coordinator
			}
		}
		return victimID != ""
	})
	victim := -1
	for i, c := range g.coords {
		if c.coordinatorID(t) == victimID {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("no coordinator process has id %s", victimID)
	}
	survivor := 1 - victim

	base := g.counters()
	fault := time.Now()
	g.crash(victim)
	requeued := g.waitRequeued(base, "coordinator_lost", 1, 30*time.Second)
	// Every tab is back, all on the survivor.
	g.waitWorkers(t, 30*time.Second, func(ws []workerView) bool {
		for _, w := range ws {
			if w.Coordinator == victimID {
				return false
			}
		}
		return len(ws) == tabCount
	})
	g.finish(j, jc, 2*time.Minute)
	g.finish(p, pc, 2*time.Minute)
	done := time.Now()
	lost := g.counters().requeued["coordinator_lost"] - base.requeued["coordinator_lost"]
	recordRecovery(t, g.row(recoveryRow{
		Scenario: "4 one of two coordinators SIGKILLed behind the proxy", Recovery: "survivor requeued the dead one's leases",
		ToRecover: requeued.Sub(fault), ToDone: done.Sub(requeued),
		Note: fmt.Sprintf("%d tabs reconnected through the proxy; survivor (coordinator %d) requeued %d leases", tabCount, survivor, lost),
	}))
}

// TestFaultCoordinatorRestart: the only coordinator is restarted mid-job,
// cleanly (SIGTERM) and not (SIGKILL); jobs resume from Redis.
func TestFaultCoordinatorRestart(t *testing.T) {
	g := newGrid(t, gridOptions{coordinators: 1, aof: true})
	b := startFaultBrowser(t)
	tabs := g.openTabs(b, "restart-", 3)

	t.Run("SIGTERM", func(t *testing.T) {
		g := g.sub(t)
		jc := slowJS(t, "5a restart (SIGTERM)", 80, 250, 40)
		j := g.submit(jc)
		tabs[0].waitBusy(t)
		g.waitProgress(j.ID, 4, 30*time.Second)
		fault := time.Now()
		g.term(0) // returns once it handed its tasks back and exited
		handedBack := time.Now()
		g.restart(0)
		g.finish(j, jc, 2*time.Minute)
		done := time.Now()
		recordRecovery(t, g.row(recoveryRow{
			Scenario: "5a coordinator restarted (SIGTERM)", Recovery: "it handed its tasks back and exited",
			ToRecover: handedBack.Sub(fault), ToDone: done.Sub(handedBack),
			Note: "requeues of the shutdown itself are not in the table (the process is gone)",
		}))
	})

	t.Run("SIGKILL", func(t *testing.T) {
		g := g.sub(t)
		jc := slowJS(t, "5b restart (SIGKILL)", 80, 250, 40)
		j := g.submit(jc)
		g.waitWorkers(t, 30*time.Second, func(ws []workerView) bool { return len(ws) == len(tabs) })
		tabs[0].waitBusy(t)
		g.waitProgress(j.ID, 4, 30*time.Second)
		fault := time.Now()
		g.crash(0)
		g.restart(0)
		base := newCounters()
		base.add(g.settled)
		requeued := g.waitRequeued(base, "coordinator_lost", 1, 30*time.Second)
		g.finish(j, jc, 2*time.Minute)
		done := time.Now()
		recordRecovery(t, g.row(recoveryRow{
			Scenario: "5b coordinator restarted (SIGKILL)", Recovery: "new process requeued the old one's leases",
			ToRecover: requeued.Sub(fault), ToDone: done.Sub(requeued),
		}))
	})
}

// TestFaultRedisRestart: redis-server is SIGKILLed mid-job, stays down
// longer than the coordinators' lease, and restarts from its AOF. Two
// coordinators and their tabs recover without help and the jobs complete.
func TestFaultRedisRestart(t *testing.T) {
	g := newGrid(t, gridOptions{coordinators: 2, aof: true, proxy: true})
	b := startFaultBrowser(t)
	g.openTabs(b, "redis-", 4)

	jc := slowJS(t, "6 restart redis", 100, 200, 50)
	pc := primesJob(t, "6 primes", 0, 10_000_000, 30)
	j := g.submit(jc)
	p := g.submit(pc)
	g.waitProgress(j.ID, 5, 30*time.Second)
	before := g.counters()

	fault := time.Now()
	g.rds.Kill()
	time.Sleep(4 * time.Second) // past the 3 s coordinator lease
	g.rds.Restart()
	back := time.Now()
	// Recovered: results are accepted again.
	resumed := g.waitCounters(60*time.Second, "results accepted after the restart", func(c counters) bool {
		return c.accepted > before.accepted+2
	})
	g.finish(j, jc, 2*time.Minute)
	g.finish(p, pc, 2*time.Minute)
	done := time.Now()
	recordRecovery(t, g.row(recoveryRow{
		Scenario: "6 redis-server SIGKILLed, restarted from AOF", Recovery: "results accepted again",
		ToRecover: resumed.Sub(fault), ToDone: done.Sub(resumed),
		Note: fmt.Sprintf("Redis down %.1f s (kill → answering PING)", back.Sub(fault).Seconds()),
	}))
}

// TestFaultJSThrows: a js job whose function throws for one item fails
// after max_attempts, and the error names the task and the item.
func TestFaultJSThrows(t *testing.T) {
	g := newGrid(t, gridOptions{coordinators: 1})
	b := startFaultBrowser(t)
	g.openTabs(b, "throw-", 3)
	items := make([]int, 40)
	for i := range items {
		items[i] = 100 + i
	}
	// Item 23 (value 123) throws; it is in task 4 of 8 (five items each).
	spec := map[string]any{
		"kind": "js", "name": "7 throws", "max_attempts": 3,
		"input": map[string]any{
			"code":  "(x) => { if (x === 123) throw new RangeError('no luck'); return x * 2 }",
			"items": items,
		},
		"split": map[string]int{"tasks": 8},
	}
	j := g.a.submit(spec)
	g.jobs = append(g.jobs, j.ID)
	base := g.counters()
	start := time.Now()
	got := g.a.waitJob(j.ID, 2*time.Minute)
	done := time.Now()
	if got.State != "failed" {
		t.Fatalf("job %s: state %s (result %s), want failed", got.ID, got.State, got.Result)
	}
	for _, want := range []string{"task 4", "item 23", "RangeError: no luck"} {
		if !strings.Contains(got.Error, want) {
			t.Errorf("job error %q does not name %q", got.Error, want)
		}
	}
	failed := g.tasks(j.ID, "failed")
	if len(failed) != 1 || failed[0].Index != 4 || failed[0].Failures != 3 {
		t.Fatalf("failed tasks %+v, want task 4 with 3 failures", failed)
	}
	c := g.counters()
	if n := c.requeued["error"] - base.requeued["error"]; n != 2 {
		t.Errorf("requeued after an error: %d, want 2 (attempts 1 and 2; the third fails the job)", n)
	}
	recordRecovery(t, g.row(recoveryRow{
		Scenario: "7 js function throws for one item", Recovery: "–",
		ToRecover: -1, ToDone: done.Sub(start),
		Note: fmt.Sprintf("failed as documented after 3 attempts: %q", got.Error),
	}))
}

// TestFaultCancel: a job cancelled mid-run. Its tasks report themselves
// from the workers over a BroadcastChannel, so the page sees when the
// last one stops; another job goes on to its result.
func TestFaultCancel(t *testing.T) {
	g := newGrid(t, gridOptions{coordinators: 1})
	b := startFaultBrowser(t)
	tabs := g.openTabs(b, "cancel-", 3)
	// Every tab of the browser shares the origin, so one listener hears
	// the probes of every worker.
	const listen = `(() => {
		globalThis.__probe = {last: 0, items: {}};
		const bc = new BroadcastChannel("tabgrid-e2e-probe");
		bc.onmessage = (e) => { __probe.last = Date.now(); __probe.items[e.data] = true; };
		return true;
	})()`
	if err := tabs[0].eval(listen, nil); err != nil {
		t.Fatal(err)
	}
	// Three long tasks: half the threads, so the other job runs beside them.
	items := []int{0, 1, 2}
	doomed := map[string]any{
		"kind": "js", "name": "8 to cancel", "task_timeout": "120s",
		"input": map[string]any{
			"code": `async (x) => {
				const bc = new BroadcastChannel("tabgrid-e2e-probe");
				for (let i = 0; i < 1500; i++) { bc.postMessage(x); await new Promise((r) => setTimeout(r, 20)); }
				bc.close();
				return x;
			}`,
			"items": items,
		},
		"split": map[string]int{"tasks": 3},
	}
	d := g.a.submit(doomed)
	g.jobs = append(g.jobs, d.ID)

	var running int
	deadline := time.Now().Add(30 * time.Second)
	for running < 2 {
		if err := tabs[0].eval(`Object.keys(__probe.items).length`, &running); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d tasks of the job to cancel are running", running)
		}
		time.Sleep(100 * time.Millisecond)
	}
	jc := slowJS(t, "8 goes on", 80, 150, 40)
	j := g.submit(jc)
	g.waitProgress(j.ID, 2, 30*time.Second)

	var last int64
	if err := tabs[0].eval(`__probe.last`, &last); err != nil {
		t.Fatal(err)
	}
	if age := time.Since(time.UnixMilli(last)); age > time.Second {
		t.Fatalf("no probe for %s before the cancel: the job's tasks are not running", age)
	}
	cancelled := time.Now()
	var cj jobView
	if code := g.a.call("DELETE", "/api/v1/jobs/"+d.ID, nil, &cj); code != http.StatusOK || cj.State != "cancelled" {
		t.Fatalf("cancel: %d %+v", code, cj)
	}
	// Probes arrive every 20 ms while any task of it runs: wait until
	// none came for a second and a half, then read when the last one did.
	deadline = time.Now().Add(20 * time.Second)
	for {
		if err := tabs[0].eval(`__probe.last`, &last); err != nil {
			t.Fatal(err)
		}
		if time.Since(time.UnixMilli(last)) > 1500*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks of the cancelled job still running %s after the cancel", time.Since(cancelled))
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopped := time.UnixMilli(last)
	if stopped.Before(cancelled) {
		stopped = cancelled
	}
	stopAfter := stopped.Sub(cancelled)
	if stopAfter > 3*time.Second {
		t.Errorf("the cancelled job's tasks stopped %s after the cancel, want about a second", stopAfter)
	}
	g.finish(j, jc, 2*time.Minute)
	done := time.Now()
	if st := g.a.job(d.ID); st.State != "cancelled" {
		t.Errorf("cancelled job is %s", st.State)
	}
	recordRecovery(t, g.row(recoveryRow{
		Scenario: "8 job cancelled mid-run", Recovery: "its last task stopped in the page",
		ToRecover: stopAfter, ToDone: done.Sub(stopped),
		Note: fmt.Sprintf("last probe from its workers %d ms after DELETE was sent (probes every 20 ms, page clock); the other job finished", stopAfter.Milliseconds()),
	}))
}

// TestFaultChurn: six tabs keep opening and closing for a minute while a
// 2,000-task job runs.
func TestFaultChurn(t *testing.T) {
	g := newGrid(t, gridOptions{coordinators: 1})
	b := startFaultBrowser(t)
	input := `{"tasks": 2000, "ms": 350}` // 58 s on 12 threads, longer with churn
	jc := jobCase{
		spec: map[string]any{"kind": "sleep", "name": "9 churn", "input": json.RawMessage(input)},
		// The reducer reads only the task count: the reference need not
		// wait 350 ms 2,000 times.
		want:  referenceResult(t, "sleep", `{"tasks": 2000, "ms": 0}`, 0),
		tasks: 2000,
	}
	j := g.submit(jc)
	start := time.Now()
	rng := rand.New(rand.NewPCG(9, uint64(start.UnixNano())))
	type slot struct {
		tab     *volTab
		closeAt time.Time
	}
	slots := make([]slot, 6)
	opened, closed := 0, 0
	open := func(i int) {
		opened++
		slots[i] = slot{
			tab:     openTab(t, b, g.base, fmt.Sprintf("churn-%d", opened)),
			closeAt: time.Now().Add(2*time.Second + time.Duration(rng.Int64N(int64(4*time.Second)))),
		}
	}
	for i := range slots {
		open(i)
	}
	for time.Since(start) < time.Minute {
		if st := g.a.job(j.ID).State; st != "running" && st != "queued" {
			t.Logf("churn: the job is %s after %s, before the minute of churn ended", st, time.Since(start))
			break
		}
		for i := range slots {
			if time.Now().After(slots[i].closeAt) {
				slots[i].tab.close()
				closed++
				open(i)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	churnEnd := time.Now()
	g.finish(j, jc, 3*time.Minute)
	done := time.Now()
	c := g.counters()
	if c.requeued["closed"] == 0 {
		t.Errorf("churn closed %d tabs but requeued nothing", closed)
	}
	recordRecovery(t, g.row(recoveryRow{
		Scenario: "9 churn: six tabs opening and closing for a minute", Recovery: "churn ended",
		ToRecover: -1, ToDone: done.Sub(churnEnd),
		Note: fmt.Sprintf("%d tabs opened, %d closed mid-job; job took %.0f s", opened, closed, done.Sub(start).Seconds()),
	}))
}
