/**
 * Inside the network (claim 2, the paper's Fig. 1b,c): for a chosen hidden layer and unit, the 15th,
 * 50th and 85th percentiles of its activation input over a fixed probe batch of test images, as both
 * twins train; each layer's drift of its input distribution since a reference step; and a live histogram
 * of one layer's activation inputs. Probe: 'inside' (web/src/worker/panel-probes.ts).
 */
import { TWINS, type TwinId } from '../worker/protocol.js';
import { LineChart, type Series } from '../charts/line-chart.js';
import { legend } from '../charts/legend.js';
import { probeSamples, type LabData } from '../engine.js';
import type { PanelProbeValues } from '../worker/panel-probes.js';
import type { LabState } from '../state.js';
import { TWIN_STYLE, type Panel, type PanelContext } from './types.js';

/** The probe is asked for every 25 steps and measures every 25 up to step 100, every 100 up to 1,000, then every 500 (panel-probes.ts). */
export const INSIDE_EVERY = 25;
export const HISTOGRAM_BINS = 48;

export type InsideValue = PanelProbeValues['inside'];

/** The samples of the layer and unit now chosen (older ones measured something else). */
export function insideSamples(data: LabData, twin: TwinId, layer: number, unit: number): { step: number; value: InsideValue }[] {
  return probeSamples(data, twin, 'inside').filter((s) => s.value.layer === layer && s.value.unit === unit);
}

function latest(data: LabData, twin: TwinId): InsideValue | null {
  return probeSamples(data, twin, 'inside').at(-1)?.value ?? null;
}

/** The histogram's starting half-width, and the bounds of the powers of two it moves between. */
export const HIST_START = 8;
const HIST_MIN = 1;
const HIST_MAX = 1024;

/**
 * The histogram's next half-width for data whose 99th percentile of |value| is `extent`: the power of two
 * that holds it. It widens at once, and narrows only when the data fit in a quarter of the range, so
 * data near a boundary do not make it flip back and forth.
 */
export function nextHistRange(range: number, extent: number): number {
  if (!(extent > 0) || !Number.isFinite(extent)) return range;
  const fit = Math.min(HIST_MAX, Math.max(HIST_MIN, 2 ** Math.ceil(Math.log2(extent))));
  return fit > range || fit * 4 <= range ? fit : range;
}

/**
 * The drift samples measured from the reference asked for (the latest one, if pressed more than once):
 * curves from an earlier reference would mix two measurements in one line.
 */
function driftSamples(data: LabData, twin: TwinId): { step: number; drift: number[]; reference: number }[] {
  const all = probeSamples(data, twin, 'inside').flatMap((s) => (s.value.drift && s.value.referenceStep !== null && s.value.referenceStep >= referenceStep ? [{ step: s.step, drift: s.value.drift, reference: s.value.referenceStep }] : []));
  const reference = all.at(-1)?.reference;
  return all.filter((s) => s.reference === reference);
}

let bandChart: LineChart;
let driftChart: LineChart;
let histChart: LineChart;
let context: PanelContext;
let referenceStep = 0;
let currentStep = 0;
/** The data drawn last: a new reference redraws the drift chart at once, even while paused. */
let lastData: LabData | null = null;
let histRange = HIST_START;
let referenceButton: HTMLButtonElement;
let histNote: HTMLElement;
let driftCell: HTMLElement;
let driftLegend: HTMLElement;
let driftLegendLayers = 0;

/**
 * The drift chart's legend for `layers` hidden layers, replacing the previous one (depth changes on
 * reset). The networks keep their line styles (solid with batch norm, dashed without); each line's
 * number at its end names its layer, so neither tells layers apart by colour alone.
 */
