// Cross-language conformance: every JavaScript kind must return exactly
// what the Go reference returned for the task inputs recorded in
// tasks/testdata/vectors.json (regenerate it with
// go test ./tasks -run TestVectors -update).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { kinds } from "./index.js";
import { taskRand } from "./prng.js";

const vectors = JSON.parse(readFileSync(new URL("../../tasks/testdata/vectors.json", import.meta.url), "utf8"));

test("the vectors cover every built-in kind", () => {
  for (const name of Object.keys(kinds)) {
    assert.ok(Array.isArray(vectors[name]) && vectors[name].length > 0, `no vectors for ${name}`);
  }
});

test("prng streams equal Go's", () => {
  for (const v of vectors.prng) {
    const next = taskRand(v.seed, v.index);
    const got = v.outputs.map(() => next());
    assert.deepEqual(got, v.outputs, `seed ${v.seed} index ${v.index}`);
  }
});

for (const name of Object.keys(kinds)) {
  test(`${name} equals the Go reference`, async () => {
    for (const v of vectors[name]) {
      // A fresh parse per run, as a worker receives it.
      const got = await kinds[name].run(JSON.parse(JSON.stringify(v.input)));
      // Compare as JSON would carry it to the coordinator.
      assert.deepEqual(JSON.parse(JSON.stringify(got)), v.output, `${name} ${JSON.stringify(v.input).slice(0, 200)}`);
    }
  });
}
