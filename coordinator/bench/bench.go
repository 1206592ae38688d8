// Package bench measures a real tabgrid coordinator driven by simulated
// tabs (coordinator/simtab) over loopback WebSockets: throughput,
// latency, efficiency at scale, memory per connection, recovery from a
// mass drop, and two coordinators on one Redis. `tabgrid bench` runs it
// with every coordinator as a child process (the tabgrid binary
// re-executed as `serve`) so that the coordinator's CPU time and memory
// can be read apart from the tabs'; tests run it in process.
//
// Figures are printed, never asserted: the benchmark fails only when the
// grid gets something wrong (a task lost or counted twice), not when it is
// slow. It imports the coordinator (for the in-process mode), its client
// and simtab; nothing imports it but cmd/tabgrid.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tabgrid/tabgrid/coordinator/client"
)

// Scenario names, in the order they run.
const (
	Throughput  = "throughput"
	Latency     = "latency"
	Efficiency  = "efficiency"
	Connections = "connections"
	MassDrop    = "drop"
	TwoCoords   = "two-coordinators"
)

// Scenarios lists every scenario in run order.
var Scenarios = []string{Throughput, Latency, Efficiency, Connections, MassDrop, TwoCoords}

// Store names.
const (
	Memory = "memory"
	Redis  = "redis"
)

// Options choose what runs and how.
type Options struct {
	// Binary is the tabgrid executable started as `Binary serve` for
	// each coordinator. Empty runs coordinators in this process, where
	// their CPU time and memory cannot be told apart from the tabs'.
	Binary    string
	Quick     bool     // everything small: the whole run in well under a minute
	Stores    []string // Memory, Redis; empty = both
	Scenarios []string // empty = all
	// CPUProfile, when set, runs the throughput scenario with the
	// coordinator in this process under runtime/pprof and writes the
	// profile there (one file per store: FILE.memory, FILE.redis when
	// both run).
	CPUProfile string
	// LatencyRate, when above 0, is the latency scenario's job rate
	// instead of 10% of the measured throughput.
	LatencyRate float64
	Log         *slog.Logger // progress and errors; default discard
	// Scale overrides the sizes of Quick or full runs (tests).
	Scale *Scale
}

// Scale is the size of every scenario.
type Scale struct {
	ThroughputTasks int // no-op tasks
	ThroughputTabs  int // tabs of capacity 8
	LatencyFor      time.Duration
	EfficiencyTabs  int // tabs of capacity 1
	EfficiencyTasks int // 1 s tasks
	IdleTabs        int
	DropTabs        int // tabs of capacity 1 running 200 ms tasks
}

// FullScale is the documented benchmark.
var FullScale = Scale{
	ThroughputTasks: 200_000, ThroughputTabs: 100, LatencyFor: 10 * time.Second,
	EfficiencyTabs: 1000, EfficiencyTasks: 10_000, IdleTabs: 10_000, DropTabs: 1000,
}

// QuickScale is the CI run.
var QuickScale = Scale{
	ThroughputTasks: 20_000, ThroughputTabs: 100, LatencyFor: 2 * time.Second,
	EfficiencyTabs: 100, EfficiencyTasks: 300, IdleTabs: 1000, DropTabs: 100,
}

// Row is one line of the results table.
type Row struct {
	Scenario string
	Store    string
	Setup    string // what ran
	Result   string // the figures
	Target   string // what the design asks for
	Err      error  // the scenario could not run or the grid misbehaved
	Figures  map[string]float64
}

// Run runs the chosen scenarios for the chosen stores and writes the
// markdown table to out, one row as each scenario ends. It returns the
// rows and an error joining every row that failed.
func Run(ctx context.Context, opts Options, out io.Writer) ([]Row, error) {
	r, err := newRunner(opts)
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(out, "| scenario | store | setup | result | target |")
	fmt.Fprintln(out, "| --- | --- | --- | --- | --- |")
	var rows []Row
	var errs []error
	for _, sc := range r.scenarios {
		for _, st := range r.stores {
			if sc == TwoCoords && st != Redis {
				continue // two coordinators share state only through Redis
			}
			if ctx.Err() != nil {
				return rows, errors.Join(append(errs, ctx.Err())...)
			}
			r.log.Info("bench scenario", "scenario", sc, "store", st)
			row := r.run(ctx, sc, st)
			rows = append(rows, row)
			fmt.Fprintln(out, row.markdown())
			if row.Err != nil {
				errs = append(errs, fmt.Errorf("%s on %s: %w", sc, st, row.Err))
			}
		}
	}
	return rows, errors.Join(errs...)
}

