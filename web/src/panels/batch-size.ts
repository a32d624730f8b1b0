/**
 * Batch size and noise (claim 3): batch norm normalizes with the statistics of each mini-batch, so every
 * example's output depends on the others in the batch, a noise of about σ/√B that regularizes and fades
 * as the batch grows. Shown: one unit's batch mean step by step with its step-to-step noise against
 * σ/√B; the spread of batch means against 1/√B over batch sizes 2-256; train vs test accuracy of both
 * networks; ghost batches. Probes: 'noise' (every step) and 'noise-curve' (web/src/worker/panel-probes.ts).
 */
import { TWINS, ghostFits, type ProbeRequest, type TwinId } from '../worker/protocol.js';
import { LineChart, type Series } from '../charts/line-chart.js';
import { probeSamples, type LabData } from '../engine.js';
import type { LabState } from '../state.js';
import { TWIN_STYLE, writeText, type Panel, type PanelContext } from './types.js';

/** How often the noise curve and the accuracies are asked for: the schedule in panel-probes.ts takes them every 50 steps up to 100, every 250 up to 1,000, then every 1,000. */
export const CURVE_EVERY = 50;

const last = <T>(xs: T[]): T | undefined => xs[xs.length - 1];

let meanChart: LineChart;
let curveChart: LineChart;
let gapChart: LineChart;
let figures: HTMLElement;
let context: PanelContext;

const pct = (a: number) => `${(100 * a).toFixed(1)}%`;
const f3 = (v: number) => (Math.abs(v) < 0.01 ? v.toExponential(1) : v.toFixed(3));

let ghostNote: HTMLElement;
let appliedBatch = 0;

/** The note beside the ghost-batch control: shown while the size cannot be used with the twins' batch size. */
function renderGhostNote(): string | null {
  const problem = appliedBatch > 0 ? ghostProblem(context.state().ghostBatch, appliedBatch) : null;
  writeText(ghostNote, problem ?? '');
  ghostNote.hidden = problem === null;
  return problem;
}

/** Why a ghost-batch size is not in use with batches of `batchSize`, or null when it is (or is 0, none). */
export function ghostProblem(ghost: number, batchSize: number): string | null {
  if (ghost === 0 || ghostFits(ghost, batchSize)) return null;
  if (ghost === 1) return 'Ghost batches of 1 are off: a ghost batch norm normalizes each sub-batch with its own mean and variance, and one example is its own mean, with variance 0 (every unit would become 0). Use 2 or more.';
  if (ghost >= batchSize) return `Ghost batches of ${ghost} are off: they must be smaller than the batch size ${batchSize} and divide it.`;
  const divisors = Array.from({ length: batchSize - 2 }, (_, i) => i + 2).filter((d) => ghostFits(d, batchSize));
  return `Ghost batches of ${ghost} are off: the size must divide the batch size ${batchSize}${divisors.length ? ` (e.g. ${divisors.slice(0, 8).join(', ')})` : ''}.`;
}

/** The layer and unit measured: the chosen ones clamped to the twins' depth and width, as the worker clamps them. */
const chosen = (s: LabState, applied: LabState) => ({ layer: Math.min(s.noiseLayer, applied.depth) - 1, unit: Math.min(s.noiseUnit, applied.width - 1) });

/** The noise samples of the layer and unit now chosen (older ones measured another unit: one line must not join two). */
function noiseSamples(data: LabData, twin: TwinId) {
  const { layer, unit } = chosen(context.state(), data.applied);
  return probeSamples(data, twin, 'noise').filter((s) => s.value.layer === layer && s.value.unit === unit);
}

function curveSamples(data: LabData, twin: TwinId) {
  const { layer } = chosen(context.state(), data.applied);
  return probeSamples(data, twin, 'noise-curve').filter((s) => s.value.layer === layer);
}

