/**
 * fuseBatchNorm: folding eval-mode BN into the preceding Linear/Conv2d gives the same outputs (within
 * 1e-5) on MLPs and CNNs with trained-looking statistics, leaves the original model alone, and keeps
 * every BN layer it cannot fold.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BatchNorm1d,
  BatchNorm2d,
  BatchNormBase,
  Conv2d,
  Linear,
  ReLU,
  Rng,
  Sequential,
  Sigmoid,
  Tensor,
  buildSequential,
  fuseBatchNorm,
  type BatchNormOptions,
} from '../src/index.js';
import { cnnLayers } from '../src/models/presets.js';
import { randomTensor } from './support/gradcheck.js';
import { maxAbsDiff as maxDiff } from './support/assert.js';

/**
 * Give every BN layer statistics that look trained: a few train-mode passes over shifted, scaled
 * inputs (so t is small and bias correction matters), then random gamma and beta.
 */
function trainStatistics(model: Sequential, inputShape: number[], rng: Rng, passes = 3): void {
  model.train();
  for (let i = 0; i < passes; i++) model.forward(randomTensor(inputShape, rng, 1 + rng.uniform(), rng.normal()));
  for (const layer of model.modules()) {
    if (!(layer instanceof BatchNormBase) || !layer.weight || !layer.bias) continue;
    for (let c = 0; c < layer.numFeatures; c++) {
      layer.weight.value.data[c] = 0.5 + rng.uniform();
      layer.bias.value.data[c] = 0.5 * rng.normal();
    }
  }
  model.eval();
}


function countBatchNorm(model: Sequential): number {
  return [...model.modules()].filter((m) => m instanceof BatchNormBase).length;
}

function mlp(rng: Rng, bn: BatchNormOptions = {}): Sequential {
  return new Sequential(
    new Linear(12, 9, { rng }),
    new BatchNorm1d(9, bn),
    new ReLU(),
    new Linear(9, 7, { rng, bias: false }),
    new BatchNorm1d(7, bn),
    new Sigmoid(),
    new Linear(7, 4, { rng }),
  );
}

test('MLP: fused = unfused within 1e-5, BN layers gone, every Linear now with a bias', () => {
  const rng = new Rng(1);
  const model = mlp(rng);
  trainStatistics(model, [32, 12], rng);
  const fused = fuseBatchNorm(model);
  assert.deepEqual(fused.layers.map((l) => l.typeName), ['Linear', 'ReLU', 'Linear', 'Sigmoid', 'Linear']);
  assert.ok(fused.layers.filter((l): l is Linear => l instanceof Linear).every((l) => l.bias !== null));
  assert.equal(fused.training, false);
  const x = randomTensor([16, 12], rng, 1.5, 0.3);
  const expected = model.forward(x).clone();
  const diff = maxAbsDiff(fused.forward(x), expected);
  assert.ok(diff < 1e-5, `max difference ${diff}`);
  // Unfolding would be wrong without the bias correction: t = 3 here, so it changes the result a lot.
  assert.ok((model.layers[1] as BatchNorm1d).biasCorrectionFactor() < 0.5);
});

test('CNN (the mnist-cnn layout, narrower): fused = unfused within 1e-5', () => {
  const rng = new Rng(2);
  const model = buildSequential(cnnLayers([1, 12, 12], [4, 6], 5, true), { rng, init: { name: 'kaiming-normal', nonlinearity: 'relu' } });
  trainStatistics(model, [8, 1, 12, 12], rng);
  const fused = fuseBatchNorm(model);
  assert.deepEqual(fused.layers.map((l) => l.typeName), ['Conv2d', 'ReLU', 'MaxPool2d', 'Conv2d', 'ReLU', 'MaxPool2d', 'Flatten', 'Linear']);
  const convs = fused.layers.filter((l): l is Conv2d => l instanceof Conv2d);
  assert.ok(convs.every((c) => c.bias !== null), 'the folded shift becomes the conv bias');
  assert.deepEqual(convs.map((c) => c.describe()), ['Conv2d(1, 4, kernel=3, padding=1)', 'Conv2d(4, 6, kernel=3, padding=1)']);
  const x = randomTensor([5, 1, 12, 12], rng, 0.5, 0.5);
  const expected = model.forward(x).clone();
  const diff = maxAbsDiff(fused.forward(x), expected);
  assert.ok(diff < 1e-5, `max difference ${diff}`);
});

