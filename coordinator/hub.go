package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tabgrid/tabgrid/store"
)

// HubConfig tunes the hub. Zero fields take the documented defaults.
type HubConfig struct {
	CoordinatorID    string           // unique per process (default: random)
	HeartbeatTimeout time.Duration    // default 15s: nothing heard from a tab for this long → close 4002, release
	HelloTimeout     time.Duration    // default 10s
	LeaseTTL         time.Duration    // default 15s: coordinator lease in the store; renewed every LeaseTTL/3
	ReapInterval     time.Duration    // default LeaseTTL/3
	Prefetch         int              // default 2: in-flight per tab ≤ capacity + Prefetch (negative: 0)
	MaxMessageBytes  int64            // default 1 MiB
	SendQueue        int              // default 64 messages per tab
	WriteTimeout     time.Duration    // default 10s
	MaxCapacity      int              // default 256: larger hello capacity → close 4000
	Retention        time.Duration    // default 24h: finished jobs deleted after this (reaper)
	ShutdownTimeout  time.Duration    // default 15s: longest wait to hand tasks back when Run ends
	Metrics          *Metrics         // may be nil in tests
	Clock            func() time.Time // may be nil
}

func (c *HubConfig) setDefaults() {
	if c.CoordinatorID == "" {
		c.CoordinatorID = "c-" + randomID(6)
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = 15 * time.Second
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = 10 * time.Second
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 15 * time.Second
	}
	if c.ReapInterval <= 0 {
		c.ReapInterval = c.LeaseTTL / 3
	}
	if c.Prefetch == 0 {
		c.Prefetch = 2
	} else if c.Prefetch < 0 {
		c.Prefetch = 0
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 1 << 20
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 64
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxCapacity <= 0 {
		c.MaxCapacity = 256
	}
	if c.Retention <= 0 {
		c.Retention = 24 * time.Hour
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// HubStats are this coordinator's tab totals.
type HubStats struct {
	Tabs      int   `json:"tabs"`
	Capacity  int   `json:"capacity"`
	InFlight  int   `json:"in_flight"`
	Completed int64 `json:"completed"`
}

// Hub keeps a WebSocket to every tab of this coordinator and feeds them
// tasks from the store. Its loops (dispatch.go, reaper.go and the ones
// below) all run under Run; ServeHTTP serves one tab each.
//
// Shutdown order (Run's ctx ends): the dispatcher stops claiming; every
// socket is closed with 1001 "going away"; results already received are
// completed; every tab's tasks are released and the tab removed from the
// registry; Run returns when every socket handler has returned.
type Hub struct {
	cfg   HubConfig
	id    string
	st    store.Store
	log   *slog.Logger
	m     *Metrics
	epoch time.Time // for monotonic nanos

	events chan tabEvent // readers → dispatcher
	wake   chan struct{} // dispatcher: tabs gone, cancels, work

	mu       sync.Mutex
	conns    map[*conn]struct{}
	stopped  bool
	gone     []*conn  // closed registered tabs the dispatcher has not seen yet
	cancels  []string // cancelled jobs the dispatcher has not handled yet
	releases []*conn  // tabs whose tasks the registry loop must release
	connWG   sync.WaitGroup

	workFlag atomic.Bool   // new work may be in the store
	regWake  chan struct{} // registry loop: releases queued
	regStop  chan struct{} // registry loop: drain releases and return

	pub *publisher
	fin *finisher
	reg *registrar

	started atomic.Bool

	tabs      atomic.Int64
	capacity  atomic.Int64
	inFlight  atomic.Int64
	completed atomic.Int64

	errLog rateLimitedLog
}

// NewHub builds a hub on st. It does nothing until Run.
func NewHub(cfg HubConfig, st store.Store, log *slog.Logger) (*Hub, error) {
	if st == nil {
		return nil, errors.New("new hub: no store")
	}
	if log == nil {
		log = slog.Default()
	}
	cfg.setDefaults()
	if cfg.MaxMessageBytes < 1024 {
		return nil, fmt.Errorf("new hub: max message bytes %d is below 1024", cfg.MaxMessageBytes)
	}
	h := &Hub{
		cfg:     cfg,
		id:      cfg.CoordinatorID,
		st:      st,
		log:     log.With("coordinator", cfg.CoordinatorID),
		m:       cfg.Metrics,
		epoch:   time.Now(),
		events:  make(chan tabEvent, 1024),
		wake:    make(chan struct{}, 1),
		conns:   map[*conn]struct{}{},
		regWake: make(chan struct{}, 1),
		regStop: make(chan struct{}),
	}
	h.errLog.every = 5 * time.Second
	h.workFlag.Store(true)
	h.pub = newPublisher(h)
	h.fin = newFinisher(h)
	h.reg = newRegistrar(h)
	h.m.observeStore(st)
	return h, nil
}

// ID is this coordinator's id in the store.
func (h *Hub) ID() string { return h.id }

// Stats returns this coordinator's tab totals.
func (h *Hub) Stats() HubStats {
	return HubStats{
		Tabs:      int(h.tabs.Load()),
		Capacity:  int(h.capacity.Load()),
		InFlight:  int(h.inFlight.Load()),
		Completed: h.completed.Load(),
	}
}

func (h *Hub) now() time.Time { return h.cfg.Clock() }

// mono is a monotonic clock in nanoseconds, for timeouts.
func (h *Hub) mono() int64 { return int64(time.Since(h.epoch)) }

// Run runs the hub's loops until ctx ends, then shuts down (see Hub). It
// returns nil after a clean shutdown.
func (h *Hub) Run(ctx context.Context) error {
	if !h.started.CompareAndSwap(false, true) {
		return errors.New("hub: run called twice")
	}
	// The helpers outlive ctx: shutdown still releases, publishes and
	// finishes through them.
	helpers, stopHelpers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHelpers()
	var regWG, helpersWG, loopsWG sync.WaitGroup
	regWG.Add(1)
	go func() { defer regWG.Done(); h.registryLoop(helpers) }()
	helpersWG.Add(3)
	go func() { defer helpersWG.Done(); h.pub.run(helpers) }()
	go func() { defer helpersWG.Done(); h.fin.run(helpers) }()
	go func() { defer helpersWG.Done(); h.reg.run(helpers) }()
	loopsWG.Add(3)
	go func() { defer loopsWG.Done(); h.subscribeLoop(ctx) }()
	go func() { defer loopsWG.Done(); h.reapLoop(ctx) }()
	go func() { defer loopsWG.Done(); h.watchdog(ctx) }()

	d := newDispatcher(h)
	d.run(ctx)

	// Shutdown.
	h.log.Info("hub stopping: handing tasks back")
	h.mu.Lock()
	h.stopped = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.closeWith(1001, "going away", requeueClosed)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.ShutdownTimeout)
	defer cancel()
	d.shutdown(sctx)
	loopsWG.Wait()
	close(h.regStop) // release what is queued, once, and stop
	regWG.Wait()
	stopHelpers()
	helpersWG.Wait()
	h.log.Info("hub stopped")
	return nil
}

// connStarting counts a new socket handler, unless the hub is stopping.
func (h *Hub) connStarting() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return false
	}
	h.connWG.Add(1)
	return true
}

