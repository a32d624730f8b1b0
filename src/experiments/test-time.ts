/**
 * Batch norm at test time, probed on a live network: what its running averages hold (raw and
 * bias-corrected) against the population statistics, test accuracy under each choice of statistics,
 * and what a batch of one in training mode gives.
 *
 * Shape legend: N = examples, C = channels of a batch-norm layer.
 * Raw running average after t updates of momentum m, started at a0 (0 for the mean; 0 for the variance
 * with bias correction, 1 without, as PyTorch): r_t = (1−m)^t·a0 + Σ m(1−m)^(t−k)·b_k.
 * Bias-corrected: (r_t − (1−m)^t·a0) / (1 − (1−m)^t), a weighted mean of the batch values b_k alone.
 */
import type { Dataset } from '../data/dataset.js';
import { BatchNormBase } from '../nn/batchnorm.js';
import { batchNormLayers } from '../nn/batchnorm-modes.js';
import { softmax } from '../nn/loss.js';
import { recomputeBatchNormStats } from '../nn/precise-bn.js';
import type { Sequential } from '../nn/sequential.js';
import { Tensor } from '../tensor/tensor.js';
import { evaluate } from '../train/evaluate.js';
import { layerInput } from './probe.js';

/** A layer's running averages as stored, and bias-corrected, per channel. */
export interface RunningStatistics {
  /** Updates so far (num_batches_tracked). */
  steps: number;
  /** null: the cumulative average. */
  momentum: number | null;
  raw: { mean: Float32Array; variance: Float32Array };
  biasCorrected: { mean: Float32Array; variance: Float32Array };
}

export function runningStatistics(layer: BatchNormBase): RunningStatistics {
  if (!layer.runningMean || !layer.runningVar) throw new Error(`${layer.describe()}: no running statistics (trackRunningStats is false)`);
  const t = layer.numBatchesTracked;
  const m = layer.momentum;
  const rawMean = Float32Array.from(layer.runningMean.data);
  const rawVar = Float32Array.from(layer.runningVar.data);
  const mean = new Float32Array(layer.numFeatures);
  const variance = new Float32Array(layer.numFeatures);
  // The cumulative average (momentum null) and t = 0 have no start to remove.
  const keep = m === null || t === 0 ? 1 : (1 - m) ** t;
  const varStart = layer.biasCorrection ? 0 : 1;
  for (let c = 0; c < layer.numFeatures; c++) {
    if (m === null || t === 0) {
      mean[c] = rawMean[c];
      variance[c] = t === 0 ? 1 : rawVar[c];
    } else {
      mean[c] = rawMean[c] / (1 - keep);
      variance[c] = (rawVar[c] - keep * varStart) / (1 - keep);
    }
  }
  if (t === 0) mean.fill(0);
  return { steps: t, momentum: m, raw: { mean: rawMean, variance: rawVar }, biasCorrected: { mean, variance } };
}

export interface RunningMeanProbe {
  steps: number;
  momentum: number | null;
  /** The running mean as stored (zero-started: pulled towards 0 for the first ~1/momentum steps). */
  raw: number;
  biasCorrected: number;
  /** The mean of the layer's input over `population` with the current weights (earlier batch norms normalizing with the population batch's own statistics). */
  population: number;
}

/** Unit `channel` of the `layer`-th (from 0) batch-norm layer: its running mean, raw and bias-corrected, against the population mean over `population` [N, ...]. */
export function runningMeanProbe(model: Sequential, layer: number, channel: number, population: Tensor): RunningMeanProbe {
  const bns = batchNormLayers(model);
  if (!Number.isInteger(layer) || layer < 0 || layer >= bns.length) throw new Error(`runningMeanProbe: the model has ${bns.length} batch-norm layers; layer must be in [0, ${bns.length - 1}], got ${layer}`);
  const bn = bns[layer];
  if (!Number.isInteger(channel) || channel < 0 || channel >= bn.numFeatures) throw new Error(`runningMeanProbe: channel must be an integer in [0, ${bn.numFeatures - 1}], got ${channel}`);
  const index = model.layers.indexOf(bn);
  if (index < 0) throw new Error('runningMeanProbe: the batch-norm layer is not a direct layer of the Sequential');
  const h = layerInput(model, population, index, { batchStatistics: true });
  const n = h.shape[0];
  const per = h.size / n;
  const inner = per / bn.numFeatures;
  let s = 0;
  for (let r = 0; r < n; r++) for (let i = 0; i < inner; i++) s += h.data[r * per + channel * inner + i];
  const stats = runningStatistics(bn);
  return { steps: stats.steps, momentum: stats.momentum, raw: stats.raw.mean[channel], biasCorrected: stats.biasCorrected.mean[channel], population: s / (n * inner) };
}

/** Test accuracy of one set of weights under each choice of normalization statistics. */
export interface AccuracyByStatistics {
  /** Each test batch (of `batchSize`) normalized with its own statistics, as in training. */
  batch: number;
  /** The running averages as stored. */
  raw: number;
  biasCorrected: number;
  /** Statistics recomputed over `populationBatches` with the weights fixed (precise BN). */
  population: number;
  batchSize: number;
  populationBatches: number;
}

export interface AccuracyByStatisticsOptions {
  inputShape: readonly number[];
  /** Test batch size for the batch-statistics figure. Default 60. */
  batchSize?: number;
  /** Training batches for the population statistics. Default 20. */
  populationBatches?: number;
}