test('Conv2d with stride, padding and bias, then BN2d: fused = unfused', () => {
  const rng = new Rng(3);
  const model = new Sequential(new Conv2d({ inChannels: 3, outChannels: 5, kernelSize: [3, 2], stride: 2, padding: 1, rng }), new BatchNorm2d(5));
  trainStatistics(model, [6, 3, 7, 6], rng, 4);
  const fused = fuseBatchNorm(model);
  assert.equal(fused.layers.length, 1);
  assert.equal(fused.layers[0].describe(), 'Conv2d(3, 5, kernel=3x2, stride=2, padding=1)');
  const x = randomTensor([2, 3, 7, 6], rng);
  const diff = maxAbsDiff(fused.forward(x), model.forward(x).clone());
  assert.ok(diff < 1e-5, `max difference ${diff}`);
});

test('every running-statistics policy folds exactly: PyTorch (no bias correction), cumulative average, no affine', () => {
  for (const bn of [{ biasCorrection: false }, { momentum: null }, { affine: false }, { momentum: 0.3, eps: 1e-3 }] satisfies BatchNormOptions[]) {
    const rng = new Rng(4);
    const model = mlp(rng, bn);
    trainStatistics(model, [20, 12], rng, 5);
    const x = randomTensor([10, 12], rng);
    const diff = maxAbsDiff(fuseBatchNorm(model).forward(x), model.forward(x).clone());
    assert.ok(diff < 1e-5, `${JSON.stringify(bn)}: max difference ${diff}`);
  }
});

test('BN that does not directly follow a Linear/Conv2d, or uses batch statistics in eval, is kept', () => {
  const rng = new Rng(5);
  const model = new Sequential(
    new Linear(6, 5, { rng }),
    new ReLU(),
    new BatchNorm1d(5), // after the activation: nothing to fold into
    new Linear(5, 4, { rng }),
    new BatchNorm1d(4, { trackRunningStats: false }), // batch statistics even in eval mode
    new Linear(4, 3, { rng }),
    new BatchNorm1d(3, { statistics: 'batch-frozen' }),
  );
  trainStatistics(model, [12, 6], rng);
  const fused = fuseBatchNorm(model);
  assert.equal(countBatchNorm(fused), 3);
  assert.equal(fused.layers.length, model.layers.length);
  const x = randomTensor([8, 6], rng);
  const diff = maxAbsDiff(fused.forward(x), model.forward(x).clone());
  assert.ok(diff < 1e-5, `max difference ${diff}`);
});

test('nested Sequential models are fused inside; the original model is left untouched', () => {
  const rng = new Rng(6);
  const model = new Sequential(new Sequential(new Linear(5, 4, { rng }), new BatchNorm1d(4)), new ReLU(), new Linear(4, 2, { rng }));
  trainStatistics(model, [10, 5], rng);
  const before = new Map([...model.stateDict()].map(([k, v]) => [k, v.toArray()]));
  const fused = fuseBatchNorm(model);
  assert.equal(countBatchNorm(fused), 0);
  assert.equal(countBatchNorm(model), 1);
  for (const [k, v] of model.stateDict()) assert.deepEqual(v.toArray(), before.get(k), `${k} changed`);
  const x = randomTensor([3, 5], rng);
  const expected = model.forward(x).clone();
  assert.ok(maxAbsDiff(fused.forward(x), expected) < 1e-5);
  // Independent copies: changing the original afterwards does not change the fused model.
  (model.layers[2] as Linear).weight.value.data.fill(0);
  assert.ok(maxAbsDiff(fused.forward(x), expected) < 1e-5);
});

test('fuseBatchNorm rejects what is not a Sequential', () => {
  assert.throws(() => fuseBatchNorm(new Linear(2, 2) as unknown as Sequential), /fuseBatchNorm: expected a Sequential model, got Linear\(2, 2\)/);
});


function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual([...a.shape], [...b.shape]);
  return maxDiff(a.data, b.data);
}
