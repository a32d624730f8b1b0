/**
 * What the `bnlab` commands share about model files: `--model` taking a preset name or a model directory,
 * the model files every run directory ends with, checkpoints during training, and `--resume`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { restoreTraining, type TrainingParts } from '../io/checkpoint.js';
import { ModelFileError } from '../io/errors.js';
import type { ModelInfo } from '../io/model-file.js';
import { listCheckpoints, loadLatestCheckpoint, saveCheckpoint } from '../io/node-checkpoint.js';
import { isModelDir, loadModelDir, saveModelDir } from '../io/node-model-dir.js';
import { buildPreset, getPreset, presetNames, type Preset, type PresetOptions } from '../models/presets.js';
import { DEFAULT_CNN_HIDDEN, DEFAULT_MLP_HIDDEN, SHAPED_MODELS, buildShapedModel, isShapedModel, type ModelShape } from '../models/shapes.js';
import type { Preprocessing } from '../data/preprocess.js';
import type { Sequential } from '../nn/sequential.js';
import { cosineTotal } from '../optim/schedule.js';
import type { Trainer } from '../train/trainer.js';
import { nonNegativeInt, positiveInt } from './options.js';
import { shellQuote } from './format.js';
import type { TrainConfig } from './commands/train.js';

export const MODEL_OPTION_HELP = `model preset (${presetNames().join(', ')}), a network sized from the data (${SHAPED_MODELS.join(', ')}: --hidden, --activation, --conv), or a model directory (model.json + model.safetensors, e.g. a run directory)`;

/** `--model` of commands that use a model as it is (predict, export): a network sized from data needs training first. */
export const TRAINED_MODEL_OPTION_HELP = `a model directory (model.json + model.safetensors, e.g. a run directory or an import), or a preset (${presetNames().join(', ')}) with its initial weights`;

/** commander parser for `--model`: a preset name, mlp/cnn, or a directory holding model.safetensors (made absolute). */
export function modelArgument(value: string): string {
  if (presetNames().includes(value) || isShapedModel(value)) return value;
  if (isModelDir(value)) return resolve(value); // absolute, so a run's config.json still finds it from elsewhere
  // A value that looks like a path is most likely a directory the user meant: say what is wrong with it.
  const looksLikePath = /[/\\.~]/.test(value);
  const hint = existsSync(value)
    ? ` "${value}" exists but holds no model.safetensors (a run directory gets one when training ends).`
    : looksLikePath
      ? ` There is no "${value}" (from ${process.cwd()}): check the path (a run directory is the --out of bnlab train).`
      : '';
  throw new InvalidArgumentError(`Allowed choices are ${presetNames().join(', ')}, ${SHAPED_MODELS.join(', ')}, or a model directory (model.json + model.safetensors).${hint}`);
}

/** commander parser for `--model` of predict and export: as modelArgument, but mlp/cnn only exist once trained on data. */
export function trainedModelArgument(value: string): string {
  if (isShapedModel(value) && !existsSync(value)) throw new InvalidArgumentError(`--model ${value} is sized from the data when training; train it first (bnlab train --data PATH --model ${value} --out DIR) and pass DIR.`);
  return modelArgument(value);
}

/** A model to use: built from a preset, or loaded (weights included) from a model directory. */
export interface ModelSource {
  model: Sequential;
  /** One sample's shape. */
  inputShape: number[];
  /** The preset it was built from or, for a directory, the one recorded in its model.json. */
  preset: string | null;
  description: string;
  /** The directory it was loaded from, or null for a freshly built preset. */
  dir: string | null;
  classNames?: string[];
  dataset?: string;
  /** How the model's input was made from the user's data (model.json's preprocessing). */
  preprocessing?: Preprocessing;
}

/** The data a model is for: mlp/cnn are sized from it, presets and directories are checked against it. */
export interface DataShape {
  sampleShape: readonly number[];
  numClasses: number;
  /** mlp/cnn: the shape (default: mlp 100,100 ReLU; cnn as mnist-cnn). */
  shape?: ModelShape | null;
}

/** `--model NAME|DIR`: a preset is built with `options`; a directory is loaded as saved (its own batch-norm settings). */
export function loadModelSource(name: string, options: PresetOptions = {}, data?: DataShape): ModelSource {
  if (isShapedModel(name)) {
    if (!data) throw new Error(`--model ${name} takes its input size and class count from the data; give --data PATH (or --dataset NAME)`);
    const shape = data.shape ?? (name === 'mlp' ? { kind: 'mlp', hidden: [...DEFAULT_MLP_HIDDEN], activation: 'relu' } : { kind: 'cnn', hidden: [...DEFAULT_CNN_HIDDEN], activation: 'relu' });
    const built = buildShapedModel(shape, data.sampleShape, data.numClasses, options);
    return { model: built.model, inputShape: built.inputShape, preset: null, description: built.description, dir: null };
  }
  let source: ModelSource;
  if (!presetNames().includes(name) && existsSync(name)) {
    const { model, json } = loadModelDir(name);
    const dir = resolve(name);
    source = { model, inputShape: json.inputShape, preset: json.preset, description: `loaded from ${dir}`, dir, classNames: json.classNames, dataset: json.dataset, ...(json.preprocessing ? { preprocessing: json.preprocessing } : {}) };
  } else {
    const preset = getPreset(name);
    source = { model: buildPreset(name, options), inputShape: [...preset.inputShape], preset: preset.name, description: preset.description, dir: null };
  }
  if (data) checkFitsData(name, source, data);
  return source;
}

