import { test } from "node:test";
import assert from "node:assert/strict";
import { clampThreads, defaultThreads, loadPrefs, parseParams, pauseReason, savePrefs } from "./settings.js";
import { Rate } from "./stats.js";

test("default threads leave one core when there are more than two", () => {
  for (const [cores, want] of [[1, 1], [2, 2], [3, 2], [8, 7], [0, 1], [undefined, 1]]) {
    assert.equal(defaultThreads(cores), want, `cores ${cores}`);
  }
});

test("URL parameters", () => {
  assert.deepEqual(parseParams("?autostart=1&threads=2&name=lab%20pc", 4), { autostart: true, threads: 2, name: "lab pc" });
  assert.deepEqual(parseParams("", 4), { autostart: false, threads: 3, name: "" });
  assert.equal(parseParams("?threads=64", 4).threads, 4);
  assert.equal(parseParams("?threads=0", 4).threads, 1);
  assert.equal(parseParams("?threads=abc", 4).threads, 3);
  assert.equal(clampThreads(2.7, 8), 2);
});

test("prefs are off by default and round-trip through storage", () => {
  const m = new Map();
  const storage = { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, v) };
  assert.deepEqual(loadPrefs(storage), { pauseHidden: false, pauseBattery: false });
  savePrefs(storage, { pauseHidden: true, pauseBattery: false });
  assert.deepEqual(loadPrefs(storage), { pauseHidden: true, pauseBattery: false });
  m.set("tabgrid.volunteer", "{not json");
  assert.deepEqual(loadPrefs(storage), { pauseHidden: false, pauseBattery: false });
  assert.deepEqual(loadPrefs(undefined), { pauseHidden: false, pauseBattery: false });
});

test("pause reasons", () => {
  const off = { pauseHidden: false, pauseBattery: false };
  const on = { pauseHidden: true, pauseBattery: true };
  assert.equal(pauseReason({ userPaused: false, hidden: true, onBattery: true, prefs: off }), "");
  assert.equal(pauseReason({ userPaused: true, hidden: false, onBattery: false, prefs: off }), "paused");
  assert.match(pauseReason({ userPaused: false, hidden: true, onBattery: false, prefs: on }), /hidden/);
  assert.match(pauseReason({ userPaused: false, hidden: false, onBattery: true, prefs: on }), /battery/);
});

test("rate counts tasks per second over the window", () => {
  const r = new Rate(10_000);
  assert.equal(r.perSecond(0), 0);
  for (let t = 0; t < 10_000; t += 100) r.add(t);
  assert.equal(r.perSecond(10_000), 10); // 100 tasks in the last 10 s (one left the window)
  assert.equal(r.perSecond(30_000), 0);
  r.add(40_000, 5);
  assert.equal(r.perSecond(40_000), 5); // young window: at least one second
});
