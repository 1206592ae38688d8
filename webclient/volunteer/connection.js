// The tab's WebSocket to the coordinator: hello, welcome, tasks, cancel,
// batched results, capacity changes, heartbeats, and reconnecting with
// backoff and full jitter. No DOM: the WebSocket constructor and timers
// are injected, so node --test drives it with a fake socket.
//
// Each socket is a generation. Tasks carry the generation they came on;
// a result for an older generation is dropped, because a reconnected tab
// is a new worker and its old leases have gone back to pending.

import * as protocol from "./protocol.js";
import { backoffDelay } from "./backoff.js";

/** States, as shown on the page. */
export const State = Object.freeze({
  idle: "idle",
  connecting: "connecting",
  connected: "connected",
  reconnecting: "reconnecting",
  stopped: "stopped",
});

const DEFAULT_MAX_MESSAGE_BYTES = 1 << 20;
const RESULT_FLUSH_MS = 20; // gather results finishing together into one frame

export class Connection {
  /**
   * opts.url: the ws:// or wss:// URL of /ws.
   * opts.name: the tab's label.
   * opts.capacity: threads offered at hello (0 = paused).
   * opts.WebSocket: the WebSocket constructor.
   * opts.onTasks(tasks, generation), opts.onCancel(refs, reason),
   * opts.onDisconnect(), opts.onState(state, detail).
   */
  constructor(opts) {
    this.url = opts.url;
    this.name = opts.name ?? "";
    this.capacity = opts.capacity ?? 1;
    this.WebSocket = opts.WebSocket;
    this.onTasks = opts.onTasks ?? (() => {});
    this.onCancel = opts.onCancel ?? (() => {});
    this.onDisconnect = opts.onDisconnect ?? (() => {});
    this.onState = opts.onState ?? (() => {});
    // Wrapped: a bare window.setTimeout called as a method throws
    // "Illegal invocation" in browsers.
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((id) => clearTimeout(id));
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? (() => Date.now());

    this.state = State.idle;
    this.ws = null;
    this.generation = 0;
    this.welcome = null;
    this.attempt = 0; // failed connects since the last welcome
    this.retryTimer = null;
    this.flushTimer = null;
    this.pending = []; // result parts of the current generation, unsent
    this.lastSent = 0;
    this.dropped = 0; // results dropped because their connection ended
    this.detail = "";
    this.helloSent = false;
  }

  /** start connects, and keeps reconnecting until stop. */
  start() {
    if (this.state !== State.idle && this.state !== State.stopped) return;
    this.attempt = 0;
    this.#connect();
  }

  /** stop closes the socket for good; the coordinator requeues our tasks. */
  stop() {
    if (this.retryTimer !== null) this.clearTimer(this.retryTimer);
    this.retryTimer = null;
    this.#flush();
    const ws = this.ws;
    this.#drop();
    if (ws) ws.close(1000, "stopped by the volunteer");
    this.#setState(State.stopped, "");
  }

  /** setCapacity tells the coordinator how many threads we lend now (0 = paused). */
  setCapacity(n) {
    if (n === this.capacity) return;
    this.capacity = n;
    // Before hello the next hello carries it; after hello (even before
    // welcome) the coordinator must be told.
    if (this.ws !== null && this.helloSent) this.#send(protocol.capacity(n));
  }

  /** isCurrent reports whether tasks of generation gen may still be reported. */
  isCurrent(gen) {
    return gen === this.generation && this.#open();
  }

