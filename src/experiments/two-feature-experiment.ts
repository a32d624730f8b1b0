/**
 * `two-feature`: claim 1 drawn where it can be seen. A least-squares fit on two features whose scales
 * differ by a ratio r (the problem of two-feature.ts), solved by gradient descent from the same start
 * (the same function) on raw inputs, on standardized inputs, and through batch norm on the input, for
 * r = 1, 10, 100, 1000. Each treatment runs at its best stable learning rate: the rate of a log-spaced
 * grid that reaches the target loss in the fewest steps without diverging. The figures are the loss
 * contours with each path, and the steps to the target against r. On raw inputs the valley is about r²
 * times more curved across than along, so the steps should grow about as r²; normalized inputs should
 * not care about r. Each seed draws new data and a new start.
 */
import { contourGrid, xyChart, type ContourPanel, type Figure, type Row } from '../report/charts.js';
import { levelSegments } from '../report/contours.js';
import { Rng } from '../tensor/rng.js';
import { formatCount, formatNumber, formatPercent, formatRatio } from './format.js';
import { ProgressTicker } from './progress.js';
import { figuresOverSeeds, type EffectMeasure } from './seeds.js';
import { checkPositiveInt, runEverySeed, startRun } from './settings.js';
import {
  TWO_FEATURE_INPUTS,
  estimatedStepsToTarget,
  gradientDescentPath,
  pathBounds,
  targetLoss,
  toRawWeights,
  twoFeatureCurvature,
  twoFeatureLoss,
  twoFeatureLossGrid,
  twoFeatureMinimum,
  twoFeatureProblem,
  type DescentPath,
  type TwoFeatureInputs,
  type TwoFeatureProblem,
} from './two-feature.js';
import type { ExperimentDefinition, ExperimentOptions, ExperimentResult, SeedEffect } from './types.js';

export interface TwoFeatureSettings {
  /** Scale ratios r = std(x2)/std(x1). */
  ratios: number[];
  samples: number;
  /** Correlation of the two features before scaling. */
  correlation: number;
  /** Noise of the targets. */
  noise: number;
  /** The target: the minimum plus this fraction of the start's excess loss. */
  targetFraction: number;
  /** Distance of the start from the minimum, in weights on the standardized features. */
  startDistance: number;
  /** The start's direction from the minimum (degrees from the w1 axis), drawn per seed between these two. */
  startAngles: number[];
  /** The learning-rate grid: from lrMin to lrMax, lrsPerDecade rates per factor of ten. */
  lrMin: number;
  lrMax: number;
  lrsPerDecade: number;
  /** Raw and standardized inputs: steps simulated at most; beyond them the quadratic model's count (exact for this loss). */
  maxSimulatedSteps: number;
  /** Batch norm on the input: the mini-batch its statistics and gradients come from (samples: full batch, which is exact standardization). */
  bnBatchSize: number;
  /**
   * Batch norm on the input: steps each rate runs (it has no closed-form count). The whole run, not just
   * up to the target: a rate counts as stable only if it did not diverge and ended within the target.
   */
  bnMaxSteps: number;
  /** Contour grid: points per axis. */
  gridSize: number;
  /** Path points drawn: every step up to this one, then log-spaced steps up to the target. */
  drawEverySteps: number;
}

export type TwoFeatureExperimentOptions = ExperimentOptions & Partial<TwoFeatureSettings>;

export const TWO_FEATURE_DEFAULTS: TwoFeatureSettings = {
  ratios: [1, 10, 100, 1000],
  samples: 256,
  correlation: 0.4,
  noise: 0.3,
  targetFraction: 0.001,
  startDistance: 3,
  startAngles: [110, 160],
  lrMin: 1e-8,
  lrMax: 10,
  lrsPerDecade: 20,
  maxSimulatedSteps: 3_000_000,
  bnBatchSize: 64,
  bnMaxSteps: 5_000,
  gridSize: 33,
  drawEverySteps: 300,
};

// Seconds: raw inputs at r = 1000 take about a million steps, so the quick size counts them with the
// quadratic model beyond 50,000 simulated steps.
export const TWO_FEATURE_QUICK: TwoFeatureSettings = { ...TWO_FEATURE_DEFAULTS, lrsPerDecade: 10, maxSimulatedSteps: 50_000, bnMaxSteps: 2_000, gridSize: 25, drawEverySteps: 200 };

export const TWO_FEATURE_LABELS: Record<TwoFeatureInputs, string> = { raw: 'raw inputs', standardized: 'standardized inputs', batchnorm: 'batch norm on the input' };
const COLORS: Record<TwoFeatureInputs, string> = { raw: '#D55E00', standardized: '#0072B2', batchnorm: '#009E73' };

