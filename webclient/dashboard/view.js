// DOM rendering of the dashboard: keyed rows updated in place. Each cell
// remembers the text it shows, so a render writes to the DOM only where a
// value changed; rows move only when the order changed.

import {
  formatDuration, jobAge, jobDuration, secondsSince, formatCount, formatRate,
  formatPercent, clamp01, countsText,
} from './format.js';

// setText writes text only when it differs from what the node shows.
function setText(el, text) {
  if (el._shown !== text) {
    el.textContent = text;
    el._shown = text;
  }
}

function setAttr(el, name, value) {
  const key = `_attr_${name}`;
  if (el[key] !== value) {
    el.setAttribute(name, value);
    el[key] = value;
  }
}

function setHidden(el, hidden) {
  if (el.hidden !== hidden) el.hidden = hidden;
}

function el(tag, className, parent) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (parent) parent.appendChild(e);
  return e;
}

// KeyedRows keeps one <tr> per id in a <tbody>, in the order given.
class KeyedRows {
  constructor(tbody, { create, update, tick }) {
    this.tbody = tbody;
    this.rows = new Map(); // id → row object {tr, ...cells}
    this.create = create;
    this.update = update;
    this.tick = tick;
    this.lastIds = [];
  }

  // render shows ids in order. changed holds the ids whose data changed;
  // rows not in it keep their cells, except time-based ones (tick).
  render(ids, changed, now) {
    const keep = new Set(ids);
    for (const [id, row] of this.rows) {
      if (!keep.has(id)) {
        row.tr.remove();
        this.rows.delete(id);
      }
    }
    const sameOrder = ids.length === this.lastIds.length && ids.every((id, i) => id === this.lastIds[i]);
    let cursor = this.tbody.firstChild;
    for (const id of ids) {
      let row = this.rows.get(id);
      const fresh = row === undefined;
      if (fresh) {
        row = this.create(id);
        this.rows.set(id, row);
      }
      if (fresh || changed.has(id)) this.update(row, id, now);
      this.tick(row, id, now);
      if (!sameOrder) {
        if (row.tr !== cursor) this.tbody.insertBefore(row.tr, cursor);
        else cursor = cursor.nextSibling;
      }
    }
    this.lastIds = ids.slice();
  }
}

export class JobsView {
  // onCancel(id) and onSelect(id) are called from the row's controls.
  constructor(root, state, { onCancel, onSelect, limit = 100 }) {
    this.state = state;
    this.limit = limit;
    this.more = root.querySelector('#jobs-more');
    this.count = root.querySelector('#jobs-count');
    this.rows = new KeyedRows(root.querySelector('#jobs tbody'), {
      create: (id) => this._create(id, onCancel, onSelect),
      update: (row, id) => this._update(row, id),
      tick: (row, id, now) => this._tick(row, id, now),
    });
  }

  render(changes, now) {
    const order = this.state.jobOrder();
    const ids = order.length > this.limit ? order.slice(0, this.limit) : order;
    this.rows.render(ids, changes.jobs, now);
    setText(this.count, formatCount(order.length));
    const hidden = order.length - ids.length;
    setHidden(this.more, hidden === 0);
    setText(this.more, `and ${formatCount(hidden)} more`);
  }

  _create(id, onCancel, onSelect) {
    const tr = el('tr');
    tr.dataset.jobId = id;
    const r = { tr };
    r.name = el('td', 'name', tr);
    r.nameLink = el('a', '', r.name);
    r.nameLink.href = `#job-${id}`;
    r.nameLink.addEventListener('click', (ev) => {
      ev.preventDefault();
      onSelect(id);
    });
    r.kind = el('td', 'kind', tr);
    r.state = el('td', 'state', tr);
    r.progress = el('td', 'progress', tr);
    const bar = el('div', 'bar', r.progress);
    r.segSucceeded = el('span', 'seg seg-succeeded', bar);
    r.segRunning = el('span', 'seg seg-running', bar);
    r.segFailed = el('span', 'seg seg-failed', bar);
    const line = el('div', 'progress-line', r.progress);
    r.pct = el('span', 'pct', line);
    r.counts = el('span', 'counts', line);
    r.age = el('td', 'age', tr);
    r.duration = el('td', 'duration', tr);
    r.actions = el('td', 'actions', tr);
    r.result = el('a', 'result', r.actions);
    r.result.textContent = 'result';
    r.result.href = `/api/v1/jobs/${encodeURIComponent(id)}/result`;
    r.result.target = '_blank';
    r.result.hidden = true;
    r.image = el('a', 'image', r.actions);
    r.image.textContent = 'image';
    r.image.href = `/api/v1/jobs/${encodeURIComponent(id)}/result.png`;
    r.image.target = '_blank';
    r.image.hidden = true;
    r.cancel = el('button', 'cancel', r.actions);
    r.cancel.type = 'button';
    r.cancel.textContent = 'Cancel';
    r.cancel.hidden = true;
    r.cancel.addEventListener('click', () => onCancel(id, r.cancel));
    r.error = el('div', 'error', r.actions);
    r.error.hidden = true;
    r.failedTasks = el('ul', 'failed-tasks', r.actions);
    r.failedTasks.hidden = true;
    return r;
  }

