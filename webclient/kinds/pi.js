// pi: sample points of the unit square, exactly as tasks/pi.go does.
// Task input {samples, seed, index} → {samples, inside}. A sample takes two
// outputs a, b of the task's generator; x = a / 2^32, y = b / 2^32; it is
// inside when x*x + y*y < 1 (IEEE doubles, as in Go).

import { seedState } from "./prng.js";

const TWO32 = 4294967296;

function checkInt(name, v, max) {
  if (typeof v !== "number" || !Number.isInteger(v)) throw new TypeError(`pi: ${name} must be an integer`);
  if (v < 0 || v > max) throw new RangeError(`pi: ${name} must be between 0 and ${max}`);
}

/** sample counts the inside points among samples points of a task. */
export function sample(samples, seed, index) {
  // xoshiro128** inlined (see prng.js): this loop is the whole task.
  let [s0, s1, s2, s3] = seedState(seed, index);
  let inside = 0;
  for (let i = 0; i < samples; i++) {
    let m = Math.imul(s1, 5);
    const a = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    let t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);

    m = Math.imul(s1, 5);
    const b = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);

    const x = a / TWO32;
    const y = b / TWO32;
    if (x * x + y * y < 1) inside++;
  }
  return inside;
}

/** run is one pi task. */
export function run(input) {
  const { samples, seed, index } = input ?? {};
  checkInt("samples", samples, 2 ** 53);
  checkInt("seed", seed, 0xffffffff);
  checkInt("index", index, 0xffffffff);
  return { samples, inside: sample(samples, seed, index) };
}
