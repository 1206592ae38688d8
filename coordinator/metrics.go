package coordinator

import (
	"errors"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metrics are the coordinator's Prometheus metrics. Label values are
// resolved once here so that the hot path only touches atomics.
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

	BuildInfo *prometheus.GaugeVec

	requeue map[string]prometheus.Counter
	drop    map[string]prometheus.Counter
}

// Requeue reasons (tabgrid_tasks_requeued_total{reason}).
const (
	requeueClosed          = "closed"
	requeueHeartbeat       = "heartbeat"
	requeueTimeout         = "timeout"
	requeueCoordinatorLost = "coordinator_lost"
	requeueError           = "error"
	requeueRevoked         = "revoked" // taken back after a claim whose answer was lost
)

// Drop reasons (tabgrid_results_dropped_total{reason}).
const (
	dropStale     = "stale"
	dropDuplicate = "duplicate"
	dropForged    = "forged"
)

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
)

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, as in tests). Collectors already registered by another
// Metrics on the same registry are shared.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Tabs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tabgrid_tabs_connected", Help: "Tabs connected to this coordinator.",
		}),
		Capacity: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tabgrid_tabs_capacity", Help: "Web Worker threads offered by the tabs of this coordinator.",
		}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tabgrid_tasks_in_flight", Help: "Tasks sent to tabs and not yet reported.",
		}),
		Dispatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tabgrid_tasks_dispatched_total", Help: "Tasks sent to tabs.",
		}),
		Completed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tabgrid_tasks_completed_total", Help: "Task results accepted (counted once per task).",
		}),
		requeued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tabgrid_tasks_requeued_total", Help: "Tasks put back to pending, by reason.",
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tabgrid_results_dropped_total", Help: "Results from tabs that did not count, by reason.",
		}, []string{"reason"}),
		DispatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tabgrid_dispatch_latency_seconds",
			Help:    "Time from a task sent to a tab to its result accepted.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
		storeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tabgrid_store_request_duration_seconds",
			Help:    "Round-trip time of store calls made by the hub, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}, []string{"op"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tabgrid_store_errors_total", Help: "Failed store calls made by the hub, by operation.",
		}, []string{"op"}),
		DashboardClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tabgrid_dashboard_clients", Help: "Open dashboard event streams.",
		}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tabgrid_build_info", Help: "Always 1; labels name the build.",
		}, []string{"version", "goversion"}),
	}
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
		m.BuildInfo = register(reg, m.BuildInfo)
	}
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	m.BuildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	m.requeue = map[string]prometheus.Counter{}
	for _, r := range []string{requeueClosed, requeueHeartbeat, requeueTimeout, requeueCoordinatorLost, requeueError, requeueRevoked} {
		m.requeue[r] = m.requeued.WithLabelValues(r)
	}
	m.drop = map[string]prometheus.Counter{}
	for _, r := range []string{dropStale, dropDuplicate, dropForged} {
		m.drop[r] = m.dropped.WithLabelValues(r)
	}
	return m
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
	m.storeLatency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		m.storeErrors.WithLabelValues(op).Inc()
	}
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
