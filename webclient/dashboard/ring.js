// A fixed-size ring of (time, value) samples: the throughput history behind
// the chart. Pushing never allocates once the ring is full, so a page left
// open for days keeps the same memory. Pure, no DOM.

export class Ring {
  constructor(capacity) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`ring capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.times = new Float64Array(capacity);
    this.values = new Float64Array(capacity);
    this.start = 0; // index of the oldest sample
    this.length = 0;
  }

  // push appends a sample, dropping the oldest when full. A sample older
  // than the newest one (a clock step back) replaces nothing and is dropped
  // so that times stay ordered.
  push(t, v) {
    if (!Number.isFinite(t)) return false;
    if (!Number.isFinite(v) || v < 0) v = 0;
    if (this.length > 0 && t < this.newestTime()) return false;
    const i = (this.start + this.length) % this.capacity;
    this.times[i] = t;
    this.values[i] = v;
    if (this.length < this.capacity) this.length++;
    else this.start = (this.start + 1) % this.capacity;
    return true;
  }

  newestTime() {
    if (this.length === 0) return NaN;
    return this.times[(this.start + this.length - 1) % this.capacity];
  }

  // since returns the samples with time ≥ t, oldest first.
  since(t) {
    const out = [];
    for (let k = 0; k < this.length; k++) {
      const i = (this.start + k) % this.capacity;
      if (this.times[i] >= t) out.push({ t: this.times[i], v: this.values[i] });
    }
    return out;
  }

  clear() {
    this.start = 0;
    this.length = 0;
  }
}

// niceMax rounds a chart's top up to 1, 2 or 5 times a power of ten, so the
// axis label reads well; never below 1.
export function niceMax(v) {
  if (!Number.isFinite(v) || v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) {
    if (v <= m * p) return m * p;
  }
  return 10 * p;
}

// chartPoints maps samples of the last spanMs before now onto a width×height
// box (y grows downwards, as on a canvas). It returns the points and the
// value at the top of the box.
export function chartPoints(samples, now, spanMs, width, height) {
  let max = 0;
  for (const s of samples) if (s.v > max) max = s.v;
  const top = niceMax(max);
  const from = now - spanMs;
  const points = [];
  for (const s of samples) {
    if (s.t < from || s.t > now) continue;
    points.push({
      x: ((s.t - from) / spanMs) * width,
      y: height - (s.v / top) * height,
    });
  }
  return { points, top };
}
