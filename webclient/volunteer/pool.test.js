import { test } from "node:test";
import assert from "node:assert/strict";
import { Pool, taintOf } from "./pool.js";

// FakeWorker records what it is sent; the test answers for it.
class FakeWorker {
  static all = [];
  constructor() {
    this.sent = [];
    this.terminated = false;
    FakeWorker.all.push(this);
  }
  postMessage(m) {
    this.sent.push(m);
  }
  terminate() {
    this.terminated = true;
  }
  reply(data) {
    this.onmessage({ data });
  }
  last() {
    return this.sent[this.sent.length - 1];
  }
}

// fakeTimers runs timeouts only when the test says so.
function fakeTimers() {
  const timers = new Map();
  let next = 1;
  return {
    setTimer: (fn, ms) => (timers.set(next, { fn, ms }), next++),
    clearTimer: (id) => timers.delete(id),
    fire: () => {
      const all = [...timers.values()];
      timers.clear();
      for (const t of all) t.fn();
    },
    count: () => timers.size,
  };
}

function setup(size) {
  FakeWorker.all = [];
  const results = [];
  const timers = fakeTimers();
  const pool = new Pool({ size, createWorker: () => new FakeWorker(), onResult: (r) => results.push(r), ...timers });
  return { pool, results, timers };
}

const task = (index, extra = {}) => ({ job: "j", index, token: 1, kind: "primes", input: { from: 0, to: 10 }, timeout_ms: 1000, ...extra });
const live = () => FakeWorker.all.filter((w) => !w.terminated);

test("runs at most size tasks at once, the rest wait in order", () => {
  const { pool, results } = setup(2);
  pool.push([task(0), task(1), task(2), task(3)]);
  assert.equal(pool.running, 2);
  assert.equal(pool.queued, 2);
  assert.equal(live().length, 2);
  const [a, b] = live();
  assert.equal(a.last().input.from, 0);
  a.reply({ id: a.last().id, json: '{"count":4}' });
  assert.deepEqual(results.map((r) => [r.task.index, r.json]), [[0, '{"count":4}']]);
  assert.equal(pool.running, 2); // task 2 started on a
  assert.equal(a.sent.length, 2);
  b.reply({ id: b.last().id, error: "RangeError: nope" });
  assert.equal(results[1].error, "RangeError: nope");
  assert.equal(results[1].task.index, 1);
  assert.equal(live().length, 2); // workers are reused
});

test("a reply with a stale id is ignored", () => {
  const { pool, results } = setup(1);
  pool.push([task(0)]);
  const [w] = live();
  w.reply({ id: 999, json: "1" });
  assert.equal(results.length, 0);
  assert.equal(pool.running, 1);
});

test("timeout terminates the worker, reports an error and starts a fresh worker", () => {
  const { pool, results, timers } = setup(1);
  pool.push([task(0), task(1)]);
  const [w] = live();
  timers.fire();
  assert.equal(w.terminated, true);
  assert.match(results[0].error, /1000 ms timeout/);
  assert.equal(results[0].task.index, 0);
  const [fresh] = live();
  assert.notEqual(fresh, w);
  assert.equal(fresh.last().input.from, 0);
  assert.equal(pool.running, 1);
  // The old worker's late answer is not reported.
  w.reply({ id: w.last().id, json: "1" });
  assert.equal(results.length, 1);
});

test("cancel drops queued tasks and restarts the worker of a running one, reporting nothing", () => {
  const { pool, results, timers } = setup(1);
  pool.push([task(0), task(1), task(2)]);
  const [w] = live();
  pool.cancel([{ job: "j", index: 2, token: 1 }]);
  assert.equal(pool.queued, 1);
  pool.cancel([{ job: "j", index: 0, token: 5 }]); // an older/newer lease: not ours
  assert.equal(w.terminated, false);
  pool.cancel([{ job: "j", index: 0, token: 1 }]);
  assert.equal(w.terminated, true);
  assert.equal(results.length, 0);
  assert.equal(pool.running, 1); // task 1 started on the fresh worker
  assert.equal(timers.count(), 1); // the cancelled task's timer is gone
  assert.deepEqual(pool.tasks().map((t) => t.index), [1]);
});

test("setSize grows, shrinks when tasks end, and 0 pauses", () => {
  const { pool } = setup(1);
  pool.push([task(0), task(1), task(2), task(3)]);
  pool.setSize(3);
  assert.equal(pool.running, 3);
  pool.setSize(1);
  assert.equal(pool.workers, 3); // busy workers finish first
  for (const w of live()) w.reply({ id: w.last().id, json: "{}" });
  assert.equal(pool.running, 1);
  assert.equal(pool.workers, 1);
  pool.setSize(0);
  const [w] = live();
  w.reply({ id: w.last().id, json: "{}" });
  assert.equal(pool.running, 0);
  assert.equal(pool.workers, 0);
  assert.equal(pool.queued, 0);
});

test("paused pool keeps its queue until resumed", () => {
  const { pool } = setup(0);
  pool.push([task(0)]);
  assert.equal(pool.running, 0);
  assert.equal(pool.queued, 1);
  pool.setSize(2);
  assert.equal(pool.running, 1);
});

test("clear drops everything without reporting", () => {
  const { pool, results } = setup(2);
  pool.push([task(0), task(1), task(2)]);
  const before = live();
  pool.clear();
  assert.equal(results.length, 0);
  assert.equal(pool.running, 0);
  assert.equal(pool.queued, 0);
  assert.ok(before.every((w) => w.terminated));
});

test("a worker that ran js code only serves its own job", () => {
  const { pool, results } = setup(1);
  const js = (job, index) => task(index, { job, kind: "js", input: { code: "(x) => x", items: [1] } });
  assert.equal(taintOf(js("a", 0)), "js:a");
  assert.equal(taintOf(task(0)), null);
  pool.push([js("a", 0), js("a", 1), js("b", 0), task(0)]);
  const [w] = live();
  w.reply({ id: w.last().id, json: '{"outputs":[1]}' });
  assert.equal(live()[0], w); // same job: same worker
  w.reply({ id: w.last().id, json: '{"outputs":[1]}' });
  assert.equal(w.terminated, true); // job b gets a clean worker
  const [w2] = live();
  assert.equal(w2.last().input.code, "(x) => x");
  w2.reply({ id: w2.last().id, json: '{"outputs":[1]}' });
  assert.equal(w2.terminated, true); // and so does the primes task
  assert.equal(live()[0].last().kind, "primes");
  assert.equal(results.length, 3);
});

test("a worker error fails its task and replaces the worker", () => {
  const { pool, results } = setup(1);
  pool.push([task(0), task(1)]);
  const [w] = live();
  w.onerror({ message: "SyntaxError: bad module", preventDefault() {} });
  assert.equal(results[0].error, "worker error: SyntaxError: bad module");
  assert.equal(w.terminated, true);
  assert.equal(pool.running, 1);
});

test("close terminates every worker and is safe twice", () => {
  const { pool } = setup(2);
  pool.push([task(0), task(1)]);
  pool.close();
  pool.close();
  assert.equal(live().length, 0);
  pool.push([task(2)]);
  assert.equal(pool.running, 0);
});
