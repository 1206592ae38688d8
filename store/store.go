// Package store defines the contract between the coordinator and the place
// where every job's and task's state lives. Two implementations satisfy it:
// memstore (in one process, not durable) and redisstore (durable, shared by
// many coordinators, runs on one Redis server or on a Redis Cluster). The
// contract suite in storetest holds both to the same behaviour.
//
// This package imports only tasks; implementations never import each other.
package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/tabgrid/tabgrid/tasks"
)

// Store is everything the coordinator needs from its store. It is split in
// small interfaces by concern so that each part of the coordinator can ask
// for only what it uses.
type Store interface {
	Jobs
	Dispatch
	Workers
	Events
	// Ping reports whether the store can be reached (readiness).
	Ping(ctx context.Context) error
	Close() error
}

// NewJob is a validated, split job ready to be stored.
type NewJob struct {
	Job            tasks.Job         // ID, Name, Kind, Priority, MaxAttempts, TaskTimeout, CreatedAt, Input
	Inputs         []json.RawMessage // one per task, in task order
	IdempotencyKey string            // optional; a repeat returns the first job
}

// JobFilter selects jobs for ListJobs.
type JobFilter struct {
	State tasks.JobState // empty = any
	Limit int            // 0 = the store's default (50)
}

// Jobs stores jobs and their results.
type Jobs interface {
	// CreateJob stores the job and all its tasks in one atomic step, in
	// state queued with every task pending. With an idempotency key that
	// was used before (and whose job is retained) it stores nothing and
	// returns the first job with created=false.
	CreateJob(ctx context.Context, nj NewJob) (job tasks.Job, created bool, err error)
	// GetJob returns the job with its live counts (no result).
	GetJob(ctx context.Context, id string) (tasks.Job, error)
	// ListJobs returns jobs newest first.
	ListJobs(ctx context.Context, f JobFilter) ([]tasks.Job, error)
	// ListTasks returns the job's tasks in index order, only those in
	// state when state is not empty.
	ListTasks(ctx context.Context, jobID string, state tasks.TaskState) ([]tasks.Task, error)
	// TaskOutputs returns every task's accepted output in task order
	// (nil where a task has none yet), for the reducer.
	TaskOutputs(ctx context.Context, jobID string) ([]json.RawMessage, error)
	// FinishJob ends a job whose tasks all succeeded: with the reduced
	// result (state succeeded), or with errMsg when the reducer failed
	// (state failed). It is a no-op returning the job when the job is
	// already final.
	FinishJob(ctx context.Context, jobID string, result json.RawMessage, errMsg string) (tasks.Job, error)
	// JobResult returns the stored result of a succeeded job, or an error
	// wrapping tasks.ErrConflict that names the state otherwise.
	JobResult(ctx context.Context, jobID string) (json.RawMessage, error)
	// CancelJob moves a job that is not final to cancelled; its leases
	// become void (later results are stale). Cancelling a final job
	// returns ErrConflict.
	CancelJob(ctx context.Context, jobID string) (tasks.Job, error)
	// CountJobs returns how many retained jobs are in each state.
	CountJobs(ctx context.Context) (map[tasks.JobState]int, error)
	// UnfinishedJobs lists running jobs whose tasks all succeeded but
	// whose result is not stored (a coordinator died before reducing).
	UnfinishedJobs(ctx context.Context) ([]string, error)
	// DeleteFinishedBefore removes jobs that ended before t, with their
	// tasks and idempotency keys. It returns how many it removed.
	DeleteFinishedBefore(ctx context.Context, t time.Time) (int, error)
}

// Lease is one task handed to one tab. Token is the fencing token: it
// grows by one with every claim of the task, and a result counts only
// with the token of the current lease.
type Lease struct {
	Worker      string
	JobID       string
	Index       int
	Token       int
	Kind        string
	Input       json.RawMessage
	TaskTimeout time.Duration
}

// ClaimRequest asks for up to Max tasks for one tab.
type ClaimRequest struct {
	Worker string
	Max    int
}

