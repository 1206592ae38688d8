import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ring, niceMax, chartPoints } from './ring.js';

test('ring keeps the newest samples in order', () => {
  const r = new Ring(3);
  assert.deepEqual(r.since(0), []);
  assert.ok(Number.isNaN(r.newestTime()));
  for (let i = 1; i <= 5; i++) r.push(i * 1000, i);
  assert.equal(r.length, 3);
  assert.deepEqual(r.since(0), [{ t: 3000, v: 3 }, { t: 4000, v: 4 }, { t: 5000, v: 5 }]);
  assert.deepEqual(r.since(4000), [{ t: 4000, v: 4 }, { t: 5000, v: 5 }]);
  assert.equal(r.newestTime(), 5000);
});

test('ring drops samples that go back in time and cleans bad values', () => {
  const r = new Ring(4);
  assert.ok(r.push(2000, 1));
  assert.equal(r.push(1000, 9), false);
  assert.equal(r.push(NaN, 9), false);
  assert.ok(r.push(2000, -3)); // same time is fine; negative rates become 0
  assert.ok(r.push(3000, NaN));
  assert.deepEqual(r.since(0), [{ t: 2000, v: 1 }, { t: 2000, v: 0 }, { t: 3000, v: 0 }]);
  r.clear();
  assert.equal(r.length, 0);
});

test('ring of five minutes at one sample a second wraps many times', () => {
  const r = new Ring(300);
  for (let i = 0; i < 10_000; i++) r.push(i * 1000, i % 7);
  const all = r.since(0);
  assert.equal(all.length, 300);
  assert.equal(all[0].t, 9700 * 1000);
  assert.equal(all[299].t, 9999 * 1000);
  for (let i = 1; i < all.length; i++) assert.ok(all[i].t > all[i - 1].t);
});

test('ring capacity must be positive', () => {
  assert.throws(() => new Ring(0), RangeError);
  assert.throws(() => new Ring(1.5), RangeError);
});

test('niceMax', () => {
  for (const [v, want] of [[0, 1], [0.3, 1], [1, 1], [1.1, 2], [3, 5], [7, 10], [10, 10], [11, 20], [450, 500], [501, 1000], [NaN, 1]]) {
    assert.equal(niceMax(v), want, `niceMax(${v})`);
  }
});

test('chartPoints maps the last span onto the box', () => {
  const now = 300_000;
  const samples = [{ t: -1000, v: 100 }, { t: 0, v: 0 }, { t: 150_000, v: 5 }, { t: 300_000, v: 10 }, { t: 301_000, v: 1 }];
  const { points, top } = chartPoints(samples, now, 300_000, 600, 100);
  // the scale comes from every sample given, even outside the window
  assert.equal(top, 100);
  assert.deepEqual(points, [{ x: 0, y: 100 }, { x: 300, y: 95 }, { x: 600, y: 90 }]);
});
