/**
 * `inference`: batch norm at test time.
 *
 * 1. Testing on a single example: in eval mode every BN layer uses fixed statistics, so a prediction
 *    cannot depend on the rest of the batch. Predictions made one example at a time are compared with
 *    the batched ones.
 * 2. Which fixed statistics: the same network trains with its running averages kept three ways and is
 *    tested along the way — plain EMA (PyTorch's: starts at mean 0, variance 1), bias-corrected EMA
 *    (bnlab's default: starts at 0, divided by 1 − (1 − momentum)^t) and population statistics
 *    recomputed over training batches with the weights fixed (`recomputeBatchNormStats`). Training
 *    does not read the running averages, so the networks that differ only in them get identical weights
 *    from the same seed; the experiment checks that they do.
 * 3. Batch statistics at test time: the trained network normalizing each test batch with its own
 *    statistics, for small test batches.
 */
import { DataLoader } from '../data/loader.js';
import type { Dataset } from '../data/dataset.js';
import { batchNormLayers } from '../nn/batchnorm-modes.js';
import { recomputeBatchNormStats } from '../nn/precise-bn.js';
import type { Sequential } from '../nn/sequential.js';
import { xyChart, type Figure, type Row } from '../report/charts.js';
import { Tensor } from '../tensor/tensor.js';
import { evaluate } from '../train/evaluate.js';
import { firstUpTo } from './data.js';
import { formatCount, formatNumber, formatPercent, formatPoints, formatValue } from './format.js';
import { BASE_LR, INPUT_SHAPE, baseModelDescription, buildNetwork, copyNetwork, type NetworkOptions } from './models.js';
import { ProgressTicker } from './progress.js';
import { runEverySeed, startRun } from './settings.js';
import { figuresOverSeeds, type EffectMeasure } from './seeds.js';
import { logSteps } from './stats.js';
import { Stepper } from './train-run.js';
import type { ExperimentDefinition, ExperimentOptions, ExperimentResult } from './types.js';

export interface InferenceSettings {
  steps: number;
  batchSize: number;
  lr: number;
  /** BN momenta (PyTorch's convention) to compare the running averages at. */
  momenta: number[];
  /** Evaluation points per factor of 10 in steps (log-spaced: the running averages matter early). */
  evalPerDecade: number;
  testSize: number;
  /** Test examples predicted one at a time and in one batch. */
  singleSize: number;
  /** Test batch sizes for test-time batch statistics. */
  testBatchSizes: number[];
  /** Training batches averaged by the population statistics. */
  recomputeBatches: number;
}

export type InferenceOptions = ExperimentOptions & Partial<InferenceSettings>;

export const INFERENCE_DEFAULTS: InferenceSettings = {
  steps: 5_000,
  batchSize: 60,
  lr: BASE_LR,
  momenta: [0.1, 0.01],
  evalPerDecade: 6,
  testSize: 10_000,
  singleSize: 1_000,
  testBatchSizes: [2, 4, 8, 16, 32, 64, 128, 256],
  recomputeBatches: 100,
};

export const INFERENCE_QUICK: InferenceSettings = {
  steps: 200,
  batchSize: 60,
  lr: BASE_LR,
  momenta: [0.1, 0.01],
  evalPerDecade: 4,
  testSize: 1_000,
  singleSize: 200,
  testBatchSizes: [2, 8, 32, 128],
  recomputeBatches: 20,
};

export type StatisticsKind = 'plain EMA' | 'bias-corrected EMA' | 'population';
export const STATISTICS_KINDS: readonly StatisticsKind[] = ['plain EMA', 'bias-corrected EMA', 'population'];

export interface StatisticsPoint {
  step: number;
  momentum: number;
  kind: StatisticsKind;
  accuracy: number;
}

export interface SingleExampleCheck {
  examples: number;
  /** Examples whose predicted class differs between one-at-a-time and batched eval. */
  mismatches: number;
  /** Largest |logit difference| over all examples and classes. */
  maxAbsDiff: number;
  /** maxAbsDiff divided by the largest |logit|. */
  maxRelDiff: number;
  /** Every logit bit for bit the same. */
  identical: boolean;
}

