package e2e

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The recovery table: every fault scenario records one row (how long
// recovery took and what was requeued, dropped and accepted), and
// TestMain prints the rows as a Markdown table when the package's tests
// end. docs/reliability.md keeps the latest one.
//
// go test shows a passing package's output only with -v (or when run in
// the package directory); TABGRID_RELIABILITY_OUT=path also writes the
// table to a file.

// recoveryRow is one scenario's measurements. A negative duration means
// the phase does not apply.
type recoveryRow struct {
	Scenario  string
	Recovery  string        // what "recovered" means in this scenario
	ToRecover time.Duration // fault → recovered (e.g. tasks requeued)
	ToDone    time.Duration // recovered → every job final
	Requeued  map[string]int
	Stale     int
	Duplicate int
	Accepted  int // results accepted, from the coordinators' metrics
	Succeeded int // tasks succeeded, from the store
	Tasks     int // tasks of the scenario's jobs
	Exact     bool
	Note      string
}

var report struct {
	mu   sync.Mutex
	rows []recoveryRow
}

func recordRecovery(t testing.TB, r recoveryRow) {
	t.Helper()
	report.mu.Lock()
	report.rows = append(report.rows, r)
	report.mu.Unlock()
	t.Logf("recovery: %s", r.line())
}

func TestMain(m *testing.M) {
	code := m.Run()
	report.mu.Lock()
	rows := report.rows
	report.mu.Unlock()
	if len(rows) > 0 {
		table := recoveryTable(rows)
		fmt.Print("\n" + table)
		if path := os.Getenv("TABGRID_RELIABILITY_OUT"); path != "" {
			if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
				fmt.Fprintf(os.Stderr, "write %s: %v\n", path, err)
			}
		}
	}
	os.Exit(code)
}

func recoveryTable(rows []recoveryRow) string {
	rows = append([]recoveryRow(nil), rows...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Scenario < rows[j].Scenario })
	var b strings.Builder
	b.WriteString("| scenario | recovered when | fault → recovered | recovered → done | requeued (by reason) | stale | duplicate | accepted / succeeded / tasks | notes |\n")
	b.WriteString("| --- | --- | ---: | ---: | --- | ---: | ---: | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d | %d | %s | %s |\n",
			r.Scenario, r.Recovery, fmtPhase(r.ToRecover), fmtPhase(r.ToDone), fmtReasons(r.Requeued),
			r.Stale, r.Duplicate, r.counts(), r.Note)
	}
	return b.String()
}

func (r recoveryRow) counts() string {
	s := fmt.Sprintf("%d / %d / %d", r.Accepted, r.Succeeded, r.Tasks)
	if !r.Exact {
		s += " †"
	}
	return s
}

func (r recoveryRow) line() string {
	return fmt.Sprintf("%s: %s after %s, done %s later; requeued %s, stale %d, duplicate %d, accepted/succeeded/tasks %s; %s",
		r.Scenario, r.Recovery, fmtPhase(r.ToRecover), fmtPhase(r.ToDone), fmtReasons(r.Requeued), r.Stale, r.Duplicate, r.counts(), r.Note)
}

func fmtPhase(d time.Duration) string {
	if d < 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fmtReasons(m map[string]int) string {
	var keys []string
	total := 0
	for k, v := range m {
		if v > 0 {
			keys = append(keys, k)
			total += v
		}
	}
	if total == 0 {
		return "0"
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}
