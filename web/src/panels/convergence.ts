/**
 * Convergence and learning rate (claim 2, the paper's Fig. 1a): both twins' train loss and test
 * accuracy as they train, divergence marked where it happened, and a learning-rate sweep drawing the
 * final loss against the rate, so the highest stable rate of each twin shows.
 */
import { formatList } from '@bnlab/experiments/format.js';
import { TWINS, sweepTail, type SweepPoint, type TwinId } from '../worker/protocol.js';
import { LineChart, stepsUpTo, type Marker, type Series } from '../charts/line-chart.js';
import type { LabData, RunSeries, SweepState } from '../engine.js';
import { LAB_EVAL_EVERY } from '../state.js';
import { TWIN_STYLE, writeText, type Panel, type PanelContext } from './types.js';

/** Rates of the sweep: 0.01 to 100, half a decade apart. */
export const SWEEP_RATES = [0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100];
export const SWEEP_STEPS = 300;

/** Mean train loss over the last `n` steps (NaN when there are none). */
export function recentLoss(run: RunSeries, n = 50): number {
  const tail = run.trainLoss.slice(-n).filter(Number.isFinite);
  return tail.length ? tail.reduce((a, b) => a + b, 0) / tail.length : NaN;
}

/** Train loss smoothed over a window, for a readable curve (the raw per-step loss is noisy). */
function smooth(values: readonly number[], window: number): Float64Array {
  const out = new Float64Array(values.length);
  let sum = 0;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v)) {
      sum += v;
      count++;
    }
    const drop = i - window;
    if (drop >= 0 && Number.isFinite(values[drop])) {
      sum -= values[drop];
      count--;
    }
    out[i] = Number.isFinite(v) && count > 0 ? sum / count : v;
  }
  return out;
}

/** The first step at which a twin's test accuracy reached `level`, or null. */
function stepToReach(run: RunSeries, level: number): number | null {
  return run.test.find((t) => t.accuracy >= level)?.step ?? null;
}

const pct = (a: number) => `${(100 * a).toFixed(1)}%`;
const num = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : String(v));

/** The sweep's y value: the mean train loss over the last tenth of each rate's steps (the worker's measure). */
export const SWEEP_TAIL = sweepTail(SWEEP_STEPS);
/** Below this loss a swept rate counts as trained: half the ln 10 ≈ 2.3 of a uniform guess over ten classes. */
export const LEARNED_LOSS = Math.log(10) / 2;

export type SweepOutcome = 'diverged' | 'did not learn' | 'trained';

/** Diverged; did not diverge but ended no better than half a uniform guess (learned little or nothing); or trained. */
export function sweepOutcome(p: { finalLoss: number; diverged: unknown }): SweepOutcome {
  return p.diverged ? 'diverged' : p.finalLoss < LEARNED_LOSS ? 'trained' : 'did not learn';
}

/**
 * Where the learning rate sets a diverged run's loss off the chart: values above three times its first
 * loss (the lab's divergence threshold) do not set the y range, so the other network's curve keeps it.
 */
export function divergedRangeMax(run: RunSeries): number | undefined {
  if (!run.diverged) return undefined;
  const first = run.trainLoss.find(Number.isFinite);
  return first === undefined ? undefined : 3 * first;
}

/**
 * The crosses on the loss chart where a network diverged. The label names the network (colour alone
 * would not), and a second cross at about the same step goes below the first, so both show.
 */
export function divergenceMarkers(data: Pick<LabData, 'runs' | 'step'>): Marker[] {
  const markers: Marker[] = [];
  for (const twin of TWINS) {
    const d = data.runs[twin].diverged;
    if (d) markers.push({ x: d.step, y: d.loss, label: `${twin === 'bn' ? 'with' : 'without'} BN: diverged at step ${d.step}`, color: TWIN_STYLE[twin].color });
  }
  if (markers.length === 2 && Math.abs(markers[0].x - markers[1].x) <= Math.max(2, data.step / 20)) markers[1].dy = 18;
  return markers;
}

let lossChart: LineChart;
let accuracyChart: LineChart;
let sweepChart: LineChart;
let sweepStatus: HTMLElement;
let divergenceNote: HTMLElement;
let sweepButton: HTMLButtonElement;