export interface InferenceData {
  single: SingleExampleCheck;
  statistics: StatisticsPoint[];
  /** The networks that differ only in their running averages ended with identical weights. */
  identicalWeights: boolean;
  /** Test accuracy with batch statistics at each test batch size, and with the running statistics. */
  batchStatistics: Array<{ batchSize: number; accuracy: number }>;
  runningAccuracy: number;
  /** Per momentum: the first evaluated step from which plain EMA stays within 1 point of bias-corrected. */
  plainCatchesUp: Array<{ momentum: number; step: number | null }>;
  /**
   * Per momentum: mean test accuracy of each kind over the evaluations in the first 1/momentum steps,
   * where a zero-started average is still far from the statistics it tracks.
   */
  early: Array<{ momentum: number; untilStep: number; plain: number; biasCorrected: number; population: number }>;
}

export type InferenceResult = ExperimentResult<InferenceData>;

export async function runInference(options: InferenceOptions): Promise<InferenceResult> {
  const start = startRun('inference', options, INFERENCE_DEFAULTS, INFERENCE_QUICK, ['steps', 'batchSize', 'evalPerDecade', 'testSize', 'singleSize', 'recomputeBatches']);
  const { data, settings: s } = start;
  if (s.momenta.length === 0 || s.momenta.some((m) => !(m > 0 && m <= 1))) throw new Error(`inference: momenta must be a non-empty list of numbers in (0, 1], got ${JSON.stringify(s.momenta)}`);
  const test = firstUpTo(data.test, s.testSize);
  const evalSteps = new Set(logSteps(s.steps, s.evalPerDecade));
  const progress = new ProgressTicker(start.seeds.length * 2 * s.momenta.length * s.steps, options.onProgress);
  const seedText = (seed: number) => (start.seeds.length > 1 ? `seed ${seed}: ` : '');

  const one = async (seed: number) => {
    // One network per (momentum, bias correction), all from the same seed, trained in lockstep.
    const variants = s.momenta.flatMap((momentum) =>
      [true, false].map((biasCorrection) => {
        const net: NetworkOptions = { norm: 'batch', seed, batchNorm: { momentum, biasCorrection } };
        const model = buildNetwork(net);
        return { momentum, biasCorrection, net, model, stepper: new Stepper(model, data.train, { lr: s.lr, batchSize: s.batchSize, seed }) };
      }),
    );
    const statistics: StatisticsPoint[] = [];
    progress.setPhase(`${seedText(seed)}training with plain and bias-corrected running averages`);
    for (let step = 1; step <= s.steps; step++) {
      for (const v of variants) {
        const loss = v.stepper.next();
        if (!Number.isFinite(loss)) throw new Error(`inference: training diverged at step ${step} with lr ${s.lr}; use a smaller lr`);
        await progress.tick();
      }
      if (!evalSteps.has(step)) continue;
      for (const v of variants) {
        statistics.push({ step, momentum: v.momentum, kind: v.biasCorrection ? 'bias-corrected EMA' : 'plain EMA', accuracy: accuracy(v.model, test) });
      }
      // Population statistics depend on the weights only, which every variant shares.
      const population = withPopulationStatistics(variants[0].net, variants[0].model, data.train, s, seed);
      const acc = accuracy(population, test);
      for (const momentum of s.momenta) statistics.push({ step, momentum, kind: 'population', accuracy: acc });
    }
    const identicalWeights = variants.every((v) => sameParameters(v.model, variants[0].model));

    progress.setPhase(`${seedText(seed)}single-example and test-time batch statistics`);
    const trained = variants[0].model;
    const single = singleExampleCheck(trained, firstUpTo(test, s.singleSize));
    const runningAccuracy = accuracy(trained, test);
    const batchStatistics = s.testBatchSizes.map((b) => ({ batchSize: b, accuracy: batchStatisticsAccuracy(trained, test, b) }));
    const plainCatchesUp = s.momenta.map((momentum) => ({ momentum, step: catchUpStep(statistics, momentum) }));
    const early = s.momenta.map((momentum) => earlyMeans(statistics, momentum));

    const resultData: InferenceData = { single, statistics, identicalWeights, batchStatistics, runningAccuracy, plainCatchesUp, early };
    return { data: resultData, ...describe(resultData) };
  };
  return runEverySeed(start, one, {
    title: 'Batch norm at test time',
    question: 'Can a BN network predict one example at a time, which running statistics should it use, and what if it normalizes small test batches with their own statistics?',
    settings: { ...s, model: `${baseModelDescription()} with BN`, optimizer: 'SGD, no momentum', testSet: `${data.test.name} test, first ${formatCount(test.count)}` },
    effects: inferenceEffects,
  });
}

