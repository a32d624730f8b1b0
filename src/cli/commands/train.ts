/**
 * `bnlab train`: train a preset model on a bundled dataset and record the run in a directory:
 *   config.json    every setting, resolved (dataset sizes, layer specs, versions), written before step 1
 *   metrics.jsonl  one TrainMetrics object per line, written as training goes
 *   model.json, model.safetensors   the trained model, when training ends (a `--model DIR` for other commands)
 *   checkpoints/step-N/             the full training state, with --checkpoint-every N (for --resume)
 *
 * `runTraining(config, hooks)` loads the data, writes the run directory and trains with the library's run
 * builder and loop (src/runs, shared with the lab); `bnlab start` calls it in worker threads, and hooks
 * extend it (checkpoints, saving the model at the end).
 */
import { BN_PLACEMENTS, type BatchNormPlacement } from '../../models/presets.js';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { takeFirst, type Dataset } from '../../data/dataset.js';
import { DATASET_NAMES } from '../../data/node.js';
import { DEFAULT_TEST_FRACTION, loadTrainingData, type BaseModel, type TrainingData, type TrainingDataOptions } from '../../data/node-sources.js';
import { missingClassWarnings } from '../../data/preprocess.js';
import { formatLoss, nameList, shellQuote } from '../format.js';
import { isModelDir, readModelJson } from '../../io/node-model-dir.js';
import { checkWritable } from '../../io/node-atomic.js';
import { ACTIVATIONS, DEFAULT_CNN_HIDDEN, DEFAULT_MLP_HIDDEN, isShapedModel, shapeDefaults, type Activation, type ModelShape } from '../../models/shapes.js';
import { getBackend, initBackend } from '../../kernels/index.js';
import { initNames, type InitName, type InitSpec } from '../../nn/init.js';
import { layerSpec, type LayerSpec } from '../../nn/registry.js';
import type { Sequential } from '../../nn/sequential.js';
import type { Optimizer } from '../../optim/optimizer.js';
import type { EvalResult } from '../../train/evaluate.js';
import type { Trainer, TrainMetrics } from '../../train/trainer.js';
import type { OptimizerConfig, RunConfig, ScheduleConfig } from '../../runs/config.js';
import { createRun, runLoopUntil } from '../../runs/run.js';
import { RunFiles, addCheckpointOptions, loadModelSource, modelArgument, modelLabel, presetDefaults, resumeFromLatest, resumeTrainConfig, MODEL_OPTION_HELP } from '../model-files.js';
import { backendOption, MOMENTUM_CONVENTION, bnMomentum, columnList, fraction, imageSize, layerSizes, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber, seed, unitIntervalOpen } from '../options.js';
import { createProgress, formatAccuracy } from '../progress.js';
import { packageInfo } from '../version.js';

/** Written into config.json; bump when its layout changes. */
export const RUN_CONFIG_FORMAT = 'bnlab-run/1';
export const DEFAULT_STEPS = 10000;
export const DEFAULT_BATCH = 60;
export const DEFAULT_EVAL_EVERY = 1000;
export const DEFAULT_SEED = 1;
/** SGD learning rate for presets that do not set their own `defaultLr`. */
export const FALLBACK_SGD_LR = 0.1;
export const DEFAULT_ADAM_LR = 1e-3;

export type { OptimizerConfig, ScheduleConfig } from '../../runs/config.js';

/**
 * Everything that determines a training run. Plain JSON, so it can cross to a worker thread. The loop's
 * settings are the library's RunConfig (src/runs, shared with the lab); the data's are TrainingDataOptions.
 */
export interface TrainConfig extends RunConfig, TrainingDataOptions {
  dataset: string;
  /** Use only the first N training / test images (null = all). */
  trainLimit: number | null;
  testLimit: number | null;
  model: string;
  bn: boolean;
  init: InitSpec;
  /** Options for every batch-norm layer. `momentum` in PyTorch's convention, null = cumulative average. */
  batchNorm: { momentum: number | null; eps: number; biasCorrection: boolean };
  /** Hidden batch norm before the activation (default) or after it. */
  bnPlacement?: BatchNormPlacement;
  /** Batch norm on the input features too. */
  inputBn?: boolean;
  seed: number;
  backend: string;
  /** Run directory. */
  out: string;
  /** Replace an existing run directory at `out`. */
  overwrite: boolean;
  /** Write a checkpoint every N steps and at the end (0 or absent: never). */
  checkpointEvery?: number;
  /** Checkpoints to keep (default 3). */
  keepCheckpoints?: number;
  /** Continue the run in `out` from its latest checkpoint instead of starting one. */
  resume?: boolean;
  // Own data (--data, --test-data, --test-fraction, --label, --image-size, --channels, --standardize): TrainingDataOptions.
  /** `model` mlp or cnn: the network's shape; its input and class count come from the data. */
  shape?: ModelShape | null;
}