/** One treatment at one ratio, at its best stable rate. */
export interface TwoFeatureRow {
  ratio: number;
  inputs: TwoFeatureInputs;
  lr: number;
  /** lr / (2/λmax) of the space the weights live in: how close the best rate sits to the stability limit. */
  lrFraction: number;
  /** Rates of the grid tried, and how many of them were unstable (diverged; for batch norm also: did not end within the target). */
  ratesTried: number;
  ratesUnstable: number;
  /** Steps to the target; null when no rate of the grid reached it. */
  steps: number | null;
  /** True when `steps` is the quadratic model's count because the run was longer than maxSimulatedSteps. */
  estimated: boolean;
  /** Sign changes of the step across the valley before the target (of the simulated part). */
  zigZags: number;
}

/** What one contour panel draws: the window, the loss on a grid over it, the path. */
export interface TwoFeaturePanel {
  ratio: number;
  inputs: TwoFeatureInputs;
  /** 'raw' weights for raw inputs, weights on the standardized features otherwise. */
  space: 'raw' | 'standardized';
  w1: [number, number];
  w2: [number, number];
  /** (L − L*)/(L(start) − L*) on a gridSize × gridSize grid over the window, row-major (w2 rows, w1 columns). */
  excess: number[];
  /** The drawn points of the path (a subsample: see drawEverySteps). */
  path: Array<{ step: number; w1: number; w2: number }>;
  start: [number, number];
  optimum: [number, number];
}

export interface TwoFeatureData {
  /** The start, in weights on the standardized features. */
  start: [number, number];
  /** The loss counted as arrived, and the minimum (the same function at every ratio). */
  target: number;
  minimum: number;
  rows: TwoFeatureRow[];
  /** Condition number of the loss's Hessian per ratio: raw and standardized. */
  curvature: Array<{ ratio: number; raw: number; standardized: number }>;
  panels: TwoFeaturePanel[];
}

export type TwoFeatureResult = ExperimentResult<TwoFeatureData>;

/** The learning-rate grid: lrMin·10^(k/lrsPerDecade) up to lrMax. */
export function learningRateGrid(s: Pick<TwoFeatureSettings, 'lrMin' | 'lrMax' | 'lrsPerDecade'>): number[] {
  const decades = Math.log10(s.lrMax / s.lrMin);
  const n = Math.floor(decades * s.lrsPerDecade + 1e-9);
  return Array.from({ length: n + 1 }, (_, k) => Number((s.lrMin * 10 ** (k / s.lrsPerDecade)).toPrecision(6)));
}

export async function runTwoFeature(options: TwoFeatureExperimentOptions): Promise<TwoFeatureResult> {
  const start = startRun('two-feature', options, TWO_FEATURE_DEFAULTS, TWO_FEATURE_QUICK, ['samples', 'lrsPerDecade', 'maxSimulatedSteps', 'bnBatchSize', 'bnMaxSteps', 'gridSize', 'drawEverySteps']);
  const s = start.settings;
  const ratios = [...new Set(s.ratios)].sort((a, b) => a - b);
  if (ratios.length === 0 || ratios.some((r) => !(r > 0))) throw new Error(`two-feature: ratios must list positive numbers (std(x2)/std(x1), e.g. 1,10,100,1000), got ${JSON.stringify(s.ratios)}`);
  if (!(s.lrMin > 0 && s.lrMax > s.lrMin)) throw new Error(`two-feature: the learning-rate grid needs 0 < lrMin < lrMax, got lrMin ${s.lrMin}, lrMax ${s.lrMax}`);
  if (!(s.targetFraction > 0 && s.targetFraction < 1)) throw new Error(`two-feature: targetFraction must be in (0, 1) (e.g. 0.01: within 1% of the start's excess loss), got ${s.targetFraction}`);
  if (s.startAngles.length !== 2) throw new Error(`two-feature: startAngles must be two angles in degrees, e.g. 110,160, got ${JSON.stringify(s.startAngles)}`);
  if (s.bnBatchSize < 2 || s.bnBatchSize > s.samples) throw new Error(`two-feature: bnBatchSize must be from 2 to samples (${s.samples}), got ${s.bnBatchSize}`);
  checkPositiveInt('two-feature', 'gridSize', s.gridSize);
  const lrs = learningRateGrid(s);
  const progress = new ProgressTicker(start.seeds.length * ratios.length * TWO_FEATURE_INPUTS.length, options.onProgress);
  const perSeed: Array<{ seed: number; data: TwoFeatureData }> = [];

  const one = async (seed: number) => {
    const d = await runSeed(seed, s, ratios, lrs, progress, start.seeds.length > 1);
    perSeed.push({ seed, data: d });
    return { data: d, ...describe(d, s) };
  };
  return runEverySeed(start, one, {
    title: 'Two features on different scales: contours, paths and steps',
    seedChanges: 'the data, the starting point and the mini-batches of batch norm on the input',
    question: 'On a two-feature least-squares problem whose features differ in scale by r, do the steps of gradient descent grow about as r² on raw inputs and stay flat once the inputs are standardized or batch-normalized?',
    settings: {
      ...s,
      ratios,
      learningRates: `${lrs.length} rates from ${formatNumber(lrs[0])} to ${formatNumber(lrs[lrs.length - 1])}, ${s.lrsPerDecade} per factor of ten; each treatment at each ratio takes the one that reaches the target in the fewest steps without diverging`,
      model: 'y = w1·x1 + w2·x2, squared loss, full-batch gradient descent (batch norm: mini-batches of bnBatchSize, γ = 1 and β = 0 fixed)',
      data: `${s.samples} samples, x1 with std 1 and x2 with std r, correlation ${s.correlation}; targets from weights [1.5, -1] on the standardized features plus noise ${s.noise}`,
    },
    effects: (d) => twoFeatureEffects(d),
    conclusion: () => stepsTable(perSeed, ratios),
  });
}