/** A preset or trained model on other data: its input size and classes must match the data's. */
function checkFitsData(name: string, source: ModelSource, data: DataShape): void {
  const inputs = source.inputShape.reduce((a, b) => a * b, 1);
  const have = data.sampleShape.reduce((a, b) => a * b, 1);
  const outputs = source.model.outputShape([1, ...source.inputShape]).at(-1);
  if (inputs !== have || outputs !== data.numClasses) {
    throw new Error(`--model ${name} takes ${inputs} inputs and has ${outputs} classes, the data has ${have} values per sample ([${data.sampleShape.join(', ')}]) and ${data.numClasses} classes; use a network sized from the data: --model mlp --hidden 100,100 (or --model cnn for images)`);
  }
}

/** The preset defaults (initializer, learning rate) for a `--model` value; a directory uses its recorded preset's, if any. */
export function presetDefaults(name: string): Pick<Preset, 'defaultInit' | 'defaultLr' | 'defaultMomentum'> {
  if (presetNames().includes(name)) return getPreset(name);
  try {
    const json = JSON.parse(readFileSync(join(name, 'model.json'), 'utf8'));
    if (typeof json?.preset === 'string' && presetNames().includes(json.preset)) return getPreset(json.preset);
  } catch {
    // An unreadable model.json is reported properly when the model is loaded.
  }
  return { defaultInit: { name: 'pytorch' } };
}

/** A name for run directories from a `--model` value (a directory's last component). */
export function modelLabel(name: string): string {
  return presetNames().includes(name) ? name : basename(resolve(name));
}

/** `--checkpoint-every`, `--keep-checkpoints` and `--resume` for `bnlab train`. */
export function addCheckpointOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--checkpoint-every <n>', 'write the full training state to RUN/checkpoints/ every n steps and at the end (0 = never)').argParser(nonNegativeInt).default(0))
    .addOption(new Option('--keep-checkpoints <k>', 'keep the last k checkpoints').argParser(positiveInt).default(3))
    .option('--resume <run>', 'continue the run in this directory from its latest checkpoint, up to --steps (or its original budget), with its own settings');
}

/** Options that may be given with `--resume`; everything else comes from the run's config.json. */
const RESUME_OPTIONS = new Set(['resume', 'steps', 'epochs', 'checkpointEvery', 'keepCheckpoints', 'backend', 'threads']);

/**
 * The TrainConfig to continue the run in `runDir`: its config.json, with the new budget
 * (`--steps`/`--epochs`) and checkpoint settings. Options that would change the run are refused.
 */
export function resumeTrainConfig(runDir: string, cmd: Command, flags: { steps?: number; epochs?: number; checkpointEvery?: number; keepCheckpoints?: number; backend: string; threads?: number }): TrainConfig {
  const changed = cmd.options.map((o) => o.attributeName()).filter((name) => !RESUME_OPTIONS.has(name) && cmd.getOptionValueSource(name) === 'cli');
  if (changed.length) {
    const flagsText = changed.map((n) => cmd.options.find((o) => o.attributeName() === n)!.long).join(', ');
    throw new Error(`--resume continues a run with its own settings; ${flagsText} cannot change them (only --steps/--epochs, --checkpoint-every, --keep-checkpoints, --backend and --threads can be given). Start a new run to train differently.`);
  }
  const file = join(runDir, 'config.json');
  let saved: Record<string, unknown>;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelFileError(file, code === 'ENOENT' ? 'not found' : 'not JSON', code === 'ENOENT' ? `${runDir} is not a bnlab run directory (no config.json)` : (e as Error).message);
  }
  if (saved.format !== 'bnlab-run/1') throw new ModelFileError(file, 'wrong format', `"format" is ${JSON.stringify(saved.format)}, expected "bnlab-run/1"`);
  const keys = ['dataset', 'trainLimit', 'testLimit', 'model', 'bn', 'init', 'batchNorm', 'optimizer', 'schedule', 'steps', 'epochs', 'batchSize', 'evalEvery', 'seed', 'backend'] as const;
  for (const k of keys) if (!(k in saved)) throw new ModelFileError(file, 'bad field', `"${k}" is missing`);
  const config = Object.fromEntries(keys.map((k) => [k, saved[k]])) as unknown as TrainConfig;
  // Settings newer runs record (own data, network shape, batch-norm layout): carried over when present.
  const optional = ['bnPlacement', 'inputBn', 'dataPath', 'testDataPath', 'testFraction', 'labelColumn', 'imageSize', 'imageChannels', 'standardize', 'ignoreColumns', 'shape', 'baseModel'] as const;
  for (const k of optional) if (k in saved) (config as unknown as Record<string, unknown>)[k] = saved[k];
  if (flags.steps !== undefined) {
    config.steps = flags.steps;
    config.epochs = null;
  } else if (flags.epochs !== undefined) {
    config.epochs = flags.epochs;
    config.steps = null;
  }
  const source = cmd.getOptionValueSource.bind(cmd);
  // The run's own checkpoint settings carry over unless given again.
  config.checkpointEvery = source('checkpointEvery') !== 'cli' && typeof saved.checkpointEvery === 'number' ? saved.checkpointEvery : (flags.checkpointEvery ?? 0);
  config.keepCheckpoints = source('keepCheckpoints') !== 'cli' && typeof saved.keepCheckpoints === 'number' ? saved.keepCheckpoints : (flags.keepCheckpoints ?? 3);
  if (source('backend') === 'cli') config.backend = flags.backend;
  // Threads change how fast a run goes, not what it computes: a resumed run may use others.
  config.threads = source('threads') === 'cli' ? flags.threads : typeof saved.threads === 'number' ? saved.threads : 1;
  config.out = runDir;
  config.overwrite = false;
  config.resume = true;
  return config;
}

