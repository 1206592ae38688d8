// The volunteer page: wires the connection, the pool of compute workers,
// the heartbeat worker and the UI. The page itself never computes; every
// task runs in a Web Worker.

import { Connection, State } from "./connection.js";
import { Pool } from "./pool.js";
import { Rate } from "./stats.js";
import { UI } from "./ui.js";
import { loadPrefs, parseParams, pauseReason, savePrefs, clampThreads } from "./settings.js";

const cores = Math.max(1, navigator.hardwareConcurrency || 1);
const params = parseParams(location.search, cores);
const ui = new UI(cores);

const s = {
  started: false,
  userPaused: false,
  hidden: document.hidden,
  onBattery: false,
  batterySupported: typeof navigator.getBattery === "function",
  threads: params.threads,
  prefs: loadPrefs(globalThis.localStorage),
  done: 0,
  failed: 0,
  rate: new Rate(10_000),
  job: null, // {id, kind} of the task started last
  jobNames: new Map(), // job id → name, fetched once
};

const wsURL = new URL("/ws", location.href);
wsURL.protocol = location.protocol === "https:" ? "wss:" : "ws:";

const pool = new Pool({
  size: 0,
  createWorker: () => new Worker(new URL("./compute-worker.js", import.meta.url), { type: "module", name: "tabgrid-compute" }),
  onResult: ({ task, json, error }) => {
    conn.result(task, task.generation, { json, error });
    if (error === undefined) s.done++;
    else s.failed++;
    s.rate.add(Date.now());
    scheduleRender();
  },
  onChange: () => scheduleRender(),
});

const conn = new Connection({
  url: wsURL.href,
  name: params.name,
  capacity: 0,
  WebSocket,
  onTasks: (tasks, generation) => {
    for (const t of tasks) t.generation = generation;
    const last = tasks[tasks.length - 1];
    if (last) noteJob(last);
    pool.push(tasks);
  },
  onCancel: (refs) => pool.cancel(refs),
  // A reconnected tab is a new worker: its old tasks went back to pending,
  // so computing them further is wasted.
  onDisconnect: () => pool.clear(),
  onState: (state) => {
    if (state === State.connected) heartbeat?.postMessage({ interval: conn.heartbeatInterval() });
    scheduleRender();
  },
});

let heartbeat = null;

function startHeartbeat() {
  if (heartbeat) return;
  heartbeat = new Worker(new URL("./heartbeat-worker.js", import.meta.url), { name: "tabgrid-heartbeat" });
  heartbeat.onmessage = () => conn.tick();
  heartbeat.postMessage({ interval: conn.heartbeatInterval() });
}

function stopHeartbeat() {
  heartbeat?.terminate();
  heartbeat = null;
}

function capacity() {
  if (!s.started) return 0;
  return pauseReason(s) ? 0 : s.threads;
}

// apply sends every change as a capacity message and resizes the pool.
function apply() {
  const n = capacity();
  pool.setSize(n);
  conn.setCapacity(n);
  scheduleRender();
}

function start() {
  if (s.started) return;
  s.started = true;
  s.userPaused = false;
  conn.capacity = capacity();
  pool.setSize(conn.capacity);
  startHeartbeat();
  conn.start();
  scheduleRender();
}

function stop() {
  if (!s.started) return;
  s.started = false;
  conn.stop();
  pool.clear();
  pool.setSize(0);
  stopHeartbeat();
  scheduleRender();
}

function noteJob(task) {
  s.job = { id: task.job, kind: task.kind };
  if (s.jobNames.has(task.job)) return;
  s.jobNames.set(task.job, "");
  if (s.jobNames.size > 200) s.jobNames.delete(s.jobNames.keys().next().value);
  fetch(`/api/v1/jobs/${encodeURIComponent(task.job)}`)
    .then((r) => (r.ok ? r.json() : null))
    .then((j) => {
      if (j?.name) {
        s.jobNames.set(task.job, j.name);
        scheduleRender();
      }
    })
    .catch(() => {}); // the name is a nicety; the id is shown meanwhile
}

function jobText() {
  const running = pool.tasks()[0];
  const j = running ? { id: running.job, kind: running.kind } : s.job;
  if (!j) return "—";
  const name = s.jobNames.get(j.id) || j.id;
  return `${name} (${j.kind})`;
}

let renderTimer = null;

// scheduleRender coalesces bursts of task events into one DOM update.
function scheduleRender() {
  if (renderTimer === null) renderTimer = setTimeout(render, 100);
}

function render() {
  renderTimer = null;
  const reason = pauseReason(s);
  ui.render({
    state: s.started ? conn.state : State.stopped,
    detail: conn.state === State.connected ? "" : conn.detail,
    mode: !s.started ? "stopped" : reason || "computing",
    started: s.started,
    userPaused: s.userPaused,
    threads: capacity(),
    threadSetting: s.threads,
    busy: pool.running,
    queued: pool.queued,
    done: s.done,
    failed: s.failed,
    dropped: conn.dropped,
    rate: s.rate.perSecond(Date.now()),
    job: jobText(),
    workerID: conn.state === State.connected ? conn.welcome?.worker_id : "",
    prefs: s.prefs,
    batterySupported: s.batterySupported,
  });
}

ui.on({
  start,
  stop,
  pause: () => {
    s.userPaused = true;
    apply();
  },
  resume: () => {
    s.userPaused = false;
    apply();
  },
  threads: (n) => {
    s.threads = clampThreads(n, cores);
    apply();
  },
  prefs: (p) => {
    Object.assign(s.prefs, p);
    savePrefs(globalThis.localStorage, s.prefs);
    apply();
  },
});

document.addEventListener("visibilitychange", () => {
  s.hidden = document.hidden;
  apply();
});

if (s.batterySupported) {
  navigator.getBattery().then((b) => {
    const update = () => {
      s.onBattery = !b.charging;
      apply();
    };
    b.addEventListener("chargingchange", update);
    update();
  }, () => {
    s.batterySupported = false;
    scheduleRender();
  });
}

// The rate decays while nothing finishes; refresh it every second.
setInterval(scheduleRender, 1000);
addEventListener("pagehide", () => conn.stop());

render();
if (params.autostart) start();
