/**
 * Model files: the architecture as JSON (`model.json`) and the tensors as safetensors
 * (`model.safetensors`) under PyTorch's state-dict names. Browser-safe: everything here works on
 * strings and bytes; src/io/node-model-dir.ts reads and writes the directory.
 *
 * model.json, format version 1:
 *   { "format": "bnlab-model", "formatVersion": 1, "preset": "ioffe-mlp" | null,
 *     "inputShape": [784],                       one sample, without the batch dimension
 *     "layers": [{ "type": "Linear", "inFeatures": 784, ... }, ...],   layerSpec() of each layer
 *     "batchNorm": { "biasCorrection": true },   defaults for batch-norm layers whose spec does not say
 *     "classNames": ["0", ...], "dataset": "mnist" }                  optional
 *
 * Loading validates in an order that never allocates from an unchecked number: model.json's structure
 * and a parameter budget first, the safetensors header against the real file length next, then the
 * model is built, every tensor name and shape compared, every value checked finite, and only then copied.
 * A PyTorch state dict saved as safetensors, with no model.json, loads with `architecture` given:
 * PyTorch has no bias correction, so such files are read with biasCorrection false.
 */
import { applyStandardization, checkPreprocessing, type Preprocessing } from '../data/preprocess.js';
import { BatchNormBase } from '../nn/batchnorm.js';
import { MAX_DIMENSION, buildSequential, layerSpec, layerTypes, type LayerSpec } from '../nn/registry.js';
import { Sequential } from '../nn/sequential.js';
import { Rng } from '../tensor/rng.js';
import { Tensor, findNonFinite, shapeToString } from '../tensor/tensor.js';
import { ModelFileError, type ModelFileDefect } from './errors.js';
import { describeJson, encodeSafetensors, parseSafetensors, readFloat32, type SafetensorsFile, type TensorToWrite } from './safetensors.js';

export const MODEL_FORMAT = 'bnlab-model';
export const MODEL_FORMAT_VERSION = 1;
/**
 * Version 2 is version 1 plus `preprocessing` (how the input is made from the user's data). Only files
 * that have it are written as version 2, so an older bnlab refuses exactly the files it would misread.
 */
export const MODEL_FORMAT_VERSION_PREPROCESSING = 2;
export const MODEL_JSON = 'model.json';
export const MODEL_SAFETENSORS = 'model.safetensors';
/** More layers than this is not a model bnlab can train; a larger array is a corrupt or hostile file. */
export const MAX_LAYERS = 1000;
/** Parameter budget checked before building: 2^25 float32 values (128 MB, as much again for gradients). */
export const MAX_PARAMETERS = 2 ** 25;
const MAX_INPUT_VALUES = 2 ** 24;
const MAX_CLASS_NAMES = 100_000;

/** The parsed, validated contents of model.json. */
export interface ModelJson {
  format: typeof MODEL_FORMAT;
  formatVersion: number;
  preset: string | null;
  inputShape: number[];
  layers: LayerSpec[];
  batchNorm: { biasCorrection: boolean };
  classNames?: string[];
  dataset?: string;
  /** Version 2: how the input is made from the user's data (src/data/preprocess.ts). */
  preprocessing?: Preprocessing;
}

/** What model.json records besides the layers. */
export interface ModelInfo {
  /** One sample's shape, e.g. [784] or [1, 28, 28]. */
  inputShape: readonly number[];
  preset?: string | null;
  classNames?: readonly string[];
  dataset?: string;
  preprocessing?: Preprocessing;
}

/** An architecture given by the caller, for safetensors files that come without model.json (PyTorch's). */
export interface Architecture {
  layers: LayerSpec[];
  inputShape: readonly number[];
  /** Default false: what a PyTorch-made file means. */
  biasCorrection?: boolean;
}

