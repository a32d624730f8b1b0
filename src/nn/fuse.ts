/**
 * Folding batch norm into the preceding layer for inference. In eval mode BN is a fixed per-channel
 * affine map, y = gamma·(z - mean)·invStd + beta, and z = W·x + b is affine too, so the pair is one
 * layer with
 *     W' = W·s  (row c of a Linear, filter c of a Conv2d),   b' = (b - mean)·s + beta,   s = gamma·invStd,
 * where mean and var are the statistics eval mode uses (`inferenceStatistics()`: the running averages,
 * bias-corrected when enabled) and invStd = 1/√(var + eps). One pass over the activations less per
 * BN layer, and the same outputs up to float32 rounding.
 *
 * Shape legend: O = output channels (outFeatures of a Linear, outChannels of a Conv2d); a weight has O
 * rows of F = inFeatures or C·KH·KW values.
 */
import { Rng } from '../tensor/rng.js';
import { BatchNormBase } from './batchnorm.js';
import { Conv2d } from './conv2d.js';
import { Linear } from './linear.js';
import type { Module } from './module.js';
import { buildLayer, layerSpec } from './registry.js';
import { Sequential } from './sequential.js';

/**
 * A new eval-mode model in which every batch-norm layer that directly follows a `Linear` or `Conv2d`
 * (in the same Sequential) and normalizes with its running statistics in eval mode is folded into that
 * layer, which then always has a bias. Every other layer is copied, so the original model is left
 * untouched and the two can be compared. BN layers that use batch statistics even in eval mode
 * (`trackRunningStats: false`, or `statistics` 'batch-update'/'batch-frozen') are kept as they are.
 *
 * The fused model has fewer layers, so its state-dict names differ from the original's.
 */
export function fuseBatchNorm(model: Sequential): Sequential {
  if (!(model instanceof Sequential)) throw new Error(`fuseBatchNorm: expected a Sequential model, got ${(model as Module)?.describe?.() ?? typeof model}`);
  const fused = fuseLayers(model);
  fused.checkInput = model.checkInput;
  return fused.eval();
}

function fuseLayers(model: Sequential): Sequential {
  const out: Module[] = [];
  const layers = model.layers;
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i];
    const next = layers[i + 1];
    if (next instanceof BatchNormBase && foldsInto(layer, next)) {
      out.push(fold(layer as Linear | Conv2d, next));
      i++; // the BN layer is now part of `layer`
    } else out.push(layer instanceof Sequential ? fuseLayers(layer) : copyLayer(layer));
  }
  return new Sequential(...out);
}

/** BN can be folded when it follows a Linear/Conv2d of its width and would use running statistics in eval mode. */
function foldsInto(layer: Module, bn: BatchNormBase): boolean {
  const width = layer instanceof Linear ? layer.outFeatures : layer instanceof Conv2d ? layer.outChannels : -1;
  if (width !== bn.numFeatures || !bn.trackRunningStats) return false;
  return bn.statistics === 'auto' || bn.statistics === 'running';
}

function fold(layer: Linear | Conv2d, bn: BatchNormBase): Linear | Conv2d {
  const rows = layer instanceof Linear ? layer.outFeatures : layer.outChannels; // O
  const { mean, variance } = bn.inferenceStatistics();
  const gamma = bn.weight?.value.data;
  const beta = bn.bias?.value.data;
  const weight = layer.weight.value.data;
  const bias = layer.bias?.value.data;
  const perRow = weight.length / rows; // F
  const target = layer instanceof Linear
    ? new Linear(layer.inFeatures, layer.outFeatures, { bias: true, rng: new Rng(0) })
    : new Conv2d({ inChannels: layer.inChannels, outChannels: layer.outChannels, kernelSize: layer.kernelSize, stride: layer.stride, padding: layer.padding, bias: true, rng: new Rng(0) });
  const w = target.weight.value.data;
  const b = target.bias!.value.data;
  // In float64, so that the only rounding is the final store to float32.
  for (let c = 0; c < rows; c++) {
    const s = (gamma ? gamma[c] : 1) / Math.sqrt(variance[c] + bn.eps);
    for (let f = 0; f < perRow; f++) w[c * perRow + f] = weight[c * perRow + f] * s;
    b[c] = ((bias ? bias[c] : 0) - mean[c]) * s + (beta ? beta[c] : 0);
  }
  return target;
}

/** An independent copy of a layer: rebuilt from its spec, then its parameters and buffers loaded. */
function copyLayer(layer: Module): Module {
  let copy: Module;
  try {
    copy = buildLayer(layerSpec(layer), { rng: new Rng(0) });
  } catch (e) {
    throw new Error(`fuseBatchNorm: cannot copy layer ${layer.describe()}${layer.path ? ` ("${layer.path}")` : ''}: ${(e as Error).message}`);
  }
  copy.loadStateDict(layer.stateDict());
  return copy;
}
