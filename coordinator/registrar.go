package coordinator

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tabgrid/tabgrid/store"
)

// registrar registers tabs that said hello in the store, many at once:
// every hello waiting while a RenewWorkers call runs goes into the next
// one. A burst of tabs reconnecting (a coordinator restarted behind a
// proxy, say) then costs a few store round trips, not one per tab, and
// the store's connection pool is not queued on by thousands of hellos.
type registrar struct {
	h    *Hub
	wake chan struct{}

	mu      sync.Mutex
	queue   []registration
	stopped bool
}

type registration struct {
	info store.WorkerInfo
	done chan error // buffered: the loop never waits for a hello
}

var errRegistrarStopped = errors.New("coordinator stopping")

// maxRegisterBatch bounds one RenewWorkers call.
const maxRegisterBatch = 2000

func newRegistrar(h *Hub) *registrar {
	return &registrar{h: h, wake: make(chan struct{}, 1)}
}

// register stores the tab and returns the store's answer, or ctx's error
// when it runs out first (the registration may still be applied later:
// the caller treats the tab as known to the store either way).
func (r *registrar) register(ctx context.Context, info store.WorkerInfo) error {
	done := make(chan error, 1)
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return errRegistrarStopped
	}
	r.queue = append(r.queue, registration{info: info, done: done})
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run registers what is queued until ctx ends, then answers whatever is
// still waiting with errRegistrarStopped.
func (r *registrar) run(ctx context.Context) {
	defer func() {
		r.mu.Lock()
		r.stopped = true
		queue := r.queue
		r.queue = nil
		r.mu.Unlock()
		for _, reg := range queue {
			reg.done <- errRegistrarStopped
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		for {
			r.mu.Lock()
			n := min(len(r.queue), maxRegisterBatch)
			batch := r.queue[:n:n]
			r.queue = r.queue[n:]
			r.mu.Unlock()
			if n == 0 {
				break
			}
			infos := make([]store.WorkerInfo, n)
			for i, reg := range batch {
				infos[i] = reg.info
			}
			h := r.h
			cctx, cancel := context.WithTimeout(ctx, h.cfg.WriteTimeout)
			start := time.Now()
			err := h.st.RenewWorkers(cctx, h.id, infos, h.cfg.LeaseTTL)
			cancel()
			h.m.storeCall(opRenew, start, err)
			for _, reg := range batch {
				reg.done <- err
			}
		}
	}
}
