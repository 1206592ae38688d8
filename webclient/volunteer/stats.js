// Throughput over a sliding window, for the tasks/s counter.

export class Rate {
  /** windowMs is how far back tasks count. */
  constructor(windowMs = 10_000) {
    this.windowMs = windowMs;
    this.times = [];
  }

  /** add records n tasks finished at time now (ms). */
  add(now, n = 1) {
    for (let i = 0; i < n; i++) this.times.push(now);
    this.#trim(now);
  }

  /** perSecond is tasks per second over the window ending at now. */
  perSecond(now) {
    this.#trim(now);
    if (this.times.length === 0) return 0;
    // Until the window is full, divide by the time since the first task
    // (at least one second) so a new tab does not report a tiny rate.
    const span = Math.max(1000, Math.min(this.windowMs, now - this.times[0]));
    return (this.times.length * 1000) / span;
  }

  #trim(now) {
    const from = now - this.windowMs;
    let i = 0;
    while (i < this.times.length && this.times[i] <= from) i++;
    if (i > 0) this.times.splice(0, i);
  }
}
