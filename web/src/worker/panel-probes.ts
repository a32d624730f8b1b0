/**
 * Probes of the panels Inside the network, Batch size and noise, and Test time (the Input scale panel
 * needs none: its two-feature problem runs on the page). Each is library code from src/experiments run
 * on a twin; the few that need memory between steps (the drift reference, the batch-mean history) keep
 * it per model, so a reset (new models) starts them afresh.
 */
import { BatchMeanNoise, batchMeanSpread, unitBatchStatistics, type BatchMeanNoiseEstimate, type SpreadRow, type UnitBatchStatistics } from '@bnlab/experiments/batch-noise.js';
import { BatchNormBase } from '@bnlab/nn/batchnorm.js';
import { Linear } from '@bnlab/nn/linear.js';
import { InputDrift, activationInputs, afterLinear, histogram, layerInput, unitPercentiles } from '@bnlab/experiments/probe.js';
import { accuracyByStatistics, runningMeanProbe, type AccuracyByStatistics, type RunningMeanProbe } from '@bnlab/experiments/test-time.js';
import { batchNormLayers } from '@bnlab/nn/batchnorm-modes.js';
import type { Sequential } from '@bnlab/nn/sequential.js';
import type { Dataset } from '@bnlab/data/dataset.js';
import { Rng } from '@bnlab/tensor/rng.js';
import { Tensor } from '@bnlab/tensor/tensor.js';
import { evaluate } from '@bnlab/train/evaluate.js';
import type { ProbeContext } from './probes.js';
import { ghostFits, type ProbeValue } from './protocol.js';

/**
 * What each panel probe answers: the one declaration of these shapes, for the functions below (which
 * must return them) and for the panels (which read them through `probeSamples` in ../engine.ts).
 */
export interface PanelProbeValues {
  inside: {
    layer: number;
    unit: number;
    /** 15th, 50th and 85th percentiles of the unit's activation input. */
    percentiles: number[];
    /** Each hidden layer's drift since `referenceStep` (null before it). */
    drift: number[] | null;
    referenceStep: number | null;
    histogram: { min: number; max: number; counts: number[]; below: number; above: number; total: number };
    /** The 99th percentile of |value| over the layer's units and examples: what the histogram range follows. */
    extent: number;
    layers: number;
  };
  noise: { layer: number; unit: number; mean: number; every: number; estimate: BatchMeanNoiseEstimate | null };
  /** Train and test accuracy are null before the first step. */
  'noise-curve': { layer: number; rows: SpreadRow[]; train: number | null; test: number | null };
  'running-mean': RunningMeanProbe & { layer: number; unit: number };
  'accuracy-by-statistics': AccuracyByStatistics;
}
export type PanelProbeName = keyof PanelProbeValues;

/** A panel probe: its value, null where it does not apply to the twin, undefined when not due at this step. */
type PanelProbeFn<K extends PanelProbeName> = (ctx: ProbeContext, params: { [key: string]: ProbeValue }) => PanelProbeValues[K] | null | undefined;

/**
 * Dense early, sparse later, so that probes cost little once training runs fast: `schedule` lists
 * [untilStep, every] pairs; the last pair holds for every later step. Step 0 is always due.
 */
export function due(step: number, schedule: readonly (readonly [number, number])[]): boolean {
  if (step === 0) return true;
  for (const [until, every] of schedule) if (step <= until) return step % every === 0;
  const every = schedule[schedule.length - 1][1];
  return step % every === 0;
}

export const INSIDE_SCHEDULE = [[100, 25], [1000, 100], [Infinity, 500]] as const;
export const NOISE_CURVE_SCHEDULE = [[100, 50], [1000, 250], [Infinity, 1000]] as const;
export const RUNNING_MEAN_STEPS = [1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500];
export const RUNNING_MEAN_EVERY_AFTER = 500;
export const ACCURACY_STEPS = [50, 200, 1000];
/** Probe examples for the inside view and the running mean: the first of the fixed probe batch / of the training set. */
export const INSIDE_EXAMPLES = 250;
export const POPULATION_EXAMPLES = 250;
/** Examples for the train-vs-test accuracy and the test-time accuracies: the first of each set. */
export const ACCURACY_EXAMPLES = 500;
/** The network without batch norm measures its batch mean by an extra forward, every this many steps. */
export const PLAIN_NOISE_EVERY = 4;

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
function population(ctx: ProbeContext, n = POPULATION_EXAMPLES): Tensor {
  let t = populations.get(ctx.trainSet);
  if (!t) {
    const features = ctx.trainSet.images.length / ctx.trainSet.count;
    const rows = Math.min(n, ctx.trainSet.count);
    t = new Tensor([rows, features], ctx.trainSet.images.slice(0, rows * features));
    populations.set(ctx.trainSet, t);
  }
  return t;
}

