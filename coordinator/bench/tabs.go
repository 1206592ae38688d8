package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tabgrid/tabgrid/coordinator/simtab"
)

// dialParallel bounds concurrent WebSocket handshakes, so that ten
// thousand tabs connect without a SYN flood on the listen backlog.
const dialParallel = 64

// fleet is a set of simulated tabs.
type fleet struct {
	tabs []*simtab.Tab
}

// dialFleet connects n tabs of the given capacity to wsURL and returns
// once every one has been welcomed.
func dialFleet(ctx context.Context, wsURL string, n, capacity int) (*fleet, error) {
	f := &fleet{tabs: make([]*simtab.Tab, n)}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(dialParallel)
	for i := range n {
		g.Go(func() error {
			dctx, cancel := context.WithTimeout(gctx, 30*time.Second)
			defer cancel()
			t, err := simtab.Dial(dctx, wsURL, simtab.Options{Capacity: capacity, Name: fmt.Sprintf("bench-%d", i)})
			if err != nil {
				return fmt.Errorf("tab %d: %w", i, err)
			}
			f.tabs[i] = t
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

// completed is the number of results with an output the tabs sent.
func (f *fleet) completed() int64 {
	var n int64
	for _, t := range f.tabs {
		n += t.Stats().Completed
	}
	return n
}

// stats sums every tab's counters.
func (f *fleet) stats() simtab.Stats {
	var s simtab.Stats
	for _, t := range f.tabs {
		ts := t.Stats()
		s.Received += ts.Received
		s.Completed += ts.Completed
		s.Errors += ts.Errors
		s.Cancelled += ts.Cancelled
		s.MaxInFlight = max(s.MaxInFlight, ts.MaxInFlight)
		s.Connects += ts.Connects
	}
	return s
}

// close closes every tab at once and waits for all. Safe twice.
func (f *fleet) close() {
	if f == nil {
		return
	}
	var wg sync.WaitGroup
	for _, t := range f.tabs {
		if t == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Close()
		}()
	}
	wg.Wait()
}

// split returns the first n tabs and the rest as two fleets.
func (f *fleet) split(n int) (*fleet, *fleet) {
	return &fleet{tabs: f.tabs[:n]}, &fleet{tabs: f.tabs[n:]}
}

// waitTabs polls coordinator i's metrics until it counts want connected
// tabs.
func (e *env) waitTabs(ctx context.Context, i, want int) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, err := e.metrics(ctx, i)
		if err == nil && int(m.sum("tabgrid_tabs_connected")) == want {
			return nil
		}
		if time.Now().After(deadline) {
			got := -1.0
			if m != nil {
				got = m.sum("tabgrid_tabs_connected")
			}
			return fmt.Errorf("coordinator %d counts %v tabs, want %d (err %v)", i, got, want, err)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
