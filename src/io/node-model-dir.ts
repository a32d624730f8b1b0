/**
 * Model directories on disk (Node only): `model.json` + `model.safetensors`, written atomically and read
 * with every check of src/io/model-file.ts. `--model DIR` everywhere in the CLI goes through here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Sequential } from '../nn/sequential.js';
import { ModelFileError } from './errors.js';
import { MODEL_JSON, MODEL_SAFETENSORS, decodeModel, encodeModel, parseModelJson, type Architecture, type LoadedModel, type ModelInfo, type ModelJson } from './model-file.js';
import { writeError, writeFileAtomic } from './node-atomic.js';

/** model.json is text a person could write; anything above this is not one. */
const MAX_JSON_BYTES = 64 * 1024 * 1024;
/** Node cannot hold a larger file in one buffer; a larger file is not a model bnlab can train anyway. */
const MAX_WEIGHTS_BYTES = 2 ** 31 - 1;

/**
 * Save `model` as `dir/model.json` + `dir/model.safetensors` (creating `dir`). Each file is replaced
 * atomically; the weights are written first, so a crash in between leaves new weights under the old
 * architecture description, which for a run directory is the same architecture.
 */
export function saveModelDir(dir: string, model: Sequential, info: ModelInfo): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw writeError(e, dir, 'directory');
  }
  const { modelJson, safetensors } = encodeModel(model, info);
  writeFileAtomic(path.join(dir, MODEL_SAFETENSORS), safetensors);
  writeFileAtomic(path.join(dir, MODEL_JSON), modelJson);
}

/** True when `p` is a directory holding model.safetensors (what `--model` and preset lookups accept). */
export function isModelDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory() && fs.statSync(path.join(p, MODEL_SAFETENSORS)).isFile();
  } catch {
    return false;
  }
}

/** Read a whole file after checking its size; errors are ModelFileError naming the file. */
export function readFileChecked(file: string, maxBytes: number): Uint8Array {
  let size: number;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new ModelFileError(file, 'unreadable', st.isDirectory() ? 'is a directory, expected a file' : 'is not a regular file');
    size = st.size;
  } catch (e) {
    if (e instanceof ModelFileError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelFileError(file, code === 'ENOENT' ? 'not found' : 'unreadable', code === 'ENOENT' ? 'no such file' : (e as Error).message);
  }
  if (size > maxBytes) throw new ModelFileError(file, 'too large', `${size} bytes, more than the ${maxBytes}-byte limit`);
  try {
    const buf = fs.readFileSync(file);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (e) {
    throw new ModelFileError(file, 'unreadable', (e as Error).message);
  }
}

export interface LoadModelOptions {
  /** The layers, for a safetensors file without model.json (a PyTorch state dict): read with biasCorrection false unless it says otherwise. */
  architecture?: Architecture;
}

/**
 * Load a model from a directory (model.json + model.safetensors) or from a .safetensors file (with a
 * model.json beside it, or `options.architecture`). The model is in eval mode. Throws ModelFileError only.
 */
export function loadModelDir(p: string, options: LoadModelOptions = {}): LoadedModel {
  let weightsPath: string;
  let jsonPath: string;
  let stat: fs.Stats;
  try {
    stat = fs.statSync(p);
  } catch {
    throw new ModelFileError(p, 'not found', `no such directory or file (a model directory holds ${MODEL_JSON} and ${MODEL_SAFETENSORS})`);
  }
  if (stat.isDirectory()) {
    weightsPath = path.join(p, MODEL_SAFETENSORS);
    jsonPath = path.join(p, MODEL_JSON);
  } else {
    weightsPath = p;
    jsonPath = path.join(path.dirname(p), MODEL_JSON);
  }
  const hasJson = fs.existsSync(jsonPath);
  if (!hasJson && !options.architecture) {
    throw new ModelFileError(stat.isDirectory() ? jsonPath : p, 'not found', `no ${MODEL_JSON} ${stat.isDirectory() ? 'in the directory' : 'beside it'}, and no architecture given (a safetensors file holds only tensors)`);
  }
  const modelJson = hasJson ? readFileChecked(jsonPath, MAX_JSON_BYTES) : null;
  const safetensors = readFileChecked(weightsPath, MAX_WEIGHTS_BYTES);
  return decodeModel({ modelJson, safetensors, architecture: options.architecture, modelJsonName: jsonPath, safetensorsName: weightsPath });
}

/** The checked model.json of a model directory, without loading its weights. */
export function readModelJson(dir: string): ModelJson {
  const file = path.join(dir, MODEL_JSON);
  return parseModelJson(readFileChecked(file, MAX_JSON_BYTES), file);
}
