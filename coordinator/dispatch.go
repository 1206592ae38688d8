package coordinator

import (
	"context"
	"strconv"
	"time"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/tasks"
)

// The dispatcher is the hub's one loop that talks to the store for tabs:
// each turn it takes everything the readers delivered, makes ONE Complete
// call for all results and ONE Claim call for every tab with free slots,
// and sends each tab its leases in one tasks message. It alone owns every
// tab's in-flight set, so the hot path takes no locks.

type evKind uint8

const (
	evHello evKind = iota
	evCapacity
	evResults
)

// tabEvent is what a reader hands the dispatcher.
type tabEvent struct {
	kind     evKind
	c        *conn
	capacity int
	results  []inResult
}

type taskKey struct {
	job   string
	index int
}

// flight is one task sent to a tab, waiting for its result.
type flight struct {
	token    int
	sent     int64 // monotonic nanos
	deadline int64
	timeout  time.Duration
}

// tabState is the dispatcher's view of one registered tab.
type tabState struct {
	c        *conn
	id       string
	capacity int
	inflight map[taskKey]flight
	// revoked remembers tasks taken back from the tab (timeout, cancel)
	// so that a late result for one counts as stale, not forged.
	revoked map[taskKey]int
	leases  []int32 // scratch: this turn's leases for the tab
}

// resultMeta is what the dispatcher knows about a pending result.
type resultMeta struct {
	c       *conn
	sent    int64 // when its task was sent; 0 when the token was not the one sent
	timeout bool  // the hub's own timeout report
}

const (
	maxBatch       = 4096  // results per Complete call
	maxPending     = 65536 // results held while the store is unreachable
	maxRevoked     = 1024
	storeTimeout   = 10 * time.Second
	fallbackWakeup = 1500 * time.Millisecond
	timeoutTick    = 100 * time.Millisecond
)

type dispatcher struct {
	h        *Hub
	tabs     map[*conn]*tabState
	byID     map[string]*tabState
	pending  []store.Result
	meta     []resultMeta
	inflight int
	capacity int

	nextDeadline int64

	failing bool
	retryAt int64
	// dry: the last claim got fewer tasks than it asked for, so the store
	// had no more pending work then.
	dry     bool
	backoff *backoff

	// suspect tabs were in a Claim that failed: the store may have
	// leased them tasks whose leases we never saw. They get no claims
	// until ReleaseWorker has taken back everything leased to them.
	suspect map[*tabState]struct{}

	reqs     []store.ClaimRequest
	active   []*tabState
	dirty    map[string]struct{}
	released []*conn
}

func newDispatcher(h *Hub) *dispatcher {
	return &dispatcher{
		h:            h,
		tabs:         map[*conn]*tabState{},
		byID:         map[string]*tabState{},
		dirty:        map[string]struct{}{},
		suspect:      map[*tabState]struct{}{},
		nextDeadline: 1<<63 - 1,
		backoff:      newBackoff(50*time.Millisecond, 2*time.Second),
	}
}

func (d *dispatcher) run(ctx context.Context) {
	fallback := time.NewTicker(fallbackWakeup)
	defer fallback.Stop()
	tick := time.NewTicker(timeoutTick)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		d.step(ctx)
		if ctx.Err() != nil {
			return
		}
		if len(d.pending) > 0 && !d.inBackoff() {
			continue // more results than one batch: no sleeping
		}
		events := d.h.events
		if len(d.pending) >= maxPending {
			events = nil // the store is away and we hold all we may: backpressure
		}
		var retryC <-chan time.Time
		if d.failing {
			retry.Reset(time.Duration(max(d.retryAt-d.h.mono(), 0)))
			retryC = retry.C
		}
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			d.handle(ev)
		case <-d.h.wake:
		case <-tick.C:
		case <-fallback.C:
			// Events are best effort: now and then look for work anyway.
			d.h.workFlag.Store(true)
		case <-retryC:
		}
	}
}

func (d *dispatcher) inBackoff() bool {
	return d.failing && d.h.mono() < d.retryAt
}

