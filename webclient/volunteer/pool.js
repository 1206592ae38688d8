// The pool of compute threads: one Web Worker per thread, fed from a
// local queue. Pure logic: workers come from an injected factory and
// timers are injectable, so node --test drives it with fake workers.
//
// A task that runs past its timeout_ms, or is cancelled, is stopped the
// only way JavaScript allows: its worker is terminated and a fresh one
// takes the slot. A worker that ran submitted js code is tainted: it only
// runs more tasks of that same job, so one job's code can never touch
// another job's results.

import { taskKey } from "./protocol.js";

/** taintOf is the isolation class a task needs from its worker. */
export function taintOf(task) {
  return task.kind === "js" ? `js:${task.job}` : null;
}

export class Pool {
  /**
   * opts.size: threads (0 = paused).
   * opts.createWorker(): a Worker-like object (postMessage, terminate,
   *   onmessage, onerror).
   * opts.onResult({task, json} | {task, error}): a task ended.
   * opts.onChange(): counters changed (for the UI).
   */
  constructor({ size = 1, createWorker, onResult, onChange = () => {}, setTimer = (fn, ms) => setTimeout(fn, ms), clearTimer = (id) => clearTimeout(id) }) {
    // The defaults wrap the globals: called as this.setTimer, a bare
    // window.setTimeout throws "Illegal invocation" in browsers.
    this.size = size;
    this.createWorker = createWorker;
    this.onResult = onResult;
    this.onChange = onChange;
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    this.queue = []; // tasks waiting for a thread, oldest first
    this.slots = []; // {worker, task, id, timer, taint}
    this.nextID = 1;
    this.closed = false;
  }

  /** running is the number of tasks on a thread now. */
  get running() {
    return this.slots.filter((s) => s.task).length;
  }

  get queued() {
    return this.queue.length;
  }

  /** workers is the number of live Web Workers. */
  get workers() {
    return this.slots.length;
  }

  /** tasks lists the tasks the pool holds, running first. */
  tasks() {
    return [...this.slots.filter((s) => s.task).map((s) => s.task), ...this.queue];
  }

  /** setSize changes the thread count; running tasks beyond it finish first. */
  setSize(n) {
    this.size = Math.max(0, n | 0);
    this.#pump();
  }

  /** push queues tasks to run. */
  push(tasks) {
    if (this.closed) return;
    this.queue.push(...tasks);
    this.#pump();
  }

  /**
   * cancel stops tasks ({job, index, token}) without reporting them. A
   * ref whose token is not the one held is ignored: it names an older
   * lease of the task.
   */
  cancel(refs) {
    const wanted = new Map(refs.map((r) => [taskKey(r), r.token]));
    const matches = (t) => wanted.has(taskKey(t)) && (wanted.get(taskKey(t)) === undefined || wanted.get(taskKey(t)) === t.token);
    this.queue = this.queue.filter((t) => !matches(t));
    for (const slot of this.slots) {
      if (slot.task && matches(slot.task)) this.#restart(slot);
    }
    this.#pump();
  }

  /** cancelJob stops every task of a job. */
  cancelJob(job) {
    this.cancel(this.tasks().filter((t) => t.job === job));
  }

  /** clear drops every task, running or queued, and reports none. */
  clear() {
    this.queue = [];
    for (const slot of this.slots) {
      if (slot.task) this.#restart(slot);
    }
    this.#pump();
  }

  /** close terminates every worker; the pool is then unusable. Safe twice. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    for (const slot of this.slots) this.#stop(slot);
    this.slots = [];
    this.onChange();
  }

  #pump() {
    if (this.closed) return;
    // Retire idle workers beyond the thread count; busy ones go when
    // their task ends.
    for (let i = this.slots.length - 1; i >= 0 && this.slots.length > this.size; i--) {
      if (!this.slots[i].task) {
        this.#stop(this.slots[i]);
        this.slots.splice(i, 1);
      }
    }
    while (this.queue.length > 0 && this.running < this.size) {
      const task = this.queue.shift();
      this.#start(this.#slotFor(task), task);
    }
    this.onChange();
  }

  // slotFor picks an idle worker for task: one of the same taint, else a
  // new one if the pool may grow, else a clean idle one, else an idle one
  // replaced by a fresh worker.
  #slotFor(task) {
    const taint = taintOf(task);
    const idle = this.slots.filter((s) => !s.task);
    let slot = idle.find((s) => s.taint === taint);
    if (slot) return slot;
    if (this.slots.length < this.size) {
      slot = this.#newSlot();
      this.slots.push(slot);
      return slot;
    }
    slot = idle.find((s) => s.taint === null) ?? idle[0];
    if (slot.taint !== null) this.#replaceWorker(slot);
    return slot;
  }

  #newSlot() {
    const slot = { worker: null, task: null, id: 0, timer: null, taint: null };
    this.#replaceWorker(slot);
    return slot;
  }

  #replaceWorker(slot) {
    if (slot.worker) slot.worker.terminate();
    const w = this.createWorker();
    slot.worker = w;
    slot.taint = null;
    w.onmessage = (e) => this.#message(slot, w, e.data);
    w.onerror = (e) => {
      e?.preventDefault?.();
      this.#failure(slot, w, e?.message ? `worker error: ${e.message}` : "worker error");
    };
  }

  #start(slot, task) {
    const t = taintOf(task);
    if (t !== null) slot.taint = t;
    slot.task = task;
    slot.id = this.nextID++;
    if (task.timeout_ms > 0) {
      const id = slot.id;
      slot.timer = this.setTimer(() => {
        if (slot.task && slot.id === id) {
          const timedOut = slot.task;
          this.#restart(slot);
          this.onResult({ task: timedOut, error: `task ran past its ${timedOut.timeout_ms} ms timeout` });
          this.#pump();
        }
      }, task.timeout_ms);
    }
    slot.worker.postMessage({ id: slot.id, kind: task.kind, input: task.input });
  }

  #message(slot, worker, data) {
    if (slot.worker !== worker || !slot.task || !data || data.id !== slot.id) return;
    const task = this.#finish(slot);
    if (typeof data.error === "string") this.onResult({ task, error: data.error });
    else this.onResult({ task, json: data.json });
    this.#pump();
  }

  // failure handles a worker that died (script failed to load, or an
  // uncaught error): its task fails with the message and a fresh worker
  // takes the slot.
  #failure(slot, worker, message) {
    if (slot.worker !== worker) return;
    const task = slot.task;
    this.#restart(slot);
    if (task) this.onResult({ task, error: message });
    this.#pump();
  }

  #finish(slot) {
    const task = slot.task;
    if (slot.timer !== null) this.clearTimer(slot.timer);
    slot.timer = null;
    slot.task = null;
    return task;
  }

  // restart drops the slot's task and gives the slot a fresh worker, the
  // one way to stop code running in a worker.
  #restart(slot) {
    this.#finish(slot);
    this.#replaceWorker(slot);
  }

  #stop(slot) {
    this.#finish(slot);
    slot.worker.terminate();
  }
}