async function runSeed(seed: number, s: TwoFeatureSettings, ratios: number[], lrs: number[], progress: ProgressTicker, manySeeds: boolean): Promise<TwoFeatureData> {
  const base = { samples: s.samples, correlation: s.correlation, noise: s.noise, seed };
  // The standardized problem is the same at every ratio (the ratio only scales x2), so its minimum, the start and the target are too.
  const reference = twoFeatureProblem({ ...base, ratio: 1 });
  const optimum = twoFeatureMinimum(reference, 'standardized');
  const rng = new Rng(seed * 7919 + 17);
  const angle = (rng.uniformRange(Math.min(...s.startAngles), Math.max(...s.startAngles)) * Math.PI) / 180;
  const startW: [number, number] = [optimum.w[0] + s.startDistance * Math.cos(angle), optimum.w[1] + s.startDistance * Math.sin(angle)];
  const target = targetLoss(reference, startW, s.targetFraction);
  const rows: TwoFeatureRow[] = [];
  const panels: TwoFeaturePanel[] = [];
  const curvature: TwoFeatureData['curvature'] = [];
  for (const ratio of ratios) {
    const p = twoFeatureProblem({ ...base, ratio });
    curvature.push({ ratio, raw: twoFeatureCurvature(p, 'raw').conditionNumber, standardized: twoFeatureCurvature(p, 'standardized').conditionNumber });
    const paths = {} as Record<TwoFeatureInputs, DescentPath>;
    for (const inputs of TWO_FEATURE_INPUTS) {
      progress.setPhase(`${manySeeds ? `seed ${seed}, ` : ''}ratio ${ratio}, ${TWO_FEATURE_LABELS[inputs]}`);
      const { row, path } = inputs === 'batchnorm' ? bestBatchNorm(p, lrs, target, startW, s) : bestFullBatch(p, inputs, lrs, target, startW, s);
      rows.push({ ratio, ...row });
      paths[inputs] = path;
      await progress.tick();
    }
    panels.push(...panelsFor(p, paths, startW, s));
  }
  return { start: startW, target, minimum: optimum.loss, rows, curvature, panels };
}

type RowOfRatio = Omit<TwoFeatureRow, 'ratio'>;

/** Raw or standardized inputs: the quadratic model's count for every rate (exact for the squared loss), then the best one simulated. */
function bestFullBatch(p: TwoFeatureProblem, inputs: 'raw' | 'standardized', lrs: number[], target: number, startW: [number, number], s: TwoFeatureSettings): { row: RowOfRatio; path: DescentPath } {
  let best: { lr: number; steps: number } | null = null;
  let diverged = 0;
  for (const lr of lrs) {
    const steps = estimatedStepsToTarget(p, inputs, lr, target, startW);
    if (!Number.isFinite(steps)) {
      diverged++;
      continue;
    }
    // Ties go to the smaller rate: the same count with more margin from the stability limit.
    if (best === null || steps < best.steps) best = { lr, steps };
  }
  const maxStable = twoFeatureCurvature(p, inputs).maxStableLr;
  if (best === null) {
    const path = gradientDescentPath(p, { inputs, lr: lrs[0], steps: 1, start: startW });
    return { row: { inputs, lr: lrs[0], lrFraction: lrs[0] / maxStable, ratesTried: lrs.length, ratesUnstable: diverged, steps: null, estimated: false, zigZags: 0 }, path };
  }
  const path = gradientDescentPath(p, { inputs, lr: best.lr, steps: s.maxSimulatedSteps, start: startW, targetLoss: target, stopAtTarget: true });
  const simulated = path.stepsToTarget;
  return {
    row: { inputs, lr: best.lr, lrFraction: best.lr / maxStable, ratesTried: lrs.length, ratesUnstable: diverged, steps: simulated ?? best.steps, estimated: simulated === null, zigZags: path.zigZags },
    path,
  };
}

/**
 * Batch norm on the input has no closed-form count (each mini-batch has its own statistics), so every
 * rate is simulated, from the largest down, for bnMaxSteps steps: a rate above the stability limit can
 * pass through the target on its way up, so a stable rate must not diverge and must end within the
 * target. Once a rate has been stable, smaller ones only get slower, and the scan stops when they take
 * three times the best count or are not stable.
 */
