/**
 * The reference kernels against direct formulas, on odd sizes. Fast backends are tested against
 * the reference (see the backend's own test file), so these pin the ground truth.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, referenceKernels as k } from '../src/index.js';

function random(n: number, rng: Rng): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

function naiveMatmul(a: Float32Array, b: Float32Array, m: number, kk: number, n: number, transA: boolean, transB: boolean): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < kk; p++) s += (transA ? a[p * m + i] : a[i * kk + p]) * (transB ? b[j * kk + p] : b[p * n + j]);
      out[i * n + j] = s;
    }
  return out;
}

test('matmul in all four transpose forms, with and without accumulate, on odd sizes', () => {
  const rng = new Rng(1);
  for (const [m, kk, n] of [[1, 1, 1], [3, 5, 7], [13, 1, 9], [17, 33, 6], [60, 78, 10]]) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = random(m * kk, rng);
        const b = random(kk * n, rng);
        const expected = naiveMatmul(a, b, m, kk, n, transA, transB);
        const out = random(m * n, rng);
        const before = out.slice();
        k.matmul(a, b, out, m, kk, n, { transA, transB, accumulate: true });
        for (let i = 0; i < m * n; i++) assert.ok(Math.abs(out[i] - before[i] - expected[i]) < 1e-4, `accumulate ${m}x${kk}x${n} ${transA} ${transB}`);
        k.matmul(a, b, out, m, kk, n, { transA, transB });
        for (let i = 0; i < m * n; i++) assert.ok(Math.abs(out[i] - expected[i]) < 1e-4, `${m}x${kk}x${n} transA=${transA} transB=${transB}`);
      }
    }
  }
});

test('reductions: sumRows and sumAxis over each axis', () => {
  const rng = new Rng(2);
  const [o, a, i] = [3, 4, 5];
  const x = random(o * a * i, rng);
  const out = new Float32Array(o * i);
  k.sumAxis(x, out, o, a, i);
  for (let p = 0; p < o; p++)
    for (let q = 0; q < i; q++) {
      let s = 0;
      for (let r = 0; r < a; r++) s += x[(p * a + r) * i + q];
      assert.ok(Math.abs(out[p * i + q] - s) < 1e-5);
    }
  const cols = new Float32Array(a * i);
  k.sumRows(x, cols, o, a * i, false);
  const viaAxis = new Float32Array(a * i);
  k.sumAxis(x, viaAxis, 1, o, a * i);
  for (let c = 0; c < a * i; c++) assert.ok(Math.abs(cols[c] - viaAxis[c]) < 1e-5);
});

test('softmax rows sum to 1 and survive huge logits', () => {
  const x = Float32Array.from([1000, 1001, 1002, -5, 0, 5]);
  const out = new Float32Array(6);
  k.softmax(x, out, 2, 3);
  for (let r = 0; r < 2; r++) assert.ok(Math.abs(out[r * 3] + out[r * 3 + 1] + out[r * 3 + 2] - 1) < 1e-6);
  assert.ok(out.every((v) => Number.isFinite(v)));
  assert.ok(Math.abs(out[2] - Math.exp(2) / (1 + Math.exp(1) + Math.exp(2))) < 1e-6);
});

test('element-wise ops and activations', () => {
  const a = Float32Array.from([-2, -0.5, 0, 0.5, 2]);
  const b = Float32Array.from([1, 2, 3, 4, 5]);
  const out = new Float32Array(5);
  k.add(a, b, out);
  assert.deepEqual(Array.from(out), [-1, 1.5, 3, 4.5, 7]);
  k.mul(a, b, out);
  assert.deepEqual(Array.from(out), [-2, -1, 0, 2, 10]);
  k.scale(a, 2, out);
  assert.deepEqual(Array.from(out), [-4, -1, 0, 1, 4]);
  k.axpy(0.5, b, out);
  assert.deepEqual(Array.from(out), [-3.5, 0, 1.5, 3, 6.5]);
  k.relu(a, out);
  assert.deepEqual(Array.from(out), [0, 0, 0, 0.5, 2]);
  k.sigmoid(a, out);
  assert.ok(Math.abs(out[4] - 1 / (1 + Math.exp(-2))) < 1e-7);
  k.tanh(a, out);
  assert.ok(Math.abs(out[0] - Math.tanh(-2)) < 1e-7);
});

test("batch norm's split backward (Reduce, then Input) gives the fused backward's sums and dx", () => {
  const rng = new Rng(3);
  for (const [batch, channels, inner] of [[1, 1, 1], [2, 3, 1], [7, 5, 1], [4, 3, 9], [1, 2, 33], [40, 6, 1]]) {
    const size = batch * channels * inner;
    const dy = random(size, rng), xhat = random(size, rng);
    const invStd = Float32Array.from({ length: channels }, () => 0.5 + rng.uniform());
    const gamma = random(channels, rng);
    const dx = new Float32Array(size), dGamma = new Float32Array(channels), dBeta = new Float32Array(channels);
    k.batchNormBackward(dy, xhat, invStd, gamma, dx, dGamma, dBeta, batch, channels, inner);
    const sumDy = new Float32Array(channels), sumDyXhat = new Float32Array(channels), dx2 = new Float32Array(size);
    k.batchNormBackwardReduce(dy, xhat, sumDy, sumDyXhat, batch, channels, inner);
    k.batchNormBackwardInput(dy, xhat, invStd, gamma, sumDy, sumDyXhat, batch * inner, dx2, batch, channels, inner);
    const what = `[${batch}, ${channels}, ${inner}]`;
    assert.deepEqual(sumDy, dBeta, `Σdy ${what}`);
    assert.deepEqual(sumDyXhat, dGamma, `Σdy·xhat ${what}`);
    // Input gets the sums rounded to float32, the fused kernel keeps them in float64: dx agrees to float32 rounding of its terms.
    for (let i = 0; i < size; i++) {
      const c = Math.floor(i / inner) % channels;
      const terms = (Math.abs(dy[i]) + (Math.abs(sumDy[c]) + Math.abs(xhat[i] * sumDyXhat[c])) / (batch * inner)) * invStd[c] * Math.abs(gamma[c]);
      assert.ok(Math.abs(dx2[i] - dx[i]) <= 1e-6 * terms, `dx ${what} [${i}]: split ${dx2[i]}, fused ${dx[i]}`);
    }
  }
});
