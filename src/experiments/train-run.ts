/**
 * Training runs as the experiments need them: plain SGD (the paper's setting) on a network, the training
 * loss averaged over windows, test accuracy at chosen steps, hooks for probes, and divergence recorded
 * instead of thrown, so a learning-rate sweep can carry on. `Stepper` is one step at a time with the
 * batch in hand (two networks can then train in lockstep on the same batches, and the loss of a batch
 * can be measured again after the update it caused).
 */
import { DataLoader, type Batch } from '../data/loader.js';
import type { Dataset } from '../data/dataset.js';
import { batchNormLayers } from '../nn/batchnorm-modes.js';
import type { BatchNormStatistics } from '../nn/batchnorm.js';
import { CrossEntropyLoss } from '../nn/loss.js';
import type { Sequential } from '../nn/sequential.js';
import { SGD } from '../optim/optimizer.js';
import type { Tensor } from '../tensor/tensor.js';
import { evaluate } from '../train/evaluate.js';
import { INPUT_SHAPE } from './models.js';
import type { ProgressTicker } from './progress.js';

/** Mini-batch SGD on one network, a step at a time. */
export class Stepper {
  readonly loader: DataLoader;
  readonly optimizer: SGD;
  /** Steps taken. */
  step = 0;
  private readonly loss = new CrossEntropyLoss();
  private batch: Batch | null = null;

  constructor(readonly model: Sequential, train: Dataset, options: { lr: number; batchSize: number; seed: number }) {
    // Short last batches are dropped: a step budget does not need them, and batch norm would see a
    // different batch size on them.
    this.loader = new DataLoader(train, { batchSize: options.batchSize, shuffle: true, seed: options.seed, dropLast: true });
    this.optimizer = new SGD(model.parameters(), { lr: options.lr });
  }

  /** One SGD step on the next batch; returns the batch loss before the update (NaN/∞ when diverged). */
  next(): number {
    const batch = (this.batch = this.loader.next());
    const x = this.input(batch);
    this.model.train();
    this.optimizer.zeroGrad();
    const loss = this.loss.forward(this.model.forward(x), batch.labels);
    this.step++;
    if (!Number.isFinite(loss)) return loss;
    this.model.backward(this.loss.backward());
    this.optimizer.step();
    return loss;
  }

  /** The batch of the last step (valid until the next one). */
  get lastBatch(): Batch {
    if (!this.batch) throw new Error('Stepper.lastBatch: no step taken yet');
    return this.batch;
  }

  /**
   * The loss of the last step's batch with the updated weights, computed as in training (batch-norm
   * layers normalize with the batch statistics) but without touching the running averages.
   */
  lossAfterStep(): number {
    const batch = this.lastBatch;
    const layers = batchNormLayers(this.model);
    const saved: BatchNormStatistics[] = layers.map((l) => l.statistics);
    try {
      for (const l of layers) if (l.trackRunningStats) l.statistics = 'batch-frozen';
      this.model.train();
      return new CrossEntropyLoss().forward(this.model.forward(this.input(batch)), batch.labels);
    } finally {
      layers.forEach((l, i) => (l.statistics = saved[i]));
    }
  }

  private input(batch: Batch): Tensor {
    return batch.x.reshape([batch.labels.length, ...INPUT_SHAPE]);
  }
}

export interface TrainRunOptions {
  model: Sequential;
  train: Dataset;
  /** Evaluated at `evalSteps`. */
  test?: Dataset;
  lr: number;
  steps: number;
  batchSize: number;
  /** Seed of the batch order. */
  seed: number;
  /** Steps after which to evaluate on the test set. */
  evalSteps?: readonly number[];
  /** Window, in steps, of the recorded training loss. Default: steps / 200, at least 1. */
  logEvery?: number;
  /** Also record, per window, the fraction of steps whose update raised the loss of their own batch. */
  measureOvershoot?: boolean;
  progress?: ProgressTicker;
  /** Work units one step counts for in `progress` (e.g. the batch size, when runs differ in batch size). Default 1. */
  progressPerStep?: number;
  /** After every step, with its batch loss (the gradients of that step are still in the parameters). */
  onStep?: (step: number, loss: number, stepper: Stepper) => void;
  /** At every evaluation step, after the test evaluation. */
  onEval?: (step: number) => void;
}

