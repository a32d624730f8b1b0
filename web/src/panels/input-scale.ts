/**
 * Input scale (claim 1): inputs on very different scales make gradient descent zig-zag. The two-feature
 * problem (src/experiments/two-feature.ts) runs on the page, it is tiny: loss contours and the path of
 * gradient descent on raw inputs, and on standardized inputs and through batch norm on the input, each
 * at 90% of its own largest stable learning rate, for a scale ratio from 1 to 1000. Below it, MNIST: the
 * twins' loss curves, with batch norm on the input when that setting is on.
 */
import {
  estimatedStepsToTarget,
  gradientDescentPath,
  learningRateFor,
  pathBounds,
  targetLoss,
  twoFeatureCurvature,
  twoFeatureLoss,
  twoFeatureLossGrid,
  twoFeatureMinimum,
  twoFeatureProblem,
  DEFAULT_START,
  type DescentPath,
  type TwoFeatureProblem,
} from '@bnlab/experiments/two-feature.js';
import { TWINS } from '../worker/protocol.js';
import { ContourChart, type Path } from '../charts/contour-chart.js';
import { LineChart, stepsUpTo, type Series } from '../charts/line-chart.js';
import { legend } from '../charts/legend.js';
import type { LabData } from '../engine.js';
import { divergedRangeMax } from './convergence.js';
import { TWIN_STYLE, type Panel, type PanelContext } from './types.js';

/** Steps drawn on the contours (the paths go on; their step counts use up to SIMULATED steps). */
export const DRAWN_STEPS = 200;
export const SIMULATED_STEPS = 20_000;
/** Steps on the loss chart (and raw inputs' whole run: its step count beyond that comes from the curvature). */
export const CHARTED_STEPS = 2000;
/** Learning rate as a fraction of each input's largest stable rate 2/λmax. */
export const LR_FRACTION = 0.9;
/** Mini-batch of the batch-norm path (each batch normalized with its own statistics) and its rate, as a fraction of the largest full-batch stable one: batches need a margin. */
export const BN_BATCH = 64;
export const BN_LR_FRACTION = 0.5;

const STYLE = {
  raw: { label: 'raw inputs', color: '#c2410c', dash: [6, 3] },
  standardized: { label: 'standardized', color: '#1f6fb4', dash: [] as number[] },
  batchnorm: { label: 'batch norm on the input', color: '#15803d', dash: [2, 3] },
};

export interface TwoFeatureView {
  ratio: number;
  problem: TwoFeatureProblem;
  target: number;
  paths: { raw: DescentPath; standardized: DescentPath; batchnorm: DescentPath };
  /** Steps to the target: simulated, or the quadratic model's estimate when beyond SIMULATED_STEPS. */
  steps: { raw: number; standardized: number; batchnorm: number | null; rawEstimated: boolean };
  conditionNumber: { raw: number; standardized: number };
}

/** Everything the two-feature half of the panel shows, for one ratio. */
export function twoFeatureView(ratio: number): TwoFeatureView {
  const problem = twoFeatureProblem({ ratio });
  const target = targetLoss(problem);
  const run = (inputs: 'raw' | 'standardized' | 'batchnorm') => {
    const options = { inputs, lr: learningRateFor(problem, inputs, inputs === 'batchnorm' ? BN_LR_FRACTION : LR_FRACTION), targetLoss: target, stopAtTarget: false, batchSize: inputs === 'batchnorm' ? BN_BATCH : undefined };
    // The charts show the first CHARTED_STEPS; the longer run only counts the steps when the target
    // is not reached by then (the same steps repeated: the batches come from a seeded generator).
    const path = gradientDescentPath(problem, { ...options, steps: CHARTED_STEPS });
    return path.stepsToTarget !== null ? path : gradientDescentPath(problem, { ...options, steps: SIMULATED_STEPS });
  };
  const raw = gradientDescentPath(problem, { inputs: 'raw', lr: learningRateFor(problem, 'raw', LR_FRACTION), steps: CHARTED_STEPS, targetLoss: target });
  const standardized = run('standardized');
  const batchnorm = run('batchnorm');
  const rawSteps = raw.stepsToTarget ?? estimatedStepsToTarget(problem, 'raw', raw.lr, target);
  return {
    ratio,
    problem,
    target,
    paths: { raw, standardized, batchnorm },
    steps: { raw: rawSteps, standardized: standardized.stepsToTarget ?? Infinity, batchnorm: batchnorm.stepsToTarget, rawEstimated: raw.stepsToTarget === null },
    conditionNumber: { raw: twoFeatureCurvature(problem, 'raw').conditionNumber, standardized: twoFeatureCurvature(problem, 'standardized').conditionNumber },
  };
}

