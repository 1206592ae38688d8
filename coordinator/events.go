package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/tasks"
)

// broker turns the store's event broadcast (which spans coordinators)
// into server-sent events for dashboards and wake-ups for API calls that
// wait for a job. It holds one store subscription per coordinator.
type broker struct {
	store   store.Store
	hub     *Hub
	metrics *Metrics
	log     *slog.Logger

	mu      sync.Mutex
	clients map[*sseClient]struct{}
	waiters map[string][]chan struct{}
}

// sseClient is one dashboard. Frames are queued without blocking; a client
// whose queue is full is dropped, so a slow dashboard never slows the
// coordinator (it reconnects and starts again from a snapshot).
type sseClient struct {
	frames  chan []byte
	dropped chan struct{}
	once    sync.Once
}

const sseQueue = 256

func newBroker(st store.Store, hub *Hub, m *Metrics, log *slog.Logger) *broker {
	return &broker{
		store:   st,
		hub:     hub,
		metrics: m,
		log:     log,
		clients: map[*sseClient]struct{}{},
		waiters: map[string][]chan struct{}{},
	}
}

// run forwards store events until ctx ends, resubscribing with backoff
// when the store is unreachable, and sends periodic stats to dashboards.
func (b *broker) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.tick(ctx)
	}()
	defer wg.Wait()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		ch, err := b.store.Subscribe(ctx)
		if err != nil {
			b.log.Warn("subscribe to events", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		for ev := range ch {
			b.handle(ev)
		}
	}
}

func (b *broker) handle(ev store.Event) {
	switch ev.Type {
	case "job":
		var j struct {
			ID    string         `json:"id"`
			State tasks.JobState `json:"state"`
		}
		if json.Unmarshal(ev.Data, &j) == nil && j.State.Final() {
			b.wake(j.ID)
		}
		b.broadcast("job", ev.Data)
	case "worker":
		b.broadcast("worker", ev.Data)
	}
}

// tick sends grid totals every second and the tab list every two, only
// while a dashboard is connected.
func (b *broker) tick(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if b.clientCount() == 0 {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ws, err := b.store.ListWorkers(qctx)
		var counts map[tasks.JobState]int
		if err == nil {
			counts, err = b.store.CountJobs(qctx)
		}
		cancel()
		if err != nil {
			continue // the store is away; dashboards keep their last figures
		}
		if data, err := json.Marshal(statsOf(ws, counts)); err == nil {
			b.broadcast("stats", data)
		}
		if n%2 == 0 {
			if ws == nil {
				ws = []store.WorkerInfo{}
			}
			if data, err := json.Marshal(map[string]any{"workers": ws}); err == nil {
				b.broadcast("workers", data)
			}
		}
	}
}

func (b *broker) clientCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.clients)
}

func frame(event string, data []byte) []byte {
	return fmt.Appendf(nil, "event: %s\ndata: %s\n\n", event, data)
}

func (b *broker) broadcast(event string, data []byte) {
	f := frame(event, data)
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.clients {
		select {
		case c.frames <- f:
		default:
			c.drop()
			delete(b.clients, c)
		}
	}
}

func (c *sseClient) drop() { c.once.Do(func() { close(c.dropped) }) }

func (b *broker) add() *sseClient {
	c := &sseClient{frames: make(chan []byte, sseQueue), dropped: make(chan struct{})}
	b.mu.Lock()
	b.clients[c] = struct{}{}
	b.mu.Unlock()
	if b.metrics != nil {
		b.metrics.DashboardClients.Inc()
	}
	return c
}

func (b *broker) remove(c *sseClient) {
	b.mu.Lock()
	delete(b.clients, c)
	b.mu.Unlock()
	if b.metrics != nil {
		b.metrics.DashboardClients.Dec()
	}
}

// waitFor returns a channel closed when a job event says the job ended.
func (b *broker) waitFor(id string) chan struct{} {
	ch := make(chan struct{})
	b.mu.Lock()
	b.waiters[id] = append(b.waiters[id], ch)
	b.mu.Unlock()
	return ch
}

func (b *broker) stopWaiting(id string, ch chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := b.waiters[id]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(b.waiters, id)
	} else {
		b.waiters[id] = ws
	}
}

func (b *broker) wake(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range b.waiters[id] {
		close(ch)
	}
	delete(b.waiters, id)
}

// snapshotJobs is how many jobs a (re)connecting dashboard gets at once.
const snapshotJobs = 200

// streamEvents is GET /api/v1/events: a snapshot of the grid, then live
// job and tab changes and periodic totals, as server-sent events.
func (s *Server) streamEvents(c echo.Context) error {
	ctx := c.Request().Context()
	// Register before reading the snapshot so that no change made in
	// between is missed (a duplicate is harmless: events carry state).
	client := s.events.add()
	defer s.events.remove(client)

	jobs, err := s.store.ListJobs(ctx, store.JobFilter{Limit: snapshotJobs})
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	ws, err := s.store.ListWorkers(ctx)
	if err != nil {
		return fmt.Errorf("list workers: %w", err)
	}
	counts, err := s.store.CountJobs(ctx)
	if err != nil {
		return fmt.Errorf("count jobs: %w", err)
	}
	if jobs == nil {
		jobs = []tasks.Job{}
	}
	if ws == nil {
		ws = []store.WorkerInfo{}
	}
	snap, err := json.Marshal(map[string]any{"jobs": jobs, "workers": ws, "stats": statsOf(ws, counts)})
	if err != nil {
		return err
	}

	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // let nginx pass events at once
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(append([]byte("retry: 2000\n"), frame("snapshot", snap)...)); err != nil {
		return nil
	}
	w.Flush()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	rc := http.NewResponseController(w.Writer)
	for {
		var f []byte
		select {
		case <-ctx.Done():
			return nil
		case <-s.ctx.Done():
			return nil
		case <-client.dropped:
			return nil
		case <-keepAlive.C:
			f = []byte(": keep-alive\n\n")
		case f = <-client.frames:
		}
		rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(f); err != nil {
			return nil
		}
		w.Flush()
	}
}