/** A run in progress: what hooks get to see and change. */
export interface TrainingRun {
  config: TrainConfig;
  runDir: string;
  model: Sequential;
  optimizer: Optimizer;
  trainer: Trainer;
  trainSet: Dataset;
  testSet: Dataset;
  /** Own data: where it came from and which test set was used; with the test set's size before --test-limit. */
  provenance?: TrainingData['provenance'];
  testCountBeforeLimit: number;
}

export interface TrainHooks {
  /** After everything is built and config.json written, before the first step (e.g. to restore a checkpoint). */
  onStart?(run: TrainingRun): void | Promise<void>;
  onMetrics?(m: TrainMetrics, run: TrainingRun): void;
  /** After every step, with that step's loss. */
  onStep?(run: TrainingRun, loss: number): void;
  /** After the final evaluation (e.g. to save the model). Not called when training fails. */
  onEnd?(run: TrainingRun, result: TrainResult): void | Promise<void>;
  /** Asked before each step: true ends the run there (evaluated and saved, with a checkpoint to resume from). */
  shouldStop?(): boolean;
}

export interface TrainResult {
  runDir: string;
  steps: number;
  /** The final test-set evaluation. */
  test: EvalResult;
  /** Every metrics record of the run (also in metrics.jsonl). */
  history: TrainMetrics[];
  /** Wall time of the training loop, evaluations included. */
  seconds: number;
  /** The run ended early at `steps` (hooks.shouldStop), with a checkpoint there for --resume. */
  stopped: boolean;
}

/**
 * Run a training job: select the backend, load the data, build the model and optimizer, write
 * config.json and metrics.jsonl into `config.out`, train, and evaluate on the test set.
 * Throws before creating anything if `config.out` is a non-empty directory and `overwrite` is off;
 * a DivergenceError from the trainer propagates after the metrics so far are written.
 */