/** model.json for `model` (layer specs via layerSpec()). */
export function describeModel(model: Sequential, info: ModelInfo): ModelJson {
  const bn = model.layers.find((l): l is BatchNormBase => l instanceof BatchNormBase);
  return {
    format: MODEL_FORMAT,
    // Version 1 unless the file needs version 2's field, so older bnlab versions keep reading the rest.
    formatVersion: info.preprocessing ? MODEL_FORMAT_VERSION_PREPROCESSING : MODEL_FORMAT_VERSION,
    preset: info.preset ?? null,
    inputShape: [...info.inputShape],
    layers: model.layers.map(layerSpec),
    batchNorm: { biasCorrection: bn ? bn.biasCorrection : true },
    ...(info.classNames ? { classNames: [...info.classNames] } : {}),
    ...(info.dataset ? { dataset: info.dataset } : {}),
    ...(info.preprocessing ? { preprocessing: structuredClone(info.preprocessing) } : {}),
  };
}

/**
 * The state dict as safetensors: float tensors F32, `num_batches_tracked` I64 (as PyTorch stores it),
 * in state-dict order, with PyTorch's `{"format": "pt"}` metadata so its loaders accept the file.
 */
export function encodeWeights(model: Sequential): Uint8Array {
  const tensors: TensorToWrite[] = [];
  for (const [name, t] of model.stateDict()) {
    tensors.push({ name, dtype: name.endsWith('num_batches_tracked') ? 'I64' : 'F32', shape: t.shape, data: t.data });
  }
  return encodeSafetensors(tensors, { format: 'pt' });
}

/** Both files of a model directory, as a string and bytes. */
export function encodeModel(model: Sequential, info: ModelInfo): { modelJson: string; safetensors: Uint8Array } {
  return { modelJson: JSON.stringify(describeModel(model, info), null, 2) + '\n', safetensors: encodeWeights(model) };
}

/**
 * Check model.json's structure without building anything. Throws ModelFileError for text that is not
 * JSON, another format, an unknown format version, a bad inputShape, no layers or too many, an unknown
 * layer type, sizes that are not positive numbers, a parameter budget above MAX_PARAMETERS, or missing
 * batch-norm settings.
 */
