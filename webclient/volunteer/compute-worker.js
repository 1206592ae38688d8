// A compute thread of the volunteer page: a module worker that runs one
// task at a time for pool.js. It is served with a Content-Security-Policy
// that forbids every connection, so no kind, and no submitted js code,
// can reach the network from here.
//
// In:  {id, kind, input}
// Out: {id, json} (the output as JSON text) or {id, error} (a message).

import * as kindsModule from "../kinds/index.js";
import { Runner, describeError, kindsFrom } from "./runner.js";

const runner = new Runner(kindsFrom(kindsModule));

self.onmessage = async (e) => {
  const { id, kind, input } = e.data;
  try {
    const json = await runner.run(kind, input);
    self.postMessage({ id, json });
  } catch (err) {
    self.postMessage({ id, error: describeError(err) });
  }
};
