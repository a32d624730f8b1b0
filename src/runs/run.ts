/**
 * A run built from a RunConfig, a model and datasets the caller loaded (Node from files, the lab from
 * fetched bytes): the optimizer, the schedule, the Trainer and, with `threads` > 1, the data-parallel
 * workers. `runLoop` trains it to the end with hooks for metrics and per-step probes. Nothing here
 * touches files: the CLI's run directory (config.json, metrics.jsonl, model files, checkpoints) is
 * written by its own hooks.
 */
import type { Dataset } from '../data/dataset.js';
import { availableBackends, getBackend } from '../kernels/index.js';
import { BatchNormBase } from '../nn/batchnorm.js';
import type { Sequential } from '../nn/sequential.js';
import type { Optimizer } from '../optim/optimizer.js';
import type { LrSchedule } from '../optim/schedule.js';
import { DataParallel } from '../parallel/data-parallel.js';
import type { EvalResult } from '../train/evaluate.js';
import { Trainer, type TrainMetrics } from '../train/trainer.js';
import { logInterval, makeOptimizer, makeSchedule, type RunConfig } from './config.js';

/** The data of a run, loaded by the caller. */
export interface RunData {
  trainSet: Dataset;
  testSet: Dataset;
}

/** A model and the shape of one of its samples (e.g. [784] for a flat MLP over 28x28 images). */
export interface RunModel {
  model: Sequential;
  inputShape: readonly number[];
}

export interface RunCallbacks {
  onMetrics?(m: TrainMetrics): void;
  /** After every step, with that step's loss. */
  onStep?(trainer: Trainer, loss: number): void;
}

/** Everything a run is made of. `close()` ends the data-parallel workers, if any. */
export interface Run {
  config: RunConfig;
  model: Sequential;
  inputShape: readonly number[];
  optimizer: Optimizer;
  schedule: LrSchedule;
  trainer: Trainer;
  trainSet: Dataset;
  testSet: Dataset;
  parallel?: DataParallel;
  close(): void;
}

/**
 * Refuse, before anything is built or written, a batch that gives some batch norm a single value per
 * channel: its training forward would fail at the first step (the layer's own error says the same).
 */
function checkBatchStatistics(model: Sequential, inputShape: readonly number[], batchSize: number): void {
  let shape: number[] = [batchSize, ...inputShape];
  for (const [i, layer] of model.layers.entries()) {
    if (layer instanceof BatchNormBase && layer.statistics !== 'running' && shape.reduce((n, d, axis) => (axis === 1 ? n : n * d), 1) < 2) {
      throw new Error(`a batch of ${batchSize} gives ${layer.describe()} (layer "${i}") one value per channel, so training cannot compute batch statistics: use a batch of at least 2 (e.g. --batch 60)`);
    }
    shape = layer.outputShape(shape);
  }
}

/** Build the optimizer, schedule, trainer (and data-parallel workers) for `model` on `data`. */
export async function createRun(config: RunConfig, data: RunData, source: RunModel, callbacks: RunCallbacks = {}): Promise<Run> {
  const { model, inputShape } = source;
  const { trainSet, testSet } = data;
  const optimizer = makeOptimizer(config.optimizer, model);
  const threads = config.threads ?? 1;
  const kernels = getBackend();
  if (threads > 1 && !kernels.sharing) throw new Error(`--threads ${threads} trains on threads that share the weights in memory, which the "${kernels.name}" backend (${kernels.capabilities.variant}) cannot do: use --backend auto (or ${availableBackends().filter((n) => n !== kernels.name && n !== 'ts').join(', ') || 'a backend with shared memory'})`);
  if (threads > 1 && config.batchSize < 2 * threads) throw new Error(`--threads ${threads} splits each batch of ${config.batchSize} across the threads; use a batch of at least ${2 * threads} (or fewer threads)`);
  checkBatchStatistics(model, inputShape, config.batchSize);
  // Created before the Trainer, and closed at the end: every thread trains on its shard of each batch.
  const parallel = threads > 1 ? await DataParallel.create(model, { threads, inputShape: [...inputShape], optimizer }) : undefined;
  const schedule = makeSchedule(config.schedule, config, trainSet.count, model);
  const trainer = new Trainer({
    model,
    optimizer,
    trainSet,
    testSet,
    batchSize: config.batchSize,
    steps: config.steps ?? undefined,
    epochs: config.epochs ?? undefined,
    evalEvery: config.evalEvery,
    logEvery: logInterval(config.evalEvery),
    schedule,
    seed: config.seed,
    dropLast: config.dropLast,
    inputShape,
    parallel,
    onMetrics: callbacks.onMetrics,
    onStep: callbacks.onStep,
  });
  return { config, model, inputShape, optimizer, schedule, trainer, trainSet, testSet, parallel, close: () => parallel?.close() };
}

export interface RunResult {
  steps: number;
  /** The final test-set evaluation. */
  test: EvalResult;
  /** Every metrics record of the run. */
  history: TrainMetrics[];
  /** Wall time of the training loop, evaluations included. */
  seconds: number;
}

/** Train `run` to its budget (evaluating on the way) and return the final test result. */
export function runLoop(run: Run): RunResult {
  const test = run.trainer.run();
  if (!test) throw new Error('runLoop: the run has no test set');
  return { steps: run.trainer.step, test, history: [...run.trainer.history], seconds: run.trainer.elapsed };
}

/**
 * runLoop that can end early: before the next step once `shouldStop()` is true (e.g. after Ctrl-C), with
 * the test evaluated at the step reached. The loop yields to the event loop now and then meanwhile.
 */
export async function runLoopUntil(run: Run, shouldStop: () => boolean): Promise<RunResult & { stopped: boolean }> {
  const { test, stopped } = await run.trainer.runUntil(shouldStop);
  if (!test) throw new Error('runLoopUntil: the run has no test set');
  return { steps: run.trainer.step, test, history: [...run.trainer.history], seconds: run.trainer.elapsed, stopped };
}
