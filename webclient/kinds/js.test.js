import { test } from "node:test";
import assert from "node:assert/strict";

import { runJS } from "./js.js";
import * as index from "./index.js";

test("maps items in order with their job-wide index", async () => {
  const got = await runJS({ code: "unused", items: [1, 2, 3], offset: 10 }, (x, i) => [x * x, i]);
  assert.deepEqual(got, { outputs: [[1, 10], [4, 11], [9, 12]] });
});

test("awaits async functions one item at a time", async () => {
  const order = [];
  let running = 0;
  const got = await runJS({ items: ["a", "b", "c"], offset: 0 }, async (x) => {
    running++;
    assert.equal(running, 1);
    await new Promise((r) => setTimeout(r, 1));
    order.push(x);
    running--;
    return x.toUpperCase();
  });
  assert.deepEqual(got.outputs, ["A", "B", "C"]);
  assert.deepEqual(order, ["a", "b", "c"]);
});

test("undefined becomes null and errors propagate", async () => {
  assert.deepEqual(await runJS({ items: [1] }, () => undefined), { outputs: [null] });
  await assert.rejects(runJS({ items: [1, 2] }, (x) => {
    if (x === 2) throw new Error("boom");
    return x;
  }), /boom/);
  await assert.rejects(runJS({}, (x) => x), TypeError);
});

test("index exports the built-in kinds and runJS", () => {
  assert.deepEqual(Object.keys(index.kinds).sort(), ["mandelbrot", "pi", "primes", "sleep"]);
  for (const k of Object.values(index.kinds)) assert.equal(typeof k.run, "function");
  assert.equal(index.default, index.kinds);
  assert.equal(typeof index.runJS, "function");
});
