// Reconnect delays: exponential backoff with full jitter, so that tabs
// dropped together (a coordinator restart) do not reconnect together.

export const BASE_MS = 500;
export const MAX_MS = 30_000;

/**
 * backoffDelay is the wait before reconnect attempt number attempt
 * (0-based): uniform in [0, min(max, base * 2^attempt)).
 */
export function backoffDelay(attempt, random = Math.random, base = BASE_MS, max = MAX_MS) {
  const cap = Math.min(max, base * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}