export const convergencePanel: Panel = {
  id: 'convergence',
  title: 'Convergence and learning rate',
  claim: 'With batch norm the network trains in fewer steps and tolerates higher learning rates.',

  mount(el: HTMLElement, ctx: PanelContext) {
    const charts = document.createElement('div');
    charts.className = 'chart-row';
    el.append(charts);
    lossChart = new LineChart(charts, { title: 'Train loss per step for both networks', xLabel: 'step', yLabel: 'train loss', logY: true });
    accuracyChart = new LineChart(charts, { title: 'Test accuracy for both networks', xLabel: 'step', yLabel: 'test accuracy', yRange: [0, 1] });
    divergenceNote = document.createElement('p');
    divergenceNote.className = 'note warning';
    divergenceNote.setAttribute('role', 'status');
    divergenceNote.hidden = true;
    el.append(divergenceNote);

    const sweepRow = document.createElement('div');
    sweepRow.className = 'sweep-row';
    sweepButton = document.createElement('button');
    sweepButton.type = 'button';
    sweepButton.id = 'sweep';
    sweepButton.textContent = `Sweep the learning rate (${SWEEP_RATES.length} rates × ${SWEEP_STEPS} steps)`;
    sweepButton.addEventListener('click', () => {
      sweepButton.disabled = true;
      ctx.sweep(SWEEP_RATES, SWEEP_STEPS).finally(() => (sweepButton.disabled = false));
    });
    sweepStatus = document.createElement('span');
    sweepStatus.className = 'sweep-status';
    sweepStatus.setAttribute('aria-live', 'polite');
    sweepRow.append(sweepButton, sweepStatus);
    el.append(sweepRow);
    sweepChart = new LineChart(el, { title: `Mean train loss over the last ${SWEEP_TAIL} of ${SWEEP_STEPS} steps against learning rate, both networks`, xLabel: 'learning rate', yLabel: `mean loss, last ${SWEEP_TAIL} of ${SWEEP_STEPS} steps`, logX: true, logY: true, height: 200 });
  },

  update(data: LabData) {
    const series: Series[] = [];
    const acc: Series[] = [];
    for (const twin of TWINS) {
      const run = data.runs[twin];
      const style = TWIN_STYLE[twin];
      series.push({ ...style, x: stepsUpTo(run.trainLoss.length), y: smooth(run.trainLoss, 20), rangeMax: divergedRangeMax(run) });
      acc.push({ ...style, x: run.test.map((t) => t.step), y: run.test.map((t) => t.accuracy), points: run.test.length < 30 });
    }
    const markers = divergenceMarkers(data);
    const steps = Math.max(data.step, 10);
    lossChart.setXRange([1, steps]);
    accuracyChart.setXRange([0, steps]);
    lossChart.setData(series, markers);
    accuracyChart.setData(acc);
    lossChart.draw();
    accuracyChart.draw();

    const diverged = TWINS.filter((t) => data.runs[t].diverged);
    divergenceNote.hidden = diverged.length === 0;
    const note = diverged.map((t) => `The network ${t === 'bn' ? 'with' : 'without'} batch norm was stopped: ${data.runs[t].diverged!.message}. Lower the learning rate and press Reset.`).join(' ');
    writeText(divergenceNote, note);

    const sweep = data.sweep;
    sweepChart.hidden = !sweep;
    if (sweep) {
      const sw: Series[] = [];
      const sm: Marker[] = [];
      for (const twin of TWINS) {
        const points = sweep.points[twin] ?? [];
        // A diverged rate is drawn at the top edge, with a cross.
        sw.push({ ...TWIN_STYLE[twin], x: points.map((p) => p.lr), y: points.map((p) => (p.diverged ? NaN : p.finalLoss)), points: true });
        for (const p of points) if (p.diverged) sm.push({ x: p.lr, y: NaN, label: '', color: TWIN_STYLE[twin].color, dy: twin === 'bn' ? 0 : 16 });
      }
      // Above this line a rate that did not diverge still did not learn.
      sw.push({ label: 'trained below', color: '#777', dash: [2, 3], width: 1, x: [sweep.rates[0], sweep.rates[sweep.rates.length - 1]], y: [LEARNED_LOSS, LEARNED_LOSS] });
      sweepChart.setData(sw, sm);
      const status = sweep.running
        ? `Sweeping: ${TWINS.map((t) => `${TWIN_STYLE[t].label} ${sweep.done[t]}/${sweep.rates.length}`).join(', ')}`
        : `Done: ${sweep.rates.length} rates, ${sweep.steps} steps each, fresh networks from the same seed; each point is the mean loss over the last ${sweepTail(sweep.steps)} steps; above the dotted line (half of ln 10 ≈ 2.3, a uniform guess) a rate did not learn; × at the top = diverged (upper row with batch norm, lower row without).`;
      writeText(sweepStatus, status);
    } else {
      sweepChart.setData([]);
      writeText(sweepStatus, 'Trains fresh copies of both networks at each rate; the run above is paused meanwhile.');
    }
    sweepChart.draw();
  },

  reading(data: LabData): string {
    const sweep = data.sweep;
    const swept = sweep && !sweep.running && sweep.points.bn && sweep.points.nobn ? sweepSummary(sweep) : null;
    if (swept && data.step === sweep!.atStep) return `In the sweep (${sweep!.steps} steps per rate, loss over the last ${sweepTail(sweep!.steps)}), ${swept}.`;
    const run = runReading(data);
    return swept ? `${run.slice(0, -1)}; in the last sweep, ${swept}.` : run;
  },
};