// Result is what a tab reported for one leased task: Output on success,
// Error (non-empty) when the task threw or timed out.
type Result struct {
	Worker string
	JobID  string
	Index  int
	Token  int
	Output json.RawMessage
	Error  string
}

// Outcome says what became of one Result.
type Outcome int

const (
	Accepted  Outcome = iota // the first valid result: counted
	Stale                    // the lease is not that tab's or has another token: dropped
	Duplicate                // the task already succeeded: dropped
	Retried                  // an error, counted as an attempt; the task is pending again
	Failed                   // an error on the last attempt: the task and its job failed
)

func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Stale:
		return "stale"
	case Duplicate:
		return "duplicate"
	case Retried:
		return "retried"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// Completion is the answer to Complete: one outcome per result, in order,
// and the jobs whose every task has now succeeded (ready to reduce).
type Completion struct {
	Outcomes []Outcome
	Done     []string
}

// Dispatch hands tasks to tabs and takes their results. Every call is
// batched: one call serves many tabs, tasks and jobs.
type Dispatch interface {
	// Claim leases pending tasks: jobs by priority (higher first), then
	// fairly across jobs of equal priority. Each lease belongs to the
	// request's worker, which must be registered. It returns fewer
	// leases than asked when less work is ready.
	Claim(ctx context.Context, reqs []ClaimRequest) ([]Lease, error)
	// Complete applies results. A result counts only if the task is
	// leased to that worker with that token; the first valid result of a
	// task wins and any later one is Duplicate or Stale. An error result
	// counts an attempt: the task is pending again, or after
	// max_attempts failed along with its job ("task N: message").
	Complete(ctx context.Context, results []Result) (Completion, error)
	// ReleaseWorker puts every task leased to the worker back to pending
	// (the tab dropped) without counting an attempt, and returns how many.
	ReleaseWorker(ctx context.Context, workerID string) (int, error)
}

// WorkerInfo describes one connected tab. The coordinator that holds its
// socket renews it.
type WorkerInfo struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Capacity    int       `json:"capacity"`
	InFlight    int       `json:"in_flight"`
	Completed   int64     `json:"completed"`
	Failed      int64     `json:"failed"`
	ConnectedAt time.Time `json:"connected_at"`
	LastSeen    time.Time `json:"last_seen"`
	Coordinator string    `json:"coordinator"`
	Rate        float64   `json:"tasks_per_second"` // accepted results per second, recent
}

// Workers is the registry of connected tabs across coordinators. A
// coordinator's registration is a lease: if it is not renewed within ttl,
// the coordinator is presumed dead and Reap releases its tabs' tasks.
type Workers interface {
	// RenewWorkers records that the coordinator is alive until now+ttl
	// and adds or updates its tabs in workers, in one call. A coordinator
	// registers a tab this way before claiming for it, so that Reap can
	// always find the tab's leases.
	RenewWorkers(ctx context.Context, coordinator string, workers []WorkerInfo, ttl time.Duration) error
	// RemoveWorker forgets one tab of a coordinator (after its release).
	RemoveWorker(ctx context.Context, coordinator, workerID string) error
	// ListWorkers returns the tabs of every live coordinator.
	ListWorkers(ctx context.Context) ([]WorkerInfo, error)
	// Reap finds coordinators whose lease expired before now, releases
	// every task leased to their tabs and forgets them. It returns how
	// many tasks went back to pending. Safe to run from every
	// coordinator at once.
	Reap(ctx context.Context, now time.Time) (int, error)
}

// Event is a message to every coordinator sharing the store: wake-ups for
// dispatchers and cancellations for hubs, and updates for dashboards.
type Event struct {
	Type string          `json:"type"` // e.g. "work", "cancel", "job", "worker"
	Data json.RawMessage `json:"data,omitempty"`
}

// Events is a broadcast among coordinators. Delivery is best effort: a
// subscriber that falls behind may miss events, so nothing depends on an
// event for correctness, only for speed.
type Events interface {
	Publish(ctx context.Context, ev Event) error
	// Subscribe delivers events until ctx ends; the channel is then closed.
	Subscribe(ctx context.Context) (<-chan Event, error)
}
