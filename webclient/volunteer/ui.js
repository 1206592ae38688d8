// The volunteer page's DOM: reads the controls, shows the counters. It
// holds no state of its own; main.js passes a view to render.

const $ = (id) => document.getElementById(id);

export class UI {
  constructor(cores) {
    this.el = {};
    for (const id of ["start", "pause", "resume", "stop", "thread-count", "thread-count-value", "state", "state-detail", "mode",
      "threads", "busy", "queued", "tasks-done", "tasks-failed", "results-dropped", "rate", "job", "worker-id", "pause-hidden", "pause-battery", "cores"]) {
      this.el[id] = $(id);
    }
    const tc = this.el["thread-count"];
    tc.min = "1";
    tc.max = String(cores);
    this.el.cores.textContent = String(cores);
    this.last = new Map();
  }

  /** on binds the controls to handlers. */
  on(h) {
    this.el.start.addEventListener("click", h.start);
    this.el.pause.addEventListener("click", h.pause);
    this.el.resume.addEventListener("click", h.resume);
    this.el.stop.addEventListener("click", h.stop);
    this.el["thread-count"].addEventListener("input", (e) => {
      this.el["thread-count-value"].textContent = e.target.value;
    });
    this.el["thread-count"].addEventListener("change", (e) => h.threads(Number(e.target.value)));
    this.el["pause-hidden"].addEventListener("change", (e) => h.prefs({ pauseHidden: e.target.checked }));
    this.el["pause-battery"].addEventListener("change", (e) => h.prefs({ pauseBattery: e.target.checked }));
  }

  /** render shows a view; only changed text is written. */
  render(v) {
    this.#text("state", v.state);
    this.el.state.dataset.state = v.state;
    this.#text("state-detail", v.detail);
    this.#text("mode", v.mode);
    this.#text("threads", String(v.threads));
    this.#text("busy", String(v.busy));
    this.#text("queued", String(v.queued));
    this.#text("tasks-done", String(v.done));
    this.#text("tasks-failed", String(v.failed));
    this.#text("results-dropped", String(v.dropped ?? 0));
    this.#text("rate", v.rate.toFixed(1));
    this.#text("job", v.job);
    this.#text("worker-id", v.workerID || "—");
    this.el.start.disabled = v.started;
    this.el.stop.disabled = !v.started;
    this.el.pause.disabled = !v.started || v.userPaused;
    this.el.resume.disabled = !v.started || !v.userPaused;
    const tc = this.el["thread-count"];
    if (document.activeElement !== tc && tc.value !== String(v.threadSetting)) {
      tc.value = String(v.threadSetting);
      this.el["thread-count-value"].textContent = String(v.threadSetting);
    }
    this.el["pause-hidden"].checked = v.prefs.pauseHidden;
    this.el["pause-battery"].checked = v.prefs.pauseBattery;
    this.el["pause-battery"].disabled = !v.batterySupported;
  }

  #text(id, s) {
    if (this.last.get(id) === s) return;
    this.last.set(id, s);
    this.el[id].textContent = s;
  }
}
