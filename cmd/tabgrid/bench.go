package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/tabgrid/tabgrid/coordinator/bench"
)

// runBench is `tabgrid bench`: it re-executes this binary as `serve` for
// every coordinator it measures and prints one markdown table row per
// scenario on stdout; progress goes to stderr.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "run every scenario small (under a minute in all), for CI")
	stores := fs.String("store", "both", "memory, redis or both")
	scenarios := fs.String("scenario", "", "comma-separated scenarios to run ("+strings.Join(bench.Scenarios, ", ")+"); empty = all")
	cpuprofile := fs.String("cpuprofile", "", "run the throughput scenario with the coordinator in this process and write its CPU profile to this file")
	latencyRate := fs.Float64("latency-rate", 0, "jobs per second of the latency scenario; 0 = 10% of the throughput measured")
	verbose := fs.Bool("v", false, "log progress to stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: tabgrid bench [flags]\n\nMeasures a real coordinator (a child process) driven by simulated tabs over loopback.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tabgrid bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	opts := bench.Options{Quick: *quick, CPUProfile: *cpuprofile, LatencyRate: *latencyRate}
	switch *stores {
	case "both":
	case bench.Memory, bench.Redis:
		opts.Stores = []string{*stores}
	default:
		fmt.Fprintf(stderr, "tabgrid bench: --store %q: want memory, redis or both\n", *stores)
		return 2
	}
	for _, s := range strings.Split(*scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			opts.Scenarios = append(opts.Scenarios, s)
		}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	opts.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if *cpuprofile == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "tabgrid bench: find own binary: %v\n", err)
			return 1
		}
		opts.Binary = exe
	}
	if _, err := bench.Run(ctx, opts, stdout); err != nil {
		fmt.Fprintf(stderr, "tabgrid bench: %v\n", err)
		return 1
	}
	return 0
}
