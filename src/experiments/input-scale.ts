/**
 * `input-scale`: the same data with each input feature multiplied by a fixed factor, the factors spread
 * evenly on a log scale over [1e-3, 1e3]. Three variants of `ioffe-mlp` are trained over a grid of
 * learning rates on the original and on the scaled data: no normalization, a BatchNorm1d on the input
 * features only, and BN everywhere (input and hidden layers). For each: the best final loss and the rate
 * that gives it (the rate each needs), the "scale penalty" (how much worse the scaled data trains), the
 * loss curves, and an oscillation figure: the fraction of updates that raised the loss of their own batch.
 */
import { barChart, xyChart, type Figure, type Row } from '../report/charts.js';
import { featureScales, firstUpTo, scaleFeatures } from './data.js';
import { formatCount, formatNumber, formatPercent, formatValue } from './format.js';
import { INPUT_SHAPE, baseModelDescription, buildNetwork, type NetworkOptions } from './models.js';
import { ProgressTicker } from './progress.js';
import { runEverySeed, startRun } from './settings.js';
import { figuresOverSeeds, type EffectMeasure } from './seeds.js';
import { trainNetwork, type LossPoint } from './train-run.js';
import type { ExperimentDefinition, ExperimentOptions, ExperimentResult } from './types.js';

export type ScaleVariant = 'none' | 'input-bn' | 'bn-everywhere';
export const SCALE_VARIANTS: readonly ScaleVariant[] = ['none', 'input-bn', 'bn-everywhere'];
export const SCALE_VARIANT_LABELS: Record<ScaleVariant, string> = { none: 'no normalization', 'input-bn': 'input BN only', 'bn-everywhere': 'BN everywhere' };
const VARIANT_NETWORKS: Record<ScaleVariant, Omit<NetworkOptions, 'seed'>> = {
  none: { norm: 'none' },
  'input-bn': { norm: 'none', inputBatchNorm: true },
  'bn-everywhere': { norm: 'batch', inputBatchNorm: true },
};

export type InputVersion = 'original' | 'scaled';
export const INPUT_VERSIONS: readonly InputVersion[] = ['original', 'scaled'];

export interface InputScaleSettings {
  steps: number;
  batchSize: number;
  /** The learning-rate grid every variant is trained on, for both inputs. */
  lrs: number[];
  testSize: number;
  /** Range of the per-feature factors. */
  scaleLow: number;
  scaleHigh: number;
}

export type InputScaleOptions = ExperimentOptions & Partial<InputScaleSettings>;

export const INPUT_SCALE_DEFAULTS: InputScaleSettings = { steps: 1_500, batchSize: 60, lrs: [0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30], testSize: 10_000, scaleLow: 1e-3, scaleHigh: 1e3 };
export const INPUT_SCALE_QUICK: InputScaleSettings = { steps: 300, batchSize: 60, lrs: [0.3, 3], testSize: 1_000, scaleLow: 1e-3, scaleHigh: 1e3 };

export interface ScaleRun {
  variant: ScaleVariant;
  input: InputVersion;
  lr: number;
  diverged: boolean;
  /** Mean batch loss over the last 10% of the steps (null when it diverged). */
  finalLoss: number | null;
  accuracy: number | null;
  /** Fraction of the steps whose update raised the loss of their own batch. */
  overshoot: number | null;
  train: LossPoint[];
}

export interface ScaleBest {
  variant: ScaleVariant;
  input: InputVersion;
  /** The rate with the lowest final loss: the rate this variant needs on this input. */
  lr: number | null;
  finalLoss: number | null;
  accuracy: number | null;
  overshoot: number | null;
}

export interface InputScaleData {
  runs: ScaleRun[];
  best: ScaleBest[];
  /** Best final loss on scaled minus on original input, per variant (null if a side never trained). */
  penalty: Record<ScaleVariant, number | null>;
  /** 1 − penalty(variant) / penalty(none): the share of the penalty the normalization removed. */
  removed: Record<ScaleVariant, number | null>;
  /** The factors actually used: min, max, and a few quantiles. */
  factors: { min: number; max: number; median: number };
}

export type InputScaleResult = ExperimentResult<InputScaleData>;