  _update(r, id) {
    const job = this.state.job(id);
    if (!job) return;
    const t = job.tasks || {};
    const total = t.total || 0;
    setText(r.nameLink, job.name || id);
    setAttr(r.nameLink, 'title', id);
    setText(r.kind, job.kind || '');
    setText(r.state, job.state || '');
    setAttr(r.tr, 'data-state', job.state || '');
    const progress = clamp01(job.progress ?? (total ? (t.succeeded || 0) / total : 0));
    setAttr(r.progress, 'data-progress', String(progress));
    setAttr(r.progress, 'data-succeeded', String(t.succeeded || 0));
    setAttr(r.progress, 'data-total', String(total));
    setText(r.pct, formatPercent(progress));
    setText(r.counts, countsText(t));
    setWidth(r.segSucceeded, total ? (t.succeeded || 0) / total : 0);
    setWidth(r.segRunning, total ? (t.running || 0) / total : 0);
    setWidth(r.segFailed, total ? (t.failed || 0) / total : 0);
    const active = job.state === 'queued' || job.state === 'running';
    setHidden(r.cancel, !active);
    setHidden(r.result, job.state !== 'succeeded');
    setHidden(r.image, !(job.kind === 'mandelbrot' && job.state === 'succeeded'));
    setHidden(r.error, !job.error);
    setText(r.error, job.error || '');
    this._failedTasks(r, id);
  }

  _failedTasks(r, id) {
    const list = this.state.failedTasks.get(id);
    setHidden(r.failedTasks, !list || list.length === 0);
    if (!list) return;
    const key = JSON.stringify(list);
    if (r.failedTasks._key === key) return;
    r.failedTasks._key = key;
    r.failedTasks.replaceChildren(...list.slice(0, 20).map((task) => {
      const li = el('li');
      li.dataset.index = String(task.index);
      const who = task.worker ? ` on ${task.worker}` : '';
      li.textContent = `task ${task.index} (${task.attempts} attempts${who}): ${task.error || 'failed'}`;
      return li;
    }));
    if (list.length > 20) {
      const li = el('li', 'more', r.failedTasks);
      li.textContent = `and ${formatCount(list.length - 20)} more`;
    }
  }

  _tick(r, id, now) {
    const job = this.state.job(id);
    if (!job) return;
    setText(r.age, formatDuration(jobAge(job, now)));
    setText(r.duration, formatDuration(jobDuration(job, now)));
  }
}

function setWidth(seg, ratio) {
  const w = `${(clamp01(ratio) * 100).toFixed(2)}%`;
  if (seg._w !== w) {
    seg.style.width = w;
    seg._w = w;
  }
}

export class TabsView {
  constructor(root, state, { limit = 100 } = {}) {
    this.state = state;
    this.limit = limit;
    this.more = root.querySelector('#tabs-more');
    this.count = root.querySelector('#tabs-count');
    this.rows = new KeyedRows(root.querySelector('#tabs tbody'), {
      create: (id) => this._create(id),
      update: (row, id) => this._update(row, id),
      tick: (row, id, now) => this._tick(row, id, now),
    });
  }

  render(changes, now) {
    const order = this.state.workerOrder();
    const ids = order.length > this.limit ? order.slice(0, this.limit) : order;
    this.rows.render(ids, changes.workers, now);
    let live = 0;
    for (const e of this.state.workers.values()) if (e.droppedAt === null) live++;
    setText(this.count, formatCount(live));
    const hidden = order.length - ids.length;
    setHidden(this.more, hidden === 0);
    setText(this.more, `and ${formatCount(hidden)} more`);
  }

  _create(id) {
    const tr = el('tr');
    tr.dataset.workerId = id;
    const r = { tr };
    for (const c of ['name', 'coordinator', 'capacity', 'in-flight', 'completed', 'failed', 'rate', 'last-seen']) {
      r[c] = el('td', c, tr);
    }
    return r;
  }

  _update(r, id) {
    const e = this.state.worker(id);
    if (!e) return;
    const w = e.worker;
    setText(r.name, w.name || id);
    setAttr(r.name, 'title', id);
    setText(r.coordinator, w.coordinator || '');
    setText(r.capacity, formatCount(w.capacity || 0));
    setText(r['in-flight'], formatCount(w.in_flight || 0));
    setText(r.completed, formatCount(w.completed || 0));
    setAttr(r.completed, 'data-value', String(w.completed || 0));
    setText(r.failed, formatCount(w.failed || 0));
    setText(r.rate, formatRate(w.tasks_per_second));
    const dropped = e.droppedAt !== null;
    if (r.tr.classList.contains('dropped') !== dropped) r.tr.classList.toggle('dropped', dropped);
  }

  _tick(r, id, now) {
    const e = this.state.worker(id);
    if (!e) return;
    setText(r['last-seen'], e.droppedAt === null ? secondsSince(e.worker.last_seen, now) : 'gone');
  }
}

// TotalsView shows the grid's totals from the latest stats event.
export class TotalsView {
  constructor(root) {
    this.cells = {};
    for (const name of ['tabs', 'capacity', 'in-flight', 'rate', 'queued', 'running', 'succeeded', 'failed', 'cancelled']) {
      this.cells[name] = root.querySelector(`#stat-${name}`);
    }
  }

  render(stats) {
    if (!stats) return;
    const jobs = stats.jobs || {};
    setText(this.cells.tabs, formatCount(stats.tabs || 0));
    setText(this.cells.capacity, formatCount(stats.capacity || 0));
    setText(this.cells['in-flight'], formatCount(stats.in_flight || 0));
    setText(this.cells.rate, formatRate(stats.tasks_per_second));
    for (const s of ['queued', 'running', 'succeeded', 'failed', 'cancelled']) {
      setText(this.cells[s], formatCount(jobs[s] || 0));
    }
  }
}
