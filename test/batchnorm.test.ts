/**
 * Batch-norm semantics pinned down: running statistics with and without bias correction, the
 * cumulative average, train vs eval, and the mistakes users make most (batch of 1, never-updated
 * statistics, Keras's momentum, state dicts without num_batches_tracked).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchNorm1d, Linear, Rng, Sequential, Sigmoid, Tensor, argmax, buildPreset, momentumFromKeras, resetWarnings, setWarningHandler } from '../src/index.js';
import { randomTensor } from './support/gradcheck.js';
import { captureWarnings } from './support/assert.js';

function channelStats(x: Tensor, c: number, channels: number) {
  const rows = x.shape[0];
  let mean = 0;
  for (let r = 0; r < rows; r++) mean += x.data[r * channels + c];
  mean /= rows;
  let ss = 0;
  for (let r = 0; r < rows; r++) ss += (x.data[r * channels + c] - mean) ** 2;
  return { mean, biased: ss / rows, unbiased: ss / (rows - 1) };
}


test('training normalizes with the batch mean and biased variance', () => {
  const rng = new Rng(1);
  const bn = new BatchNorm1d(3);
  const x = randomTensor([10, 3], rng, 3, 2);
  const y = bn.forward(x);
  for (let c = 0; c < 3; c++) {
    const s = channelStats(x, c, 3);
    for (let r = 0; r < 10; r++) {
      const expected = (x.data[r * 3 + c] - s.mean) / Math.sqrt(s.biased + 1e-5);
      assert.ok(Math.abs(y.data[r * 3 + c] - expected) < 1e-5);
    }
  }
});

test('bias correction: after one step eval uses exactly the batch mean and unbiased variance', () => {
  const rng = new Rng(2);
  const bn = new BatchNorm1d(4, { momentum: 0.1 });
  assert.equal(bn.runningVar!.data[0], 0, 'bias-corrected averages start at 0');
  const x = randomTensor([16, 4], rng, 2, 5);
  bn.forward(x);
  assert.equal(bn.numBatchesTracked, 1);
  const { mean, variance } = bn.inferenceStatistics();
  for (let c = 0; c < 4; c++) {
    const s = channelStats(x, c, 4);
    assert.ok(Math.abs(bn.runningMean!.data[c] - 0.1 * s.mean) < 1e-5, 'the stored EWA is the raw, biased one');
    assert.ok(Math.abs(mean[c] - s.mean) < 1e-4, `corrected mean ${mean[c]} vs ${s.mean}`);
    assert.ok(Math.abs(variance[c] - s.unbiased) < 1e-4);
  }
});

test('bias correction after t steps divides the EWA by 1 - (1 - m)^t', () => {
  const rng = new Rng(3);
  const m = 0.2;
  const bn = new BatchNorm1d(2, { momentum: m });
  let ewa = 0;
  for (let t = 1; t <= 5; t++) {
    const x = randomTensor([8, 2], rng, 1, t);
    bn.forward(x);
    ewa = (1 - m) * ewa + m * channelStats(x, 0, 2).mean;
  }
  const corrected = ewa / (1 - (1 - m) ** 5);
  assert.ok(Math.abs(bn.inferenceStatistics().mean[0] - corrected) < 1e-4);
  assert.ok(Math.abs(bn.biasCorrectionFactor() - (1 - 0.8 ** 5)) < 1e-12);
});

test('biasCorrection: false is exactly PyTorch: var starts at 1, no correction', () => {
  const rng = new Rng(4);
  const bn = new BatchNorm1d(3, { biasCorrection: false });
  assert.deepEqual(Array.from(bn.runningVar!.data), [1, 1, 1]);
  const x = randomTensor([6, 3], rng, 1, 3);
  bn.forward(x);
  const s = channelStats(x, 1, 3);
  assert.ok(Math.abs(bn.inferenceStatistics().mean[1] - 0.1 * s.mean) < 1e-5);
  assert.ok(Math.abs(bn.inferenceStatistics().variance[1] - (0.9 + 0.1 * s.unbiased)) < 1e-5);
});

test('momentum null is the cumulative average of the batch statistics', () => {
  const rng = new Rng(5);
  const bn = new BatchNorm1d(1, { momentum: null });
  let sum = 0;
  for (let t = 0; t < 4; t++) {
    const x = randomTensor([5, 1], rng, 1, t * 2);
    bn.forward(x);
    sum += channelStats(x, 0, 1).mean;
  }
  assert.ok(Math.abs(bn.inferenceStatistics().mean[0] - sum / 4) < 1e-5);
});

test('eval mode uses running statistics: one example at a time equals the batch', () => {
  const rng = new Rng(6);
  const model = buildPreset('ioffe-mlp', { bn: true, seed: 1 });
  for (let i = 0; i < 3; i++) model.forward(randomTensor([32, 784], rng, 0.3, 0.5));
  model.eval();
  const x = randomTensor([5, 784], rng, 0.3, 0.5);
  const batched = model.forward(x).clone();
  for (let i = 0; i < 5; i++) {
    const one = model.forward(new Tensor([1, 784], x.data.slice(i * 784, (i + 1) * 784)));
    for (let k = 0; k < 10; k++) assert.ok(Math.abs(one.data[k] - batched.data[i * 10 + k]) < 1e-5);
  }
});

test('training with one value per channel throws an error naming the layer, the shape and the fixes', () => {
  const model = new Sequential(new Linear(4, 3), new BatchNorm1d(3), new Sigmoid());
  assert.throws(() => model.forward(new Tensor([1, 4])), (e: Error) => {
    assert.match(e.message, /BatchNorm1d\(3.*\(layer "1"\)/);
    assert.match(e.message, /\[1, 3\]/);
    assert.match(e.message, /drop the short last batch/);
    assert.match(e.message, /model\.eval\(\)/);
    assert.match(e.message, /batch of at least 2/);
    return true;
  });
  model.eval();
  assert.doesNotThrow(() => model.forward(new Tensor([1, 4])));
});

test('evaluating never-updated running statistics warns once per layer', () => {
  const w = captureWarnings();
  try {
    const bn = new BatchNorm1d(2).eval();
    bn.forward(new Tensor([3, 2]));
    bn.forward(new Tensor([3, 2]));
    assert.equal(w.messages.length, 1);
    assert.match(w.messages[0], /never updated/);
    const trained = new BatchNorm1d(2);
    trained.forward(Tensor.from([2, 2], [1, 2, 3, 4]));
    trained.eval().forward(new Tensor([1, 2]));
    assert.equal(w.messages.length, 1, 'no warning once statistics exist');
  } finally {
    w.restore();
  }
});

test('momentum: PyTorch convention, Keras values warned about, impossible values rejected', () => {
  const w = captureWarnings();
  try {
    new BatchNorm1d(2, { momentum: 0.99 });
    assert.equal(w.messages.length, 1);
    assert.match(w.messages[0], /Keras's momentum=0\.99, pass 0\.01/);
  } finally {
    w.restore();
  }
  assert.ok(Math.abs(momentumFromKeras(0.99) - 0.01) < 1e-12);
  assert.throws(() => new BatchNorm1d(2, { momentum: 1.5 }), /momentum must be in \(0, 1\] or null/);
  assert.throws(() => new BatchNorm1d(2, { momentum: 0 }), /momentum must be in/);
  assert.throws(() => new BatchNorm1d(0), /numFeatures must be a positive integer/);
  assert.throws(() => new BatchNorm1d(2, { eps: -1 }), /eps must be a positive number/);
});

test('trackRunningStats: false has no buffers and normalizes with batch statistics in eval', () => {
  const bn = new BatchNorm1d(2, { trackRunningStats: false }).eval();
  assert.equal(bn.stateDict().size, 2);
  const y = bn.forward(Tensor.from([2, 2], [1, 10, 3, 30]));
  assert.ok(Math.abs(y.data[0] + 1) < 1e-3 && Math.abs(y.data[2] - 1) < 1e-3);
  // One example in eval mode: the advice is not "call model.eval()" (it is in eval mode, with nothing to use).
  assert.throws(() => bn.forward(new Tensor([1, 2])), (e: Error) => {
    assert.match(e.message, /trackRunningStats: false, so it has no running statistics/);
    assert.match(e.message, /at least 2 examples at a time, or build it with trackRunningStats: true/);
    assert.doesNotMatch(e.message, /call model\.eval\(\)/);
    return true;
  });
});

test('input shape errors give the expected and the actual shape', () => {
  const bn = new BatchNorm1d(100);
  assert.throws(() => bn.forward(new Tensor([60, 50])), /expected 100 channels.*got input shape \[60, 50\]/);
  assert.throws(() => bn.forward(new Tensor([2, 100, 2, 2])), /expected 2D \(B, C\) or 3D \(B, C, L\) input, got 4D/);
  const linear = new Linear(784, 100);
  assert.throws(() => linear.forward(new Tensor([60, 28, 28])), /Linear\(784, 100\): expected input \[B, 784\], got \[60, 28, 28\]/);
  assert.throws(() => linear.forward(new Tensor([60, 100])), /expected input \[B, 784\], got \[60, 100\]/);
});

test('NaN in the input is rejected with its position', () => {
  const model = buildPreset('ioffe-mlp', { bn: true });
  const x = new Tensor([3, 784]);
  x.data[784 + 5] = NaN;
  assert.throws(() => model.forward(x), /Input contains NaN at flat index 789 \(sample 1/);
});

test('state dict uses PyTorch names, including num_batches_tracked', () => {
  const model = buildPreset('ioffe-mlp', { bn: true });
  const keys = [...model.stateDict().keys()];
  assert.deepEqual(keys.slice(0, 7), ['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked']);
  assert.equal(keys.length, 3 * 7 + 2);
  assert.ok(keys.includes('9.weight') && keys.includes('7.num_batches_tracked'));
});

test('loading a state dict without num_batches_tracked is an error that explains why', () => {
  const a = buildPreset('ioffe-mlp', { bn: true, seed: 1 });
  const b = buildPreset('ioffe-mlp', { bn: true, seed: 2 });
  const dict = a.stateDict();
  dict.delete('1.num_batches_tracked');
  assert.throws(() => b.loadStateDict(dict), /missing key "1\.num_batches_tracked".*bias correction needs it/);
  const wrong = a.stateDict();
  wrong.set('0.weight', new Tensor([10, 10]));
  assert.throws(() => b.loadStateDict(wrong), /"0\.weight": expected shape \[100, 784\], got \[10, 10\]/);
  b.loadStateDict(a.stateDict());
  assert.deepEqual(Array.from(b.stateDict().get('0.weight')!.data.slice(0, 5)), Array.from(a.stateDict().get('0.weight')!.data.slice(0, 5)));
});

test('train() and eval() switch every submodule', () => {
  const model = buildPreset('ioffe-mlp', { bn: true });
  model.eval();
  assert.ok([...model.modules()].every((m) => !m.training));
  model.train();
  assert.ok([...model.modules()].every((m) => m.training));
});

test('evaluate() with batch statistics leaves the running averages and the modes as they were', async () => {
  const { evaluate } = await import('../src/train/evaluate.js');
  const rng = new Rng(9);
  const model = buildPreset('ioffe-mlp', { bn: true, seed: 3 });
  model.forward(randomTensor([16, 784], rng, 0.3, 0.5));
  const before = [...model.stateDict()].map(([k, v]) => [k, Array.from(v.data)]);
  const images = new Float32Array(20 * 784).map(() => rng.uniform());
  const dataset = { name: 'random', images, labels: new Uint8Array(20).map((_, i) => i % 10), count: 20, sampleShape: [784], numClasses: 10 };
  // The expected accuracy by hand, on a copy: each batch of 10 normalized with its own statistics.
  const copy = buildPreset('ioffe-mlp', { bn: true, seed: 3 });
  copy.loadStateDict(model.stateDict());
  for (const l of copy.layers) if (l instanceof BatchNorm1d) l.statistics = 'batch-frozen';
  let correct = 0;
  for (let start = 0; start < 20; start += 10) {
    const predicted = argmax(copy.forward(new Tensor([10, 784], images.slice(start * 784, (start + 10) * 784))));
    predicted.forEach((p, i) => (correct += p === dataset.labels[start + i] ? 1 : 0));
  }
  const r = evaluate(model, dataset, { batchSize: 10, useBatchStatistics: true });
  assert.equal(r.count, 20);
  assert.equal(r.accuracy, correct / 20);
  assert.deepEqual([...model.stateDict()].map(([k, v]) => [k, Array.from(v.data)]), before);
  assert.ok(model.training, 'train mode restored');
  assert.ok(model.layers.filter((l) => l instanceof BatchNorm1d).every((b) => (b as BatchNorm1d).statistics === 'auto'));
});
