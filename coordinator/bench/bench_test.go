package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runThroughput runs the throughput scenario in process, small.
func runThroughput(t *testing.T, store string) Row {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rows, err := Run(ctx, Options{
		Stores:    []string{store},
		Scenarios: []string{Throughput},
		Scale:     &Scale{ThroughputTasks: 3000, ThroughputTabs: 4},
	}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1:\n%s", len(rows), out.String())
	}
	if !strings.Contains(out.String(), "| throughput | "+store+" |") {
		t.Errorf("table has no throughput row:\n%s", out.String())
	}
	t.Log("\n" + out.String())
	return rows[0]
}

// checkExactlyOnce checks what the scenario counted: every task accepted
// once by the coordinator (Run fails otherwise), and here also run once by
// the tabs and leased once, as nothing dropped or failed.
func checkExactlyOnce(t *testing.T, row Row) {
	t.Helper()
	f := row.Figures
	if f["tasks"] != 3000 {
		t.Errorf("tasks = %v, want 3000", f["tasks"])
	}
	if f["tab_results"] != f["tasks"] {
		t.Errorf("tabs sent %v results for %v tasks", f["tab_results"], f["tasks"])
	}
	if f["retried_tasks"] != 0 {
		t.Errorf("%v tasks were leased more than once", f["retried_tasks"])
	}
}

func TestThroughputMemoryExactlyOnce(t *testing.T) {
	checkExactlyOnce(t, runThroughput(t, Memory))
}

func TestThroughputRedisExactlyOnce(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("TABGRID_REQUIRE_ALL") == "1" {
			t.Fatal("redis-server not on PATH and TABGRID_REQUIRE_ALL=1")
		}
		t.Skip("redis-server not on PATH")
	}
	row := runThroughput(t, Redis)
	checkExactlyOnce(t, row)
	if row.Figures["redis_commands_per_task"] <= 0 {
		t.Errorf("no Redis commands counted: %v", row.Figures)
	}
}

func TestParseCommandStats(t *testing.T) {
	before, err := parseCommandStats("# Commandstats\r\ncmdstat_info:calls=1,usec=3,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n")
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseCommandStats("# Commandstats\r\n" +
		"cmdstat_evalsha:calls=4,usec=81,usec_per_call=20.25,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_info:calls=2,usec=33,usec_per_call=16.50,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_set:calls=10,usec=9,usec_per_call=0.90,rejected_calls=0,failed_calls=0\r\n")
	if err != nil {
		t.Fatal(err)
	}
	d := after.sub(before)
	if d.all != 14 || d.scripts != 4 || d.byName["set"] != 10 || d.byName["info"] != 0 {
		t.Errorf("sub = %+v, want 14 calls of which 4 scripts, 10 set, no info", d)
	}
	if got, want := d.top(1, 10), "SET 1.000"; got != want {
		t.Errorf("top = %q, want %q", got, want)
	}
}

func TestParseMetrics(t *testing.T) {
	s, err := parseMetrics(strings.NewReader(`# HELP x
# TYPE tabgrid_tasks_requeued_total counter
tabgrid_tasks_requeued_total{reason="closed"} 150
tabgrid_tasks_requeued_total{reason="odd } value"} 2
tabgrid_tabs_connected 1000
go_goroutines 3007
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.sum("tabgrid_tasks_requeued_total"); got != 152 {
		t.Errorf("requeued = %v, want 152", got)
	}
	if got := s.sum("tabgrid_tabs_connected"); got != 1000 {
		t.Errorf("tabs = %v, want 1000", got)
	}
	if got := s.sum("tabgrid_tabs"); got != 0 {
		t.Errorf("a prefix of a name matched: %v", got)
	}
}

func TestProcReaders(t *testing.T) {
	pid := os.Getpid()
	if _, err := procCPU(pid); err != nil {
		t.Errorf("cpu: %v", err)
	}
	rss, err := procRSS(pid)
	if err != nil || rss <= 0 {
		t.Errorf("rss = %d, %v", rss, err)
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 200000: "200,000", 1234567.4: "1,234,567", -4500: "-4,500"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}