export function parseModelJson(text: string | Uint8Array, fileName: string): ModelJson {
  const fail = (defect: ModelFileDefect, detail: string): never => {
    throw new ModelFileError(fileName, defect, detail);
  };
  let value: unknown;
  try {
    const s = typeof text === 'string' ? text : new TextDecoder('utf-8', { fatal: true }).decode(text);
    value = JSON.parse(s);
  } catch (e) {
    return fail('not JSON', (e as Error).message);
  }
  if (!isObject(value)) return fail('wrong format', `expected a JSON object with "format": "${MODEL_FORMAT}", got ${describeJson(value)}`);
  const v = value as Record<string, unknown>;
  if (v.format !== MODEL_FORMAT) fail('wrong format', `"format" is ${describeJson(v.format)}, expected "${MODEL_FORMAT}" (is this a bnlab model.json?)`);
  const version = v.formatVersion;
  if (typeof version !== 'number' || !Number.isInteger(version)) fail('wrong format version', `"formatVersion" must be an integer, got ${describeJson(version)}`);
  if ((version as number) > MODEL_FORMAT_VERSION_PREPROCESSING) fail('wrong format version', `the file has format version ${version}, this bnlab reads versions up to ${MODEL_FORMAT_VERSION_PREPROCESSING}: it was written by a newer bnlab; upgrade to load it`);
  if ((version as number) < 1) fail('wrong format version', `format version ${version} does not exist (versions start at 1)`);

  const inputShape = v.inputShape;
  if (!Array.isArray(inputShape) || inputShape.length < 1 || inputShape.length > 4) fail('bad field', `"inputShape" must be an array of 1 to 4 sizes (one sample, no batch dimension), got ${describeJson(inputShape)}`);
  let inputValues = 1;
  for (const d of inputShape as unknown[]) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > MAX_DIMENSION) fail('bad field', `"inputShape" ${describeJson(inputShape)}: every size must be an integer in [1, ${MAX_DIMENSION}]`);
    inputValues *= d as number;
  }
  if (inputValues > MAX_INPUT_VALUES) fail('too large', `"inputShape" ${describeJson(inputShape)} has ${inputValues} values per sample, more than the ${MAX_INPUT_VALUES} limit`);

  const layers = v.layers;
  if (!Array.isArray(layers) || layers.length === 0) fail('bad field', `"layers" must be a non-empty array of layer specs, got ${describeJson(layers)}`);
  if ((layers as unknown[]).length > MAX_LAYERS) fail('too large', `${(layers as unknown[]).length} layers, more than the ${MAX_LAYERS} limit`);
  const known = new Set(layerTypes());
  let budget = 0;
  (layers as unknown[]).forEach((spec, i) => {
    if (!isObject(spec) || typeof (spec as LayerSpec).type !== 'string') fail('bad layer', `layer ${i} must be an object with a string "type", got ${describeJson(spec)}`);
    const s = spec as LayerSpec;
    if (!known.has(s.type)) fail('unknown layer', `layer ${i} has type ${JSON.stringify(s.type)}; known types: ${[...known].join(', ')}`);
    for (const [key, option] of Object.entries(s)) {
      if (typeof option === 'number' && !Number.isFinite(option)) fail('bad layer', `layer ${i} (${s.type}): "${key}" is ${option}`);
    }
    budget += sizeBound(s);
  });
  if (budget > MAX_PARAMETERS) fail('too large', `the layer sizes allow about ${budget.toExponential(2)} parameters, more than the ${MAX_PARAMETERS} limit (corrupt or absurd sizes?)`);

  const bn = v.batchNorm;
  if (!isObject(bn) || typeof (bn as Record<string, unknown>).biasCorrection !== 'boolean') {
    fail('bad field', `"batchNorm" must be an object with "biasCorrection": true or false (true for models trained by bnlab, false for PyTorch weights), got ${describeJson(bn)}`);
  }
  const preset = v.preset ?? null;
  if (preset !== null && typeof preset !== 'string') fail('bad field', `"preset" must be a string or null, got ${describeJson(preset)}`);
  const classNames = v.classNames;
  if (classNames !== undefined && (!Array.isArray(classNames) || classNames.length > MAX_CLASS_NAMES || !classNames.every((c) => typeof c === 'string'))) {
    fail('bad field', `"classNames" must be an array of strings, got ${describeJson(classNames)}`);
  }
  if (v.dataset !== undefined && typeof v.dataset !== 'string') fail('bad field', `"dataset" must be a string, got ${describeJson(v.dataset)}`);
  if (v.preprocessing !== undefined) {
    const problem = checkPreprocessing(v.preprocessing, inputShape as number[]);
    if (problem) fail('bad field', `"preprocessing" ${problem}`);
  }
  return {
    format: MODEL_FORMAT,
    formatVersion: version as number,
    preset: preset as string | null,
    inputShape: inputShape as number[],
    layers: layers as LayerSpec[],
    batchNorm: { biasCorrection: (bn as { biasCorrection: boolean }).biasCorrection },
    ...(classNames ? { classNames: classNames as string[] } : {}),
    ...(typeof v.dataset === 'string' ? { dataset: v.dataset } : {}),
    ...(v.preprocessing !== undefined ? { preprocessing: v.preprocessing as Preprocessing } : {}),
  };
}

/**
 * An upper bound on a layer's parameters that needs no knowledge of the layer type: the product of its
 * integer options (Linear: in·out ≥ its weight, and in·out + out ≤ 2·in·out; Conv2d: in·out·kh·kw·...).
 * Loose on purpose; it only has to stop a 10^12-parameter allocation before the builder tries it.
 */
function sizeBound(spec: LayerSpec): number {
  let product = 1;
  let any = false;
  const visit = (v: unknown) => {
    if (typeof v === 'number' && Number.isInteger(v) && v > 1) {
      product *= v;
      any = true;
    } else if (Array.isArray(v)) v.forEach(visit);
  };
  for (const [key, v] of Object.entries(spec)) if (key !== 'type') visit(v);
  return any ? 2 * product : 0;
}

