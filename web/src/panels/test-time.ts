/**
 * Test time (claim 4): at inference batch norm normalizes with running averages, so one example on its
 * own gets a prediction. Shown: a unit's running mean, raw and bias-corrected, against its population
 * mean early in training; test accuracy with batch statistics, raw and bias-corrected running averages
 * and population statistics; and a canvas to draw a digit, preprocessed like MNIST
 * (src/data/digit.ts), classified by both networks (and an opened model) in eval mode, beside what a
 * batch of one in training mode gives. Probes: 'running-mean', 'accuracy-by-statistics'.
 */
import { digitFromRgba } from '@bnlab/data/digit.js';
import { FASHION_MNIST_CLASS_NAMES } from '@bnlab/data/dataset.js';
import { TWINS, type ClassifyOutput, type ModelId } from '../worker/protocol.js';
import { LineChart, type Series } from '../charts/line-chart.js';
import { legend } from '../charts/legend.js';
import { probeSamples, type LabData } from '../engine.js';
import type { PanelProbeValues } from '../worker/panel-probes.js';
import type { LabState } from '../state.js';
import { TWIN_STYLE, type Panel, type PanelContext } from './types.js';

/** Asked for every step; measured at steps 1, 2, 3, 5, 7, 10, 15, 20, ... 500, then every 500 (panel-probes.ts). */
export const RUNNING_EVERY = 1;
/** The accuracy probe is asked for every 10 steps and measures at steps 50, 200, 1,000 and every 2,000 after (panel-probes.ts). */
export const ACCURACY_EVERY = 10;
const CANVAS = 280;

const last = <T>(xs: T[]): T | undefined => xs[xs.length - 1];
const pct = (a: number) => `${(100 * a).toFixed(1)}%`;

const KINDS = [
  { key: 'raw', label: 'raw running average', color: '#c2410c', dash: [7, 4] },
  { key: 'biasCorrected', label: 'bias-corrected', color: '#1f6fb4', dash: [] as number[] },
  { key: 'population', label: 'population', color: '#333', dash: [2, 3] },
] as const;
const ACC_KINDS = [{ key: 'batch', label: 'batch statistics', color: '#15803d', dash: [10, 3, 2, 3] }, ...KINDS] as const;

let meanChart: LineChart;
let accChart: LineChart;
let accTable: HTMLElement;
let context: PanelContext;
let pad: HTMLCanvasElement;
let preview: HTMLCanvasElement;
let results: HTMLElement;
let why: HTMLElement;
let lastClassified: { outputs: Partial<Record<ModelId, ClassifyOutput>>; step: number } | null = null;
let drawnPixels: Float32Array | null = null;
/** The dataset the twins learned (the last reset): it names their ten classes and what to draw. */
let dataset = '';
let caption: HTMLElement;

/** The twins' name for class `i`: the digit, or Fashion-MNIST's name for it. */
const className = (i: number) => (dataset === 'fashion-mnist' ? FASHION_MNIST_CLASS_NAMES[i] : String(i));
const prompt = () =>
  dataset === 'fashion-mnist'
    ? `Draw a piece of clothing on the black square: these networks learned Fashion-MNIST (${FASHION_MNIST_CLASS_NAMES.join(', ').toLowerCase()}).`
    : 'Draw a digit on the black square.';

/** The layer and unit measured: the chosen ones clamped to the twins' depth and width (`applied`), as the worker clamps them. */
const unitOf = (s: LabState, applied: LabState) => ({ layer: Math.min(s.testLayer, applied.depth) - 1, unit: Math.min(s.testUnit, applied.width - 1) });

