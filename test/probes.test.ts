/**
 * Probes of a live network (the lab's panels read them from the twins): percentiles, drift since a
 * reference and histograms of the activation inputs; the step-to-step noise of a unit's batch mean
 * against 1/√B; running averages raw and bias-corrected against the population; test accuracy under
 * each choice of statistics; and a batch of one in training mode.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { takeFirst, type Dataset } from '../src/data/dataset.js';
import { loadDataset } from '../src/data/node.js';
import { BatchMeanNoise, batchMeanSpread, unitBatchStatistics } from '../src/experiments/batch-noise.js';
import { buildNetwork } from '../src/experiments/models.js';
import { InputDrift, activationInputs, afterLinear, histogram, unitPercentiles } from '../src/experiments/probe.js';
import { accuracyByStatistics, batchOfOneInTraining, runningMeanProbe, runningStatistics } from '../src/experiments/test-time.js';
import { Stepper } from '../src/experiments/train-run.js';
import { batchNormLayers } from '../src/nn/batchnorm-modes.js';
import { BatchNorm1d } from '../src/nn/batchnorm.js';
import { softmax } from '../src/nn/loss.js';
import { Rng } from '../src/tensor/rng.js';
import { Tensor } from '../src/tensor/tensor.js';

let train: Dataset;
let test1k: Dataset;
const rows = (ds: Dataset, n: number) => new Tensor([n, 784], ds.images.slice(0, n * 784));

before(() => {
  train = takeFirst(loadDataset('mnist', 'train'), 6000);
  test1k = takeFirst(loadDataset('mnist', 'test'), 1000);
});

describe('inside the network', () => {
  test('percentiles, histogram counts and drift of the activation inputs', () => {
    const model = buildNetwork({ norm: 'batch', seed: 1 });
    const probe = rows(test1k, 300);
    const ref = activationInputs(model, probe);
    assert.equal(ref.length, 3);
    const [p15, p50, p85] = unitPercentiles(ref[2].values[0]);
    assert.ok(p15 < p50 && p50 < p85);
    // With BN (gamma 1, beta 0) a unit's input over the probe batch is standardized: 15/85th near ∓1.04.
    assert.ok(Math.abs(p85 - p15 - 2.07) < 0.35, `15–85 range ${p85 - p15}`);
    const drift = new InputDrift(0, ref);
    for (const d of drift.drift(ref)) assert.deepEqual(d, { absolute: 0, relative: 0, meanChange: 0, stdChange: 0 });
    // Every input moved by +0.5: the Wasserstein distance is exactly 0.5 and the spread unchanged.
    const moved = ref.map((l) => ({ ...l, values: l.values.map((v) => v.map((x) => x + 0.5)) }));
    for (const d of drift.drift(moved)) {
      assert.ok(Math.abs(d.absolute - 0.5) < 1e-5 && Math.abs(d.meanChange - 0.5) < 1e-5 && d.stdChange < 1e-5, JSON.stringify(d));
    }
    const stepper = new Stepper(model, train, { lr: 1, batchSize: 60, seed: 1 });
    for (let i = 0; i < 50; i++) stepper.next();
    const after = drift.drift(activationInputs(model, probe));
    assert.ok(after.every((d) => d.relative > 0), 'training moves every layer’s input');
    const h = histogram(ref[0].values, -3, 3, 12);
    assert.equal(h.total, 300 * 100);
    assert.equal(h.counts.reduce((a, b) => a + b, 0) + h.below + h.above, h.total);
    assert.ok(h.counts[5] + h.counts[6] > h.counts[0] + h.counts[11], 'standardized inputs pile up in the middle');
    assert.deepEqual(histogram(Float32Array.from([-1, 0, 0.5, 0.99, 1, NaN]), 0, 1, 2), { min: 0, max: 1, counts: [1, 2], below: 1, above: 2, total: 6 });
  });
});

describe('batch noise', () => {
  test('the step-to-step noise of a batch mean of independent batches is σ/√B', () => {
    const rng = new Rng(5);
    for (const b of [4, 16, 64]) {
      const noise = new BatchMeanNoise(2000);
      for (let t = 0; t < 2000; t++) {
        const xs = Array.from({ length: b }, () => 3 + 2 * rng.normal());
        const m = xs.reduce((a, x) => a + x, 0) / b;
        const v = xs.reduce((a, x) => a + (x - m) ** 2, 0) / (b - 1);
        noise.add({ batchSize: b, mean: m, variance: v, ghostSize: b, ghostMeans: [m] });
      }
      const e = noise.estimate()!;
      assert.ok(Math.abs(e.predicted - 2 / Math.sqrt(b)) < 0.05 * (2 / Math.sqrt(b)), `B ${b}: predicted ${e.predicted}`);
      assert.ok(Math.abs(e.measured / e.predicted - 1) < 0.1, `B ${b}: measured ${e.measured}, predicted ${e.predicted}`);
      assert.equal(e.ghostMeasured, null);
    }
  });

  test('the spread of batch means over batch sizes follows 1/√B (without replacement)', () => {
    const rng = new Rng(9);
    const n = 400;
    const h = new Tensor([n, 3], Float32Array.from({ length: n * 3 }, (_, i) => (i % 3 === 2 ? 5 : rng.normal() * (1 + (i % 3)))));
    const rows = batchMeanSpread(h, [2, 8, 32, 128, 400, 500], 400, new Rng(1));
    assert.deepEqual(rows.map((r) => r.batchSize), [2, 8, 32, 128, 400], 'sizes above N are left out');
    for (const r of rows.slice(0, 4)) assert.ok(Math.abs(r.measured / r.predicted - 1) < 0.12, `B ${r.batchSize}: ${r.measured} vs ${r.predicted}`);
    assert.equal(rows[4].predicted, 0, 'a batch of all N has the population mean');
    assert.ok(rows[4].measured < 1e-6);
    // The constant third column has no spread and is left out rather than dividing by 0.
    assert.ok(rows.every((r) => Number.isFinite(r.measured)));
  });

  test('a unit of a training network: batch means, ghost batches, and the noise against 1/√B', () => {
    const model = buildNetwork({ norm: 'batch', seed: 2 });
    const stepper = new Stepper(model, train, { lr: 1, batchSize: 64, seed: 2 });
    const first = new BatchMeanNoise(200);
    const second = new BatchMeanNoise(200);
    for (let i = 0; i < 200; i++) {
      stepper.next();
      const x = stepper.lastBatch.x.reshape([64, 784]);
      const s = unitBatchStatistics(model, x, 0, 3, 16);
      assert.equal(s.ghostMeans.length, 4);
      assert.ok(Math.abs(s.ghostMeans.reduce((a, b) => a + b, 0) / 4 - s.mean) < 1e-5, 'the ghost means average to the batch mean');
      first.add(s);
      second.add(unitBatchStatistics(model, x, 1, 3, 16));
    }
    const e = first.estimate()!;
    assert.equal(e.steps, 200);
    assert.ok(e.measured / e.predicted > 0.7 && e.measured / e.predicted < 1.4, `first hidden layer: measured ${e.measured} vs predicted ${e.predicted}`);
    assert.ok(e.ghostMeasured! / e.ghostPredicted! > 0.7 && e.ghostMeasured! / e.ghostPredicted! < 1.4, `ghost: measured ${e.ghostMeasured} vs predicted ${e.ghostPredicted}`);
    assert.ok(Math.abs(e.ghostPredicted! / e.predicted - 2) < 1e-9, 'σ/√16 is twice σ/√64');
    // Behind a batch norm the whole batch's mean is pinned (the layer before normalized that very batch),
    // so it moves far less than σ/√B; its ghost batches, which that layer did not normalize, do not.
    const d = second.estimate()!;
    assert.ok(d.measured < 0.5 * d.predicted, `second hidden layer: measured ${d.measured} vs predicted ${d.predicted}`);
    assert.ok(d.ghostMeasured! / d.ghostPredicted! > 0.7 && d.ghostMeasured! / d.ghostPredicted! < 1.4, `second layer ghost: measured ${d.ghostMeasured} vs predicted ${d.ghostPredicted}`);
    // The same unit of the network without BN: the same function of its (different) Linear output.
    const plain = buildNetwork({ norm: 'none', seed: 2 });
    assert.equal(afterLinear(plain, 1), 3);
    const x = stepper.lastBatch.x.reshape([64, 784]);
    assert.equal(unitBatchStatistics(plain, x, 1, 3).ghostMeans.length, 1);
    assert.throws(() => unitBatchStatistics(model, x, 1, 3, 7), /ghost-batch size 7 does not divide the batch of 64/);
    assert.throws(() => unitBatchStatistics(model, x, 5, 0), /hidden layer 6 does not exist/);
  });
});

describe('test time', () => {
  test('running averages: raw is pulled towards 0, bias-corrected is the batch average', () => {
    for (const biasCorrection of [true, false]) {
      const bn = new BatchNorm1d(2, { momentum: 0.1, biasCorrection });
      bn.train();
      const x = new Tensor([4, 2], Float32Array.from([1, 10, 3, 10, 1, 14, 3, 14])); // means 2 and 12, unbiased variances 4/3 and 16/3
      for (let t = 0; t < 5; t++) bn.forward(x);
      const r = runningStatistics(bn);
      assert.equal(r.steps, 5);
      const f = 1 - 0.9 ** 5;
      assert.ok(Math.abs(r.raw.mean[1] - 12 * f) < 1e-4, `raw mean ${r.raw.mean[1]}`);
      assert.ok(Math.abs(r.biasCorrected.mean[1] - 12) < 1e-4 && Math.abs(r.biasCorrected.variance[1] - 16 / 3) < 1e-4, `${biasCorrection}: corrected ${r.biasCorrected.mean[1]}, ${r.biasCorrected.variance[1]}`);
      // Without bias correction PyTorch starts the variance at 1: raw = 0.9^5·1 + (1 − 0.9^5)·16/3.
      const rawVar = biasCorrection ? (16 / 3) * f : 0.9 ** 5 + (16 / 3) * f;
      assert.ok(Math.abs(r.raw.variance[1] - rawVar) < 1e-4, `${biasCorrection}: raw variance ${r.raw.variance[1]} vs ${rawVar}`);
    }
  });

  test('running mean probe early in training; accuracy by statistics leaves the model as it was', () => {
    const model = buildNetwork({ norm: 'batch', seed: 3, batchNorm: { momentum: 0.01, biasCorrection: false } });
    const stepper = new Stepper(model, train, { lr: 1, batchSize: 60, seed: 3 });
    for (let i = 0; i < 30; i++) stepper.next();
    const p = runningMeanProbe(model, 0, 7, rows(train, 1000));
    assert.equal(p.steps, 30);
    assert.ok(Math.abs(p.raw) < Math.abs(p.biasCorrected), `raw ${p.raw} is pulled towards 0 against ${p.biasCorrected}`);
    assert.ok(Math.abs(p.biasCorrected - p.population) < Math.abs(p.raw - p.population), `bias-corrected ${p.biasCorrected} is nearer the population mean ${p.population} than raw ${p.raw}`);
    // stateDict() hands out the live tensors: keep copies of their values to compare against.
    const before = new Map([...model.stateDict()].map(([k, t]) => [k, t.data.slice()]));
    const a = accuracyByStatistics(model, train, test1k, { inputShape: [784], batchSize: 60, populationBatches: 10 });
    const after = model.stateDict();
    assert.equal(after.size, before.size);
    assert.ok(before.has('1.running_mean') && before.has('1.num_batches_tracked'), [...before.keys()].join(', '));
    for (const [k, t] of after) assert.deepEqual(t.data, before.get(k), `${k} unchanged`);
    assert.ok(batchNormLayers(model).every((l) => l.statistics === 'auto'));
    for (const k of ['batch', 'raw', 'biasCorrected', 'population'] as const) assert.ok(a[k] >= 0 && a[k] <= 1);
    // Early with a slow average, PyTorch's raw averages (variance started at 1) are far off and cost accuracy; corrected ones do not.
    assert.ok(a.biasCorrected > a.raw + 0.15, `bias-corrected ${a.biasCorrected} vs raw ${a.raw}`);
    assert.ok(a.population > 0.5 && Math.abs(a.population - a.batch) < 0.1, `population ${a.population}, batch ${a.batch}`);
    assert.throws(() => accuracyByStatistics(buildNetwork({ norm: 'none', seed: 1 }), train, test1k, { inputShape: [784] }), /no batch-norm layers/);
  });

  test('a batch of one in training mode: the library refuses, and the formula would give β everywhere', () => {
    const model = buildNetwork({ norm: 'batch', seed: 4 });
    const stepper = new Stepper(model, train, { lr: 1, batchSize: 60, seed: 4 });
    for (let i = 0; i < 20; i++) stepper.next();
    const one = (i: number) => new Tensor([1, 784], test1k.images.slice(i * 784, (i + 1) * 784));
    const a = batchOfOneInTraining(model, one(0));
    const b = batchOfOneInTraining(model, one(1));
    assert.match(a.error!, /batch statistics need more than one value per channel/);
    assert.equal(a.ignoresInput, true);
    assert.deepEqual(a.probabilities, b.probabilities, 'the output does not depend on the input');
    assert.ok(Math.abs(a.probabilities.reduce((s, p) => s + p, 0) - 1) < 1e-5);
    // β into the rest of the network is what the last BN layer's β gives through the final Linear layer.
    const bns = batchNormLayers(model);
    const last = bns[bns.length - 1];
    const idx = model.layers.indexOf(last);
    let h = new Tensor([1, last.numFeatures], Float32Array.from(last.bias!.value.data));
    for (const layer of model.layers.slice(idx + 1)) h = layer.forward(h).clone();
    const want = Array.from(softmax(h).data);
    a.probabilities.forEach((p, i) => assert.ok(Math.abs(p - want[i]) < 1e-6));
    assert.equal(model.training, true, 'modes restored');
    const plain = buildNetwork({ norm: 'none', seed: 4 });
    const c = batchOfOneInTraining(plain, one(0));
    assert.equal(c.error, null);
    assert.equal(c.ignoresInput, false);
    plain.eval();
    const evalOut = Array.from(softmax(plain.forward(one(0))).data);
    c.probabilities.forEach((p, i) => assert.ok(Math.abs(p - evalOut[i]) < 1e-7));
  });
});