/**
 * Restore the latest checkpoint of `runDir` into a freshly built run. Returns the checkpoint directory.
 * A damaged newest checkpoint is reported on stderr and the one before it used.
 */
export function resumeFromLatest(runDir: string, parts: TrainingParts): string {
  const { dir, checkpoint } = loadLatestCheckpoint(runDir, (skipped, e) => console.warn(`bnlab warning: skipping checkpoint ${skipped}: ${e.message}`));
  if (checkpoint.state.step > parts.trainer.totalSteps) {
    throw new Error(`the latest checkpoint of ${runDir} is at step ${checkpoint.state.step}, past the requested budget of ${parts.trainer.totalSteps} steps; give --steps ${checkpoint.state.step} or more`);
  }
  const budget = cosineTotal(checkpoint.state.schedule?.name ?? '');
  const wanted = cosineTotal(parts.schedule?.name ?? '');
  if (budget !== null && wanted !== null && budget !== wanted) {
    // The schedule's length is its budget: resuming with another --steps would change the rates already used.
    throw new Error(`${runDir} uses a cosine learning-rate schedule, which decays the rate to its minimum over exactly the run's ${budget} steps, so it cannot be extended to ${parts.trainer.totalSteps} steps. ${checkpoint.state.step < budget ? `Resume it without --steps/--epochs to finish its ${budget} steps, or` : `It has finished them; to train more,`} train further from its model in a new run: bnlab train --model ${shellQuote(runDir)} --steps N --out NEW_DIR (with the run's --data, if it had one)`);
  }
  restoreTraining(checkpoint, parts, dir);
  return dir;
}

/** Checkpoints during a run and the model files at its end. */
export class RunFiles {
  private lastCheckpoint = -1;

  constructor(
    private readonly runDir: string,
    private readonly config: TrainConfig,
    private readonly parts: () => TrainingParts,
    private readonly info: () => ModelInfo,
  ) {}

  /** After each step: a checkpoint every `checkpointEvery` steps. */
  onStep(trainer: Trainer): void {
    const every = this.config.checkpointEvery ?? 0;
    // The last step's checkpoint is written by finish(), after the final evaluation.
    if (every > 0 && trainer.step % every === 0 && trainer.step < trainer.totalSteps) this.checkpoint();
  }

  /**
   * At the end: model.json + model.safetensors in the run directory, and a final checkpoint (with the
   * final evaluation in its metrics) when checkpointing, or when `checkpoint` asks for one.
   */
  finish(options: { checkpoint?: boolean } = {}): void {
    const { model } = this.parts();
    saveModelDir(this.runDir, model, this.info());
    if ((this.config.checkpointEvery ?? 0) > 0 || options.checkpoint) this.checkpoint();
  }

  private checkpoint(): void {
    saveCheckpoint(this.runDir, this.parts(), this.info(), { keep: this.config.keepCheckpoints ?? 3, config: this.config });
    this.lastCheckpoint = this.parts().trainer.step;
  }

  /** The step of the newest checkpoint written by this process (-1 if none). */
  get lastCheckpointStep(): number {
    return this.lastCheckpoint;
  }
}

/** Complete checkpoints of a run, for messages. */
export function checkpointSteps(runDir: string): number[] {
  return listCheckpoints(runDir).map((c) => c.step);
}
