import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DashboardState } from './state.js';

function job(id, created, over = {}) {
  return {
    id, name: `job ${id}`, kind: 'sleep', state: 'running', priority: 0,
    created_at: new Date(created).toISOString(), started_at: null, finished_at: null,
    tasks: { total: 10, pending: 10, running: 0, succeeded: 0, failed: 0 }, progress: 0,
    ...over,
  };
}

function worker(id, connected, over = {}) {
  return {
    id, name: `tab ${id}`, capacity: 2, in_flight: 0, completed: 0, failed: 0,
    connected_at: new Date(connected).toISOString(), last_seen: new Date(connected).toISOString(),
    coordinator: 'c1', tasks_per_second: 0, ...over,
  };
}

test('snapshot fills jobs newest first and tabs oldest first', () => {
  const s = new DashboardState();
  s.apply('snapshot', {
    jobs: [job('b', 2000), job('c', 3000), job('a', 1000)],
    workers: [worker('w2', 20), worker('w1', 10)],
    stats: { tabs: 2 },
  }, 0);
  assert.deepEqual(s.jobOrder(), ['c', 'b', 'a']);
  assert.deepEqual(s.workerOrder(), ['w1', 'w2']);
  const c = s.takeChanges();
  assert.deepEqual([...c.jobs].sort(), ['a', 'b', 'c']);
  assert.deepEqual([...c.workers].sort(), ['w1', 'w2']);
  assert.equal(c.stats, true);
  assert.equal(c.order, true);
  assert.equal(s.snapshots, 1);
});

test('job events coalesce: only jobs whose fields changed are marked', () => {
  const s = new DashboardState();
  s.apply('snapshot', { jobs: [job('a', 1000), job('b', 2000)], workers: [] }, 0);
  s.takeChanges();
  // the same job again changes nothing
  assert.equal(s.apply('job', job('a', 1000), 0), false);
  assert.equal(s.takeChanges().jobs.size, 0);
  // many updates of one job between renders are one change, with the last data
  for (let i = 1; i <= 10; i++) {
    s.apply('job', job('a', 1000, { tasks: { total: 10, pending: 10 - i, running: 0, succeeded: i, failed: 0 }, progress: i / 10 }), 0);
  }
  const c = s.takeChanges();
  assert.deepEqual([...c.jobs], ['a']);
  assert.equal(c.order, false);
  assert.equal(s.job('a').progress, 1);
  // a new job changes the order
  s.apply('job', job('z', 5000), 0);
  assert.equal(s.takeChanges().order, true);
  assert.deepEqual(s.jobOrder(), ['z', 'b', 'a']);
});

test('jobs created at the same time keep a stable order', () => {
  const s = new DashboardState();
  s.apply('job', job('x', 1000), 0);
  s.apply('job', job('y', 1000), 0);
  s.apply('job', job('w', 1000), 0);
  assert.deepEqual(s.jobOrder(), ['y', 'x', 'w']);
});

test('a reconnect snapshot drops jobs that vanished but keeps older ones', () => {
  const s = new DashboardState({ snapshotLimit: 3 });
  s.apply('snapshot', { jobs: [job('d', 4000), job('c', 3000), job('b', 2000), job('a', 1000)], workers: [] }, 0);
  // a full snapshot holds the three newest: d is missing from it, so it is
  // gone; a and b are older than it shows, so they stay
  s.apply('snapshot', { jobs: [job('f', 6000), job('e', 5000), job('c', 3000)], workers: [] }, 0);
  assert.deepEqual(s.jobOrder(), ['f', 'e', 'c', 'b', 'a']);
  // a snapshot below the limit is every job there is
  s.apply('snapshot', { jobs: [job('f', 6000)], workers: [] }, 0);
  assert.deepEqual(s.jobOrder(), ['f']);
  s.apply('snapshot', { jobs: [], workers: [] }, 0);
  assert.deepEqual(s.jobOrder(), []);
});

test('jobs beyond maxJobs are evicted, finished ones first', () => {
  const s = new DashboardState({ maxJobs: 3 });
  s.apply('job', job('old-running', 1000), 0);
  s.apply('job', job('old-done', 2000, { state: 'succeeded' }), 0);
  s.apply('job', job('j3', 3000), 0);
  s.apply('job', job('j4', 4000), 0);
  assert.deepEqual(s.jobOrder(), ['j4', 'j3', 'old-running']);
  s.apply('job', job('j5', 5000), 0);
  assert.deepEqual(s.jobOrder(), ['j5', 'j4', 'j3']);
  assert.equal(s.jobs.size, 3);
});

