/**
 * Finite-difference gradient checks for every module of the foundation. Tolerance 1e-2 on the
 * relative error: float32 rounding stays far below it, and each test also breaks the gradient on
 * purpose to show the check would catch a missing term.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchNorm1d, BatchNorm2d, Dropout, Linear, ReLU, Rng, Sequential, Sigmoid, Tanh, CrossEntropyLoss, Tensor, type Module } from '../src/index.js';
import { gradCheck, randomTensor } from './support/gradcheck.js';

const TOL = 1e-2;

/** `zeroGradient`: parameters whose true gradient is exactly 0 (a bias right before BN cancels out), where a relative error is meaningless; their analytic gradient must be ~0 instead. */
function assertGradients(module: Module, x: Tensor, prepare?: () => void, zeroGradient: string[] = []) {
  const r = gradCheck(module, x, { prepare });
  assert.ok(r.dx < TOL, `dx relative error ${r.dx}`);
  const params = new Map(module.namedParameters());
  for (const [name, err] of Object.entries(r.params)) {
    if (zeroGradient.includes(name)) {
      for (const g of params.get(name)!.grad.data) assert.ok(Math.abs(g) < 1e-5, `${name} should have a zero gradient, got ${g}`);
    } else assert.ok(err < TOL, `${name} relative error ${err}`);
  }
  return r;
}

test('Linear: dx, dWeight, dBias', () => {
  const rng = new Rng(1);
  const layer = new Linear(7, 5, { rng });
  assertGradients(layer, randomTensor([4, 7], rng));
});

test('Linear without bias', () => {
  const rng = new Rng(2);
  const layer = new Linear(3, 6, { rng, bias: false });
  const r = assertGradients(layer, randomTensor([5, 3], rng));
  assert.deepEqual(Object.keys(r.params), ['weight']);
});

for (const [name, make] of [['Sigmoid', () => new Sigmoid()], ['Tanh', () => new Tanh()], ['ReLU', () => new ReLU()]] as const) {
  test(`${name}: dx`, () => {
    const rng = new Rng(3);
    // Keep ReLU inputs away from 0, where it has no derivative.
    const x = randomTensor([4, 9], rng);
    if (name === 'ReLU') for (let i = 0; i < x.size; i++) if (Math.abs(x.data[i]) < 0.05) x.data[i] = 0.5;
    assertGradients(make(), x);
  });
}

test('BatchNorm1d training mode (B, C): closed-form backward through the batch statistics', () => {
  const rng = new Rng(4);
  const bn = new BatchNorm1d(6);
  for (let c = 0; c < 6; c++) {
    bn.weight!.value.data[c] = 0.5 + rng.uniform();
    bn.bias!.value.data[c] = rng.normal();
  }
  const x = randomTensor([8, 6], rng, 2, 1);
  assertGradients(bn, x, () => bn.resetRunningStats());
});

test('BatchNorm1d training mode (B, C, L) and without affine', () => {
  const rng = new Rng(5);
  assertGradients(new BatchNorm1d(3), randomTensor([4, 3, 5], rng, 3, -1));
  assertGradients(new BatchNorm1d(4, { affine: false }), randomTensor([6, 4], rng));
});

test('BatchNorm1d eval mode: statistics are constants', () => {
  const rng = new Rng(6);
  const bn = new BatchNorm1d(5);
  for (let i = 0; i < 3; i++) bn.forward(randomTensor([10, 5], rng, 2, 1));
  bn.eval();
  assertGradients(bn, randomTensor([3, 5], rng));
});

test('BatchNorm2d training mode (B, C, H, W)', () => {
  const rng = new Rng(7);
  const bn = new BatchNorm2d(3);
  for (let c = 0; c < 3; c++) bn.weight!.value.data[c] = 0.5 + rng.uniform();
  assertGradients(bn, randomTensor([2, 3, 3, 4], rng, 1.5, 0.5), () => bn.resetRunningStats());
});

test('the check catches a missing term: BN backward without the mean term fails', () => {
  const rng = new Rng(8);
  const bn = new BatchNorm1d(4);
  const x = randomTensor([6, 4], rng, 2, 1);
  // Treating the batch statistics as constants (the eval-mode formula) drops both terms through
  // mean and variance; the check must reject it.
  const kernels = (bn as unknown as { kernels: { batchNormBackward: unknown; batchNormBackwardFixedStats: unknown } }).kernels;
  const broken = { ...kernels, batchNormBackward: kernels.batchNormBackwardFixedStats };
  (bn as unknown as { kernels: unknown }).kernels = broken;
  const r = gradCheck(bn, x, { prepare: () => bn.resetRunningStats() });
  assert.ok(r.dx > 0.1, `a wrong backward must fail the check (relative error ${r.dx})`);
});

