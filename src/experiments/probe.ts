/**
 * Look inside a network: the inputs of its activation layers (the "sigmoid inputs" of the paper's
 * Figure 1b,c) for a fixed probe batch, their percentiles, histogram and drift since a reference step,
 * and batch statistics of any layer's input.
 *
 * Shape legend: N = probe examples, U = units of a hidden layer.
 */
import { Sigmoid, ReLU, Tanh } from '../nn/activations.js';
import { batchNormLayers } from '../nn/batchnorm-modes.js';
import { Linear } from '../nn/linear.js';
import type { Module } from '../nn/module.js';
import type { Sequential } from '../nn/sequential.js';
import type { Tensor } from '../tensor/tensor.js';
import { mean, percentileSorted, std, wasserstein1Sorted } from './stats.js';

/** The input of one activation layer for every probe example, column-major by unit: values[u] has N entries. */
export interface LayerInputs {
  /** Index of the activation layer in the Sequential. */
  layerIndex: number;
  units: number;
  /** values[u][n]: the input of unit u for example n. */
  values: Float32Array[];
}

const isActivation = (m: Module) => m instanceof Sigmoid || m instanceof Tanh || m instanceof ReLU;

/**
 * Run `x` [N, ...] through `model` in eval mode and return the input of every activation layer, one
 * array per unit. Batch-norm layers normalize `x` with its own batch statistics, as in training, unless
 * `runningStatistics` (the running averages are never touched either way). Modes are restored afterwards.
 */
export function activationInputs(model: Sequential, x: Tensor, options: { runningStatistics?: boolean } = {}): LayerInputs[] {
  const modes = [...model.modules()].map((m) => m.training);
  const bns = batchNormLayers(model);
  const statistics = bns.map((l) => l.statistics);
  model.eval();
  // A probe of many examples has well-defined statistics; the running averages would add the jitter of
  // the last few training batches to every probe.
  if (!options.runningStatistics) for (const l of bns) l.statistics = 'batch-frozen';
  const out: LayerInputs[] = [];
  try {
    let h = x;
    model.layers.forEach((layer, i) => {
      if (isActivation(layer)) out.push(transpose(h, i));
      h = layer.forward(h);
    });
  } finally {
    [...model.modules()].forEach((m, i) => (m.training = modes[i]));
    bns.forEach((l, i) => (l.statistics = statistics[i]));
  }
  return out;
}

/** [N, U] → U arrays of N values (a copy: the module reuses its output buffer). */
function transpose(h: Tensor, layerIndex: number): LayerInputs {
  if (h.rank !== 2) throw new Error(`activationInputs: expected [N, U] input at activation layer ${layerIndex}, got shape [${h.shape.join(', ')}]`);
  const [n, units] = h.shape;
  const values = Array.from({ length: units }, () => new Float32Array(n));
  for (let r = 0; r < n; r++) for (let u = 0; u < units; u++) values[u][r] = h.data[r * units + u];
  return { layerIndex, units, values };
}

/**
 * The output of layer `index` (its input when `index` is 0) for `x`, in eval mode, copied. With
 * `batchStatistics`, batch-norm layers on the way normalize `x` with its own statistics, as in training
 * (their running averages are left alone).
 */
export function layerInput(model: Sequential, x: Tensor, index: number, options: { batchStatistics?: boolean } = {}): Tensor {
  const modes = [...model.modules()].map((m) => m.training);
  const bns = batchNormLayers(model);
  const statistics = bns.map((l) => l.statistics);
  model.eval();
  if (options.batchStatistics) for (const l of bns) l.statistics = 'batch-frozen';
  try {
    let h = x;
    for (let i = 0; i < index; i++) h = model.layers[i].forward(h);
    return h.clone();
  } finally {
    [...model.modules()].forEach((m, i) => (m.training = modes[i]));
    bns.forEach((l, i) => (l.statistics = statistics[i]));
  }
}

/** Index in `model.layers` of the layer after the `hidden`-th (from 0) Linear layer: its output is that layer's pre-activation before any normalization. */
export function afterLinear(model: Sequential, hidden: number): number {
  let seen = -1;
  for (let i = 0; i < model.layers.length; i++) {
    if (model.layers[i] instanceof Linear && ++seen === hidden) return i + 1;
  }
  throw new Error(`the model has ${seen + 1} Linear layers; hidden layer ${hidden + 1} does not exist`);
}