export async function runTraining(config: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  const runDir = resolve(config.out);
  if (!config.resume) checkRunDir(runDir, config.overwrite); // before the slow part, so a mistake costs nothing

  const kernels = await initBackend(config.backend); // async: the wasm backend compiles its module first
  // A model directory trained further reads the data as it was trained to (recorded in config.json too,
  // so evaluate and --resume read it the same way without the directory).
  if (config.baseModel === undefined && isModelDir(config.model)) config.baseModel = baseModelOf(config.model);
  const data = await loadTrainingData(config); // a bundled dataset, or --data with its test set (src/data/node-sources.ts)
  const trainSet = limit(data.trainSet, config.trainLimit, '--train-limit');
  const testSet = limit(data.testSet, config.testLimit, '--test-limit');
  // A preset is built; mlp/cnn are sized from the data; a model directory (--model DIR) is loaded and trained further.
  const source = loadModelSource(config.model, { bn: config.bn, seed: config.seed, init: config.init, batchNorm: config.batchNorm, bnPlacement: config.bnPlacement, inputBn: config.inputBn }, { sampleShape: trainSet.sampleShape, numClasses: trainSet.numClasses, shape: config.shape });
  const model = source.model;
  if (config.batchSize > trainSet.count) {
    throw new Error(`--batch ${config.batchSize} is larger than the training set (${trainSet.count} samples${config.trainLimit !== null ? `, --train-limit ${config.trainLimit}` : ''}); use --batch ${trainSet.count} or less`);
  }

  let run: TrainingRun | undefined;
  let metricsFd: number | null = null;
  // The data above is this command's (Node, from files); the optimizer, schedule, trainer (and
  // data-parallel threads) come from the library's run builder, shared with the lab, which takes the
  // datasets as given; this command adds the run directory through the callbacks.
  const built = await createRun(config, { trainSet, testSet }, source, {
    onMetrics: (m) => {
      // writeSync: each line reaches the file as it happens, so a killed run keeps its curve.
      if (metricsFd !== null) writeSync(metricsFd, JSON.stringify(m) + '\n');
      hooks.onMetrics?.(m, run!);
    },
    onStep: (t, loss) => {
      files.onStep(t);
      hooks.onStep?.(run!, loss);
    },
  });
  const { optimizer, trainer } = built;
  if (trainer.totalSteps === 0) {
    built.close();
    const batches = trainer.loader.batchesPerEpoch;
    throw new Error(`--epochs ${config.epochs} rounds to 0 steps: an epoch is ${batches} batch${batches === 1 ? '' : 'es'} of ${config.batchSize} (${trainSet.count} training samples), so one step takes --epochs ${Number((1 / batches).toPrecision(2))} or more; or give --steps N`);
  }
  const parts = () => ({ model, optimizer, trainer, schedule: trainer.options.schedule });
  const files = new RunFiles(runDir, config, parts, () => ({ inputShape: source.inputShape, preset: source.preset, classNames: trainSet.classNames, dataset: config.dataset, preprocessing: data.preprocessing }));
  if (config.resume) resumeFromLatest(runDir, parts());

  if (config.overwrite && existsSync(runDir)) rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  const resolved = {
    format: RUN_CONFIG_FORMAT,
    createdAt: new Date().toISOString(),
    ...config,
    out: runDir,
    /** What `backend` resolved to ('auto' picks wasm where it loads). */
    backendUsed: kernels.name,
    /** The build of that backend ('wasm relaxed-simd', 'wasm simd128', 'ts'). */
    backendVariant: kernels.capabilities.variant,
    totalSteps: trainer.totalSteps,
    dropLast: trainer.loader.dropLast,
    batchesPerEpoch: trainer.loader.batchesPerEpoch,
    data: {
      name: config.dataset,
      trainCount: trainSet.count,
      testCount: testSet.count,
      sampleShape: trainSet.sampleShape,
      numClasses: trainSet.numClasses,
      ...(data.provenance ? { classNames: trainSet.classNames, source: data.provenance } : {}),
      ...(data.preprocessing ? { preprocessing: data.preprocessing } : {}),
    },
    modelSpec: {
      preset: source.preset,
      description: source.description,
      inputShape: source.inputShape,
      layers: model.layers.map((l): LayerSpec => layerSpec(l)),
      parameters: model.parameters().reduce((n, p) => n + p.value.size, 0),
    },
    versions: { bnlab: packageInfo().version, node: process.versions.node, platform: process.platform, arch: process.arch },
  };
  writeFileSync(join(runDir, 'config.json'), JSON.stringify(resolved, null, 2) + '\n');
  metricsFd = openSync(join(runDir, 'metrics.jsonl'), 'w');
  for (const m of trainer.history) writeSync(metricsFd, JSON.stringify(m) + '\n'); // a resumed run's metrics so far

  run = { config, runDir, model, optimizer, trainer, trainSet, testSet, provenance: data.provenance, testCountBeforeLimit: data.testSet.count };
  try {
    await hooks.onStart?.(run);
    const { test, steps, history, seconds, stopped } = await runLoopUntil(built, hooks.shouldStop ?? (() => false));
    // Stopped early, the run also gets a checkpoint, so that --resume continues it exactly.
    files.finish({ checkpoint: stopped });
    const result: TrainResult = { runDir, steps, test, history, seconds, stopped };
    await hooks.onEnd?.(run, result);
    return result;
  } finally {
    closeSync(metricsFd);
    built.close();
  }
}

/** How a model directory reads its input, from its model.json (null when it records nothing about that). */
function baseModelOf(dir: string): BaseModel | null {
  const json = readModelJson(dir);
  if (!json.preprocessing) return null;
  return { dir: resolve(dir), preprocessing: json.preprocessing, ...(json.classNames ? { classNames: json.classNames } : {}) };
}

