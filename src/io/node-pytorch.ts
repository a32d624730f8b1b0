/**
 * The PyTorch export directory on disk (Node only): model.py, model.safetensors, model.json, example.py
 * and example_input.safetensors (src/io/pytorch.ts makes them), written as one directory atomically.
 */
import * as fs from 'node:fs';
import { DATASET_NAMES, loadDataset } from '../data/node.js';
import { applyStandardization, standardizationLayout } from '../data/preprocess.js';
import type { Sequential } from '../nn/sequential.js';
import { Rng } from '../tensor/rng.js';
import { Tensor } from '../tensor/tensor.js';
import { MODEL_JSON, MODEL_SAFETENSORS, type ModelInfo } from './model-file.js';
import { writeDirectoryAtomic } from './node-atomic.js';
import { exportPytorch, type ExampleBatch, type PyTorchExport } from './pytorch.js';

/** Samples in example_input.safetensors. */
export const EXAMPLE_COUNT = 8;

export interface SavePytorchOptions {
  /** Replace an existing directory (as a whole, atomically). */
  overwrite?: boolean;
  /** For model.py's header: the run directory, bnlab's version, the preset's description. */
  source?: string;
  bnlabVersion?: string;
  title?: string;
}

/**
 * The first test images of the model's dataset when it is one bnlab ships and the shapes fit; else seeded
 * uniform values in [0, 1), or, for a standardized model, in mean ± std of each feature (so the raw
 * inputs are on the data's own scales).
 */
export function exampleBatch(model: Sequential, info: ModelInfo): ExampleBatch {
  const size = info.inputShape.reduce((a, b) => a * b, 1);
  const n = EXAMPLE_COUNT;
  let input: Float32Array;
  let labels: Uint8Array | undefined;
  let note: string;
  if (info.dataset && DATASET_NAMES.includes(info.dataset) && size === 28 * 28) {
    const test = loadDataset(info.dataset, 'test');
    input = test.images.slice(0, n * size);
    labels = test.labels.slice(0, n);
    note = `the first ${n} ${info.dataset} test images`;
  } else {
    const rng = new Rng(0);
    input = new Float32Array(n * size);
    const s = info.preprocessing?.standardize;
    const layout = s ? standardizationLayout(info.inputShape, s) : { plane: 1 };
    if (typeof layout === 'string') throw new Error(`the model's standardization does not fit its input: ${layout}`);
    const plane = layout.plane;
    for (let i = 0; i < input.length; i++) {
      const u = rng.uniform();
      const g = Math.floor((i % size) / plane);
      input[i] = s ? s.mean[g] + (2 * u - 1) * s.std[g] : u;
    }
    note = s ? `${n} inputs drawn uniformly from mean ± std of each ${s.per} of the training set, seed 0` : `${n} inputs of uniform random values in [0, 1), seed 0`;
  }
  const wasTraining = model.training;
  model.eval();
  // The example holds raw inputs; model.py standardizes them itself, as bnlab predict does here.
  const standardize = info.preprocessing?.standardize;
  const modelInput = standardize ? applyStandardization(input, info.inputShape, standardize) : input;
  const logits = model.forward(new Tensor([n, ...info.inputShape], modelInput)).data.slice();
  model.train(wasTraining);
  return { input, count: n, logits, labels, note };
}

/** Write the export of `model` into `dir`. Refuses an existing `dir` unless `overwrite`. Returns what was written. */
export function savePytorchExport(dir: string, model: Sequential, info: ModelInfo, options: SavePytorchOptions = {}): PyTorchExport {
  if (fs.existsSync(dir) && !options.overwrite) {
    throw new Error(`${dir} already exists; choose another directory, or pass --overwrite to replace it`);
  }
  const exported = exportPytorch(model, {
    inputShape: info.inputShape,
    inputNote: inputNote(info),
    classNames: info.classNames,
    preset: info.preset,
    dataset: info.dataset,
    title: options.title,
    source: options.source,
    bnlabVersion: options.bnlabVersion,
    preprocessing: info.preprocessing,
    example: exampleBatch(model, info),
    fileName: dir,
  });
  writeDirectoryAtomic(dir, [
    ['model.py', exported.modelPy],
    [MODEL_SAFETENSORS, exported.safetensors],
    [MODEL_JSON, exported.modelJson],
    ['example.py', exported.examplePy],
    ['example_input.safetensors', exported.exampleInput],
  ]);
  return exported;
}

/** What the input values are, for the bundled datasets. */
function inputNote(info: ModelInfo): string | undefined {
  const pre = info.preprocessing;
  if (pre) {
    const what = pre.source === 'csv' && pre.features ? `the CSV columns ${pre.features.join(', ')}, in that order` : pre.image ? `images of ${pre.image.height}x${pre.image.width} pixels, ${pre.image.channels === 1 ? 'grayscale' : 'RGB'}, values in [0, 1]` : 'values as at training';
    return `${what}${pre.standardize ? ', raw: the model standardizes them with the training set\'s statistics' : ''}`;
  }
  if (!info.dataset || !DATASET_NAMES.includes(info.dataset)) return undefined;
  const flat = info.inputShape.length === 1;
  return `${info.dataset === 'mnist' ? 'MNIST' : 'Fashion-MNIST'} images, 28x28 pixels${flat ? ' row by row' : ''}, values in [0, 1] (light on dark)`;
}