function driftLegendFor(layers: number): HTMLElement {
  const items = TWINS.map((t) => ({ label: TWIN_STYLE[t].label, color: LAYER_SHADES[t][0], dash: TWIN_STYLE[t].dash }));
  const el = legend(driftCell, items);
  const key = document.createElement('span');
  key.className = 'html-legend-item';
  key.textContent = `number at a line’s end: its hidden layer (1 to ${layers}), also in shades`;
  el.append(key);
  driftLegend?.remove();
  driftCell.prepend(el);
  driftLegendLayers = layers;
  return el;
}

/** The layer and unit the probe measures: the chosen ones, clamped to the twins' depth and width, as the worker clamps them. */
const chosen = (s: LabState, layers: number, width: number) => ({ layer: Math.min(s.insideLayer, layers) - 1, unit: Math.min(s.insideUnit, width - 1) });
const LAYER_SHADES: Record<TwinId, string[]> = {
  bn: ['#1f6fb4', '#3b8fd4', '#6aaee6', '#0d4a7d', '#8cc3ef', '#163f63'],
  nobn: ['#c2410c', '#e2692f', '#f0955f', '#8a2e08', '#f5b48a', '#6b2406'],
};

/** A drift line's look: the network's line style (solid with batch norm, dashed without), a shade and the layer's number at its end. */
export function driftStyle(twin: TwinId, layer: number): { color: string; dash: number[]; endLabel: string } {
  return { color: LAYER_SHADES[twin][layer % LAYER_SHADES[twin].length], dash: TWIN_STYLE[twin].dash, endLabel: String(layer + 1) };
}

