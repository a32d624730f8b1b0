/**
 * Evaluation over a whole dataset in eval mode (running statistics, no dropout); the model's previous
 * mode is restored afterwards, so evaluating in the middle of training cannot leave it in eval mode.
 */
import { DataLoader } from '../data/loader.js';
import type { Dataset } from '../data/dataset.js';
import { CrossEntropyLoss, argmax } from '../nn/loss.js';
import { BatchNormBase } from '../nn/batchnorm.js';
import { disposedError, type Module } from '../nn/module.js';

export interface EvalResult {
  loss: number;
  accuracy: number;
  count: number;
  /** With `predictions: true`: the predicted class of each sample, in dataset order. */
  predicted?: Int32Array;
}

export interface EvaluateOptions {
  batchSize?: number;
  /** The loader and loss of an earlier evaluation of the same dataset (an Evaluator's), reused instead of made anew. */
  buffers?: EvaluationBuffers;
  /** Shape of one sample as the model expects it (e.g. [784] for an MLP fed 28x28 images). */
  inputShape?: readonly number[];
  /** Evaluate in train mode (batch statistics) instead; used to show what batch statistics do at test time. */
  useBatchStatistics?: boolean;
  /** Also return each sample's predicted class (for a confusion matrix, src/train/metrics.ts). */
  predictions?: boolean;
}

/** What repeated evaluations of one dataset can share: the loader's batch buffers and the loss's. */
export interface EvaluationBuffers {
  loader: DataLoader;
  loss: CrossEntropyLoss;
}

/**
 * `evaluate` on one dataset again and again (a test set every N steps) without new buffers each time:
 * on the wasm backend, buffers dropped by every evaluation would wait for the garbage collector.
 */
export class Evaluator {
  private readonly buffers: EvaluationBuffers;

  constructor(readonly dataset: Dataset, readonly options: Omit<EvaluateOptions, 'buffers'> = {}) {
    this.buffers = { loader: new DataLoader(dataset, { batchSize: Math.min(options.batchSize ?? 1000, dataset.count), shuffle: false }), loss: new CrossEntropyLoss() };
  }

  run(model: Module): EvalResult {
    return evaluate(model, this.dataset, { ...this.options, buffers: this.buffers });
  }

  /** Give its batch and loss buffers back to the backend; it must not run afterwards. */
  dispose(): void {
    this.buffers.loader.dispose();
    this.buffers.loss.dispose();
  }
}

/**
 * Loss and accuracy of `model` on `dataset` in eval mode (see the file's comment); with
 * `predictions: true` also every sample's predicted class, for `confusionMatrix`.
 */
export function evaluate(model: Module, dataset: Dataset, options: EvaluateOptions & { predictions: true }): EvalResult & { predicted: Int32Array };
export function evaluate(model: Module, dataset: Dataset, options?: EvaluateOptions): EvalResult;
export function evaluate(model: Module, dataset: Dataset, options: EvaluateOptions = {}): EvalResult {
  if (model.disposed) throw disposedError(model, 'evaluate it');
  checkModelTakes(model, dataset, options.inputShape, 'evaluate');
  const wasTraining = model.training;
  const modules = [...model.modules()];
  const modes = modules.map((m) => m.training);
  // Batch statistics at test time must not leak test data into the running averages: those layers
  // normalize with batch statistics but leave their averages alone ('batch-frozen'), then go back.
  const batchNorms = modules.filter((m): m is BatchNormBase => m instanceof BatchNormBase);
  const statistics = batchNorms.map((b) => b.statistics);
  model.train(false);
  if (options.useBatchStatistics) for (const b of batchNorms) b.statistics = 'batch-frozen';
  if (options.buffers && options.buffers.loader.dataset !== dataset) throw new Error('evaluate: options.buffers belong to another dataset');
  const loss = options.buffers?.loss ?? new CrossEntropyLoss();
  const loader = options.buffers?.loader ?? new DataLoader(dataset, { batchSize: Math.min(options.batchSize ?? 1000, dataset.count), shuffle: false });
  let total = 0;
  let correct = 0;
  let seen = 0;
  const predictedAll = options.predictions ? new Int32Array(dataset.count) : undefined;
  try {
    for (const batch of loader.epochBatches()) {
      const b = batch.labels.length;
      const x = options.inputShape ? batch.x.reshape([b, ...options.inputShape]) : batch.x;
      const logits = model.forward(x);
      total += loss.forward(logits, batch.labels) * b;
      const predicted = argmax(logits);
      for (let i = 0; i < b; i++) if (predicted[i] === batch.labels[i]) correct++;
      predictedAll?.set(predicted, seen);
      seen += b;
    }
  } finally {
    // Restore each module's own flag (a frozen layer may have been in eval on purpose).
    modules.forEach((m, i) => (m.training = modes[i]));
    batchNorms.forEach((b, i) => (b.statistics = statistics[i]));
    model.training = wasTraining;
    // A loader and loss made for this call only: their buffers go back to the backend (a caller's Evaluator keeps its own).
    if (!options.buffers) {
      loader.dispose();
      loss.dispose();
    }
  }
  return { loss: total / dataset.count, accuracy: correct / dataset.count, count: dataset.count, ...(predictedAll ? { predicted: predictedAll } : {}) };
}

/**
 * A model that takes the dataset's samples only flattened (an MLP given images) fails at its first layer
 * with both shapes but not the fix; name the option that reshapes them. `to` names the receiver of the
 * option in the message ('the Trainer'). Any other misfit is left to the first forward, which names the layer.
 */
export function checkModelTakes(model: Module, dataset: Dataset, inputShape: readonly number[] | undefined, to: string): void {
  const sample = dataset.sampleShape;
  if (inputShape || sample.length === 1) return;
  try {
    model.outputShape([1, ...sample]);
    return;
  } catch {
    // checked flattened below
  }
  const size = sample.reduce((a, b) => a * b, 1);
  try {
    model.outputShape([1, size]);
  } catch {
    return;
  }
  throw new Error(`The model takes flat samples of ${size} values, but dataset "${dataset.name}" has samples of shape [${sample.join(', ')}]: give ${to} inputShape: [${size}], which reshapes each sample to it`);
}
