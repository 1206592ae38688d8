// js: the kind whose code the submitter writes. The volunteer's sandboxed
// worker compiles the code (this module never evaluates anything); runJS
// maps a task's items through the compiled function the way the Go
// reducer in tasks/js.go expects.

/**
 * runJS calls fn(item, index) for each item of a task, one at a time and
 * in order (index counts from the job's first item: offset + i), awaits
 * each result, and returns {outputs}. undefined becomes null, as
 * JSON.stringify would write it inside an array.
 */
export async function runJS(input, fn) {
  if (!input || !Array.isArray(input.items)) throw new TypeError("js: task input needs an items array");
  if (typeof fn !== "function") throw new TypeError("js: fn must be a function");
  const offset = Number.isInteger(input.offset) ? input.offset : 0;
  const outputs = new Array(input.items.length);
  for (let i = 0; i < input.items.length; i++) {
    const v = await fn(input.items[i], offset + i);
    outputs[i] = v === undefined ? null : v;
  }
  return { outputs };
}
