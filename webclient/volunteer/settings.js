// The volunteer's settings: URL parameters, thread count bounds and the
// remembered checkboxes. Pure apart from the storage object passed in.

/** defaultThreads leaves one core to the volunteer when there are more than two. */
export function defaultThreads(cores) {
  const n = Math.max(1, Math.floor(Number(cores) || 1));
  return n > 2 ? n - 1 : n;
}

/** clampThreads bounds a requested thread count to 1..cores. */
export function clampThreads(n, cores) {
  const max = Math.max(1, Math.floor(Number(cores) || 1));
  const v = Math.floor(Number(n));
  if (!Number.isFinite(v)) return defaultThreads(max);
  return Math.min(max, Math.max(1, v));
}

/**
 * parseParams reads autostart=1, threads=N and name=LABEL from a query
 * string.
 */
export function parseParams(search, cores) {
  const q = new URLSearchParams(search);
  const auto = q.get("autostart");
  return {
    autostart: auto === "1" || auto === "true",
    threads: q.has("threads") ? clampThreads(q.get("threads"), cores) : defaultThreads(cores),
    name: q.get("name") ?? "",
  };
}

const PREFS_KEY = "tabgrid.volunteer";

/** loadPrefs reads the remembered options; both are off unless chosen. */
export function loadPrefs(storage) {
  try {
    const p = JSON.parse(storage?.getItem(PREFS_KEY) ?? "{}") ?? {};
    return { pauseHidden: p.pauseHidden === true, pauseBattery: p.pauseBattery === true };
  } catch {
    return { pauseHidden: false, pauseBattery: false };
  }
}

export function savePrefs(storage, prefs) {
  try {
    storage?.setItem(PREFS_KEY, JSON.stringify({ pauseHidden: !!prefs.pauseHidden, pauseBattery: !!prefs.pauseBattery }));
  } catch {
    // Storage may be disabled (private mode); the options then last a visit.
  }
}

/**
 * pauseReason says why the tab lends nothing now, or "" when it computes.
 * The volunteer's own pause wins over the automatic ones.
 */
export function pauseReason({ userPaused, hidden, onBattery, prefs }) {
  if (userPaused) return "paused";
  if (prefs.pauseHidden && hidden) return "paused while the tab is hidden";
  if (prefs.pauseBattery && onBattery) return "paused while on battery";
  return "";
}
