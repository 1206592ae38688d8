// The pseudo-random generator of the pi kind: xoshiro128** seeded through
// splitmix32, on 32-bit words only, so that it gives bit-identical streams
// to tasks/prng.go. Keep both files in step.

/** fmix32 is MurmurHash3's finalizer, a bijection of uint32. */
export function fmix32(z) {
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * seedState returns the four xoshiro128** state words of task index of a
 * job seeded with seed: four splitmix32 outputs starting from
 * seed ^ fmix32(index).
 */
export function seedState(seed, index) {
  let sm = (seed ^ fmix32(index >>> 0)) >>> 0;
  const s = new Array(4);
  for (let i = 0; i < 4; i++) {
    sm = (sm + 0x9e3779b9) >>> 0;
    s[i] = fmix32(sm);
  }
  return s;
}

/** taskRand returns a function giving the stream's next uint32. */
export function taskRand(seed, index) {
  let [s0, s1, s2, s3] = seedState(seed, index);
  return function next() {
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    return result;
  };
}
