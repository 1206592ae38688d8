package redisstore

import "github.com/tabgrid/tabgrid/tasks"

// Every Redis key the store uses is built here, so the layout can be read in
// one place (docs/architecture.md describes it).
//
// Keys of one job share the hash tag {<job id>}, so a script that touches
// only one job's keys runs on Redis Cluster. Keys that span jobs share the
// hash tag {<prefix>}: they live on one slot, never mixed with a job's keys
// in one script.

type keys struct {
	prefix string
	global string // "{tg}" — the hash tag of cross-job keys
}

func newKeys(prefix string) keys {
	return keys{prefix: prefix, global: "{" + prefix + "}"}
}

// jobKey builds a key of one job: tg:{id}:name.
func (k keys) jobKey(id, name string) string { return k.prefix + ":{" + id + "}:" + name }

func (k keys) job(id string) string     { return k.jobKey(id, "job") }     // HASH of job fields and counters
func (k keys) inputs(id string) string  { return k.jobKey(id, "in") }      // HASH idx → task input
func (k keys) pending(id string) string { return k.jobKey(id, "pending") } // LIST of pending idx
func (k keys) lease(id string) string   { return k.jobKey(id, "lease") }   // HASH idx → "token|worker", "done" or "failed"
func (k keys) tokens(id string) string  { return k.jobKey(id, "tok") }     // HASH idx → claims so far
func (k keys) fails(id string) string   { return k.jobKey(id, "fail") }    // HASH idx → failures
func (k keys) errs(id string) string    { return k.jobKey(id, "err") }     // HASH idx → last error
func (k keys) outputs(id string) string { return k.jobKey(id, "out") }     // HASH idx → accepted output
func (k keys) result(id string) string  { return k.jobKey(id, "result") }  // STRING reduced result
func (k keys) workers(id string) string { return k.jobKey(id, "ws") }      // SET of worker ids that have a :w: set

// workerLeases is the SET of idx leased to one worker in one job, so that
// releasing a worker costs its own leases, not the job's.
func (k keys) workerLeases(id, worker string) string { return k.jobKey(id, "w:"+worker) }

// jobKeys lists every fixed key of a job (not the per-worker sets).
func (k keys) jobKeys(id string) []string {
	return []string{k.job(id), k.inputs(id), k.pending(id), k.lease(id), k.tokens(id),
		k.fails(id), k.errs(id), k.outputs(id), k.result(id), k.workers(id)}
}

func (k keys) globalKey(name string) string { return k.global + ":" + name }

func (k keys) ready() string    { return k.globalKey("ready") }    // ZSET job → priority: jobs with pending or running tasks
func (k keys) jobs() string     { return k.globalKey("jobs") }     // ZSET job → created ms
func (k keys) finished() string { return k.globalKey("finished") } // ZSET job → finished ms

// finishedIn is the ZSET job → created ms of the final jobs in one state,
// so counting and listing them reads no job hash.
func (k keys) finishedIn(state tasks.JobState) string {
	return k.globalKey("finished:" + string(state))
}

// finalStates are the states with a finishedIn index.
var finalStates = []tasks.JobState{tasks.JobSucceeded, tasks.JobFailed, tasks.JobCancelled}

func (k keys) coords() string { return k.globalKey("coords") } // ZSET coordinator → lease deadline ms
func (k keys) events() string { return k.globalKey("events") } // pub/sub channel

// idem maps an idempotency key to the job it created.
func (k keys) idem(key string) string { return k.globalKey("idem:" + key) }

// coordWorkers is the HASH worker id → WorkerInfo JSON of one coordinator.
func (k keys) coordWorkers(coord string) string { return k.globalKey("coord:" + coord + ":workers") }

// workerJobs is the SET of jobs a worker may hold leases in. It is added to
// before a claim (an intent record), so Reap can always find the leases.
func (k keys) workerJobs(worker string) string { return k.globalKey("worker:" + worker + ":jobs") }
