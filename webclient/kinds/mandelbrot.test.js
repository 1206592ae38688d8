import { test } from "node:test";
import assert from "node:assert/strict";

import { count, run } from "./mandelbrot.js";

test("known points", () => {
  assert.equal(count(0, 0, 1000), 1000);
  assert.equal(count(-2, 0, 1000), 1000);
  assert.equal(count(0.25, 0, 1000), 1000);
  assert.equal(count(-1, 0, 1000), 1000);
  assert.equal(count(0, 1, 1000), 1000);
  assert.equal(count(1, 0, 1000), 3);
  assert.equal(count(2, 2, 1000), 1);
  assert.equal(count(0.5, 0, 1000), 5);
});

test("a one-pixel view samples its centre", () => {
  const one = (cx, cy) => ({ x0: 0, y0: 0, w: 1, h: 1, width: 1, height: 1, x_min: cx - 1, x_max: cx + 1, y_min: cy - 1, y_max: cy + 1, max_iter: 50 });
  assert.deepEqual(run(one(0, 0)), [50]);
  assert.deepEqual(run(one(1, 0)), [3]);
});

test("tiles put together equal the whole image", () => {
  const view = { width: 12, height: 9, x_min: -2.5, x_max: 1, y_min: -1.2, y_max: 1.2, max_iter: 100 };
  const whole = run({ ...view, x0: 0, y0: 0, w: 12, h: 9 });
  assert.equal(whole.length, 108);
  const tile = run({ ...view, x0: 5, y0: 4, w: 3, h: 2 });
  assert.deepEqual(tile, [whole[4 * 12 + 5], whole[4 * 12 + 6], whole[4 * 12 + 7], whole[5 * 12 + 5], whole[5 * 12 + 6], whole[5 * 12 + 7]]);
});

test("run validates its input", () => {
  const ok = { x0: 0, y0: 0, w: 1, h: 1, width: 1, height: 1, x_min: -1, x_max: 1, y_min: -1, y_max: 1, max_iter: 5 };
  assert.deepEqual(run(ok), [5]);
  for (const bad of [{ w: 2 }, { x0: 1 }, { max_iter: 0 }, { width: 8193 }, { x_min: "a" }, { h: 0 }]) {
    assert.throws(() => run({ ...ok, ...bad }), JSON.stringify(bad));
  }
});
