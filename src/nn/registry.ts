/**
 * Layers as JSON: `{ "type": "Linear", "inFeatures": 784, "outFeatures": 100 }`. The same specs build
 * models from the conformance fixtures, from model files and from presets. Every number is checked
 * before anything is allocated, so a hostile or mistaken spec gets an error, not a 10 GB allocation.
 */
import { Rng } from '../tensor/rng.js';
import { Sigmoid, ReLU, Tanh } from './activations.js';
import { BATCH_NORM_STATISTICS, BatchNorm1d, BatchNorm2d, type BatchNormOptions, type BatchNormStatistics, type RenormOptions } from './batchnorm.js';
import { CONV_ALGORITHMS, Conv2d, type ConvAlgorithm, type Size2 } from './conv2d.js';
import { Dropout } from './dropout.js';
import { Flatten } from './flatten.js';
import { GroupNorm } from './groupnorm.js';
import type { InitSpec } from './init.js';
import { LayerNorm } from './layernorm.js';
import { Linear } from './linear.js';
import type { Module } from './module.js';
import { AvgPool2d, MaxPool2d } from './pool.js';
import { Sequential } from './sequential.js';

export interface LayerSpec {
  type: string;
  [option: string]: unknown;
}

export interface BuildContext {
  rng: Rng;
  init?: InitSpec;
  /** Defaults for every batch-norm layer (e.g. biasCorrection: false to match PyTorch). */
  batchNorm?: Record<string, unknown>;
}

export type LayerBuilder = (spec: LayerSpec, ctx: BuildContext) => Module;

/** Largest size of any one dimension a spec may ask for. */
export const MAX_DIMENSION = 1 << 20;

const builders = new Map<string, { build: LayerBuilder; options: readonly string[] | null }>();

/**
 * Register a layer type. `options` lists the keys its spec may have besides `type`: a key outside it
 * (a misspelt `momentun`) is an error rather than silently ignored. Without it, any key is accepted.
 *
 * A layer of your own registered under its `typeName`, with a `config()` that returns those options,
 * is built by `buildSequential` and saved and loaded by the model files like a built-in one. Register
 * it before loading a model that uses it. `intOption`, `numberOption` and `boolOption` read and check
 * spec options with the built-in layers' messages:
 *
 * ```ts
 * registerLayer('Scale', (spec) => new Scale(intOption(spec, ['features'])), ['features']);
 * ```
 */
export function registerLayer(type: string, builder: LayerBuilder, options?: readonly string[]): void {
  builders.set(type, { build: builder, options: options ?? null });
}

export function layerTypes(): string[] {
  return [...builders.keys()];
}

export function buildLayer(spec: LayerSpec, ctx: BuildContext): Module {
  if (!spec || typeof spec !== 'object' || typeof spec.type !== 'string') throw new Error(`Layer spec must be an object with a string "type", got ${JSON.stringify(spec)}`);
  const builder = builders.get(spec.type);
  if (!builder) throw new Error(`Unknown layer type "${spec.type}". Known types: ${layerTypes().join(', ')}`);
  if (builder.options) {
    const known = builder.options;
    const unknown = Object.keys(spec).filter((k) => k !== 'type' && !known.includes(k));
    if (unknown.length) {
      const takes = known.length ? `it takes ${known.join(', ')}` : 'it takes no options';
      throw new Error(`${spec.type}: unknown option ${unknown.map((k) => `"${k}"`).join(', ')}${known.length ? suggestion(unknown[0], known) : ''}; ${takes}`);
    }
  }
  return builder.build(spec, ctx);
}

/** " (did you mean "momentum"?)" when a known key is within two edits of `key`. */
function suggestion(key: string, known: readonly string[]): string {
  let best = '';
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best ? ` (did you mean "${best}"?)` : '';
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}

export function buildSequential(specs: LayerSpec[], ctx: BuildContext): Sequential {
  if (!Array.isArray(specs) || specs.length === 0) throw new Error('A model needs a non-empty array of layer specs');
  return new Sequential(...specs.map((s, i) => {
    try {
      return buildLayer(s, ctx);
    } catch (e) {
      throw new Error(`layer ${i}: ${(e as Error).message}`);
    }
  }));
}

/** The spec that rebuilds `module` (its type plus its config). */
export function layerSpec(module: Module): LayerSpec {
  return { type: module.typeName, ...module.config() };
}

/** An integer option, under its name or an alias ('in' for 'inFeatures'), checked against [min, max]. */
export function intOption(spec: LayerSpec, names: string[], opts: { min?: number; max?: number; default?: number } = {}): number {
  const name = names.find((n) => spec[n] !== undefined);
  const value = name === undefined ? opts.default : spec[name];
  const label = `${spec.type}.${names[0]}`;
  if (value === undefined) throw new Error(`${label} is required`);
  const min = opts.min ?? 1;
  const max = opts.max ?? MAX_DIMENSION;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${label} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A finite number option (default `fallback`) that passes `check`; `what` says what it must be in the error ('a positive number'). */
export function numberOption(spec: LayerSpec, name: string, fallback: number, check: (v: number) => boolean, what: string): number {
  const value = spec[name] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || !check(value)) throw new Error(`${spec.type}.${name} must be ${what}, got ${JSON.stringify(value)}`);
  return value;
}

