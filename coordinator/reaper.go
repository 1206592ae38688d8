package coordinator

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/tasks"
)

// The hub's background loops besides dispatch: the reaper (dead
// coordinators, unreduced jobs, old jobs), the finisher (reduces jobs
// whose tasks all succeeded) and the publisher (events to other
// coordinators and dashboards).

// reapLoop runs the reaper every ReapInterval until ctx ends.
func (h *Hub) reapLoop(ctx context.Context) {
	tick := time.NewTicker(h.cfg.ReapInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			h.reapOnce(ctx)
		}
	}
}

// reapOnce requeues the tasks of coordinators whose lease expired, queues
// jobs left unreduced by a dead coordinator, and deletes old jobs. Every
// coordinator runs it; the store makes that safe.
func (h *Hub) reapOnce(ctx context.Context) {
	now := h.now()
	cctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()

	start := time.Now()
	n, err := h.st.Reap(cctx, now)
	h.m.storeCall(opReap, start, err)
	if err != nil {
		h.logStoreError(opReap, err)
		return // the store is away; the rest would fail too
	}
	if n > 0 {
		h.log.Info("reaped tasks of a lost coordinator", "tasks", n)
		h.m.requeuedAdd(requeueCoordinatorLost, n)
		h.pub.work("")
		h.workAvailable()
	}

	start = time.Now()
	ids, err := h.st.UnfinishedJobs(cctx)
	h.m.storeCall(opUnfinished, start, err)
	if err != nil {
		h.logStoreError(opUnfinished, err)
	}
	for _, id := range ids {
		h.fin.add(id)
	}

	start = time.Now()
	deleted, err := h.st.DeleteFinishedBefore(cctx, now.Add(-h.cfg.Retention))
	h.m.storeCall(opDeleteOld, start, err)
	if err != nil {
		h.logStoreError(opDeleteOld, err)
	} else if deleted > 0 {
		h.log.Info("deleted finished jobs", "jobs", deleted, "retention", h.cfg.Retention)
	}
}

// finisher reduces jobs whose every task succeeded, one at a time, off
// the dispatcher's loop (a reducer may read every output of a big job).
type finisher struct {
	h      *Hub
	mu     sync.Mutex
	queue  []string
	queued map[string]bool
	wake   chan struct{}
}

func newFinisher(h *Hub) *finisher {
	return &finisher{h: h, queued: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// add queues a job for reducing, once.
func (f *finisher) add(jobID string) {
	f.mu.Lock()
	if !f.queued[jobID] {
		f.queued[jobID] = true
		f.queue = append(f.queue, jobID)
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *finisher) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		}
		for {
			f.mu.Lock()
			if len(f.queue) == 0 {
				f.mu.Unlock()
				break
			}
			id := f.queue[0]
			f.queue = f.queue[1:]
			f.mu.Unlock()
			f.finish(ctx, id)
			f.mu.Lock()
			delete(f.queued, id)
			f.mu.Unlock()
		}
	}
}

// finish reduces one job and stores its result. On a store error it
// gives up: the reaper finds the job again among UnfinishedJobs.
func (f *finisher) finish(ctx context.Context, id string) {
	h := f.h
	cctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	// The job (for its kind and input) and its outputs are read at once:
	// one round trip of waiting between a job's last result and its
	// result, not two.
	var outputs []json.RawMessage
	var outErr error
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		start := time.Now()
		outputs, outErr = h.st.TaskOutputs(cctx, id)
		h.m.storeCall(opOutputs, start, outErr)
	}()
	start := time.Now()
	job, err := h.st.GetJob(cctx, id)
	h.m.storeCall(opGetJob, start, err)
	<-outDone
	if err != nil {
		h.logStoreError(opGetJob, err)
		return
	}
	if job.State.Final() {
		return
	}
	if outErr != nil {
		h.logStoreError(opOutputs, outErr)
		return
	}
	var result json.RawMessage
	var errMsg string
	if kind, ok := tasks.Lookup(job.Kind); !ok {
		errMsg = "unknown kind " + job.Kind
	} else if result, err = kind.Reduce(job.ID, job.Input, outputs); err != nil {
		errMsg = "reduce: " + err.Error()
		result = nil
	}
	start = time.Now()
	done, err := h.st.FinishJob(cctx, id, result, errMsg)
	h.m.storeCall(opFinish, start, err)
	if err != nil {
		h.logStoreError(opFinish, err)
		return
	}
	h.log.Info("job finished", "job", id, "state", done.State, "tasks", done.Tasks.Total, "error", done.Error)
	h.pub.job(done)
}

