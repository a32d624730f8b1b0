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

let bandChart: LineChart;
let driftChart: LineChart;
let histChart: LineChart;
let context: PanelContext;
let referenceStep = 0;
let currentStep = 0;
let histRange = 8;
let referenceButton: HTMLButtonElement;
let histNote: HTMLElement;
let driftCell: HTMLElement;
let driftLegend: HTMLElement;
let driftLegendLayers = 0;

/** The drift chart's legend for `layers` hidden layers, replacing the previous one (depth changes on reset). */
function driftLegendFor(layers: number): HTMLElement {
  const items = [
    ...LAYER_SHADES.bn.slice(0, layers).map((color, l) => ({ label: `layer ${l + 1}`, color, dash: LAYER_DASH[l] })),
    { label: 'without batch norm: dashed, same shades', color: LAYER_SHADES.nobn[0], dash: [7, 4] },
  ];
  const el = legend(driftCell, items);
  driftLegend?.remove();
  driftCell.prepend(el);
  driftLegendLayers = layers;
  return el;
}

const chosen = (s: LabState, layers: number) => ({ layer: Math.min(s.insideLayer, layers) - 1, unit: s.insideUnit });
const LAYER_DASH = [[], [8, 3], [2, 3], [10, 3, 2, 3], [4, 4], [1, 2]];
const LAYER_SHADES: Record<TwinId, string[]> = {
  bn: ['#1f6fb4', '#3b8fd4', '#6aaee6', '#0d4a7d', '#8cc3ef', '#163f63'],
  nobn: ['#c2410c', '#e2692f', '#f0955f', '#8a2e08', '#f5b48a', '#6b2406'],
};

export const insidePanel: Panel = {
  id: 'inside',
  title: 'Inside the network',
  claim: 'With batch norm each layer sees inputs whose distribution stays put while the layers below it learn.',

  probes(state: LabState) {
    return [{ name: 'inside', every: INSIDE_EVERY, params: { layer: Math.min(state.insideLayer, state.depth) - 1, unit: Math.min(state.insideUnit, state.width - 1), referenceStep, min: -histRange, max: histRange, bins: HISTOGRAM_BINS } }];
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
      referenceStep = currentStep;
      resendProbes();
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
    currentStep = data.step;
    const a = latest(data, 'bn');
    const layers = a?.layers ?? data.applied.depth;
    const { layer, unit } = chosen(context.state(), layers);
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
      const withDrift = probeSamples(data, twin, 'inside').flatMap((s) => (s.value.drift ? [{ step: s.step, drift: s.value.drift }] : []));
      const n = withDrift.at(-1)?.drift.length ?? 0;
      for (let l = 0; l < n; l++) {
        drift.push({ label: '', color: LAYER_SHADES[twin][l % 6], dash: twin === 'bn' ? LAYER_DASH[l % 6] : [7, 4], width: 1.6, x: withDrift.map((s) => s.step), y: withDrift.map((s) => s.drift[l] ?? NaN) });
      }
      const v = latest(data, twin);
      if (v && v.layer === layer) {
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
    const b = latest(data, 'bn');
    const c = latest(data, 'nobn');
    if (b && c) {
      const outside = (v: InsideValue) => (100 * (v.histogram.below + v.histogram.above)) / Math.max(1, v.histogram.total);
      histNote.textContent = `Hidden layer ${layer + 1}, all units over 250 test images, binned over [${-histRange}, ${histRange}); outside that range: ${outside(b).toFixed(1)}% with batch norm, ${outside(c).toFixed(1)}% without.`;
      // Widen the histogram when more than 1% of either network's values fall outside (the range is a probe parameter).
      if (Math.max(outside(b), outside(c)) > 1 && histRange < 64) {
        histRange *= 2;
        resendProbes();
      }
    }
    referenceButton.disabled = data.step === 0;
  },

  reading(data: LabData): string {
    const b = latest(data, 'bn');
    const c = latest(data, 'nobn');
    if (!b || !c) return 'Waiting for the first probe of the networks.';
    const { layer, unit } = chosen(context.state(), b.layers);
    const sb = insideSamples(data, 'bn', layer, unit);
    const sc = insideSamples(data, 'nobn', layer, unit);
    const f = (x: number) => x.toFixed(2);
    const range = (v: InsideValue) => `${f(v.percentiles[0])} to ${f(v.percentiles[2])} (median ${f(v.percentiles[1])})`;
    if (sb.length < 2 || sc.length < 2) return `Unit ${unit} of hidden layer ${layer + 1} now takes inputs from ${range(b)} with batch norm and ${range(c)} without; train a few steps to see them move.`;
    const from = (x: { value: InsideValue }[]) => x[0].value.percentiles[1];
    const spread = (v: InsideValue) => v.percentiles[2] - v.percentiles[0];
    const db = b.drift ? b.drift.reduce((x, y) => x + y, 0) / b.drift.length : NaN;
    const dc = c.drift ? c.drift.reduce((x, y) => x + y, 0) / c.drift.length : NaN;
    const driftText = Number.isFinite(db) && Number.isFinite(dc) ? ` Since step ${b.referenceStep} the hidden layers' input distributions moved ${f(db)} of their spread on average with batch norm and ${f(dc)} without${db < dc ? '' : ' (batch norm did not drift less here)'}.` : '';
    return `Unit ${unit} of hidden layer ${layer + 1}, steps ${sb[0].step} to ${sb[sb.length - 1].step}: with batch norm its median input went from ${f(from(sb))} to ${f(b.percentiles[1])} (15–85 spread now ${f(spread(b))}), without from ${f(from(sc))} to ${f(c.percentiles[1])} (spread ${f(spread(c))}).${driftText}`;
  },
};

function resendProbes(): void {
  // A view setting re-sends every panel's probes (main.ts); setting one to its own value is enough.
  context.setState({ insideUnit: context.state().insideUnit });
}