function bestBatchNorm(p: TwoFeatureProblem, lrs: number[], target: number, startW: [number, number], s: TwoFeatureSettings): { row: RowOfRatio; path: DescentPath } {
  let best: DescentPath | null = null;
  let tried = 0;
  let failed = 0;
  const batchSize = s.bnBatchSize;
  for (let i = lrs.length - 1; i >= 0; i--) {
    const path = gradientDescentPath(p, { inputs: 'batchnorm', lr: lrs[i], steps: s.bnMaxSteps, start: startW, targetLoss: target, batchSize });
    tried++;
    if (path.diverged || path.stepsToTarget === null || path.loss[path.loss.length - 1] > target) {
      failed++;
      if (best !== null) break;
      continue;
    }
    if (best === null || path.stepsToTarget <= best.stepsToTarget!) best = path;
    else if (path.stepsToTarget >= 3 * best.stepsToTarget!) break;
  }
  const maxStable = twoFeatureCurvature(p, 'standardized').maxStableLr;
  if (best === null) {
    const path = gradientDescentPath(p, { inputs: 'batchnorm', lr: lrs[0], steps: 1, start: startW, batchSize });
    return { row: { inputs: 'batchnorm', lr: lrs[0], lrFraction: lrs[0] / maxStable, ratesTried: tried, ratesUnstable: failed, steps: null, estimated: false, zigZags: 0 }, path };
  }
  // Drawn up to the target, like the other paths.
  const k = best.stepsToTarget! + 1;
  const drawn: DescentPath = { ...best, w1: best.w1.slice(0, k), w2: best.w2.slice(0, k), loss: best.loss.slice(0, k) };
  return { row: { inputs: 'batchnorm', lr: best.lr, lrFraction: best.lr / maxStable, ratesTried: tried, ratesUnstable: failed, steps: best.stepsToTarget, estimated: false, zigZags: best.zigZags }, path: drawn };
}

/** Steps drawn: every one up to `every`, then about 150 log-spaced ones up to the last. */
function drawnSteps(last: number, every: number): number[] {
  const out = new Set<number>();
  for (let k = 0; k <= Math.min(last, every); k++) out.add(k);
  if (last > every) for (let i = 0; i <= 150; i++) out.add(Math.round(every * (last / every) ** (i / 150)));
  return [...out].filter((k) => k <= last).sort((a, b) => a - b);
}

const round = (v: number) => Number(v.toPrecision(3));

/**
 * The three panels of one ratio. All three show the same window of functions (the same box in weights
 * on the standardized features, mapped to raw weights for raw inputs) around the start, the optimum and
 * every path, so the paths can be compared panel to panel; the box has the panels' aspect.
 */
function panelsFor(p: TwoFeatureProblem, paths: Record<TwoFeatureInputs, DescentPath>, startW: [number, number], s: TwoFeatureSettings): TwoFeaturePanel[] {
  const std = p.featureStd;
  const optimum = twoFeatureMinimum(p, 'standardized').w;
  const inV = (path: DescentPath) => (path.space === 'raw' ? { w1: path.w1.map((w) => w * std[0]), w2: path.w2.map((w) => w * std[1]) } : path);
  const b = pathBounds(TWO_FEATURE_INPUTS.map((k) => inV(paths[k])), [startW, optimum], 0.08);
  // Equal units on both axes in the standardized panels (a round valley looks round): widen the narrower side.
  const aspect = PANEL_WIDTH / PANEL_HEIGHT;
  const spanX = b.w1[1] - b.w1[0];
  const spanY = b.w2[1] - b.w2[0];
  const widen = (r: [number, number], span: number): [number, number] => [(r[0] + r[1]) / 2 - span / 2, (r[0] + r[1]) / 2 + span / 2];
  const vx = spanX / spanY < aspect ? widen(b.w1, spanY * aspect) : b.w1;
  const vy = spanX / spanY < aspect ? b.w2 : widen(b.w2, spanX / aspect);
  const min = twoFeatureMinimum(p, 'standardized').loss;
  const gap = twoFeatureLoss(p, startW[0], startW[1], 'standardized') - min;
  return TWO_FEATURE_INPUTS.map((inputs) => {
    const path = paths[inputs];
    const raw = path.space === 'raw';
    const w1: [number, number] = raw ? [vx[0] / std[0], vx[1] / std[0]] : vx;
    const w2: [number, number] = raw ? [vy[0] / std[1], vy[1] / std[1]] : vy;
    const grid = twoFeatureLossGrid(p, path.space, w1, w2, s.gridSize);
    const steps = drawnSteps(path.w1.length - 1, s.drawEverySteps);
    return {
      ratio: p.ratio,
      inputs,
      space: path.space,
      w1,
      w2,
      excess: Array.from(grid.loss, (l) => round(Math.max(1e-6, (l - min) / gap))),
      path: steps.map((k) => ({ step: k, w1: path.w1[k], w2: path.w2[k] })),
      start: raw ? toRawWeights(p, startW) : startW,
      optimum: raw ? twoFeatureMinimum(p, 'raw').w : optimum,
    };
  });
}

