/**
 * Batch normalization (Ioffe & Szegedy, 2015) for (B, C), (B, C, L) and (B, C, H, W) inputs.
 *
 * Shape legend: B = batch, C = channels (numFeatures), L = values per channel and sample (1, length, or
 * H·W). Statistics are per channel over the M = B·L values of that channel.
 *
 * Forward, training:  mean = Σx/M,  var = Σ(x - mean)²/M (biased),  invStd = 1/√(var + eps),
 *                     xhat = (x - mean)·invStd,  y = gamma·xhat + beta.
 * Forward, eval:      the same with the running estimates in place of mean and var.
 *
 * Momentum, the one convention used everywhere in bnlab (PyTorch's):
 *     running = (1 - momentum)·running + momentum·batchStatistic
 * so momentum = 0.1 gives the newest batch 10% weight. Keras/TensorFlow write the same average as
 *     running = momentumKeras·running + (1 - momentumKeras)·batchStatistic,  i.e. momentumKeras = 1 - momentum
 * (Keras's 0.99 is our 0.01). `momentum: null` is the cumulative average: momentum_t = 1/t.
 * The running variance averages the unbiased batch variance var·M/(M-1); normalization uses the biased one.
 *
 * Bias correction (`biasCorrection: true`, the default): the running averages start at 0, and an EWA
 * that starts at 0 underestimates by the factor 1 - (1 - momentum)^t after t updates, so eval divides by
 * it: mean = runningMean / (1 - (1-momentum)^t), the same for var; t = num_batches_tracked.
 * With `biasCorrection: false` behaviour is exactly PyTorch's: runningMean starts at 0, runningVar at 1,
 * and both are used as they are.
 *
 * Backward (training; the statistics depend on x). With dxhat = dy·gamma, differentiating through
 * mean and var gives dx = invStd/M · (M·dxhat - Σdxhat - xhat·Σ(dxhat·xhat)), and
 * dGamma = Σ dy·xhat, dBeta = Σ dy. In eval mode the statistics are constants: dx = dy·gamma·invStd.
 * Full derivation: docs/batchnorm.md.
 */
import type { Kernels } from '../kernels/index.js';
import { Tensor, shapeToString } from '../tensor/tensor.js';
import { Module, checkBackward, makeParameter, moveParameter, moveTensor, reuse, type Parameter } from './module.js';
import { warnOnce } from './warnings.js';

export interface BatchNormOptions {
  /** Added to the variance inside the square root. Default 1e-5. */
  eps?: number;
  /** Weight of the newest batch in the running averages (PyTorch's convention; see above). Default 0.1; null = cumulative average. */
  momentum?: number | null;
  /** Learn gamma and beta. Default true. */
  affine?: boolean;
  /** Keep running statistics for eval mode; without them eval normalizes with batch statistics. Default true. */
  trackRunningStats?: boolean;
  /** Start the running averages at 0 and divide by 1 - (1-momentum)^t when using them. Default true. */
  biasCorrection?: boolean;
}

/** Convert a Keras/TensorFlow BatchNormalization momentum (e.g. 0.99) to bnlab's (0.01). */
export function momentumFromKeras(kerasMomentum: number): number {
  if (!(kerasMomentum >= 0 && kerasMomentum < 1)) throw new Error(`Keras momentum must be in [0, 1), got ${kerasMomentum}`);
  return 1 - kerasMomentum;
}

/** Shared by BatchNorm1d and BatchNorm2d, which differ only in the input shapes they accept. */
export abstract class BatchNormBase extends Module {
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  readonly biasCorrection: boolean;
  weight: Parameter | null; // gamma
  bias: Parameter | null; // beta
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  /** Shape [] (one value): the number of batches averaged into the running statistics, t. */
  numBatchesTrackedTensor: Tensor | null;

  // Per-channel work buffers [C], allocated once.
  private mean: Float32Array;
  private variance: Float32Array;
  private invStd: Float32Array; // kept for the backward: dx scales by it
  private cache: { xhat: Tensor; usedBatchStats: boolean } | null = null; // xhat kept instead of recomputing (x - mean)·invStd
  private xhat: Tensor | null = null;
  private y: Tensor | null = null;
  private dx: Tensor | null = null;