export const insidePanel: Panel = {
  id: 'inside',
  title: 'Inside the network',
  claim: 'With batch norm each layer sees inputs whose distribution stays put while the layers below it learn.',

  probes(state: LabState) {
    // The worker clamps the layer and unit to the twins it has (the state may hold a depth or width not yet applied).
    return [{ name: 'inside', every: INSIDE_EVERY, params: { layer: state.insideLayer - 1, unit: state.insideUnit, referenceStep, min: -histRange, max: histRange, bins: HISTOGRAM_BINS } }];
  },

  reset() {
    referenceStep = 0;
    histRange = HIST_START;
  },

  mount(el: HTMLElement, ctx: PanelContext) {
    context = ctx;
    const row = document.createElement('div');
    row.className = 'chart-row';
    el.append(row);
    bandChart = new LineChart(row, { title: 'Percentiles 15, 50 and 85 of one unit’s activation input over training, both networks', xLabel: 'step', yLabel: 'activation input' });
    const cell = document.createElement('div');
    cell.className = 'chart-cell';
    row.append(cell);
    driftCell = cell;
    driftLegend = driftLegendFor(ctx.state().depth);
    driftChart = new LineChart(cell, { title: 'Drift of each hidden layer’s input distribution since the reference step, both networks', xLabel: 'step', yLabel: 'drift (in spreads, log scale)', logY: true });
    const refRow = document.createElement('div');
    refRow.className = 'sweep-row';
    referenceButton = document.createElement('button');
    referenceButton.type = 'button';
    referenceButton.id = 'inside-reference';
    referenceButton.textContent = 'Measure drift from now on';
    referenceButton.addEventListener('click', () => {
      // The live step (the engine's data object is updated in place; this panel may not have drawn it yet).
      referenceStep = lastData?.step ?? currentStep;
      resendProbes();
      if (lastData) insidePanel.update(lastData);
    });
    const refNote = document.createElement('span');
    refNote.className = 'sweep-status';
    refNote.textContent = 'Drift is the earth mover’s distance between a unit’s inputs now and at the reference step, over the same 250 test images, in units of its spread (the larger of then and now), averaged over the layer’s units.';
    refRow.append(referenceButton, refNote);
    el.append(refRow);
    histChart = new LineChart(el, { title: 'Histogram of the chosen layer’s activation inputs now, both networks', xLabel: 'activation input', yLabel: 'share of values per bin', height: 200 });
    histNote = document.createElement('p');
    histNote.className = 'caption';
    el.append(histNote);
  },

  update(data: LabData) {
    lastData = data;
    currentStep = data.step;
    const a = latest(data, 'bn');
    const layers = a?.layers ?? data.applied.depth;
    const { layer, unit } = chosen(context.state(), layers, data.applied.width);
    const bands: Series[] = [];
    const drift: Series[] = [];
    const hist: Series[] = [];
    for (const twin of TWINS) {
      const style = TWIN_STYLE[twin];
      const samples = insideSamples(data, twin, layer, unit);
      const steps = samples.map((s) => s.step);
      // The median thick, the 15th and 85th percentiles thin, in the twin's colour and dash.
      for (const k of [0, 1, 2] as const) {
        bands.push({ label: k === 1 ? style.label : '', color: style.color, dash: style.dash, width: k === 1 ? 2.4 : 1, x: steps, y: samples.map((s) => s.value.percentiles[k]) });
      }
      const withDrift = driftSamples(data, twin);
      const n = withDrift.at(-1)?.drift.length ?? 0;
      for (let l = 0; l < n; l++) {
        drift.push({ label: '', ...driftStyle(twin, l), width: 1.6, x: withDrift.map((s) => s.step), y: withDrift.map((s) => s.drift[l] ?? NaN) });
      }
      const v = latest(data, twin);
      // A diverged network's last histogram is of values on their way to overflow: left out.
      if (v && v.layer === layer && !data.runs[twin].diverged) {
        const h = v.histogram;
        const width = (h.max - h.min) / h.counts.length;
        hist.push({ ...style, x: h.counts.map((_, i) => h.min + (i + 0.5) * width), y: h.counts.map((c) => c / Math.max(1, h.total)) });
      }
    }
    if (layers !== driftLegendLayers) driftLegend = driftLegendFor(layers);
    bandChart.setData(bands);
    driftChart.setData(drift);
    histChart.setData(hist);
    bandChart.draw();
    driftChart.draw();
    histChart.draw();
    const live = TWINS.filter((t) => !data.runs[t].diverged).flatMap((t) => {
      const v = latest(data, t);
      return v ? [{ twin: t, v }] : [];
    });
    if (live.length > 0) {
      const outside = (v: InsideValue) => (100 * (v.histogram.below + v.histogram.above)) / Math.max(1, v.histogram.total);
      const h = live[0].v.histogram;
      const shares = live.map(({ twin, v }) => `${outside(v).toFixed(1)}% ${twin === 'bn' ? 'with batch norm' : 'without'}`).join(', ');
      histNote.textContent = `Hidden layer ${layer + 1}, all units over 250 test images, binned over [${h.min}, ${h.max}); outside that range: ${shares}. The range follows the values of the networks still training.`;
      // The range is a probe parameter, the same for both networks so that they share bins.
      const next = nextHistRange(histRange, Math.max(...live.map(({ v }) => v.extent)));
      if (next !== histRange) {
        histRange = next;
        resendProbes();
      }
    }
    referenceButton.disabled = data.step === 0;
  },

  reading(data: LabData): string {
    const b = latest(data, 'bn');
    const c = latest(data, 'nobn');
    if (!b || !c) return 'Waiting for the first probe of the networks.';
    const state = context.state();
    const { layer, unit } = chosen(state, b.layers, data.applied.width);
    const f = (x: number) => x.toFixed(2);
    const clamped = state.insideUnit > unit ? ` (the layer has ${data.applied.width} units, so unit ${state.insideUnit} does not exist: its last unit is shown)` : '';
    const name = `unit ${unit} of hidden layer ${layer + 1}${clamped}`;
    const { bn: bnDiverged, nobn: plainDiverged } = { bn: data.runs.bn.diverged, nobn: data.runs.nobn.diverged };
    if (bnDiverged && plainDiverged) return `Both networks diverged (with batch norm at step ${bnDiverged.step}, without at step ${plainDiverged.step}), so their inputs are no longer measured: lower the learning rate and press Reset.`;
    const range = (v: InsideValue) => `${f(v.percentiles[0])} to ${f(v.percentiles[2])} (median ${f(v.percentiles[1])})`;
    const spread = (v: InsideValue) => v.percentiles[2] - v.percentiles[0];
    // "from 0.09 to -0.56 (15–85 spread now 2.83)": where the median input went, and the spread it has now.
    const went = (samples: { step: number; value: InsideValue }[]) => {
      const now = samples[samples.length - 1].value;
      return `from ${f(samples[0].value.percentiles[1])} to ${f(now.percentiles[1])} (15–85 spread now ${f(spread(now))})`;
    };
    const sb = insideSamples(data, 'bn', layer, unit);
    const sc = insideSamples(data, 'nobn', layer, unit);
    const drift = driftText(data);
    // One network stopped: its last numbers are from before it blew up, so the reading describes the other alone.
    const stopped = plainDiverged ? 'nobn' : bnDiverged ? 'bn' : null;
    if (stopped) {
      const other = stopped === 'nobn' ? 'bn' : 'nobn';
      const samples = other === 'bn' ? sb : sc;
      const at = data.runs[stopped].diverged!.step;
      const intro = `The network ${stopped === 'nobn' ? 'without' : 'with'} batch norm diverged at step ${at} and is no longer measured; in the one ${other === 'bn' ? 'with' : 'without'} it`;
      if (samples.length < 2) return `${intro}, ${name} takes inputs from ${range(samples.at(-1)?.value ?? (other === 'bn' ? b : c))}: train a few steps to see them move.${drift}`;
      return `${intro}, ${name}, steps ${samples[0].step} to ${samples[samples.length - 1].step}: its median input went ${went(samples)}.${drift}`;
    }
    const capitalized = name[0].toUpperCase() + name.slice(1);
    if (sb.length < 2 || sc.length < 2) return `${capitalized} now takes inputs from ${range(b)} with batch norm and ${range(c)} without; train a few steps to see them move.${drift}`;
    return `${capitalized}, steps ${sb[0].step} to ${sb[sb.length - 1].step}: with batch norm its median input went ${went(sb)}, without ${went(sc)}.${drift}`;
  },
};

