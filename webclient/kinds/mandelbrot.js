// mandelbrot: iteration counts of one tile, exactly as tasks/mandelbrot.go
// computes them (its doc comment states the formula; every step below is
// the same IEEE double operation in the same order).
//
// Task input {x0, y0, w, h, width, height, x_min, x_max, y_min, y_max,
// max_iter} → [n, n, ...], the tile's counts row-major (row 0 at the top).

function checkInt(name, v, min, max) {
  if (typeof v !== "number" || !Number.isInteger(v)) throw new TypeError(`mandelbrot: ${name} must be an integer`);
  if (v < min || v > max) throw new RangeError(`mandelbrot: ${name} must be between ${min} and ${max}`);
}

/** count is the escape-time loop for the point cx + i cy. */
export function count(cx, cy, maxIter) {
  let zx = 0;
  let zy = 0;
  let n = 0;
  while (n < maxIter) {
    const x2 = zx * zx;
    const y2 = zy * zy;
    if (x2 + y2 > 4) break;
    zy = 2 * zx * zy + cy;
    zx = x2 - y2 + cx;
    n++;
  }
  return n;
}

/** run is one mandelbrot task. */
export function run(input) {
  const v = input ?? {};
  checkInt("width", v.width, 1, 8192);
  checkInt("height", v.height, 1, 8192);
  checkInt("max_iter", v.max_iter, 1, 100000);
  checkInt("x0", v.x0, 0, v.width - 1);
  checkInt("y0", v.y0, 0, v.height - 1);
  checkInt("w", v.w, 1, v.width - v.x0);
  checkInt("h", v.h, 1, v.height - v.y0);
  for (const f of ["x_min", "x_max", "y_min", "y_max"]) {
    if (typeof v[f] !== "number" || !Number.isFinite(v[f])) throw new TypeError(`mandelbrot: ${f} must be a number`);
  }
  const dx = v.x_max - v.x_min;
  const dy = v.y_max - v.y_min;
  const out = new Array(v.w * v.h);
  let k = 0;
  for (let py = v.y0; py < v.y0 + v.h; py++) {
    const cy = v.y_max - dy * ((py + 0.5) / v.height);
    for (let px = v.x0; px < v.x0 + v.w; px++) {
      const cx = v.x_min + dx * ((px + 0.5) / v.width);
      out[k++] = count(cx, cy, v.max_iter);
    }
  }
  return out;
}