  constructor(readonly numFeatures: number, options: BatchNormOptions = {}) {
    super();
    if (!Number.isInteger(numFeatures) || numFeatures < 1) throw new Error(`${this.constructor.name}: numFeatures must be a positive integer, got ${numFeatures}`);
    this.eps = options.eps ?? 1e-5;
    if (!(this.eps > 0) || !Number.isFinite(this.eps)) throw new Error(`${this.constructor.name}: eps must be a positive number, got ${this.eps}`);
    this.momentum = options.momentum === undefined ? 0.1 : options.momentum;
    if (this.momentum !== null && !(this.momentum > 0 && this.momentum <= 1)) {
      throw new Error(`${this.constructor.name}: momentum must be in (0, 1] or null (cumulative average), got ${this.momentum}. bnlab uses PyTorch's convention (weight of the new batch); Keras's momentum m is 1 - m here.`);
    }
    if (this.momentum !== null && this.momentum >= 0.9) {
      warnOnce(`keras-momentum-${this.momentum}`, `BatchNorm momentum ${this.momentum} gives each new batch ${Math.round(this.momentum * 100)}% of the weight in the running averages. bnlab uses PyTorch's convention: if you meant Keras's momentum=${this.momentum}, pass ${+(1 - this.momentum).toFixed(6)} (= 1 - ${this.momentum}) or momentumFromKeras(${this.momentum}).`);
    }
    this.affine = options.affine ?? true;
    this.trackRunningStats = options.trackRunningStats ?? true;
    this.biasCorrection = options.biasCorrection ?? true;
    const k = this.kernels;
    this.weight = this.affine ? makeParameter(Tensor.full([numFeatures], 1), k) : null;
    this.bias = this.affine ? makeParameter(Tensor.zeros([numFeatures]), k) : null;
    if (this.trackRunningStats) {
      this.runningMean = new Tensor([numFeatures], k.allocate(numFeatures));
      this.runningVar = new Tensor([numFeatures], k.allocate(numFeatures));
      this.numBatchesTrackedTensor = new Tensor([], k.allocate(1));
      this.resetRunningStats();
    } else {
      this.runningMean = this.runningVar = this.numBatchesTrackedTensor = null;
    }
    this.mean = k.allocate(numFeatures);
    this.variance = k.allocate(numFeatures);
    this.invStd = k.allocate(numFeatures);
  }

  /** Input shape to [B, C, L]; throws with the expected and actual shape. */
  protected abstract viewAs3d(shape: readonly number[]): [number, number, number];

  get numBatchesTracked(): number {
    return this.numBatchesTrackedTensor ? this.numBatchesTrackedTensor.data[0] : 0;
  }

  /** Running averages back to their initial values: mean 0, var 1 (0 with bias correction), t = 0. */
  resetRunningStats(): void {
    if (!this.runningMean || !this.runningVar || !this.numBatchesTrackedTensor) return;
    this.runningMean.data.fill(0);
    this.runningVar.data.fill(this.biasCorrection ? 0 : 1);
    this.numBatchesTrackedTensor.data[0] = 0;
  }

  /** The factor 1 - (1 - momentum)^t that un-biases a zero-started EWA (1 when it does not apply). */
  biasCorrectionFactor(): number {
    const t = this.numBatchesTracked;
    if (!this.biasCorrection || this.momentum === null || t === 0) return 1;
    return 1 - Math.pow(1 - this.momentum, t);
  }

  /**
   * The mean and variance eval mode normalizes with: the running averages, bias-corrected when enabled.
   * Before any update they are PyTorch's initial values (mean 0, var 1).
   */
  inferenceStatistics(): { mean: Float32Array; variance: Float32Array } {
    const mean = new Float32Array(this.numFeatures);
    const variance = new Float32Array(this.numFeatures);
    this.writeInferenceStatistics(mean, variance);
    return { mean, variance };
  }

