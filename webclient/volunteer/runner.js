// Running one task: the built-in kinds from ../kinds/ and the js kind,
// whose submitted function is compiled here. Pure apart from eval, so
// node --test covers it; compute-worker.js wires it to the worker's
// messages and its Content-Security-Policy keeps submitted code off the
// network.

const MAX_COMPILED = 16;

/** describeError turns anything thrown into the message a task error carries. */
export function describeError(err) {
  if (err instanceof Error || (err && typeof err === "object" && "message" in err)) {
    const name = err.name && err.name !== "Error" ? `${err.name}: ` : "";
    return `${name}${err.message}`;
  }
  return String(err);
}

/** kindsFrom accepts the kinds module's export in any of its usual shapes. */
export function kindsFrom(mod) {
  const k = mod?.kinds ?? mod?.default ?? mod ?? {};
  return k;
}

/**
 * compile evaluates submitted code to a function. Indirect eval runs it
 * in the global scope, so it sees none of this module's variables.
 */
export function compile(code) {
  if (typeof code !== "string" || code.trim() === "") {
    throw new TypeError("code must be a non-empty string");
  }
  const fn = (0, eval)(`(${code}\n)`);
  if (typeof fn !== "function") {
    throw new TypeError(`code must evaluate to a function, got ${typeof fn}`);
  }
  return fn;
}

export class Runner {
  /** kinds maps a kind name to a module with run(input). */
  constructor(kinds) {
    this.kinds = kinds;
    this.compiled = new Map(); // code → function, most recent last
  }

  /** run executes one task and returns its output as JSON text. */
  async run(kind, input) {
    if (kind === "js") return this.#runJS(input);
    const k = this.kinds[kind];
    if (!k || typeof k.run !== "function") throw new Error(`unknown kind ${JSON.stringify(kind)}`);
    return stringify(await k.run(input));
  }

  async #runJS(input) {
    if (!input || !Array.isArray(input.items)) throw new TypeError("js task input needs an items array");
    const fn = this.#compiled(input.code);
    const offset = Number.isInteger(input.offset) ? input.offset : 0;
    const outputs = new Array(input.items.length);
    // One item at a time, in order: an async function sees the same
    // sequence in every tab, and a throw names the first failing item.
    for (let i = 0; i < input.items.length; i++) {
      let v;
      try {
        v = await fn(input.items[i], offset + i);
      } catch (err) {
        throw new Error(`item ${offset + i}: ${describeError(err)}`);
      }
      outputs[i] = v === undefined ? null : v;
    }
    return stringify({ outputs });
  }

  #compiled(code) {
    let fn = this.compiled.get(code);
    if (fn) {
      this.compiled.delete(code);
    } else {
      fn = compile(code);
      if (this.compiled.size >= MAX_COMPILED) this.compiled.delete(this.compiled.keys().next().value);
    }
    this.compiled.set(code, fn);
    return fn;
  }
}

function stringify(out) {
  const json = JSON.stringify(out);
  if (json === undefined) throw new TypeError("the task produced no JSON output");
  return json;
}