export async function runInputScale(options: InputScaleOptions): Promise<InputScaleResult> {
  const start = startRun('input-scale', options, INPUT_SCALE_DEFAULTS, INPUT_SCALE_QUICK, ['steps', 'batchSize', 'testSize']);
  const { data, settings: s } = start;
  if (!(s.scaleLow > 0 && s.scaleHigh >= s.scaleLow)) throw new Error(`input-scale: need 0 < scaleLow <= scaleHigh, got ${s.scaleLow} and ${s.scaleHigh}`);
  const features = INPUT_SHAPE.reduce((a, b) => a * b, 1);
  const test = firstUpTo(data.test, s.testSize);
  const progress = new ProgressTicker(start.seeds.length * SCALE_VARIANTS.length * INPUT_VERSIONS.length * s.lrs.length * s.steps, options.onProgress);

  const one = async (seed: number) => {
    const scales = featureScales(features, s.scaleLow, s.scaleHigh, seed);
    const inputs: Record<InputVersion, { train: typeof data.train; test: typeof data.test }> = {
      original: { train: data.train, test },
      scaled: { train: scaleFeatures(data.train, scales), test: scaleFeatures(test, scales) },
  };

  const runs: ScaleRun[] = [];
  for (const variant of SCALE_VARIANTS) {
    for (const input of INPUT_VERSIONS) {
      for (const lr of s.lrs) {
        progress.setPhase(`${start.seeds.length > 1 ? `seed ${seed}, ` : ''}${SCALE_VARIANT_LABELS[variant]}, ${input} input, lr ${formatNumber(lr)}`);
        const model = buildNetwork({ ...VARIANT_NETWORKS[variant], seed });
        const run = await trainNetwork({ model, train: inputs[input].train, test: inputs[input].test, lr, steps: s.steps, batchSize: s.batchSize, seed, evalSteps: [s.steps], measureOvershoot: true, progress });
        runs.push({
          variant,
          input,
          lr,
          diverged: run.diverged,
          finalLoss: run.diverged ? null : run.finalLoss,
          accuracy: run.diverged ? null : (run.test.at(-1)?.accuracy ?? null),
          overshoot: run.overshoot,
          train: run.train,
        });
      }
    }
  }

  const best: ScaleBest[] = [];
  for (const variant of SCALE_VARIANTS) {
    for (const input of INPUT_VERSIONS) {
      const candidates = runs.filter((r) => r.variant === variant && r.input === input && r.finalLoss !== null);
      const b = candidates.reduce<ScaleRun | null>((acc, r) => (acc === null || r.finalLoss! < acc.finalLoss! ? r : acc), null);
      best.push({ variant, input, lr: b?.lr ?? null, finalLoss: b?.finalLoss ?? null, accuracy: b?.accuracy ?? null, overshoot: b?.overshoot ?? null });
    }
  }
  const bestOf = (v: ScaleVariant, i: InputVersion) => best.find((b) => b.variant === v && b.input === i)!;
  const penalty = {} as Record<ScaleVariant, number | null>;
  for (const v of SCALE_VARIANTS) {
    const o = bestOf(v, 'original').finalLoss;
    const sc = bestOf(v, 'scaled').finalLoss;
    penalty[v] = o === null || sc === null ? null : sc - o;
  }
  const removed = {} as Record<ScaleVariant, number | null>;
  for (const v of SCALE_VARIANTS) removed[v] = penalty[v] === null || penalty.none === null || !(penalty.none > 0) ? null : 1 - penalty[v]! / penalty.none;
  const sortedScales = Float32Array.from(scales).sort();
  const resultData: InputScaleData = { runs, best, penalty, removed, factors: { min: sortedScales[0], max: sortedScales[sortedScales.length - 1], median: sortedScales[Math.floor(sortedScales.length / 2)] } };
  return { data: resultData, ...describe(resultData, s) };
  };
  return runEverySeed(start, one, {
    title: 'Input scale: what normalizing the inputs buys',
    question: 'When input features differ in scale by six orders of magnitude, how much of the damage does batch norm on the inputs undo, and which learning rate does each network need?',
    settings: { ...s, model: `variants of ${baseModelDescription()}`, optimizer: 'SGD, no momentum', scaling: `feature j multiplied by a factor; factors evenly log-spaced over [${formatNumber(s.scaleLow)}, ${formatNumber(s.scaleHigh)}], assigned in a seeded random order`, testSet: `${data.test.name} test, first ${formatCount(test.count)}` },
    effects: inputScaleEffects,
  });
}

