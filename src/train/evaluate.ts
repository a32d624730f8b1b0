/**
 * Evaluation over a whole dataset in eval mode (running statistics, no dropout); the model's previous
 * mode is restored afterwards, so evaluating in the middle of training cannot leave it in eval mode.
 */
import { DataLoader } from '../data/loader.js';
import type { Dataset } from '../data/dataset.js';
import { CrossEntropyLoss, argmax } from '../nn/loss.js';
import { BatchNormBase } from '../nn/batchnorm.js';
import type { Module } from '../nn/module.js';

export interface EvalResult {
  loss: number;
  accuracy: number;
  count: number;
}

export interface EvaluateOptions {
  batchSize?: number;
  /** Shape of one sample as the model expects it (e.g. [784] for an MLP fed 28x28 images). */
  inputShape?: readonly number[];
  /** Evaluate in train mode (batch statistics) instead; used to show what batch statistics do at test time. */
  useBatchStatistics?: boolean;
}

export function evaluate(model: Module, dataset: Dataset, options: EvaluateOptions = {}): EvalResult {
  return new Evaluator(dataset, options).run(model);
}

/**
 * `evaluate` on one dataset, again and again (a test set every N steps): the loader's batch buffers and
 * the loss's are made once, so repeated evaluations allocate nothing new.
 */
export class Evaluator {
  private readonly loader: DataLoader;
  private readonly loss = new CrossEntropyLoss();

  constructor(readonly dataset: Dataset, readonly options: EvaluateOptions = {}) {
    this.loader = new DataLoader(dataset, { batchSize: Math.min(options.batchSize ?? 1000, dataset.count), shuffle: false });
  }

  run(model: Module): EvalResult {
    const { dataset, options, loss } = this;
    const wasTraining = model.training;
    const modules = [...model.modules()];
    const modes = modules.map((m) => m.training);
    // Batch statistics at test time must not leak test data into the running averages: those layers
    // normalize with batch statistics but leave their averages alone ('batch-frozen'), then go back.
    const batchNorms = modules.filter((m): m is BatchNormBase => m instanceof BatchNormBase);
    const statistics = batchNorms.map((b) => b.statistics);
    model.train(false);
    if (options.useBatchStatistics) for (const b of batchNorms) b.statistics = 'batch-frozen';
    let total = 0;
    let correct = 0;
    try {
      for (const batch of this.loader.epochBatches()) {
        const b = batch.labels.length;
        const x = options.inputShape ? batch.x.reshape([b, ...options.inputShape]) : batch.x;
        const logits = model.forward(x);
        total += loss.forward(logits, batch.labels) * b;
        const predicted = argmax(logits);
        for (let i = 0; i < b; i++) if (predicted[i] === batch.labels[i]) correct++;
      }
    } finally {
      // Restore each module's own flag (a frozen layer may have been in eval on purpose).
      modules.forEach((m, i) => (m.training = modes[i]));
      batchNorms.forEach((b, i) => (b.statistics = statistics[i]));
      model.training = wasTraining;
    }
    return { loss: total / dataset.count, accuracy: correct / dataset.count, count: dataset.count };
  }
}