// step does one turn: take what the tabs sent, then talk to the store.
func (d *dispatcher) step(ctx context.Context) {
	h := d.h
	limit := maxBatch
	if d.failing {
		limit = maxPending
	}
	d.drain(limit)
	if gone := h.takeGone(); len(gone) > 0 {
		// Results a tab sent before it closed are in the channel ahead of
		// its close: take them before forgetting the tab.
		d.drain(maxPending)
		d.dropTabs(gone)
	}
	if cancels := h.takeCancels(); len(cancels) > 0 {
		d.cancelJobs(cancels)
	}
	d.checkTimeouts()
	if !d.inBackoff() {
		if len(d.pending) > 0 {
			d.complete(ctx)
		}
		if len(d.suspect) > 0 && len(d.pending) == 0 && !d.inBackoff() && ctx.Err() == nil {
			d.resolveSuspects(ctx)
		}
		if !d.inBackoff() && h.workFlag.Load() && ctx.Err() == nil {
			d.claim(ctx)
		}
	}
	// Released only now, after the results they sent were completed.
	h.queueRelease(d.released)
	d.released = d.released[:0]
	d.publish()
}

// drain handles the readers' events that are already waiting.
func (d *dispatcher) drain(limit int) {
	for len(d.pending) < limit {
		select {
		case ev := <-d.h.events:
			d.handle(ev)
		default:
			return
		}
	}
}

// newSlots notes that tabs have more free slots: worth a claim unless the
// last one found the store dry. Whatever puts tasks back in the store
// (a job, a release, a retry, the fallback tick) raises the work flag
// itself, so a burst of thousands of hellos into an idle grid costs no
// claims, each of which would list every tab.
func (d *dispatcher) newSlots() {
	if !d.dry {
		d.h.workFlag.Store(true)
	}
}

func (d *dispatcher) handle(ev tabEvent) {
	switch ev.kind {
	case evHello:
		if ev.c.isClosed.Load() {
			return // closed before we heard of it; its release is queued
		}
		ts := &tabState{
			c:        ev.c,
			id:       ev.c.id,
			capacity: ev.capacity,
			inflight: make(map[taskKey]flight, ev.capacity+d.h.cfg.Prefetch),
		}
		d.tabs[ev.c] = ts
		d.byID[ts.id] = ts
		d.capacity += ts.capacity
		d.newSlots()
	case evCapacity:
		ts := d.tabs[ev.c]
		if ts == nil {
			return
		}
		if ev.capacity > ts.capacity {
			d.newSlots()
		}
		d.capacity += ev.capacity - ts.capacity
		ts.capacity = ev.capacity
		if ev.capacity == 0 && len(ts.inflight) > 0 {
			// Paused: take back everything the tab holds, as after a
			// failed claim. Left with it, tasks queued on the page would
			// run past their timeout, each counting an attempt.
			d.suspect[ts] = struct{}{}
		}
	case evResults:
		d.takeResults(ev.c, ev.results)
	}
}

// takeResults checks results against what the tab holds. Only a result
// for a task the tab was sent frees its slot; one for a task it holds
// with another token goes to the store, whose fencing drops it; one for a
// task it never had is forged and never reaches the store.
func (d *dispatcher) takeResults(c *conn, results []inResult) {
	m := d.h.m
	ts := d.tabs[c]
	if ts == nil {
		// The tab is gone and its tasks released: these are stale.
		m.droppedAdd(dropStale, len(results))
		return
	}
	for i := range results {
		r := &results[i]
		k := taskKey{r.Job, r.Index}
		f, ok := ts.inflight[k]
		if !ok {
			if tok, ok := ts.revoked[k]; ok && tok == r.Token {
				m.droppedAdd(dropStale, 1)
			} else {
				m.droppedAdd(dropForged, 1)
			}
			continue
		}
		res := store.Result{Worker: ts.id, JobID: r.Job, Index: r.Index, Token: r.Token, Output: r.Output}
		if r.Error != nil {
			res.Output = nil
			res.Error = *r.Error
		}
		meta := resultMeta{c: c}
		if f.token == r.Token {
			delete(ts.inflight, k)
			d.inflight--
			meta.sent = f.sent
		}
		d.pending = append(d.pending, res)
		d.meta = append(d.meta, meta)
	}
	c.inFlight.Store(int32(len(ts.inflight)))
}