const PANEL_WIDTH = 210;
const PANEL_HEIGHT = 170;

function row(d: TwoFeatureData, ratio: number, inputs: TwoFeatureInputs): TwoFeatureRow {
  return d.rows.find((r) => r.ratio === ratio && r.inputs === inputs)!;
}

/** Least-squares slope of log(steps) against log(ratio) for raw inputs, over the ratios of at least 10. */
export function rawExponent(d: TwoFeatureData): number | null {
  const pts = d.rows.filter((r) => r.inputs === 'raw' && r.ratio >= 10 && r.steps !== null && r.steps > 0).map((r) => [Math.log10(r.ratio), Math.log10(r.steps!)]);
  if (pts.length < 2) return null;
  const mx = pts.reduce((a, q) => a + q[0], 0) / pts.length;
  const my = pts.reduce((a, q) => a + q[1], 0) / pts.length;
  const sxx = pts.reduce((a, q) => a + (q[0] - mx) ** 2, 0);
  if (sxx === 0) return null;
  return pts.reduce((a, q) => a + (q[0] - mx) * (q[1] - my), 0) / sxx;
}

function ratiosOf(d: TwoFeatureData): number[] {
  return [...new Set(d.rows.map((r) => r.ratio))].sort((a, b) => a - b);
}

/** Largest over smallest step count of `inputs` across the ratios (null if one did not arrive). */
function spreadOver(d: TwoFeatureData, inputs: TwoFeatureInputs): number | null {
  const steps = ratiosOf(d).map((r) => row(d, r, inputs).steps);
  if (steps.some((x) => x === null)) return null;
  return Math.max(...(steps as number[])) / Math.max(1, Math.min(...(steps as number[])));
}

/** The claims as one seed shows them. */
export function twoFeatureEffects(d: TwoFeatureData): EffectMeasure[] {
  const ratios = ratiosOf(d);
  const exponent = rawExponent(d);
  const stdSpread = spreadOver(d, 'standardized');
  const bnSpread = spreadOver(d, 'batchnorm');
  // How far batch norm's count is from standardization's, the worse of the ratios, as a factor ≥ 1.
  const bnFactors = ratios.map((r) => {
    const bn = row(d, r, 'batchnorm').steps;
    const st = row(d, r, 'standardized').steps;
    return bn === null || st === null ? null : Math.max(bn, st) / Math.max(1, Math.min(bn, st));
  });
  const bnWorst = bnFactors.some((f) => f === null) ? null : Math.max(...(bnFactors as number[]));
  const effects: EffectMeasure[] = [
    { id: 'raw-exponent', claim: 'on raw inputs the steps grow about as r² (log-log slope between 1.5 and 2.5 over the ratios from 10)', label: 'slope of log(steps) against log(r), raw inputs', value: exponent, holds: exponent !== null && exponent >= 1.5 && exponent <= 2.5, format: 'number' },
    { id: 'standardized-flat', claim: 'on standardized inputs the steps do not depend on r (largest over smallest count at most 1.5×)', label: 'largest / smallest step count over the ratios, standardized inputs', value: stdSpread, holds: stdSpread !== null && stdSpread <= 1.5, format: 'ratio' },
    { id: 'batchnorm-flat', claim: 'batch norm on the input needs the same number of steps at every ratio (largest over smallest count at most 1.5×)', label: 'largest / smallest step count over the ratios, batch norm on the input', value: bnSpread, holds: bnSpread !== null && bnSpread <= 1.5, format: 'ratio' },
    { id: 'batchnorm-matches', claim: 'batch norm on the input needs about as many steps as standardized inputs at every ratio (within 3×: its mini-batch statistics add noise that standardizing once does not)', label: 'largest factor between the step counts of batch norm and standardized inputs', value: bnWorst, holds: bnWorst !== null && bnWorst <= 3, format: 'ratio' },
  ];
  for (const r of ratios.filter((x) => x > 1)) {
    const raw = row(d, r, 'raw').steps;
    const st = row(d, r, 'standardized').steps;
    effects.push({ id: `raw-slower-r${r}`, claim: `at r = ${r} raw inputs need more steps than standardized ones`, label: `steps raw / standardized at r = ${r}`, value: raw === null || st === null ? null : raw / Math.max(1, st), holds: st !== null && (raw === null || raw > st), format: 'ratio' });
  }
  return effects;
}

/** A target fraction as a percentage with the digits it needs: 0.01 → 1%, 0.001 → 0.1%. */
const pct = (f: number) => formatPercent(f, Math.max(0, Math.ceil(-Math.log10(f * 100) - 1e-9)));

