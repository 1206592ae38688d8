import { test } from "node:test";
import assert from "node:assert/strict";

import { countPrimes, isqrt, primesUpTo, run } from "./primes.js";

function isPrime(n) {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

test("known counts", () => {
  for (const [from, to, want] of [
    [0, 1, 0],
    [0, 2, 0],
    [0, 3, 1],
    [2, 3, 1],
    [0, 100, 25],
    [0, 1_000_000, 78498],
    [1_000_000, 2_000_000, 70435],
  ]) {
    assert.equal(countPrimes(from, to), want, `[${from}, ${to})`);
  }
});

test("agrees with trial division on small ranges", () => {
  for (const [from, to] of [
    [0, 3000],
    [2 ** 32 - 300, 2 ** 32 + 300],
    [1e12, 1e12 + 300],
  ]) {
    let want = 0;
    for (let n = from; n < to; n++) if (isPrime(n)) want++;
    assert.equal(countPrimes(from, to), want, `[${from}, ${to})`);
  }
});

test("primesUpTo and isqrt", () => {
  assert.deepEqual(Array.from(primesUpTo(30)), [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
  assert.equal(primesUpTo(200_000).length, 17984);
  assert.equal(isqrt(2 ** 53), 94906265);
  assert.equal(isqrt(99), 9);
  assert.equal(isqrt(100), 10);
});

test("run validates its input", () => {
  assert.deepEqual(run({ from: 0, to: 100 }), { count: 25 });
  for (const bad of [{}, { from: 0 }, { from: 5, to: 5 }, { from: -1, to: 5 }, { from: 0.5, to: 5 }, { from: 0, to: 2 ** 53 + 2 }, { from: "0", to: 5 }]) {
    assert.throws(() => run(bad), JSON.stringify(bad));
  }
});
