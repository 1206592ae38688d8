// sleep: wait ms milliseconds, then return {} (0 ms returns at once).
// For benchmarks, tests and demos; mirrors tasks/sleep.go.

/** run is one sleep task: {ms} → {}. */
export function run(input) {
  const ms = input?.ms;
  if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 0) {
    throw new TypeError("sleep: ms must be a non-negative integer");
  }
  if (ms === 0) return {};
  return new Promise((resolve) => setTimeout(() => resolve({}), ms));
}