/** Build the model model.json describes; layer errors and layers that do not fit together become ModelFileError. */
export function buildModel(json: ModelJson, fileName: string): Sequential {
  let model: Sequential;
  try {
    model = buildSequential(json.layers, { rng: new Rng(0), batchNorm: { biasCorrection: json.batchNorm.biasCorrection } });
  } catch (e) {
    throw new ModelFileError(fileName, 'bad layer', (e as Error).message);
  }
  let out: number[];
  try {
    out = model.outputShape([1, ...json.inputShape]);
  } catch (e) {
    throw new ModelFileError(fileName, 'bad layer', `the layers do not fit input shape ${shapeToString(json.inputShape)}: ${(e as Error).message}`);
  }
  if (out.length !== 2) throw new ModelFileError(fileName, 'bad layer', `the model maps input ${shapeToString(json.inputShape)} to ${shapeToString(out.slice(1))} per sample; a classifier must output one vector of class scores (add a Flatten/Linear at the end)`);
  if (json.classNames && json.classNames.length !== out[1]) {
    throw new ModelFileError(fileName, 'bad field', `${json.classNames.length} class names for a model with ${out[1]} outputs`);
  }
  return model;
}

/**
 * Copy a validated safetensors file into `model`, all or nothing: every missing or unexpected tensor,
 * every shape mismatch and every NaN/Infinity is found first, and the model is untouched if there is
 * any. `num_batches_tracked` may be absent only when the layer has no bias correction (old PyTorch files).
 */
export function loadWeights(model: Sequential, file: SafetensorsFile): void {
  const own = model.stateDict();
  const problems: string[] = [];
  let defect: ModelFileDefect | null = null;
  const note = (d: ModelFileDefect, text: string) => {
    defect ??= d;
    problems.push(text);
  };
  const needsCount = new Set<string>();
  for (const m of model.modules()) if (m instanceof BatchNormBase && m.biasCorrection && m.trackRunningStats) needsCount.add(`${m.path}.num_batches_tracked`);
  for (const [name, target] of own) {
    const e = file.entries.get(name);
    if (!e) {
      if (name.endsWith('num_batches_tracked') && !needsCount.has(name)) continue;
      note('missing tensor', `no tensor "${name}" (expected shape ${shapeToString(target.shape)})${needsCount.has(name) ? '; bias-corrected running averages need the batch count: save it, or load with biasCorrection false' : ''}`);
      continue;
    }
    if (e.shape.length !== target.shape.length || e.shape.some((d, i) => d !== target.shape[i])) {
      note('shape mismatch', `tensor "${name}" has shape ${shapeToString(e.shape)}, the architecture needs ${shapeToString(target.shape)}`);
    }
  }
  for (const name of file.entries.keys()) if (!own.has(name)) note('unexpected tensor', `tensor "${name}" is not part of the architecture (${describeKeys(own)})`);
  if (defect) throw new ModelFileError(file.fileName, defect, problems.slice(0, 5).join('; ') + (problems.length > 5 ? `; and ${problems.length - 5} more` : ''));

  const values = new Map<string, Float32Array>();
  for (const [name, target] of own) {
    if (!file.entries.has(name)) continue;
    const v = readFloat32(file, name);
    const bad = findNonFinite(v);
    if (bad >= 0) throw new ModelFileError(file.fileName, 'non-finite values', `tensor "${name}" holds ${v[bad]} at index ${bad} of ${shapeToString(target.shape)}: the weights were saved from a diverged run or the file is corrupt`);
    if (name.endsWith('num_batches_tracked') && !(Number.isInteger(v[0]) && v[0] >= 0)) {
      throw new ModelFileError(file.fileName, 'bad field', `tensor "${name}" is ${v[0]}; a batch count must be a non-negative integer`);
    }
    values.set(name, v);
  }
  for (const [name, v] of values) own.get(name)!.data.set(v);
}

function describeKeys(dict: Map<string, unknown>): string {
  const keys = [...dict.keys()];
  return `it has ${keys.slice(0, 6).join(', ')}${keys.length > 6 ? `, ... (${keys.length} tensors)` : ''}`;
}

export interface DecodeModelInput {
  /** Contents of model.json; absent for a bare safetensors file (then `architecture` is required). */
  modelJson?: string | Uint8Array | null;
  safetensors: Uint8Array;
  architecture?: Architecture;
  /** Names used in error messages. */
  modelJsonName?: string;
  safetensorsName?: string;
}

/**
 * Raw samples as a model takes them, as `bnlab predict` prepares them: `raw` holds n samples of the
 * model's input one after another (pixels in [0, 1], a CSV row's columns in the model's order); the
 * result is [n, ...inputShape], standardized with the training set's statistics when the model was
 * trained with --standardize.
 */