const first = (p: DescentPath, n: number) => ({ w1: p.w1.slice(0, n + 1), w2: p.w2.slice(0, n + 1) });

/** Contour levels: the minimum plus the start's gap times 2, 1, 1/2, ... 1/512. */
function levels(p: TwoFeatureProblem): number[] {
  const min = twoFeatureMinimum(p, 'standardized').loss;
  const gap = twoFeatureLoss(p, DEFAULT_START[0], DEFAULT_START[1], 'standardized') - min;
  return Array.from({ length: 11 }, (_, k) => min + gap * 2 ** (1 - k));
}

const fmtSteps = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en') : 'never');
const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toExponential(1).replace('e+', 'e') : v.toPrecision(3));

let view: TwoFeatureView | null = null;
let contourChart: ContourChart;
let lossChart: LineChart;
let mnistChart: LineChart;
let stepsLine: HTMLElement;
let mnistNote: HTMLElement;
let mnistTitle: HTMLElement;

/** The dataset's name as people write it. */
export function datasetName(dataset: string): string {
  return dataset === 'fashion-mnist' ? 'Fashion-MNIST' : dataset === 'mnist' ? 'MNIST' : dataset;
}
let context: PanelContext;

/** The ratio the two-feature charts show: they depend on it alone, not on the training. */
let drawnRatio: number | null = null;

function redrawTwoFeature(): void {
  const ratio = context.state().scaleRatio;
  // Redrawing the contours on every training report kept the page's thread busy (a 61×61 loss grid and
  // 2,000 loss points each time) and the frame rate fell while the twins trained.
  if (ratio !== drawnRatio) {
    drawnRatio = ratio;
    setTwoFeatureData(ratio);
  }
  // Cheap when nothing changed; redraws at a new size (a phone turned, a window resized).
  contourChart.draw();
  lossChart.draw();
}

