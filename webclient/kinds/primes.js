// primes: count the primes p with from <= p < to, exactly as the Go
// reference tasks/primes.go does, for any 0 <= from < to <= 2^53.
//
// Numbers are plain Numbers: every integer up to 2^53 is exact, and the
// sieve only forms p*p <= to - 1, lo % p and offsets inside a segment, all
// below 2^53. Base primes (up to sqrt(to - 1), at most ~9.5e7, 5.4 million
// of them) are sieved lazily, segment by segment, and kept for the next
// task of this worker.

export const MAX = 2 ** 53;
const SEGMENT = 1 << 22; // one segment covers a default task (4e6 numbers)
const MAX_BASE = 94906266; // floor(sqrt(2^53)) + 1

/** isqrt returns floor(sqrt(x)) for integers 0 <= x <= 2^53. */
export function isqrt(x) {
  let r = Math.floor(Math.sqrt(x));
  while (r * r > x) r--;
  while ((r + 1) * (r + 1) <= x) r++;
  return r;
}

const TWO26 = 2 ** 26;

/**
 * sieveSegment strikes the odd composites of [lo, lo + n) with the odd
 * primes of base (every prime up to sqrt(lo + n - 1) must be there) and
 * returns how many odd primes >= 3 remain. With sink, it pushes them.
 *
 * lo mod p is computed without %: V8 implements % on large doubles with
 * fmod, several times slower, and a segment near 2^53 needs it for 5.4
 * million base primes. With lo = a*2^26 + b (a < 2^27, b < 2^26),
 * lo mod p = ((a mod p)*2^26 + b) mod p, and x mod p = x - floor(x/p)*p
 * corrected by one p at most for the rounding of x/p. Every intermediate
 * is an integer below 2^53, so every step is exact.
 */
function sieveSegment(seg, n, lo, base, sink) {
  seg.fill(0, 0, n);
  const hi = lo + n;
  const loOdd = lo % 2;
  const a = Math.floor(lo / TWO26);
  const b = lo - a * TWO26;
  for (let i = 0; i < base.length; i++) {
    const p = base[i];
    if (p === 2) continue;
    const pp = p * p;
    if (pp >= hi) break;
    let off; // offset of the first multiple of p to strike
    if (pp >= lo) {
      off = pp - lo;
    } else {
      let ra = a - Math.floor(a / p) * p;
      if (ra < 0) ra += p;
      else if (ra >= p) ra -= p;
      const y = ra * TWO26 + b;
      let r = y - Math.floor(y / p) * p;
      if (r < 0) r += p;
      else if (r >= p) r -= p;
      off = r === 0 ? 0 : p - r;
    }
    if (off >= n) continue;
    if (((loOdd + off) & 1) === 0) off += p; // even multiples are never looked at
    const step = 2 * p;
    for (; off < n; off += step) seg[off] = 1;
  }
  let first = loOdd === 0 ? 1 : 0;
  if (lo + first < 3) first = 3 - lo; // 1 is not prime; 3 is the first odd one
  let count = 0;
  for (let off = first; off < n; off += 2) {
    if (seg[off] === 0) {
      count++;
      if (sink) sink.push(lo + off);
    }
  }
  return count;
}

/** A growable Uint32Array of primes. */
class PrimeList {
  constructor(capacity) {
    this.a = new Uint32Array(Math.max(16, capacity));
    this.length = 0;
  }
  push(p) {
    if (this.length === this.a.length) {
      const b = new Uint32Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.length++] = p;
  }
  done() {
    return this.a.subarray(0, this.length);
  }
}

/** primesUpTo lists the primes <= limit as a Uint32Array. */
export function primesUpTo(limit) {
  if (limit < 2) return new Uint32Array(0);
  if (limit <= 1 << 16) {
    const composite = new Uint8Array(limit + 1);
    const out = new PrimeList(64);
    for (let i = 2; i <= limit; i++) {
      if (composite[i]) continue;
      out.push(i);
      for (let j = i * i; j <= limit; j += i) composite[j] = 1;
    }
    return out.done();
  }
  const small = primesUpTo(isqrt(limit));
  // pi(x) < 1.25506 x / ln x for x > 1.
  const out = new PrimeList(Math.ceil((1.25506 * limit) / Math.log(limit)) + 1);
  out.push(2);
  const seg = new Uint8Array(SEGMENT);
  for (let lo = 0; lo <= limit; lo += SEGMENT) {
    sieveSegment(seg, Math.min(limit + 1 - lo, SEGMENT), lo, small, out);
  }
  return out.done();
}

let cache = { limit: 0, primes: new Uint32Array(0) };

/** basePrimes returns the primes <= limit (a shared view: do not modify). */
function basePrimes(limit) {
  if (limit > cache.limit) {
    // Grow geometrically, as the Go reference does, so that a worker
    // given increasing ranges does not re-sieve for every task.
    const grow = Math.min(Math.max(limit, 2 * cache.limit), MAX_BASE);
    cache = { limit: grow, primes: primesUpTo(grow) };
  }
  const ps = cache.primes;
  let lo = 0;
  let hi = ps.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ps[mid] <= limit) lo = mid + 1;
    else hi = mid;
  }
  return ps.subarray(0, lo);
}

/** countPrimes counts the primes in [from, to). */
export function countPrimes(from, to) {
  if (to <= 2 || from >= to) return 0;
  let count = from <= 2 ? 1 : 0; // 2, the one even prime
  const base = basePrimes(isqrt(to - 1));
  const seg = new Uint8Array(Math.min(to - from, SEGMENT));
  for (let lo = from; lo < to; lo += SEGMENT) {
    count += sieveSegment(seg, Math.min(to - lo, SEGMENT), lo, base, null);
  }
  return count;
}

function checkInt(name, v) {
  if (typeof v !== "number" || !Number.isInteger(v)) throw new TypeError(`primes: ${name} must be an integer`);
  if (v < 0 || v > MAX) throw new RangeError(`primes: ${name} must be between 0 and 2^53`);
}

/** run is one primes task: {from, to} → {count}. */
export function run(input) {
  const { from, to } = input ?? {};
  checkInt("from", from);
  checkInt("to", to);
  if (from >= to) throw new RangeError("primes: from must be less than to");
  return { count: countPrimes(from, to) };
}