export interface TestPoint {
  step: number;
  accuracy: number;
  loss: number;
}

export interface LossPoint {
  step: number;
  loss: number;
  /** With `measureOvershoot`: fraction of the window's steps after which their own batch's loss was higher. */
  overshoot?: number;
}

export interface TrainRun {
  lr: number;
  batchSize: number;
  /** Steps completed (fewer than asked when the run diverged). */
  steps: number;
  /** Mean training loss over each window, at the window's last step. */
  train: LossPoint[];
  test: TestPoint[];
  /** Loss of the first batch, before any update. */
  initialLoss: number;
  /** Mean batch loss over the last 10% of the steps (NaN when diverged). */
  finalLoss: number;
  /** With `measureOvershoot`: fraction of all steps whose update raised their own batch's loss. */
  overshoot: number | null;
  /** The loss became NaN or infinite. */
  diverged: boolean;
  divergedAt: number | null;
  seconds: number;
}

export async function trainNetwork(options: TrainRunOptions): Promise<TrainRun> {
  const { model, train, test, lr, steps, batchSize, seed, progress, onStep, onEval, measureOvershoot = false, progressPerStep = 1 } = options;
  const logEvery = options.logEvery ?? Math.max(1, Math.floor(steps / 200));
  const evalSteps = new Set(options.evalSteps ?? []);
  const stepper = new Stepper(model, train, { lr, batchSize, seed });
  const run: TrainRun = { lr, batchSize, steps: 0, train: [], test: [], initialLoss: NaN, finalLoss: NaN, overshoot: null, diverged: false, divergedAt: null, seconds: 0 };
  const tailStart = steps - Math.max(1, Math.floor(steps / 10));
  let tailSum = 0;
  let windowSum = 0;
  let windowRises = 0;
  let windowCount = 0;
  let rises = 0;
  const t0 = Date.now();
  for (let step = 1; step <= steps; step++) {
    const loss = stepper.next();
    if (step === 1) run.initialLoss = loss;
    if (!Number.isFinite(loss)) {
      run.diverged = true;
      run.divergedAt = step;
      break;
    }
    if (measureOvershoot && stepper.lossAfterStep() > loss) {
      windowRises++;
      rises++;
    }
    if (step > tailStart) tailSum += loss;
    windowSum += loss;
    windowCount++;
    if (windowCount === logEvery || step === steps) {
      run.train.push({ step, loss: windowSum / windowCount, ...(measureOvershoot ? { overshoot: windowRises / windowCount } : {}) });
      windowSum = windowRises = windowCount = 0;
    }
    run.steps = step;
    onStep?.(step, loss, stepper);
    if (evalSteps.has(step)) {
      if (test) {
        const r = evaluate(model, test, { inputShape: INPUT_SHAPE });
        run.test.push({ step, accuracy: r.accuracy, loss: r.loss });
      }
      onEval?.(step);
    }
    await progress?.tick(progressPerStep);
  }
  if (!run.diverged) run.finalLoss = tailSum / (steps - tailStart);
  if (measureOvershoot && run.steps > 0) run.overshoot = rises / run.steps;
  if (progress) await progress.skipTo(progress.done + (steps - run.steps) * progressPerStep);
  run.seconds = (Date.now() - t0) / 1000;
  return run;
}

/**
 * Evaluation steps: every `every` steps up to `steps` (the last step included), plus any `extra` steps.
 * Not step 0: a batch-norm network has no running statistics before its first step.
 */
export function everyNSteps(steps: number, every: number, extra: readonly number[] = []): number[] {
  const out = new Set<number>([steps]);
  for (let s = every; s <= steps; s += every) out.add(s);
  for (const s of extra) if (s > 0 && s <= steps) out.add(s);
  return [...out].sort((a, b) => a - b);
}