func (h *Hub) addConn(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return false
	}
	h.conns[c] = struct{}{}
	return true
}

func (h *Hub) removeConn(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

func (h *Hub) snapshotConns() []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		out = append(out, c)
	}
	return out
}

// tabGone tells the dispatcher that a registered tab closed. It never
// blocks, so anyone (the dispatcher included) may call it.
func (h *Hub) tabGone(c *conn) {
	h.mu.Lock()
	h.gone = append(h.gone, c)
	h.mu.Unlock()
	h.wakeDispatcher()
}

func (h *Hub) takeGone() []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.gone
	h.gone = nil
	return g
}

func (h *Hub) addCancel(jobID string) {
	h.mu.Lock()
	h.cancels = append(h.cancels, jobID)
	h.mu.Unlock()
	h.wakeDispatcher()
}

func (h *Hub) takeCancels() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.cancels
	h.cancels = nil
	return c
}

// workEventData is the payload of a "work" event: the job with tasks
// pending ("" when not known) and the coordinator that published it.
func workEventData(jobID, from string) json.RawMessage {
	b, _ := json.Marshal(struct {
		Job  string `json:"job,omitempty"`
		From string `json:"from"`
	}{jobID, from})
	return b
}

// workEventFrom names the coordinator that published a "work" event, ""
// when the event does not say.
func workEventFrom(data json.RawMessage) string {
	var ev struct {
		From string `json:"from"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return ""
	}
	return ev.From
}

// workAvailable wakes the dispatcher because tasks may be pending.
func (h *Hub) workAvailable() {
	h.workFlag.Store(true)
	h.wakeDispatcher()
}

func (h *Hub) wakeDispatcher() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// queueRelease hands a closed tab, which the dispatcher no longer claims
// for, to the registry loop.
func (h *Hub) queueRelease(cs []*conn) {
	if len(cs) == 0 {
		return
	}
	h.mu.Lock()
	h.releases = append(h.releases, cs...)
	h.mu.Unlock()
	select {
	case h.regWake <- struct{}{}:
	default:
	}
}

// registryLoop owns the tabs' entries in the store: it renews them all
// every LeaseTTL/3 (which renews this coordinator's lease), and releases
// and removes closed tabs. Doing both in one goroutine orders every
// removal after any renewal that still listed the tab, so a closed tab
// is never re-added.
func (h *Hub) registryLoop(ctx context.Context) {
	tick := time.NewTicker(h.cfg.LeaseTTL / 3)
	defer tick.Stop()
	h.renew(ctx)
	var retry <-chan time.Time
	backoff := newBackoff(50*time.Millisecond, 2*time.Second)
	for {
		stopping := false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			h.renew(ctx)
		case <-h.regWake:
		case <-retry:
			retry = nil
		case <-h.regStop:
			stopping = true
		}
		if !h.releaseAll(ctx, stopping) && !stopping {
			retry = time.After(backoff.next())
		} else {
			backoff.reset()
		}
		if stopping {
			return
		}
	}
}

// releaseAll releases and removes every queued tab. It returns false when
// the store failed and some are left for later; when stopping it tries
// each once.
func (h *Hub) releaseAll(ctx context.Context, stopping bool) bool {
	h.mu.Lock()
	queue := h.releases
	h.releases = nil
	h.mu.Unlock()
	for i, c := range queue {
		if !h.release(ctx, c) && !stopping {
			h.mu.Lock()
			h.releases = append(queue[i:len(queue):len(queue)], h.releases...)
			h.mu.Unlock()
			return false
		}
	}
	return true
}

func (h *Hub) release(ctx context.Context, c *conn) bool {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	n, err := h.st.ReleaseWorker(cctx, c.id)
	h.m.storeCall(opRelease, start, err)
	if err != nil {
		h.logStoreError(opRelease, err)
		return false
	}
	h.m.requeuedAdd(c.requeueReason(), n)
	if n > 0 {
		h.workAvailable()
		h.pub.work("")
	}
	start = time.Now()
	err = h.st.RemoveWorker(cctx, h.id, c.id)
	h.m.storeCall(opRemove, start, err)
	if err != nil {
		// The release is done; a leftover registry entry dies with its
		// lease or at the next removal of this id. Not worth a retry.
		h.logStoreError(opRemove, err)
	}
	c.logger().Info("tab disconnected", "released", n)
	h.pub.workerEvent("disconnected", c.info(h.now()))
	return true
}

// renew renews this coordinator's lease and its registered tabs.
func (h *Hub) renew(ctx context.Context) {
	now := h.now()
	conns := h.snapshotConns()
	infos := make([]store.WorkerInfo, 0, len(conns))
	for _, c := range conns {
		if !c.registered() {
			continue
		}
		done := c.completed.Load()
		if !c.rateAt.IsZero() {
			if dt := now.Sub(c.rateAt).Seconds(); dt > 0 {
				// Smooth over two renewals: a rate for humans, not control.
				r := float64(done-c.rateCompleted) / dt
				old := math.Float64frombits(c.rate.Load())
				c.rate.Store(math.Float64bits(0.5*old + 0.5*r))
			}
		}
		c.rateCompleted, c.rateAt = done, now
		infos = append(infos, c.info(now))
	}
	cctx, cancel := context.WithTimeout(ctx, h.cfg.LeaseTTL/3)
	defer cancel()
	start := time.Now()
	err := h.st.RenewWorkers(cctx, h.id, infos, h.cfg.LeaseTTL)
	h.m.storeCall(opRenew, start, err)
	if err != nil {
		h.logStoreError(opRenew, err)
	}
}

// watchdog closes tabs that said no hello in time or went silent.
func (h *Hub) watchdog(ctx context.Context) {
	every := min(h.cfg.HeartbeatTimeout, h.cfg.HelloTimeout) / 4
	every = max(10*time.Millisecond, min(every, time.Second))
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := h.mono()
		for _, c := range h.snapshotConns() {
			if c.isClosed.Load() {
				continue
			}
			if !c.helloDone.Load() {
				if time.Duration(now-c.start) > h.cfg.HelloTimeout {
					c.closeWith(closeHello, "hello timeout", requeueClosed)
				}
				continue
			}
			if !c.handing.Load() && time.Duration(now-c.lastHeard.Load()) > h.cfg.HeartbeatTimeout {
				c.closeWith(closeHeartbeat, "heartbeat timeout", requeueHeartbeat)
			}
		}
	}
}

// subscribeLoop turns store events into wake-ups: "work" (tasks pending
// somewhere) and "cancel" (a job was cancelled: drop its tasks).
func (h *Hub) subscribeLoop(ctx context.Context) {
	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		start := time.Now()
		ch, err := h.st.Subscribe(ctx)
		h.m.storeCall(opSubscribe, start, err)
		if err != nil {
			h.logStoreError(opSubscribe, err)
			sleepCtx(ctx, backoff.next())
			continue
		}
		backoff.reset()
		for ev := range ch {
			switch ev.Type {
			case "work":
				// Whoever publishes work has woken its own dispatcher
				// already; its own event coming back would only cost a
				// claim that finds nothing.
				if workEventFrom(ev.Data) != h.id {
					h.workAvailable()
				}
			case "cancel":
				var data struct {
					Job string `json:"job"`
				}
				if err := json.Unmarshal(ev.Data, &data); err == nil && data.Job != "" {
					h.addCancel(data.Job)
				}
			}
		}
		// The subscription ended early (the store went away): events may
		// have been missed, so look for work, then subscribe again.
		h.workAvailable()
		sleepCtx(ctx, backoff.next())
	}
}

// logStoreError logs store failures at most once per interval per
// operation, counting what it skipped.
func (h *Hub) logStoreError(op string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	if n, ok := h.errLog.allow(op, time.Now()); ok {
		h.log.Warn("store call failed", "op", op, "err", err, "suppressed", n)
	}
}

type rateLimitedLog struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
	skip  map[string]int
}

func (r *rateLimitedLog) allow(key string, now time.Time) (skipped int, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last, r.skip = map[string]time.Time{}, map[string]int{}
	}
	if now.Sub(r.last[key]) < r.every {
		r.skip[key]++
		return 0, false
	}
	skipped = r.skip[key]
	r.last[key], r.skip[key] = now, 0
	return skipped, true
}

// backoff doubles from min to max; each wait is jittered over its upper half.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur/2 + time.Duration(mrand.Int64N(int64(b.cur/2)+1))
}

func (b *backoff) reset() { b.cur = 0 }

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
