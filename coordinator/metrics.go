package coordinator

import (
	"context"
	"errors"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/tasks"
)

// Metrics are the coordinator's Prometheus metrics. Every label value is
// resolved once here, so that the hot path (dispatch, per batch and per
// result) only touches atomics: no map of vectors, no allocation.
//
// Most metrics are this coordinator's own. tabgrid_jobs and tabgrid_tasks
// are the grid's, read from the shared store at scrape time, so every
// coordinator on one store reports the same values (aggregate with max,
// not sum).
type Metrics struct {
	Tabs     prometheus.Gauge
	Capacity prometheus.Gauge
	InFlight prometheus.Gauge

	Dispatched prometheus.Counter
	Completed  prometheus.Counter

	requeued *prometheus.CounterVec
	dropped  *prometheus.CounterVec

	DispatchLatency prometheus.Histogram

	storeLatency *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec

	// DashboardClients counts open dashboard streams; the events
	// endpoint moves it.
	DashboardClients prometheus.Gauge

	buildInfo *prometheus.GaugeVec
	grid      *gridCollector

	requeue  map[string]prometheus.Counter
	drop     map[string]prometheus.Counter
	storeObs map[string]prometheus.Observer
	storeErr map[string]prometheus.Counter
}

// Requeue reasons (tabgrid_tasks_requeued_total{reason}).
const (
	requeueClosed          = "closed"           // the tab's socket closed (or was closed: too slow, bad message, shutdown)
	requeueHeartbeat       = "heartbeat"        // the tab went silent
	requeueTimeout         = "timeout"          // the task ran past task_timeout (counts an attempt)
	requeueCoordinatorLost = "coordinator_lost" // the reaper took back a dead coordinator's leases
	requeueError           = "error"            // the task threw (counts an attempt)
	requeueRevoked         = "revoked"          // taken back after a claim whose answer was lost, or from a paused tab
)

var requeueReasons = []string{requeueClosed, requeueHeartbeat, requeueTimeout, requeueCoordinatorLost, requeueError, requeueRevoked}

// Drop reasons (tabgrid_results_dropped_total{reason}).
const (
	dropStale     = "stale"     // an old token, a revoked task, a tab already gone, or fenced by the store
	dropDuplicate = "duplicate" // the task had already succeeded
	dropForged    = "forged"    // a task the tab was never sent
)

var dropReasons = []string{dropStale, dropDuplicate, dropForged}

// Store operations (tabgrid_store_request_duration_seconds{op}).
const (
	opClaim      = "claim"
	opComplete   = "complete"
	opRelease    = "release_worker"
	opRenew      = "renew_workers"
	opRemove     = "remove_worker"
	opReap       = "reap"
	opUnfinished = "unfinished_jobs"
	opDeleteOld  = "delete_finished"
	opOutputs    = "task_outputs"
	opFinish     = "finish_job"
	opGetJob     = "get_job"
	opPublish    = "publish"
	opSubscribe  = "subscribe"
	opCountJobs  = "count_jobs" // scrape time: tabgrid_jobs
	opListJobs   = "list_jobs"  // scrape time: tabgrid_tasks
)

var storeOps = []string{opClaim, opComplete, opRelease, opRenew, opRemove, opReap, opUnfinished,
	opDeleteOld, opOutputs, opFinish, opGetJob, opPublish, opSubscribe, opCountJobs, opListJobs}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, as in tests). Collectors already registered by another
