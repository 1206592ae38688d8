import { test } from "node:test";
import assert from "node:assert/strict";
import { Connection, State } from "./connection.js";

// FakeSocket stands in for the browser's WebSocket; the test plays the
// coordinator.
class FakeSocket {
  static all = [];
  constructor(url, protocols) {
    this.url = url;
    this.offered = protocols;
    this.protocol = "";
    this.sent = [];
    this.closed = null;
    FakeSocket.all.push(this);
  }
  send(s) {
    if (this.closed) throw new Error("send on a closed socket");
    this.sent.push(JSON.parse(s));
  }
  close(code, reason) {
    this.closed = { code, reason };
  }
  open(protocol = "tabgrid.v1") {
    this.protocol = protocol;
    this.onopen?.();
  }
  recv(obj) {
    this.onmessage?.({ data: typeof obj === "string" ? obj : JSON.stringify(obj) });
  }
  serverClose(code, reason = "") {
    this.closed = { code, reason };
    this.onclose?.({ code, reason });
  }
}

function setup(extra = {}) {
  FakeSocket.all = [];
  const timers = new Map();
  let nextTimer = 1;
  let now = 0;
  const ev = { tasks: [], cancels: [], states: [], disconnects: 0 };
  const conn = new Connection({
    url: "ws://127.0.0.1:1/ws",
    name: "t1",
    capacity: 2,
    WebSocket: FakeSocket,
    onTasks: (tasks, gen) => ev.tasks.push({ tasks, gen }),
    onCancel: (refs, reason) => ev.cancels.push({ refs, reason }),
    onDisconnect: () => ev.disconnects++,
    onState: (s) => ev.states.push(s),
    setTimer: (fn, ms) => (timers.set(nextTimer, { fn, ms }), nextTimer++),
    clearTimer: (id) => timers.delete(id),
    random: () => 0.5,
    now: () => now,
    ...extra,
  });
  const runTimers = () => {
    const all = [...timers.values()];
    timers.clear();
    for (const t of all) t.fn();
    return all.map((t) => t.ms);
  };
  return { conn, ev, runTimers, advance: (ms) => (now += ms), sock: () => FakeSocket.all[FakeSocket.all.length - 1] };
}

const welcome = { type: "welcome", version: 1, worker_id: "w1", heartbeat_ms: 4000, prefetch: 1, max_message_bytes: 1 << 20 };

test("hello first, then welcome makes it connected", () => {
  const { conn, ev, sock } = setup();
  conn.start();
  assert.equal(sock().offered, "tabgrid.v1");
  assert.equal(conn.state, State.connecting);
  sock().open();
  assert.deepEqual(sock().sent, [{ type: "hello", version: 1, capacity: 2, client: "tabgrid-web/1", name: "t1" }]);
  sock().recv(welcome);
  assert.equal(conn.state, State.connected);
  assert.deepEqual(ev.states, [State.connecting, State.connected]);
});

test("a server without the subprotocol is refused", () => {
  const { conn, sock } = setup();
  conn.start();
  sock().open("");
  assert.equal(sock().sent.length, 0);
  assert.equal(sock().closed.code, 1002);
});

test("tasks are handed on with their generation; results are batched", () => {
  const { conn, ev, sock, runTimers } = setup();
  conn.start();
  sock().open();
  sock().recv(welcome);
  const t = [{ job: "j", index: 0, token: 1, kind: "sleep", input: { ms: 0 }, timeout_ms: 100 },
    { job: "j", index: 1, token: 1, kind: "sleep", input: { ms: 0 }, timeout_ms: 100 }];
  sock().recv({ type: "tasks", tasks: t });
  assert.equal(ev.tasks.length, 1);
  const gen = ev.tasks[0].gen;
  conn.result(t[0], gen, { json: "{}" });
  conn.result(t[1], gen, { error: "Error: x" });
  assert.equal(sock().sent.length, 1); // only hello so far
  runTimers();
  assert.deepEqual(sock().sent[1], { type: "results", results: [
    { job: "j", index: 0, token: 1, output: {} },
    { job: "j", index: 1, token: 1, error: "Error: x" },
  ] });
});