export const testTimePanel: Panel = {
  id: 'test-time',
  title: 'Test time',
  claim: 'At test time batch norm uses running averages (bias-corrected early on), so a single example gets a prediction of its own.',

  probes(state: LabState) {
    return [
      // As chosen: the worker clamps them to the twins it has (the state may hold a depth or width not yet applied).
      { name: 'running-mean', every: RUNNING_EVERY, params: { layer: state.testLayer - 1, unit: state.testUnit } },
      { name: 'accuracy-by-statistics', every: ACCURACY_EVERY },
    ];
  },

  mount(el: HTMLElement, ctx: PanelContext) {
    context = ctx;
    const row = document.createElement('div');
    row.className = 'chart-row';
    el.append(row);
    const cell1 = document.createElement('div');
    const cell2 = document.createElement('div');
    cell1.className = cell2.className = 'chart-cell';
    row.append(cell1, cell2);
    legend(cell1, KINDS.map((k) => ({ label: k.label, color: k.color, dash: [...k.dash] })));
    legend(cell2, ACC_KINDS.map((k) => ({ label: k.label, color: k.color, dash: [...k.dash] })));
    meanChart = new LineChart(cell1, { title: 'Running mean of one unit, raw and bias-corrected, against its population mean (network with batch norm)', xLabel: 'step (log scale)', yLabel: 'mean of the unit’s input', logX: true });
    accChart = new LineChart(cell2, { title: 'Test accuracy of the network with batch norm under each choice of statistics', xLabel: 'step (log scale)', yLabel: 'test accuracy', logX: true, yRange: [0, 1] });
    accTable = document.createElement('p');
    accTable.className = 'figures';
    el.append(accTable);

    const drawRow = document.createElement('div');
    drawRow.className = 'draw-row';
    el.append(drawRow);
    const left = document.createElement('div');
    left.className = 'draw-pad';
    pad = document.createElement('canvas');
    pad.id = 'digit-pad';
    pad.width = CANVAS;
    pad.height = CANVAS;
    pad.setAttribute('role', 'img');
    pad.setAttribute('aria-label', 'Drawing area: draw with the mouse, a finger or a pen');
    const buttons = document.createElement('div');
    const clear = document.createElement('button');
    clear.type = 'button';
    clear.id = 'digit-clear';
    clear.textContent = 'Clear';
    const sample = document.createElement('button');
    sample.type = 'button';
    sample.id = 'digit-again';
    sample.textContent = 'Classify again';
    buttons.append(clear, sample);
    left.append(pad, buttons);
    const mid = document.createElement('div');
    mid.className = 'draw-preview';
    caption = document.createElement('span');
    caption.className = 'caption';
    preview = document.createElement('canvas');
    preview.id = 'digit-preview';
    preview.width = 28;
    preview.height = 28;
    preview.setAttribute('role', 'img');
    preview.setAttribute('aria-label', 'The drawing as the networks see it, 28 by 28 pixels');
    mid.append(preview, caption);
    results = document.createElement('div');
    results.className = 'draw-results';
    results.id = 'digit-results';
    results.setAttribute('aria-live', 'polite');
    dataset = ctx.state().dataset;
    setDatasetTexts();
    drawRow.append(left, mid, results);
    why = document.createElement('p');
    why.className = 'caption';
    el.append(why);

    const g = pad.getContext('2d', { willReadFrequently: true })!;
    const wipe = () => {
      g.fillStyle = '#000';
      g.fillRect(0, 0, CANVAS, CANVAS);
      drawnPixels = null;
      lastClassified = null;
      results.textContent = prompt();
      preview.getContext('2d')!.clearRect(0, 0, 28, 28);
    };
    wipe();
    let drawing = false;
    let prev: [number, number] | null = null;
    const at = (e: PointerEvent): [number, number] => {
      const r = pad.getBoundingClientRect();
      return [((e.clientX - r.left) / r.width) * CANVAS, ((e.clientY - r.top) / r.height) * CANVAS];
    };
    pad.addEventListener('pointerdown', (e) => {
      drawing = true;
      pad.setPointerCapture(e.pointerId);
      prev = at(e);
      stroke(g, prev, prev);
      e.preventDefault();
    });
    pad.addEventListener('pointermove', (e) => {
      if (!drawing || !prev) return;
      const p = at(e);
      stroke(g, prev, p);
      prev = p;
      e.preventDefault();
    });
    const end = () => {
      if (!drawing) return;
      drawing = false;
      prev = null;
      void classifyDrawing();
    };
    pad.addEventListener('pointerup', end);
    pad.addEventListener('pointercancel', end);
    clear.addEventListener('click', wipe);
    sample.addEventListener('click', () => void classifyDrawing());
  },

  update(data: LabData) {
    if (data.applied.dataset !== dataset) {
      // Other twins, other classes: an answer of the previous twins would be read with the wrong names.
      dataset = data.applied.dataset;
      setDatasetTexts();
      if (lastClassified) void classifyDrawing();
    }
    const { layer, unit } = unitOf(context.state(), data.applied);
    const rm = probeSamples(data, 'bn', 'running-mean').filter((s) => s.value.layer === layer && s.value.unit === unit && s.step > 0);
    const mean: Series[] = KINDS.map((k) => ({ label: '', color: k.color, dash: [...k.dash], width: k.key === 'population' ? 1.5 : 2, x: rm.map((s) => s.step), y: rm.map((s) => s.value[k.key]) }));
    meanChart.setData(data.runs.bn.probes['running-mean'] ? mean : []);
    const acc = probeSamples(data, 'bn', 'accuracy-by-statistics').filter((s) => s.step > 0);
    accChart.setData(ACC_KINDS.map((k) => ({ label: '', color: k.color, dash: [...k.dash], points: acc.length < 20, x: acc.map((s) => s.step), y: acc.map((s) => s.value[k.key]) })));
    meanChart.draw();
    accChart.draw();
    const a = last(acc);
    const m = data.applied.bnMomentum;
    accTable.textContent = a
      ? `At step ${a.step}, on the first 500 test images: batch statistics (test batches of ${a.value.batchSize}) ${pct(a.value.batch)}, raw running averages ${pct(a.value.raw)}, bias-corrected ${pct(a.value.biasCorrected)}, population statistics (${a.value.populationBatches} training batches) ${pct(a.value.population)}. Momentum ${m}: a running average forgets its zero start after about ${Math.round(3 / m)} steps (3/momentum).`
      : 'Test accuracy (first 500 test images) under each kind of statistics is measured at steps 50, 200, 1,000 and every 2,000 after.';
    why.textContent =
      'Why a batch of one fails in training mode: batch norm subtracts the batch mean, and the mean of one value is the value itself, so every unit gets x − x = 0 and variance 0; the layer outputs its β whatever the input, and every image gets the same answer. Eval mode uses the running averages instead, so each image is normalized on its own.';
  },

  reading(data: LabData): string {
    const { layer, unit } = unitOf(context.state(), data.applied);
    const rm = probeSamples(data, 'bn', 'running-mean').filter((s) => s.value.layer === layer && s.value.unit === unit && s.step > 0);
    const a = last(probeSamples(data, 'bn', 'accuracy-by-statistics').filter((s) => s.step > 0));
    const classified = lastClassified ? classifiedSentence(lastClassified.outputs) : '';
    if (rm.length === 0) {
      // Another layer or unit chosen since the last measurements: the probe follows it from the next measured step.
      const other = probeSamples(data, 'bn', 'running-mean').some((s) => s.step > 0);
      const prompt = other
        ? `Train a few steps: unit ${unit} of hidden layer ${layer + 1} is measured from now on (at steps 1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, then every 500).`
        : `Train a few steps: the running averages of the network with batch norm (momentum ${data.applied.bnMomentum}) start at zero.`;
      return classified || prompt;
    }
    // Half-way through the warm-up of the average (1/(2·momentum) steps), where bias correction matters most.
    const early = Math.max(1, Math.round(1 / (2 * data.applied.bnMomentum)));
    const at = rm.findIndex((s) => s.step >= early);
    const r = rm[at < 0 ? rm.length - 1 : at];
    const v = r.value;
    const off = (x: number) => Math.abs(x - v.population);
    const spread = Math.max(...rm.map((s) => Math.abs(s.value.population)));
    if (spread < 1e-3) {
      // A mean that is 0 by construction says nothing about bias correction: say why instead of comparing ~1e-7 with ~1e-7.
      const cause = context.state().inputBn
        ? 'batch norm on the input gives every pixel mean 0, and a bias before batch norm gets no gradient, so the weighted sum has mean 0'
        : 'its weighted sum of the inputs averages to 0 over the training images';
      return `The input of unit ${unit} in hidden layer ${layer + 1} has a population mean of ${v.population.toExponential(1)}, 0 by construction (${cause}): its running mean has nothing to warm up to. ${context.state().depth >= 2 ? `Choose hidden layer ${layer === 0 ? 2 : layer + 1 === context.state().depth ? 1 : layer + 2} to see the bias correction at work` : 'With one hidden layer, turn batch norm on the input off to see the bias correction at work'}${accText(a)}.${classified ? ` ${classified}` : ''}`;
    }
    const earlyText = `At step ${r.step} the running mean of unit ${unit} in hidden layer ${layer + 1} is ${v.raw.toFixed(3)} raw and ${v.biasCorrected.toFixed(3)} bias-corrected against a population mean of ${v.population.toFixed(3)} (${off(v.biasCorrected) < off(v.raw) ? 'bias correction is closer' : 'bias correction is not closer here'})`;
    return `${earlyText}${accText(a)}.${classified ? ` ${classified}` : ''}`;
  },
};