/** The claims about test time as one seed shows them. */
export function inferenceEffects(d: InferenceData): EffectMeasure[] {
  const e0 = d.early.reduce((a, b) => (b.momentum < a.momentum ? b : a));
  const smallest = d.batchStatistics[0];
  return [
    { id: 'single-example', claim: 'single-example eval predicts what batched eval predicts', label: `predictions that differ, single vs batched (of ${formatCount(d.single.examples)})`, value: d.single.mismatches, holds: d.single.mismatches === 0, format: 'count' },
    { id: 'bias-correction', claim: `bias-corrected running averages are more accurate early in training (momentum ${formatNumber(e0.momentum)})`, label: `mean test accuracy over the first ${formatCount(e0.untilStep)} steps, bias-corrected minus plain EMA`, value: e0.biasCorrected - e0.plain, holds: e0.biasCorrected > e0.plain, format: 'points' },
    { id: 'small-test-batches', claim: `normalizing small test batches with their own statistics costs accuracy (batch ${smallest?.batchSize})`, label: `test accuracy with running statistics minus with the statistics of test batches of ${smallest?.batchSize}`, value: smallest ? d.runningAccuracy - smallest.accuracy : null, holds: !!smallest && smallest.accuracy < d.runningAccuracy, format: 'points' },
  ];
}

function accuracy(model: Sequential, test: Dataset): number {
  return evaluate(model, test, { inputShape: INPUT_SHAPE }).accuracy;
}

/** A copy of `model` whose BN layers hold population statistics over the first training batches. */
function withPopulationStatistics(net: NetworkOptions, model: Sequential, train: Dataset, s: InferenceSettings, seed: number): Sequential {
  const copy = copyNetwork(net, model);
  const loader = new DataLoader(train, { batchSize: s.batchSize, shuffle: true, seed: seed + 1, dropLast: true });
  function* batches() {
    for (let i = 0; i < s.recomputeBatches; i++) {
      const b = loader.next();
      yield b.x.reshape([b.labels.length, ...INPUT_SHAPE]);
    }
  }
  recomputeBatchNormStats(copy, batches());
  return copy;
}

function sameParameters(a: Sequential, b: Sequential): boolean {
  const pa = a.parameters();
  const pb = b.parameters();
  return pa.length === pb.length && pa.every((p, i) => p.value.data.every((v, j) => v === pb[i].value.data[j]));
}

/** Eval-mode logits for `ds` in one batch and one example at a time. */
export function singleExampleCheck(model: Sequential, ds: Dataset): SingleExampleCheck {
  const features = INPUT_SHAPE.reduce((a, b) => a * b, 1);
  const wasTraining = model.training;
  model.eval();
  try {
    const batched = model.forward(new Tensor([ds.count, features], ds.images.slice(0, ds.count * features))).clone();
    const classes = batched.shape[1];
    let maxAbsDiff = 0;
    let maxAbs = 0;
    let mismatches = 0;
    let identical = true;
    for (let i = 0; i < ds.count; i++) {
      const one = model.forward(new Tensor([1, features], ds.images.slice(i * features, (i + 1) * features)));
      let argOne = 0;
      let argBatch = 0;
      for (let c = 0; c < classes; c++) {
        const a = one.data[c];
        const b = batched.data[i * classes + c];
        if (a !== b) identical = false;
        maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a - b));
        maxAbs = Math.max(maxAbs, Math.abs(b));
        if (a > one.data[argOne]) argOne = c;
        if (b > batched.data[i * classes + argBatch]) argBatch = c;
      }
      if (argOne !== argBatch) mismatches++;
    }
    return { examples: ds.count, mismatches, maxAbsDiff, maxRelDiff: maxAbs > 0 ? maxAbsDiff / maxAbs : 0, identical };
  } finally {
    model.train(wasTraining);
  }
}

/** Test accuracy when every BN layer normalizes each test batch of `batchSize` with its own statistics. */
function batchStatisticsAccuracy(model: Sequential, test: Dataset, batchSize: number): number {
  // Whole batches only: a last batch of one example has no variance to normalize with.
  const usable = firstUpTo(test, Math.floor(test.count / batchSize) * batchSize);
  const layers = batchNormLayers(model);
  const saved = layers.map((l) => l.statistics);
  try {
    for (const l of layers) l.statistics = 'batch-frozen';
    return evaluate(model, usable, { inputShape: INPUT_SHAPE, batchSize }).accuracy;
  } finally {
    layers.forEach((l, i) => (l.statistics = saved[i]));
  }
}