// Metrics on the same registry are shared.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Tabs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tabgrid_tabs_connected", Help: "Tabs connected to this coordinator (hello done).",
		}),
		Capacity: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tabgrid_tabs_capacity", Help: "Web Worker threads offered by the tabs of this coordinator.",
		}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tabgrid_tasks_in_flight", Help: "Tasks leased to tabs of this coordinator and not yet reported.",
		}),
		Dispatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tabgrid_tasks_dispatched_total", Help: "Task leases handed to tabs; a task retried elsewhere counts again.",
		}),
		Completed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tabgrid_tasks_completed_total", Help: "Task results accepted (counted once per task).",
		}),
		requeued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tabgrid_tasks_requeued_total", Help: "Leased tasks put back to pending, by reason.",
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tabgrid_results_dropped_total", Help: "Results from tabs that did not count, by reason.",
		}, []string{"reason"}),
		DispatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tabgrid_dispatch_latency_seconds",
			Help:    "Time from a task sent to a tab to its result accepted by the store.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
		storeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tabgrid_store_request_duration_seconds",
			Help:    "Round-trip time of store calls made by the hub and the metrics, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}, []string{"op"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tabgrid_store_errors_total", Help: "Failed store calls made by the hub and the metrics, by operation.",
		}, []string{"op"}),
		DashboardClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tabgrid_dashboard_clients", Help: "Open dashboard event streams on this coordinator.",
		}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tabgrid_build_info", Help: "Always 1; the labels name the build.",
		}, []string{"version", "go_version"}),
	}
	m.grid = newGridCollector(m)
	if reg != nil {
		m.Tabs = register(reg, m.Tabs)
		m.Capacity = register(reg, m.Capacity)
		m.InFlight = register(reg, m.InFlight)
		m.Dispatched = register(reg, m.Dispatched)
		m.Completed = register(reg, m.Completed)
		m.requeued = register(reg, m.requeued)
		m.dropped = register(reg, m.dropped)
		m.DispatchLatency = register(reg, m.DispatchLatency)
		m.storeLatency = register(reg, m.storeLatency)
		m.storeErrors = register(reg, m.storeErrors)
		m.DashboardClients = register(reg, m.DashboardClients)
		m.buildInfo = register(reg, m.buildInfo)
		m.grid = register(reg, m.grid)
	}
	m.buildInfo.WithLabelValues(buildVersion()).Set(1)
	// Resolved up front: the hot path does a plain map read, and every
	// series exists from the first scrape, so rate() and alerts on it
	// work before the first event.
	m.requeue = map[string]prometheus.Counter{}
	for _, r := range requeueReasons {
		m.requeue[r] = m.requeued.WithLabelValues(r)
	}
	m.drop = map[string]prometheus.Counter{}
	for _, r := range dropReasons {
		m.drop[r] = m.dropped.WithLabelValues(r)
	}
	m.storeObs = map[string]prometheus.Observer{}
	m.storeErr = map[string]prometheus.Counter{}
	for _, op := range storeOps {
		m.storeObs[op] = m.storeLatency.WithLabelValues(op)
		m.storeErr[op] = m.storeErrors.WithLabelValues(op)
	}
	return m
}

// buildVersion returns the module version ("(devel)" for a build from a
// checkout) and the Go version the binary was built with.
func buildVersion() (version, goVersion string) {
	version, goVersion = "(devel)", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
	}
	return version, goVersion
}

// register registers c, or returns the collector registered before it
// under the same name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if prev, ok := are.ExistingCollector.(C); ok {
				return prev
			}
		}
	}
	return c
}

// The methods below are safe on a nil *Metrics, so tests may pass none.

func (m *Metrics) requeuedAdd(reason string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.requeue[reason].Add(float64(n))
}

func (m *Metrics) droppedAdd(reason string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.drop[reason].Add(float64(n))
}

func (m *Metrics) storeCall(op string, start time.Time, err error) {
	if m == nil {
		return
	}
	obs, ok := m.storeObs[op]
	if !ok {
		obs = m.storeLatency.WithLabelValues(op)
	}
	obs.Observe(time.Since(start).Seconds())
	if err != nil {
		if c, ok := m.storeErr[op]; ok {
			c.Inc()
		} else {
			m.storeErrors.WithLabelValues(op).Inc()
		}
	}
}

// observeStore has tabgrid_jobs and tabgrid_tasks read from st at scrape
// time. Until it is called they are absent.
func (m *Metrics) observeStore(st gridSource) {
	if m == nil || st == nil {
		return
	}
	m.grid.src.Store(&st)
}

// gridSource is what the scrape-time collector reads.
type gridSource interface {
	CountJobs(ctx context.Context) (map[tasks.JobState]int, error)
	ListJobs(ctx context.Context, f store.JobFilter) ([]tasks.Job, error)
}

