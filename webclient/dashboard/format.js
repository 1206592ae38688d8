// Formatting of numbers, times and durations for the dashboard. Pure
// functions, no DOM: node --test covers them.

// parseTime turns an RFC 3339 time from the API into milliseconds since the
// epoch, or null when the time is absent. Go's zero time (year 1) counts as
// absent because some encoders write it instead of null.
export function parseTime(s) {
  if (s === null || s === undefined || s === '') return null;
  const t = Date.parse(s);
  if (Number.isNaN(t) || t <= 0) return null;
  return t;
}

// formatDuration renders a span in milliseconds the way an operator reads
// it at a glance: "0.4s", "12s", "3m 05s", "2h 03m", "4d 02h".
export function formatDuration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '';
  if (ms < 0) ms = 0;
  if (ms < 10_000) return `${(Math.floor(ms / 100) / 10).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad2(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${pad2(m % 60)}m`;
  return `${Math.floor(h / 24)}d ${pad2(h % 24)}h`;
}

function pad2(n) {
  return n < 10 ? `0${n}` : `${n}`;
}

// jobAge is how long ago the job was created.
export function jobAge(job, now) {
  const t = parseTime(job.created_at);
  return t === null ? null : now - t;
}

// jobDuration is how long the job has run: until it finished, or until now
// while it runs; null when it never started.
export function jobDuration(job, now) {
  const start = parseTime(job.started_at);
  if (start === null) return null;
  const end = parseTime(job.finished_at);
  return (end === null ? now : end) - start;
}

// secondsSince renders whole seconds since t (an RFC 3339 time), "" when absent.
export function secondsSince(s, now) {
  const t = parseTime(s);
  if (t === null) return '';
  return String(Math.max(0, Math.floor((now - t) / 1000)));
}

// formatCount renders an integer with thousands separators, independent of
// the browser's locale so that tests read the same text everywhere.
export function formatCount(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '0';
  const neg = n < 0;
  const digits = String(Math.trunc(Math.abs(n)));
  let out = '';
  for (let i = 0; i < digits.length; i++) {
    if (i > 0 && (digits.length - i) % 3 === 0) out += ',';
    out += digits[i];
  }
  return neg ? `-${out}` : out;
}

// formatRate renders tasks per second: one decimal below 100, whole numbers
// up to 10k, then "12.3k".
export function formatRate(r) {
  if (r === null || r === undefined || !Number.isFinite(r) || r <= 0) return '0';
  if (r < 100) return (Math.round(r * 10) / 10).toString();
  if (r < 10_000) return formatCount(Math.round(r));
  if (r < 10_000_000) return `${(Math.round(r / 100) / 10).toString()}k`;
  return `${(Math.round(r / 100_000) / 10).toString()}M`;
}

// formatPercent renders progress (0..1). It shows 100% only when the
// progress is exactly 1, so a nearly finished job never looks finished.
export function formatPercent(p) {
  if (p === null || p === undefined || !Number.isFinite(p) || p <= 0) return '0%';
  if (p >= 1) return '100%';
  return `${Math.min(99, Math.floor(p * 100))}%`;
}

// clamp01 keeps a ratio inside 0..1 for bar widths.
export function clamp01(x) {
  if (!Number.isFinite(x) || x <= 0) return 0;
  return x >= 1 ? 1 : x;
}

// countsText summarises a job's tasks by state, e.g.
// "12/40 done · 3 running · 25 pending · 1 failed"; parts that are zero are
// left out except the first.
export function countsText(tasks) {
  const t = tasks || {};
  const parts = [`${formatCount(t.succeeded || 0)}/${formatCount(t.total || 0)} done`];
  if (t.running) parts.push(`${formatCount(t.running)} running`);
  if (t.pending) parts.push(`${formatCount(t.pending)} pending`);
  if (t.failed) parts.push(`${formatCount(t.failed)} failed`);
  return parts.join(' · ');
}