  /** result queues one finished task for the next results frame. */
  result(task, gen, outcome) {
    if (!this.isCurrent(gen)) {
      this.dropped++;
      return;
    }
    const json = typeof outcome.error === "string" ? protocol.errorPart(task, outcome.error) : protocol.resultPart(task, outcome.json);
    this.pending.push({ task, json });
    if (this.flushTimer === null) this.flushTimer = this.setTimer(() => this.#flush(), RESULT_FLUSH_MS);
  }

  /**
   * tick is called on every heartbeat-worker tick; it sends a heartbeat
   * when nothing else went out for half the interval the coordinator asked
   * for, so the gap between messages never exceeds that interval.
   */
  tick() {
    if (!this.#open()) return;
    const every = this.welcome?.heartbeat_ms ?? 5000;
    if (this.now() - this.lastSent >= every / 2) this.#send(protocol.heartbeat());
  }

  /** heartbeatInterval is how often tick should be called, in ms. */
  heartbeatInterval() {
    return Math.max(100, Math.floor((this.welcome?.heartbeat_ms ?? 5000) / 2));
  }

  #open() {
    return this.ws !== null && this.state === State.connected;
  }

  #connect() {
    this.generation++;
    const gen = this.generation;
    this.welcome = null;
    this.#setState(State.connecting, "");
    let ws;
    try {
      ws = new this.WebSocket(this.url, protocol.SUBPROTOCOL);
    } catch (err) {
      this.#retry(`connect: ${err.message}`);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (gen !== this.generation) return;
      if (ws.protocol !== protocol.SUBPROTOCOL) {
        ws.close(1002, "subprotocol tabgrid.v1 required");
        return;
      }
      this.#send(protocol.hello(this.capacity, this.name));
      this.helloSent = true;
    };
    ws.onmessage = (e) => {
      if (gen !== this.generation) return;
      this.#message(ws, e.data);
    };
    ws.onclose = (e) => {
      if (gen !== this.generation || this.ws !== ws) return;
      this.#drop();
      const why = e.reason ? `closed ${e.code}: ${e.reason}` : `closed ${e.code}`;
      this.#retry(why);
    };
    ws.onerror = () => {}; // onclose follows and says what happened
  }

  #message(ws, data) {
    let msg;
    try {
      msg = protocol.parseServerMessage(data);
    } catch (err) {
      ws.close(4000, err.message.slice(0, 120));
      return;
    }
    switch (msg.type) {
      case "welcome":
        this.welcome = msg;
        this.attempt = 0;
        this.#setState(State.connected, msg.worker_id ?? "");
        return;
      case "tasks":
        if (this.welcome) this.onTasks(msg.tasks, this.generation);
        return;
      case "cancel":
        // A task may be cancelled while its result waits to be sent.
        this.pending = this.pending.filter((p) => !msg.tasks.some((r) => protocol.taskKey(r) === protocol.taskKey(p.task) && r.token === p.task.token));
        this.onCancel(msg.tasks, msg.reason);
        return;
    }
  }

  // drop forgets the current socket and everything tied to it.
  #drop() {
    if (this.flushTimer !== null) this.clearTimer(this.flushTimer);
    this.flushTimer = null;
    this.dropped += this.pending.length;
    this.pending = [];
    if (this.ws) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
    }
    this.ws = null;
    this.welcome = null;
    this.helloSent = false;
    this.generation++;
    this.onDisconnect();
  }

  #retry(why) {
    const delay = backoffDelay(this.attempt, this.random);
    this.attempt++;
    this.#setState(State.reconnecting, `${why}; retrying in ${(delay / 1000).toFixed(1)} s`);
    this.retryTimer = this.setTimer(() => {
      this.retryTimer = null;
      this.#connect();
    }, delay);
  }

  #flush() {
    if (this.flushTimer !== null) this.clearTimer(this.flushTimer);
    this.flushTimer = null;
    if (!this.#open() || this.pending.length === 0) return;
    const max = this.welcome?.max_message_bytes > 0 ? this.welcome.max_message_bytes : DEFAULT_MAX_MESSAGE_BYTES;
    for (const frame of protocol.packResults(this.pending, max)) this.#send(frame);
    this.pending = [];
  }

  #send(text) {
    this.ws.send(text);
    this.lastSent = this.now();
  }

  #setState(state, detail) {
    this.state = state;
    this.detail = detail;
    this.onState(state, detail);
  }
}
