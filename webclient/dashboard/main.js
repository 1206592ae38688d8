// The dashboard page: one EventSource on /api/v1/events feeds the state
// store as events arrive; a render runs at most every RENDER_MS and
// touches only what changed. The page stays responsive at 1,000 tabs and
// 1,000 jobs because a burst of events costs one render, not one each.

import { DashboardState } from './state.js';
import { Ring } from './ring.js';
import { ThroughputChart } from './chart.js';
import { JobsView, TabsView, TotalsView } from './view.js';
import { Preview } from './preview.js';
import { Api } from './api.js';

const RENDER_MS = 250;
const TICK_MS = 1000; // age, last seen and the chart move even without events
const EVENTS_URL = '/api/v1/events';

const state = new DashboardState({ maxJobs: 1000 });
const ring = new Ring(5 * 60 + 30); // a sample a second for five minutes
const chart = new ThroughputChart(document.querySelector('#throughput'), ring);
const connection = document.querySelector('#connection');
const notice = document.querySelector('#notice');
const tokenForm = document.querySelector('#token-form');

const api = new Api({ fetch: (...a) => window.fetch(...a), storage: window.sessionStorage, askToken });
const preview = new Preview(document, state);
const jobsView = new JobsView(document, state, { onCancel: cancelJob, onSelect: (id) => { preview.select(id); schedule(); } });
const tabsView = new TabsView(document, state);
const totalsView = new TotalsView(document);

// Render bookkeeping, read by tests and by anyone curious in the console.
const metrics = { renders: 0, lastRenderMs: 0, maxRenderMs: 0, events: 0 };
window.tabgridDashboard = { state, metrics };

let timer = null;
let lastRender = -Infinity;
let chartDirty = true;

function schedule() {
  if (timer !== null) return;
  const wait = Math.max(0, lastRender + RENDER_MS - performance.now());
  timer = setTimeout(render, wait);
}

function render() {
  timer = null;
  const start = performance.now();
  lastRender = start;
  const now = Date.now();
  state.prune(now);
  const changes = state.takeChanges();
  jobsView.render(changes, now);
  tabsView.render(changes, now);
  if (changes.stats) totalsView.render(state.stats);
  if (chartDirty) {
    chart.draw(now);
    chartDirty = false;
  }
  preview.update(now);
  fetchFailedTasks(changes.jobs);
  const took = performance.now() - start;
  metrics.renders++;
  metrics.lastRenderMs = took;
  metrics.maxRenderMs = Math.max(metrics.maxRenderMs, took);
}

// A failed job shows its failed tasks; they are fetched once per job.
const fetchedFailed = new Set();
function fetchFailedTasks(changed) {
  for (const id of changed) {
    const job = state.job(id);
    if (!job || job.state !== 'failed' || fetchedFailed.has(id)) continue;
    fetchedFailed.add(id);
    api.failedTasks(id).then(
      (tasks) => { state.setFailedTasks(id, tasks); schedule(); },
      (err) => { fetchedFailed.delete(id); showNotice(err.message); },
    );
  }
}

async function cancelJob(id, button) {
  button.disabled = true;
  try {
    const r = await api.cancel(id);
    if (r.ok) {
      if (r.job && r.job.id) state.apply('job', r.job, Date.now());
      schedule();
    } else if (r.status !== 0) {
      showNotice(`cancel ${id}: ${r.message}`);
    }
  } catch (err) {
    showNotice(`cancel ${id}: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

function showNotice(text) {
  notice.textContent = text;
  notice.hidden = false;
}
document.querySelector('#notice').addEventListener('click', () => { notice.hidden = true; });

// askToken shows the small token form and resolves with what was entered,
// or null when dismissed.
let pendingAsk = null;
function askToken(message) {
  if (pendingAsk) return pendingAsk;
  pendingAsk = new Promise((resolve) => {
    const input = tokenForm.querySelector('#token-input');
    tokenForm.querySelector('.message').textContent = message;
    input.value = '';
    tokenForm.hidden = false;
    input.focus();
    const done = (value) => {
      tokenForm.hidden = true;
      tokenForm.removeEventListener('submit', onSubmit);
      tokenForm.querySelector('#token-dismiss').removeEventListener('click', onDismiss);
      pendingAsk = null;
      resolve(value);
    };
    const onSubmit = (ev) => { ev.preventDefault(); done(input.value.trim() || null); };
    const onDismiss = () => done(null);
    tokenForm.addEventListener('submit', onSubmit);
    tokenForm.querySelector('#token-dismiss').addEventListener('click', onDismiss);
  });
  return pendingAsk;
}

function setConnection(s, text) {
  if (connection.dataset.state === s) return;
  connection.dataset.state = s;
  connection.textContent = text;
}

// connect opens the stream. EventSource reconnects by itself after a
// network error; when the server answers with an error status it gives
// up (readyState CLOSED), so then we retry with backoff and jitter.
let source = null;
let retryMs = 1000;
function connect() {
  setConnection(source === null ? 'connecting' : 'reconnecting', source === null ? 'connecting' : 'reconnecting');
  source = new EventSource(EVENTS_URL);
  const on = (type) => (ev) => {
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch {
      return;
    }
    metrics.events++;
    const now = Date.now();
    state.apply(type, data, now);
    if (type === 'snapshot') {
      retryMs = 1000;
      setConnection('live', 'live');
    }
    if (type === 'stats') {
      ring.push(now, Number(data.tasks_per_second) || 0);
      chartDirty = true;
    }
    schedule();
  };
  for (const type of ['snapshot', 'job', 'workers', 'worker', 'stats']) {
    source.addEventListener(type, on(type));
  }
  source.addEventListener('error', () => {
    setConnection('reconnecting', 'reconnecting');
    if (source.readyState === EventSource.CLOSED) {
      source.close();
      const wait = retryMs * (0.5 + Math.random());
      retryMs = Math.min(retryMs * 2, 30000);
      setTimeout(connect, wait);
    }
  });
}

setInterval(() => {
  chartDirty = true;
  schedule();
}, TICK_MS);
connect();
