/**
 * Optimizers step for step against PyTorch's update rules written out by hand, and the schedules.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Adam, SGD, Tensor, cosineSchedule, makeParameter, referenceKernels, stepSchedule, type Parameter } from '../src/index.js';

function param(values: number[]): Parameter {
  return makeParameter(Tensor.from([values.length], values), referenceKernels);
}

const grads = [[0.5, -1], [0.25, 2], [-1, 0.5]];

test('SGD with momentum, dampening 0, weight decay: torch.optim.SGD', () => {
  const p = param([1, -2]);
  const sgd = new SGD([p], { lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
  const ref = [1, -2];
  const buf = [0, 0];
  grads.forEach((g, t) => {
    p.grad.data.set(g);
    sgd.step();
    for (let i = 0; i < 2; i++) {
      const d = g[i] + 0.01 * ref[i];
      buf[i] = t === 0 ? d : 0.9 * buf[i] + d;
      ref[i] -= 0.1 * buf[i];
      assert.ok(Math.abs(p.value.data[i] - ref[i]) < 1e-6, `step ${t}`);
    }
  });
});

test('SGD Nesterov', () => {
  const p = param([0.3, 0.7]);
  const sgd = new SGD([p], { lr: 0.05, momentum: 0.8, nesterov: true });
  const ref = [0.3, 0.7];
  const buf = [0, 0];
  grads.forEach((g, t) => {
    p.grad.data.set(g);
    sgd.step();
    for (let i = 0; i < 2; i++) {
      buf[i] = t === 0 ? g[i] : 0.8 * buf[i] + g[i];
      ref[i] -= 0.05 * (g[i] + 0.8 * buf[i]);
      assert.ok(Math.abs(p.value.data[i] - ref[i]) < 1e-6);
    }
  });
  assert.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /Nesterov momentum requires momentum > 0/);
  assert.throws(() => new SGD([p], { lr: -1 }), /Learning rate must be a non-negative/);
});

test('Adam with bias-corrected moments: torch.optim.Adam', () => {
  const p = param([1, -1]);
  const adam = new Adam([p], { lr: 0.01 });
  const ref = [1, -1];
  const m = [0, 0];
  const v = [0, 0];
  grads.forEach((g, t) => {
    p.grad.data.set(g);
    adam.step();
    for (let i = 0; i < 2; i++) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      const mh = m[i] / (1 - 0.9 ** (t + 1));
      const vh = v[i] / (1 - 0.999 ** (t + 1));
      ref[i] -= (0.01 * mh) / (Math.sqrt(vh) + 1e-8);
      assert.ok(Math.abs(p.value.data[i] - ref[i]) < 1e-6);
    }
  });
});

test('frozen parameters are not updated', () => {
  const p = param([1, 2]);
  p.trainable = false;
  p.grad.data.set([1, 1]);
  new SGD([p], { lr: 1 }).step();
  assert.deepEqual(Array.from(p.value.data), [1, 2]);
});

test('optimizer state round-trips', () => {
  const p = param([1, 2]);
  const a = new SGD([p], { lr: 0.1, momentum: 0.9 });
  p.grad.data.set([1, -1]);
  a.step();
  const q = param([1, 2]);
  const b = new SGD([q], { lr: 0.1, momentum: 0.9 });
  b.loadStateDict(JSON.parse(JSON.stringify(a.stateDict())));
  assert.deepEqual(b.stateDict(), a.stateDict());
  assert.throws(() => new Adam([q]).loadStateDict(a.stateDict()), /Optimizer state is for SGD, not Adam/);
});

test('learning-rate schedules', () => {
  const s = stepSchedule(10, 0.5);
  assert.equal(s.rate(1, 9), 1);
  assert.equal(s.rate(1, 10), 0.5);
  assert.equal(s.rate(1, 25), 0.25);
  const c = cosineSchedule(100, 0.1);
  assert.equal(c.rate(1, 0), 1);
  assert.ok(Math.abs(c.rate(1, 50) - 0.55) < 1e-12);
  assert.ok(Math.abs(c.rate(1, 100) - 0.1) < 1e-12);
  assert.throws(() => stepSchedule(0), /stepSize must be a positive integer/);
});
