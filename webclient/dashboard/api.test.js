import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Api, errorMessage } from './api.js';

class MemStorage {
  constructor() { this.m = new Map(); }
  getItem(k) { return this.m.has(k) ? this.m.get(k) : null; }
  setItem(k, v) { this.m.set(k, String(v)); }
  removeItem(k) { this.m.delete(k); }
}

function response(status, body) {
  return { status, ok: status >= 200 && status < 300, json: async () => body };
}

// fakeServer accepts only the token "good".
function fakeServer(calls) {
  return async (url, init = {}) => {
    calls.push({ url, method: init.method || 'GET', auth: init.headers?.Authorization });
    if (init.method === 'DELETE') {
      if (init.headers?.Authorization !== 'Bearer good') return response(401, { error: { code: 'unauthorized', message: 'bad token' } });
      return response(200, { id: 'j1', state: 'cancelled' });
    }
    if (url.endsWith('/tasks?state=failed')) return response(200, { tasks: [{ index: 2, state: 'failed', attempts: 3, error: 'boom' }] });
    return response(404, { error: { code: 'not_found', message: 'no such job' } });
  };
}

test('cancel asks for a token once and keeps it', async () => {
  const calls = [];
  const asked = [];
  const storage = new MemStorage();
  const api = new Api({ fetch: fakeServer(calls), storage, askToken: async (m) => { asked.push(m); return 'good'; } });
  let r = await api.cancel('j1');
  assert.equal(r.ok, true);
  assert.equal(r.job.state, 'cancelled');
  r = await api.cancel('j1');
  assert.equal(r.ok, true);
  assert.equal(asked.length, 1);
  assert.deepEqual(calls.map((c) => c.auth), ['Bearer good', 'Bearer good']);
  assert.equal(calls[0].url, '/api/v1/jobs/j1');
});

test('cancel asks again after a 401', async () => {
  const calls = [];
  const answers = ['bad', 'good'];
  const asked = [];
  const storage = new MemStorage();
  storage.setItem('tabgrid.api_token', 'stale');
  const api = new Api({ fetch: fakeServer(calls), storage, askToken: async (m) => { asked.push(m); return answers.shift(); } });
  const r = await api.cancel('j1');
  assert.equal(r.ok, true);
  assert.deepEqual(calls.map((c) => c.auth), ['Bearer stale', 'Bearer bad', 'Bearer good']);
  assert.equal(asked.length, 2);
  assert.match(asked[0], /refused/);
  assert.equal(storage.getItem('tabgrid.api_token'), 'good');
});

test('cancel stops when the user gives up or keeps failing', async () => {
  const calls = [];
  let api = new Api({ fetch: fakeServer(calls), storage: new MemStorage(), askToken: async () => null });
  let r = await api.cancel('j1');
  assert.equal(r.ok, false);
  assert.equal(calls.length, 0);
  api = new Api({ fetch: fakeServer(calls), storage: new MemStorage(), askToken: async () => 'bad' });
  r = await api.cancel('j1');
  assert.equal(r.ok, false);
  assert.equal(r.status, 401);
  assert.equal(calls.length, 3);
});

test('cancel reports the server error', async () => {
  const api = new Api({
    fetch: async () => response(409, { error: { code: 'conflict', message: 'job is succeeded' } }),
    storage: new MemStorage(),
    askToken: async () => 'good',
  });
  const r = await api.cancel('j1');
  assert.deepEqual(r, { ok: false, status: 409, message: 'job is succeeded' });
});

test('failedTasks', async () => {
  const calls = [];
  const api = new Api({ fetch: fakeServer(calls), storage: new MemStorage(), askToken: async () => null });
  const tasks = await api.failedTasks('a b');
  assert.equal(calls[0].url, '/api/v1/jobs/a%20b/tasks?state=failed');
  assert.equal(tasks[0].error, 'boom');
});

test('errorMessage', () => {
  assert.equal(errorMessage({ error: { message: 'x' } }, 400), 'x');
  assert.equal(errorMessage({ error: 'y' }, 400), 'y');
  assert.equal(errorMessage(null, 503), 'HTTP 503');
});