function setTwoFeatureData(ratio: number): void {
  if (!view || view.ratio !== ratio) view = twoFeatureView(ratio);
  const v = view;
  const p = v.problem;
  const { w: min, loss: lowest } = twoFeatureMinimum(p, 'standardized');
  // Every path in the same coordinates, weight × feature std: the same function has the same point, so
  // the three share one set of contours and differ only in the route gradient descent takes.
  const rawDrawn = first(v.paths.raw, DRAWN_STEPS);
  const rawInV = { w1: rawDrawn.w1.map((w) => w * p.featureStd[0]), w2: rawDrawn.w2.map((w) => w * p.featureStd[1]) };
  const stdDrawn = first(v.paths.standardized, DRAWN_STEPS);
  const bnDrawn = first(v.paths.batchnorm, DRAWN_STEPS);
  const b = pathBounds([rawInV, stdDrawn, bnDrawn], [min], 0.08);
  const paths: Path[] = [{ ...STYLE.batchnorm, label: '', ...bnDrawn }, { ...STYLE.standardized, label: '', ...stdDrawn }, { ...STYLE.raw, label: '', ...rawInV }];
  contourChart.setData(twoFeatureLossGrid(p, 'standardized', b.w1, b.w2, 61), levels(p), paths, min);
  const series: Series[] = (['raw', 'standardized', 'batchnorm'] as const).map((k) => {
    const path = v.paths[k];
    // Enough steps to see the raw path arrive (or 2,000 when it does not).
    const n = Math.min(path.loss.length, Math.max(60, Math.min(CHARTED_STEPS, 3 * (v.paths.raw.stepsToTarget ?? CHARTED_STEPS))));
    return { ...STYLE[k], label: '', x: Float64Array.from({ length: n }, (_, i) => i), width: k === 'batchnorm' ? 1 : 2, y: Float64Array.from(path.loss.slice(0, n), (l) => Math.max(1e-6, l - lowest)) };
  });
  lossChart.setData(series);
  stepsLine.textContent =
    `Steps to within 1% of the lowest loss: raw ${fmtSteps(v.steps.raw)}${v.steps.rawEstimated ? ' (estimated from the curvature: too many to run here)' : ''}, ` +
    `standardized ${fmtSteps(v.steps.standardized)}, batch norm on the input ${v.steps.batchnorm === null ? `not within ${SIMULATED_STEPS.toLocaleString('en')} (the batches' noise keeps it above)` : fmtSteps(v.steps.batchnorm)}. ` +
    `The valley is ${fmt(v.conditionNumber.raw)} times more curved across than along on raw inputs, ${fmt(v.conditionNumber.standardized)} on standardized ones; the raw path zig-zagged ${v.paths.raw.zigZags.toLocaleString('en')} times across it.`;
}

export const inputScalePanel: Panel = {
  id: 'input-scale',
  title: 'Input scale',
  claim: 'Inputs on wildly different scales slow gradient descent down; normalizing them, or batch norm on the input, removes the penalty.',

  mount(el: HTMLElement, ctx: PanelContext) {
    context = ctx;
    const intro = document.createElement('p');
    intro.className = 'note info';
    intro.textContent = `Two features, one with ${'\u00d7'}ratio the spread of the other, and a linear model fitted by gradient descent from the same start (the big dot) to the minimum (black dot). Each path uses ${Math.round(LR_FRACTION * 100)}% of the largest learning rate it can take without diverging; the first ${DRAWN_STEPS} steps are drawn. Move the ratio slider and watch the raw path.`;
    el.append(intro);
    const row = document.createElement('div');
    row.className = 'chart-row';
    el.append(row);
    const cell1 = document.createElement('div');
    const cell2 = document.createElement('div');
    cell1.className = cell2.className = 'chart-cell';
    row.append(cell1, cell2);
    const items = (['raw', 'standardized', 'batchnorm'] as const).map((k) => STYLE[k]);
    legend(cell1, items);
    legend(cell2, items);
    contourChart = new ContourChart(cell1, { title: 'Loss contours of the two-feature problem and the gradient-descent paths on raw inputs, standardized inputs and with batch norm on the input', xLabel: 'weight × std of feature 1', yLabel: 'weight × std of feature 2', height: 300 });
    lossChart = new LineChart(cell2, { title: 'Two-feature problem: loss above the minimum at each step', xLabel: 'step', yLabel: 'loss − lowest loss', logY: true, yRange: [1e-6, 10], height: 300 });
    const axesNote = document.createElement('p');
    axesNote.className = 'caption';
    axesNote.textContent = `The paths are drawn as weight × feature spread, where the same model is the same point for all three. In those coordinates a gradient step on raw inputs is ratio² times longer along feature 2 than along feature 1: the rate must be small enough not to overshoot across the valley (the bouncing), so the walk along it crawls. Batch norm normalizes each batch of ${BN_BATCH} with its own statistics, at ${Math.round(BN_LR_FRACTION * 100)}% of the rate (batches need a margin), and so hovers a little around the minimum.`;
    el.append(axesNote);
    stepsLine = document.createElement('p');
    stepsLine.className = 'figures';
    stepsLine.setAttribute('aria-live', 'polite');
    el.append(stepsLine);
    mnistTitle = document.createElement('h3');
    mnistTitle.id = 'input-scale-dataset-title';
    el.append(mnistTitle);
    mnistChart = new LineChart(el, { title: 'The dataset: train loss of both networks', xLabel: 'step', yLabel: 'train loss (smoothed)', logY: true, height: 200 });
    mnistNote = document.createElement('p');
    mnistNote.className = 'caption';
    el.append(mnistNote);
    document.getElementById('ctl-scaleRatio')?.addEventListener('input', () => redrawTwoFeature());
    redrawTwoFeature();
  },

  update(data: LabData) {
    redrawTwoFeature();
    const series: Series[] = TWINS.map((twin) => {
      const run = data.runs[twin];
      return { ...TWIN_STYLE[twin], label: twin === 'bn' ? `with batch norm${data.applied.inputBn ? ' (and on the input)' : ''}` : TWIN_STYLE[twin].label, x: stepsUpTo(run.trainLoss.length), y: smooth(run.trainLoss, 20), rangeMax: divergedRangeMax(run) };
    });
    mnistChart.setData(series);
    mnistChart.draw();
    const r = data.applied.inputScale;
    const name = datasetName(data.applied.dataset);
    mnistTitle.textContent = `${name}${r > 1 ? ' with its pixels rescaled' : ''}, with and without batch norm`;
    mnistChart.canvas.setAttribute('aria-label', `${name}: train loss of both networks`);
    const scales = r > 1 ? `Each pixel is multiplied by its own factor, from ${fmt(1 / Math.sqrt(r))} to ${fmt(Math.sqrt(r))} (the largest ${r} times the smallest).` : `The pixels are as in ${name}, all on one scale (0 to 1); set "Pixel scales span" above 1 and press Reset to rescale them.`;
    const bn = data.applied.inputBn
      ? 'The network with batch norm also normalizes its 784 inputs over each batch; the other has no normalization anywhere.'
      : 'Tick "Batch norm on the input" and press Reset to put a batch norm over the 784 inputs in front of the network with batch norm.';
    mnistNote.textContent = `${scales} ${bn}`;
  },

  reading(data: LabData): string {
    const v = view ?? twoFeatureView(context.state().scaleRatio);
    const raw = `${fmtSteps(v.steps.raw)}${v.steps.rawEstimated ? ' (estimated)' : ''}`;
    const speed = v.steps.raw / Math.max(1, v.steps.standardized);
    const two = v.ratio <= 1.05
      ? `At a scale ratio of ${v.ratio} the two features are alike and raw gradient descent needs ${raw} steps, like standardized inputs (${fmtSteps(v.steps.standardized)})`
      : `At a scale ratio of ${v.ratio}, gradient descent on raw inputs needs ${raw} steps to get within 1% of the lowest loss, ${speed >= 100 && speed < 1e7 ? Math.round(speed).toLocaleString('en') : fmt(speed)} times as many as on standardized inputs (${fmtSteps(v.steps.standardized)}), because the largest stable rate is set by the steep direction and crawls along the flat one`;
    const tail = (n: number) => {
      const t = data.runs[n === 0 ? 'bn' : 'nobn'].trainLoss.slice(-50).filter(Number.isFinite);
      return t.length ? t.reduce((a, b) => a + b, 0) / t.length : NaN;
    };
    const r = data.applied.inputScale;
    const setup = r > 1 ? `with pixel scales spanning ${r}×` : 'with its pixels as they are';
    // The twins' losses arrive from their workers separately: one may be a frame behind the other.
    const lossText = (x: number, twin: 'bn' | 'nobn') => (data.runs[twin].diverged ? `diverged at step ${data.runs[twin].diverged!.step}` : Number.isFinite(x) ? x.toFixed(3) : 'not in yet');
    const mnist = data.step > 0 ? `; on ${datasetName(data.applied.dataset)} ${setup}, after ${data.step} steps the loss is ${lossText(tail(0), 'bn')} with batch norm${data.applied.inputBn ? ' (also on the input)' : ''} and ${lossText(tail(1), 'nobn')} without` : '';
    return `${two}${mnist}.`;
  },
};

function smooth(values: readonly number[], window: number): Float64Array {
  const out = new Float64Array(values.length);
  let sum = 0;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    if (Number.isFinite(values[i])) {
      sum += values[i];
      count++;
    }
    const drop = i - window;
    if (drop >= 0 && Number.isFinite(values[drop])) {
      sum -= values[drop];
      count--;
    }
    out[i] = count > 0 ? sum / count : NaN;
  }
  return out;
}