function earlyMeans(points: StatisticsPoint[], momentum: number): InferenceData['early'][number] {
  const untilStep = Math.ceil(1 / momentum);
  const inWindow = points.filter((p) => p.momentum === momentum && p.step <= untilStep);
  const mean = (kind: StatisticsKind) => {
    const xs = inWindow.filter((p) => p.kind === kind).map((p) => p.accuracy);
    return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  };
  return { momentum, untilStep, plain: mean('plain EMA'), biasCorrected: mean('bias-corrected EMA'), population: mean('population') };
}

function catchUpStep(points: StatisticsPoint[], momentum: number): number | null {
  const steps = [...new Set(points.filter((p) => p.momentum === momentum).map((p) => p.step))].sort((a, b) => a - b);
  const at = (step: number, kind: StatisticsKind) => points.find((p) => p.step === step && p.momentum === momentum && p.kind === kind)!.accuracy;
  let from: number | null = null;
  for (const step of steps) {
    const close = Math.abs(at(step, 'plain EMA') - at(step, 'bias-corrected EMA')) <= 0.01;
    if (close && from === null) from = step;
    if (!close) from = null;
  }
  return from;
}

function describe(d: InferenceData) {
  const reading: string[] = [];
  const single = d.single;
  const singleText = single.identical
    ? `identical bit for bit to the batched ones`
    : `the same as the batched ones up to float error (largest logit difference ${formatValue(single.maxAbsDiff)}, ${formatValue(single.maxRelDiff)} of the largest logit)`;
  reading.push(
    `Single-example eval: the logits of ${formatCount(single.examples)} test images predicted one at a time in eval mode were ${singleText}; ${single.mismatches === 0 ? 'every predicted class agreed' : `${single.mismatches} predicted classes differed`}. In eval mode BN uses fixed statistics, so a prediction does not depend on the rest of the batch.`,
  );
  const at = (step: number, momentum: number, kind: StatisticsKind) => d.statistics.find((p) => p.step === step && p.momentum === momentum && p.kind === kind)?.accuracy;
  const steps = [...new Set(d.statistics.map((p) => p.step))].sort((a, b) => a - b);
  const lastStep = steps[steps.length - 1];
  for (const e of d.early) {
    const m = e.momentum;
    const catchUp = d.plainCatchesUp.find((c) => c.momentum === m)?.step ?? null;
    const verdict = e.biasCorrected > e.plain ? `bias correction was ahead by ${formatPoints(e.biasCorrected - e.plain)}` : 'bias correction was not ahead: the effect did not show';
    reading.push(
      `Momentum ${formatNumber(m)}: over the first ${formatCount(e.untilStep)} steps (1/momentum, while a zero-started average is still warming up), mean test accuracy was ${formatPercent(e.plain)} with plain EMA, ${formatPercent(e.biasCorrected)} with bias-corrected EMA and ${formatPercent(e.population)} with population statistics: ${verdict}. ` +
        `Plain EMA stayed within 1 point of bias-corrected ${catchUp === null ? 'at no later evaluation: it had not caught up by the end' : `from step ${formatCount(catchUp)} on`}. After ${formatCount(lastStep)} steps: ${formatPercent(at(lastStep, m, 'plain EMA')!)}, ${formatPercent(at(lastStep, m, 'bias-corrected EMA')!)} and ${formatPercent(at(lastStep, m, 'population')!)}.`,
    );
  }
  reading.push(d.identicalWeights ? 'The networks that differ only in how they keep their running averages ended with identical weights, as they should: training never reads the running averages.' : 'Warning: the networks that differ only in their running averages ended with different weights; their accuracies are not a like-for-like comparison.');
  const smallest = d.batchStatistics[0];
  const bs = d.batchStatistics.map((b) => `${b.batchSize}: ${formatPercent(b.accuracy)}`).join(', ');
  reading.push(
    `Batch statistics at test time: normalizing each test batch with its own statistics gave ${bs} (by test batch size), against ${formatPercent(d.runningAccuracy)} with the running statistics. ` +
      (smallest && smallest.accuracy < d.runningAccuracy ? `Small test batches cost ${formatPoints(d.runningAccuracy - smallest.accuracy)} at batch ${smallest.batchSize}: their statistics are too noisy, and each prediction depends on which other examples share the batch.` : 'Small test batches did not cost accuracy in this run.'),
  );
  // The smallest momentum keeps the warm-up longest: the clearest view of what bias correction does.
  const e0 = d.early.reduce((a, b) => (b.momentum < a.momentum ? b : a));
  const earlyText = `${formatPercent(e0.plain)} / ${formatPercent(e0.biasCorrected)} / ${formatPercent(e0.population)}`;
  const headlines = [
    { label: 'single-example vs batched eval: largest logit difference', value: single.identical ? '0 (identical)' : formatValue(single.maxAbsDiff) },
    { label: `mean test accuracy over the first ${formatCount(e0.untilStep)} steps, momentum ${formatNumber(e0.momentum)}: plain / bias-corrected EMA / population`, value: earlyText },
    { label: `test accuracy with batch statistics, test batch ${smallest?.batchSize} vs running statistics`, value: smallest ? `${formatPercent(smallest.accuracy)} vs ${formatPercent(d.runningAccuracy)}` : '—' },
  ];
  const summary = [
    `single-example eval ${single.identical ? 'identical to' : `matches (max diff ${formatValue(single.maxAbsDiff)})`} batched eval; ${single.mismatches} of ${formatCount(single.examples)} predictions differ`,
    `first ${formatCount(e0.untilStep)} steps (momentum ${formatNumber(e0.momentum)}), mean test accuracy: plain EMA ${formatPercent(e0.plain)}, bias-corrected ${formatPercent(e0.biasCorrected)}, population ${formatPercent(e0.population)}`,
    `batch statistics at test time: ${smallest ? `${formatPercent(smallest.accuracy)} at batch ${smallest.batchSize}` : '—'} vs ${formatPercent(d.runningAccuracy)} with running statistics`,
  ];
  return { reading, summary, headlines };
}

