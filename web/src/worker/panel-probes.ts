/**
 * Probes of the panels Inside the network, Batch size and noise, and Test time (the Input scale panel
 * needs none: its two-feature problem runs on the page). Each is library code from src/experiments run
 * on a twin; the few that need memory between steps (the drift reference, the batch-mean history) keep
 * it per model, so a reset (new models) starts them afresh.
 */
import { BatchMeanNoise, batchMeanSpread, unitBatchStatistics } from '@bnlab/experiments/batch-noise.js';
import { InputDrift, activationInputs, afterLinear, histogram, layerInput, unitPercentiles } from '@bnlab/experiments/probe.js';
import { accuracyByStatistics, runningMeanProbe } from '@bnlab/experiments/test-time.js';
import { batchNormLayers } from '@bnlab/nn/batchnorm-modes.js';
import type { Sequential } from '@bnlab/nn/sequential.js';
import type { Dataset } from '@bnlab/data/dataset.js';
import { Rng } from '@bnlab/tensor/rng.js';
import { Tensor } from '@bnlab/tensor/tensor.js';
import { evaluate } from '@bnlab/train/evaluate.js';
import type { ProbeContext, ProbeFn } from './probes.js';
import type { ProbeValue } from './protocol.js';

const num = (v: ProbeValue | undefined, fallback: number) => (typeof v === 'number' && Number.isFinite(v) ? v : fallback);
const clampInt = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, Math.round(v)));

/** Hidden layers of the twin: its activation layers. */
function activationInputsCount(model: Sequential): number {
  return model.layers.filter((l) => ['Sigmoid', 'ReLU', 'Tanh'].includes(l.typeName)).length;
}

const drifts = new WeakMap<Sequential, InputDrift>();
const noises = new WeakMap<Sequential, { key: string; tracker: BatchMeanNoise }>();
const populations = new WeakMap<Dataset, Tensor>();

/** The first `n` training images as one tensor [n, features], made once per dataset. */
function population(ctx: ProbeContext, n = 500): Tensor {
  let t = populations.get(ctx.trainSet);
  if (!t) {
    const features = ctx.trainSet.images.length / ctx.trainSet.count;
    const rows = Math.min(n, ctx.trainSet.count);
    t = new Tensor([rows, features], ctx.trainSet.images.slice(0, rows * features));
    populations.set(ctx.trainSet, t);
  }
  return t;
}

/** The first `n` training images as a Dataset (for train accuracy). */
function trainHead(ctx: ProbeContext, n: number): Dataset {
  const count = Math.min(n, ctx.trainSet.count);
  const per = ctx.trainSet.images.length / ctx.trainSet.count;
  return { ...ctx.trainSet, count, images: ctx.trainSet.images.subarray(0, count * per), labels: ctx.trainSet.labels.subarray(0, count) };
}

