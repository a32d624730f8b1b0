/**
 * The training loop: mini-batch SGD (or any Optimizer) for a fixed number of steps or epochs, test-set
 * evaluation at intervals, metrics as JSON-serializable records, and a hard stop on divergence.
 * Browser-safe: progress and metrics go to callbacks; the CLI turns them into a progress bar and a
 * metrics.jsonl file.
 */
import { DataLoader, type Batch, type DataLoaderState } from '../data/loader.js';
import type { Dataset } from '../data/dataset.js';
import { BatchNormBase } from '../nn/batchnorm.js';
import { CrossEntropyLoss } from '../nn/loss.js';
import { disposedError, type Module } from '../nn/module.js';
import { Sequential } from '../nn/sequential.js';
import { findNonFinite, type Tensor } from '../tensor/tensor.js';
import type { Optimizer } from '../optim/optimizer.js';
import type { DataParallel } from '../parallel/data-parallel.js';
import { applySchedule, type LrSchedule } from '../optim/schedule.js';
import { Evaluator, checkModelTakes, type EvalResult } from './evaluate.js';

export interface TrainMetrics {
  step: number;
  epoch: number;
  split: 'train' | 'test';
  loss: number;
  accuracy?: number;
  lr: number;
  /** Seconds since training started. */
  time: number;
}

export interface TrainerOptions {
  model: Module;
  optimizer: Optimizer;
  trainSet: Dataset;
  testSet?: Dataset;
  batchSize: number;
  /** Stop after this many steps; or give `epochs`. */
  steps?: number;
  epochs?: number;
  /** Evaluate on the test set every this many steps (and at the end). 0 = only at the end. */
  evalEvery?: number;
  /** Record the training loss (averaged since the last record) every this many steps. Default 100. */
  logEvery?: number;
  schedule?: LrSchedule;
  /** Seed of the data loader's shuffling. */
  seed?: number;
  /** Drop the short last batch of each epoch. Default: true when the model has batch norm (a tiny last batch gives noisy statistics; a batch of 1 gives none). */
  dropLast?: boolean;
  /** Shape of one sample as the model expects it; the loader's samples are reshaped to it. Default: `parallel`'s, when given. */
  inputShape?: readonly number[];
  evalBatchSize?: number;
  onMetrics?: (m: TrainMetrics) => void;
  /** Called after every step (progress bars, checkpoints). */
  onStep?: (trainer: Trainer, loss: number) => void;
  /** Train each batch across several threads (`DataParallel.create(model, ...)`); the caller closes it. */
  parallel?: DataParallel;
}

/** Training stopped because the loss became NaN or infinite. */
export class DivergenceError extends Error {
  /** `which`: the loss that stopped the run, the training batch's or the test set's. */
  constructor(readonly step: number, readonly loss: number, lr: number, which: 'loss' | 'test loss' = 'loss') {
    super(`Training diverged at step ${step}: the ${which} is ${loss}. Lower the learning rate (now ${lr}), add batch norm, or check the input data for extreme values.`);
    this.name = 'DivergenceError';
  }
}

/**
 * Training images already found finite: twins, sweeps and restarts train many networks on one set,
 * and a pass over 47 million values each time is most of the time it takes to build one. (Values
 * written into a set after its check are not checked again: a NaN there stops training as a NaN loss.)
 */
const checkedFinite = new WeakSet<Float32Array>();

export class Trainer {
  readonly loader: DataLoader;
  readonly totalSteps: number;
  /** Steps completed so far. */
  step = 0;
  readonly history: TrainMetrics[] = [];
  /** The batch of the latest step (valid until the next one: the loader reuses its buffers), for probes. */
  lastBatch: Batch | null = null;
  private loss = new CrossEntropyLoss();
  private startTime = Date.now();
  private elapsedBefore = 0;
  private lossSum = 0;
  private lossCount = 0;
  private epoch = 0;
  /** Made at the first evaluation and kept: its buffers serve every later one. */
  private testEvaluator: Evaluator | null = null;
  /** run()/runUntil() reached totalSteps: another call would train nothing and record the last evaluation again. */
  private finished = false;

  readonly options: TrainerOptions;