/** The claim of the input-scale experiment as one seed shows it. */
export function inputScaleEffects(d: InputScaleData): EffectMeasure[] {
  const pNone = d.penalty.none;
  return [
    { id: 'penalty', claim: 'scaling the inputs hurts the network without normalization', label: 'scale penalty without normalization (best final loss, scaled − original, nats)', value: pNone, holds: pNone !== null && pNone > 0, format: 'value' },
    { id: 'removed-input-bn', claim: 'BN on the inputs alone removes most of that penalty', label: 'share of the penalty removed by input BN', value: d.removed['input-bn'], holds: d.removed['input-bn'] !== null && d.removed['input-bn'] > 0.5, format: 'percent' },
    { id: 'removed-bn-everywhere', claim: 'BN everywhere removes most of that penalty', label: 'share of the penalty removed by BN everywhere', value: d.removed['bn-everywhere'], holds: d.removed['bn-everywhere'] !== null && d.removed['bn-everywhere'] > 0.5, format: 'percent' },
  ];
}

function describe(d: InputScaleData, s: InputScaleSettings) {
  const bestOf = (v: ScaleVariant, i: InputVersion) => d.best.find((b) => b.variant === v && b.input === i)!;
  const loss = (v: ScaleVariant, i: InputVersion) => {
    const b = bestOf(v, i);
    return b.finalLoss === null ? 'no rate trained' : formatValue(b.finalLoss);
  };
  const reading: string[] = [];
  const range = `${formatNumber(s.scaleLow)} and ${formatNumber(s.scaleHigh)}`;
  const parts = SCALE_VARIANTS.map((v) => {
    const p = d.penalty[v];
    const base = `${SCALE_VARIANT_LABELS[v]}: ${loss(v, 'original')} → ${loss(v, 'scaled')}`;
    if (p === null) return base;
    const share = v !== 'none' && d.removed[v] !== null ? `; ${formatPercent(Math.max(0, d.removed[v]!), 0)} of the penalty without normalization removed` : '';
    return `${base} (penalty ${p >= 0 ? '+' : ''}${formatValue(p)}${share})`;
  });
  reading.push(`With every input feature multiplied by a fixed factor between ${range}, the best final training loss over learning rates ${s.lrs.map(formatNumber).join(', ')} (${formatCount(s.steps)} steps each) changed as follows — ${parts.join('; ')}.`);
  const pNone = d.penalty.none;
  const rIn = d.removed['input-bn'];
  if (pNone === null || !(pNone > 0)) reading.push('Scaling did not hurt the network without normalization on this grid, so there was no penalty for batch norm to remove.');
  else if (rIn !== null) reading.push(rIn >= 0.5 ? `Input BN alone removed most of the scale penalty (${formatPercent(rIn, 0)}).` : `Input BN alone removed only ${formatPercent(Math.max(0, rIn), 0)} of the scale penalty: the effect did not show as expected.`);
  const accs = SCALE_VARIANTS.map((v) => {
    const o = bestOf(v, 'original').accuracy;
    const sc = bestOf(v, 'scaled').accuracy;
    return `${SCALE_VARIANT_LABELS[v]} ${o === null ? '—' : formatPercent(o)} → ${sc === null ? '—' : formatPercent(sc)}`;
  });
  reading.push(`Test accuracy at those rates, original → scaled: ${accs.join('; ')}.`);
  const needs = SCALE_VARIANTS.map((v) => {
    const o = bestOf(v, 'original').lr;
    const sc = bestOf(v, 'scaled').lr;
    return `${SCALE_VARIANT_LABELS[v]} ${o === null ? '—' : formatNumber(o)} → ${sc === null ? '—' : formatNumber(sc)}`;
  });
  reading.push(`The learning rate each needs (lowest final loss on the grid), original → scaled: ${needs.join('; ')}.`);
  // With a coarse grid, two rates that end a few hundredths apart do not say which one a network needs.
  const undecided = SCALE_VARIANTS.filter((v) => {
    const losses = d.runs.filter((r) => r.variant === v && r.input === 'scaled' && r.finalLoss !== null).map((r) => r.finalLoss!).sort((a, b) => a - b);
    return losses.length > 1 && losses[1] - losses[0] < 0.05;
  });
  if (undecided.length) reading.push(`On the scaled input ${undecided.map((v) => SCALE_VARIANT_LABELS[v]).join(' and ')} ended within 0.05 nats at two rates of the grid, so the grid does not tell which rate ${undecided.length > 1 ? 'they need' : 'it needs'}.`);
  // A baseline that does not learn at all sets a penalty of "not training": the shares removed compare with that.
  const chance = Math.log(10);
  const noneScaled = bestOf('none', 'scaled');
  if (noneScaled.finalLoss !== null && noneScaled.finalLoss > 0.8 * chance) {
    reading.push(`Without normalization the network did not learn on the scaled input at any rate of the grid (best final loss ${formatValue(noneScaled.finalLoss)} against ${formatValue(chance)} for a uniform guess${noneScaled.accuracy === null ? '' : `, test accuracy ${formatPercent(noneScaled.accuracy)}`}): the penalty is the whole of training, and the share removed says the normalized networks trained where it could not.`);
  }
  const osc = SCALE_VARIANTS.map((v) => {
    const b = bestOf(v, 'scaled');
    return `${SCALE_VARIANT_LABELS[v]} ${b.overshoot === null ? '—' : formatPercent(b.overshoot, 0)}`;
  });
  reading.push(`Oscillation on the scaled input, at each variant's best rate: the share of updates that raised the loss of the very batch they were computed on was ${osc.join(', ')}.`);
  const commonLrs = s.lrs.filter((lr) => SCALE_VARIANTS.every((v) => d.runs.some((r) => r.variant === v && r.input === 'scaled' && r.lr === lr && r.overshoot !== null)));
  if (commonLrs.length) {
    const lr = commonLrs[commonLrs.length - 1];
    const at = SCALE_VARIANTS.map((v) => {
      const r = d.runs.find((x) => x.variant === v && x.input === 'scaled' && x.lr === lr)!;
      return `${SCALE_VARIANT_LABELS[v]} ${r.diverged ? 'diverged' : formatPercent(r.overshoot!, 0)}`;
    });
    reading.push(`At the same rate ${formatNumber(lr)} on the scaled input: ${at.join(', ')}.`);
  }
  const headlines = [
    { label: 'scale penalty (best final loss, scaled − original): none / input BN / BN everywhere', value: SCALE_VARIANTS.map((v) => (d.penalty[v] === null ? '—' : formatValue(d.penalty[v]!))).join(' / ') },
    { label: 'share of the penalty removed by input BN / BN everywhere', value: (['input-bn', 'bn-everywhere'] as const).map((v) => (d.removed[v] === null ? '—' : formatPercent(d.removed[v]!, 0))).join(' / ') },
    { label: `best learning rate of the grid (${s.lrs.map(formatNumber).join(', ')}) on scaled input: none / input BN / BN everywhere`, value: SCALE_VARIANTS.map((v) => (bestOf(v, 'scaled').lr === null ? '—' : formatNumber(bestOf(v, 'scaled').lr!))).join(' / ') },
  ];
  const summary = [
    `scale penalty on the best final loss: ${SCALE_VARIANTS.map((v) => `${SCALE_VARIANT_LABELS[v]} ${d.penalty[v] === null ? '—' : formatValue(d.penalty[v]!)}`).join(', ')}`,
    `input BN removed ${d.removed['input-bn'] === null ? '— (no penalty to remove)' : formatPercent(Math.max(0, d.removed['input-bn']), 0)} of the penalty; BN everywhere ${d.removed['bn-everywhere'] === null ? '—' : formatPercent(Math.max(0, d.removed['bn-everywhere']), 0)}`,
    `best learning rate of the grid on scaled input: ${SCALE_VARIANTS.map((v) => `${SCALE_VARIANT_LABELS[v]} ${bestOf(v, 'scaled').lr === null ? '—' : formatNumber(bestOf(v, 'scaled').lr!)}`).join(', ')}`,
  ];
  return { reading, summary, headlines };
}