func (row Row) markdown() string {
	res := row.Result
	if row.Err != nil {
		res = "error: " + strings.ReplaceAll(row.Err.Error(), "\n", " ")
	}
	esc := func(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
	return fmt.Sprintf("| %s | %s | %s | %s | %s |", row.Scenario, row.Store, esc(row.Setup), esc(res), esc(row.Target))
}

type runner struct {
	opts      Options
	scale     Scale
	stores    []string
	scenarios []string
	log       *slog.Logger
	start     starter
	hc        *http.Client
	// maxRate is the throughput measured per store, which sets the
	// latency scenario's rate.
	maxRate map[string]float64
}

func newRunner(opts Options) (*runner, error) {
	r := &runner{opts: opts, log: opts.Log, maxRate: map[string]float64{}}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r.scale = FullScale
	if opts.Quick {
		r.scale = QuickScale
	}
	if opts.Scale != nil {
		r.scale = *opts.Scale
	}
	r.stores = opts.Stores
	if len(r.stores) == 0 {
		r.stores = []string{Memory, Redis}
	}
	for _, s := range r.stores {
		if s != Memory && s != Redis {
			return nil, fmt.Errorf("unknown store %q (memory, redis)", s)
		}
	}
	r.scenarios = opts.Scenarios
	if len(r.scenarios) == 0 {
		r.scenarios = Scenarios
		if opts.CPUProfile != "" {
			r.scenarios = []string{Throughput}
		}
	}
	for _, s := range r.scenarios {
		if !slices.Contains(Scenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q (%s)", s, strings.Join(Scenarios, ", "))
		}
	}
	// Keep the run order fixed: latency takes its rate from throughput.
	r.scenarios = slices.DeleteFunc(slices.Clone(Scenarios), func(s string) bool { return !slices.Contains(r.scenarios, s) })
	if opts.Binary != "" && opts.CPUProfile == "" {
		r.start = execStarter(opts.Binary, r.log)
	} else {
		// The coordinator's log is of no use here and would slow it.
		r.start = inProcessStarter(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	r.hc = &http.Client{Transport: &http.Transport{
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     30 * time.Second,
	}}
	raiseFileLimit(r.log)
	return r, nil
}

func (r *runner) run(ctx context.Context, sc, st string) (row Row) {
	row = Row{Scenario: sc, Store: st, Figures: map[string]float64{}}
	var err error
	switch sc {
	case Throughput:
		err = r.withProfile(st, func() error { return r.throughput(ctx, st, &row) })
	case Latency:
		err = r.latency(ctx, st, &row)
	case Efficiency:
		err = r.efficiency(ctx, st, &row)
	case Connections:
		err = r.connections(ctx, st, &row)
	case MassDrop:
		err = r.massDrop(ctx, st, &row)
	case TwoCoords:
		err = r.twoCoordinators(ctx, st, &row)
	}
	row.Err = err
	return row
}

// withProfile runs f under the CPU profiler when one was asked for.
func (r *runner) withProfile(st string, f func() error) error {
	if r.opts.CPUProfile == "" {
		return f()
	}
	name := r.opts.CPUProfile
	if len(r.stores) > 1 {
		name += "." + st
	}
	file, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer file.Close()
	if err := pprof.StartCPUProfile(file); err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	err = f()
	pprof.StopCPUProfile()
	return err
}

// raiseFileLimit lifts the soft limit on open files to the hard one: ten
// thousand tabs need ten thousand sockets here and as many in the child,
// which inherits the limit.
func raiseFileLimit(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("read open file limit", "err", err)
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			log.Warn("raise open file limit", "err", err)
		}
	}
}

// env is what one scenario runs against: a Redis of its own (for the
// Redis store) and its coordinators.
type env struct {
	r      *runner
	redis  *redisServer
	coords []target
	token  string
}

// newEnv starts a fresh Redis (for the Redis store) and n coordinators.
func (r *runner) newEnv(ctx context.Context, st string, n int) (*env, error) {
	e := &env{r: r, token: randomToken()}
	s := coordSettings{token: e.token}
	if st == Redis {
		rs, err := startRedis(ctx)
		if err != nil {
			return nil, err
		}
		e.redis = rs
		s.redisURL = rs.URL()
	}
	for range n {
		c, err := r.start(ctx, s)
		if err != nil {
			e.close()
			return nil, err
		}
		e.coords = append(e.coords, c)
	}
	return e, nil
}

func (e *env) close() error {
	var errs []error
	for _, c := range e.coords {
		errs = append(errs, c.Close())
	}
	errs = append(errs, e.redis.stop())
	return errors.Join(errs...)
}

// api is a REST client for coordinator i.
func (e *env) api(i int) *client.Client {
	return client.New(e.coords[i].URL(), e.token, client.WithHTTPClient(e.r.hc))
}

// wsURL is coordinator i's tab endpoint.
func (e *env) wsURL(i int) string { return e.coords[i].URL() + "/ws" }

// metrics scrapes coordinator i.
func (e *env) metrics(ctx context.Context, i int) (series, error) {
	return scrape(ctx, e.r.hc, e.coords[i].URL())
}

// redisCalls reads Redis command counts; zero without Redis.
func (e *env) redisCalls(ctx context.Context) (commandCalls, error) {
	if e.redis == nil {
		return commandCalls{}, nil
	}
	return e.redis.commandCalls(ctx)
}

// cpu sums the CPU time of every coordinator; ok is false in process.
func (e *env) cpu() (time.Duration, bool, error) {
	var total time.Duration
	for _, c := range e.coords {
		d, ok, err := c.CPU()
		if err != nil || !ok {
			return 0, ok, err
		}
		total += d
	}
	return total, true, nil
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "bench-" + hex.EncodeToString(b)
}