  constructor(options: TrainerOptions) {
    const { trainSet, batchSize, parallel, model, optimizer } = options;
    if (model.disposed) throw disposedError(model, 'train it');
    // An optimizer holding none of the model's parameters (made for another model, or before
    // model.useBackend() replaced them) would step without error while the model never changes.
    const own = new Set(model.parameters());
    if (optimizer.parameters.length > 0 && !optimizer.parameters.some((p) => own.has(p))) {
      throw new Error("Trainer: the optimizer updates none of the model's parameters, so training would not change the model. Make it from this model after it is built and on its backend: new SGD(model.parameters(), ...)");
    }
    if (parallel && options.inputShape && !sameShape(options.inputShape, parallel.inputShape)) {
      throw new Error(`Trainer: inputShape [${options.inputShape.join(', ')}] differs from the DataParallel's [${parallel.inputShape.join(', ')}]: give one shape (the DataParallel's is used when inputShape is left out)`);
    }
    this.options = parallel && !options.inputShape ? { ...options, inputShape: parallel.inputShape } : options;
    checkModelTakes(model, trainSet, this.options.inputShape, 'the Trainer');
    const hasBatchNorm = [...options.model.modules()].some((m) => m instanceof BatchNormBase);
    this.loader = new DataLoader(trainSet, { batchSize, shuffle: true, seed: options.seed ?? 0, dropLast: options.dropLast ?? hasBatchNorm });
    if (options.steps !== undefined && options.epochs !== undefined) throw new Error(`Give either steps or epochs, not both (got steps ${options.steps} and epochs ${options.epochs})`);
    if (options.steps !== undefined) {
      if (!Number.isInteger(options.steps) || options.steps < 1) throw new Error(`steps must be a positive integer, got ${options.steps}`);
      this.totalSteps = options.steps;
    } else if (options.epochs !== undefined) {
      if (!(options.epochs > 0)) throw new Error(`epochs must be positive, got ${options.epochs}`);
      this.totalSteps = Math.round(options.epochs * this.loader.batchesPerEpoch);
    } else throw new Error('Give either steps or epochs');
    // Every training sample checked once here, instead of every batch in Sequential.forward: a NaN stops
    // the run before it starts, named by its sample, and each step saves a pass over its batch.
    const bad = checkedFinite.has(trainSet.images) ? -1 : findNonFinite(trainSet.images);
    if (bad < 0) checkedFinite.add(trainSet.images);
    if (bad >= 0) {
      const per = trainSet.sampleShape.reduce((a, b) => a * b, 1);
      throw new Error(`Training set "${trainSet.name}" contains ${trainSet.images[bad]} at flat index ${bad} (sample ${Math.floor(bad / per)}). Clean the data (e.g. replace missing values) before training.`);
    }
    if (this.options.inputShape) {
      const per = this.options.inputShape.reduce((a, b) => a * b, 1);
      const have = trainSet.sampleShape.reduce((a, b) => a * b, 1);
      if (per !== have) throw new Error(`The model expects samples of shape [${this.options.inputShape.join(', ')}] (${per} values), but dataset "${trainSet.name}" has samples of shape [${trainSet.sampleShape.join(', ')}] (${have} values)`);
    }
  }

  /**
   * Give the loader's batch buffers, the loss's and the test evaluator's back to the backend (the model
   * is its owner's to dispose): for a program that builds many trainers, such as the lab. The trainer
   * must not be used afterwards.
   */
  dispose(): void {
    this.loader.dispose();
    this.loss.dispose();
    this.testEvaluator?.dispose();
    this.testEvaluator = null;
  }

  /** Seconds of training so far (including before a resume). */
  get elapsed(): number {
    return this.elapsedBefore + (Date.now() - this.startTime) / 1000;
  }

  /** One optimization step on the next batch; returns its loss. */
  trainStep(): number {
    const { model, optimizer, schedule, inputShape } = this.options;
    if (schedule) applySchedule(schedule, optimizer, this.step);
    const batch = (this.lastBatch = this.loader.next());
    this.epoch = batch.epoch;
    const b = batch.labels.length;
    const x = inputShape ? batch.x.reshape([b, ...inputShape]) : batch.x;
    model.train();
    const parallel = this.options.parallel;
    if (parallel) {
      if (parallel.model !== model) throw new Error('Trainer: options.parallel was created for another model');
      // The whole step across the threads, the optimizer update included when it was given the optimizer.
      const whole = parallel.optimizer === optimizer;
      if (!whole) optimizer.zeroGrad();
      const loss = whole ? parallel.trainStep(x, batch.labels) : parallel.step(x, batch.labels);
      if (!Number.isFinite(loss)) throw new DivergenceError(this.step + 1, loss, optimizer.lr);
      if (!whole) optimizer.step();
      return this.countStep(loss);
    }
    optimizer.zeroGrad();
    const logits = this.forwardChecked(model, x);
    const loss = this.loss.forward(logits, batch.labels);
    if (!Number.isFinite(loss)) throw new DivergenceError(this.step + 1, loss, optimizer.lr);
    // The input is data: no gradient with respect to it (saves the first layer's input-gradient product).
    const inputGrad = model.inputGrad;
    model.inputGrad = false;
    try {
      model.backward(this.loss.backward());
    } finally {
      model.inputGrad = inputGrad;
    }
    optimizer.step();
    return this.countStep(loss);
  }

