/**
 * Training checkpoints as files (browser-safe; src/io/node-checkpoint.ts writes them to disk).
 *
 * A checkpoint is a model directory plus the rest of the training state, so any checkpoint also works
 * as `--model DIR`:
 *   model.json, model.safetensors   architecture, weights and running statistics (with num_batches_tracked)
 *   optimizer.safetensors           optimizer buffers (momentum_buffer; exp_avg, exp_avg_sq), F32, named
 *                                   "<parameter>.<buffer>" as in PyTorch's optimizer state
 *   state.json                      step, optimizer counters and learning rate, LR-schedule position,
 *                                   data-loader position and RNG state, dropout RNG states, metrics so
 *                                   far, and the run configuration
 * Every number that affects training is stored exactly (float32 tensors bit for bit, RNG words as
 * integers), which is what makes a resumed run byte-identical to an uninterrupted one.
 */
import type { Module } from '../nn/module.js';
import type { Sequential } from '../nn/sequential.js';
import type { Optimizer, OptimizerState } from '../optim/optimizer.js';
import type { LrSchedule } from '../optim/schedule.js';
import { Rng, type RngState } from '../tensor/rng.js';
import type { Trainer, TrainerState } from '../train/trainer.js';
import { ModelFileError } from './errors.js';
import { MODEL_JSON, MODEL_SAFETENSORS, decodeModel, encodeModel, type LoadedModel, type ModelInfo } from './model-file.js';
import { describeJson, encodeSafetensors, parseSafetensors, readFloat32, type TensorToWrite } from './safetensors.js';

export const CHECKPOINT_FORMAT = 'bnlab-checkpoint';
export const CHECKPOINT_FORMAT_VERSION = 1;
export const STATE_JSON = 'state.json';
export const OPTIMIZER_SAFETENSORS = 'optimizer.safetensors';
/** The files of a checkpoint, in the order they are written. */
export const CHECKPOINT_FILES = [MODEL_SAFETENSORS, MODEL_JSON, OPTIMIZER_SAFETENSORS, STATE_JSON] as const;

/** state.json. */
export interface CheckpointState {
  format: typeof CHECKPOINT_FORMAT;
  formatVersion: number;
  /** Optimization steps completed. */
  step: number;
  trainer: TrainerState;
  /** The optimizer's scalars; its buffers are in optimizer.safetensors. */
  optimizer: { type: string; lr: number; step: number };
  /** The schedule's name and the step it applies next (its position); schedules are pure functions of it. */
  schedule: { name: string; position: number } | null;
  /** Every module RNG (dropout masks) by module path. */
  rngs: Record<string, RngState>;
  /** Whatever the caller needs to rebuild the run (the CLI stores its options). */
  config: unknown;
}

/** The live objects of a training run. */
export interface TrainingParts {
  model: Sequential;
  optimizer: Optimizer;
  trainer: Trainer;
  schedule?: LrSchedule;
}

/** A checkpoint read back and validated, not yet applied to anything. */
export interface DecodedCheckpoint {
  loaded: LoadedModel;
  state: CheckpointState;
  optimizer: OptimizerState;
}

/** The raw files of a checkpoint, and the names to use for them in errors. */
export type CheckpointFiles = Record<(typeof CHECKPOINT_FILES)[number], Uint8Array | string>;

/** RNGs owned by modules (dropout), by module path. */
function moduleRngs(model: Module): Map<string, Rng> {
  const out = new Map<string, Rng>();
  for (const m of model.modules()) {
    const rng = (m as unknown as { rng?: unknown }).rng;
    if (rng instanceof Rng) out.set(m.path, rng);
  }
  return out;
}

/** Encode the whole training state as the files of a checkpoint. */
export function encodeCheckpoint(parts: TrainingParts, info: ModelInfo, config: unknown = null): Array<[string, Uint8Array | string]> {
  const { model, optimizer, trainer, schedule } = parts;
  const { modelJson, safetensors } = encodeModel(model, info);
  const opt = optimizer.stateDict();
  const names = model.namedParameters().map(([n]) => n);
  if (names.length !== opt.buffers.length) throw new Error(`encodeCheckpoint: the optimizer has ${opt.buffers.length} parameters, the model ${names.length}; build the optimizer from model.parameters()`);
  const shapes = model.namedParameters().map(([, p]) => p.value.shape);
  const tensors: TensorToWrite[] = [];
  opt.buffers.forEach((buffers, i) => {
    for (const [buffer, values] of Object.entries(buffers)) tensors.push({ name: `${names[i]}.${buffer}`, dtype: 'F32', shape: shapes[i], data: values });
  });
  const state: CheckpointState = {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    step: trainer.step,
    trainer: trainer.getState(),
    optimizer: { type: opt.type, lr: opt.lr, step: opt.step },
    schedule: schedule ? { name: schedule.name, position: trainer.step } : null,
    rngs: Object.fromEntries([...moduleRngs(model)].map(([path, rng]) => [path, rng.getState()])),
    config,
  };
  return [
    [MODEL_SAFETENSORS, safetensors],
    [MODEL_JSON, modelJson],
    [OPTIMIZER_SAFETENSORS, encodeSafetensors(tensors, { format: 'bnlab-optimizer', type: opt.type })],
    [STATE_JSON, JSON.stringify(state) + '\n'],
  ];
}

/**
 * Parse and validate every file of a checkpoint (`dir` prefixes the file names in errors). Throws
 * ModelFileError for any damaged or inconsistent file; applies nothing.
 */