/** The caption under the preview and the prompt beside the pad, for the twins' dataset. */
function setDatasetTexts(): void {
  caption.textContent =
    dataset === 'fashion-mnist'
      ? 'What the networks see: 28×28, the drawing scaled into 20×20 and centred by mass as MNIST’s digits are (Fashion-MNIST’s pictures fill the square: draw large)'
      : 'What the networks see: 28×28, the digit scaled into 20×20 and centred by mass, as in MNIST';
  if (!drawnPixels) results.textContent = prompt();
}

const accText = (a: { step: number; value: PanelProbeValues['accuracy-by-statistics'] } | undefined) =>
  a ? `; test accuracy at step ${a.step} is ${pct(a.value.raw)} with the raw averages, ${pct(a.value.biasCorrected)} bias-corrected, ${pct(a.value.population)} with population and ${pct(a.value.batch)} with batch statistics` : '';

function stroke(g: CanvasRenderingContext2D, a: [number, number], b: [number, number]): void {
  g.strokeStyle = '#fff';
  g.lineWidth = CANVAS / 12;
  g.lineCap = 'round';
  g.lineJoin = 'round';
  g.beginPath();
  g.moveTo(a[0], a[1]);
  g.lineTo(b[0], b[1]);
  g.stroke();
}

async function classifyDrawing(): Promise<void> {
  const g = pad.getContext('2d', { willReadFrequently: true })!;
  const image = g.getImageData(0, 0, CANVAS, CANVAS);
  const digit = digitFromRgba(image.data, CANVAS, CANVAS);
  if (digit.empty) {
    results.textContent = 'Nothing drawn yet.';
    return;
  }
  drawnPixels = digit.pixels;
  const p = preview.getContext('2d')!;
  const img = p.createImageData(28, 28);
  digit.pixels.forEach((v, i) => {
    const c = Math.round(v * 255);
    img.data.set([c, c, c, 255], i * 4);
  });
  p.putImageData(img, 0, 0);
  try {
    const outputs = await context.classify(drawnPixels);
    lastClassified = { outputs, step: 0 };
    renderResults(outputs);
  } catch (e) {
    results.textContent = `Could not classify: ${e instanceof Error ? e.message : String(e)}`;
  }
}

