/**
 * The networks the experiments compare, all built from the `ioffe-mlp` preset (784-100-100-100-10,
 * sigmoid, small Gaussian initial weights) so that a seed gives every variant the same initial Linear weights:
 * normalization layers draw no random numbers. Variants swap the preset's BatchNorm1d layers for
 * LayerNorm or GroupNorm, or put a BatchNorm1d on the input features.
 */
import { getPreset } from '../models/presets.js';
import { buildSequential, layerTypes, type LayerSpec } from '../nn/registry.js';
import type { Sequential } from '../nn/sequential.js';
import { Rng } from '../tensor/rng.js';

/** The normalization in front of each hidden sigmoid. */
export type HiddenNorm = 'none' | 'batch' | 'layer' | 'group';

export interface NetworkOptions {
  norm: HiddenNorm;
  /** A BatchNorm1d over the 784 input features, before the first Linear layer. */
  inputBatchNorm?: boolean;
  seed: number;
  /** Options for every batch-norm layer (momentum, biasCorrection, ...). */
  batchNorm?: Record<string, unknown>;
  /** Groups of GroupNorm (100 channels per hidden layer). Default 10. */
  groups?: number;
}

export const BASE_PRESET = 'ioffe-mlp';

/** The preset's learning rate: every experiment's default, the same with and without BN. */
export const BASE_LR: number = getPreset(BASE_PRESET).defaultLr ?? 1;

/** "ioffe-mlp (784-100-100-100-10, sigmoid, init normal std 0.01)", for the settings tables. */
export function baseModelDescription(): string {
  const init = getPreset(BASE_PRESET).defaultInit;
  const initText = Object.entries(init).filter(([k]) => k !== 'name').map(([k, v]) => `${k} ${v}`).join(', ');
  return `${BASE_PRESET} (784-100-100-100-10, sigmoid, init ${init.name}${initText ? ` ${initText}` : ''})`;
}

/** Shape of one sample as the networks take it. */
export const INPUT_SHAPE: readonly number[] = getPreset(BASE_PRESET).inputShape;

/** Layer specs of a variant of the base preset. */
export function networkLayers(options: NetworkOptions): LayerSpec[] {
  const preset = getPreset(BASE_PRESET);
  const swap = (l: LayerSpec): LayerSpec => {
    if (l.type !== 'BatchNorm1d') return l;
    const units = l.numFeatures as number;
    if (options.norm === 'layer') return { type: 'LayerNorm', normalizedShape: units };
    if (options.norm === 'group') return { type: 'GroupNorm', numGroups: options.groups ?? 10, numChannels: units };
    return l;
  };
  const layers = preset.layers({ bn: options.norm !== 'none' }).map(swap);
  if (options.inputBatchNorm) layers.unshift({ type: 'BatchNorm1d', numFeatures: preset.inputShape[0] });
  return layers;
}

export function buildNetwork(options: NetworkOptions): Sequential {
  const preset = getPreset(BASE_PRESET);
  return buildSequential(networkLayers(options), { rng: new Rng(options.seed), init: preset.defaultInit, batchNorm: options.batchNorm });
}

/** A second network of the same variant holding a copy of `model`'s parameters and buffers. */
export function copyNetwork(options: NetworkOptions, model: Sequential): Sequential {
  const copy = buildNetwork(options);
  copy.loadStateDict(model.stateDict());
  return copy;
}

/** The hidden normalizations this build of the library has (LayerNorm and GroupNorm when registered). */
export function availableHiddenNorms(): HiddenNorm[] {
  const types = layerTypes();
  const norms: HiddenNorm[] = ['none', 'batch'];
  if (types.includes('LayerNorm')) norms.push('layer');
  if (types.includes('GroupNorm')) norms.push('group');
  return norms;
}

export const NORM_LABELS: Record<HiddenNorm, string> = {
  none: 'no normalization',
  batch: 'BatchNorm',
  layer: 'LayerNorm',
  group: 'GroupNorm',
};
