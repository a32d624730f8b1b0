/**
 * Freezing batch norm for fine-tuning, and the model-level check for Dropout right before batch norm.
 * What each combination of train/eval mode, `statistics` and frozen gamma/beta does: docs/batchnorm-modes.md.
 */
import { BatchNormBase } from './batchnorm.js';
import { Dropout } from './dropout.js';
import type { Module } from './module.js';
import { warnOnce } from './warnings.js';

export interface FreezeBatchNormOptions {
  /**
   * Freeze the running statistics. true or 'running' (the default): normalize with them in train mode
   * too, as Keras's frozen BN (`trainable = False`) does, so the layer is a fixed affine map; 'batch':
   * keep normalizing with batch statistics but never update the averages ('batch-frozen'); false: leave as is.
   */
  statistics?: boolean | 'running' | 'batch';
  /** Freeze gamma and beta (`trainable: false`). Default true. */
  affine?: boolean;
}

/**
 * Freeze every batch-norm layer in `model` (statistics and/or gamma/beta) while the rest keeps training.
 * Returns the layers changed. `freezeBatchNorm(model)` is Keras's `bn.trainable = False`.
 */
export function freezeBatchNorm(model: Module, options: FreezeBatchNormOptions = {}): BatchNormBase[] {
  const statistics = options.statistics ?? true;
  const affine = options.affine ?? true;
  const layers = batchNormLayers(model);
  for (const layer of layers) {
    if (statistics !== false && layer.trackRunningStats) layer.statistics = statistics === 'batch' ? 'batch-frozen' : 'running';
    if (affine) layer.freezeAffine = true;
  }
  return layers;
}

export interface UnfreezeBatchNormOptions {
  /** Give the running statistics back to train/eval mode (`statistics = 'auto'`). Default true. */
  statistics?: boolean;
  /** Make gamma and beta trainable again. Default true. */
  affine?: boolean;
}

/** Undo `freezeBatchNorm`: statistics back to 'auto', gamma/beta trainable. Returns the layers changed. */
export function unfreezeBatchNorm(model: Module, options: UnfreezeBatchNormOptions = {}): BatchNormBase[] {
  const layers = batchNormLayers(model);
  for (const layer of layers) {
    if (options.statistics ?? true) layer.statistics = 'auto';
    if (options.affine ?? true) layer.freezeAffine = false;
  }
  return layers;
}

/** Every batch-norm layer in the model, depth first. */
export function batchNormLayers(model: Module): BatchNormBase[] {
  return [...model.modules()].filter((m): m is BatchNormBase => m instanceof BatchNormBase);
}

/**
 * Warn (once per pair of layers) when a Dropout layer feeds a batch-norm layer directly: dropout scales
 * the variance of its output differently in train and eval mode, so the running variance learned in
 * training does not fit eval-mode inputs ("variance shift", Li et al. 2019). Returns the pairs found.
 */
export function checkDropoutBeforeBatchNorm(layers: readonly Module[]): Array<[Dropout, BatchNormBase]> {
  const pairs: Array<[Dropout, BatchNormBase]> = [];
  for (let i = 0; i + 1 < layers.length; i++) {
    const [a, b] = [layers[i], layers[i + 1]];
    if (!(a instanceof Dropout) || !(b instanceof BatchNormBase) || a.p === 0) continue;
    pairs.push([a, b]);
    const at = (m: Module, index: number) => (m.path ? `layer "${m.path}"` : `layer ${index}`);
    warnOnce(
      `dropout-before-bn-${a.path || i}-${b.path || i + 1}`,
      `Dropout(p=${a.p}) (${at(a, i)}) feeds ${b.typeName} (${at(b, i + 1)}) directly: in training dropout changes the variance the batch norm sees, in eval it does not, so the running variance will not fit eval-mode inputs (variance shift, Li et al. 2019). ` +
        'Fixes: put Dropout after the last batch-norm layer, or recompute the statistics with dropout off after training (recomputeBatchNormStats).',
    );
  }
  return pairs;
}