const probeHeads = new WeakMap<Tensor, Tensor>();

/** The first INSIDE_EXAMPLES rows of the fixed probe batch (the same images for both twins and every step). */
function probeHead(ctx: ProbeContext): Tensor {
  let t = probeHeads.get(ctx.probeInput);
  if (!t) {
    const [n, f] = ctx.probeInput.shape;
    const rows = Math.min(n, INSIDE_EXAMPLES);
    t = new Tensor([rows, f], ctx.probeInput.data.slice(0, rows * f));
    probeHeads.set(ctx.probeInput, t);
  }
  return t;
}

/** The first `n` samples of a set. */
function head(ds: Dataset, n: number): Dataset {
  const count = Math.min(n, ds.count);
  const per = ds.images.length / ds.count;
  return { ...ds, count, images: ds.images.subarray(0, count * per), labels: ds.labels.subarray(0, count) };
}

export const PANEL_PROBES: { [K in PanelProbeName]: PanelProbeFn<K> } = {
  /**
   * Inside the network, on the fixed probe batch: the 15/50/85th percentiles of hidden layer `layer`
   * (from 0), unit `unit`'s activation input; every layer's drift since step `referenceStep` (null
   * before it); and a histogram of layer `layer`'s activation inputs over [min, max).
   */
  inside: (ctx, params) => {
    if (!due(ctx.step, INSIDE_SCHEDULE)) return undefined;
    const inputs = activationInputs(ctx.evalModel(), probeHead(ctx));
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
    return {
      extent: absPercentile(pooled, 0.99),
      layer,
      unit,
      percentiles: unitPercentiles(inputs[layer].values[unit]),
      drift: d,
      referenceStep: drift ? drift.step : null,
      histogram: { min: h.min, max: h.max, counts: h.counts, below: h.below, above: h.above, total: h.total },
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
    const layer = clampInt(num(params.layer, 0), 0, activationInputsCount(ctx.model) - 1);
    // A unit past the layer's width measures its last unit, and says so in `unit` (the panel filters on it).
    const unit = clampInt(num(params.unit, 0), 0, linearWidth(ctx.model, layer) - 1);
    const ghostWanted = num(params.ghost, 0);
    const ghost = ghostFits(ghostWanted, b) ? ghostWanted : null;
    // The batch norm of that layer kept the statistics of the step it just took: free, exact. Otherwise
    // (no batch norm, ghost batches to split, or an evaluation since) an extra forward of the batch.
    const bn = batchNormAfterLinear(ctx.model, layer);
    const kept = !ghost && bn ? bn.lastBatchStatistics() : null;
    let stats: UnitBatchStatistics;
    if (kept && unit < kept.mean.length) {
      stats = { batchSize: b, mean: kept.mean[unit], variance: kept.variance[unit], ghostSize: b, ghostMeans: [kept.mean[unit]] };
    } else {
      if (!bn && ctx.step % PLAIN_NOISE_EVERY !== 0) return undefined;
      stats = unitBatchStatistics(ctx.model, batch.x.reshape([b, ctx.spec.inputSize]), layer, unit, ghost);
    }
    const window = clampInt(num(params.window, 100), 2, 1000);
    const key = `${layer}/${stats.ghostSize}/${unit}/${window}`;
    let noise = noises.get(ctx.model);
    // Another unit, layer or window starts a new series.
    if (!noise || noise.key !== key) {
      noise = { key, tracker: new BatchMeanNoise(window) };
      noises.set(ctx.model, noise);
    }
    noise.tracker.add(stats);
    const e = noise.tracker.estimate();
    return { layer, unit, mean: stats.mean, every: bn ? 1 : PLAIN_NOISE_EVERY, estimate: e };
  },

  /**
   * Batch size and noise, now and then: the spread of batch means of hidden layer `layer` (every unit,
   * RMS) over random batches of several sizes drawn from the probe batch, against 1/√B; and train vs
   * test accuracy (first 2,000 training images against the lab's test images).
   */
  'noise-curve': (ctx, params) => {
    if (!due(ctx.step, NOISE_CURVE_SCHEDULE)) return undefined;
    const layer = clampInt(num(params.layer, 0), 0, activationInputsCount(ctx.model) - 1);
    const model = ctx.evalModel();
    const h = layerInput(model, ctx.probeInput, afterLinear(model, layer), { batchStatistics: true });
    const rows = batchMeanSpread(h, [2, 4, 8, 16, 32, 64, 128, 256], 20, new Rng(ctx.spec.seed + 7));
    const inputShape = [ctx.spec.inputSize];
    // Before the first step the running averages hold nothing: eval mode would normalize with mean 0, variance 1.
    if (batchNormLayers(ctx.model).some((l) => l.numBatchesTracked === 0)) return { layer, rows, train: null, test: null };
    const train = evaluate(model, head(ctx.trainSet, ACCURACY_EXAMPLES), { inputShape }).accuracy;
    const test = evaluate(model, head(ctx.testSet, ACCURACY_EXAMPLES), { inputShape }).accuracy;
    return { layer, rows, train, test };
  },

  /**
   * Test time, early and often: unit `unit` of batch-norm layer `layer`: its running mean raw and
   * bias-corrected against the population mean over 500 training images. Null for a twin without batch norm.
   */
  'running-mean': (ctx, params) => {
    if (!(RUNNING_MEAN_STEPS.includes(ctx.step) || (ctx.step > 500 && ctx.step % RUNNING_MEAN_EVERY_AFTER === 0))) return undefined;
    const bns = batchNormLayers(ctx.model);
    if (bns.length === 0) return null;
    // Input batch norm counts as layer 0 when present; the panel's layer is a hidden one.
    const offset = ctx.spec.inputBn ? 1 : 0;
    const layer = clampInt(num(params.layer, 0) + offset, 0, bns.length - 1);
    const unit = clampInt(num(params.unit, 0), 0, bns[layer].numFeatures - 1);
    const p = runningMeanProbe(ctx.evalModel(), layer, unit, population(ctx));
    return { ...p, layer: layer - offset, unit };
  },

  /**
   * Test time, on a log-spaced schedule (every 10 steps up to 100, every 100 up to 1,000, then every
   * 500; ask for it every 10 steps): test accuracy with batch statistics, raw and bias-corrected running
   * averages, and population statistics.
   */
  'accuracy-by-statistics': (ctx) => {
    const s = ctx.step;
    if (!(ACCURACY_STEPS.includes(s) || (s > 1000 && s % 2000 === 0))) return undefined;
    const bns = batchNormLayers(ctx.model);
    if (bns.length === 0) return null;
    return accuracyByStatistics(ctx.evalModel(), ctx.trainSet, head(ctx.testSet, ACCURACY_EXAMPLES), { inputShape: [ctx.spec.inputSize], batchSize: Math.max(2, Math.min(ctx.spec.batchSize, 100)), populationBatches: 10 });
  },
};

/** Units of hidden layer `hidden` (its Linear layer's outputs). */
function linearWidth(model: Sequential, hidden: number): number {
  const linear = model.layers[afterLinear(model, hidden) - 1];
  return linear instanceof Linear ? linear.outFeatures : 1;
}

/** The `q` quantile of |v| over all values (non-finite ones left out); 0 when there are none. */
function absPercentile(units: Float32Array[], q: number): number {
  const all: number[] = [];
  for (const u of units) for (const v of u) if (Number.isFinite(v)) all.push(Math.abs(v));
  if (all.length === 0) return 0;
  const sorted = Float64Array.from(all).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** The batch norm right after hidden layer `hidden`'s Linear layer (before its activation), or null. */
function batchNormAfterLinear(model: Sequential, hidden: number): BatchNormBase | null {
  const next = model.layers[afterLinear(model, hidden)];
  return next instanceof BatchNormBase ? next : null;
}
