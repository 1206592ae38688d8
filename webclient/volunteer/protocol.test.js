import { test } from "node:test";
import assert from "node:assert/strict";
import * as p from "./protocol.js";
import { backoffDelay, BASE_MS, MAX_MS } from "./backoff.js";

test("hello carries version, capacity, client and a truncated name", () => {
  const m = JSON.parse(p.hello(2, "é".repeat(80)));
  assert.equal(m.type, "hello");
  assert.equal(m.version, 1);
  assert.equal(m.capacity, 2);
  assert.equal(m.client, "tabgrid-web/1");
  assert.equal(m.name, "é".repeat(50)); // 2 bytes each, 100 bytes
  assert.equal("name" in JSON.parse(p.hello(0, "")), false);
});

test("result and error parts are valid JSON with the task's token", () => {
  const task = { job: "j1", index: 3, token: 7 };
  assert.deepEqual(JSON.parse(p.resultPart(task, '{"count":5}')), { job: "j1", index: 3, token: 7, output: { count: 5 } });
  assert.deepEqual(JSON.parse(p.errorPart(task, "TypeError: boom")), { job: "j1", index: 3, token: 7, error: "TypeError: boom" });
});

test("packResults splits batches under the byte limit and keeps order", () => {
  const parts = [];
  for (let i = 0; i < 50; i++) {
    const task = { job: "j", index: i, token: 1 };
    parts.push({ task, json: p.resultPart(task, JSON.stringify({ v: "x".repeat(40) })) });
  }
  const max = 400;
  const frames = p.packResults(parts, max);
  assert.ok(frames.length > 1);
  const seen = [];
  for (const f of frames) {
    assert.ok(p.byteLength(f) <= max, `frame of ${p.byteLength(f)} bytes`);
    const m = JSON.parse(f);
    assert.equal(m.type, "results");
    seen.push(...m.results.map((r) => r.index));
  }
  assert.deepEqual(seen, [...Array(50).keys()]);
});

test("packResults turns an output over the limit into a task error", () => {
  const task = { job: "j", index: 0, token: 2 };
  const frames = p.packResults([{ task, json: p.resultPart(task, JSON.stringify("y".repeat(1000))) }], 300);
  assert.equal(frames.length, 1);
  const r = JSON.parse(frames[0]).results[0];
  assert.equal(r.token, 2);
  assert.match(r.error, /over the 300-byte message limit/);
});

test("parseServerMessage accepts the three server types and refuses the rest", () => {
  assert.equal(p.parseServerMessage('{"type":"welcome","worker_id":"w"}').worker_id, "w");
  assert.equal(p.parseServerMessage('{"type":"tasks","tasks":[]}').tasks.length, 0);
  assert.throws(() => p.parseServerMessage("{"), /malformed/);
  assert.throws(() => p.parseServerMessage("[]"), /malformed/);
  assert.throws(() => p.parseServerMessage('{"type":"tasks"}'), /malformed/);
  assert.throws(() => p.parseServerMessage('{"type":"hello"}'), /unexpected/);
});

test("backoff doubles from 0.5 s to 30 s with full jitter", () => {
  const top = () => 0.999999;
  assert.equal(backoffDelay(0, top), Math.floor(0.999999 * BASE_MS));
  assert.equal(backoffDelay(1, top), Math.floor(0.999999 * 2 * BASE_MS));
  assert.equal(backoffDelay(6, top), Math.floor(0.999999 * MAX_MS)); // 32 s capped
  assert.equal(backoffDelay(1000, top), Math.floor(0.999999 * MAX_MS));
  assert.equal(backoffDelay(5, () => 0), 0);
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(3);
    assert.ok(d >= 0 && d < 4000, `delay ${d}`);
  }
});
