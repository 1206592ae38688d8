// The dashboard's state store: it applies events from /api/v1/events as
// they arrive (cheap: a Map update) and remembers which jobs and tabs
// changed, so the view can render at most every 250 ms and touch only the
// rows that changed. Pure, no DOM: node --test covers it.

import { parseTime } from './format.js';

const JOB_FIELDS = ['name', 'kind', 'state', 'priority', 'created_at', 'started_at', 'finished_at', 'progress', 'error'];
const COUNT_FIELDS = ['total', 'pending', 'running', 'succeeded', 'failed'];
const WORKER_FIELDS = ['name', 'capacity', 'in_flight', 'completed', 'failed', 'connected_at', 'last_seen', 'coordinator', 'tasks_per_second'];

export function jobChanged(a, b) {
  for (const f of JOB_FIELDS) if ((a[f] ?? null) !== (b[f] ?? null)) return true;
  const ta = a.tasks || {};
  const tb = b.tasks || {};
  for (const f of COUNT_FIELDS) if ((ta[f] ?? 0) !== (tb[f] ?? 0)) return true;
  return false;
}

export function workerChanged(a, b) {
  for (const f of WORKER_FIELDS) if ((a[f] ?? null) !== (b[f] ?? null)) return true;
  return false;
}

// A job's place in the list: newest first, ties broken by id so the order
// is stable.
function newerFirst(a, b) {
  if (a.t !== b.t) return b.t - a.t;
  return a.job.id < b.job.id ? 1 : a.job.id > b.job.id ? -1 : 0;
}

// Tabs are listed in the order they connected, so rows do not jump around
// as their counters move.
function olderFirst(a, b) {
  if (a.t !== b.t) return a.t - b.t;
  return a.worker.id < b.worker.id ? -1 : a.worker.id > b.worker.id ? 1 : 0;
}

export class DashboardState {
  // maxJobs bounds the jobs kept in memory (the oldest go first);
  // dropLingerMs is how long a dropped tab stays on screen, fading;
  // goneMemoryMs is how long a dropped tab's id is ignored in periodic tab
  // lists, which may be computed before the drop and arrive after it.
  // snapshotLimit is the most jobs the server puts in a snapshot.
  constructor({ maxJobs = 1000, dropLingerMs = 4000, goneMemoryMs = 30000, snapshotLimit = 200 } = {}) {
    this.maxJobs = maxJobs;
    this.snapshotLimit = snapshotLimit;
    this.dropLingerMs = dropLingerMs;
    this.goneMemoryMs = goneMemoryMs;
    this.jobs = new Map(); // id → {job, t}
    this.workers = new Map(); // id → {worker, t, droppedAt}
    this.gone = new Map(); // worker id → when it dropped
    this.failedTasks = new Map(); // job id → [{index, state, attempts, worker, error}]
    this.stats = null;
    this.snapshots = 0;
    this.events = 0;
    this._jobOrder = [];
    this._jobOrderStale = false;
    this._workerOrder = [];
    this._workerOrderStale = false;
    this._resetChanges();
  }

  _resetChanges() {
    this.changed = { jobs: new Set(), workers: new Set(), stats: false, order: false };
  }

  // apply takes one event by its SSE name and parsed data. It returns
  // whether anything visible changed. Unknown events are ignored so the
  // server can add more.
  apply(type, data, now) {
    if (data === null || typeof data !== 'object') return false;
    this.events++;
    switch (type) {
      case 'snapshot':
        return this._snapshot(data, now);
      case 'job':
        return this._job(data);
      case 'workers':
        return this._workerList(data.workers, now);
      case 'worker':
        return this._workerEvent(data, now);
      case 'stats':
        this.stats = data;
        this.changed.stats = true;
        return true;
      default:
        return false;
    }
  }

  _snapshot(data, now) {
    this.snapshots++;
    const seen = new Set();
    for (const job of data.jobs || []) {
      if (job && job.id) {
        seen.add(job.id);
        this._job(job);
      }
    }
    // A full snapshot holds the newest jobs only: older ones we already
    // know stay, but a job newer than its oldest and missing from it is
    // gone. A snapshot below the limit holds every job there is.
    const full = seen.size >= this.snapshotLimit;
    let oldest = Infinity;
    for (const id of seen) oldest = Math.min(oldest, this.jobs.get(id).t);
    for (const [id, e] of this.jobs) {
      if (!seen.has(id) && (!full || e.t >= oldest)) {
        this.jobs.delete(id);
        this.failedTasks.delete(id);
        this._jobOrderStale = true;
        this.changed.order = true;
      }
    }
    if (data.workers) this._workerList(data.workers, now);
    if (data.stats) {
      this.stats = data.stats;
      this.changed.stats = true;
    }
    return true;
  }

