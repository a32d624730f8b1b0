/**
 * Element-wise kernels, bias broadcasts, reductions over rows/axes, activations, and the triad used to
 * measure memory bandwidth. Each loop runs four lanes at a time and finishes the last n mod 4 values
 * with scalar code; every value is computed exactly as the reference does (activations excepted: they
 * use the vector exp of vmath.ts).
 *
 * Shape legend: n = element count; R = rows, C = columns; [outer, axis, inner] for sumAxis.
 * Pointers are byte addresses; "x: [R,C]" means R·C floats at x.
 */
import { madd, sigmoidV, tanhV } from './vmath';

// @ts-ignore: decorator
@inline function f(p: usize, i: i32): usize {
  return p + ((<usize>i) << 2);
}

export function add(a: usize, b: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(f(out, i), f32x4.add(v128.load(f(a, i)), v128.load(f(b, i))));
  for (; i < n; i++) store<f32>(f(out, i), load<f32>(f(a, i)) + load<f32>(f(b, i)));
}

/** target += source, source = 0. */
export function addAndClear(target: usize, source: usize, n: i32): void {
  const zero = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    v128.store(f(target, i), f32x4.add(v128.load(f(target, i)), v128.load(f(source, i))));
    v128.store(f(source, i), zero);
  }
  for (; i < n; i++) {
    store<f32>(f(target, i), load<f32>(f(target, i)) + load<f32>(f(source, i)));
    store<f32>(f(source, i), 0);
  }
}

export function fill(out: usize, value: f32, n: i32): void {
  const v = f32x4.splat(value);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    v128.store(f(out, i), v);
    v128.store(f(out, i + 4), v);
    v128.store(f(out, i + 8), v);
    v128.store(f(out, i + 12), v);
  }
  for (; i + 4 <= n; i += 4) v128.store(f(out, i), v);
  for (; i < n; i++) store<f32>(f(out, i), value);
}

export function scale(a: usize, s: f32, out: usize, n: i32): void {
  const sv = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(f(out, i), f32x4.mul(v128.load(f(a, i)), sv));
  for (; i < n; i++) store<f32>(f(out, i), load<f32>(f(a, i)) * s);
}

export function mul(a: usize, b: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(f(out, i), f32x4.mul(v128.load(f(a, i)), v128.load(f(b, i))));
  for (; i < n; i++) store<f32>(f(out, i), load<f32>(f(a, i)) * load<f32>(f(b, i)));
}

/** out += s·a */
export function axpy(s: f32, a: usize, out: usize, n: i32): void {
  const sv = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(f(out, i), madd(sv, v128.load(f(a, i)), v128.load(f(out, i))));
  for (; i < n; i++) store<f32>(f(out, i), load<f32>(f(out, i)) + s * load<f32>(f(a, i)));
}

/** a = b + s·c: the STREAM triad, 12 bytes moved per element; its GB/s is the bandwidth the bench compares against. */
export function triad(a: usize, b: usize, c: usize, s: f32, n: i32): void {
  const sv = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(f(a, i), madd(sv, v128.load(f(c, i)), v128.load(f(b, i))));
  for (; i < n; i++) store<f32>(f(a, i), load<f32>(f(b, i)) + s * load<f32>(f(c, i)));
}

/** out[r,c] = x[r,c] + v[c] */
export function addRowVector(x: usize, v: usize, out: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    const xr = f(x, r * cols);
    const or = f(out, r * cols);
    let c = 0;
    for (; c + 4 <= cols; c += 4) v128.store(f(or, c), f32x4.add(v128.load(f(xr, c)), v128.load(f(v, c))));
    for (; c < cols; c++) store<f32>(f(or, c), load<f32>(f(xr, c)) + load<f32>(f(v, c)));
  }
}