test("results of an old connection are dropped and the tab reconnects with backoff", () => {
  const { conn, ev, sock, runTimers } = setup();
  conn.start();
  sock().open();
  sock().recv(welcome);
  sock().recv({ type: "tasks", tasks: [{ job: "j", index: 0, token: 1 }] });
  const oldGen = ev.tasks[0].gen;
  const first = sock();
  first.serverClose(1001, "going away");
  assert.equal(ev.disconnects, 1);
  assert.equal(conn.state, State.reconnecting);
  assert.match(conn.detail, /1001: going away/);
  assert.deepEqual(runTimers(), [250]); // 0.5 × min(30 s, 0.5 s × 2^0)
  assert.notEqual(sock(), first);
  sock().open();
  sock().recv(welcome);
  conn.result({ job: "j", index: 0, token: 1 }, oldGen, { json: "{}" });
  runTimers();
  assert.equal(sock().sent.filter((m) => m.type === "results").length, 0);
  assert.equal(conn.dropped, 1);
});

test("backoff grows while connects fail and resets after a welcome", () => {
  const { conn, sock, runTimers } = setup();
  conn.start();
  const delays = [];
  for (let i = 0; i < 8; i++) {
    sock().serverClose(1006);
    delays.push(...runTimers());
  }
  assert.deepEqual(delays, [250, 500, 1000, 2000, 4000, 8000, 15000, 15000]);
  sock().open();
  sock().recv(welcome);
  sock().serverClose(1006);
  assert.deepEqual(runTimers(), [250]);
});

test("pending results die with their connection", () => {
  const { conn, ev, sock, runTimers } = setup();
  conn.start();
  sock().open();
  sock().recv(welcome);
  sock().recv({ type: "tasks", tasks: [{ job: "j", index: 0, token: 1 }] });
  conn.result({ job: "j", index: 0, token: 1 }, ev.tasks[0].gen, { json: "{}" });
  const first = sock();
  first.serverClose(4002, "heartbeat timeout");
  runTimers(); // the flush timer was cleared; this runs the reconnect
  assert.equal(first.sent.filter((m) => m.type === "results").length, 0);
  assert.equal(conn.dropped, 1);
});

test("a cancel removes unsent results and is passed on", () => {
  const { conn, ev, sock, runTimers } = setup();
  conn.start();
  sock().open();
  sock().recv(welcome);
  sock().recv({ type: "tasks", tasks: [{ job: "j", index: 0, token: 1 }, { job: "j", index: 1, token: 1 }] });
  const gen = ev.tasks[0].gen;
  conn.result({ job: "j", index: 0, token: 1 }, gen, { json: "1" });
  conn.result({ job: "j", index: 1, token: 1 }, gen, { json: "2" });
  sock().recv({ type: "cancel", tasks: [{ job: "j", index: 1, token: 1 }], reason: "cancelled" });
  assert.deepEqual(ev.cancels, [{ refs: [{ job: "j", index: 1, token: 1 }], reason: "cancelled" }]);
  runTimers();
  assert.deepEqual(sock().sent[1].results.map((r) => r.index), [0]);
});

test("capacity changes are sent once hello is out; before that hello carries them", () => {
  const { conn, sock } = setup();
  conn.setCapacity(1);
  conn.start();
  conn.setCapacity(3);
  sock().open();
  assert.equal(sock().sent[0].capacity, 3);
  conn.setCapacity(0);
  conn.setCapacity(0);
  sock().recv(welcome);
  conn.setCapacity(2);
  assert.deepEqual(sock().sent.slice(1), [{ type: "capacity", capacity: 0 }, { type: "capacity", capacity: 2 }]);
});

test("heartbeats go out only when the tab has been quiet", () => {
  const { conn, sock, advance } = setup();
  conn.start();
  sock().open();
  sock().recv(welcome);
  assert.equal(conn.heartbeatInterval(), 2000);
  conn.tick(); // hello just went out
  assert.equal(sock().sent.length, 1);
  advance(2000);
  conn.tick();
  assert.deepEqual(sock().sent[1], { type: "heartbeat" });
  advance(1000);
  conn.tick();
  assert.equal(sock().sent.length, 2);
});

test("a malformed or unknown message closes the socket with a reason", () => {
  const { conn, sock } = setup();
  conn.start();
  sock().open();
  sock().recv("not json");
  assert.equal(sock().closed.code, 4000);
  assert.match(sock().closed.reason, /malformed/);
});

test("stop closes for good and can start again", () => {
  const { conn, ev, sock, runTimers } = setup();
  conn.start();
  sock().open();
  sock().recv(welcome);
  conn.stop();
  assert.deepEqual(sock().closed, { code: 1000, reason: "stopped by the volunteer" });
  assert.equal(conn.state, State.stopped);
  assert.equal(ev.disconnects, 1);
  assert.deepEqual(runTimers(), []);
  conn.start();
  assert.equal(FakeSocket.all.length, 2);
});