// Requeued returns the requeue counter's value for reason, for tests.
func (m *Metrics) Requeued(reason string) float64 {
	if m == nil {
		return 0
	}
	return counterValue(m.requeue[reason])
}

// Dropped returns the dropped-results counter's value for reason, for tests.
func (m *Metrics) Dropped(reason string) float64 {
	if m == nil {
		return 0
	}
	return counterValue(m.drop[reason])
}

func counterValue(c prometheus.Counter) float64 {
	if c == nil {
		return 0
	}
	var m dto.Metric
	if err := c.Write(&m); err != nil || m.Counter == nil {
		return 0
	}
	return m.Counter.GetValue()
}

// gridCollector reports jobs and tasks by state from the store when
// scraped, never from the dispatch path. Cost per scrape: CountJobs (what
// /api/v1/stats does), then, only when jobs are queued or running, a
// listing of just those jobs, each carrying its task counts; Redis lists
// newest first and stops once it has found them all.
type gridCollector struct {
	m     *Metrics
	src   atomic.Pointer[gridSource]
	jobs  *prometheus.Desc
	tasks *prometheus.Desc
}

const (
	gridTimeout = 5 * time.Second
	// gridMaxActive bounds the jobs listed per state. Beyond it
	// tabgrid_tasks is left out rather than reported short.
	gridMaxActive = 100_000
)

var (
	jobStates  = []tasks.JobState{tasks.JobQueued, tasks.JobRunning, tasks.JobSucceeded, tasks.JobFailed, tasks.JobCancelled}
	taskStates = []tasks.TaskState{tasks.TaskPending, tasks.TaskRunning, tasks.TaskSucceeded, tasks.TaskFailed}
)

func newGridCollector(m *Metrics) *gridCollector {
	return &gridCollector{
		m: m,
		jobs: prometheus.NewDesc("tabgrid_jobs",
			"Retained jobs by state, across every coordinator sharing the store (read at scrape time).",
			[]string{"state"}, nil),
		tasks: prometheus.NewDesc("tabgrid_tasks",
			"Tasks of queued and running jobs by state, across every coordinator sharing the store (read at scrape time).",
			[]string{"state"}, nil),
	}
}

func (g *gridCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.jobs
	ch <- g.tasks
}

// Collect reads the store. When it fails the series are left out (an
// absent series is unknown; a stale number would lie) and the failure is
// counted in tabgrid_store_errors_total.
func (g *gridCollector) Collect(ch chan<- prometheus.Metric) {
	p := g.src.Load()
	if p == nil {
		return
	}
	st := *p
	ctx, cancel := context.WithTimeout(context.Background(), gridTimeout)
	defer cancel()
	start := time.Now()
	counts, err := st.CountJobs(ctx)
	g.m.storeCall(opCountJobs, start, err)
	if err != nil {
		return
	}
	for _, s := range jobStates {
		ch <- prometheus.MustNewConstMetric(g.jobs, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
	var sum tasks.Counts
	for _, s := range []tasks.JobState{tasks.JobQueued, tasks.JobRunning} {
		n := counts[s]
		if n == 0 {
			continue
		}
		if n > gridMaxActive {
			return
		}
		start := time.Now()
		// Limit n: the listing stops once it found them all. A job
		// submitted since CountJobs may be missed until the next scrape.
		jobs, err := st.ListJobs(ctx, store.JobFilter{State: s, Limit: n})
		g.m.storeCall(opListJobs, start, err)
		if err != nil {
			return
		}
		for _, j := range jobs {
			sum.Pending += j.Tasks.Pending
			sum.Running += j.Tasks.Running
			sum.Succeeded += j.Tasks.Succeeded
			sum.Failed += j.Tasks.Failed
		}
	}
	for _, s := range taskStates {
		var v int
		switch s {
		case tasks.TaskPending:
			v = sum.Pending
		case tasks.TaskRunning:
			v = sum.Running
		case tasks.TaskSucceeded:
			v = sum.Succeeded
		case tasks.TaskFailed:
			v = sum.Failed
		}
		ch <- prometheus.MustNewConstMetric(g.tasks, prometheus.GaugeValue, float64(v), string(s))
	}
}
