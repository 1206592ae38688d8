// The mandelbrot preview: the image of one mandelbrot job, reloaded as its
// tiles finish (the server renders finished tiles only while the job
// runs), at most once per minIntervalMs. The new image is loaded off
// screen and swapped in when complete, so the picture never flickers.

export class Preview {
  constructor(root, state, { minIntervalMs = 1000 } = {}) {
    this.state = state;
    this.minIntervalMs = minIntervalMs;
    this.section = root.querySelector('#preview');
    this.title = root.querySelector('#preview-name');
    this.img = root.querySelector('#preview-img');
    this.status = root.querySelector('#preview-status');
    this.selected = null;
    this.jobId = null;
    this.wantKey = '';
    this.shownKey = '';
    this.lastLoad = -Infinity;
    this.loading = false;
    this.loads = 0;
  }

  // select shows this job when it is a mandelbrot job; otherwise the
  // preview follows the newest running mandelbrot job.
  select(id) {
    const job = this.state.job(id);
    if (job && job.kind === 'mandelbrot') this.selected = id;
  }

  _choose() {
    if (this.selected && this.state.job(this.selected)) return this.selected;
    this.selected = null;
    let newest = null;
    const order = this.state.jobOrder();
    for (let i = 0; i < order.length && i < 200; i++) {
      const job = this.state.job(order[i]);
      if (job.kind !== 'mandelbrot') continue;
      if (job.state === 'running') return job.id;
      if (newest === null) newest = job.id;
    }
    return newest;
  }

  update(now) {
    const id = this._choose();
    if (id === null) {
      if (!this.section.hidden) this.section.hidden = true;
      this.jobId = null;
      return;
    }
    if (this.section.hidden) this.section.hidden = false;
    const job = this.state.job(id);
    if (id !== this.jobId) {
      this.jobId = id;
      this.title.textContent = job.name || id;
      this.img.removeAttribute('src');
      this.img.dataset.jobId = id;
      this.img.dataset.succeeded = '0';
      this.shownKey = '';
      this.lastLoad = -Infinity;
    }
    const done = (job.tasks && job.tasks.succeeded) || 0;
    this.status.textContent = `${job.state}, ${done}/${(job.tasks && job.tasks.total) || 0} tiles`;
    if (done === 0) return;
    this.wantKey = `${id}:${done}:${job.state}`;
    if (this.wantKey === this.shownKey || this.loading) return;
    // The final image is loaded at once; partial ones are throttled.
    if (job.state !== 'succeeded' && now - this.lastLoad < this.minIntervalMs) return;
    this._load(id, done, this.wantKey, now);
  }

  _load(id, done, key, now) {
    this.loading = true;
    this.lastLoad = now;
    const next = new Image();
    const url = `/api/v1/jobs/${encodeURIComponent(id)}/result.png?tiles=${done}`;
    const finish = (ok) => {
      this.loading = false;
      if (id !== this.jobId) return;
      // Even a failed load counts as shown, so a missing image is not
      // fetched again until more tiles finish.
      this.shownKey = key;
      if (!ok) return;
      this.img.src = next.src;
      this.img.dataset.succeeded = String(done);
      this.loads++;
      this.img.dataset.loads = String(this.loads);
    };
    next.onload = () => finish(true);
    next.onerror = () => finish(false);
    next.src = url;
  }
}