export function modelInput(info: Pick<ModelInfo, 'inputShape' | 'preprocessing'>, raw: Float32Array): Tensor {
  const size = info.inputShape.reduce((a, b) => a * b, 1);
  if (raw.length === 0 || raw.length % size !== 0) throw new Error(`modelInput: ${raw.length} values are not whole samples of the model's input ${shapeToString(info.inputShape)} (${size} values each)`);
  const s = info.preprocessing?.standardize;
  const values = s ? applyStandardization(raw, info.inputShape, s) : Float32Array.from(raw);
  return new Tensor([raw.length / size, ...info.inputShape], values);
}

/** A loaded model in eval mode and its description. */
export interface LoadedModel {
  model: Sequential;
  json: ModelJson;
}

/**
 * Rebuild a model from its files: model.json (or a given architecture, read the PyTorch way: no bias
 * correction) plus safetensors. The model is returned in eval mode. Throws ModelFileError only.
 */
export function decodeModel(input: DecodeModelInput): LoadedModel {
  const jsonName = input.modelJsonName ?? MODEL_JSON;
  const weightsName = input.safetensorsName ?? MODEL_SAFETENSORS;
  let json: ModelJson;
  if (input.modelJson !== undefined && input.modelJson !== null) json = parseModelJson(input.modelJson, jsonName);
  else if (input.architecture) {
    const a = input.architecture;
    json = parseModelJson(JSON.stringify({ format: MODEL_FORMAT, formatVersion: MODEL_FORMAT_VERSION, inputShape: a.inputShape, layers: a.layers, batchNorm: { biasCorrection: a.biasCorrection ?? false } }), '(architecture)');
  } else throw new ModelFileError(weightsName, 'not found', `no ${MODEL_JSON} beside it and no architecture given: a safetensors file holds only tensors; add a ${MODEL_JSON} (docs/model-files.md) or pass the layers as \`architecture\``);
  const file = parseSafetensors(input.safetensors, weightsName);
  checkLargeWeights(json, file);
  const model = buildModel(json, jsonName);
  loadWeights(model, file);
  model.eval();
  return { model, json };
}

/**
 * The large tensors (Linear and Conv2d weights, products of two or four sizes) checked against the
 * safetensors header before the model is built, so a model.json that lies about its sizes is caught by
 * the real file rather than by allocating what it claims. Everything else is small (each size is at
 * most MAX_DIMENSION) and checked after building, together with these.
 */
function checkLargeWeights(json: ModelJson, file: SafetensorsFile): void {
  const size = (spec: LayerSpec, names: string[]): number | null => {
    const v = names.map((n) => spec[n]).find((x) => x !== undefined);
    return typeof v === 'number' && Number.isInteger(v) && v >= 1 ? v : null;
  };
  json.layers.forEach((spec, i) => {
    let expected: Array<number | null>;
    if (spec.type === 'Linear') expected = [size(spec, ['outFeatures', 'out']), size(spec, ['inFeatures', 'in'])];
    else if (spec.type === 'Conv2d') {
      const k = spec.kernelSize ?? spec.kernel;
      const [kh, kw] = typeof k === 'number' ? [k, k] : Array.isArray(k) && k.length === 2 ? k : [null, null];
      expected = [size(spec, ['outChannels', 'out']), size(spec, ['inChannels', 'in']), size({ type: '', k: kh }, ['k']), size({ type: '', k: kw }, ['k'])];
    } else return;
    if (expected.some((d) => d === null)) return; // the builder reports the bad size
    const name = `${i}.weight`;
    const entry = file.entries.get(name);
    if (!entry) throw new ModelFileError(file.fileName, 'missing tensor', `no tensor "${name}" for layer ${i} (${spec.type}, weight of shape ${shapeToString(expected as number[])})`);
    if (entry.shape.length !== expected.length || entry.shape.some((d, j) => d !== expected[j])) {
      throw new ModelFileError(file.fileName, 'shape mismatch', `tensor "${name}" has shape ${shapeToString(entry.shape)}, the architecture needs ${shapeToString(expected as number[])}`);
    }
  });
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