/** One line on own data: classes, input shape, the test set actually used, standardization. */
function describeOwnData(run: TrainingRun): string {
  const { config, trainSet, testSet } = run;
  const names = trainSet.classNames ?? [];
  const classes = names.length <= 8 ? nameList(names) : `${nameList(names.slice(0, 8))}, ...`;
  const test = run.provenance?.test;
  let used = !test ? `${testSet.count} samples` : 'path' in test ? `${shellQuote(test.path)}` : 'fraction' in test ? `${test.fraction} of each class held out (seed ${test.seed})` : "the directory's IDX test pair";
  // --test-limit keeps the first rows of that set (in file order), which the user should know.
  if (testSet.count < run.testCountBeforeLimit) used = `the first ${testSet.count} of ${run.testCountBeforeLimit} samples of ${used} (--test-limit)`;
  return `Data: ${trainSet.numClasses} classes (${classes}), samples of shape [${trainSet.sampleShape.join(', ')}]; test: ${used}${config.standardize ? '; standardized with training-set mean and std' : ''}`;
}

/** Refuse to write into a directory that already holds something, unless it is a run we may replace. */
function checkRunDir(dir: string, overwrite: boolean): void {
  checkWritable(dir, 'directory', '--out');
  if (!existsSync(dir)) return;
  if (!statSync(dir).isDirectory()) throw new Error(`--out ${dir} exists and is not a directory; choose another --out`);
  const entries = readdirSync(dir);
  if (entries.length === 0) return;
  if (!overwrite) throw new Error(`Run directory ${dir} already exists and is not empty (${entries.length} entries); choose another --out, or pass --overwrite to replace that run`);
  // --overwrite deletes the directory, so make sure it is a run and not, say, the project root.
  if (!entries.includes('config.json')) throw new Error(`Refusing to --overwrite ${dir}: it does not look like a bnlab run directory (no config.json); choose another --out`);
}

function limit(ds: Dataset, n: number | null, flag: string): Dataset {
  if (n === null) return ds;
  if (n > ds.count) throw new Error(`${flag} ${n} is larger than the ${ds.name} set (${ds.count} samples); use at most ${ds.count}`);
  return takeFirst(ds, n);
}

/** Options as commander hands them to the action (after the argument parsers ran). */
interface TrainFlags {
  dataset: string;
  model: string;
  bn: boolean;
  steps?: number;
  epochs?: number;
  batch: number;
  lr?: number;
  optimizer: 'sgd' | 'adam';
  momentum?: number;
  weightDecay: number;
  nesterov?: boolean;
  schedule: 'constant' | 'step' | 'cosine';
  lrStep?: number;
  lrGamma: number;
  seed: number;
  evalEvery: number;
  bnMomentum: number | null;
  bnEps: number;
  biasCorrection: boolean;
  bnPlacement?: BatchNormPlacement;
  inputBn?: boolean;
  init?: InitName;
  initStd?: number;
  backend: string;
  threads: number;
  trainLimit?: number;
  testLimit?: number;
  out?: string;
  overwrite?: boolean;
  checkpointEvery?: number;
  keepCheckpoints?: number;
  resume?: string;
  data?: string;
  testData?: string;
  testFraction?: number;
  label?: string;
  imageSize?: [number, number];
  channels?: '1' | '3';
  standardize?: boolean;
  ignoreColumns?: string[];
  hidden?: number[];
  activation?: Activation;
  conv?: number[];
}