  private writeInferenceStatistics(mean: Float32Array, variance: Float32Array): void {
    if (!this.runningMean || !this.runningVar) throw new Error(`${this.describe()}: no running statistics (trackRunningStats is false)`);
    if (this.numBatchesTracked === 0 && this.biasCorrection) {
      mean.fill(0);
      variance.fill(1);
      return;
    }
    const inv = 1 / this.biasCorrectionFactor();
    for (let c = 0; c < this.numFeatures; c++) {
      mean[c] = this.runningMean.data[c] * inv;
      variance[c] = this.runningVar.data[c] * inv;
    }
  }

  outputShape(inputShape: readonly number[]): number[] {
    this.viewAs3d(inputShape);
    return [...inputShape];
  }

  forward(x: Tensor): Tensor {
    const [batch, channels, inner] = this.viewAs3d(x.shape);
    const count = batch * inner;
    const k = this.kernels;
    const useBatchStats = this.training || !this.trackRunningStats;
    this.y = reuse(this.y, x.shape, k);
    this.xhat = reuse(this.xhat, x.shape, k);
    if (useBatchStats) {
      if (this.training && count < 2) throw this.singleValueError(x.shape);
      k.channelMoments(x.data, this.mean, this.variance, batch, channels, inner);
      if (this.training && this.trackRunningStats) this.updateRunningStats(count);
    } else {
      if (this.numBatchesTracked === 0) {
        warnOnce(`bn-never-updated-${this.path}-${this.uid}`, `${this.describe()}${this.where()} is in eval mode but its running statistics were never updated (num_batches_tracked = 0), so it normalizes with mean 0 and variance 1. Train in train() mode first, load trained statistics, or call recomputeBatchNormStats.`);
      }
      this.writeInferenceStatistics(this.mean, this.variance);
    }
    for (let c = 0; c < channels; c++) this.invStd[c] = 1 / Math.sqrt(this.variance[c] + this.eps);
    k.batchNormApply(x.data, this.mean, this.invStd, this.weight?.value.data ?? null, this.bias?.value.data ?? null, this.y.data, this.xhat.data, batch, channels, inner);
    this.cache = { xhat: this.xhat, usedBatchStats: useBatchStats };
    return this.y;
  }

  backward(dy: Tensor): Tensor {
    checkBackward(this, this.y, dy);
    const [batch, channels, inner] = this.viewAs3d(dy.shape);
    const { xhat, usedBatchStats } = this.cache!;
    this.dx = reuse(this.dx, dy.shape, this.kernels);
    const gamma = this.weight?.value.data ?? null;
    const dGamma = this.weight?.grad.data ?? null;
    const dBeta = this.bias?.grad.data ?? null;
    const backward = usedBatchStats ? this.kernels.batchNormBackward : this.kernels.batchNormBackwardFixedStats;
    backward.call(this.kernels, dy.data, xhat.data, this.invStd, gamma, this.dx.data, dGamma, dBeta, batch, channels, inner);
    return this.dx;
  }

  /** running = (1 - m)·running + m·stat, with m = momentum, or 1/t for the cumulative average. */
  private updateRunningStats(count: number): void {
    const t = ++this.numBatchesTrackedTensor!.data[0];
    const m = this.momentum ?? 1 / t;
    const unbias = count / (count - 1);
    const rm = this.runningMean!.data;
    const rv = this.runningVar!.data;
    for (let c = 0; c < this.numFeatures; c++) {
      rm[c] = (1 - m) * rm[c] + m * this.mean[c];
      rv[c] = (1 - m) * rv[c] + m * this.variance[c] * unbias;
    }
  }

  private singleValueError(shape: readonly number[]): Error {
    return new Error(
      `${this.describe()}${this.where()}: training needs more than one value per channel to compute batch statistics, got input shape ${shapeToString(shape)} (1 value per channel). ` +
        'Fixes: drop the short last batch (DataLoader dropLast: true, the default for models with batch norm); call model.eval() to predict single examples with the running statistics; or train with a batch of at least 2.',
    );
  }

