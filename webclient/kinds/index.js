// The built-in kinds a volunteer's worker runs, by name. Each module
// exports run(input) → output (or a Promise of it), equal to what the Go
// reference in tasks/ returns for the same task input; vectors.test.js
// checks that against tasks/testdata/vectors.json. The js kind is not
// here: the sandboxed worker compiles its code (see js.js for runJS).

import * as mandelbrot from "./mandelbrot.js";
import * as pi from "./pi.js";
import * as primes from "./primes.js";
import * as sleep from "./sleep.js";

export { runJS } from "./js.js";

export const kinds = Object.freeze({ primes, pi, mandelbrot, sleep });

export default kinds;
