/**
 * Look inside a network: the inputs of its activation layers (the "sigmoid inputs" of the paper's
 * Figure 1b,c) for a fixed probe batch, and batch statistics of any layer's input.
 *
 * Shape legend: N = probe examples, U = units of a hidden layer.
 */
import { Sigmoid, ReLU, Tanh } from '../nn/activations.js';
import { batchNormLayers } from '../nn/batchnorm-modes.js';
import type { Module } from '../nn/module.js';
import type { Sequential } from '../nn/sequential.js';
import type { Tensor } from '../tensor/tensor.js';

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

/** The output of layer `index` (its input when `index` is 0) for `x`, in eval mode, copied. */
export function layerInput(model: Sequential, x: Tensor, index: number): Tensor {
  const modes = [...model.modules()].map((m) => m.training);
  model.eval();
  try {
    let h = x;
    for (let i = 0; i < index; i++) h = model.layers[i].forward(h);
    return h.clone();
  } finally {
    [...model.modules()].forEach((m, i) => (m.training = modes[i]));
  }
}