const stepsText = (r: TwoFeatureRow) => (r.steps === null ? 'never' : `${formatCount(r.steps)}${r.estimated ? '*' : ''}`);

/** A fraction rounded down to 2 decimals, so that 0.998 of a limit does not read as the limit itself. */
const floor2 = (x: number) => (Math.floor(x * 100) / 100).toFixed(2);

/** Which scaled ratios' raw rates sat within 5% of the stability limit, as a clause of the reading. */
function nearLimit(d: TwoFeatureData, ratios: number[]): string {
  const scaled = ratios.filter((r) => r > 1);
  const near = scaled.filter((r) => row(d, r, 'raw').lrFraction >= 0.95);
  if (near.length === 0) return '';
  return `: at r = ${near.join(', ')} just below where it diverges, since the flat direction needs all the rate the steep one allows`;
}

function describe(d: TwoFeatureData, s: TwoFeatureSettings) {
  const ratios = ratiosOf(d);
  const reading: string[] = [];
  const anyEstimated = d.rows.some((r) => r.estimated);
  reading.push(
    `Gradient descent fits y = w1·x1 + w2·x2 (squared loss, ${formatCount(s.samples)} samples, x1 with std 1 and x2 with std r, correlation ${s.correlation}) from the same start, until the loss is within ${pct(s.targetFraction)} of the start's excess over the minimum. ` +
      `Each treatment at each ratio runs at the rate, of a grid of ${s.lrsPerDecade} per factor of ten, that gets there in the fewest steps without diverging; batch norm on the input normalizes each mini-batch of ${s.bnBatchSize} with its own statistics (γ = 1, β = 0). ` +
      `Steps to the target, raw / standardized / batch norm: ${ratios.map((r) => `r = ${r}: ${stepsText(row(d, r, 'raw'))} / ${stepsText(row(d, r, 'standardized'))} / ${stepsText(row(d, r, 'batchnorm'))}`).join('; ')}` +
      `${anyEstimated ? ` (* more than ${formatCount(s.maxSimulatedSteps)} steps: counted by the quadratic model, exact for this loss)` : ''}.`,
  );
  const exponent = rawExponent(d);
  const top = ratios[ratios.length - 1];
  const c = d.curvature.find((x) => x.ratio === top)!;
  if (exponent !== null) {
    const near2 = exponent >= 1.5 && exponent <= 2.5;
    reading.push(
      `On raw inputs the steps grew with the ratio with a log-log slope of ${exponent.toFixed(2)} over r ≥ 10 ${near2 ? '(about r²: ten times the ratio, a hundred times the steps)' : '(not the r² that the curvature predicts)'}. ` +
        `The valley's curvature across is ${formatCount(c.raw)} times its curvature along at r = ${top} (${d.curvature.find((x) => x.ratio === ratios[0])!.raw.toFixed(1)} at r = ${ratios[0]}); the largest stable rate is set by the steep direction, so the flat one is crossed in tiny steps, and the path turned back across the valley ${formatCount(row(d, top, 'raw').zigZags)} times${row(d, top, 'raw').estimated ? ' in its simulated part' : ''} at r = ${top}. ` +
        `The best raw rate sat at ${ratios.map((r) => floor2(row(d, r, 'raw').lrFraction)).join(', ')} of 2/λmax for r = ${ratios.join(', ')}${nearLimit(d, ratios)}.`,
    );
  }
  const stdSteps = ratios.map((r) => row(d, r, 'standardized').steps);
  const stdSpread = spreadOver(d, 'standardized');
  reading.push(
    stdSpread !== null && stdSpread <= 1.5
      ? `Standardized inputs needed ${[...new Set(stdSteps)].map((x) => formatCount(x!)).join(' to ')} steps at every ratio: standardizing removes r from the problem (condition number ${d.curvature[0].standardized.toFixed(2)}, from the correlation alone).`
      : `Standardized inputs needed ${stdSteps.map((x) => (x === null ? 'never' : formatCount(x))).join(', ')} steps at r = ${ratios.join(', ')}: not flat in this run.`,
  );
  const bnRows = ratios.map((r) => row(d, r, 'batchnorm'));
  const bnFactors = ratios.map((r) => {
    const bn = row(d, r, 'batchnorm').steps;
    const st = row(d, r, 'standardized').steps;
    return bn === null || st === null ? null : Math.max(bn, st) / Math.max(1, Math.min(bn, st));
  });
  reading.push(
    bnFactors.every((f) => f !== null && f <= 3)
      ? `Batch norm on the input needed ${bnRows.map((r) => formatCount(r.steps!)).join(', ')} steps at r = ${ratios.join(', ')}, within ${formatRatio(Math.max(...(bnFactors as number[])))} of standardized inputs at every ratio (its best rate: ${[...new Set(bnRows.map((r) => floor2(r.lrFraction)))].join(' to ')} of the standardized problem's 2/λmax): normalizing each batch by its own statistics does what standardizing once does, with mini-batch noise on top.`
      : `Batch norm on the input needed ${bnRows.map((r) => stepsText(r)).join(', ')} steps at r = ${ratios.join(', ')}: it did not match standardized inputs within 3× at every ratio in this run.`,
  );
  const headlines = (['raw', 'standardized', 'batchnorm'] as const).map((k) => ({ label: `steps to the target, ${TWO_FEATURE_LABELS[k]}, r = ${ratios.join(' / ')}`, value: ratios.map((r) => stepsText(row(d, r, k))).join(' / ') }));
  if (exponent !== null) headlines.push({ label: 'raw inputs: slope of log(steps) against log(r)', value: exponent.toFixed(2) });
  const summary = [
    `steps to within ${pct(s.targetFraction)}, raw inputs at r = ${ratios.join('/')}: ${ratios.map((r) => stepsText(row(d, r, 'raw'))).join(' / ')}${exponent === null ? '' : ` (slope ${exponent.toFixed(2)})`}`,
    `standardized: ${ratios.map((r) => stepsText(row(d, r, 'standardized'))).join(' / ')}`,
    `batch norm on the input (batches of ${s.bnBatchSize}): ${ratios.map((r) => stepsText(row(d, r, 'batchnorm'))).join(' / ')}`,
  ];
  return { reading, summary, headlines };
}

