/**
 * Finite-difference gradient checks. The loss is L = Σ y·r for a fixed random r, so dL/dy = r and every
 * output value matters. Central differences (L(x+h) - L(x-h)) / 2h are compared with the analytic
 * gradient by the relative error ‖num - ana‖ / ‖num + ana‖: float32 rounding keeps it near 1e-3, while
 * a missing term in a backward formula makes it O(0.1..1).
 */
import { Rng, Tensor, type Module } from '../../src/index.js';

export interface GradCheckResult {
  dx: number;
  params: Record<string, number>;
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

export function randomTensor(shape: number[], rng: Rng, scale = 1, shift = 0): Tensor {
  const t = new Tensor(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = shift + scale * rng.normal();
  return t;
}

/**
 * Check dx and every parameter gradient of `module` at input `x`. `prepare` runs before every forward
 * (e.g. to reset running statistics or a dropout seed so that all evaluations see the same function).
 */
export function gradCheck(module: Module, x: Tensor, options: { h?: number; seed?: number; prepare?: () => void } = {}): GradCheckResult {
  const h = options.h ?? 1e-2;
  const rng = new Rng(options.seed ?? 123);
  const prepare = options.prepare ?? (() => {});
  prepare();
  const y0 = module.forward(x);
  const r = randomTensor([...y0.shape], rng);
  const loss = () => {
    prepare();
    const y = module.forward(x);
    let s = 0;
    for (let i = 0; i < y.size; i++) s += y.data[i] * r.data[i];
    return s;
  };
  // Analytic gradients.
  module.zeroGrad();
  prepare();
  module.forward(x);
  const dx = module.backward(r).data.slice();
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
