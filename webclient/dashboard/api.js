// Calls from the dashboard to the REST API: cancelling a job (which needs
// a bearer token, asked once and kept in sessionStorage) and listing a
// job's failed tasks. fetch, storage and the token prompt are injected so
// node --test can drive the retry logic.

const TOKEN_KEY = 'tabgrid.api_token';

export class Api {
  // askToken(message) resolves to a token, or null when the user gives up.
  constructor({ fetch, storage, askToken, base = '' }) {
    this.fetch = fetch;
    this.storage = storage;
    this.askToken = askToken;
    this.base = base;
  }

  token() {
    try {
      return this.storage.getItem(TOKEN_KEY) || '';
    } catch {
      return '';
    }
  }

  setToken(t) {
    try {
      if (t) this.storage.setItem(TOKEN_KEY, t);
      else this.storage.removeItem(TOKEN_KEY);
    } catch {
      // storage may be disabled; the token then lasts for this call only
    }
  }

  // cancel deletes the job. It asks for a token when none is stored and
  // again after a 401, and returns {ok, status, job?, message?}.
  async cancel(id) {
    let token = this.token();
    let message = 'API token needed to cancel jobs';
    for (let tries = 0; tries < 3; tries++) {
      if (!token) {
        token = await this.askToken(message);
        if (!token) return { ok: false, status: 0, message: 'no token given' };
        this.setToken(token);
      }
      const res = await this.fetch(`${this.base}/api/v1/jobs/${encodeURIComponent(id)}`, {
        method: 'DELETE',
        headers: { Authorization: `Bearer ${token}` },
      });
      if (res.status === 401) {
        this.setToken('');
        token = '';
        message = 'That token was refused; enter another';
        continue;
      }
      const body = await readJSON(res);
      if (!res.ok) return { ok: false, status: res.status, message: errorMessage(body, res.status) };
      return { ok: true, status: res.status, job: body };
    }
    return { ok: false, status: 401, message: 'token refused' };
  }

  // failedTasks lists the job's failed tasks.
  async failedTasks(id) {
    const res = await this.fetch(`${this.base}/api/v1/jobs/${encodeURIComponent(id)}/tasks?state=failed`);
    const body = await readJSON(res);
    if (!res.ok) throw new Error(`list failed tasks: ${errorMessage(body, res.status)}`);
    return Array.isArray(body?.tasks) ? body.tasks : [];
  }
}

async function readJSON(res) {
  try {
    return await res.json();
  } catch {
    return null;
  }
}

export function errorMessage(body, status) {
  const e = body && body.error;
  if (e && typeof e === 'object' && e.message) return e.message;
  if (typeof e === 'string') return e;
  return `HTTP ${status}`;
}