/** out[c] (+)= Σ_r x[r,c] */
export function sumRows(x: usize, out: usize, rows: i32, cols: i32, accumulate: bool): void {
  if (!accumulate) memory.fill(out, 0, (<usize>cols) << 2);
  for (let r = 0; r < rows; r++) {
    const xr = f(x, r * cols);
    let c = 0;
    for (; c + 4 <= cols; c += 4) v128.store(f(out, c), f32x4.add(v128.load(f(out, c)), v128.load(f(xr, c))));
    for (; c < cols; c++) store<f32>(f(out, c), load<f32>(f(out, c)) + load<f32>(f(xr, c)));
  }
}

/** out[o,i] = Σ_a x[o,a,i] */
export function sumAxis(x: usize, out: usize, outer: i32, axis: i32, inner: i32): void {
  memory.fill(out, 0, (<usize>(outer * inner)) << 2);
  for (let o = 0; o < outer; o++) {
    const dst = f(out, o * inner);
    for (let a = 0; a < axis; a++) {
      const src = f(x, (o * axis + a) * inner);
      let i = 0;
      if (inner >= 4) {
        for (; i + 4 <= inner; i += 4) v128.store(f(dst, i), f32x4.add(v128.load(f(dst, i)), v128.load(f(src, i))));
      }
      for (; i < inner; i++) store<f32>(f(dst, i), load<f32>(f(dst, i)) + load<f32>(f(src, i)));
    }
  }
}

export function sigmoid(x: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(f(y, i), sigmoidV(v128.load(f(x, i))));
  for (; i < n; i++) store<f32>(f(y, i), f32x4.extract_lane(sigmoidV(f32x4.splat(load<f32>(f(x, i)))), 0));
}

/** dx = dy·y·(1 - y) */
export function sigmoidBackward(y: usize, dy: usize, dx: usize, n: i32): void {
  const one = f32x4.splat(1);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const yv = v128.load(f(y, i));
    v128.store(f(dx, i), f32x4.mul(f32x4.mul(v128.load(f(dy, i)), yv), f32x4.sub(one, yv)));
  }
  for (; i < n; i++) {
    const yv = load<f32>(f(y, i));
    store<f32>(f(dx, i), load<f32>(f(dy, i)) * yv * (1 - yv));
  }
}

export function tanh(x: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(f(y, i), tanhV(v128.load(f(x, i))));
  for (; i < n; i++) store<f32>(f(y, i), f32x4.extract_lane(tanhV(f32x4.splat(load<f32>(f(x, i)))), 0));
}

/** dx = dy·(1 - y²), computed as dy·(1 - y)·(1 + y): 1 - y is exact near |y| = 1, where 1 - y·y would cancel. */
export function tanhBackward(y: usize, dy: usize, dx: usize, n: i32): void {
  const one = f32x4.splat(1);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const yv = v128.load(f(y, i));
    v128.store(f(dx, i), f32x4.mul(v128.load(f(dy, i)), f32x4.mul(f32x4.sub(one, yv), f32x4.add(one, yv))));
  }
  for (; i < n; i++) {
    const yv = load<f32>(f(y, i));
    store<f32>(f(dx, i), load<f32>(f(dy, i)) * ((1 - yv) * (1 + yv)));
  }
}

export function relu(x: usize, y: usize, n: i32): void {
  const zero = f32x4.splat(0);
  let i = 0;
  // x > 0 ? x : 0 as a mask, so NaN maps to 0 exactly as in the reference.
  for (; i + 4 <= n; i += 4) {
    const xv = v128.load(f(x, i));
    v128.store(f(y, i), v128.and(xv, f32x4.gt(xv, zero)));
  }
  for (; i < n; i++) {
    const xv = load<f32>(f(x, i));
    store<f32>(f(y, i), xv > 0 ? xv : 0);
  }
}

/** dx = x > 0 ? dy : 0 */
export function reluBackward(x: usize, dy: usize, dx: usize, n: i32): void {
  const zero = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(f(dx, i), v128.and(v128.load(f(dy, i)), f32x4.gt(v128.load(f(x, i)), zero)));
  for (; i < n; i++) store<f32>(f(dx, i), load<f32>(f(x, i)) > 0 ? load<f32>(f(dy, i)) : 0);
}