/** The rates, in the sweep's order, as runs of neighbours: "0.01 to 0.1, 10". */
function rateList(all: number[], chosen: number[]): string {
  const runs: number[][] = [];
  all.forEach((lr, i) => {
    if (!chosen.includes(lr)) return;
    const last = runs.at(-1);
    if (last && all.indexOf(last[last.length - 1]) === i - 1) last.push(lr);
    else runs.push([lr]);
  });
  const parts = runs.map((r) => (r.length === 1 ? String(r[0]) : r.length === 2 ? `${r[0]} and ${r[1]}` : `${r[0]} to ${r[r.length - 1]}`));
  return formatList(parts);
}

/** What the sweep found, as a clause: where each network trained (and its lowest loss), did not learn, diverged. */
function sweepSummary(sweep: SweepState): string {
  const of = (twin: TwinId) => {
    const points = sweep.points[twin] ?? [];
    const by = (o: SweepOutcome) => points.filter((p) => sweepOutcome(p) === o).map((p) => p.lr);
    const trained = by('trained');
    const best = points.filter((p) => !p.diverged).reduce<SweepPoint | null>((a, p) => (a === null || p.finalLoss < a.finalLoss ? p : a), null);
    const parts = [trained.length ? `trained at ${rateList(sweep.rates, trained)}` : 'trained at none of the rates'];
    if (by('did not learn').length) parts.push(`did not learn at ${rateList(sweep.rates, by('did not learn'))}`);
    if (by('diverged').length) parts.push(`diverged at ${rateList(sweep.rates, by('diverged'))}`);
    const lowest = best ? ` (lowest loss ${num(best.finalLoss)}, at rate ${best.lr})` : '';
    return `${formatList(parts)}${lowest}`;
  };
  return `with batch norm the network ${of('bn')}; without, it ${of('nobn')}`;
}

/** Below this batch size, a run where batch norm trails gets the likely reason in its reading. */
const SMALL_BATCH = 16;

/** The reading of the run itself: divergence, or how far each network got. */
export function runReading(data: LabData): string {
  const { bn, nobn } = data.runs;
  const lr = data.applied.lr;
  if (nobn.diverged && !bn.diverged) {
    return `At learning rate ${lr} the network without batch norm diverged at step ${nobn.diverged.step}, while the one with batch norm trains on (loss ${num(recentLoss(bn))}${bn.test.length ? `, test accuracy ${pct(bn.test[bn.test.length - 1].accuracy)}` : `; its test accuracy is first measured at step ${LAB_EVAL_EVERY}`}).${data.playing ? '' : ' Press Play to let it go on.'}`;
  }
  if (bn.diverged && nobn.diverged) return `At learning rate ${lr} both networks diverged (with batch norm at step ${bn.diverged.step}, without at step ${nobn.diverged.step}): lower the rate and reset.`;
  if (bn.diverged) return `At learning rate ${lr} the network with batch norm diverged at step ${bn.diverged.step} and the one without did not (loss ${num(recentLoss(nobn))}).`;
  if (data.step === 0 && bn.parameters === 0) return 'Building the two networks…'; // before the workers report them
  if (data.step === 0) return `Both networks start from the same weights in the layers they share (${bn.parameters.toLocaleString('en')} and ${nobn.parameters.toLocaleString('en')} parameters): press Play or Step to train them on the same batches at learning rate ${lr}.`;
  const [la, lb] = [recentLoss(bn), recentLoss(nobn)];
  const ta = bn.test[bn.test.length - 1];
  const tb = nobn.test[nobn.test.length - 1];
  const level = 0.9;
  const [ra, rb] = [stepToReach(bn, level), stepToReach(nobn, level)];
  const reach = ra !== null ? ` and reached ${pct(level)} test accuracy at step ${ra}${rb !== null ? ` (without: step ${rb})` : ' (without: not yet)'}` : rb !== null ? ` (without batch norm it reached ${pct(level)} at step ${rb})` : '';
  const ratio = lb / la;
  // A ratio in the thousands says only that the other loss is blowing up: name that instead of the factor.
  const compare = ratio > 1000 ? `while the loss without it is blowing up (${num(lb)})` : ratio > 1.05 ? `${ratio.toFixed(1)}x lower than without (${num(lb)})` : ratio < 0.95 ? `higher than without (${num(lb)})` : `about the same as without (${num(lb)})`;
  const batch = data.applied.batchSize;
  // Where batch norm trails on tiny batches, the cause is its statistics: say so rather than leave "BN is worse".
  const why = ratio < 0.95 && batch < SMALL_BATCH ? ` In batches of ${batch}, each batch's mean and variance are too noisy to stand for the data's, and batch norm normalizes with them: Batch size and noise below shows how noisy.` : '';
  return `After ${data.step} steps at learning rate ${lr}, the train loss with batch norm is ${num(la)}, ${compare}, ${ta && tb ? `with test accuracy ${pct(ta.accuracy)} against ${pct(tb.accuracy)}` : 'test accuracy comes every 100 steps'}${reach}.${why}`;
}