  _job(job) {
    if (!job || !job.id) return false;
    const e = this.jobs.get(job.id);
    if (e) {
      if (!jobChanged(e.job, job)) return false;
      e.job = job;
      const t = parseTime(job.created_at) ?? 0;
      if (t !== e.t) {
        e.t = t;
        this._jobOrderStale = true;
        this.changed.order = true;
      }
    } else {
      this.jobs.set(job.id, { job, t: parseTime(job.created_at) ?? 0 });
      this._jobOrderStale = true;
      this.changed.order = true;
    }
    this.changed.jobs.add(job.id);
    return true;
  }

  _workerList(list, now) {
    if (!Array.isArray(list)) return false;
    let any = false;
    const listed = new Set();
    for (const w of list) {
      if (!w || !w.id) continue;
      if (this.gone.has(w.id)) continue;
      listed.add(w.id);
      if (this._upsertWorker(w)) any = true;
    }
    // A tab missing from a full list has dropped without us hearing it
    // (another coordinator's tab, or an event lost in a reconnect).
    for (const [id, e] of this.workers) {
      if (!listed.has(id) && e.droppedAt === null) {
        this._drop(id, now);
        any = true;
      }
    }
    return any;
  }

  _workerEvent(data, now) {
    const w = data.worker;
    if (!w || !w.id) return false;
    if (data.event === 'connected') {
      this.gone.delete(w.id);
      return this._upsertWorker(w);
    }
    if (data.event === 'disconnected') {
      const e = this.workers.get(w.id);
      if (e) e.worker = w;
      this.gone.set(w.id, now);
      if (e && e.droppedAt === null) {
        this._drop(w.id, now);
        return true;
      }
      if (e) this.changed.workers.add(w.id);
      return e !== undefined;
    }
    return false;
  }

  _upsertWorker(w) {
    const e = this.workers.get(w.id);
    if (e) {
      if (e.droppedAt === null && !workerChanged(e.worker, w)) return false;
      e.worker = w;
      if (e.droppedAt !== null) {
        e.droppedAt = null;
      }
    } else {
      this.workers.set(w.id, { worker: w, t: parseTime(w.connected_at) ?? 0, droppedAt: null });
      this._workerOrderStale = true;
      this.changed.order = true;
    }
    this.changed.workers.add(w.id);
    return true;
  }

  _drop(id, now) {
    const e = this.workers.get(id);
    if (!e) return;
    e.droppedAt = now;
    this.gone.set(id, now);
    this.changed.workers.add(id);
  }

  // prune removes tabs that finished fading and forgets old drops; call it
  // before each render. It returns whether anything was removed.
  prune(now) {
    let removed = false;
    for (const [id, e] of this.workers) {
      if (e.droppedAt !== null && now - e.droppedAt >= this.dropLingerMs) {
        this.workers.delete(id);
        this._workerOrderStale = true;
        this.changed.order = true;
        removed = true;
      }
    }
    for (const [id, t] of this.gone) {
      if (now - t >= this.goneMemoryMs) this.gone.delete(id);
    }
    return removed;
  }

  // setFailedTasks records the failed tasks fetched for a job.
  setFailedTasks(jobId, list) {
    if (!this.jobs.has(jobId)) return;
    this.failedTasks.set(jobId, Array.isArray(list) ? list : []);
    this.changed.jobs.add(jobId);
  }

  // takeChanges returns what changed since the last call and starts afresh.
  takeChanges() {
    const c = this.changed;
    this._resetChanges();
    return c;
  }

  // jobOrder is every job kept, newest first; jobs beyond maxJobs are
  // dropped here, finished ones first.
  jobOrder() {
    if (this._jobOrderStale) {
      const all = [...this.jobs.values()].sort(newerFirst);
      if (all.length > this.maxJobs) {
        const excess = all.length - this.maxJobs;
        let dropped = 0;
        // Evict the oldest final jobs first, then the oldest of any state.
        for (let i = all.length - 1; i >= 0 && dropped < excess; i--) {
          const s = all[i].job.state;
          if (s === 'succeeded' || s === 'failed' || s === 'cancelled') {
            this.jobs.delete(all[i].job.id);
            this.failedTasks.delete(all[i].job.id);
            all[i] = null;
            dropped++;
          }
        }
        for (let i = all.length - 1; i >= 0 && dropped < excess; i--) {
          if (all[i] !== null) {
            this.jobs.delete(all[i].job.id);
            this.failedTasks.delete(all[i].job.id);
            all[i] = null;
            dropped++;
          }
        }
      }
      this._jobOrder = all.filter((e) => e !== null).map((e) => e.job.id);
      this._jobOrderStale = false;
    }
    return this._jobOrder;
  }

  workerOrder() {
    if (this._workerOrderStale) {
      this._workerOrder = [...this.workers.values()].sort(olderFirst).map((e) => e.worker.id);
      this._workerOrderStale = false;
    }
    return this._workerOrder;
  }

  job(id) {
    const e = this.jobs.get(id);
    return e ? e.job : undefined;
  }

  worker(id) {
    return this.workers.get(id);
  }
}