test('Dropout: the same mask in forward and backward', () => {
  const rng = new Rng(9);
  const dropout = new Dropout(0.3, { rng: new Rng(10) });
  assertGradients(dropout, randomTensor([5, 8], rng), () => dropout.rng.seed(10));
});

test('Sequential MLP with BN: gradients of every layer', () => {
  const rng = new Rng(11);
  const model = new Sequential(new Linear(6, 5, { rng }), new BatchNorm1d(5), new Sigmoid(), new Linear(5, 4, { rng }), new BatchNorm1d(4), new Tanh(), new Linear(4, 3, { rng }));
  const bns = model.layers.filter((l): l is BatchNorm1d => l instanceof BatchNorm1d);
  // The Linear biases in front of BN get a zero gradient: BN subtracts the batch mean, which removes them.
  const r = assertGradients(model, randomTensor([7, 6], rng), () => bns.forEach((b) => b.resetRunningStats()), ['0.bias', '3.bias']);
  assert.equal(Object.keys(r.params).length, 10);
});

test('CrossEntropyLoss: gradient of the mean loss', () => {
  const rng = new Rng(12);
  const logits = randomTensor([5, 4], rng, 2);
  const labels = [0, 3, 1, 1, 2];
  const ce = new CrossEntropyLoss();
  ce.forward(logits, labels);
  const analytic = ce.backward().data.slice();
  const h = 1e-2;
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < logits.size; i++) {
    const keep = logits.data[i];
    logits.data[i] = keep + h;
    const plus = ce.forward(logits, labels);
    logits.data[i] = keep - h;
    const minus = ce.forward(logits, labels);
    logits.data[i] = keep;
    const num = (plus - minus) / (2 * h);
    diff += (num - analytic[i]) ** 2;
    norm += (num + analytic[i]) ** 2;
  }
  assert.ok(Math.sqrt(diff / norm) < TOL);
});

test('CrossEntropyLoss is stable for huge logits and matches log-sum-exp', () => {
  const ce = new CrossEntropyLoss();
  const loss = ce.forward(Tensor.from([2, 3], [1000, 0, -1000, 1, 2, 3]), [1, 2]);
  const expected = (1000 + (Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)) - 3)) / 2;
  assert.ok(Math.abs(loss - expected) < 1e-4, `${loss} vs ${expected}`);
  assert.throws(() => ce.forward(Tensor.from([1, 3], [0, 0, 0]), [3]), /label 3 at index 0 is outside \[0, 2\]/);
});

test('inputGrad off: the network skips the input gradient and every parameter gradient is unchanged', async () => {
  const { Conv2d, Flatten, MaxPool2d } = await import('../src/index.js');
  const rng = new Rng(7);
  const build = () => {
    const r = new Rng(3);
    return new Sequential(
      new Conv2d({ inChannels: 1, outChannels: 3, kernelSize: 3, padding: 1, bias: false, rng: r }),
      new BatchNorm2d(3),
      new ReLU(),
      new MaxPool2d({ kernelSize: 2 }),
      new Flatten(),
      new Linear(3 * 3 * 3, 4, { rng: r }),
    );
  };
  const x = randomTensor([5, 1, 6, 6], rng);
  const dy = randomTensor([5, 4], rng);
  const full = build();
  const skipped = build();
  skipped.inputGrad = false;
  const dxFull = full.backward((full.forward(x), dy));
  const dxSkipped = skipped.backward((skipped.forward(x), dy));
  assert.deepEqual(dxFull.shape, [5, 1, 6, 6]);
  assert.equal(dxSkipped.size, 0, 'no input gradient is computed');
  const a = full.namedParameters();
  const b = skipped.namedParameters();
  for (let i = 0; i < a.length; i++) assert.deepEqual(b[i][1].grad.data, a[i][1].grad.data, a[i][0]);
  // Layers after the first one with parameters still pass gradients on.
  assert.equal(skipped.layers[0].inputGrad, false);
  assert.equal(skipped.layers[5].inputGrad, true);
});
