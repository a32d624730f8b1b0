/**
 * The batch-norm variants: statistics modes and freezing (every row of docs/batchnorm-modes.md), ghost
 * batches, Batch Renormalization, population statistics (precise BN), and their bad-input errors.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import {
  BatchNorm1d,
  BatchNorm2d,
  BatchNormBase,
  Dropout,
  Linear,
  ReLU,
  Rng,
  SGD,
  Sequential,
  Tensor,
  buildLayer,
  buildSequential,
  freezeBatchNorm,
  layerSpec,
  recomputeBatchNormStats,
  resetWarnings,
  setWarningHandler,
  unfreezeBatchNorm,
  type BatchNormOptions,
  type BatchNormStatistics,
} from '../src/index.js';
import { gradCheck, randomTensor } from './support/gradcheck.js';
import { assertClose as assertCloseTo, captureWarnings } from './support/assert.js';

const EPS = 1e-5;

/** Float64 per-channel statistics of x[B, C, L] over samples [from, to). */
function channelStats(x: Tensor, channels: number, from = 0, to = x.shape[0]) {
  const inner = x.size / (x.shape[0] * channels);
  const mean = new Float64Array(channels);
  const biased = new Float64Array(channels);
  const unbiased = new Float64Array(channels);
  const count = (to - from) * inner;
  for (let c = 0; c < channels; c++) {
    let s = 0;
    for (let b = from; b < to; b++) for (let l = 0; l < inner; l++) s += x.data[(b * channels + c) * inner + l];
    const m = s / count;
    let ss = 0;
    for (let b = from; b < to; b++) for (let l = 0; l < inner; l++) ss += (x.data[(b * channels + c) * inner + l] - m) ** 2;
    mean[c] = m;
    biased[c] = ss / count;
    unbiased[c] = ss / (count - 1);
  }
  return { mean, biased, unbiased };
}



function randomAffine(bn: BatchNormBase, rng: Rng): void {
  for (let c = 0; c < bn.numFeatures; c++) {
    bn.weight!.value.data[c] = 0.5 + rng.uniform();
    bn.bias!.value.data[c] = rng.normal();
  }
}

function copyAffine(from: BatchNormBase, to: BatchNormBase): void {
  to.weight!.value.data.set(from.weight!.value.data);
  to.bias!.value.data.set(from.bias!.value.data);
}

/** Float64 batch-norm backward through the batch statistics, per channel of x[B, C] (L = 1). */
function batchStatsBackward(x: Tensor, dy: Tensor, gamma: Float32Array, channels: number): Float64Array {
  const rows = x.shape[0];
  const s = channelStats(x, channels);
  const dx = new Float64Array(x.size);
  for (let c = 0; c < channels; c++) {
    const invStd = 1 / Math.sqrt(s.biased[c] + EPS);
    let sumDxhat = 0;
    let sumDxhatXhat = 0;
    for (let b = 0; b < rows; b++) {
      const xhat = (x.data[b * channels + c] - s.mean[c]) * invStd;
      const dxhat = dy.data[b * channels + c] * gamma[c];
      sumDxhat += dxhat;
      sumDxhatXhat += dxhat * xhat;
    }
    for (let b = 0; b < rows; b++) {
      const xhat = (x.data[b * channels + c] - s.mean[c]) * invStd;
      const dxhat = dy.data[b * channels + c] * gamma[c];
      dx[b * channels + c] = (invStd / rows) * (rows * dxhat - sumDxhat - xhat * sumDxhatXhat);
    }
  }
  return dx;
}

