import { test } from "node:test";
import assert from "node:assert/strict";

import { run } from "./sleep.js";

test("0 ms returns at once, without a Promise", () => {
  assert.deepEqual(run({ ms: 0 }), {});
});

test("waits at least ms", async () => {
  const start = Date.now();
  assert.deepEqual(await run({ ms: 20 }), {});
  // A lower bound only: a busy machine can make it longer, never shorter
  // (timers may fire up to a millisecond early by Date's rounding).
  assert.ok(Date.now() - start >= 19);
});

test("rejects a bad ms", () => {
  for (const bad of [{}, { ms: -1 }, { ms: 1.5 }, { ms: "1" }]) assert.throws(() => run(bad));
});