export function decodeCheckpoint(files: CheckpointFiles, dir: string): DecodedCheckpoint {
  const name = (f: string) => (dir ? `${dir}/${f}` : f);
  const loaded = decodeModel({ modelJson: files[MODEL_JSON], safetensors: toBytes(files[MODEL_SAFETENSORS]), modelJsonName: name(MODEL_JSON), safetensorsName: name(MODEL_SAFETENSORS) });
  const stateName = name(STATE_JSON);
  const fail = (detail: string): never => {
    throw new ModelFileError(stateName, 'bad training state', detail);
  };
  let raw: unknown;
  try {
    const text = files[STATE_JSON];
    raw = JSON.parse(typeof text === 'string' ? text : new TextDecoder('utf-8', { fatal: true }).decode(text));
  } catch (e) {
    throw new ModelFileError(stateName, 'not JSON', (e as Error).message);
  }
  if (typeof raw !== 'object' || raw === null || (raw as CheckpointState).format !== CHECKPOINT_FORMAT) {
    throw new ModelFileError(stateName, 'wrong format', `expected "format": "${CHECKPOINT_FORMAT}", got ${describeJson((raw as CheckpointState | null)?.format)}`);
  }
  const state = raw as CheckpointState;
  if (state.formatVersion !== CHECKPOINT_FORMAT_VERSION) {
    throw new ModelFileError(stateName, 'wrong format version', `checkpoint format version ${describeJson(state.formatVersion)}, this bnlab reads version ${CHECKPOINT_FORMAT_VERSION}`);
  }
  if (!Number.isInteger(state.step) || state.step < 0) fail(`"step" must be a non-negative integer, got ${describeJson(state.step)}`);
  const t = state.trainer;
  if (typeof t !== 'object' || t === null || t.step !== state.step || !Array.isArray(t.history) || typeof t.loader !== 'object' || !Number.isFinite(t.lossSum) || !Number.isInteger(t.lossCount)) {
    fail(`"trainer" must hold the trainer state of step ${state.step} (step, epoch, loader, history, lossSum, lossCount)`);
  }
  const o = state.optimizer;
  if (typeof o !== 'object' || o === null || typeof o.type !== 'string' || !Number.isFinite(o.lr) || !Number.isInteger(o.step) || o.step < 0) {
    fail(`"optimizer" must be { type, lr, step }, got ${describeJson(o)}`);
  }
  if (state.schedule !== null && (typeof state.schedule !== 'object' || typeof state.schedule.name !== 'string' || state.schedule.position !== state.step)) {
    fail(`"schedule" must be null or { name, position: ${state.step} }, got ${describeJson(state.schedule)}`);
  }
  if (typeof state.rngs !== 'object' || state.rngs === null || Array.isArray(state.rngs)) fail(`"rngs" must be an object of RNG states by module path`);
  for (const [path, s] of Object.entries(state.rngs)) {
    try {
      new Rng(0).setState(s);
    } catch (e) {
      fail(`rng of module "${path}": ${(e as Error).message}`);
    }
  }

  // Optimizer buffers: one tensor per parameter and buffer, shaped like the parameter.
  const optName = name(OPTIMIZER_SAFETENSORS);
  const file = parseSafetensors(toBytes(files[OPTIMIZER_SAFETENSORS]), optName);
  const params = loaded.model.namedParameters();
  const buffers: Array<Record<string, number[]>> = params.map(() => ({}));
  const index = new Map(params.map(([n], i) => [n, i]));
  for (const [tensorName, entry] of file.entries) {
    const dot = tensorName.lastIndexOf('.');
    const i = index.get(tensorName.slice(0, dot));
    if (dot < 0 || i === undefined) throw new ModelFileError(optName, 'unexpected tensor', `"${tensorName}" is not "<parameter>.<buffer>" for a parameter of the model`);
    const shape = params[i][1].value.shape;
    if (entry.shape.length !== shape.length || entry.shape.some((d, k) => d !== shape[k])) {
      throw new ModelFileError(optName, 'shape mismatch', `"${tensorName}" has shape [${entry.shape.join(', ')}], its parameter has [${shape.join(', ')}]`);
    }
    const values = readFloat32(file, tensorName);
    const bad = values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new ModelFileError(optName, 'non-finite values', `"${tensorName}" holds ${values[bad]} at index ${bad}`);
    buffers[i][tensorName.slice(dot + 1)] = Array.from(values);
  }
  return { loaded, state, optimizer: { type: o.type, lr: o.lr, step: o.step, buffers } };
}

/**
 * Apply a decoded checkpoint to a run rebuilt the same way (same architecture, optimizer type, dataset
 * and batch size): weights, running statistics, optimizer state, trainer/loader state and module RNGs.
 * Use freshly built objects: on a mismatch this throws a ModelFileError and the run must not continue.
 */
export function restoreTraining(decoded: DecodedCheckpoint, parts: TrainingParts, dir = ''): void {
  const where = dir ? `${dir}/${STATE_JSON}` : STATE_JSON;
  const fail = (e: unknown): never => {
    throw new ModelFileError(where, 'bad training state', (e as Error).message);
  };
  const { model, optimizer, trainer, schedule } = parts;
  if (decoded.state.schedule && schedule && decoded.state.schedule.name !== schedule.name) {
    fail(new Error(`the checkpoint was trained with learning-rate schedule ${decoded.state.schedule.name}, this run uses ${schedule.name}`));
  }
  try {
    if (model !== decoded.loaded.model) model.loadStateDict(decoded.loaded.model.stateDict());
    optimizer.loadStateDict(decoded.optimizer);
    trainer.setState(decoded.state.trainer);
  } catch (e) {
    fail(e);
  }
  const rngs = moduleRngs(model);
  for (const [path, rng] of rngs) {
    const s = decoded.state.rngs[path];
    if (!s) fail(new Error(`no RNG state for module "${path}"`));
    rng.setState(s);
  }
}

function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === 'string' ? new TextEncoder().encode(data) : data;
}
