/**
 * Population statistics for batch norm ("precise BN", Wu & Johnson 2021; Detectron2/fvcore's
 * `update_bn_stats`): replace each layer's running averages, an EWA dominated by the last few hundred
 * batches of weights that kept changing, by the exact average over many batches with the weights fixed.
 *
 * Shape legend: C = channels of a batch-norm layer; N = batches averaged.
 * runningMean[c] = (1/N)·Σ_n mean_n[c],  runningVar[c] = (1/N)·Σ_n var_n[c]·M/(M-1) (unbiased, as fvcore),
 * every batch weighted equally; with ghost batches, mean_n and var_n are the ghost-batch averages the
 * layer folds into its running averages.
 */
import type { Tensor } from '../tensor/tensor.js';
import { BatchNormBase, type BatchNormStatistics } from './batchnorm.js';
import type { Module } from './module.js';

export interface RecomputeBatchNormStatsOptions {
  /** Use at most this many batches (fvcore's num_iters). Default: all of them. */
  maxBatches?: number;
  /** Recompute only the layers for which this returns true. Default: every layer with running statistics. */
  filter?: (layer: BatchNormBase) => boolean;
}

export interface RecomputeBatchNormStatsResult {
  /** Batches run through the model. */
  batches: number;
  /** The layers whose running statistics were replaced. */
  layers: BatchNormBase[];
}

/**
 * Run `batches` through `model` with the weights fixed and the model in eval mode (dropout off), every
 * selected batch-norm layer normalizing with batch statistics as in training, and set each layer's
 * running averages to the average over the batches of its batch means and unbiased variances. Eval mode
 * then normalizes with exactly these values (see `BatchNormBase.setRunningStatistics` for how
 * num_batches_tracked is set so bias correction leaves them as they are). Every module's train/eval mode
 * and every layer's `statistics` setting are restored afterwards, also when a forward throws.
 *
 * `batches` yields input tensors or objects with an `x` tensor (DataLoader batches).
 */
export function recomputeBatchNormStats(model: Module, batches: Iterable<Tensor | { x: Tensor }>, options: RecomputeBatchNormStatsOptions = {}): RecomputeBatchNormStatsResult {
  const maxBatches = options.maxBatches ?? Infinity;
  if (!(maxBatches >= 1) || (maxBatches !== Infinity && !Number.isInteger(maxBatches))) {
    throw new Error(`recomputeBatchNormStats: maxBatches must be a positive integer, got ${maxBatches}`);
  }
  const filter = options.filter ?? (() => true);
  const layers = [...model.modules()].filter((m): m is BatchNormBase => m instanceof BatchNormBase && m.trackRunningStats && filter(m));
  if (layers.length === 0) return { batches: 0, layers };

  const modes = new Map<Module, boolean>([...model.modules()].map((m) => [m, m.training]));
  const statistics = new Map<BatchNormBase, BatchNormStatistics>(layers.map((l) => [l, l.statistics]));
  const sums = layers.map((l) => ({ mean: new Float64Array(l.numFeatures), variance: new Float64Array(l.numFeatures) }));
  let count = 0;
  try {
    model.eval();
    for (const layer of layers) layer.statistics = 'batch-frozen';
    for (const item of batches) {
      if (count >= maxBatches) break;
      const x = 'data' in item ? item : item.x;
      model.forward(x);
      layers.forEach((layer, i) => {
        const stats = layer.lastBatchStatistics();
        if (!stats) throw new Error(`recomputeBatchNormStats: ${layer.describe()} (layer "${layer.path}") did not run on batch ${count}; every selected layer must be on the model's forward path`);
        for (let c = 0; c < layer.numFeatures; c++) {
          sums[i].mean[c] += stats.mean[c];
          sums[i].variance[c] += stats.variance[c];
        }
      });
      count++;
    }
  } finally {
    for (const [m, training] of modes) m.training = training;
    for (const [layer, s] of statistics) layer.statistics = s;
  }
  if (count === 0) throw new Error('recomputeBatchNormStats: got no batches; pass an iterable of input batches (e.g. a few hundred training batches)');
  layers.forEach((layer, i) => {
    for (let c = 0; c < layer.numFeatures; c++) {
      sums[i].mean[c] /= count;
      sums[i].variance[c] /= count;
    }
    layer.setRunningStatistics(sums[i].mean, sums[i].variance, count);
  });
  return { batches: count, layers };
}
