// A timer off the main thread. Browsers throttle a hidden tab's timers to
// once a second or once a minute, but not its workers' timers, so the page
// sends its heartbeats on these ticks and a hidden tab is not taken for
// dead.
//
// In:  {interval} (ms; 0 stops). Out: "tick" every interval.

let timer = null;

self.onmessage = (e) => {
  if (timer !== null) clearInterval(timer);
  timer = null;
  const ms = Number(e.data?.interval);
  if (ms > 0) timer = setInterval(() => self.postMessage("tick"), ms);
};