/** Turn parsed flags into a complete TrainConfig, rejecting combinations that make no sense. */
export function resolveTrainConfig(flags: TrainFlags, now = new Date()): TrainConfig {
  const shape = modelShape(flags);
  const preset = shape ? shapeDefaults(shape) : presetDefaults(flags.model);
  checkDataFlags(flags);
  if (flags.optimizer === 'adam' && (flags.momentum !== undefined || flags.nesterov)) {
    throw new Error('--momentum and --nesterov are SGD options; Adam has its own moment estimates (drop them, or use --optimizer sgd)');
  }
  if (flags.nesterov && !(flags.momentum !== undefined && flags.momentum > 0)) throw new Error('--nesterov needs SGD momentum: add e.g. --momentum 0.9');
  if (flags.initStd !== undefined && flags.init !== undefined && flags.init !== 'normal') throw new Error(`--init-std applies to --init normal only, not ${flags.init}`);
  if (flags.lrStep !== undefined && flags.schedule !== 'step') throw new Error('--lr-step applies to --schedule step only');

  let init: InitSpec = flags.init ? { name: flags.init } : { ...preset.defaultInit };
  if (flags.initStd !== undefined) init = { name: 'normal', std: flags.initStd };
  else if (init.name === 'normal' && init.std === undefined) init.std = 0.01;

  const steps = flags.steps ?? (flags.epochs === undefined ? DEFAULT_STEPS : null);
  const lr = flags.lr ?? (flags.optimizer === 'adam' ? DEFAULT_ADAM_LR : (preset.defaultLr ?? FALLBACK_SGD_LR));
  const optimizer: OptimizerConfig =
    flags.optimizer === 'adam'
      ? { name: 'adam', lr, weightDecay: flags.weightDecay, beta1: 0.9, beta2: 0.999 }
      : { name: 'sgd', lr, momentum: flags.momentum ?? preset.defaultMomentum ?? 0, weightDecay: flags.weightDecay, nesterov: Boolean(flags.nesterov) };

  let schedule: ScheduleConfig = { name: 'constant' };
  if (flags.schedule === 'cosine') schedule = { name: 'cosine', minLr: 0 };
  else if (flags.schedule === 'step') {
    const budget = steps ?? Math.round((flags.epochs ?? 1) * Math.floor((flags.trainLimit ?? 60000) / flags.batch));
    schedule = { name: 'step', stepSize: flags.lrStep ?? Math.max(1, Math.round(budget / 3)), gamma: flags.lrGamma };
  }

  return {
    dataset: flags.data ? basename(flags.data) : flags.dataset,
    trainLimit: flags.trainLimit ?? null,
    testLimit: flags.testLimit ?? null,
    model: flags.model,
    bn: flags.bn,
    init,
    batchNorm: { momentum: flags.bnMomentum, eps: flags.bnEps, biasCorrection: flags.biasCorrection },
    bnPlacement: flags.bnPlacement ?? 'before',
    inputBn: Boolean(flags.inputBn),
    optimizer,
    schedule,
    steps,
    epochs: steps === null ? flags.epochs! : null,
    batchSize: flags.batch,
    evalEvery: flags.evalEvery,
    seed: flags.seed,
    backend: flags.backend,
    threads: flags.threads,
    out: flags.out ?? defaultRunDir(modelLabel(flags.model), flags.bn, now),
    overwrite: Boolean(flags.overwrite),
    checkpointEvery: flags.checkpointEvery ?? 0,
    keepCheckpoints: flags.keepCheckpoints ?? 3,
    ...(flags.data
      ? {
          dataPath: resolve(flags.data),
          testDataPath: flags.testData ? resolve(flags.testData) : null,
          testFraction: flags.testFraction ?? null,
          labelColumn: flags.label ?? null,
          imageSize: flags.imageSize ?? null,
          imageChannels: flags.channels ? (Number(flags.channels) as 1 | 3) : null,
          ignoreColumns: flags.ignoreColumns ?? null,
        }
      : {}),
    standardize: Boolean(flags.standardize),
    shape,
  };
}

/** --model mlp|cnn with --hidden, --activation, --conv; null for presets and model directories (which take none of them). */
export function modelShape(flags: Pick<TrainFlags, 'model' | 'hidden' | 'activation' | 'conv'>): ModelShape | null {
  if (!isShapedModel(flags.model)) {
    const given = (['hidden', 'activation', 'conv'] as const).filter((k) => flags[k] !== undefined);
    if (given.length) throw new Error(`--${given[0]} shapes --model mlp or cnn; ${flags.model} has its own layers (use --model mlp --hidden 256,128, or --model cnn)`);
    return null;
  }
  if (flags.model === 'mlp' && flags.conv !== undefined) throw new Error('--conv sets the convolution blocks of --model cnn; an mlp has none (use --hidden)');
  const activation = flags.activation ?? 'relu';
  if (flags.model === 'mlp') return { kind: 'mlp', hidden: flags.hidden ?? [...DEFAULT_MLP_HIDDEN], activation };
  return { kind: 'cnn', hidden: flags.hidden ?? [...DEFAULT_CNN_HIDDEN], activation, ...(flags.conv ? { conv: flags.conv } : {}) };
}

/** Options that describe own data need --data; --data replaces --dataset. */
function checkDataFlags(flags: TrainFlags): void {
  if (!flags.data) {
    const given = (['testData', 'testFraction', 'label', 'imageSize', 'channels', 'ignoreColumns'] as const).filter((k) => flags[k] !== undefined);
    const names: Record<string, string> = { testData: '--test-data', testFraction: '--test-fraction', label: '--label', imageSize: '--image-size', channels: '--channels', ignoreColumns: '--ignore-columns' };
    if (given.length) throw new Error(`${names[given[0]]} describes your own data; give it with --data PATH (a CSV file, an IDX directory, or a folder of class folders)`);
  }
  if (flags.testData !== undefined && flags.testFraction !== undefined) throw new Error('give either --test-data PATH or --test-fraction F, not both');
  // The step schedule's default period is a third of the run, which in epochs needs the training set's size.
  if (flags.data && flags.schedule === 'step' && flags.lrStep === undefined && flags.steps === undefined) throw new Error('--schedule step with --epochs on --data: give the period in steps with --lr-step N (or train for --steps N)');
}