/** The figures of a result: one seed's curves, or the mean and range over the seeds. */
export const inputScaleFigures: (result: InputScaleResult) => Figure[] = figuresOverSeeds(inputScaleFiguresOfOne);

function inputScaleFiguresOfOne(result: InputScaleResult): Figure[] {
  const d = result.data;
  const s = result.settings as unknown as InputScaleSettings;
  const domain = SCALE_VARIANTS.map((v) => SCALE_VARIANT_LABELS[v]);
  const curves: Row[] = [];
  for (const b of d.best) {
    if (b.lr === null) continue;
    const run = d.runs.find((r) => r.variant === b.variant && r.input === b.input && r.lr === b.lr)!;
    for (const p of run.train) if (p.loss > 0 && Number.isFinite(p.loss)) curves.push({ step: p.step, loss: p.loss, variant: SCALE_VARIANT_LABELS[b.variant], input: `${b.input} input (lr ${formatNumber(b.lr)})`, inputKind: b.input });
  }
  const sweep: Row[] = d.runs.filter((r) => r.finalLoss !== null).map((r) => ({ lr: r.lr, loss: r.finalLoss, overshoot: r.overshoot, variant: SCALE_VARIANT_LABELS[r.variant], input: `${r.input} input` }));
  const bars: Row[] = d.best.filter((b) => b.finalLoss !== null).map((b) => ({ variant: SCALE_VARIANT_LABELS[b.variant], input: `${b.input} input`, loss: b.finalLoss }));
  const inputDomain = INPUT_VERSIONS.map((i) => `${i} input`);
  return [
    {
      id: 'penalty',
      title: 'Best final training loss, original vs scaled input',
      caption: `Lowest final training loss over the learning-rate grid, per variant. The gap between the two bars of a variant is its scale penalty.`,
      spec: barChart({ values: bars, x: { field: 'variant', title: 'network', domain }, y: { field: 'loss', title: 'best final training loss (nats)' }, color: { field: 'input', title: 'input', domain: inputDomain, range: ['#999999', '#D55E00'] } }),
    },
    {
      id: 'loss-curves',
      title: 'Training loss at each variant’s best learning rate',
      caption: 'Solid: scaled input; dashed: original input. Each curve uses the rate that gave that variant its lowest final loss on that input; log scale.',
      spec: xyChart({ values: curves, x: { field: 'step', title: 'training steps', zero: true }, y: { field: 'loss', title: 'training loss (nats, log scale)', scale: 'log' }, color: { field: 'variant', title: 'network', domain }, detail: { field: 'inputKind', title: 'input', domain: ['scaled', 'original'] } }),
    },
    {
      id: 'lr-sweep',
      title: 'Final training loss against learning rate',
      caption: `Mean loss over the last 10% of ${formatCount(s.steps)} steps at each rate; runs that diverged are left out. The minimum of each curve is the rate that variant needs.`,
      spec: xyChart({ values: sweep, mark: 'line+point', x: { field: 'lr', title: 'learning rate (log scale)', scale: 'log', values: s.lrs }, y: { field: 'loss', title: 'final training loss (nats, log scale)', scale: 'log' }, color: { field: 'variant', title: 'network', domain }, column: { field: 'input', title: '', domain: inputDomain }, width: 300 }),
    },
    {
      id: 'oscillation',
      title: 'Oscillation: updates that made their own batch worse',
      caption: 'Fraction of steps after which the loss of the batch the update was computed on went up (measured with the batch statistics, as in training). Overshooting along badly scaled directions shows up here first.',
      spec: xyChart({ values: sweep.filter((r) => r.overshoot !== null), mark: 'line+point', x: { field: 'lr', title: 'learning rate (log scale)', scale: 'log', values: s.lrs }, y: { field: 'overshoot', title: 'share of updates raising batch loss', format: '.0%', zero: true }, color: { field: 'variant', title: 'network', domain }, column: { field: 'input', title: '', domain: inputDomain }, width: 300 }),
    },
  ];
}

export const inputScaleExperiment: ExperimentDefinition<InputScaleData, InputScaleOptions> = {
  name: 'input-scale',
  title: 'Input scale: what normalizing the inputs buys',
  description: 'features multiplied by factors over 1e-3..1e3: no normalization vs input BN vs BN everywhere, over a learning-rate grid',
  compared:
    'Every input pixel is multiplied by its own fixed factor between 0.001 and 1000, so the input features differ in scale by six orders of magnitude. Three versions of the network train on the original and on the scaled images over a grid of learning rates: without normalization, with batch norm (BN) on the 784 inputs only, and with BN everywhere (inputs and hidden layers). Compared: how much the scaling raises each version\'s best final training loss (its scale penalty), and which learning rate each needs.',
  settings: { ...INPUT_SCALE_DEFAULTS },
  run: runInputScale,
  figures: inputScaleFigures,
};