export const PANEL_PROBES: Record<string, ProbeFn> = {
  /**
   * Inside the network, on the fixed probe batch: the 15/50/85th percentiles of hidden layer `layer`
   * (from 0), unit `unit`'s activation input; every layer's drift since step `referenceStep` (null
   * before it); and a histogram of layer `layer`'s activation inputs over [min, max).
   */
  inside: (ctx, params) => {
    const inputs = activationInputs(ctx.model, ctx.probeInput);
    const layer = clampInt(num(params.layer, 0), 0, inputs.length - 1);
    const unit = clampInt(num(params.unit, 0), 0, inputs[layer].units - 1);
    const referenceStep = Math.max(0, num(params.referenceStep, 0));
    let drift = drifts.get(ctx.model);
    // A reference for a step already passed cannot be recovered: the first probe at or after it becomes the reference.
    if (ctx.step >= referenceStep && (!drift || drift.step < referenceStep)) {
      drift = new InputDrift(ctx.step, inputs);
      drifts.set(ctx.model, drift);
    }
    const d = drift ? drift.drift(inputs).map((x) => x.relative) : null;
    const pooled = inputs[layer].values;
    const lo = num(params.min, -8);
    const hi = num(params.max, 8);
    const h = histogram(pooled, lo, Math.max(hi, lo + 1e-6), clampInt(num(params.bins, 48), 4, 200));
    const all = new Float32Array(pooled.length * (pooled[0]?.length ?? 0));
    pooled.forEach((v, u) => all.set(v, u * v.length));
    const [p1, p99] = unitPercentiles(all, [1, 99]);
    return {
      layer,
      unit,
      percentiles: unitPercentiles(inputs[layer].values[unit]),
      drift: d,
      referenceStep: drift ? drift.step : null,
      histogram: { min: h.min, max: h.max, counts: h.counts, below: h.below, above: h.above, total: h.total },
      p1,
      p99,
      layers: inputs.length,
    };
  },

  /**
   * Batch size and noise, every step: unit `unit` of hidden layer `layer`'s batch mean on the batch it
   * just trained on (earlier batch norms normalizing that batch as in training), its step-to-step noise
   * over the last `window` steps against σ/√B, and with `ghost` (a ghost-batch size) the ghost means'.
   */
  noise: (ctx, params) => {
    const batch = ctx.lastBatch;
    if (!batch) return null;
    const b = batch.labels.length;
    const x = batch.x.reshape([b, ctx.spec.inputSize]);
    const layer = clampInt(num(params.layer, 0), 0, activationInputsCount(ctx.model) - 1);
    const ghostWanted = num(params.ghost, 0);
    const ghost = ghostWanted > 0 && ghostWanted < b && b % ghostWanted === 0 ? ghostWanted : null;
    const stats = unitBatchStatistics(ctx.model, x, layer, clampInt(num(params.unit, 0), 0, 1e6), ghost);
    const key = `${layer}/${stats.ghostSize}/${num(params.unit, 0)}/${num(params.window, 100)}`;
    let noise = noises.get(ctx.model);
    // Another unit, layer or window starts a new series.
    if (!noise || noise.key !== key) {
      noise = { key, tracker: new BatchMeanNoise(clampInt(num(params.window, 100), 2, 1000)) };
      noises.set(ctx.model, noise);
    }
    noise.tracker.add(stats);
    const e = noise.tracker.estimate();
    return { layer, unit: num(params.unit, 0), mean: stats.mean, estimate: e ? { ...e } : null };
  },

  /**
   * Batch size and noise, now and then: the spread of batch means of hidden layer `layer` (every unit,
   * RMS) over random batches of several sizes drawn from the probe batch, against 1/√B; and train vs
   * test accuracy (first 2,000 training images against the lab's test images).
   */
  'noise-curve': (ctx, params) => {
    const layer = clampInt(num(params.layer, 0), 0, activationInputsCount(ctx.model) - 1);
    const h = layerInput(ctx.model, ctx.probeInput, afterLinear(ctx.model, layer), { batchStatistics: true });
    const rows = batchMeanSpread(h, [2, 4, 8, 16, 32, 64, 128, 256], 40, new Rng(ctx.spec.seed + 7));
    const inputShape = [ctx.spec.inputSize];
    const train = evaluate(ctx.model, trainHead(ctx, 2000), { inputShape }).accuracy;
    const test = evaluate(ctx.model, ctx.testSet, { inputShape }).accuracy;
    return { layer, rows: rows.map((r) => ({ ...r })), train, test };
  },

  /**
   * Test time, early and often: unit `unit` of batch-norm layer `layer`: its running mean raw and
   * bias-corrected against the population mean over 500 training images. Null for a twin without batch norm.
   */
  'running-mean': (ctx, params) => {
    const bns = batchNormLayers(ctx.model);
    if (bns.length === 0) return null;
    // Input batch norm counts as layer 0 when present; the panel's layer is a hidden one.
    const offset = ctx.spec.inputBn ? 1 : 0;
    const layer = clampInt(num(params.layer, 0) + offset, 0, bns.length - 1);
    const unit = clampInt(num(params.unit, 0), 0, bns[layer].numFeatures - 1);
    const p = runningMeanProbe(ctx.model, layer, unit, population(ctx));
    return { ...p, layer: layer - offset, unit };
  },

  /**
   * Test time, on a log-spaced schedule (every 10 steps up to 100, every 100 up to 1,000, then every
   * 500; ask for it every 10 steps): test accuracy with batch statistics, raw and bias-corrected running
   * averages, and population statistics.
   */
  'accuracy-by-statistics': (ctx) => {
    const s = ctx.step;
    if (!(s > 0 && (s <= 100 ? s % 10 === 0 : s <= 1000 ? s % 100 === 0 : s % 500 === 0))) return null;
    const bns = batchNormLayers(ctx.model);
    // Before the first step the running averages hold nothing to compare.
    if (bns.length === 0 || bns[0].numBatchesTracked === 0) return null;
    const a = accuracyByStatistics(ctx.model, ctx.trainSet, ctx.testSet, { inputShape: [ctx.spec.inputSize], batchSize: Math.max(2, ctx.spec.batchSize), populationBatches: 20 });
    return { ...a };
  },
};