/** <parent>/<model>-<bn|nobn>-<YYYYMMDD-HHMMSS>, with a suffix if that name is taken. */
export function defaultRunDir(model: string, bn: boolean, now = new Date(), parent = 'runs'): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
  const base = join(parent, `${model}-${bn ? 'bn' : 'nobn'}-${stamp}`);
  let dir = base;
  for (let i = 2; existsSync(dir); i++) dir = `${base}-${i}`;
  return dir;
}

export const BN_MOMENTUM_HELP = `batch-norm momentum m, the weight of each new batch in the running averages: ${MOMENTUM_CONVENTION}; "cumulative" = cumulative average`;

/** The batch-norm options, shared with other commands that build models. */
export function addBatchNormOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--bn-momentum <m>', BN_MOMENTUM_HELP).argParser(bnMomentum).default(0.1))
    .addOption(new Option('--bn-eps <e>', 'added to the variance inside the square root').argParser(positiveNumber).default(1e-5))
    .option('--no-bias-correction', "use the running averages as they are, exactly as PyTorch (running var starts at 1) instead of dividing by 1 - (1 - m)^t")
    .addOption(new Option('--bn-placement <where>', 'hidden batch norm before the activation (on Wu + b, as in the paper) or after it').choices([...BN_PLACEMENTS]).default('before'))
    .option('--input-bn', 'also normalize the input features with a batch-norm layer (works with --no-bn too: input BN only)');
}

