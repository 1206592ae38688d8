import { test } from "node:test";
import assert from "node:assert/strict";
import { Runner, compile, describeError, kindsFrom } from "./runner.js";

const kinds = {
  double: { run: (input) => ({ v: input.v * 2 }) },
  later: { run: async (input) => ({ v: input.v + 1 }) },
  broken: { run: () => { throw new RangeError("too big"); } },
};

test("built-in kinds run, sync or async, and give JSON text", async () => {
  const r = new Runner(kinds);
  assert.equal(await r.run("double", { v: 21 }), '{"v":42}');
  assert.equal(await r.run("later", { v: 1 }), '{"v":2}');
  await assert.rejects(r.run("nope", {}), /unknown kind "nope"/);
  await assert.rejects(r.run("broken", {}), RangeError);
});

test("js maps items in order through sync and async functions", async () => {
  const r = new Runner({});
  assert.equal(await r.run("js", { code: "(item) => item * item", items: [1, 2, 3] }), '{"outputs":[1,4,9]}');
  assert.equal(await r.run("js", { code: "async (x, i) => { await null; return [x, i]; }", items: ["a", "b"], offset: 10 }),
    '{"outputs":[["a",10],["b",11]]}');
  assert.equal(await r.run("js", { code: "function (x) { if (x > 1) return x }", items: [1, 2] }), '{"outputs":[null,2]}');
});

test("js code is compiled once per code string", async () => {
  const r = new Runner({});
  globalThis.__compiles = 0;
  const code = "(globalThis.__compiles++, (x) => x)";
  await r.run("js", { code, items: [1] });
  await r.run("js", { code, items: [2] });
  assert.equal(globalThis.__compiles, 1);
  delete globalThis.__compiles;
});

test("js errors carry the thrown message", async () => {
  const r = new Runner({});
  await assert.rejects(r.run("js", { code: "(x) => { throw new TypeError('bad ' + x) }", items: [7] }), { message: "item 0: TypeError: bad 7" });
  await assert.rejects(r.run("js", { code: "async (x) => { if (x > 1) throw 'no ' + x; return x }", items: [1, 2], offset: 40 }), { message: "item 41: no 2" });
  await assert.rejects(r.run("js", { code: "42", items: [1] }), /must evaluate to a function/);
  await assert.rejects(r.run("js", { code: "(x) =>", items: [1] }), SyntaxError);
  await assert.rejects(r.run("js", { code: "(x) => x", items: "no" }), /items array/);
  await assert.rejects(r.run("js", { code: "(x) => 1n", items: [1] }), TypeError);
});

test("compiled code cannot see the runner's scope", () => {
  const fn = compile("() => typeof MAX_COMPILED");
  assert.equal(fn(), "undefined");
});

test("describeError names the error type", () => {
  assert.equal(describeError(new TypeError("Failed to fetch")), "TypeError: Failed to fetch");
  assert.equal(describeError(new Error("plain")), "plain");
  assert.equal(describeError("a string"), "a string");
  assert.equal(describeError({ message: "like an error" }), "like an error");
  assert.equal(describeError(undefined), "undefined");
});

test("kindsFrom accepts named, default or kinds exports", () => {
  assert.equal(kindsFrom({ kinds: { a: 1 } }).a, 1);
  assert.equal(kindsFrom({ default: { a: 2 } }).a, 2);
  assert.equal(kindsFrom({ a: 3 }).a, 3);
});