// ---------------------------------------------------------------------------------------------------
describe('statistics modes and freezing', () => {
  const doc = fs.readFileSync(new URL('../docs/batchnorm-modes.md', import.meta.url), 'utf8');
  const lines = doc.split('\n').filter((l) => l.startsWith('| train') || l.startsWith('| eval'));
  const rows = lines.map((l) => {
    const cells = l.split('|').slice(1, -1).map((c) => c.trim().replace(/`/g, ''));
    return { mode: cells[0], statistics: cells[1] as BatchNormStatistics, affine: cells[2], normalizes: cells[3], running: cells[4], optimizer: cells[5], dx: cells[6] };
  });

  test('the table in docs/batchnorm-modes.md has every combination exactly once', () => {
    assert.equal(rows.length, 16);
    const keys = new Set(rows.map((r) => `${r.mode}/${r.statistics}/${r.affine}`));
    for (const mode of ['train', 'eval']) for (const s of ['auto', 'batch-update', 'batch-frozen', 'running']) for (const a of ['trainable', 'frozen']) assert.ok(keys.has(`${mode}/${s}/${a}`), `missing row ${mode}/${s}/${a}`);
    for (const r of rows) {
      assert.ok(['batch statistics', 'running statistics'].includes(r.normalizes), r.normalizes);
      assert.ok(['updated', 'unchanged'].includes(r.running), r.running);
      assert.ok(['yes', 'no'].includes(r.optimizer), r.optimizer);
      assert.ok(['through the batch statistics', 'as constants'].includes(r.dx), r.dx);
    }
  });

  rows.forEach((row, i) => {
    test(`row ${i + 1}: ${row.mode}, statistics '${row.statistics}', gamma/beta ${row.affine} → ${row.normalizes}, averages ${row.running}, optimizer ${row.optimizer}, dx ${row.dx}`, () => {
      const rng = new Rng(100 + i);
      const bn = new BatchNorm1d(3);
      // Running statistics from data unlike the test batch (mean 0, std 1 vs mean 3, std 2).
      for (let s = 0; s < 3; s++) bn.forward(randomTensor([8, 3], rng));
      randomAffine(bn, rng);
      bn.train(row.mode === 'train');
      bn.statistics = row.statistics;
      bn.freezeAffine = row.affine === 'frozen';
      const before = { mean: bn.runningMean!.data.slice(), variance: bn.runningVar!.data.slice(), t: bn.numBatchesTracked };
      const inference = bn.inferenceStatistics();
      const gamma = bn.weight!.value.data.slice();
      const beta = bn.bias!.value.data.slice();

      const x = randomTensor([6, 3], rng, 2, 3);
      bn.zeroGrad();
      const y = bn.forward(x).clone();
      const batch = channelStats(x, 3);
      const useBatch = row.normalizes === 'batch statistics';
      assert.equal(bn.activeStatistics === 'running', !useBatch);
      const expectedY = new Float64Array(x.size);
      for (let b = 0; b < 6; b++) {
        for (let c = 0; c < 3; c++) {
          const m = useBatch ? batch.mean[c] : inference.mean[c];
          const v = useBatch ? batch.biased[c] : inference.variance[c];
          expectedY[b * 3 + c] = ((x.data[b * 3 + c] - m) / Math.sqrt(v + EPS)) * gamma[c] + beta[c];
        }
      }
      assertClose(y.data, expectedY, 1e-5, 'y');

      if (row.running === 'updated') {
        assert.equal(bn.numBatchesTracked, before.t + 1);
        const expectedMean = Array.from(before.mean, (m, c) => 0.9 * m + 0.1 * batch.mean[c]);
        const expectedVar = Array.from(before.variance, (v, c) => 0.9 * v + 0.1 * batch.unbiased[c]);
        assertClose(bn.runningMean!.data, expectedMean, 1e-6, 'runningMean');
        assertClose(bn.runningVar!.data, expectedVar, 1e-6, 'runningVar');
      } else {
        assert.equal(bn.numBatchesTracked, before.t);
        assert.deepEqual(bn.runningMean!.data, before.mean);
        assert.deepEqual(bn.runningVar!.data, before.variance);
      }

      const dy = randomTensor([6, 3], rng);
      const dx = bn.backward(dy);
      let expectedDx: Float64Array;
      if (row.dx === 'as constants') {
        expectedDx = Float64Array.from(dy.data, (g, j) => (g * gamma[j % 3]) / Math.sqrt(inference.variance[j % 3] + EPS));
      } else expectedDx = batchStatsBackward(x, dy, gamma, 3);
      assertClose(dx.data, expectedDx, 1e-4, 'dx');

      const opt = new SGD(bn.parameters(), { lr: 0.1 });
      opt.step();
      if (row.optimizer === 'yes') {
        assert.ok(bn.weight!.grad.data.some((g) => g !== 0) && bn.bias!.grad.data.some((g) => g !== 0));
        assert.notDeepEqual(bn.weight!.value.data, gamma);
        assert.notDeepEqual(bn.bias!.value.data, beta);
      } else {
        assert.ok(bn.weight!.grad.data.every((g) => g === 0) && bn.bias!.grad.data.every((g) => g === 0), 'frozen parameters get no gradient');
        assert.deepEqual(bn.weight!.value.data, gamma);
        assert.deepEqual(bn.bias!.value.data, beta);
      }
    });
  });

  test('freezeBatchNorm(model) is Keras trainable = False: a fixed affine map in train and eval; the rest trains', () => {
    const rng = new Rng(7);
    const model = new Sequential(new Linear(4, 5, { rng }), new BatchNorm1d(5), new ReLU(), new Linear(5, 2, { rng }));
    for (let s = 0; s < 4; s++) model.forward(randomTensor([8, 4], rng));
    const bn = model.layers[1] as BatchNorm1d;
    randomAffine(bn, rng);
    assert.deepEqual(freezeBatchNorm(model), [bn]);
    assert.equal(bn.statistics, 'running');
    assert.ok(bn.freezeStatistics && bn.freezeAffine);
    const x = randomTensor([6, 4], rng);
    model.train();
    const yTrain = model.forward(x).clone();
    model.eval();
    assert.deepEqual(model.forward(x).data, yTrain.data, 'train and eval agree');

    model.train();
    const bnState = [bn.weight!.value.data.slice(), bn.bias!.value.data.slice(), bn.runningMean!.data.slice(), bn.runningVar!.data.slice()];
    const linearWeight = (model.layers[0] as Linear).weight.value.data.slice();
    const opt = new SGD(model.parameters(), { lr: 0.5 });
    model.zeroGrad();
    model.forward(x);
    model.backward(randomTensor([6, 2], rng));
    opt.step();
    assert.notDeepEqual((model.layers[0] as Linear).weight.value.data, linearWeight, 'the Linear layers keep training');
    assert.deepEqual([bn.weight!.value.data, bn.bias!.value.data, bn.runningMean!.data, bn.runningVar!.data], bnState, 'BN does not change');

    freezeBatchNorm(model, { statistics: 'batch', affine: false });
    assert.equal(bn.statistics, 'batch-frozen');
    unfreezeBatchNorm(model);
    assert.equal(bn.statistics, 'auto');
    assert.ok(!bn.freezeAffine && bn.weight!.trainable && bn.bias!.trainable);
    freezeBatchNorm(model, { statistics: false });
    assert.equal(bn.statistics, 'auto', 'statistics: false leaves them alone');
    assert.ok(bn.freezeAffine);
    unfreezeBatchNorm(model, { affine: false });
    assert.ok(bn.freezeAffine, 'affine: false leaves gamma/beta frozen');
  });

  test('freezeStatistics switch, and statistics errors', () => {
    const bn = new BatchNorm1d(2);
    bn.freezeStatistics = true;
    assert.equal(bn.statistics, 'running');
    bn.statistics = 'batch-frozen';
    bn.freezeStatistics = true;
    assert.equal(bn.statistics, 'batch-frozen', 'an already frozen layer keeps its choice');
    bn.freezeStatistics = false;
    assert.equal(bn.statistics, 'auto');
    assert.throws(() => (bn.statistics = 'frozen' as BatchNormStatistics), /statistics must be one of 'auto', 'batch-update', 'batch-frozen', 'running', got "frozen"/);
    const noStats = new BatchNorm1d(2, { trackRunningStats: false });
    assert.throws(() => (noStats.statistics = 'running'), /statistics 'running' needs running statistics.*trackRunningStats: false/);
    assert.throws(() => new BatchNorm1d(2, { trackRunningStats: false, statistics: 'batch-update' }), /needs running statistics/);
    assert.equal(noStats.train().activeStatistics, 'batch-frozen');
    assert.equal(noStats.eval().activeStatistics, 'batch-frozen');
    const built = buildLayer({ type: 'BatchNorm1d', numFeatures: 3, statistics: 'running' }, { rng: new Rng(0) }) as BatchNorm1d;
    assert.equal(built.statistics, 'running');
    assert.match(built.describe(), /statistics=running/);
    assert.throws(() => buildLayer({ type: 'BatchNorm1d', numFeatures: 3, statistics: 'eval' }, { rng: new Rng(0) }), /BatchNorm1d\.statistics must be one of/);
  });

  test('Dropout directly before batch norm warns once (variance shift)', () => {
    const w = captureWarnings();
    try {
      const specs = [{ type: 'Linear', in: 4, out: 4 }, { type: 'Dropout', p: 0.5 }, { type: 'BatchNorm1d', numFeatures: 4 }];
      buildSequential(specs, { rng: new Rng(0) });
      assert.equal(w.messages.length, 1);
      assert.match(w.messages[0], /Dropout\(p=0\.5\) \(layer "1"\) feeds BatchNorm1d \(layer "2"\) directly/);
      assert.match(w.messages[0], /variance shift, Li et al\. 2019/);
      buildSequential(specs, { rng: new Rng(1) });
      assert.equal(w.messages.length, 1, 'once');
      new Sequential(new BatchNorm1d(4), new Dropout(0.5), new Linear(4, 2));
      new Sequential(new Linear(4, 4), new Dropout(0), new BatchNorm1d(4));
      assert.equal(w.messages.length, 1, 'dropout after BN, or p = 0, is fine');
      new Sequential(new Dropout(0.2), new BatchNorm2d(3));
      assert.equal(w.messages.length, 2);
    } finally {
      w.restore();
    }
  });
});

// ---------------------------------------------------------------------------------------------------
describe('ghost batch norm (virtualBatchSize)', () => {
  const cases: Array<[string, (o: BatchNormOptions) => BatchNormBase, number[]]> = [
    ['BatchNorm1d (B, C)', (o) => new BatchNorm1d(4, o), [8, 4]],
    ['BatchNorm2d (B, C, H, W)', (o) => new BatchNorm2d(3, o), [6, 3, 2, 2]],
  ];
  for (const [name, make, shape] of cases) {
    test(`${name}: virtualBatchSize = batch size equals plain batch norm (forward, backward, running statistics)`, () => {
      const rng = new Rng(11);
      const plain = make({});
      const ghost = make({ virtualBatchSize: shape[0] });
      randomAffine(plain, rng);
      copyAffine(plain, ghost);
      for (let step = 0; step < 3; step++) {
        const x = randomTensor(shape, rng, 1 + step, step);
        const dy = randomTensor(shape, rng);
        plain.zeroGrad();
        ghost.zeroGrad();
        assert.deepEqual(ghost.forward(x).data, plain.forward(x).data);
        assert.deepEqual(ghost.backward(dy).data, plain.backward(dy).data);
        assert.deepEqual(ghost.weight!.grad.data, plain.weight!.grad.data);
        assert.deepEqual(ghost.bias!.grad.data, plain.bias!.grad.data);
        assert.deepEqual(ghost.runningMean!.data, plain.runningMean!.data);
        assert.deepEqual(ghost.runningVar!.data, plain.runningVar!.data);
      }
      const x = randomTensor(shape, rng);
      assert.deepEqual(ghost.eval().forward(x).data, plain.eval().forward(x).data);
    });
  }

  test('each ghost batch is normalized with its own statistics; the running averages average them', () => {
    const rng = new Rng(12);
    const [B, V, C] = [12, 4, 3];
    const ghost = new BatchNorm1d(C, { virtualBatchSize: V, biasCorrection: false });
    randomAffine(ghost, rng);
    const x = randomTensor([B, C], rng);
    for (let i = 0; i < x.size; i++) x.data[i] += 3 * Math.floor(i / (V * C)); // each ghost batch shifted differently
    const y = ghost.forward(x).clone();
    const plainY = new BatchNorm1d(C);
    copyAffine(ghost, plainY);
    let meanAvg = new Float64Array(C);
    let varAvg = new Float64Array(C);
    for (let g = 0; g < B / V; g++) {
      const part = new Tensor([V, C], x.data.slice(g * V * C, (g + 1) * V * C));
      assertClose(y.data.subarray(g * V * C, (g + 1) * V * C), plainY.forward(part).data, 1e-6, `ghost batch ${g}`);
      const s = channelStats(part, C);
      meanAvg = meanAvg.map((m, c) => m + s.mean[c] / (B / V));
      varAvg = varAvg.map((v, c) => v + s.unbiased[c] / (B / V));
    }
    // PyTorch's initial values (biasCorrection off): mean 0, var 1; one update with the ghost averages.
    assertClose(ghost.runningMean!.data, Array.from(meanAvg, (m) => 0.1 * m), 1e-6, 'runningMean');
    assertClose(ghost.runningVar!.data, Array.from(varAvg, (v) => 0.9 + 0.1 * v), 1e-6, 'runningVar');
    assert.equal(ghost.numBatchesTracked, 1, 'one update per batch, not per ghost batch');
    const whole = channelStats(x, C);
    assert.ok(Math.abs(varAvg[0] - whole.unbiased[0]) > 1, 'the ghost batches differ from the whole batch, so the test can tell them apart');
  });

  test('gradient check (float64 central differences of Σ y·r)', () => {
    const rng = new Rng(13);
    const bn1 = new BatchNorm1d(3, { virtualBatchSize: 4 });
    randomAffine(bn1, rng);
    const x1 = randomTensor([12, 3], rng, 2, 1);
    const r1 = gradCheck(bn1, x1, { prepare: () => bn1.resetRunningStats() });
    assert.ok(r1.dx < 1e-2 && r1.params.weight < 1e-2 && r1.params.bias < 1e-2, JSON.stringify(r1));
    const bn2 = new BatchNorm2d(2, { virtualBatchSize: 2 });
    randomAffine(bn2, rng);
    const r2 = gradCheck(bn2, randomTensor([4, 2, 3, 3], rng, 1.5, -1), { prepare: () => bn2.resetRunningStats() });
    assert.ok(r2.dx < 1e-2 && r2.params.weight < 1e-2 && r2.params.bias < 1e-2, JSON.stringify(r2));
    // The ghost backward is not the whole-batch one: plain BN's dx on the same input is far off.
    const plain = new BatchNorm1d(3);
    copyAffine(bn1, plain);
    const dy = randomTensor([12, 3], rng);
    bn1.forward(x1);
    const ghostDx = bn1.backward(dy).data.slice();
    plain.forward(x1);
    const plainDx = plain.backward(dy).data;
    assert.ok(ghostDx.some((v, i) => Math.abs(v - plainDx[i]) > 0.05));
  });

  test('invalid virtualBatchSize: errors name the batch size and the valid sizes', () => {
    const bn = new BatchNorm1d(3, { virtualBatchSize: 5 });
    assert.throws(() => bn.forward(new Tensor([12, 3])), (e: Error) => {
      assert.match(e.message, /BatchNorm1d\(3, .*virtualBatchSize=5\)/);
      assert.match(e.message, /virtualBatchSize 5 does not divide the batch size 12 \(input shape \[12, 3\]\)/);
      assert.match(e.message, /Valid virtual batch sizes for a batch of 12: 2, 3, 4, 6, 12\./);
      assert.match(e.message, /dropLast/);
      return true;
    });
    const one = new BatchNorm1d(3, { virtualBatchSize: 1 });
    assert.throws(() => one.forward(new Tensor([8, 3])), /virtualBatchSize 1 leaves 1 value per channel in each ghost batch.*at least 2\. Valid virtual batch sizes for a batch of 8: 2, 4, 8/);
    const images = new BatchNorm2d(2, { virtualBatchSize: 1 });
    assert.doesNotThrow(() => images.forward(new Tensor([3, 2, 2, 2])), 'one image has H·W = 4 values per channel');
    const small = new BatchNorm1d(3, { virtualBatchSize: 16 });
    assert.throws(() => small.forward(new Tensor([8, 3])), /virtualBatchSize 16 does not divide the batch size 8.*2, 4, 8/);
    const w = captureWarnings();
    try {
      assert.doesNotThrow(() => small.eval().forward(new Tensor([5, 3])), 'eval mode uses the running statistics: any batch size');
    } finally {
      w.restore();
    }
    for (const bad of [2.5, 0, -4, NaN]) assert.throws(() => new BatchNorm1d(3, { virtualBatchSize: bad }), /virtualBatchSize must be a positive integer/);
    assert.throws(() => buildLayer({ type: 'BatchNorm1d', numFeatures: 3, virtualBatchSize: 2.5 }, { rng: new Rng(0) }), /BatchNorm1d\.virtualBatchSize must be an integer/);
  });
});

// ---------------------------------------------------------------------------------------------------
describe('Batch Renormalization', () => {
  for (const [name, make, shape] of [
    ['BatchNorm1d', (o: BatchNormOptions) => new BatchNorm1d(5, o), [10, 5]],
    ['BatchNorm2d', (o: BatchNormOptions) => new BatchNorm2d(3, o), [4, 3, 3, 2]],
  ] as const) {
    test(`${name}: rMax = 1, dMax = 0 equals plain batch norm, forward and backward`, () => {
      const rng = new Rng(21);
      const plain = make({});
      const renorm = make({ renorm: { rMax: 1, dMax: 0 } });
      randomAffine(plain, rng);
      copyAffine(plain, renorm);
      for (let step = 0; step < 4; step++) {
        const x = randomTensor([...shape], rng, 1 + step, 2 * step - 3); // the distribution moves: r and d would matter
        const dy = randomTensor([...shape], rng);
        plain.zeroGrad();
        renorm.zeroGrad();
        assertClose(renorm.forward(x).data, plain.forward(x).data, 1e-7, `step ${step} y`);
        assertClose(renorm.backward(dy).data, plain.backward(dy).data, 1e-7, `step ${step} dx`);
        assertClose(renorm.weight!.grad.data, plain.weight!.grad.data, 1e-7, `step ${step} dGamma`);
        assertClose(renorm.bias!.grad.data, plain.bias!.grad.data, 1e-7, `step ${step} dBeta`);
        assert.deepEqual(renorm.runningMean!.data, plain.runningMean!.data);
        assert.deepEqual(renorm.runningVar!.data, plain.runningVar!.data);
      }
      const x = randomTensor([...shape], rng);
      assert.deepEqual(renorm.eval().forward(x).data, plain.eval().forward(x).data);
      // With wider limits the same run differs: the equality above is not trivial.
      const wide = make({ renorm: { rMax: 3, dMax: 5 } });
      copyAffine(plain, wide);
      wide.runningMean!.data.fill(4);
      wide.runningVar!.data.fill(9);
      wide.numBatchesTrackedTensor!.data[0] = 50;
      assert.ok(wide.train().forward(x).data.some((v, i) => Math.abs(v - plain.train().forward(x).data[i]) > 0.1));
    });
  }

  /** A renorm layer with given running statistics (as eval uses them) and fixed averages. */
  function renormLayer(rMax: number, dMax: number, mu: number[], sigma2: number[], rng: Rng) {
    const bn = new BatchNorm1d(mu.length, { renorm: { rMax, dMax }, biasCorrection: false, statistics: 'batch-frozen' });
    bn.runningMean!.data.set(mu);
    bn.runningVar!.data.set(sigma2);
    bn.numBatchesTrackedTensor!.data[0] = 10;
    randomAffine(bn, rng);
    return bn;
  }

  /** Float64 renorm forward with r and d given (constants) or computed from x. */
  function renormForward(x: Float64Array, rows: number, bn: BatchNorm1d, gamma: ArrayLike<number>, beta: ArrayLike<number>, fixed?: { r: number[]; d: number[] }) {
    const C = bn.numFeatures;
    const y = new Float64Array(x.length);
    const { rMax, dMax } = bn.renorm!;
    const r: number[] = [];
    const d: number[] = [];
    for (let c = 0; c < C; c++) {
      let m = 0;
      for (let b = 0; b < rows; b++) m += x[b * C + c] / rows;
      let v = 0;
      for (let b = 0; b < rows; b++) v += (x[b * C + c] - m) ** 2 / rows;
      const sigmaB = Math.sqrt(v + EPS);
      const sigma = Math.sqrt(bn.runningVar!.data[c] + EPS);
      r[c] = fixed ? fixed.r[c] : Math.min(Math.max(sigmaB / sigma, 1 / rMax), rMax);
      d[c] = fixed ? fixed.d[c] : Math.min(Math.max((m - bn.runningMean!.data[c]) / sigma, -dMax), dMax);
      for (let b = 0; b < rows; b++) y[b * C + c] = gamma[c] * (((x[b * C + c] - m) / sigmaB) * r[c] + d[c]) + beta[c];
    }
    return { y, r, d };
  }

  test('forward: r and d as in the paper, clipped to [1/rMax, rMax] and [-dMax, dMax]', () => {
    const rng = new Rng(22);
    // Unclipped, training computes exactly eval's (x - μ)/σ: the point of renorm.
    const wide = renormLayer(10, 10, [1, -2, 0.5], [4, 0.25, 1], rng);
    const x = randomTensor([8, 3], rng, 1.5, 0.5);
    const y = wide.forward(x).clone();
    wide.statistics = 'running';
    assertClose(y.data, wide.forward(x).data, 1e-5, 'unclipped renorm = eval normalization');
    // Clipped: far from the running statistics.
    const tight = renormLayer(1.5, 0.5, [1, -2, 0.5], [4, 0.25, 1], rng);
    const expected = renormForward(Float64Array.from(x.data), 8, tight, tight.weight!.value.data, tight.bias!.value.data);
    assert.ok(expected.r.some((r) => r === 1.5 || r === 1 / 1.5) && expected.d.some((d) => Math.abs(d) === 0.5), 'some r and d hit their limits');
    assertClose(tight.forward(x).data, expected.y, 1e-5, 'clipped renorm');
  });

  test('gradient with r and d constants (float64 central differences of Σ y·r)', () => {
    const rng = new Rng(23);
    // Unclipped r, d depend on x; the paper treats them as constants, so the reference is the float64
    // function with r and d fixed at their forward values.
    const bn = renormLayer(10, 10, [0.5, -1, 2, 0], [2, 0.5, 3, 1], rng);
    const rows = 6;
    const C = 4;
    const x = randomTensor([rows, C], rng, 1.2, 0.3);
    const probe = randomTensor([rows, C], rng);
    const gamma = Float64Array.from(bn.weight!.value.data);
    const beta = Float64Array.from(bn.bias!.value.data);
    const x64 = Float64Array.from(x.data);
    const fixed = renormForward(x64, rows, bn, gamma, beta);
    assert.ok(fixed.r.every((r) => r > 1 / 10 && r < 10) && fixed.d.every((d) => Math.abs(d) < 10), 'r and d are not clipped here');
    const loss = (xs: Float64Array, g: Float64Array, b: Float64Array) => renormForward(xs, rows, bn, g, b, fixed).y.reduce((s, v, i) => s + v * probe.data[i], 0);
    const h = 1e-6;
    const central = (values: Float64Array, f: () => number) =>
      Float64Array.from(values, (keep, i) => {
        values[i] = keep + h;
        const plus = f();
        values[i] = keep - h;
        const minus = f();
        values[i] = keep;
        return (plus - minus) / (2 * h);
      });
    const numDx = central(x64, () => loss(x64, gamma, beta));
    const numDGamma = central(gamma, () => loss(x64, gamma, beta));
    const numDBeta = central(beta, () => loss(x64, gamma, beta));
    bn.zeroGrad();
    bn.forward(x);
    const dx = bn.backward(probe);
    assertClose(dx.data, numDx, 2e-4, 'dx');
    assertClose(bn.weight!.grad.data, numDGamma, 2e-4, 'dGamma');
    assertClose(bn.bias!.grad.data, numDBeta, 2e-4, 'dBeta');
    // Differentiating through r and d instead gives eval's gradient dy·gamma/σ: a different answer.
    const throughRd = Array.from(probe.data, (g, i) => (g * gamma[i % C]) / Math.sqrt(bn.runningVar!.data[i % C] + EPS));
    assert.ok(Array.from(dx.data).some((v, i) => Math.abs(v - throughRd[i]) > 0.05), 'r, d constants is not the full derivative');

    // Clipped r and d are locally constant, so the layer's own forward can be checked directly.
    const clipped = renormLayer(1.2, 0.3, [3, -3, 3], [16, 16, 0.01], rng);
    const xc = randomTensor([8, 3], rng);
    const r = gradCheck(clipped, xc);
    assert.ok(r.dx < 1e-2 && r.params.weight < 1e-2 && r.params.bias < 1e-2, JSON.stringify(r));
  });

  test('warm-up: rMax from 1 and dMax from 0 to their targets, as in the paper', () => {
    const bn = new BatchNorm1d(2, { renorm: { rMax: 3, dMax: 5, relaxFrom: 5000, rMaxAt: 40000, dMaxAt: 25000 } });
    assert.deepEqual(bn.renormLimits(0), { rMax: 1, dMax: 0 });
    assert.deepEqual(bn.renormLimits(4999), { rMax: 1, dMax: 0 });
    assert.deepEqual(bn.renormLimits(5000), { rMax: 1, dMax: 0 });
    assert.deepEqual(bn.renormLimits(22500), { rMax: 2, dMax: 4.375 });
    assert.deepEqual(bn.renormLimits(25000), { rMax: 1 + 2 * (20000 / 35000), dMax: 5 });
    assert.deepEqual(bn.renormLimits(40000), { rMax: 3, dMax: 5 });
    assert.deepEqual(bn.renormLimits(1e6), { rMax: 3, dMax: 5 });
    assert.deepEqual(new BatchNorm1d(2, { renorm: { rMax: 2, dMax: 1 } }).renormLimits(0), { rMax: 2, dMax: 1 }, 'no warm-up by default');

    // In a layer: plain batch norm for the first `relaxFrom` updates, renorm after.
    const rng = new Rng(24);
    const plain = new BatchNorm1d(3);
    const renorm = new BatchNorm1d(3, { renorm: { rMax: 4, dMax: 4, relaxFrom: 2 } });
    const outputs: boolean[] = [];
    for (let step = 0; step < 3; step++) {
      const x = randomTensor([6, 3], rng, 1 + step, 2 * step);
      const a = plain.forward(x).data;
      const b = renorm.forward(x).data;
      outputs.push(a.every((v, i) => v === b[i]));
    }
    assert.deepEqual(outputs, [true, true, false]);
    assert.equal(renorm.renormSteps, 3);
    renorm.statistics = 'batch-frozen';
    renorm.forward(randomTensor([6, 3], rng));
    assert.equal(renorm.renormSteps, 3, 'only running-average updates advance the warm-up');
    const dict = renorm.stateDict();
    assert.equal(dict.get('renorm_steps')!.data[0], 3);
    const restored = new BatchNorm1d(3, { renorm: { rMax: 4, dMax: 4, relaxFrom: 2 } });
    restored.loadStateDict(dict);
    assert.equal(restored.renormSteps, 3, 'the warm-up resumes from a checkpoint');
    assert.ok(!plain.stateDict().has('renorm_steps'), 'plain batch norm keeps PyTorch\'s state dict');
  });

  test('invalid limits are clear errors', () => {
    assert.throws(() => new BatchNorm1d(2, { renorm: { rMax: 0.5, dMax: 1 } }), /BatchNorm1d: renorm rMax must be a finite number >= 1 \(r is clipped to \[1\/rMax, rMax\]; rMax = 1 turns the scale correction off\), got 0\.5/);
    assert.throws(() => new BatchNorm2d(2, { renorm: { rMax: 2, dMax: -1 } }), /BatchNorm2d: renorm dMax must be a finite number >= 0.*got -1/);
    assert.throws(() => new BatchNorm1d(2, { renorm: { rMax: NaN, dMax: 1 } }), /rMax must be a finite number >= 1/);
    assert.throws(() => new BatchNorm1d(2, { renorm: { rMax: 2, dMax: 1, relaxFrom: 100, rMaxAt: 50 } }), /rMaxAt \(50\) and dMaxAt \(100\) must not come before relaxFrom \(100\)/);
    assert.throws(() => new BatchNorm1d(2, { renorm: { rMax: 2, dMax: 1, relaxFrom: 1.5 } }), /relaxFrom must be a step count/);
    assert.throws(() => new BatchNorm1d(2, { renorm: { rMax: 2, dMax: 1 }, trackRunningStats: false }), /renorm .* needs trackRunningStats: true/);
    const ctx = { rng: new Rng(0) };
    assert.throws(() => buildSequential([{ type: 'BatchNorm1d', numFeatures: 2, renorm: { rMax: 0.9, dMax: 0 } }], ctx), /layer 0: BatchNorm1d: renorm rMax must be a finite number >= 1/);
    assert.throws(() => buildLayer({ type: 'BatchNorm1d', numFeatures: 2, renorm: { rMax: 2, dMax: 1, rmax: 3 } }, ctx), /unknown option\(s\) rmax/);
    assert.throws(() => buildLayer({ type: 'BatchNorm1d', numFeatures: 2, renorm: 3 }, ctx), /renorm must be null or/);
  });
});

// ---------------------------------------------------------------------------------------------------
describe('population statistics (recomputeBatchNormStats)', () => {
  /** `count` batches of `rows` samples, every batch with exactly the given per-feature mean and unbiased variance. */
  function exactBatches(mean: number[], variance: number[], rows: number, count: number, rng: Rng): Tensor[] {
    const F = mean.length;
    const batches: Tensor[] = [];
    for (let n = 0; n < count; n++) {
      const raw = Array.from({ length: rows * F }, () => rng.normal() * 3 + rng.uniform());
      const x = new Tensor([rows, F]);
      for (let f = 0; f < F; f++) {
        let m = 0;
        for (let b = 0; b < rows; b++) m += raw[b * F + f] / rows;
        let ss = 0;
        for (let b = 0; b < rows; b++) ss += (raw[b * F + f] - m) ** 2;
        const scale = Math.sqrt(variance[f] / (ss / (rows - 1)));
        for (let b = 0; b < rows; b++) x.data[b * F + f] = mean[f] + (raw[b * F + f] - m) * scale;
      }
      batches.push(x);
    }
    return batches;
  }

  const MEAN = [-2, 0.5, 3, 10];
  const VARIANCE = [0.25, 1, 4, 9];

  test('recovers a synthetic dataset\'s per-feature mean and variance to 1e-4 (input BN, and BN after an identity Linear)', () => {
    const rng = new Rng(31);
    const identity = new Linear(4, 4, { rng });
    identity.weight.value.data.fill(0);
    for (let i = 0; i < 4; i++) identity.weight.value.data[i * 5] = 1;
    const offset = [1, -1, 0.5, 0];
    identity.bias!.value.data.set(offset);
    const inputBn = new BatchNorm1d(4);
    const hiddenBn = new BatchNorm1d(4, { momentum: 0.01 });
    const model = new Sequential(inputBn, new Linear(4, 4, { rng }), new ReLU(), identity, hiddenBn, new Linear(4, 2, { rng }));
    // Some training first, so the running averages are something else entirely.
    for (let s = 0; s < 5; s++) model.forward(randomTensor([16, 4], rng, 5, -3));
    const weights = model.parameters().map((p) => p.value.data.slice());
    model.train();
    hiddenBn.statistics = 'running';

    const batches = exactBatches(MEAN, VARIANCE, 32, 20, rng);
    const result = recomputeBatchNormStats(model, batches);
    assert.equal(result.batches, 20);
    assert.deepEqual(result.layers, [inputBn, hiddenBn]);
    const input = inputBn.inferenceStatistics();
    assertClose(input.mean, MEAN, 1e-4, 'input BN mean');
    assertClose(input.variance, VARIANCE, 1e-4, 'input BN variance');
    // Eval uses exactly the recomputed values: the bias-correction factor is exactly 1.
    assert.equal(inputBn.biasCorrectionFactor(), 1);
    assert.deepEqual(input.mean, inputBn.runningMean!.data);
    assert.deepEqual(input.variance, inputBn.runningVar!.data);
    assert.ok(inputBn.numBatchesTracked >= 20);
    assert.equal(hiddenBn.biasCorrectionFactor(), 1, `momentum 0.01 needs t = ${hiddenBn.numBatchesTracked}, still exact in float32`);

    // Restored: train mode, the hidden layer's 'running' setting; weights untouched.
    assert.ok([...model.modules()].every((m) => m.training));
    assert.equal(hiddenBn.statistics, 'running');
    assert.equal(inputBn.statistics, 'auto');
    model.parameters().forEach((p, i) => assert.deepEqual(p.value.data, weights[i]));

    // Eval output = ((x - μ)/√(σ² + eps))·gamma + beta with the dataset's μ, σ².
    model.eval();
    const x = batches[0];
    const y = inputBn.forward(x);
    const expected = Array.from(x.data, (v, i) => (v - MEAN[i % 4]) / Math.sqrt(VARIANCE[i % 4] + EPS));
    assertClose(y.data, expected, 1e-4, 'eval output');

    // BN after an identity Linear sees the input BN's output + offset; average its batch statistics in float64.
    const hiddenMean = new Float64Array(4);
    const hiddenVar = new Float64Array(4);
    for (const b of batches) {
      const h = new Float64Array(b.size);
      const s = channelStats(b, 4);
      const first = new Linear(4, 4);
      first.weight.value.data.set((model.layers[1] as Linear).weight.value.data);
      first.bias!.value.data.set((model.layers[1] as Linear).bias!.value.data);
      const normalized = new Tensor(b.shape, Float32Array.from(b.data, (v, i) => (v - s.mean[i % 4]) / Math.sqrt(s.biased[i % 4] + EPS)));
      const z = first.forward(normalized).data;
      for (let i = 0; i < h.length; i++) h[i] = Math.max(z[i], 0) + offset[i % 4];
      const hs = channelStats(new Tensor(b.shape, Float32Array.from(h)), 4);
      for (let f = 0; f < 4; f++) {
        hiddenMean[f] += hs.mean[f] / batches.length;
        hiddenVar[f] += hs.unbiased[f] / batches.length;
      }
    }
    assertClose(hiddenBn.inferenceStatistics().mean, hiddenMean, 1e-4, 'hidden BN mean');
    assertClose(hiddenBn.inferenceStatistics().variance, hiddenVar, 1e-4, 'hidden BN variance');
  });

  test('every running-statistics policy ends with eval using the recomputed values; dropout is off; training continues the EWA', () => {
    const rng = new Rng(32);
    const batches = exactBatches(MEAN, VARIANCE, 16, 8, rng);
    for (const options of [{}, { biasCorrection: false }, { momentum: null }, { momentum: 1e-7 }] as BatchNormOptions[]) {
      const bn = new BatchNorm1d(4, options);
      // Dropout after the BN would only matter for layers downstream; before it, it would distort the statistics if on.
      const model = new Sequential(new Dropout(0.5, { rng: new Rng(1) }), new Linear(4, 4, { rng }), new BatchNorm1d(4));
      (model.layers[1] as Linear).weight.value.data.set([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
      (model.layers[1] as Linear).bias!.value.data.fill(0);
      recomputeBatchNormStats(new Sequential(bn), batches);
      recomputeBatchNormStats(model, batches);
      const tol = options.momentum === 1e-7 ? 1e-4 : 0;
      const s = bn.inferenceStatistics();
      assertClose(s.mean, MEAN, 1e-4, `${JSON.stringify(options)} mean`);
      assertClose(s.variance, VARIANCE, 1e-4, `${JSON.stringify(options)} variance`);
      if (tol === 0) assert.deepEqual([s.mean, s.variance], [bn.runningMean!.data, bn.runningVar!.data]);
      assertClose((model.layers[2] as BatchNorm1d).inferenceStatistics().variance, VARIANCE, 1e-4, 'dropout was off');
    }
    const bn = new BatchNorm1d(4);
    recomputeBatchNormStats(bn, batches);
    const x = randomTensor([16, 4], rng);
    bn.train().forward(x);
    const s = channelStats(x, 4);
    assertClose(bn.inferenceStatistics().mean, MEAN.map((m, c) => 0.9 * m + 0.1 * s.mean[c]), 1e-5, 'the EWA continues from the population values');
  });

  test('random data: the exact average of per-batch means and unbiased variances; maxBatches, ghost batches, errors', () => {
    const rng = new Rng(33);
    const batches = Array.from({ length: 6 }, () => randomTensor([10, 3], rng, 2, 1));
    const bn = new BatchNorm1d(3, { virtualBatchSize: 5 });
    const result = recomputeBatchNormStats(bn, batches.map((x) => ({ x })), { maxBatches: 4 });
    assert.equal(result.batches, 4);
    const mean = new Float64Array(3);
    const variance = new Float64Array(3);
    for (const x of batches.slice(0, 4)) {
      for (const g of [0, 1]) {
        const s = channelStats(x, 3, 5 * g, 5 * g + 5);
        for (let c = 0; c < 3; c++) {
          mean[c] += s.mean[c] / 8;
          variance[c] += s.unbiased[c] / 8;
        }
      }
    }
    assertClose(bn.inferenceStatistics().mean, mean, 1e-5, 'mean');
    assertClose(bn.inferenceStatistics().variance, variance, 1e-5, 'variance');
    assert.throws(() => recomputeBatchNormStats(new BatchNorm1d(3), []), /got no batches/);
    assert.throws(() => recomputeBatchNormStats(new BatchNorm1d(3), batches, { maxBatches: 0 }), /maxBatches must be a positive integer/);
    const failing = new Sequential(new BatchNorm1d(3), new Linear(4, 2));
    assert.throws(() => recomputeBatchNormStats(failing, batches), /expected input \[B, 4\]/);
    assert.ok(failing.training && (failing.layers[0] as BatchNorm1d).statistics === 'auto', 'modes restored after an error');
    assert.deepEqual(recomputeBatchNormStats(new BatchNorm1d(3, { trackRunningStats: false }), batches).layers, [], 'nothing to recompute');
  });
});

// ---------------------------------------------------------------------------------------------------
describe('bad input and specs', () => {
  test('numFeatures not matching the channel count', () => {
    const model = new Sequential(new Linear(6, 5), new BatchNorm1d(4));
    assert.throws(() => model.forward(new Tensor([3, 6])), /BatchNorm1d\(4, .*\(layer "1"\): expected 4 channels \(input \[B, 4\] or \[B, 4, L\]\), got input shape \[3, 5\]\. numFeatures must equal the previous layer's output size/);
    assert.throws(() => new BatchNorm2d(8).forward(new Tensor([2, 16, 3, 3])), /expected 8 channels \(input \[B, 8, H, W\]\), got input shape \[2, 16, 3, 3\]\. numFeatures must equal the previous layer's output channels/);
    assert.throws(() => new BatchNorm2d(8).forward(new Tensor([2, 8])), /expected 4D \(B, C, H, W\) input, got 2D input of shape \[2, 8\]/);
  });

  test('the new options survive a spec round trip', () => {
    const ctx = { rng: new Rng(0) };
    const spec = { type: 'BatchNorm2d', numFeatures: 4, virtualBatchSize: 8, renorm: { rMax: 3, dMax: 5, relaxFrom: 10, rMaxAt: 100, dMaxAt: 50 }, statistics: 'batch-frozen' };
    const bn = buildLayer(spec, ctx) as BatchNorm2d;
    assert.equal(bn.virtualBatchSize, 8);
    assert.deepEqual(bn.renorm, spec.renorm);
    assert.equal(bn.statistics, 'batch-frozen');
    const again = buildLayer(layerSpec(bn), ctx);
    assert.deepEqual(again.config(), bn.config());
    assert.equal(again.describe(), 'BatchNorm2d(4, eps=0.00001, momentum=0.1, virtualBatchSize=8, renorm(rMax=3, dMax=5), statistics=batch-frozen)');
    assert.deepEqual(Object.keys(new BatchNorm1d(3).config()), ['numFeatures', 'eps', 'momentum', 'affine', 'trackRunningStats', 'biasCorrection'], 'plain layers keep their config');
    const shared = buildSequential([{ type: 'BatchNorm1d', numFeatures: 2 }, { type: 'BatchNorm1d', numFeatures: 2 }], { ...ctx, batchNorm: { virtualBatchSize: 4 } });
    assert.ok(shared.layers.every((l) => (l as BatchNorm1d).virtualBatchSize === 4), 'model-wide batch-norm defaults');
  });
});


function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assertCloseTo(actual, expected, tol, what, 'relative');
}