export function register(program: Command): Command {
  const cmd = program
    .command('train')
    .summary('train a model and record the run (config.json, metrics.jsonl)')
    .description('Train a preset model on MNIST or Fashion-MNIST, or a network sized from your own data (--data: a CSV file, an IDX directory, PNG class folders), with mini-batch SGD or Adam, evaluating on the test set as it goes. The run directory gets config.json (every setting, resolved) and metrics.jsonl (one JSON object per line).')
    .addOption(new Option('--dataset <name>', 'a bundled dataset').choices(DATASET_NAMES).default('mnist').conflicts('data'))
    .option('--data <path>', 'your own data: a CSV file with a header (numeric features, a label column), a directory with an IDX pair (images + labels, as MNIST ships them), or a directory of PNG images in one folder per class')
    .addOption(new Option('--test-data <path>', 'test set for --data: a second path of the same kind (default: a stratified split, --test-fraction)'))
    .addOption(new Option('--test-fraction <f>', `hold out this fraction of each class of --data for testing, chosen with --seed (default ${DEFAULT_TEST_FRACTION}; an IDX directory with a t10k/test pair uses that pair)`).argParser(fraction))
    .option('--label <column>', 'CSV: the label column (default the last column); string labels become classes in sorted order')
    .addOption(new Option('--ignore-columns <names>', 'CSV: columns that are not features (an id, a name), comma-separated; recorded in the model, so predict and evaluate skip them too').argParser(columnList))
    .addOption(new Option('--image-size <HxW>', "image folders: resize every image to H x W pixels, area averaging down and bilinear up (default the first image's size)").argParser(imageSize))
    .addOption(new Option('--channels <n>', "image folders: 1 = grayscale, 3 = RGB (default the first image's)").choices(['1', '3']))
    .option('--standardize', "standardize the input with the training set's mean and std (per CSV column, per image channel), stored in the run so predict/evaluate do the same; compare with --input-bn")
    .addOption(new Option('--model <name>', `${MODEL_OPTION_HELP}; see \`bnlab summary --model NAME\``).argParser(modelArgument).default('ioffe-mlp'))
    .addOption(new Option('--hidden <sizes>', `--model mlp|cnn: hidden layer sizes, e.g. 256,128 ("none" for no hidden layer; default mlp ${DEFAULT_MLP_HIDDEN.join(',')}, cnn ${DEFAULT_CNN_HIDDEN.join(',')})`).argParser(layerSizes))
    .addOption(new Option('--activation <name>', '--model mlp|cnn: the hidden activation (default relu)').choices([...ACTIVATIONS]))
    .addOption(new Option('--conv <widths>', '--model cnn: channels of each conv 3x3 → BN → activation → max-pool 2 block (default 16,32)').argParser(layerSizes))
    .option('--bn', 'insert batch norm before each activation', true)
    .option('--no-bn', 'the same network without batch norm')
    .addOption(new Option('--steps <n>', `number of training steps (default ${DEFAULT_STEPS})`).argParser(positiveInt).conflicts('epochs'))
    .addOption(new Option('--epochs <e>', 'train for this many passes over the training set instead (may be fractional)').argParser(positiveNumber))
    .addOption(new Option('--batch <n>', 'mini-batch size').argParser(positiveInt).default(DEFAULT_BATCH))
    .addOption(new Option('--lr <x>', `learning rate (default: the preset's for SGD, ${DEFAULT_ADAM_LR} for Adam)`).argParser(positiveNumber))
    .addOption(new Option('--optimizer <name>', 'optimizer').choices(['sgd', 'adam']).default('sgd'))
    .addOption(new Option('--momentum <m>', "SGD momentum in [0, 1) (default: the preset's, 0.9 for mnist-cnn; else 0)").argParser(unitIntervalOpen))
    .addOption(new Option('--weight-decay <wd>', 'L2 weight decay').argParser(nonNegativeNumber).default(0))
    .option('--nesterov', 'Nesterov momentum (SGD, needs --momentum > 0)')
    .addOption(new Option('--schedule <name>', 'learning-rate schedule').choices(['constant', 'step', 'cosine']).default('constant'))
    .addOption(new Option('--lr-step <n>', 'step schedule: multiply the rate by --lr-gamma every n steps (default: a third of the run)').argParser(positiveInt))
    .addOption(new Option('--lr-gamma <g>', 'step schedule: factor').argParser(positiveNumber).default(0.1))
    .addOption(new Option('--seed <s>', 'seed for initial weights and shuffling').argParser(seed).default(DEFAULT_SEED))
    .addOption(new Option('--eval-every <n>', 'evaluate on the test set every n steps (0 = only at the end)').argParser(nonNegativeInt).default(DEFAULT_EVAL_EVERY));
  addBatchNormOptions(cmd)
    .addOption(new Option('--init <name>', "weight initializer (default: the preset's)").choices(initNames))
    .addOption(new Option('--init-std <s>', 'standard deviation for --init normal').argParser(positiveNumber))
    .addOption(backendOption())
    .addOption(
      new Option('--threads <n>', 'threads that train each batch together: each takes a shard of the batch, batch norm uses the statistics of the whole batch (synchronized), the result equals one thread up to rounding. Needs a backend with shared memory (auto: wasm); 2 pays on a free second core (npm run bench)')
        .argParser(positiveInt)
        .default(1),
    )
    .addOption(new Option('--train-limit <n>', 'use only the first n training images').argParser(positiveInt))
    .addOption(new Option('--test-limit <n>', 'use only the first n test images').argParser(positiveInt))
    .option('--out <dir>', 'run directory (default runs/<model>-<bn|nobn>-<timestamp>)')
    .option('--overwrite', 'replace an existing run directory at --out');
  addCheckpointOptions(cmd)
    .addHelpText(
      'after',
      `
Batch-norm momentum convention:
  ${MOMENTUM_CONVENTION}
  bnlab's default m = 0.1 is Keras's momentum=0.9; Keras's default 0.99 is --bn-momentum 0.01.

Examples:
  $ bnlab train --model ioffe-mlp --bn --steps 10000 --batch 60
  $ bnlab train --model ioffe-mlp --no-bn --steps 10000 --out runs/nobn
  $ bnlab train --dataset fashion-mnist --model mlp-relu --optimizer adam --epochs 5
  $ bnlab train --optimizer sgd --momentum 0.9 --nesterov --schedule cosine --lr 0.1
  $ bnlab train --bn-momentum 0.01 --no-bias-correction --steps 2000
  $ bnlab train --model mnist-cnn --epochs 2 --threads 2     both cores, synchronized batch norm
  $ bnlab train --steps 1000 --checkpoint-every 100 --out runs/a
  $ bnlab train --resume runs/a --steps 2000       continue runs/a from its latest checkpoint
                                                  (Ctrl-C during a run saves it with a checkpoint to resume from)

Your own data (input size and classes come from the data):
  $ bnlab train --data data.csv --label species --model mlp --hidden 64,32 --epochs 50 --out runs/csv
  $ bnlab train --data data.csv --test-data test.csv --standardize --no-bn --model mlp --hidden 64
  $ bnlab train --data photos/ --image-size 32x32 --channels 3 --model cnn --epochs 10
  $ bnlab train --data mnist-idx/ --model mlp --hidden 256,128 --activation tanh`,
    )
    .action(async (flags: TrainFlags) => {
      const config = flags.resume ? resumeTrainConfig(resolve(flags.resume), cmd, flags) : resolveTrainConfig(flags);
      if (!config.bn && (cmd.getOptionValueSource('bnMomentum') === 'cli' || cmd.getOptionValueSource('bnEps') === 'cli')) {
        console.warn('bnlab warning: --bn-momentum/--bn-eps have no effect with --no-bn');
      }
      const progress = { current: null as ReturnType<typeof createProgress> | null };
      // Ctrl-C once: the run ends before its next step, evaluated and saved with a checkpoint; twice, or
      // before training started (data still loading): quit now.
      let interrupted = false;
      let budget = 0;
      const onInterrupt = () => {
        if (interrupted || budget === 0) process.exit(130);
        interrupted = true;
        progress.current?.stop();
        console.error('\nInterrupted: saving the run at the step in progress (Ctrl-C again quits without saving)');
      };
      process.on('SIGINT', onInterrupt);
      const result = await runTraining(config, {
        shouldStop: () => interrupted,
        onStart: (run) => {
          console.log(`Training ${config.model} ${config.bn ? 'with' : 'without'} batch norm on ${config.dataset} (${run.trainSet.count} train / ${run.testSet.count} test ${config.dataPath ? 'samples' : 'images'}): ${run.trainer.totalSteps} steps of batch ${config.batchSize}, ${config.optimizer.name} lr ${config.optimizer.lr}, seed ${config.seed}`);
          if (config.dataPath) console.log(describeOwnData(run));
          const limited = config.trainLimit !== null || config.testLimit !== null ? ' (--train-limit and --test-limit keep the first samples: shuffle a file sorted by class first)' : '';
          for (const warning of missingClassWarnings(run.trainSet, run.testSet)) console.warn(`bnlab warning: ${warning}${limited}`);
          console.log(`Run directory: ${run.runDir}`);
          console.log(`Backend: ${getBackend().capabilities.variant}${config.threads && config.threads > 1 ? `, ${config.threads} threads (data-parallel)` : ''}`);
          if (config.resume) console.log(`Resuming at step ${run.trainer.step} from the latest checkpoint`);
          progress.current = createProgress({ total: run.trainer.totalSteps });
          budget = run.trainer.totalSteps;
        },
        onMetrics: (m) => progress.current?.onMetrics(m),
        onStep: (run) => progress.current?.onStep(run.trainer.step),
      }).finally(() => {
        progress.current?.stop();
        process.off('SIGINT', onInterrupt);
      });
      const rate = result.steps / Math.max(result.seconds, 1e-9);
      if (result.stopped) {
        console.log(`Interrupted at step ${result.steps} of ${budget}. Test accuracy there: ${formatAccuracy(result.test.accuracy)} (loss ${formatLoss(result.test.loss)}), ${result.seconds.toFixed(1)} s, ${rate.toFixed(1)} steps/s`);
        console.log(`Saved ${join(result.runDir, 'config.json')}, metrics.jsonl, model.json and model.safetensors (the weights at step ${result.steps}) and a checkpoint; continue with: bnlab train --resume ${result.runDir}`);
        process.exitCode = 130;
        return;
      }
      console.log(`Test accuracy after ${result.steps} steps: ${formatAccuracy(result.test.accuracy)} (loss ${formatLoss(result.test.loss)}), ${result.seconds.toFixed(1)} s, ${rate.toFixed(1)} steps/s`);
      console.log(`Saved ${join(result.runDir, 'config.json')}, metrics.jsonl, model.json and model.safetensors${config.checkpointEvery ? ' (checkpoints in checkpoints/)' : ''}`);
    });
  return cmd;
}