test('a dropped tab lingers, then is removed; a late list does not bring it back', () => {
  const s = new DashboardState({ dropLingerMs: 4000, goneMemoryMs: 30000 });
  s.apply('snapshot', { jobs: [], workers: [worker('w1', 10), worker('w2', 20)] }, 0);
  s.takeChanges();
  s.apply('worker', { event: 'disconnected', worker: worker('w1', 10, { completed: 7 }) }, 1000);
  let c = s.takeChanges();
  assert.deepEqual([...c.workers], ['w1']);
  assert.equal(s.worker('w1').droppedAt, 1000);
  assert.equal(s.worker('w1').worker.completed, 7);
  // a list computed before the drop arrives after it
  s.apply('workers', { workers: [worker('w1', 10), worker('w2', 20)] }, 1500);
  assert.equal(s.worker('w1').droppedAt, 1000);
  assert.equal(s.prune(4999), false);
  assert.deepEqual(s.workerOrder(), ['w1', 'w2']);
  assert.equal(s.prune(5000), true);
  assert.deepEqual(s.workerOrder(), ['w2']);
  assert.equal(s.takeChanges().order, true);
  // still ignored in lists while remembered as gone
  s.apply('workers', { workers: [worker('w1', 10), worker('w2', 20)] }, 6000);
  assert.deepEqual(s.workerOrder(), ['w2']);
  // an explicit connect brings it back at once
  s.apply('worker', { event: 'connected', worker: worker('w1', 10) }, 7000);
  assert.deepEqual(s.workerOrder(), ['w1', 'w2']);
  assert.equal(s.worker('w1').droppedAt, null);
});

test('a tab missing from a periodic list is dropped', () => {
  const s = new DashboardState();
  s.apply('workers', { workers: [worker('w1', 10), worker('w2', 20)] }, 0);
  s.takeChanges();
  s.apply('workers', { workers: [worker('w2', 20, { completed: 3 })] }, 2000);
  const c = s.takeChanges();
  assert.deepEqual([...c.workers].sort(), ['w1', 'w2']);
  assert.equal(s.worker('w1').droppedAt, 2000);
  assert.equal(s.worker('w2').worker.completed, 3);
  // an unchanged list changes nothing
  s.apply('workers', { workers: [worker('w2', 20, { completed: 3 })] }, 4000);
  assert.equal(s.takeChanges().workers.size, 0);
});

test('gone ids are forgotten after goneMemoryMs', () => {
  const s = new DashboardState({ dropLingerMs: 10, goneMemoryMs: 100 });
  s.apply('workers', { workers: [worker('w1', 10)] }, 0);
  s.apply('workers', { workers: [] }, 0);
  s.prune(50);
  assert.equal(s.workers.size, 0);
  s.prune(100);
  s.apply('workers', { workers: [worker('w1', 10)] }, 150);
  assert.equal(s.workers.size, 1);
});

test('stats, failed tasks and bad input', () => {
  const s = new DashboardState();
  assert.equal(s.apply('stats', { tabs: 3, tasks_per_second: 12 }, 0), true);
  assert.equal(s.stats.tabs, 3);
  assert.equal(s.takeChanges().stats, true);
  assert.equal(s.apply('stats', null, 0), false);
  assert.equal(s.apply('future-event', { x: 1 }, 0), false);
  assert.equal(s.apply('job', { name: 'no id' }, 0), false);
  s.apply('job', job('f', 1000, { state: 'failed', error: 'task 3 failed' }), 0);
  s.takeChanges();
  s.setFailedTasks('f', [{ index: 3, state: 'failed', attempts: 3, error: 'boom' }]);
  assert.deepEqual([...s.takeChanges().jobs], ['f']);
  assert.equal(s.failedTasks.get('f')[0].error, 'boom');
  s.setFailedTasks('unknown', []);
  assert.equal(s.failedTasks.has('unknown'), false);
});

test('a thousand tabs and a thousand jobs: one render sees each change once', () => {
  const s = new DashboardState({ maxJobs: 1000 });
  const ws = [];
  for (let i = 0; i < 1000; i++) ws.push(worker(`w${i}`, i));
  const js = [];
  for (let i = 0; i < 1000; i++) js.push(job(`j${i}`, i * 1000));
  s.apply('snapshot', { jobs: js, workers: ws }, 0);
  s.takeChanges();
  assert.equal(s.jobOrder().length, 1000);
  assert.equal(s.workerOrder().length, 1000);
  // 250 ms of traffic: progress on 50 jobs, several times each, and a
  // periodic list where 10 tabs moved
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 50; i++) {
      s.apply('job', js[i] = { ...js[i], progress: (round + 1) / 10 }, 0);
    }
  }
  for (let i = 0; i < 10; i++) ws[i] = { ...ws[i], completed: 1 };
  s.apply('workers', { workers: ws }, 0);
  const c = s.takeChanges();
  assert.equal(c.jobs.size, 50);
  assert.equal(c.workers.size, 10);
  assert.equal(c.order, false);
});