// dropTabs forgets closed tabs and queues their release.
func (d *dispatcher) dropTabs(gone []*conn) {
	for _, c := range gone {
		if ts := d.tabs[c]; ts != nil {
			delete(d.tabs, c)
			delete(d.byID, ts.id)
			delete(d.suspect, ts)
			d.inflight -= len(ts.inflight)
			d.capacity -= ts.capacity
		}
		d.released = append(d.released, c)
	}
}

// cancelJobs takes the tasks of cancelled jobs back from their tabs.
func (d *dispatcher) cancelJobs(jobs []string) {
	set := make(map[string]struct{}, len(jobs))
	for _, j := range jobs {
		set[j] = struct{}{}
	}
	for _, ts := range d.tabs {
		var refs []taskRef
		for k, f := range ts.inflight {
			if _, ok := set[k.job]; ok {
				refs = append(refs, taskRef{Job: k.job, Index: k.index, Token: f.token})
				d.revoke(ts, k, f)
			}
		}
		if len(refs) > 0 {
			ts.c.inFlight.Store(int32(len(ts.inflight)))
			ts.c.enqueue(encodeCancel(refs, reasonCancelled))
		}
	}
}

func (d *dispatcher) revoke(ts *tabState, k taskKey, f flight) {
	delete(ts.inflight, k)
	d.inflight--
	if ts.revoked == nil || len(ts.revoked) >= maxRevoked {
		ts.revoked = map[taskKey]int{}
	}
	ts.revoked[k] = f.token
}

// checkTimeouts revokes tasks that ran past their timeout and reports
// each as an error result, which counts an attempt.
func (d *dispatcher) checkTimeouts() {
	now := d.h.mono()
	if now < d.nextDeadline {
		return
	}
	next := int64(1<<63 - 1)
	for _, ts := range d.tabs {
		var refs []taskRef
		for k, f := range ts.inflight {
			if f.deadline > now {
				next = min(next, f.deadline)
				continue
			}
			refs = append(refs, taskRef{Job: k.job, Index: k.index, Token: f.token})
			d.revoke(ts, k, f)
			d.pending = append(d.pending, store.Result{
				Worker: ts.id, JobID: k.job, Index: k.index, Token: f.token,
				Error: "timeout after " + formatTimeout(f.timeout),
			})
			d.meta = append(d.meta, resultMeta{c: ts.c, timeout: true})
		}
		if len(refs) > 0 {
			ts.c.logger().Info("tasks timed out", "tasks", len(refs))
			ts.c.inFlight.Store(int32(len(ts.inflight)))
			ts.c.enqueue(encodeCancel(refs, reasonTimeout))
		}
	}
	d.nextDeadline = next
}

// formatTimeout writes whole seconds as "60s", the way job specs do.
func formatTimeout(t time.Duration) string {
	if t%time.Second == 0 {
		return strconv.FormatInt(int64(t/time.Second), 10) + "s"
	}
	return t.String()
}