export const batchSizePanel: Panel = {
  id: 'batch-size',
  title: 'Batch size and noise',
  claim: 'Batch statistics are noisy, about σ/√B, and that noise regularizes; it fades as the batch grows.',

  probes(state: LabState): ProbeRequest[] {
    // Layer, unit and ghost size as chosen: the worker clamps them to the twins it has and checks that the
    // ghost size divides the batch (the state may hold a depth, width or batch size not yet applied).
    const layer = state.noiseLayer - 1;
    return [
      { name: 'noise', every: 1, params: { layer, unit: state.noiseUnit, ghost: state.ghostBatch, window: 100 } },
      { name: 'noise-curve', every: CURVE_EVERY, params: { layer } },
    ];
  },

  mount(el: HTMLElement, ctx: PanelContext) {
    context = ctx;
    ghostNote = document.createElement('span');
    ghostNote.className = 'control-note';
    ghostNote.id = 'ghost-note';
    ghostNote.setAttribute('role', 'status');
    ghostNote.hidden = true;
    const ghostControl = document.getElementById('ctl-ghostBatch');
    ghostControl?.parentElement?.append(ghostNote);
    // Set after the page's own listener has put the value in the state.
    ghostControl?.addEventListener('change', () => renderGhostNote());
    const row = document.createElement('div');
    row.className = 'chart-row';
    el.append(row);
    meanChart = new LineChart(row, { title: 'The chosen unit’s mean over each training batch, step by step, both networks', xLabel: 'step', yLabel: 'batch mean of the unit’s input' });
    curveChart = new LineChart(row, { title: 'Spread of batch means against batch size, with 1/√B', xLabel: 'batch size B', yLabel: 'spread of batch means (in std)', logX: true, logY: true });
    figures = document.createElement('p');
    figures.className = 'figures';
    el.append(figures);
    gapChart = new LineChart(el, { title: 'Train and test accuracy of both networks', xLabel: 'step', yLabel: 'accuracy (train thin, test thick)', height: 200 });
    const note = document.createElement('p');
    note.className = 'caption';
    note.textContent =
      'The unit is a hidden unit’s input to its batch norm (its Linear output), on the batch each step trained on. Step-to-step noise is √(mean of (m_t − m_{t−1})²/2) over the last 100 measurements (every step with batch norm, every 4th step without), which leaves out the slow drift of the weights; σ/√B uses the unit’s spread within those batches. A ghost-batch size V splits each batch into sub-batches: the spread of their means is the noise σ/√V a ghost batch norm would use. Behind another batch norm (hidden layer 2 and up, or layer 1 with batch norm on the input) the whole batch’s mean is pinned, because the layer below normalized that very batch.';
    el.append(note);
  },

  update(data: LabData) {
    const meanSeries: Series[] = [];
    const curve: Series[] = [];
    const gap: Series[] = [];
    for (const twin of TWINS) {
      const style = TWIN_STYLE[twin];
      const n = noiseSamples(data, twin);
      meanSeries.push({ ...style, width: 1.2, x: n.map((s) => s.step), y: n.map((s) => s.value.mean) });
      const c = last(curveSamples(data, twin));
      if (c) curve.push({ ...style, points: true, x: c.value.rows.map((r) => r.batchSize), y: c.value.rows.map((r) => r.measured) });
      const g = probeSamples(data, twin, 'noise-curve').filter((s) => s.value.train !== null);
      // Measured now and then (every 50 steps at first, then every 250 and 1,000): dots show each measurement.
      gap.push({ ...style, label: '', width: 1, points: true, x: g.map((s) => s.step), y: g.map((s) => s.value.train ?? NaN) });
      gap.push({ ...style, width: 2.4, points: true, x: g.map((s) => s.step), y: g.map((s) => s.value.test ?? NaN) });
    }
    const c = last(curveSamples(data, 'bn'));
    if (c) curve.push({ label: '1/√B', color: '#555', dash: [2, 2], width: 1.2, x: c.value.rows.map((r) => r.batchSize), y: c.value.rows.map((r) => r.predicted) });
    meanChart.setData(meanSeries);
    curveChart.setData(curve);
    gapChart.setData(gap);
    // Up to the step trained so far, like the charts above, though the last measurement may be older.
    gapChart.setXRange(data.step > 0 ? [0, data.step] : undefined);
    meanChart.draw();
    curveChart.draw();
    gapChart.draw();
    const parts: string[] = [];
    for (const twin of TWINS) {
      const e = last(noiseSamples(data, twin))?.value.estimate;
      if (!e) continue;
      const ghost = e.ghostMeasured !== null ? `; ghost batches of ${e.ghostSize}: ${f3(e.ghostMeasured)} against σ/√V = ${f3(e.ghostPredicted!)}` : '';
      parts.push(`${twin === 'bn' ? 'With batch norm' : 'Without'}: step-to-step noise ${f3(e.measured)} against σ/√B = ${f3(e.predicted)} (B = ${e.batchSize}, last ${e.steps} measurements)${ghost}`);
    }
    appliedBatch = data.applied.batchSize;
    const problem = renderGhostNote();
    figures.textContent = `${parts.length ? `${parts.join('. ')}.` : 'Train a few steps to measure the noise.'}${problem ? ` ${problem}` : ''}`;
  },

  reading(data: LabData): string {
    const state = context.state();
    const layer = chosen(state, data.applied).layer + 1;
    const e = last(noiseSamples(data, 'bn'))?.value.estimate;
    const cb = last(curveSamples(data, 'bn'))?.value;
    const cn = last(curveSamples(data, 'nobn'))?.value;
    if (!e || !cb || !cn) return `Train a few steps: the noise of the batch statistics is measured on every batch (batch size ${data.applied.batchSize}).`;
    const ratio = e.measured / e.predicted;
    const small = cb.rows[0];
    const large = cb.rows[cb.rows.length - 1];
    const law = `batch means spread ${f3(small.measured)} std at B = ${small.batchSize} and ${f3(large.measured)} at B = ${large.batchSize}, against 1/√B's ${f3(small.predicted)} and ${f3(large.predicted)}`;
    const noise = ratio > 0.7 && ratio < 1.4
      ? `the unit's batch mean in hidden layer ${layer} jitters ${f3(e.measured)} from step to step, close to σ/√B = ${f3(e.predicted)} at batch ${e.batchSize}`
      : `the unit's batch mean in hidden layer ${layer} jitters ${f3(e.measured)} from step to step, ${ratio < 1 ? 'well below' : 'well above'} σ/√B = ${f3(e.predicted)} at batch ${e.batchSize}${ratio < 1 && (layer > 1 || data.applied.inputBn) ? ` (the batch norm ${layer > 1 ? 'below' : 'on the input'} pins the whole batch’s mean)` : ''}`;
    const gap = cb.train !== null && cb.test !== null && cn.train !== null && cn.test !== null ? `; train minus test accuracy is ${pct(cb.train - cb.test)} with batch norm and ${pct(cn.train - cn.test)} without (on the first 500 training and 500 test images)` : '';
    return `With batch norm, ${noise}; ${law}${gap}.`;
  },
};