/** A true/false option (default `fallback`). */
export function boolOption(spec: LayerSpec, name: string, fallback: boolean): boolean {
  const value = spec[name] ?? fallback;
  if (typeof value !== 'boolean') throw new Error(`${spec.type}.${name} must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

registerLayer('Linear', (spec, ctx) =>
  new Linear(intOption(spec, ['inFeatures', 'in']), intOption(spec, ['outFeatures', 'out']), { bias: boolOption(spec, 'bias', true), init: ctx.init, rng: ctx.rng }),
['inFeatures', 'in', 'outFeatures', 'out', 'bias']);
registerLayer('Sigmoid', () => new Sigmoid(), []);
registerLayer('Tanh', () => new Tanh(), []);
registerLayer('ReLU', () => new ReLU(), []);
registerLayer('Dropout', (spec, ctx) => new Dropout(numberOption(spec, 'p', 0.5, (p) => p >= 0 && p < 1, 'in [0, 1)'), { rng: new Rng(ctx.rng.nextUint32()) }), ['p']);

function batchNormOptions(spec: LayerSpec, ctx: BuildContext) {
  const merged: LayerSpec = { ...ctx.batchNorm, ...spec };
  const momentum = merged.momentum === undefined ? 0.1 : merged.momentum;
  if (momentum !== null && (typeof momentum !== 'number' || !(momentum > 0 && momentum <= 1))) {
    throw new Error(`${spec.type}.momentum must be in (0, 1] or null, got ${JSON.stringify(momentum)}`);
  }
  return {
    eps: numberOption(merged, 'eps', 1e-5, (e) => e > 0, 'a positive number'),
    momentum: momentum as number | null,
    affine: boolOption(merged, 'affine', true),
    trackRunningStats: boolOption(merged, 'trackRunningStats', true),
    biasCorrection: boolOption(merged, 'biasCorrection', true),
    ...batchNormVariantOptions(merged),
  };
}

/** `statistics`, `virtualBatchSize` and `renorm` (ranges are checked again, with more context, by the layer). */
function batchNormVariantOptions(spec: LayerSpec): Pick<BatchNormOptions, 'statistics' | 'virtualBatchSize' | 'renorm'> {
  const statistics = spec.statistics ?? 'auto';
  if (!BATCH_NORM_STATISTICS.includes(statistics as BatchNormStatistics)) {
    throw new Error(`${spec.type}.statistics must be one of ${BATCH_NORM_STATISTICS.map((m) => `"${m}"`).join(', ')}, got ${JSON.stringify(statistics)}`);
  }
  const virtualBatchSize = spec.virtualBatchSize === null || spec.virtualBatchSize === undefined ? null : intOption(spec, ['virtualBatchSize']);
  const renorm = spec.renorm ?? null;
  if (renorm !== null) {
    if (typeof renorm !== 'object' || Array.isArray(renorm)) throw new Error(`${spec.type}.renorm must be null or { "rMax": ..., "dMax": ... } (plus optional relaxFrom, rMaxAt, dMaxAt), got ${JSON.stringify(renorm)}`);
    const r = renorm as Record<string, unknown>;
    const unknown = Object.keys(r).filter((k) => !['rMax', 'dMax', 'relaxFrom', 'rMaxAt', 'dMaxAt'].includes(k));
    if (unknown.length) throw new Error(`${spec.type}.renorm: unknown option(s) ${unknown.join(', ')}; known: rMax, dMax, relaxFrom, rMaxAt, dMaxAt`);
    for (const k of ['relaxFrom', 'rMaxAt', 'dMaxAt']) if (r[k] !== undefined) intOption({ type: `${spec.type}.renorm`, [k]: r[k] }, [k], { min: 0, max: 1e9 });
  }
  return { statistics: statistics as BatchNormStatistics, virtualBatchSize, renorm: renorm as RenormOptions | null };
}
const BATCH_NORM_KEYS = ['numFeatures', 'eps', 'momentum', 'affine', 'trackRunningStats', 'biasCorrection', 'statistics', 'virtualBatchSize', 'renorm'];
registerLayer('BatchNorm1d', (spec, ctx) => new BatchNorm1d(intOption(spec, ['numFeatures']), batchNormOptions(spec, ctx)), BATCH_NORM_KEYS);
registerLayer('BatchNorm2d', (spec, ctx) => new BatchNorm2d(intOption(spec, ['numFeatures']), batchNormOptions(spec, ctx)), BATCH_NORM_KEYS);

/**
 * A size option of a convolution or pooling layer: an integer or a [height, width] pair, under its
 * name or an alias ('kernel' for 'kernelSize'), each value checked against [min, max].
 */
export function sizeOption(spec: LayerSpec, names: string[], opts: { min?: number; max?: number; default?: number } = {}): Size2 {
  const name = names.find((n) => spec[n] !== undefined);
  const value = name === undefined ? undefined : spec[name];
  if (!Array.isArray(value)) return intOption(spec, names, opts);
  const label = `${spec.type}.${names[0]}`;
  if (value.length !== 2) throw new Error(`${label} must be an integer or a pair [height, width], got ${JSON.stringify(value)}`);
  const [h, w] = value.map((v) => intOption({ type: spec.type, [names[0]]: v }, [names[0]], { ...opts, default: undefined }));
  return [h, w];
}

/** More weights than this in one convolution is a mistake in the spec (256 MB of float32). */
const MAX_CONV_WEIGHTS = 1 << 26;

registerLayer('Conv2d', (spec, ctx) => {
  const inChannels = intOption(spec, ['inChannels', 'in']);
  const outChannels = intOption(spec, ['outChannels', 'out']);
  const kernelSize = sizeOption(spec, ['kernelSize', 'kernel']);
  const [kh, kw] = typeof kernelSize === 'number' ? [kernelSize, kernelSize] : kernelSize;
  if (inChannels * outChannels * kh * kw > MAX_CONV_WEIGHTS) {
    throw new Error(`Conv2d: ${outChannels}x${inChannels}x${kh}x${kw} = ${outChannels * inChannels * kh * kw} weights is more than the limit of ${MAX_CONV_WEIGHTS}; check inChannels, outChannels and kernelSize`);
  }
  return new Conv2d({
    inChannels,
    outChannels,
    kernelSize,
    stride: sizeOption(spec, ['stride'], { default: 1 }),
    padding: sizeOption(spec, ['padding'], { min: 0, default: 0 }),
    bias: boolOption(spec, 'bias', true),
    init: ctx.init,
    rng: ctx.rng,
    algorithm: convAlgorithmOption(spec),
  });
}, ['inChannels', 'in', 'outChannels', 'out', 'kernelSize', 'kernel', 'stride', 'padding', 'bias', 'algorithm']);

function convAlgorithmOption(spec: LayerSpec): ConvAlgorithm {
  const algorithm = spec.algorithm ?? 'auto';
  if (!CONV_ALGORITHMS.includes(algorithm as ConvAlgorithm)) throw new Error(`${spec.type}.algorithm must be one of ${CONV_ALGORITHMS.map((a) => `"${a}"`).join(', ')}, got ${JSON.stringify(algorithm)}`);
  return algorithm as ConvAlgorithm;
}
for (const [type, Pool] of [['MaxPool2d', MaxPool2d], ['AvgPool2d', AvgPool2d]] as const) {
  registerLayer(type, (spec) => {
    const kernelSize = sizeOption(spec, ['kernelSize', 'kernel']);
    return new Pool({
      kernelSize,
      stride: spec.stride === undefined ? undefined : sizeOption(spec, ['stride']),
      padding: sizeOption(spec, ['padding'], { min: 0, default: 0 }),
    });
  }, ['kernelSize', 'kernel', 'stride', 'padding']);
}
registerLayer('Flatten', () => new Flatten(), []);

registerLayer('LayerNorm', (spec) => {
  const raw = spec.normalizedShape;
  const dims = typeof raw === 'number' ? [raw] : raw;
  if (!Array.isArray(dims) || dims.length === 0 || dims.length > 8) throw new Error(`LayerNorm.normalizedShape must be an integer or a list of 1 to 8 integers (the trailing dims of the input), got ${JSON.stringify(raw)}`);
  const normalizedShape = dims.map((d, i) => intOption({ type: 'LayerNorm', [`normalizedShape[${i}]`]: d }, [`normalizedShape[${i}]`]));
  const size = normalizedShape.reduce((a, b) => a * b, 1);
  if (size > MAX_DIMENSION) throw new Error(`LayerNorm.normalizedShape [${normalizedShape.join(', ')}] has ${size} values; at most ${MAX_DIMENSION} (gamma and beta have one per value)`);
  return new LayerNorm(normalizedShape, {
    eps: numberOption(spec, 'eps', 1e-5, (e) => e > 0, 'a positive number'),
    elementwiseAffine: boolOption(spec, 'elementwiseAffine', true),
    bias: boolOption(spec, 'bias', true),
  });
}, ['normalizedShape', 'eps', 'elementwiseAffine', 'bias']);
registerLayer('GroupNorm', (spec) =>
  new GroupNorm(intOption(spec, ['numGroups']), intOption(spec, ['numChannels']), {
    eps: numberOption(spec, 'eps', 1e-5, (e) => e > 0, 'a positive number'),
    affine: boolOption(spec, 'affine', true),
  }),
['numGroups', 'numChannels', 'eps', 'affine']);
