package bench

import (
	"context"
	"fmt"
	"time"
)

// settle is how long connections are left idle before memory is read, so
// that the handshakes' transient buffers are collected and what remains
// is what an idle tab costs.
const settle = 3 * time.Second

// connections connects many idle tabs to one coordinator and reads its
// resident memory and goroutines before and after.
func (r *runner) connections(ctx context.Context, st string, row *Row) error {
	n := r.scale.IdleTabs
	row.Setup = fmt.Sprintf("%s idle tabs (capacity 1, no jobs) on one coordinator; (RSS after − RSS before) / tabs, go_goroutines likewise", thousands(float64(n)))
	row.Target = "RSS per idle tab ≤ 48 KiB"
	e, err := r.newEnv(ctx, st, 1)
	if err != nil {
		return err
	}
	defer e.close()
	if err := sleepCtx(ctx, time.Second); err != nil {
		return err
	}
	rssBefore, rssOK, err := e.coords[0].RSS()
	if err != nil {
		return err
	}
	m, err := e.metrics(ctx, 0)
	if err != nil {
		return err
	}
	grBefore := m.sum("go_goroutines")
	start := time.Now()
	f, err := dialFleet(ctx, e.wsURL(0), n, 1)
	if err != nil {
		return err
	}
	defer f.close()
	if err := e.waitTabs(ctx, 0, n); err != nil {
		return err
	}
	connectTime := time.Since(start)
	if err := sleepCtx(ctx, settle); err != nil {
		return err
	}
	rssAfter, _, err := e.coords[0].RSS()
	if err != nil {
		return err
	}
	if m, err = e.metrics(ctx, 0); err != nil {
		return err
	}
	if got := int(m.sum("tabgrid_tabs_connected")); got != n {
		return fmt.Errorf("%d tabs connected after settling, want %d", got, n)
	}
	gr := (m.sum("go_goroutines") - grBefore) / float64(n)
	row.Figures["goroutines_per_tab"] = gr
	res := ""
	if rssOK {
		per := float64(rssAfter-rssBefore) / float64(n) / 1024
		row.Figures["rss_kib_per_tab"] = per
		res = fmt.Sprintf("%.1f KiB RSS per tab (%.1f → %.1f MiB); ", per, float64(rssBefore)/(1<<20), float64(rssAfter)/(1<<20))
	} else {
		res = "RSS not measured in process; "
	}
	row.Result = res + fmt.Sprintf("%.2f goroutines per tab; all %s connected in %.2f s", gr, thousands(float64(n)), connectTime.Seconds())
	return nil
}