/** The figures of a result: one seed's curves, or the mean and range over the seeds. */
export const inferenceFigures: (result: InferenceResult) => Figure[] = figuresOverSeeds(inferenceFiguresOfOne);

function inferenceFiguresOfOne(result: InferenceResult): Figure[] {
  const d = result.data;
  const s = result.settings as unknown as InferenceSettings;
  const rows: Row[] = d.statistics.map((p) => ({ step: p.step, accuracy: p.accuracy, kind: p.kind, momentum: `momentum ${formatNumber(p.momentum)}` }));
  const batchRows: Row[] = d.batchStatistics.map((b) => ({ batchSize: b.batchSize, accuracy: b.accuracy, statistics: 'batch statistics' }));
  return [
    {
      id: 'running-statistics',
      title: 'Test accuracy with each kind of running statistics',
      caption: `The same weights tested with plain EMA (PyTorch's: starts at mean 0, variance 1), bias-corrected EMA, and population statistics over ${s.recomputeBatches} training batches; log-scaled steps.`,
      spec: xyChart({ values: rows, mark: 'line+point', x: { field: 'step', title: 'training steps (log scale)', scale: 'log' }, y: { field: 'accuracy', title: 'test accuracy', format: '.0%' }, color: { field: 'kind', title: 'statistics', domain: [...STATISTICS_KINDS] }, column: { field: 'momentum', title: '', domain: s.momenta.map((m) => `momentum ${formatNumber(m)}`) }, width: 300 }),
    },
    {
      id: 'test-batch-statistics',
      title: 'Batch statistics at test time',
      caption: 'Test accuracy when each test batch is normalized with its own mean and variance, by test batch size; the dashed line is eval mode with the running statistics.',
      spec: xyChart({ values: batchRows, mark: 'line+point', x: { field: 'batchSize', title: 'test batch size (log scale)', scale: 'log', values: s.testBatchSizes }, y: { field: 'accuracy', title: 'test accuracy', format: '.0%' }, color: { field: 'statistics', title: 'normalized with', domain: ['batch statistics'] }, rules: [{ y: d.runningAccuracy, label: `running statistics: ${formatPercent(d.runningAccuracy)}` }] }),
    },
  ];
}

export const inferenceExperiment: ExperimentDefinition<InferenceData, InferenceOptions> = {
  name: 'inference',
  title: 'Batch norm at test time',
  description: 'single-example eval vs batched, plain vs bias-corrected EMA vs population statistics over training, and batch statistics for small test batches',
  compared:
    'A batch-norm network, tested three ways. Trained, it predicts one example at a time and a whole batch at once, in eval mode. While it trains, it is tested with its statistics for test time kept three ways: as a plain moving average of the batch statistics (started at mean 0 and variance 1), as a bias-corrected moving average, and as population statistics recomputed over training batches. Last, the trained network normalizes each test batch with that batch\'s own statistics instead of the running ones, at several test batch sizes.',
  settings: { ...INFERENCE_DEFAULTS },
  run: runInference,
  figures: inferenceFigures,
};