// publisher sends events through the store without holding up anyone:
// "work" and "worker" events as soon as it can, "job" updates at most
// every jobEvery per job (dispatch marks jobs dirty), and at once when a
// job ends. Events are best effort; when the queue overflows the oldest
// are dropped.
type publisher struct {
	h        *Hub
	mu       sync.Mutex
	queue    []store.Event
	workJobs map[string]bool // jobs with a "work" event queued ("" = any)
	dirty    map[string]struct{}
	now      map[string]struct{}
	wake     chan struct{}
}

const (
	jobEvery      = 250 * time.Millisecond
	maxQueuedEvts = 10000
)

func newPublisher(h *Hub) *publisher {
	return &publisher{
		h:        h,
		workJobs: map[string]bool{},
		dirty:    map[string]struct{}{},
		now:      map[string]struct{}{},
		wake:     make(chan struct{}, 1),
	}
}

func (p *publisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *publisher) push(ev store.Event) {
	p.mu.Lock()
	if len(p.queue) >= maxQueuedEvts {
		p.queue = p.queue[1:]
	}
	p.queue = append(p.queue, ev)
	p.mu.Unlock()
	p.signal()
}

// work announces pending tasks of a job ("" when not known) to every
// coordinator.
func (p *publisher) work(jobID string) {
	p.mu.Lock()
	if p.workJobs[jobID] {
		p.mu.Unlock()
		return
	}
	p.workJobs[jobID] = true
	p.mu.Unlock()
	p.signal()
}

func (p *publisher) workerEvent(event string, info store.WorkerInfo) {
	data, _ := json.Marshal(struct {
		Event  string           `json:"event"`
		Worker store.WorkerInfo `json:"worker"`
	}{event, info})
	p.push(store.Event{Type: "worker", Data: data})
}

// jobsChanged marks jobs whose counts changed.
func (p *publisher) jobsChanged(jobs map[string]struct{}) {
	p.mu.Lock()
	for id := range jobs {
		p.dirty[id] = struct{}{}
	}
	p.mu.Unlock()
}

// jobNow publishes a job's state at once (it just ended).
func (p *publisher) jobNow(id string) {
	p.mu.Lock()
	p.now[id] = struct{}{}
	p.mu.Unlock()
	p.signal()
}

// job publishes a job object the caller already has.
func (p *publisher) job(j tasks.Job) {
	j.SetProgress()
	data, err := json.Marshal(j)
	if err != nil {
		return
	}
	p.mu.Lock()
	delete(p.dirty, j.ID)
	p.mu.Unlock()
	p.push(store.Event{Type: "job", Data: data})
}

func (p *publisher) run(ctx context.Context) {
	tick := time.NewTicker(jobEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// One last flush, briefly: "disconnected" events of the
			// shutdown are worth sending.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			p.flush(fctx, false)
			cancel()
			return
		case <-p.wake:
			p.flush(ctx, false)
		case <-tick.C:
			p.flush(ctx, true)
		}
	}
}

func (p *publisher) flush(ctx context.Context, dirtyToo bool) {
	p.mu.Lock()
	queue := p.queue
	p.queue = nil
	var work []string
	for id := range p.workJobs {
		work = append(work, id)
	}
	clear(p.workJobs)
	var jobs []string
	for id := range p.now {
		jobs = append(jobs, id)
		delete(p.dirty, id)
	}
	clear(p.now)
	if dirtyToo {
		for id := range p.dirty {
			jobs = append(jobs, id)
		}
		clear(p.dirty)
	}
	p.mu.Unlock()

	for _, id := range work {
		queue = append(queue, store.Event{Type: "work", Data: workEventData(id, p.h.id)})
	}
	for _, id := range jobs {
		if ctx.Err() != nil {
			return
		}
		start := time.Now()
		j, err := p.h.st.GetJob(ctx, id)
		p.h.m.storeCall(opGetJob, start, err)
		if err != nil {
			p.h.logStoreError(opGetJob, err)
			continue
		}
		j.SetProgress()
		data, err := json.Marshal(j)
		if err != nil {
			continue
		}
		queue = append(queue, store.Event{Type: "job", Data: data})
	}
	for _, ev := range queue {
		if ctx.Err() != nil {
			return
		}
		start := time.Now()
		err := p.h.st.Publish(ctx, ev)
		p.h.m.storeCall(opPublish, start, err)
		if err != nil {
			p.h.logStoreError(opPublish, err)
		}
	}
}