// complete sends up to one batch of pending results to the store.
func (d *dispatcher) complete(ctx context.Context) {
	h := d.h
	n := min(len(d.pending), maxBatch)
	batch := d.pending[:n]
	cctx, cancel := context.WithTimeout(ctx, storeTimeout)
	start := time.Now()
	comp, err := h.st.Complete(cctx, batch)
	cancel()
	h.m.storeCall(opComplete, start, err)
	if err != nil {
		d.storeFailed(opComplete, err)
		return
	}
	d.storeOK()
	now := h.mono()
	var accepted int
	var retried map[string]struct{}
	lastDirty := ""
	for i, o := range comp.Outcomes {
		if i >= n {
			break
		}
		r, mt := &batch[i], &d.meta[i]
		switch o {
		case store.Accepted:
			accepted++
			if mt.c != nil {
				mt.c.completed.Add(1)
			}
			if mt.sent > 0 && h.m != nil {
				h.m.DispatchLatency.Observe(float64(now-mt.sent) / 1e9)
			}
		case store.Stale:
			if !mt.timeout { // a timeout is the hub's own result, not a tab's
				h.m.droppedAdd(dropStale, 1)
			}
			continue
		case store.Duplicate:
			if !mt.timeout {
				h.m.droppedAdd(dropDuplicate, 1)
			}
			continue
		case store.Retried:
			if mt.timeout {
				h.m.requeuedAdd(requeueTimeout, 1)
			} else {
				h.m.requeuedAdd(requeueError, 1)
			}
			if mt.c != nil {
				mt.c.failed.Add(1)
			}
			if retried == nil {
				retried = map[string]struct{}{}
			}
			retried[r.JobID] = struct{}{}
		case store.Failed:
			if mt.c != nil {
				mt.c.failed.Add(1)
			}
			h.pub.jobNow(r.JobID)
			continue
		}
		if r.JobID != lastDirty {
			d.dirty[r.JobID] = struct{}{}
			lastDirty = r.JobID
		}
	}
	if accepted > 0 {
		h.completed.Add(int64(accepted))
		if h.m != nil {
			h.m.Completed.Add(float64(accepted))
		}
	}
	for _, id := range comp.Done {
		h.fin.add(id)
	}
	if len(retried) > 0 {
		h.workFlag.Store(true)
		for job := range retried {
			h.pub.work(job) // other coordinators may have free tabs
		}
	}
	rest := copy(d.pending, d.pending[n:])
	clear(d.pending[rest:])
	d.pending = d.pending[:rest]
	copy(d.meta, d.meta[n:])
	clear(d.meta[rest:])
	d.meta = d.meta[:rest]
}

// claim asks the store, in one call, for tasks for every tab with free
// slots, and sends each tab its share in one message.
func (d *dispatcher) claim(ctx context.Context) {
	h := d.h
	prefetch := h.cfg.Prefetch
	reqs := d.reqs[:0]
	total := 0
	for _, ts := range d.tabs {
		if ts.capacity <= 0 || ts.c.isClosed.Load() {
			continue
		}
		if _, ok := d.suspect[ts]; ok {
			continue
		}
		free := ts.capacity + prefetch - len(ts.inflight)
		if free <= 0 {
			continue
		}
		reqs = append(reqs, store.ClaimRequest{Worker: ts.id, Max: free})
		total += free
	}
	d.reqs = reqs
	if len(reqs) == 0 {
		return // the flag stays set: claim once a slot frees
	}
	// Cleared before the call, so a wake-up during it is not lost.
	h.workFlag.Store(false)
	cctx, cancel := context.WithTimeout(ctx, storeTimeout)
	start := time.Now()
	leases, err := h.st.Claim(cctx, reqs)
	cancel()
	h.m.storeCall(opClaim, start, err)
	if err != nil {
		h.workFlag.Store(true)
		d.storeFailed(opClaim, err)
		// The call may have been applied with its answer lost.
		for _, r := range reqs {
			if ts := d.byID[r.Worker]; ts != nil {
				d.suspect[ts] = struct{}{}
			}
		}
		return
	}
	d.storeOK()
	d.dry = len(leases) < total
	if !d.dry {
		h.workFlag.Store(true) // there may be more
	}
	if len(leases) == 0 {
		return
	}
	active := d.active[:0]
	for i := range leases {
		ts := d.byID[leases[i].Worker]
		if ts == nil {
			continue // cannot happen: only our tabs were asked for
		}
		if len(ts.leases) == 0 {
			active = append(active, ts)
		}
		ts.leases = append(ts.leases, int32(i))
	}
	now := h.mono()
	lastDirty := ""
	sent := 0
	for _, ts := range active {
		size := 32
		for _, li := range ts.leases {
			size += len(leases[li].Input) + len(leases[li].JobID) + len(leases[li].Kind) + 80
		}
		b := appendTasksHeader(make([]byte, 0, size))
		for j, li := range ts.leases {
			l := &leases[li]
			b = appendTask(b, l, j == 0)
			to := l.TaskTimeout
			if to <= 0 {
				to = tasks.DefaultTaskTimeout
			}
			k := taskKey{l.JobID, l.Index}
			dl := now + int64(to)
			ts.inflight[k] = flight{token: l.Token, sent: now, deadline: dl, timeout: to}
			if ts.revoked != nil {
				delete(ts.revoked, k)
			}
			d.nextDeadline = min(d.nextDeadline, dl)
			if l.JobID != lastDirty {
				d.dirty[l.JobID] = struct{}{}
				lastDirty = l.JobID
			}
		}
		b = appendTasksEnd(b)
		d.inflight += len(ts.leases)
		sent += len(ts.leases)
		ts.c.inFlight.Store(int32(len(ts.inflight)))
		// If the tab is too slow for this, it is closed and its release
		// takes these leases back.
		ts.c.enqueue(b)
		ts.leases = ts.leases[:0]
	}
	clear(active)
	d.active = active[:0]
	if h.m != nil {
		h.m.Dispatched.Add(float64(sent))
	}
}