/** The given percentiles (0..100) of one unit's values. */
export function unitPercentiles(values: ArrayLike<number>, percentiles: readonly number[] = [15, 50, 85]): number[] {
  const sorted = Float64Array.from(values).sort();
  return percentiles.map((p) => percentileSorted(sorted, p));
}

/** How far one layer's input distribution moved since the reference, averaged over its units. */
export interface LayerDrift {
  /** Mean over units of the Wasserstein-1 distance between the unit's input now and at the reference, in the input's units. */
  absolute: number;
  /**
   * The same, each unit's distance divided by the larger of its standard deviations at the reference and
   * now: scale-free, comparable across networks, and not blown up by a unit that started with almost no
   * spread (small initial weights).
   */
  relative: number;
  /** Mean over units of |mean now − mean at the reference| and of |std now − std at the reference|. */
  meanChange: number;
  stdChange: number;
}

/**
 * The inputs of every activation layer at a reference step, kept sorted, so that later probes of the
 * same examples can say how far each layer's input distribution has drifted since (the "internal
 * covariate shift" of Ioffe & Szegedy). The probes must be of the same examples.
 */
export class InputDrift {
  private readonly sorted: Float32Array[][];
  private readonly stds: number[][];
  private readonly means: number[][];

  constructor(readonly step: number, reference: readonly LayerInputs[]) {
    this.sorted = reference.map((l) => l.values.map((v) => Float32Array.from(v).sort()));
    this.means = this.sorted.map((units) => units.map((v) => mean(v)));
    this.stds = this.sorted.map((units) => units.map((v) => std(v)));
  }

  get layers(): number {
    return this.sorted.length;
  }

  drift(current: readonly LayerInputs[]): LayerDrift[] {
    if (current.length !== this.sorted.length) throw new Error(`InputDrift: the reference has ${this.sorted.length} activation layers, this probe ${current.length}; reset the reference after changing the network`);
    return current.map((layer, l) => {
      const ref = this.sorted[l];
      if (layer.values.length !== ref.length) throw new Error(`InputDrift: layer ${l + 1} had ${ref.length} units at the reference, now ${layer.values.length}`);
      let absolute = 0;
      let relative = 0;
      let meanChange = 0;
      let stdChange = 0;
      layer.values.forEach((v, u) => {
        const now = Float32Array.from(v).sort();
        const w = wasserstein1Sorted(ref[u], now);
        const spread = Math.max(this.stds[l][u], std(now));
        absolute += w;
        // A unit constant at both steps has no spread to compare with; count its move as is.
        relative += spread > 0 ? w / spread : w;
        meanChange += Math.abs(mean(now) - this.means[l][u]);
        stdChange += Math.abs(std(now) - this.stds[l][u]);
      });
      const n = layer.values.length;
      return { absolute: absolute / n, relative: relative / n, meanChange: meanChange / n, stdChange: stdChange / n };
    });
  }
}

export interface Histogram {
  /** Bin i covers [min + i·width, min + (i+1)·width). */
  min: number;
  max: number;
  counts: number[];
  /** Values below min and at or above max (NaN counts as above). */
  below: number;
  above: number;
  total: number;
}

/** Counts of `values` (one array, or several pooled: every unit of a layer) in `bins` equal bins over [min, max). */
export function histogram(values: ArrayLike<number> | readonly ArrayLike<number>[], min: number, max: number, bins: number): Histogram {
  if (!(Number.isFinite(min) && Number.isFinite(max) && max > min)) throw new Error(`histogram: need finite min < max, got [${min}, ${max}]`);
  if (!Number.isInteger(bins) || bins < 1) throw new Error(`histogram: bins must be a positive integer, got ${bins}`);
  const arrays: ArrayLike<number>[] = isArrayOfArrays(values) ? [...values] : [values];
  const counts = new Array<number>(bins).fill(0);
  let below = 0;
  let above = 0;
  let total = 0;
  const scale = bins / (max - min);
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      total++;
      if (v < min) below++;
      else if (!(v < max)) above++;
      else counts[Math.min(bins - 1, Math.floor((v - min) * scale))]++;
    }
  }
  return { min, max, counts, below, above, total };
}

function isArrayOfArrays(v: ArrayLike<number> | readonly ArrayLike<number>[]): v is readonly ArrayLike<number>[] {
  return v.length > 0 && typeof (v as ArrayLike<unknown>)[0] === 'object';
}
