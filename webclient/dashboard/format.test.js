import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseTime, formatDuration, jobAge, jobDuration, secondsSince,
  formatCount, formatRate, formatPercent, clamp01, countsText,
} from './format.js';

test('parseTime', () => {
  for (const [in_, want] of [
    [null, null],
    [undefined, null],
    ['', null],
    ['0001-01-01T00:00:00Z', null],
    ['not a time', null],
    ['2026-12-03T21:00:00Z', Date.UTC(2026, 11, 3, 21)],
    ['2026-12-03T21:00:00.5+01:00', Date.UTC(2026, 11, 3, 20, 0, 0, 500)],
  ]) {
    assert.equal(parseTime(in_), want, `parseTime(${in_})`);
  }
});

test('formatDuration', () => {
  for (const [ms, want] of [
    [0, '0.0s'],
    [-5, '0.0s'],
    [420, '0.4s'],
    [9_999, '9.9s'],
    [10_000, '10s'],
    [59_999, '59s'],
    [60_000, '1m 00s'],
    [185_000, '3m 05s'],
    [3_600_000, '1h 00m'],
    [7_380_000, '2h 03m'],
    [86_400_000 * 4 + 3_600_000 * 2, '4d 02h'],
    [null, ''],
    [NaN, ''],
  ]) {
    assert.equal(formatDuration(ms), want, `formatDuration(${ms})`);
  }
});

test('job age and duration', () => {
  const now = Date.UTC(2026, 11, 3, 21, 0, 30);
  const queued = { created_at: '2026-12-03T21:00:00Z', started_at: null, finished_at: null };
  assert.equal(jobAge(queued, now), 30_000);
  assert.equal(jobDuration(queued, now), null);
  const running = { ...queued, started_at: '2026-12-03T21:00:10Z' };
  assert.equal(jobDuration(running, now), 20_000);
  const done = { ...running, finished_at: '2026-12-03T21:00:15Z' };
  assert.equal(jobDuration(done, now), 5_000);
  assert.equal(jobAge({}, now), null);
});

test('secondsSince', () => {
  const now = Date.UTC(2026, 11, 3, 21, 0, 30);
  assert.equal(secondsSince('2026-12-03T21:00:27.9Z', now), '2');
  assert.equal(secondsSince('2026-12-03T21:00:40Z', now), '0'); // clock skew: never negative
  assert.equal(secondsSince(null, now), '');
});

test('formatCount', () => {
  for (const [n, want] of [[0, '0'], [999, '999'], [1000, '1,000'], [1234567, '1,234,567'], [-4200, '-4,200'], [NaN, '0'], [12.7, '12']]) {
    assert.equal(formatCount(n), want, `formatCount(${n})`);
  }
});

test('formatRate', () => {
  for (const [r, want] of [[0, '0'], [-1, '0'], [0.04, '0'], [0.05, '0.1'], [12.34, '12.3'], [99.99, '100'], [1234.4, '1,234'], [12_345, '12.3k'], [12_345_678, '12.3M'], [undefined, '0']]) {
    assert.equal(formatRate(r), want, `formatRate(${r})`);
  }
});

test('formatPercent never shows 100% before the end', () => {
  for (const [p, want] of [[0, '0%'], [0.421, '42%'], [0.999, '99%'], [0.99999, '99%'], [1, '100%'], [1.2, '100%'], [NaN, '0%']]) {
    assert.equal(formatPercent(p), want, `formatPercent(${p})`);
  }
});

test('clamp01', () => {
  assert.equal(clamp01(-1), 0);
  assert.equal(clamp01(0.5), 0.5);
  assert.equal(clamp01(3), 1);
  assert.equal(clamp01(NaN), 0);
});

test('countsText', () => {
  assert.equal(countsText({ total: 40, pending: 25, running: 3, succeeded: 12, failed: 0 }), '12/40 done · 3 running · 25 pending');
  assert.equal(countsText({ total: 1000, succeeded: 1000 }), '1,000/1,000 done');
  assert.equal(countsText({ total: 4, succeeded: 3, failed: 1 }), '3/4 done · 1 failed');
  assert.equal(countsText(undefined), '0/0 done');
});