  /** model.forward on a batch of the (already checked) training set, without checking it again. */
  private forwardChecked(model: Module, x: Tensor): Tensor {
    if (!(model instanceof Sequential)) return model.forward(x);
    const checkInput = model.checkInput;
    model.checkInput = false;
    try {
      return model.forward(x);
    } finally {
      model.checkInput = checkInput;
    }
  }

  private countStep(loss: number): number {
    this.step++;
    this.lossSum += loss;
    this.lossCount++;
    return loss;
  }

  evaluateTest(): EvalResult | null {
    const { testSet, model, inputShape, evalBatchSize } = this.options;
    if (!testSet) return null;
    this.testEvaluator ??= new Evaluator(testSet, { inputShape, batchSize: evalBatchSize });
    const r = this.testEvaluator.run(model);
    // A batch loss can stay finite (1e33) on the way to weights that give NaN or ∞ on every input: the
    // run has diverged all the same, and its model answers nothing.
    if (!Number.isFinite(r.loss)) throw new DivergenceError(this.step, r.loss, this.options.optimizer.lr, 'test loss');
    this.record({ step: this.step, epoch: this.epoch, split: 'test', loss: r.loss, accuracy: r.accuracy, lr: this.options.optimizer.lr, time: this.elapsed });
    return r;
  }

  /**
   * Train to `totalSteps`, evaluating and logging on the way. Returns the final test result (null
   * without a `testSet`). A trainer runs once: to train further, make a new Trainer for the same model
   * and optimizer (a checkpoint's `restoreTraining` continues one exactly).
   */
  run(): EvalResult | null {
    this.checkNotFinished('run');
    while (this.step < this.totalSteps) this.runStep();
    this.finished = true;
    return this.evaluateTest();
  }

  /** A second run() would silently train nothing and record the last evaluation again: refuse it. */
  private checkNotFinished(method: string): void {
    if (this.finished) {
      throw new Error(`Trainer.${method}(): this trainer already trained its ${this.totalSteps} steps, so it would train no further. To train more, make a new Trainer with the same model and optimizer and the extra steps (and another seed for new batch orders)`);
    }
  }

  /**
   * run(), giving the event loop a turn every `yieldMs` milliseconds (so a signal handler or a page can
   * act) and ending before the next step once `shouldStop()` is true. The final evaluation runs either
   * way, at the step reached.
   */
  async runUntil(shouldStop: () => boolean, yieldMs = 200): Promise<{ test: EvalResult | null; stopped: boolean }> {
    this.checkNotFinished('runUntil');
    let turn = Date.now();
    while (this.step < this.totalSteps) {
      if (shouldStop()) {
        this.flushTrainLoss();
        return { test: this.evaluateTest(), stopped: true };
      }
      this.runStep();
      if (Date.now() - turn >= yieldMs) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        turn = Date.now();
      }
    }
    this.finished = true;
    return { test: this.evaluateTest(), stopped: false };
  }

  /** One step of run(): train, log the loss every `logEvery` steps, evaluate every `evalEvery`. */
  private runStep(): void {
    const { evalEvery = 0, logEvery = 100, onStep } = this.options;
    const loss = this.trainStep();
    if (this.step % logEvery === 0 || this.step === this.totalSteps) this.flushTrainLoss();
    if (evalEvery > 0 && this.step % evalEvery === 0 && this.step !== this.totalSteps) this.evaluateTest();
    onStep?.(this, loss);
  }

  private flushTrainLoss(): void {
    if (this.lossCount === 0) return;
    this.record({ step: this.step, epoch: this.epoch, split: 'train', loss: this.lossSum / this.lossCount, lr: this.options.optimizer.lr, time: this.elapsed });
    this.lossSum = 0;
    this.lossCount = 0;
  }

  private record(m: TrainMetrics): void {
    this.history.push(m);
    this.options.onMetrics?.(m);
  }

  /** What a checkpoint needs besides the model and optimizer: step, loader position, metrics so far. */
  getState(): TrainerState {
    return { step: this.step, epoch: this.epoch, elapsed: this.elapsed, loader: this.loader.getState(), history: [...this.history], lossSum: this.lossSum, lossCount: this.lossCount };
  }

  setState(state: TrainerState): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`Trainer state has an invalid step ${state.step}`);
    this.step = state.step;
    this.epoch = state.epoch;
    this.loader.setState(state.loader);
    this.history.length = 0;
    this.history.push(...state.history);
    this.elapsedBefore = state.elapsed;
    this.startTime = Date.now();
    this.lossSum = state.lossSum;
    this.lossCount = state.lossCount;
  }
}

export interface TrainerState {
  step: number;
  epoch: number;
  elapsed: number;
  loader: DataLoaderState;
  history: TrainMetrics[];
  lossSum: number;
  lossCount: number;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