/**
 * Test accuracy of `model` on `test` with batch statistics, raw running averages, bias-corrected ones
 * and population statistics over the first batches of `train`. The model's running statistics, modes
 * and statistics settings are the same afterwards, bit for bit.
 */
export function accuracyByStatistics(model: Sequential, train: Dataset, test: Dataset, options: AccuracyByStatisticsOptions): AccuracyByStatistics {
  const batchSize = options.batchSize ?? 60;
  const populationBatches = options.populationBatches ?? 20;
  const inputShape = options.inputShape;
  if (!Number.isInteger(batchSize) || batchSize < 2) throw new Error(`accuracyByStatistics: batchSize must be an integer of at least 2 (batch statistics of one example are 0), got ${batchSize}`);
  const bns = batchNormLayers(model);
  if (bns.length === 0) throw new Error('accuracyByStatistics: the model has no batch-norm layers');
  const saved = bns.map((l) => ({ statistics: l.statistics, mean: l.runningMean ? Float32Array.from(l.runningMean.data) : null, variance: l.runningVar ? Float32Array.from(l.runningVar.data) : null, t: l.numBatchesTracked }));
  const restore = () =>
    bns.forEach((l, i) => {
      const s = saved[i];
      l.statistics = s.statistics;
      if (l.runningMean && s.mean) l.runningMean.data.set(s.mean);
      if (l.runningVar && s.variance) l.runningVar.data.set(s.variance);
      if (l.numBatchesTrackedTensor) l.numBatchesTrackedTensor.data[0] = s.t;
    });
  const acc = (ds: Dataset, b = 1000) => evaluate(model, ds, { inputShape, batchSize: b }).accuracy;
  try {
    const whole = Math.floor(test.count / batchSize) * batchSize;
    if (whole === 0) throw new Error(`accuracyByStatistics: the test set (${test.count}) is smaller than one batch of ${batchSize}`);
    for (const l of bns) l.statistics = 'batch-frozen';
    const batch = acc({ ...test, count: whole, images: test.images.subarray(0, (whole * test.images.length) / test.count), labels: test.labels.subarray(0, whole) }, batchSize);
    restore();
    const running = bns.map((l) => (l.trackRunningStats ? runningStatistics(l) : null));
    const withStatistics = (pick: 'raw' | 'biasCorrected') => {
      bns.forEach((l, i) => {
        const r = running[i];
        if (!r || r.steps === 0) return;
        l.setRunningStatistics(r[pick].mean, r[pick].variance.map((v) => Math.max(0, v)), r.steps);
      });
      const a = acc(test);
      restore();
      return a;
    };
    const raw = withStatistics('raw');
    const biasCorrected = withStatistics('biasCorrected');
    const features = train.images.length / train.count;
    const batches = function* () {
      for (let b = 0; b < populationBatches && (b + 1) * batchSize <= train.count; b++) {
        yield new Tensor([batchSize, ...inputShape], train.images.slice(b * batchSize * features, (b + 1) * batchSize * features));
      }
    };
    recomputeBatchNormStats(model, batches());
    const population = acc(test);
    return { batch, raw, biasCorrected, population, batchSize, populationBatches };
  } finally {
    restore();
  }
}

export interface BatchOfOne {
  /** What the library says when asked to normalize one example with batch statistics (null when it has no batch norm). */
  error: string | null;
  /**
   * What the arithmetic gives: with one value per channel the batch mean is the value itself and the
   * variance 0, so every batch norm outputs (x − x)/√eps·γ + β = β, whatever the input. Softmax probabilities.
   */
  probabilities: number[];
  /** True when the output does not depend on the input (some batch-norm layer sits on the path). */
  ignoresInput: boolean;
}

/**
 * One example [1, ...] through `model` in training mode with batch statistics: the library refuses
 * (error), and this computes what the formula would give, each batch-norm layer emitting its β. Without
 * batch norm that is simply the eval-mode output. Nothing in the model changes.
 */
export function batchOfOneInTraining(model: Sequential, x: Tensor): BatchOfOne {
  if (x.shape[0] !== 1) throw new Error(`batchOfOneInTraining: expected a batch of one, got shape [${x.shape.join(', ')}]`);
  const modes = [...model.modules()].map((m) => m.training);
  const bns = batchNormLayers(model);
  const statistics = bns.map((l) => l.statistics);
  let error: string | null = null;
  try {
    model.eval();
    if (bns.length) {
      for (const l of bns) l.statistics = 'batch-frozen';
      try {
        model.forward(x);
      } catch (e) {
        error = e instanceof Error ? e.message : String(e);
      }
    }
    let h = x;
    for (const layer of model.layers) {
      if (layer instanceof BatchNormBase) {
        const out = new Tensor(h.shape);
        const per = out.size / layer.numFeatures;
        const beta = layer.bias?.value.data;
        for (let c = 0; c < layer.numFeatures; c++) out.data.fill(beta ? beta[c] : 0, c * per, (c + 1) * per);
        h = out;
      } else {
        h = layer.forward(h).clone();
      }
    }
    return { error, probabilities: Array.from(softmax(h).data), ignoresInput: bns.length > 0 };
  } finally {
    [...model.modules()].forEach((m, i) => (m.training = modes[i]));
    bns.forEach((l, i) => (l.statistics = statistics[i]));
  }
}
