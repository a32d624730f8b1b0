/**
 * Finite-difference gradient checks, for the `backward` of a layer of your own (or of bnlab's). The loss
 * is L = Σ y·r for a fixed random r, so dL/dy = r and every output value matters. Central differences
 * (L(x+h) - L(x-h)) / 2h are compared with the analytic gradient by the relative error
 * ‖num - ana‖ / ‖num + ana‖: float32 rounding keeps it near 1e-3, while a missing term in a backward
 * formula makes it O(0.1..1), so below 1e-2 is a pass. Browser-safe.
 */
import { Rng } from '../tensor/rng.js';
import { Tensor } from '../tensor/tensor.js';
import type { Module } from './module.js';

/** Relative errors of the input gradient and of each parameter's gradient (by `namedParameters()` name). */
export interface GradCheckResult {
  dx: number;
  params: Record<string, number>;
}

export interface GradCheckOptions {
  /** Step of the central difference (default 1e-2: float32 needs a large one). */
  h?: number;
  /** Seed of the random output weights r (default 123). */
  seed?: number;
  /** Runs before every forward, e.g. to reset running statistics or a dropout seed, so that every evaluation sees the same function. */
  prepare?: () => void;
}

function relativeError(num: Float64Array, ana: ArrayLike<number>): number {
  let diff = 0;
  let sum = 0;
  for (let i = 0; i < num.length; i++) {
    diff += (num[i] - ana[i]) ** 2;
    sum += (num[i] + ana[i]) ** 2;
  }
  return sum === 0 ? 0 : Math.sqrt(diff) / Math.sqrt(sum);
}

/**
 * Check dx and every parameter gradient of `module` at input `x` (a batch, e.g. `[4, features]`). The
 * module's parameter gradients are overwritten; `x` is restored.
 *
 * ```ts
 * const r = gradCheck(new Swish(), Tensor.from([4, 3], values));
 * if (r.dx > 1e-2) throw new Error(`Swish.backward is wrong: relative error ${r.dx}`);
 * ```
 */
export function gradCheck(module: Module, x: Tensor, options: GradCheckOptions = {}): GradCheckResult {
  const h = options.h ?? 1e-2;
  const rng = new Rng(options.seed ?? 123);
  const prepare = options.prepare ?? (() => {});
  prepare();
  const y0 = module.forward(x);
  const r = new Tensor([...y0.shape]);
  for (let i = 0; i < r.size; i++) r.data[i] = rng.normal();
  const loss = () => {
    prepare();
    const y = module.forward(x);
    let s = 0;
    for (let i = 0; i < y.size; i++) s += y.data[i] * r.data[i];
    return s;
  };
  // Analytic gradients; the input gradient is needed even if a container turned it off.
  const inputGrad = module.inputGrad;
  module.inputGrad = true;
  module.zeroGrad();
  prepare();
  module.forward(x);
  let dx: Float32Array;
  try {
    dx = module.backward(r).data.slice();
  } finally {
    module.inputGrad = inputGrad;
  }
  const grads = module.namedParameters().map(([name, p]) => [name, p.grad.data.slice()] as const);

  const numeric = (values: Float32Array): Float64Array => {
    const out = new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const keep = values[i];
      values[i] = keep + h;
      const plus = loss();
      values[i] = keep - h;
      const minus = loss();
      values[i] = keep;
      out[i] = (plus - minus) / (2 * h);
    }
    return out;
  };
  const result: GradCheckResult = { dx: relativeError(numeric(x.data), dx), params: {} };
  for (const [name, g] of grads) {
    const p = module.namedParameters().find(([n]) => n === name)![1];
    result.params[name] = relativeError(numeric(p.value.data), g);
  }
  return result;
}