const argmax = (p: number[]) => p.reduce((best, v, i) => (v > p[best] ? i : best), 0);

function classifiedSentence(outputs: Partial<Record<ModelId, ClassifyOutput>>): string {
  const bn = outputs.bn;
  const nobn = outputs.nobn;
  if (bn?.untrained) return 'Your drawing: the network with batch norm has not trained yet, so its running statistics hold nothing to normalize with: train some steps first.';
  if (!bn?.eval || !nobn?.eval) return '';
  const one = bn.trainBatchOfOne;
  const f = (p: number[]) => `${className(argmax(p))} (${pct(p[argmax(p)])})`;
  const oneText = 'probabilities' in one ? `as a batch of one in training mode it says ${f(one.probabilities)}` : one.formula ? `as a batch of one in training mode it would say ${f(one.formula)} for any drawing, since every batch norm outputs its β` : 'as a batch of one in training mode it cannot normalize at all';
  return `Your drawing: in eval mode the network with batch norm says ${f(bn.eval)} and the one without says ${f(nobn.eval)}; ${oneText}.`;
}

function renderResults(outputs: Partial<Record<ModelId, ClassifyOutput>>): void {
  results.replaceChildren();
  const names: Record<ModelId, string> = { bn: 'With batch norm', nobn: 'Without batch norm', imported: 'Opened model' };
  const order: ModelId[] = [...TWINS, 'imported'];
  for (const id of order) {
    const out = outputs[id];
    if (!out) continue;
    const block = document.createElement('div');
    block.className = `prob-block prob-${id}`;
    const h = document.createElement('h3');
    h.textContent = `${names[id]}${id === 'imported' && context.imported() ? ` (${context.imported()!.name})` : ''}`;
    block.append(h);
    if (out.untrained) {
      const note = document.createElement('p');
      note.className = 'prob-untrained';
      note.textContent = 'eval mode (running statistics): untrained — the running statistics were never updated, train some steps first';
      block.append(note);
    } else if (out.eval) {
      // Without batch norm there are no running statistics: eval and training mode compute the same thing.
      block.append(bars(out.hasBatchNorm ? 'eval mode (running statistics)' : 'prediction (no batch norm: the same in eval and training mode)', out.eval, id));
    }
    const one = out.trainBatchOfOne;
    if ('probabilities' in one) {
      block.append(bars(out.hasBatchNorm ? 'batch of one, training mode' : 'batch of one, training mode: the same, nothing depends on the batch', one.probabilities, id));
    } else {
      if (one.formula) block.append(bars('batch of one, training mode: each batch norm outputs β', one.formula, id));
      const err = document.createElement('p');
      err.className = 'caption';
      err.textContent = `The library refuses it: ${one.error.split('. Fixes')[0]}.`;
      block.append(err);
    }
    results.append(block);
  }
}

function bars(title: string, probabilities: number[], id: ModelId): HTMLElement {
  const wrap = document.createElement('div');
  wrap.className = 'prob-bars';
  const t = document.createElement('div');
  t.className = 'prob-title';
  const top = argmax(probabilities);
  const imported = context.imported()?.classNames;
  const name = (i: number) => (id === 'imported' ? (imported?.[i] ?? String(i)) : className(i));
  t.textContent = `${title}: ${name(top)} (${pct(probabilities[top])})`;
  wrap.append(t);
  // Names longer than a digit get a wider label column.
  if (probabilities.some((_, i) => name(i).length > 2)) wrap.classList.add('named');
  probabilities.forEach((p, i) => {
    const line = document.createElement('div');
    line.className = 'prob-line';
    const label = document.createElement('span');
    label.className = 'prob-label';
    label.textContent = name(i);
    const bar = document.createElement('span');
    bar.className = `prob-bar${i === top ? ' top' : ''} bar-${id}`;
    bar.style.width = `${Math.max(0.5, 100 * p)}%`;
    const value = document.createElement('span');
    value.className = 'prob-value';
    value.textContent = pct(p);
    line.append(label, bar, value);
    wrap.append(line);
  });
  return wrap;
}