// resolveSuspects takes back everything leased to the tabs of a failed
// Claim, and revokes on each tab what it was sent: a lease the hub never
// saw would otherwise stay running for as long as the tab stays. Paused
// tabs are handed back the same way. Rare (store outages, a volunteer's
// click), so it is done one tab at a time.
func (d *dispatcher) resolveSuspects(ctx context.Context) {
	h := d.h
	for ts := range d.suspect {
		cctx, cancel := context.WithTimeout(ctx, storeTimeout)
		start := time.Now()
		n, err := h.st.ReleaseWorker(cctx, ts.id)
		cancel()
		h.m.storeCall(opRelease, start, err)
		if err != nil {
			d.storeFailed(opRelease, err)
			return
		}
		delete(d.suspect, ts)
		h.m.requeuedAdd(requeueRevoked, n)
		var refs []taskRef
		for k, f := range ts.inflight {
			refs = append(refs, taskRef{Job: k.job, Index: k.index, Token: f.token})
			d.revoke(ts, k, f)
		}
		if len(refs) > 0 {
			ts.c.inFlight.Store(0)
			ts.c.enqueue(encodeCancel(refs, reasonRevoked))
		}
		if n > 0 {
			ts.c.logger().Info("leases revoked", "released", n, "revoked", len(refs), "paused", ts.capacity == 0)
			h.workFlag.Store(true)
			h.pub.work("")
		}
	}
}

func (d *dispatcher) storeFailed(op string, err error) {
	d.failing = true
	d.retryAt = d.h.mono() + int64(d.backoff.next())
	d.h.logStoreError(op, err)
}

func (d *dispatcher) storeOK() {
	if d.failing {
		d.h.log.Info("store reachable again", "pending_results", len(d.pending))
	}
	d.failing = false
	d.backoff.reset()
}

// publish exports the turn's totals and hands dirty jobs to the publisher.
func (d *dispatcher) publish() {
	h := d.h
	h.tabs.Store(int64(len(d.tabs)))
	h.capacity.Store(int64(d.capacity))
	h.inFlight.Store(int64(d.inflight))
	if h.m != nil {
		h.m.Tabs.Set(float64(len(d.tabs)))
		h.m.Capacity.Set(float64(d.capacity))
		h.m.InFlight.Set(float64(d.inflight))
	}
	if len(d.dirty) > 0 {
		h.pub.jobsChanged(d.dirty)
		clear(d.dirty)
	}
}

// shutdown runs after Run's ctx ended and every socket was told to
// close: it completes the results already received, then has every tab
// released, until all socket handlers have returned.
func (d *dispatcher) shutdown(ctx context.Context) {
	h := d.h
	done := make(chan struct{})
	go func() {
		h.connWG.Wait()
		close(done)
	}()
	d.failing = false
	for {
		d.drain(maxPending)
		if gone := h.takeGone(); len(gone) > 0 {
			d.drain(maxPending)
			d.dropTabs(gone)
		}
		for len(d.pending) > 0 && ctx.Err() == nil && !d.failing {
			d.complete(ctx)
		}
		h.queueRelease(d.released)
		d.released = d.released[:0]
		d.publish()
		select {
		case <-done:
			// A handler that was registering reports its tab gone
			// before it returns: take those last ones.
			d.dropTabs(h.takeGone())
			h.queueRelease(d.released)
			d.released = d.released[:0]
			d.publish()
			return
		case <-h.wake:
		case ev := <-h.events:
			d.handle(ev)
		case <-ctx.Done():
			h.log.Warn("hub shutdown: gave up waiting for tab sockets")
			return
		}
	}
}
