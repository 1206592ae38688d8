// Messages of the tab protocol, version 1 (docs/protocol.md). Pure
// functions: no browser API, so node --test covers them.

export const VERSION = 1;
export const SUBPROTOCOL = "tabgrid.v1";
export const CLIENT = "tabgrid-web/1";
export const MAX_NAME_BYTES = 100;

const encoder = new TextEncoder();

/** byteLength is the UTF-8 size of a string, what the server limits. */
export function byteLength(s) {
  return encoder.encode(s).length;
}

/** truncateName cuts a label to MAX_NAME_BYTES without splitting a character. */
export function truncateName(name) {
  let out = "";
  let bytes = 0;
  for (const ch of String(name ?? "")) {
    const n = byteLength(ch);
    if (bytes + n > MAX_NAME_BYTES) break;
    out += ch;
    bytes += n;
  }
  return out;
}

export function hello(capacity, name) {
  const msg = { type: "hello", version: VERSION, capacity, client: CLIENT };
  const label = truncateName(name);
  if (label) msg.name = label;
  return JSON.stringify(msg);
}

export function capacity(n) {
  return JSON.stringify({ type: "capacity", capacity: n });
}

export function heartbeat() {
  return JSON.stringify({ type: "heartbeat" });
}

/**
 * resultPart is one element of a results message, built as a string so
 * that an output the worker already serialised is not parsed again.
 * outputJSON is the kind's output as JSON text.
 */
export function resultPart(task, outputJSON) {
  return `{"job":${JSON.stringify(task.job)},"index":${task.index},"token":${task.token},"output":${outputJSON}}`;
}

/** errorPart is a results element saying the task threw. */
export function errorPart(task, message) {
  return JSON.stringify({ job: task.job, index: task.index, token: task.token, error: String(message) });
}

const RESULTS_HEAD = '{"type":"results","results":[';
const RESULTS_TAIL = "]}";

/**
 * packResults groups result parts into as few results messages as fit in
 * maxBytes each. A part too big for any message is replaced by an error
 * for its task, so the server sees a failure instead of closing the
 * socket with 1009. parts are {task, json}.
 */
export function packResults(parts, maxBytes) {
  const overhead = byteLength(RESULTS_HEAD) + byteLength(RESULTS_TAIL);
  const messages = [];
  let batch = [];
  let size = overhead;
  for (const part of parts) {
    let json = part.json;
    let n = byteLength(json);
    if (overhead + n > maxBytes) {
      json = errorPart(part.task, `output is ${n} bytes, over the ${maxBytes}-byte message limit`);
      n = byteLength(json);
    }
    const extra = n + (batch.length > 0 ? 1 : 0);
    if (batch.length > 0 && size + extra > maxBytes) {
      messages.push(RESULTS_HEAD + batch.join(",") + RESULTS_TAIL);
      batch = [];
      size = overhead;
    }
    size += n + (batch.length > 0 ? 1 : 0);
    batch.push(json);
  }
  if (batch.length > 0) messages.push(RESULTS_HEAD + batch.join(",") + RESULTS_TAIL);
  return messages;
}

const SERVER_TYPES = new Set(["welcome", "tasks", "cancel"]);

/**
 * parseServerMessage decodes one frame from the coordinator. It throws on
 * anything the protocol does not allow, with a reason fit for a close
 * frame.
 */
export function parseServerMessage(text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch (err) {
    throw new Error(`malformed message: ${err.message}`);
  }
  if (msg === null || typeof msg !== "object" || Array.isArray(msg)) {
    throw new Error("malformed message: not an object");
  }
  if (!SERVER_TYPES.has(msg.type)) {
    throw new Error(`unexpected message: type ${JSON.stringify(msg.type)}`);
  }
  if ((msg.type === "tasks" || msg.type === "cancel") && !Array.isArray(msg.tasks)) {
    throw new Error(`malformed message: ${msg.type} without a tasks array`);
  }
  return msg;
}

/** taskKey identifies a task lease: the same task sent again has a new token. */
export function taskKey(t) {
  return `${t.job}/${t.index}`;
}