/** Over several seeds: the step counts per ratio and treatment, mean and range. */
function stepsTable(perSeed: Array<{ seed: number; data: TwoFeatureData }>, ratios: number[]): string[] {
  if (perSeed.length < 2) return [];
  const parts = ratios.map((r) => {
    const cells = TWO_FEATURE_INPUTS.map((k) => {
      const v = perSeed.map((x) => row(x.data, r, k).steps);
      if (v.some((x) => x === null)) return `${TWO_FEATURE_LABELS[k]} not reached on ${v.filter((x) => x === null).length} of ${v.length} seeds`;
      const n = v as number[];
      const mean = n.reduce((a, b) => a + b, 0) / n.length;
      const est = perSeed.some((x) => row(x.data, r, k).estimated);
      return `${TWO_FEATURE_LABELS[k]} ${formatCount(mean)}${est ? '*' : ''} (${formatCount(Math.min(...n))}–${formatCount(Math.max(...n))})`;
    });
    return `r = ${r}: ${cells.join(', ')}`;
  });
  const est = perSeed.some((x) => x.data.rows.some((r) => r.estimated));
  return [`Steps to the target, mean (min–max) over the ${perSeed.length} seeds: ${parts.join('; ')}${est ? ' (* counted by the quadratic model past the simulated steps)' : ''}.`];
}

function stepsFigureOfOne(result: TwoFeatureResult): Figure[] {
  const d = result.data;
  const values: Row[] = d.rows.filter((r) => r.steps !== null).map((r) => ({ ratio: r.ratio, steps: Math.max(1, r.steps!), inputs: TWO_FEATURE_LABELS[r.inputs], line: 'measured' }));
  // A slope-2 guide through raw inputs' count at r = 10 (or the first ratio above 1).
  const anchor = d.rows.find((r) => r.inputs === 'raw' && r.ratio > 1 && r.steps !== null);
  if (anchor) for (const r of ratiosOf(d)) values.push({ ratio: r, steps: anchor.steps! * (r / anchor.ratio) ** 2, inputs: '∝ r² (guide)', line: 'slope 2 guide' });
  const ratios = ratiosOf(d);
  const s = result.settings as unknown as TwoFeatureSettings;
  return [
    {
      id: 'steps',
      title: 'Steps of gradient descent to the target loss against the scale ratio',
      caption: `Steps until the loss is within ${pct(s.targetFraction)} of the start's excess over the minimum, each treatment at its best stable rate (the grid rate, ${s.lrsPerDecade} per factor of ten, that arrives in the fewest steps without diverging). Log-log: a slope of 2 is r². Counts past ${formatCount(s.maxSimulatedSteps)} simulated steps are the quadratic model's, exact for this squared loss.`,
      spec: xyChart({
        values,
        mark: 'line+point',
        x: { field: 'ratio', title: 'scale ratio r = std(x2)/std(x1) (log scale)', scale: 'log', values: ratios },
        y: { field: 'steps', title: 'steps to the target (log scale)', scale: 'log', format: ',' },
        color: { field: 'inputs', title: 'inputs', domain: [...TWO_FEATURE_INPUTS.map((k) => TWO_FEATURE_LABELS[k]), '∝ r² (guide)'], range: [...TWO_FEATURE_INPUTS.map((k) => COLORS[k]), '#999999'] },
        detail: { field: 'line', title: 'line', domain: ['measured', 'slope 2 guide'] },
      }),
    },
  ];
}

const stepsFigure = figuresOverSeeds(stepsFigureOfOne);