  protected where(): string {
    return this.path ? ` (layer "${this.path}")` : '';
  }

  private static nextUid = 0;
  private readonly uid = BatchNormBase.nextUid++;

  override namedOwnParameters(): Array<[string, Parameter]> {
    return this.weight && this.bias ? [['weight', this.weight], ['bias', this.bias]] : [];
  }

  override namedOwnBuffers(): Array<[string, Tensor]> {
    if (!this.runningMean || !this.runningVar || !this.numBatchesTrackedTensor) return [];
    return [['running_mean', this.runningMean], ['running_var', this.runningVar], ['num_batches_tracked', this.numBatchesTrackedTensor]];
  }

  protected override releaseBuffers(): void {
    this.y = this.xhat = this.dx = null;
    this.cache = null;
  }

  protected override moveTo(kernels: Kernels): void {
    super.moveTo(kernels);
    if (this.weight) this.weight = moveParameter(this.weight, kernels);
    if (this.bias) this.bias = moveParameter(this.bias, kernels);
    if (this.runningMean) this.runningMean = moveTensor(this.runningMean, kernels);
    if (this.runningVar) this.runningVar = moveTensor(this.runningVar, kernels);
    if (this.numBatchesTrackedTensor) this.numBatchesTrackedTensor = moveTensor(this.numBatchesTrackedTensor, kernels);
    for (const name of ['mean', 'variance', 'invStd'] as const) {
      const moved = kernels.allocate(this.numFeatures);
      moved.set(this[name]);
      this[name] = moved;
    }
  }

  override describe(): string {
    const opts = [`eps=${this.eps}`, `momentum=${this.momentum}`];
    if (!this.affine) opts.push('affine=false');
    if (!this.trackRunningStats) opts.push('trackRunningStats=false');
    if (!this.biasCorrection) opts.push('biasCorrection=false');
    return `${this.typeName}(${this.numFeatures}, ${opts.join(', ')})`;
  }

  override config(): Record<string, unknown> {
    return { numFeatures: this.numFeatures, eps: this.eps, momentum: this.momentum, affine: this.affine, trackRunningStats: this.trackRunningStats, biasCorrection: this.biasCorrection };
  }
}

/** Batch norm over (B, C) or (B, C, L) input: statistics per channel C. */
export class BatchNorm1d extends BatchNormBase {
  readonly typeName = 'BatchNorm1d';

  protected viewAs3d(shape: readonly number[]): [number, number, number] {
    if (shape.length !== 2 && shape.length !== 3) {
      throw new Error(`${this.describe()}${this.where()}: expected 2D (B, C) or 3D (B, C, L) input, got ${shape.length}D input of shape ${shapeToString(shape)}`);
    }
    if (shape[1] !== this.numFeatures) {
      throw new Error(`${this.describe()}${this.where()}: expected ${this.numFeatures} channels (input [B, ${this.numFeatures}] or [B, ${this.numFeatures}, L]), got input shape ${shapeToString(shape)}. numFeatures must equal the previous layer's output size.`);
    }
    return [shape[0], shape[1], shape.length === 3 ? shape[2] : 1];
  }
}

/** Batch norm over (B, C, H, W) input: statistics per channel C over B, H and W. */
export class BatchNorm2d extends BatchNormBase {
  readonly typeName = 'BatchNorm2d';

  protected viewAs3d(shape: readonly number[]): [number, number, number] {
    if (shape.length !== 4) {
      throw new Error(`${this.describe()}${this.where()}: expected 4D (B, C, H, W) input, got ${shape.length}D input of shape ${shapeToString(shape)}`);
    }
    if (shape[1] !== this.numFeatures) {
      throw new Error(`${this.describe()}${this.where()}: expected ${this.numFeatures} channels (input [B, ${this.numFeatures}, H, W]), got input shape ${shapeToString(shape)}. numFeatures must equal the previous layer's output channels.`);
    }
    return [shape[0], shape[1], shape[2] * shape[3]];
  }
}
