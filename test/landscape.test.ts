/**
 * The smoothness measurements (src/experiments/landscape.ts) on objectives whose answers are known: a
 * quadratic ½·Σ a_i·w_i², whose gradient is β-Lipschitz with β = max a_i, and small two-layer products
 * where the internal covariate shift is zero (separable) or computed by hand.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gradientShift, internalCovariateShift, probeLandscape, type Objective } from '../src/experiments/landscape.js';

function quadratic(a: number[], w: number[]): Objective {
  const values = [Float32Array.from(w)];
  return {
    values,
    lossAndGradient() {
      const x = values[0];
      let loss = 0;
      const g = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) {
        loss += 0.5 * a[i] * x[i] * x[i];
        g[i] = a[i] * x[i];
      }
      return { loss, gradient: [g] };
    },
  };
}

test('on an isotropic quadratic the effective β-smoothness is exactly its curvature, and the losses along the gradient are the closed form', () => {
  const beta = 3;
  const w = [1, -2, 0.5];
  const q = quadratic([beta, beta, beta], w);
  const p = probeLandscape(q, [0.1, 0.05, 0.2]);
  assert.deepEqual(p.stepSizes, [0.05, 0.1, 0.2]);
  assert.ok(Math.abs(p.betaSmoothness - beta) < 1e-5, `β ${p.betaSmoothness}`);
  const l0 = 0.5 * beta * w.reduce((s, x) => s + x * x, 0);
  assert.ok(Math.abs(p.loss - l0) < 1e-5);
  p.stepSizes.forEach((eta, k) => {
    // w − η·β·w = (1 − ηβ)·w, so L = (1 − ηβ)²·L(w) and the gradient changes by η·β·‖β·w‖.
    assert.ok(Math.abs(p.losses[k] - (1 - eta * beta) ** 2 * l0) < 1e-4, `η ${eta}: ${p.losses[k]}`);
    assert.ok(Math.abs(p.gradientChanges[k] - eta * beta * p.gradientNorm) < 1e-4);
  });
  assert.ok(Math.abs(p.lossRange - (l0 - (1 - 0.2 * beta) ** 2 * l0)) < 1e-4);
  assert.equal(p.gradientPredictiveness, Math.max(...p.gradientChanges));
  assert.deepEqual(Array.from(q.values[0]), Array.from(Float32Array.from(w)), 'parameters restored');
});

test('on an ill-conditioned quadratic β-smoothness is ‖A·g‖/‖g‖, between the smallest and the largest curvature; a sharper one measures sharper', () => {
  const a = [100, 1];
  const w = [0.01, 1];
  const p = probeLandscape(quadratic(a, w), [0.001, 0.01]);
  const g = [a[0] * w[0], a[1] * w[1]];
  const expected = Math.hypot(a[0] * g[0], a[1] * g[1]) / Math.hypot(...g);
  assert.ok(Math.abs(p.betaSmoothness - expected) / expected < 1e-4, `${p.betaSmoothness} vs ${expected}`);
  assert.ok(p.betaSmoothness > 1 && p.betaSmoothness <= 100);
  const flat = probeLandscape(quadratic([1, 1], w), [0.001, 0.01]);
  assert.ok(flat.betaSmoothness < p.betaSmoothness && flat.gradientPredictiveness < p.gradientPredictiveness && flat.lossRange < p.lossRange);
});

test('internal covariate shift: zero for layers that do not interact, the hand-computed value for a product', () => {
  // Separable: L = ½w1² + ½w2²; updating w1 cannot change w2's gradient.
  const sep = quadratic([1, 1], [0.7, -0.4]);
  const [s] = internalCovariateShift({ values: [sep.values[0].subarray(0, 1), sep.values[0].subarray(1, 2)], lossAndGradient: () => { const r = sep.lossAndGradient(); return { loss: r.loss, gradient: [r.gradient[0].subarray(0, 1), r.gradient[0].subarray(1, 2)] }; } }, [[0], [1]], [0, 1], 0.5, [1]);
  assert.equal(s.l2, 0);
  assert.equal(s.cosine, 1);
  // A product: L = ½(w1·w2 − 1)². ∂L/∂w2 = (w1·w2 − 1)·w1; w1 steps by −lr·(w1·w2 − 1)·w2 first.
  const values = [Float32Array.of(2), Float32Array.of(1.5)];
  const product: Objective = {
    values,
    lossAndGradient() {
      const [w1, w2] = [values[0][0], values[1][0]];
      const r = w1 * w2 - 1;
      return { loss: 0.5 * r * r, gradient: [Float32Array.of(r * w2), Float32Array.of(r * w1)] };
    },
  };
  const lr = 0.1;
  const [w1, w2] = [2, 1.5];
  const g2 = (w1 * w2 - 1) * w1;
  const w1b = w1 - lr * (w1 * w2 - 1) * w2;
  const g2b = (w1b * w2 - 1) * w1b;
  const [shift] = internalCovariateShift(product, [[0], [1]], [0, 1], lr, [1]);
  assert.ok(Math.abs(shift.l2 - Math.abs(g2 - g2b)) < 1e-5, `${shift.l2} vs ${Math.abs(g2 - g2b)}`);
  assert.equal(shift.cosine, Math.sign(g2 * g2b));
  assert.deepEqual([values[0][0], values[1][0]], [2, 1.5], 'parameters restored');
  assert.throws(() => internalCovariateShift(product, [[0], [1]], [0, 1], lr, [0]), /layer 0 has no layer before it/);
});

test('gradient shift: cosine and relative size', () => {
  const s = gradientShift([Float32Array.of(3, 4)], [Float32Array.of(-3, -4)]);
  assert.deepEqual([s.l2, s.relative, s.cosine], [10, 2, -1]);
  assert.throws(() => gradientShift([Float32Array.of(1)], [Float32Array.of(1, 2)]), /array 0 has 1 values against 2/);
});