/** The contour grid of the first seed: rows = ratio, columns = treatment. */
function contourFigure(result: TwoFeatureResult): Figure {
  const d = result.data;
  const s = result.settings as unknown as TwoFeatureSettings;
  const n = s.gridSize;
  // Level lines every half decade of the excess loss, from 3× the start's down to 1/1,000 of it.
  const levels = [3, 1, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001];
  const panels: ContourPanel[] = d.panels.map((pn) => {
    const xs = Array.from({ length: n }, (_, i) => pn.w1[0] + ((pn.w1[1] - pn.w1[0]) * i) / (n - 1));
    const ys = Array.from({ length: n }, (_, i) => pn.w2[0] + ((pn.w2[1] - pn.w2[0]) * i) / (n - 1));
    // Half a cell, and a little more: abutting cells would show antialiased seams between them.
    const hx = 0.53 * (xs[1] - xs[0]);
    const hy = 0.53 * (ys[1] - ys[0]);
    const cells = pn.excess.map((value, i) => {
      const x = xs[i % n];
      const y = ys[Math.floor(i / n)];
      return { x: x - hx, x2: x + hx, y: y - hy, y2: y + hy, value };
    });
    const lines = levels.flatMap((level) => levelSegments(xs, ys, pn.excess, level));
    const r = row(d, pn.ratio, pn.inputs);
    const raw = pn.space === 'raw';
    return {
      title: `r = ${pn.ratio}, ${TWO_FEATURE_LABELS[pn.inputs].replace(' inputs', '')}`,
      subtitle: `${stepsText(r)} steps${raw && pn.ratio !== 1 ? ` · w2 axis stretched ${formatCount(pn.ratio)}×` : ''}`,
      xTitle: raw ? 'w1 (raw)' : 'w1 (standardized)',
      yTitle: raw ? 'w2 (raw)' : 'w2 (standardized)',
      cells,
      lines,
      path: pn.path.map((q) => ({ x: q.w1, y: q.w2, step: q.step, series: TWO_FEATURE_LABELS[pn.inputs] })),
      points: [
        { x: pn.start[0], y: pn.start[1], mark: 'start' },
        { x: pn.optimum[0], y: pn.optimum[1], mark: 'minimum' },
      ],
      domainX: pn.w1,
      domainY: pn.w2,
    };
  });
  const seedNote = result.seeds.length > 1 ? ` Seed ${result.seed}'s data and start (each seed draws both anew).` : '';
  return {
    id: 'contours',
    title: 'Loss contours and gradient-descent paths, raw against normalized inputs',
    caption:
      `Rows: scale ratio r; columns: raw inputs, standardized inputs, batch norm on the input. Shade: loss above the minimum as a fraction of the start's (log scale); level lines every half decade of it, from 3 to 0.001. ` +
      `Every row shows the same functions: the standardized panels in weights on the standardized features (equal units on both axes), the raw panel in raw weights, where w2's axis spans r times less than w1's, so the raw valley is r times narrower across than it is drawn. ` +
      `The paths end at the target (every step up to ${formatCount(s.drawEverySteps)}, then log-spaced ones)${d.rows.some((r) => r.estimated) ? `; * marks counts beyond the ${formatCount(s.maxSimulatedSteps)} simulated steps (the quadratic model's), whose path shows only the simulated steps` : ''}.${seedNote}`,
    spec: contourGrid({
      panels,
      columns: TWO_FEATURE_INPUTS.length,
      width: PANEL_WIDTH,
      height: PANEL_HEIGHT,
      field: { title: ['loss above the minimum', '÷ the start’s (log)'], domain: [1e-3, 10] },
      series: { title: 'path', domain: TWO_FEATURE_INPUTS.map((k) => TWO_FEATURE_LABELS[k]), range: TWO_FEATURE_INPUTS.map((k) => COLORS[k]) },
      marks: { title: 'point', domain: ['start', 'minimum'], shapes: ['circle', 'cross'] },
    }),
  };
}

export function twoFeatureFigures(result: TwoFeatureResult): Figure[] {
  return [contourFigure(result), ...stepsFigure(result)];
}

export const twoFeatureExperiment: ExperimentDefinition<TwoFeatureData, TwoFeatureExperimentOptions> = {
  name: 'two-feature',
  title: 'Two features on different scales: contours, paths and steps',
  description: 'gradient descent on two features with scale ratio 1 to 1000: contours and paths for raw, standardized and batch-normalized inputs, steps to a fixed loss',
  compared:
    'A linear model y = w1·x1 + w2·x2 fitted by gradient descent to data whose two features differ in scale by a ratio r (from 1 to 1000), three ways: on the raw features; on features standardized once, up front; and with batch norm on the inputs, each mini-batch normalized with its own mean and variance. Compared: the gradient-descent steps each needs to come close to the minimum, each at its best learning rate, and the paths drawn on the loss contours.',
  settings: { ...TWO_FEATURE_DEFAULTS },
  run: runTwoFeature,
  figures: twoFeatureFigures,
};
