import { test } from "node:test";
import assert from "node:assert/strict";

import { run, sample } from "./pi.js";
import { fmix32, taskRand } from "./prng.js";

test("fmix32 is MurmurHash3's finalizer", () => {
  assert.equal(fmix32(0), 0);
  assert.equal(fmix32(1), 0x514e28b7);
});

test("the inlined sampler follows taskRand", () => {
  const next = taskRand(7, 3);
  let inside = 0;
  for (let i = 0; i < 5000; i++) {
    const x = next() / 2 ** 32;
    const y = next() / 2 ** 32;
    if (x * x + y * y < 1) inside++;
  }
  assert.equal(sample(5000, 7, 3), inside);
});

test("the estimate is close to pi", () => {
  let inside = 0;
  const samples = 250_000;
  for (let i = 0; i < 4; i++) inside += run({ samples, seed: 7, index: i }).inside;
  const estimate = (4 * inside) / (4 * samples);
  assert.ok(Math.abs(estimate - Math.PI) < 0.01, `estimate ${estimate}`);
});

test("run validates its input", () => {
  assert.deepEqual(run({ samples: 0, seed: 0, index: 0 }), { samples: 0, inside: 0 });
  for (const bad of [{}, { samples: 1, seed: -1, index: 0 }, { samples: 1, seed: 2 ** 32, index: 0 }, { samples: 1.5, seed: 0, index: 0 }]) {
    assert.throws(() => run(bad), JSON.stringify(bad));
  }
});