/** The drift clause of the reading: waiting for the reference, measuring from it, or how far each network moved. */
function driftText(data: LabData): string {
  const f = (x: number) => x.toFixed(2);
  const live = TWINS.filter((t) => !data.runs[t].diverged);
  const last = live.map((t) => ({ twin: t, sample: driftSamples(data, t).at(-1) }));
  const reference = last.find((l) => l.sample)?.sample?.reference;
  // The reference asked for is a step the probe has not reached yet: nothing to compare.
  if (reference === undefined) return referenceStep > 0 ? ` Drift will be measured from the first probe at or after step ${referenceStep}: train on.` : '';
  if (last.some((l) => !l.sample || l.sample.step <= l.sample.reference)) return reference > 0 ? ` Drift is measured from step ${reference} on: train on to see how far the layers' inputs move.` : '';
  const mean = (d: number[]) => d.reduce((x, y) => x + y, 0) / d.length;
  const [db, dc] = [last.find((l) => l.twin === 'bn'), last.find((l) => l.twin === 'nobn')].map((l) => (l?.sample ? mean(l.sample.drift) : NaN));
  if (live.length === 1) return Number.isFinite(db) || Number.isFinite(dc) ? ` Since step ${reference} its hidden layers' input distributions moved ${f(Number.isFinite(db) ? db : dc)} of their spread on average.` : '';
  if (!Number.isFinite(db) || !Number.isFinite(dc)) return '';
  return ` Since step ${reference} the hidden layers' input distributions moved ${f(db)} of their spread on average with batch norm and ${f(dc)} without${db < dc ? '' : ' (batch norm did not drift less here)'}.`;
}

function resendProbes(): void {
  // A view setting re-sends every panel's probes (main.ts); setting one to its own value is enough.
  context.setState({ insideUnit: context.state().insideUnit });
}
