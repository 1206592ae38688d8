// Command tabgrid runs a coordinator (`tabgrid serve`) and talks to one
// as a submitter (`tabgrid submit`, `jobs`, `status`, `cancel`, `result`).
// This file holds flags, environment, signals and exit codes; everything
// else lives in the packages it wires together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tabgrid/tabgrid/coordinator"
)

const usage = `tabgrid turns browser tabs into a compute grid.

Usage:
  tabgrid serve [flags]          run a coordinator (in-memory store unless --redis is set)
  tabgrid submit [flags]         submit a job and wait for its result
  tabgrid jobs [flags]           list jobs
  tabgrid status ID              show one job
  tabgrid cancel ID              cancel a job
  tabgrid result ID [--out F]    print a job's result (or write its PNG)
  tabgrid bench [--quick]        measure throughput, latency, scale and recovery

Run 'tabgrid COMMAND -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch cmd := args[0]; cmd {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "submit", "jobs", "status", "cancel", "result":
		return runCLI(ctx, cmd, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "tabgrid: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// serveFlags binds every setting of a coordinator to a flag whose default
// comes from the environment (TABGRID_*) and then from DefaultConfig. An
// environment value that does not parse is reported in envErrs rather
// than silently replaced by the default.
func serveFlags(fs *flag.FlagSet, cfg *coordinator.Config, logLevel *string) (tokens *string, envErrs *[]error) {
	envErrs = new([]error)
	env := func(name, def string) string {
		if v, ok := os.LookupEnv(name); ok {
			return v
		}
		return def
	}
	envDur := func(name string, def time.Duration) time.Duration {
		v, ok := os.LookupEnv(name)
		if !ok {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			*envErrs = append(*envErrs, fmt.Errorf("%s=%q: want a duration such as 15s", name, v))
			return def
		}
		return d
	}
	envInt := func(name string, def int) int {
		v, ok := os.LookupEnv(name)
		if !ok {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			*envErrs = append(*envErrs, fmt.Errorf("%s=%q: want an integer", name, v))
			return def
		}
		return n
	}
	fs.StringVar(&cfg.Addr, "addr", env("TABGRID_ADDR", cfg.Addr), "listen address (TABGRID_ADDR)")
	fs.StringVar(&cfg.RedisURL, "redis", env("TABGRID_REDIS_URL", ""), "Redis URL: redis://host:6379/0 for one server, redis://host1:7000?addr=host2:7001&addr=host3:7002 for a cluster; empty = in-memory store, not durable (TABGRID_REDIS_URL)")
	tokens = fs.String("api-token", env("TABGRID_API_TOKENS", ""), "comma-separated bearer tokens for mutating API calls; empty = generate one and print it (TABGRID_API_TOKENS)")
	fs.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", envDur("TABGRID_HEARTBEAT_TIMEOUT", cfg.HeartbeatTimeout), "drop a tab silent this long (TABGRID_HEARTBEAT_TIMEOUT)")
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", envDur("TABGRID_LEASE_TTL", cfg.LeaseTTL), "a coordinator silent this long is presumed dead and its tasks requeued (TABGRID_LEASE_TTL)")
	fs.IntVar(&cfg.Prefetch, "prefetch", envInt("TABGRID_PREFETCH", cfg.Prefetch), "tasks sent to a tab beyond its capacity (TABGRID_PREFETCH)")
	fs.Int64Var(&cfg.MaxMessageBytes, "max-message-bytes", int64(envInt("TABGRID_MAX_MESSAGE_BYTES", int(cfg.MaxMessageBytes))), "largest WebSocket message from a tab (TABGRID_MAX_MESSAGE_BYTES)")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", int64(envInt("TABGRID_MAX_BODY_BYTES", int(cfg.MaxBodyBytes))), "largest REST request body (TABGRID_MAX_BODY_BYTES)")
	fs.IntVar(&cfg.Limits.MaxInputBytes, "max-input-bytes", envInt("TABGRID_MAX_INPUT_BYTES", cfg.Limits.MaxInputBytes), "largest job input (TABGRID_MAX_INPUT_BYTES)")
	fs.IntVar(&cfg.Limits.MaxTasks, "max-tasks", envInt("TABGRID_MAX_TASKS", cfg.Limits.MaxTasks), "most tasks one job may split into (TABGRID_MAX_TASKS)")
	fs.IntVar(&cfg.Limits.MaxJSItems, "max-js-items", envInt("TABGRID_MAX_JS_ITEMS", cfg.Limits.MaxJSItems), "most items of one js job (TABGRID_MAX_JS_ITEMS)")
	fs.DurationVar(&cfg.MaxWait, "max-wait", envDur("TABGRID_MAX_WAIT", cfg.MaxWait), "longest ?wait= of an API call (TABGRID_MAX_WAIT)")
	fs.DurationVar(&cfg.Retention, "retention", envDur("TABGRID_RETENTION", cfg.Retention), "delete finished jobs after this (TABGRID_RETENTION)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", envDur("TABGRID_SHUTDOWN_TIMEOUT", cfg.ShutdownTimeout), "longest graceful shutdown (TABGRID_SHUTDOWN_TIMEOUT)")
	fs.StringVar(logLevel, "log-level", env("TABGRID_LOG_LEVEL", "info"), "debug, info, warn or error (TABGRID_LOG_LEVEL)")
	return tokens, envErrs
}

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	cfg := coordinator.DefaultConfig()
	var level string
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tokens, envErrs := serveFlags(fs, &cfg, &level)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(*envErrs) > 0 {
		fmt.Fprintf(stderr, "tabgrid serve: environment: %v\n", errors.Join(*envErrs...))
		return 2
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(stderr, "tabgrid serve: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	for _, t := range strings.Split(*tokens, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.APITokens = append(cfg.APITokens, t)
		}
	}
	generated := len(cfg.APITokens) == 0
	srv, err := coordinator.New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "tabgrid serve: %v\n", err)
		return 1
	}
	if err := srv.Start(); err != nil {
		srv.Close()
		fmt.Fprintf(stderr, "tabgrid serve: %v\n", err)
		return 1
	}
	if generated {
		// Printed rather than logged so it stands out: without it nobody
		// can submit a job.
		fmt.Fprintf(stderr, "\nNo API token configured; generated one for this run:\n\n    TABGRID_TOKEN=%s\n\n", srv.Tokens()[0])
	}
	fmt.Fprintf(stderr, "Volunteer page: %s/   Dashboard: %s/dashboard\n", srv.URL(), srv.URL())
	<-ctx.Done()
	log.Info("shutting down")
	if err := srv.Close(); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}
