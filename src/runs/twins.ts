/**
 * Twins: a multilayer network with batch norm and the same network without it, built so that the
 * layers they share start from the same weights (normalization layers draw no random numbers, so one
 * seed gives both the same Linear weights), trained on the same batches in the same order (the loader's
 * seed) with the same optimizer settings. The lab trains a pair of these in lockstep; the tests build
 * the same pair in Node to check the lab's numbers.
 */
import { mlpLayers, type BatchNormPlacement } from '../models/presets.js';
import type { InitSpec } from '../nn/init.js';
import { buildSequential, type LayerSpec } from '../nn/registry.js';
import type { Sequential } from '../nn/sequential.js';
import { Rng } from '../tensor/rng.js';
import type { OptimizerConfig, RunConfig } from './config.js';

export type TwinId = 'bn' | 'nobn';
export const TWINS: readonly TwinId[] = Object.freeze(['bn', 'nobn']);

export type TwinActivation = 'sigmoid' | 'relu' | 'tanh';
export type TwinOptimizer = 'sgd' | 'momentum' | 'adam';

/** Everything that defines a pair of twins and how they train. Plain JSON. */
export interface TwinSpec {
  /** Hidden layers, 1 to 6. */
  depth: number;
  /** Units per hidden layer. */
  width: number;
  activation: TwinActivation;
  /** Hidden batch norm before the activation (the paper) or after it (BN twin only). */
  bnPlacement: BatchNormPlacement;
  /** A batch-norm layer on the input features too (BN twin only: the other twin has no batch norm at all). */
  inputBn: boolean;
  /** 'momentum' is SGD with momentum 0.9. */
  optimizer: TwinOptimizer;
  lr: number;
  batchSize: number;
  /** Seed of the initial weights and of the batch order. */
  seed: number;
  /** Batch-norm momentum, PyTorch's convention (weight of the newest batch). */
  bnMomentum: number;
  biasCorrection: boolean;
  /** Features of one sample (784 for 28x28 images) and classes. */
  inputSize: number;
  classes: number;
  /** Test-set evaluation every N steps. */
  evalEvery: number;
}

export const SGD_MOMENTUM = 0.9;

/** Initial weights by activation: the paper's small Gaussian for sigmoid, He for ReLU, Glorot for tanh. */
export function twinInit(activation: TwinActivation): InitSpec {
  if (activation === 'relu') return { name: 'kaiming-normal', nonlinearity: 'relu' };
  if (activation === 'tanh') return { name: 'xavier-normal' };
  return { name: 'normal', std: 0.01 };
}

const ACTIVATION_LAYER: Record<TwinActivation, string> = { sigmoid: 'Sigmoid', relu: 'ReLU', tanh: 'Tanh' };

export function twinLayers(spec: TwinSpec, twin: TwinId): LayerSpec[] {
  const sizes = [spec.inputSize, ...Array.from({ length: spec.depth }, () => spec.width), spec.classes];
  const bn = twin === 'bn';
  return mlpLayers(sizes, ACTIVATION_LAYER[spec.activation], { bn, placement: spec.bnPlacement, inputBn: bn && spec.inputBn });
}

/** One twin's network, with its initial weights from `spec.seed`. */
export function buildTwin(spec: TwinSpec, twin: TwinId): { model: Sequential; inputShape: number[]; layers: LayerSpec[] } {
  const layers = twinLayers(spec, twin);
  const model = buildSequential(layers, {
    rng: new Rng(spec.seed),
    init: twinInit(spec.activation),
    batchNorm: { momentum: spec.bnMomentum, biasCorrection: spec.biasCorrection },
  });
  return { model, inputShape: [spec.inputSize], layers };
}

export function twinOptimizer(spec: Pick<TwinSpec, 'optimizer' | 'lr'>): OptimizerConfig {
  if (spec.optimizer === 'adam') return { name: 'adam', lr: spec.lr, weightDecay: 0, beta1: 0.9, beta2: 0.999 };
  return { name: 'sgd', lr: spec.lr, momentum: spec.optimizer === 'momentum' ? SGD_MOMENTUM : 0, weightDecay: 0, nesterov: false };
}

/**
 * The loop settings of both twins; both drop the short last batch, so their batches stay the same.
 * The budget is open-ended (the lab steps until paused), so `steps`
 * is a large bound; the trainer's own `run()` is not used, only its steps and evaluations.
 */
export function twinRunConfig(spec: TwinSpec, steps = 1_000_000_000): RunConfig {
  return { optimizer: twinOptimizer(spec), schedule: { name: 'constant' }, steps, epochs: null, batchSize: spec.batchSize, evalEvery: spec.evalEvery, seed: spec.seed, threads: 1, dropLast: true };
}
