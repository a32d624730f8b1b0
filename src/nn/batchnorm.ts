/**
 * Batch normalization (Ioffe & Szegedy, 2015) for (B, C), (B, C, L) and (B, C, H, W) inputs, with its
 * variants: explicit statistics modes (freezing), ghost batches and Batch Renormalization.
 *
 * Shape legend: B = batch, C = channels (numFeatures), L = values per channel and sample (1, length, or
 * H·W), G = ghost batches per batch (1 unless `virtualBatchSize`), V = B/G samples per ghost batch.
 * Statistics are per channel over the M = V·L values of that channel in one ghost batch.
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
 * Statistics modes (`statistics`; the full table is docs/batchnorm-modes.md): 'auto' follows the module
 * mode (train: batch statistics and running averages updated; eval: running statistics); 'batch-update',
 * 'batch-frozen' (batch statistics, running averages left alone) and 'running' hold in both modes.
 *
 * Ghost batches (`virtualBatchSize` V): each of the G = B/V sub-batches is normalized with its own
 * statistics; the running averages get one update per batch, with the mean over ghost batches of their
 * means and unbiased variances (as Keras's `virtual_batch_size` does).
 *
 * Batch Renormalization (`renorm`, Ioffe 2017): in training xhat = (x - mean)·invStd·r + d with
 * r = clip(σ_B/σ, 1/rMax, rMax) and d = clip((mean - μ)/σ, -dMax, dMax) against the running estimates
 * μ, σ = √(var + eps) before this batch's update; r and d are constants for the backward.
 *
 * Where the statistics come from: one strategy object per way (`LOCAL_STATISTICS`, `GHOST_STATISTICS`,
 * `SynchronizedStatistics`, `SynchronizedGhostStatistics`, at the end of this file) fills each group's
 * mean and variance; then every way goes through the same steps: invStd, the one running-average update
 * (`runningAverageStep`), renorm on top, normalize. Data-parallel training combines with ghost batches
 * and renorm. The table and the derivations: docs/batchnorm.md.
 *
 * Backward (training; the statistics depend on x). With dxhat = dy·gamma, differentiating through
 * mean and var gives dx = invStd/M · (M·dxhat - Σdxhat - xhat·Σ(dxhat·xhat)), and
 * dGamma = Σ dy·xhat, dBeta = Σ dy. In eval mode the statistics are constants: dx = dy·gamma·invStd.
 * Renorm: the same with gamma·r in place of gamma, and dGamma = r·Σ dy·xhat_B + d·Σ dy.
 * Full derivation: docs/batchnorm.md.
 */
import type { Kernels } from '../kernels/index.js';
import { Tensor, shapeToString } from '../tensor/tensor.js';
import { Module, checkBackward, makeParameter, moveParameter, moveTensor, reuse, type Parameter } from './module.js';
import type { MaxPool2d } from './pool.js';
import { warnOnce } from './warnings.js';

/**
 * Which statistics a batch-norm layer normalizes with, and whether its running averages change:
 * - 'auto': train mode → 'batch-update', eval mode → 'running' (PyTorch's behaviour; the default);
 * - 'batch-update': batch statistics, running averages updated, in either mode;
 * - 'batch-frozen': batch statistics, running averages never change;
 * - 'running': the running statistics, which never change (Keras's frozen BN, `trainable = False`).
 */
export type BatchNormStatistics = 'auto' | 'batch-update' | 'batch-frozen' | 'running';

export const BATCH_NORM_STATISTICS: readonly BatchNormStatistics[] = Object.freeze(['auto', 'batch-update', 'batch-frozen', 'running']);

/**
 * Batch Renormalization limits and their warm-up (Ioffe 2017, section 4: "rmax = 1, dmax = 0 for the
 * first 5k steps, after which we gradually relaxed them to reach rmax = 3 and dmax = 5 at 40k and 25k
 * steps"). Steps count the layer's running-average updates ('batch-update' forwards).
 */
export interface RenormOptions {
  /** Limit of r = σ_B/σ, clipped to [1/rMax, rMax]; at least 1 (1 = no correction of the scale). */
  rMax: number;
  /** Limit of d = (μ_B - μ)/σ, clipped to [-dMax, dMax]; at least 0 (0 = no correction of the shift). */
  dMax: number;
  /** Steps with rMax = 1, dMax = 0 (plain batch norm) before the limits start to relax. Default 0. */
  relaxFrom?: number;
  /** Step at which rMax reaches its target, rising linearly from 1 at `relaxFrom`. Default `relaxFrom`. */
  rMaxAt?: number;
  /** Step at which dMax reaches its target, rising linearly from 0 at `relaxFrom`. Default `relaxFrom`. */
  dMaxAt?: number;
}

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
  /** Statistics mode (see `BatchNormStatistics`). Default 'auto'. */
  statistics?: BatchNormStatistics;
  /** Ghost batch norm: normalize each sub-batch of this many samples with its own statistics. Default null (the whole batch). */
  virtualBatchSize?: number | null;
  /** Batch Renormalization limits; null (the default) is plain batch norm. Needs running statistics. */
  renorm?: RenormOptions | null;
}

/** Convert a Keras/TensorFlow BatchNormalization momentum (e.g. 0.99) to bnlab's (0.01). */
export function momentumFromKeras(kerasMomentum: number): number {
  if (!(kerasMomentum >= 0 && kerasMomentum < 1)) throw new Error(`Keras momentum must be in [0, 1), got ${kerasMomentum}`);
  return 1 - kerasMomentum;
}

/**
 * The other shards of a synchronized batch norm (data-parallel training, src/parallel): replicas of one
 * layer on several threads, each with a slice of the batch, that normalize with the statistics of the
 * whole batch — as PyTorch's SyncBatchNorm does across processes.
 */
export interface BatchNormSync {
  /** This replica's place in the group; replica 0 alone updates the (shared) running statistics. */
  readonly rank: number;
  readonly size: number;
  /**
   * Every replica's `local` vector (the same length on all of them), in rank order. Blocks until all
   * have contributed; the views stay valid until the exchange after next.
   */
  exchange(local: Float64Array): readonly Float64Array[];
}

/** Largest integer a Float32 num_batches_tracked holds exactly. */
const MAX_EXACT_STEPS = 2 ** 24;

/**
 * Shared by BatchNorm1d and BatchNorm2d, which differ only in the input shapes they accept.
 *
 * Batch Renormalization is an option of this base rather than BatchRenorm1d/2d classes: it changes
 * only how the training forward normalizes, so as an option it works with both input shapes, ghost
 * batches and the statistics modes without a class per combination (Keras does the same, `renorm=True`).
 */
export abstract class BatchNormBase extends Module {
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  readonly biasCorrection: boolean;
  readonly virtualBatchSize: number | null;
  readonly renorm: Readonly<Required<RenormOptions>> | null;
  weight: Parameter | null; // gamma
  bias: Parameter | null; // beta
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  /** Shape [] (one value): the number of batches averaged into the running statistics, t. */
  numBatchesTrackedTensor: Tensor | null;
  /** Shape [] (one value), only with `renorm`: the step of the rMax/dMax warm-up, saved so a resumed run continues it. */
  renormStepsTensor: Tensor | null;
  private statisticsMode: BatchNormStatistics = 'auto';
  /**
   * Set while the layer trains as one replica of several (data-parallel, src/parallel): its batch
   * statistics (and, over the whole batch, the two sums of its backward) are then those of every
   * replica's shard together.
   */
  sync: BatchNormSync | null = null;
  private syncStrategy: (BatchStatistics & { readonly sync: BatchNormSync; readonly ghost: boolean }) | null = null; // made once per group
  /** Work buffers of the training forward and backward (see `StatisticsWork`). */
  private work: StatisticsWork;
  private hasBatchStatistics = false;
  /** After a forward: the unbiasing factor `lastBatchStatistics` still has to fold with (0: done). */
  private foldPending = 0;
  private foldedLast = false; // the running averages took in work.foldMean/foldVariance, not row 0
  private foldMean: Float64Array; // lastBatchStatistics (float64: precise BN averages them over many batches)
  private foldVar: Float64Array;
  private cache: { mode: 'batch-update' | 'batch-frozen' | 'running'; groups: number; renorm: boolean; acrossThreads: boolean } | null = null;
  private xhat: Tensor | null = null; // kept instead of recomputing (x - mean)·invStd in the backward
  private y: Tensor | null = null;
  // During forwardThenReluPool: the pooling that takes the normalized values, and its output.
  private poolTarget: MaxPool2d | null = null;
  private pooled: Tensor | null = null;
  private dx: Tensor | null = null;

  constructor(readonly numFeatures: number, options: BatchNormOptions = {}) {
    super();
    const name = this.constructor.name;
    if (!Number.isInteger(numFeatures) || numFeatures < 1) throw new Error(`${name}: numFeatures must be a positive integer, got ${numFeatures}`);
    this.eps = options.eps ?? 1e-5;
    if (!(this.eps > 0) || !Number.isFinite(this.eps)) throw new Error(`${name}: eps must be a positive number, got ${this.eps}`);
    this.momentum = options.momentum === undefined ? 0.1 : options.momentum;
    if (this.momentum !== null && !(this.momentum > 0 && this.momentum <= 1)) {
      throw new Error(`${name}: momentum must be in (0, 1] or null (cumulative average), got ${this.momentum}. bnlab uses PyTorch's convention (weight of the new batch); Keras's momentum m is 1 - m here.`);
    }
    if (this.momentum !== null && this.momentum >= 0.9) {
      warnOnce(`keras-momentum-${this.momentum}`, `BatchNorm momentum ${this.momentum} gives each new batch ${Math.round(this.momentum * 100)}% of the weight in the running averages. bnlab uses PyTorch's convention: if you meant Keras's momentum=${this.momentum}, pass ${+(1 - this.momentum).toFixed(6)} (= 1 - ${this.momentum}) or momentumFromKeras(${this.momentum}).`);
    }
    this.affine = options.affine ?? true;
    this.trackRunningStats = options.trackRunningStats ?? true;
    this.biasCorrection = options.biasCorrection ?? true;
    this.virtualBatchSize = options.virtualBatchSize ?? null;
    if (this.virtualBatchSize !== null && !(Number.isInteger(this.virtualBatchSize) && this.virtualBatchSize >= 1)) {
      throw new Error(`${name}: virtualBatchSize must be a positive integer that divides the batch size (or null for the whole batch), got ${JSON.stringify(options.virtualBatchSize)}`);
    }
    this.renorm = options.renorm ? renormSettings(name, options.renorm) : null;
    if (this.renorm && !this.trackRunningStats) throw new Error(`${name}: renorm corrects batch statistics towards the running ones, so it needs trackRunningStats: true`);
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
    this.renormStepsTensor = this.renorm ? new Tensor([], k.allocate(1)) : null;
    this.work = new StatisticsWork(numFeatures, k);
    this.foldMean = new Float64Array(numFeatures);
    this.foldVar = new Float64Array(numFeatures);
    if (options.statistics !== undefined) this.statistics = options.statistics;
  }

  /** Input shape to [B, C, L]; throws with the expected and actual shape. */
  protected abstract viewAs3d(shape: readonly number[]): [number, number, number];

  get numBatchesTracked(): number {
    return this.numBatchesTrackedTensor ? this.numBatchesTrackedTensor.data[0] : 0;
  }

  /** Running-average updates so far that count towards the renorm warm-up (0 without renorm). */
  get renormSteps(): number {
    return this.renormStepsTensor ? this.renormStepsTensor.data[0] : 0;
  }

  /** The statistics mode set on this layer ('auto' follows train/eval). See `BatchNormStatistics`. */
  get statistics(): BatchNormStatistics {
    return this.statisticsMode;
  }

  set statistics(mode: BatchNormStatistics) {
    if (!BATCH_NORM_STATISTICS.includes(mode)) {
      throw new Error(`${this.describe()}${this.where()}: statistics must be one of ${BATCH_NORM_STATISTICS.map((s) => `'${s}'`).join(', ')}, got ${JSON.stringify(mode)}`);
    }
    if (!this.trackRunningStats && (mode === 'batch-update' || mode === 'running')) {
      throw new Error(`${this.describe()}${this.where()}: statistics '${mode}' needs running statistics, but the layer was built with trackRunningStats: false. Use 'auto' or 'batch-frozen', or build it with trackRunningStats: true.`);
    }
    this.statisticsMode = mode;
  }

  /** What the next forward does: `statistics` resolved against the train/eval mode. */
  get activeStatistics(): 'batch-update' | 'batch-frozen' | 'running' {
    if (this.statisticsMode !== 'auto') return this.statisticsMode;
    if (!this.trackRunningStats) return 'batch-frozen';
    return this.training ? 'batch-update' : 'running';
  }

  /**
   * True when the running averages cannot change ('batch-frozen' or 'running'). Setting it to true
   * selects 'running' (Keras's frozen BN: a fixed affine map, the same in train and eval mode) unless
   * the layer is already 'batch-frozen'; false goes back to 'auto'. No effect without running statistics.
   */
  get freezeStatistics(): boolean {
    return this.statisticsMode === 'batch-frozen' || this.statisticsMode === 'running';
  }

  set freezeStatistics(frozen: boolean) {
    if (!this.trackRunningStats) return;
    if (!frozen) this.statistics = 'auto';
    else if (!this.freezeStatistics) this.statistics = 'running';
  }

  /** True when gamma and beta are frozen (`trainable: false`: no gradient, the optimizers skip them). */
  get freezeAffine(): boolean {
    return this.weight !== null && !this.weight.trainable;
  }

  set freezeAffine(frozen: boolean) {
    if (this.weight) this.weight.trainable = !frozen;
    if (this.bias) this.bias.trainable = !frozen;
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
      mean.fill(0, 0, this.numFeatures);
      variance.fill(1, 0, this.numFeatures);
      return;
    }
    const inv = 1 / this.biasCorrectionFactor();
    for (let c = 0; c < this.numFeatures; c++) {
      mean[c] = this.runningMean.data[c] * inv;
      variance[c] = this.runningVar.data[c] * inv;
    }
  }

  /**
   * Replace the running averages by estimates that are already unbiased (e.g. population statistics,
   * see `recomputeBatchNormStats`), so that eval mode normalizes with exactly these values.
   *
   * num_batches_tracked becomes `batches`, raised where needed until the bias-correction factor
   * 1 - (1-momentum)^t is exactly 1 in double precision (t = 356 for momentum 0.1), which is also true:
   * the values are no zero-started average, and further training continues the EWA from them. For a
   * momentum below about 2e-6 that t exceeds what the Float32 counter holds exactly; the values are
   * then stored multiplied by the factor, which eval divides out again (equal up to float32 rounding).
   */
  setRunningStatistics(mean: ArrayLike<number>, variance: ArrayLike<number>, batches: number): void {
    if (!this.runningMean || !this.runningVar || !this.numBatchesTrackedTensor) {
      throw new Error(`${this.describe()}${this.where()}: no running statistics to set (trackRunningStats is false)`);
    }
    const c = this.numFeatures;
    if (mean.length !== c || variance.length !== c) {
      throw new Error(`${this.describe()}${this.where()}: expected ${c} means and ${c} variances (one per channel), got ${mean.length} and ${variance.length}`);
    }
    for (let i = 0; i < c; i++) {
      if (!Number.isFinite(mean[i]) || !(variance[i] >= 0) || !Number.isFinite(variance[i])) {
        throw new Error(`${this.describe()}${this.where()}: channel ${i} has mean ${mean[i]} and variance ${variance[i]}; expected a finite mean and a finite variance >= 0`);
      }
    }
    if (!Number.isInteger(batches) || batches < 1) throw new Error(`${this.describe()}${this.where()}: batches must be a positive integer, got ${batches}`);
    let t = Math.min(batches, MAX_EXACT_STEPS);
    if (this.biasCorrection && this.momentum !== null) t = Math.max(t, Math.min(stepsUntilUnbiased(this.momentum), MAX_EXACT_STEPS));
    this.numBatchesTrackedTensor.data[0] = t;
    const f = this.biasCorrectionFactor();
    for (let i = 0; i < c; i++) {
      this.runningMean.data[i] = mean[i] * f;
      this.runningVar.data[i] = variance[i] * f;
    }
  }

  /**
   * The batch statistics of the last forward that used them, as they are (or would be, in
   * 'batch-frozen') folded into the running averages: per channel the mean and the unbiased variance,
   * averaged over ghost batches. Null after a forward with running statistics. Valid until the next forward.
   */
  lastBatchStatistics(): { mean: Float64Array; variance: Float64Array } | null {
    if (!this.hasBatchStatistics) return null;
    if (this.foldPending) {
      const w = this.work;
      const [mean, variance] = this.foldedLast ? [w.foldMean, w.foldVariance] : [w.mean, w.variance];
      for (let c = 0; c < this.numFeatures; c++) {
        this.foldMean[c] = mean[c];
        this.foldVar[c] = variance[c] * this.foldPending;
      }
      this.foldPending = 0;
    }
    return { mean: this.foldMean, variance: this.foldVar };
  }

  /** The renorm limits at a warm-up step (default: the current one); rMax = 1, dMax = 0 before `relaxFrom`. */
  renormLimits(step = this.renormSteps): { rMax: number; dMax: number } {
    if (!this.renorm) return { rMax: 1, dMax: 0 };
    const { rMax, dMax, relaxFrom, rMaxAt, dMaxAt } = this.renorm;
    return { rMax: ramp(step, relaxFrom, rMaxAt, 1, rMax), dMax: ramp(step, relaxFrom, dMaxAt, 0, dMax) };
  }

  outputShape(inputShape: readonly number[]): number[] {
    this.viewAs3d(inputShape);
    return [...inputShape];
  }

  forward(x: Tensor): Tensor {
    const [batch, channels, inner] = this.viewAs3d(x.shape);
    const k = this.kernels;
    const w = this.work;
    const mode = this.activeStatistics;
    this.y = reuse(this.y, x.shape, k);
    this.xhat = reuse(this.xhat, x.shape, k);
    const gamma = this.weight?.value.data ?? null;
    const beta = this.bias?.value.data ?? null;
    if (mode === 'running') {
      if (this.numBatchesTracked === 0) {
        warnOnce(`bn-never-updated-${this.path}-${this.uid}`, `${this.describe()}${this.where()} normalizes with its running statistics but they were never updated (num_batches_tracked = 0), so it uses mean 0 and variance 1. Train in train() mode first, load trained statistics, or call recomputeBatchNormStats.`);
      }
      this.writeInferenceStatistics(w.mean, w.variance);
      k.batchNormStatistics(w.mean, w.variance, w.invStd, this.eps, null, null, 0, 1, this.numFeatures);
      k.batchNormApply(x.data, w.mean, w.invStd, gamma, beta, this.y.data, this.xhat.data, batch, channels, inner);
      this.hasBatchStatistics = false;
      this.cache = { mode, groups: 1, renorm: false, acrossThreads: false };
      return this.y;
    }
    const strategy = this.batchStatistics();
    const groups = this.ghostBatches(batch, inner, x.shape);
    w.ensureGroups(groups);
    const renorm = this.renorm !== null;
    // Renorm corrects towards the running estimates as they were before this batch. Read them before the
    // statistics are exchanged: after the exchange replica 0 may already be updating them.
    const limits = this.renormLimits();
    if (renorm) this.writeInferenceStatistics(w.runMean, w.runVar);
    const layout = strategy.compute(x.data, batch, channels, inner, groups, w, k);
    if (layout.count < 2) throw this.singleValueError(x.shape);
    this.settle(layout, mode === 'batch-update' && strategy.writesRunningAverages);
    if (renorm) this.renormCorrections(groups, gamma, beta, limits);
    const span = layout.rows * channels * inner; // values per ghost batch: the batch is the outer dimension, so each is a contiguous slice
    if (this.poolTarget && groups === 1 && !renorm) {
      this.pooled = this.poolTarget.forwardAfterBatchNormRelu(x, w.row(w.mean, 0), w.row(w.invStd, 0), gamma, beta, this.y.data, this.xhat.data);
    } else for (let g = 0; g < groups; g++) {
      k.batchNormApply(
        slice(x.data, g, span, groups),
        w.row(w.mean, g),
        w.row(w.invStd, g),
        renorm ? w.row(w.scale, g) : gamma,
        renorm ? w.row(w.shift, g) : beta,
        slice(this.y.data, g, span, groups),
        slice(this.xhat.data, g, span, groups),
        layout.rows,
        channels,
        inner,
      );
    }
    w.count = layout.count;
    this.cache = { mode, groups, renorm, acrossThreads: strategy.acrossThreads };
    return this.y;
  }

  /**
   * This layer's forward in training followed by a ReLU and `pool` (2×2 max pooling), the normalization,
   * the ReLU and the pooling in one pass over x (Sequential's fusion): returns the pooling's output,
   * whose backward is `pool.backwardAfterRelu`, after which this layer's backward runs as usual. Returns
   * null, having done nothing, where the pass does not apply (running statistics, ghost batches,
   * renorm, or sides the kernel does not take): then run forward() and the other two layers. This
   * layer's own output is not written.
   */
  forwardThenReluPool(x: Tensor, pool: MaxPool2d): Tensor | null {
    if (x.shape.length !== 4 || this.activeStatistics === 'running' || this.virtualBatchSize !== null || this.renorm !== null || !pool.fusesBatchNormRelu(x.shape)) return null;
    this.poolTarget = pool;
    this.pooled = null;
    try {
      this.forward(x);
    } finally {
      this.poolTarget = null;
    }
    return this.pooled;
  }

  backward(dy: Tensor): Tensor {
    checkBackward(this, this.y, dy);
    const [batch, channels, inner] = this.viewAs3d(dy.shape);
    const { mode, groups, renorm, acrossThreads } = this.cache!;
    const k = this.kernels;
    const w = this.work;
    const dx = (this.dx = reuse(this.dx, dy.shape, k));
    const xhat = this.xhat!.data;
    const gamma = this.weight?.value.data ?? null;
    // Frozen gamma/beta (trainable: false) get no gradient, like PyTorch parameters with requires_grad off.
    const dGamma = this.weight?.trainable ? this.weight.grad.data : null;
    const dBeta = this.bias?.trainable ? this.bias.grad.data : null;
    if (mode === 'running') {
      k.batchNormBackwardFixedStats(dy.data, xhat, w.invStd, gamma, dx.data, dGamma, dBeta, batch, channels, inner);
      return dx;
    }
    if (acrossThreads) return this.backwardSynchronized(dy, dx, renorm ? w.scale : gamma, dGamma, dBeta, batch, channels, inner, renorm);
    const rows = batch / groups;
    const span = rows * channels * inner;
    for (let g = 0; g < groups; g++) {
      const dyG = slice(dy.data, g, span, groups);
      const xhatG = slice(xhat, g, span, groups);
      const dxG = slice(dx.data, g, span, groups);
      if (!renorm) {
        k.batchNormBackward(dyG, xhatG, w.row(w.invStd, g), gamma, dxG, dGamma, dBeta, rows, channels, inner);
        continue;
      }
      // y = (gamma·r)·xhat_B + (gamma·d + beta) with r, d constants: batch norm's backward with gamma·r
      // for gamma gives dx, and Σdy·xhat_B, Σdy give dGamma = r·Σdy·xhat_B + d·Σdy, dBeta = Σdy.
      w.sumDyXhat.fill(0);
      w.sumDy.fill(0);
      k.batchNormBackward(dyG, xhatG, w.row(w.invStd, g), w.row(w.scale, g), dxG, w.sumDyXhat, w.sumDy, rows, channels, inner);
      this.addRenormParameterGradients(w.row(w.r, g), w.row(w.d, g), dGamma, dBeta);
    }
    return dx;
  }

  /**
   * The backward of one replica when the statistics are the whole batch's (across threads): Σdy and
   * Σdy·xhat of its shard go to every replica; dx uses their totals, while gamma and beta get only this
   * shard's sums — summing the replicas' parameter gradients afterwards (as data-parallel training does
   * for every layer) makes them whole. With renorm `gamma` is gamma·r, and dGamma = r·Σdy·xhat_B + d·Σdy.
   */
  private backwardSynchronized(dy: Tensor, dx: Tensor, gamma: Float32Array | null, dGamma: Float32Array | null, dBeta: Float32Array | null, batch: number, channels: number, inner: number, renorm: boolean): Tensor {
    const k = this.kernels;
    const w = this.work;
    k.batchNormBackwardReduce(dy.data, this.xhat!.data, w.sumDy, w.sumDyXhat, batch, channels, inner);
    this.addSumsToParameters(dGamma, dBeta, renorm);
    this.exchangeSums();
    k.batchNormBackwardInput(dy.data, this.xhat!.data, w.invStd, gamma, w.totalDy, w.totalDyXhat, w.count, dx.data, batch, channels, inner);
    return dx;
  }

  /**
   * The backward of forwardThenReluPool: dy is the gradient of the pooling's output (`pool`, the layer
   * this forward ran fused with), and the result the gradient of this layer's input. The gradient at
   * this layer's output is dy at each window's winner that passed the ReLU and 0 at the other three
   * positions, so its sums run over the pooled gradients and dx comes out of one pass over xhat
   * (kernels batchNormReluMaxPool2x2BackwardReduce/Input), without the pooling's and the ReLU's own
   * backward writing that gradient out first. The same dx as those three backwards, up to the order
   * in which the sums add up.
   */
  backwardThroughReluPool(dy: Tensor, pool: MaxPool2d): Tensor {
    const xhat = this.xhat;
    if (!xhat || !this.cache || this.cache.mode === 'running' || this.cache.groups !== 1 || this.cache.renorm) {
      throw new Error(`${this.describe()}${this.where()}: backwardThroughReluPool needs a forwardThenReluPool before it`);
    }
    const { out, argmax, xhatMax } = pool.batchNormReluWindows(dy);
    const [batch, channels, height, width] = xhat.shape;
    const k = this.kernels;
    const w = this.work;
    const dx = (this.dx = reuse(this.dx, xhat.shape, k));
    const gamma = this.weight?.value.data ?? null;
    const dGamma = this.weight?.trainable ? this.weight.grad.data : null;
    const dBeta = this.bias?.trainable ? this.bias.grad.data : null;
    k.batchNormReluMaxPool2x2BackwardReduce(dy.data, out, xhatMax, w.sumDy, w.sumDyXhat, batch, channels, height, width);
    this.addSumsToParameters(dGamma, dBeta, false);
    let sumDy = w.sumDy;
    let sumDyXhat = w.sumDyXhat;
    if (this.cache.acrossThreads) {
      this.exchangeSums();
      sumDy = w.totalDy;
      sumDyXhat = w.totalDyXhat;
    }
    k.batchNormReluMaxPool2x2BackwardInput(dy.data, out, argmax, xhat.data, w.invStd, gamma, sumDy, sumDyXhat, w.count, dx.data, batch, channels, height, width);
    return dx;
  }

  /** dGamma += Σdy·xhat and dBeta += Σdy from work.sumDyXhat and work.sumDy (with renorm: addRenormParameterGradients). */
  private addSumsToParameters(dGamma: Float32Array | null, dBeta: Float32Array | null, renorm: boolean): void {
    const w = this.work;
    if (renorm) return this.addRenormParameterGradients(w.r, w.d, dGamma, dBeta);
    for (let c = 0; c < this.numFeatures; c++) {
      if (dGamma) dGamma[c] += w.sumDyXhat[c];
      if (dBeta) dBeta[c] += w.sumDy[c];
    }
  }

  /** This shard's Σdy and Σdy·xhat (work.sumDy, work.sumDyXhat) to every replica, and the whole batch's into work.totalDy, work.totalDyXhat. */
  private exchangeSums(): void {
    const C = this.numFeatures;
    const w = this.work;
    const local = w.exchangeBuffer;
    for (let c = 0; c < C; c++) {
      local[c] = w.sumDy[c];
      local[C + c] = w.sumDyXhat[c];
    }
    const shards = this.sync!.exchange(local.subarray(0, 2 * C));
    for (let c = 0; c < C; c++) {
      let a = 0;
      let b = 0;
      for (const s of shards) {
        a += s[c];
        b += s[C + c];
      }
      w.totalDy[c] = a;
      w.totalDyXhat[c] = b;
    }
  }

  /** dGamma += r·Σdy·xhat_B + d·Σdy and dBeta += Σdy, from the sums in work.sumDyXhat and work.sumDy. */
  private addRenormParameterGradients(r: Float32Array, d: Float32Array, dGamma: Float32Array | null, dBeta: Float32Array | null): void {
    const w = this.work;
    for (let c = 0; c < this.numFeatures; c++) {
      if (dGamma) dGamma[c] += r[c] * w.sumDyXhat[c] + d[c] * w.sumDy[c];
      if (dBeta) dBeta[c] += w.sumDy[c];
    }
  }

  /** The way this forward computes its batch statistics: on this thread or across threads, one batch or ghost batches. */
  private batchStatistics(): BatchStatistics {
    const ghost = this.virtualBatchSize !== null;
    if (!this.sync) return ghost ? GHOST_STATISTICS : LOCAL_STATISTICS;
    if (this.syncStrategy?.sync !== this.sync || this.syncStrategy.ghost !== ghost) this.syncStrategy = ghost ? new SynchronizedGhostStatistics(this.sync) : new SynchronizedStatistics(this.sync);
    return this.syncStrategy;
  }

  /**
   * Ghost batches in a batch of `batch` samples: B / virtualBatchSize, checked (1 without ghost
   * batches). In data-parallel training `batch` is this thread's shard, and ghost batches stay within it.
   */
  private ghostBatches(batch: number, inner: number, shape: readonly number[]): number {
    const v = this.virtualBatchSize;
    if (v === null) {
      if (!this.sync && batch * inner < 2) throw this.singleValueError(shape);
      return 1;
    }
    if (batch % v === 0 && v * inner >= 2) return batch / v;
    const valid: number[] = [];
    for (let s = 1; s <= batch; s++) if (batch % s === 0 && s * inner >= 2) valid.push(s);
    const validText = valid.length ? `Valid virtual batch sizes for a batch of ${batch}: ${valid.join(', ')}` : `No virtual batch size works for a batch of ${batch} with ${inner} value(s) per sample and channel`;
    const shard = this.sync ? ` (this thread's share of a data-parallel batch split across ${this.sync.size} threads: ghost batches stay within a thread, so each share must be a multiple of ${v})` : '';
    const problem = batch % v !== 0
      ? `virtualBatchSize ${v} does not divide the batch size ${batch}${shard} (input shape ${shapeToString(shape)})`
      : `virtualBatchSize ${v} leaves ${v * inner} value per channel in each ghost batch (input shape ${shapeToString(shape)}, batch size ${batch}); batch statistics need at least 2`;
    throw new Error(`${this.describe()}${this.where()}: ${problem}. ${validText}. Fix: choose one of those, or a batch size that is a multiple of ${v}${this.sync ? ` times ${this.sync.size}` : ''} (and drop the short last batch: DataLoader dropLast: true).`);
  }

  /**
   * r = clip(σ_B/σ, 1/rMax, rMax), d = clip((μ_B - μ)/σ, -dMax, dMax) per ghost batch and channel,
   * against the running estimates before this batch's update (work.runMean/runVar; σ = √(var + eps), as
   * eval normalizes: unclipped, training then computes exactly eval's (x - μ)/σ). Writes scale = gamma·r,
   * shift = gamma·d + beta.
   */
  private renormCorrections(groups: number, gamma: Float32Array | null, beta: Float32Array | null, limits: { rMax: number; dMax: number }): void {
    const { rMax, dMax } = limits;
    const w = this.work;
    const C = this.numFeatures;
    for (let c = 0; c < C; c++) {
      const sigma = Math.sqrt(w.runVar[c] + this.eps);
      const gm = gamma ? gamma[c] : 1;
      const bt = beta ? beta[c] : 0;
      for (let g = 0; g < groups; g++) {
        const i = g * C + c;
        const r = clamp(Math.sqrt(w.variance[i] + this.eps) / sigma, 1 / rMax, rMax);
        const d = clamp((w.mean[i] - w.runMean[c]) / sigma, -dMax, dMax);
        w.r[i] = r;
        w.d[i] = d;
        w.scale[i] = gm * r;
        w.shift[i] = gm * d + bt;
      }
    }
  }

  /**
   * invStd of every ghost batch, and what the running averages take in: row 0 itself for one batch
   * (invStd and the update in one kernel call), else the fold the strategy wrote.
   */
  private settle(layout: GroupLayout, update: boolean): void {
    const w = this.work;
    const unbias = layout.count / (layout.count - 1);
    if (!layout.folded) this.runningAverageStep(w.mean, w.variance, w.invStd, unbias, update);
    else {
      for (let g = 0; g < layout.groups; g++) this.kernels.batchNormStatistics(w.row(w.mean, g), w.row(w.variance, g), w.row(w.invStd, g), this.eps, null, null, 0, unbias, this.numFeatures);
      this.runningAverageStep(w.foldMean, w.foldVariance, w.foldInvStd, unbias, update);
    }
    this.foldedLast = layout.folded;
    this.foldPending = unbias;
    this.hasBatchStatistics = true;
  }

  /**
   * invStd = 1/√(variance + eps) of the statistics `mean`, `variance` (biased) and, with `update`, the
   * one running-average update every way of computing batch statistics goes through: t += 1, then with
   * m = momentum (1/t for the cumulative average)
   *     runningMean = (1 - m)·runningMean + m·mean,   runningVar = (1 - m)·runningVar + m·variance·unbias.
   * One kernel call (a JavaScript loop over typed arrays in shared memory is about 2x slower than over
   * ordinary ones: 8 µs for 1024 channels).
   */
  private runningAverageStep(mean: Float32Array, variance: Float32Array, invStd: Float32Array, unbias: number, update: boolean): void {
    let m = 0;
    if (update) {
      const t = ++this.numBatchesTrackedTensor!.data[0];
      if (this.renormStepsTensor) this.renormStepsTensor.data[0]++;
      m = this.momentum ?? 1 / t;
    }
    this.kernels.batchNormStatistics(mean, variance, invStd, this.eps, update ? this.runningMean!.data : null, update ? this.runningVar!.data : null, m, unbias, this.numFeatures);
  }

  private singleValueError(shape: readonly number[]): Error {
    const problem = `${this.describe()}${this.where()}: batch statistics need more than one value per channel, got input shape ${shapeToString(shape)} (1 value per channel). `;
    // Advice that fits the layer: eval mode only helps a layer that has running statistics to use.
    if (!this.training && !this.trackRunningStats) {
      return new Error(problem + 'The layer was built with trackRunningStats: false, so it has no running statistics and normalizes every batch with its own, in eval mode too (as PyTorch does). Fixes: give it at least 2 examples at a time, or build it with trackRunningStats: true to predict single examples.');
    }
    if (!this.training) {
      return new Error(problem + `The layer is in eval mode but set to statistics '${this.statisticsMode}'. Fixes: give it at least 2 examples at a time, or set statistics to 'auto' (or 'running') to predict single examples with the running statistics.`);
    }
    return new Error(
      problem + 'Fixes: drop the short last batch (the Trainer does so for models with batch norm; a DataLoader built directly needs dropLast: true); call model.eval() to predict single examples with the running statistics; or train with a batch of at least 2.',
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
    const buffers: Array<[string, Tensor]> = [['running_mean', this.runningMean], ['running_var', this.runningVar], ['num_batches_tracked', this.numBatchesTrackedTensor]];
    if (this.renormStepsTensor) buffers.push(['renorm_steps', this.renormStepsTensor]);
    return buffers;
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
    if (this.renormStepsTensor) this.renormStepsTensor = moveTensor(this.renormStepsTensor, kernels);
    this.work.moveTo(kernels);
  }

  protected override disposeOwned(): void {
    this.work.release();
  }

  override describe(): string {
    const opts = [`eps=${this.eps}`, `momentum=${this.momentum}`];
    if (!this.affine) opts.push('affine=false');
    if (!this.trackRunningStats) opts.push('trackRunningStats=false');
    if (!this.biasCorrection) opts.push('biasCorrection=false');
    if (this.virtualBatchSize !== null) opts.push(`virtualBatchSize=${this.virtualBatchSize}`);
    if (this.renorm) opts.push(`renorm(rMax=${this.renorm.rMax}, dMax=${this.renorm.dMax})`);
    if (this.statisticsMode !== 'auto') opts.push(`statistics=${this.statisticsMode}`);
    return `${this.typeName}(${this.numFeatures}, ${opts.join(', ')})`;
  }

  override config(): Record<string, unknown> {
    const config: Record<string, unknown> = { numFeatures: this.numFeatures, eps: this.eps, momentum: this.momentum, affine: this.affine, trackRunningStats: this.trackRunningStats, biasCorrection: this.biasCorrection };
    if (this.virtualBatchSize !== null) config.virtualBatchSize = this.virtualBatchSize;
    if (this.renorm) config.renorm = { ...this.renorm };
    if (this.statisticsMode !== 'auto') config.statistics = this.statisticsMode;
    return config;
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

/** Slice g of G equal contiguous slices of `span` values (the array itself when G = 1). */
function slice(a: Float32Array, g: number, span: number, groups: number): Float32Array {
  return groups === 1 ? a : a.subarray(g * span, (g + 1) * span);
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(Math.max(v, lo), hi);
}

/** `from` before step `start`, `to` from step `end` on, linear in between. */
function ramp(step: number, start: number, end: number, from: number, to: number): number {
  if (step < start) return from;
  if (step >= end) return to;
  return from + ((to - from) * (step - start)) / (end - start);
}

/** Smallest t with 1 - (1 - momentum)^t exactly 1 in double precision. */
function stepsUntilUnbiased(momentum: number): number {
  if (momentum >= 1) return 1;
  let t = Math.max(1, Math.ceil(Math.log(2 ** -54) / Math.log1p(-momentum)) - 2);
  if (t > MAX_EXACT_STEPS) return t; // the caller caps it anyway
  while (1 - Math.pow(1 - momentum, t) !== 1) t++;
  return t;
}

function renormSettings(layer: string, o: RenormOptions): Required<RenormOptions> {
  if (typeof o !== 'object') throw new Error(`${layer}: renorm must be { rMax, dMax } (plus optional relaxFrom, rMaxAt, dMaxAt), got ${JSON.stringify(o)}`);
  const { rMax, dMax } = o;
  if (typeof rMax !== 'number' || !Number.isFinite(rMax) || rMax < 1) {
    throw new Error(`${layer}: renorm rMax must be a finite number >= 1 (r is clipped to [1/rMax, rMax]; rMax = 1 turns the scale correction off), got ${JSON.stringify(rMax)}`);
  }
  if (typeof dMax !== 'number' || !Number.isFinite(dMax) || dMax < 0) {
    throw new Error(`${layer}: renorm dMax must be a finite number >= 0 (d is clipped to [-dMax, dMax]; dMax = 0 turns the shift correction off), got ${JSON.stringify(dMax)}`);
  }
  const relaxFrom = o.relaxFrom ?? 0;
  const rMaxAt = o.rMaxAt ?? relaxFrom;
  const dMaxAt = o.dMaxAt ?? relaxFrom;
  for (const [name, v] of [['relaxFrom', relaxFrom], ['rMaxAt', rMaxAt], ['dMaxAt', dMaxAt]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${layer}: renorm ${name} must be a step count (an integer >= 0), got ${JSON.stringify(v)}`);
  }
  if (rMaxAt < relaxFrom || dMaxAt < relaxFrom) {
    throw new Error(`${layer}: renorm rMaxAt (${rMaxAt}) and dMaxAt (${dMaxAt}) must not come before relaxFrom (${relaxFrom}): the limits start relaxing at relaxFrom and reach their targets at those steps`);
  }
  return { rMax, dMax, relaxFrom, rMaxAt, dMaxAt };
}

/**
 * Work buffers of one layer's training forward and backward. Rows [G, C] hold one ghost batch each
 * (G = 1 without ghost batches) and grow when a batch has more ghost batches than before; [C] buffers
 * hold what the running averages take in, renorm's running estimates, and the backward's sums.
 */
class StatisticsWork {
  mean: Float32Array;
  variance: Float32Array; // biased
  invStd: Float32Array; // kept for the backward: dx scales by it
  r: Float32Array; // renorm corrections, kept for dGamma = r·Σdy·xhat_B + d·Σdy
  d: Float32Array;
  scale: Float32Array; // gamma·r and gamma·d + beta: renorm as a plain affine map of xhat_B
  shift: Float32Array;
  /** With several ghost batches (or across threads): per channel the mean over them of their means and biased variances. */
  foldMean: Float32Array;
  foldVariance: Float32Array;
  foldInvStd: Float32Array; // the kernel's by-product for the fold, unused
  runMean: Float32Array; // renorm: running estimates before this batch's update
  runVar: Float32Array;
  sumDy: Float32Array; // the backward's Σdy and Σdy·xhat of this (ghost) batch or shard
  sumDyXhat: Float32Array;
  totalDy: Float32Array; // across threads: the whole batch's
  totalDyXhat: Float32Array;
  /** What this replica sends in an exchange: [count, mean[C], var[C]], [G, Σmean[C], Σvar[C]] or [Σdy[C], Σdy·xhat[C]]. */
  readonly exchangeBuffer: Float64Array;
  /** Values per channel in each ghost batch (the whole synchronized batch across threads) of the last forward. */
  count = 0;
  private capacity = 1;

  constructor(readonly channels: number, private kernels: Kernels) {
    const k = kernels;
    const C = channels;
    this.mean = k.allocate(C);
    this.variance = k.allocate(C);
    this.invStd = k.allocate(C);
    this.r = k.allocate(C);
    this.d = k.allocate(C);
    this.scale = k.allocate(C);
    this.shift = k.allocate(C);
    this.foldMean = k.allocate(C);
    this.foldVariance = k.allocate(C);
    this.foldInvStd = k.allocate(C);
    this.runMean = k.allocate(C);
    this.runVar = k.allocate(C);
    this.sumDy = k.allocate(C);
    this.sumDyXhat = k.allocate(C);
    this.totalDy = k.allocate(C);
    this.totalDyXhat = k.allocate(C);
    this.exchangeBuffer = new Float64Array(1 + 2 * C);
  }

  /** Row g of a [G, C] buffer (the buffer itself for g = 0: no view allocated in the common case). */
  row(a: Float32Array, g: number): Float32Array {
    return g === 0 ? a : a.subarray(g * this.channels, (g + 1) * this.channels);
  }

  ensureGroups(groups: number): void {
    if (groups <= this.capacity) return;
    const n = groups * this.channels;
    const k = this.kernels;
    this.mean = k.allocate(n);
    this.variance = k.allocate(n);
    this.invStd = k.allocate(n);
    this.r = k.allocate(n);
    this.d = k.allocate(n);
    this.scale = k.allocate(n);
    this.shift = k.allocate(n);
    this.capacity = groups;
  }

  /** The buffers in `kernels`' memory, with their contents. */
  private static readonly ARRAYS = ['mean', 'variance', 'invStd', 'r', 'd', 'scale', 'shift', 'foldMean', 'foldVariance', 'foldInvStd', 'runMean', 'runVar', 'sumDy', 'sumDyXhat', 'totalDy', 'totalDyXhat'] as const;

  /** Give every work array back to the backend (Module.dispose). */
  release(): void {
    for (const name of StatisticsWork.ARRAYS) this.kernels.release(this[name]);
  }

  moveTo(kernels: Kernels): void {
    this.kernels = kernels;
    for (const name of StatisticsWork.ARRAYS) {
      const moved = kernels.allocate(this[name].length);
      moved.set(this[name]);
      this[name] = moved;
    }
  }
}

/** How one training forward's statistics are laid out: G groups of `rows` samples, `count` values per channel in each. */
interface GroupLayout {
  groups: number;
  rows: number;
  count: number;
  /** The running averages take in work.foldMean/foldVariance (several groups, or groups across threads) rather than row 0. */
  folded: boolean;
}

/**
 * One way of computing the statistics of a training batch. `compute` writes each group's mean and
 * biased variance into the rows of work.mean/work.variance and, for a folded layout, the fold the running
 * averages take in; the layer then does the rest the same way for all (invStd, the one running-average
 * update, renorm on top, normalizing).
 */
interface BatchStatistics {
  /** The backward needs the sums of the whole batch across threads. */
  readonly acrossThreads: boolean;
  /** This replica writes the (shared) running averages: all but replicas 1.. of a synchronized group. */
  readonly writesRunningAverages: boolean;
  compute(x: Float32Array, batch: number, channels: number, inner: number, groups: number, work: StatisticsWork, k: Kernels): GroupLayout;
}

/** Per-channel moments of each of G contiguous groups of `rows` samples. */
function groupMoments(x: Float32Array, batch: number, channels: number, inner: number, groups: number, work: StatisticsWork, k: Kernels): number {
  const rows = batch / groups; // V
  const span = rows * channels * inner;
  for (let g = 0; g < groups; g++) k.channelMoments(slice(x, g, span, groups), work.row(work.mean, g), work.row(work.variance, g), rows, channels, inner);
  return rows;
}

/** work.foldMean/foldVariance = sums / groups, per channel. */
function writeFold(work: StatisticsWork, sumMean: ArrayLike<number>, sumVar: ArrayLike<number>, groups: number, offset = 0): void {
  for (let c = 0; c < work.channels; c++) {
    work.foldMean[c] = sumMean[offset + c] / groups;
    work.foldVariance[c] = sumVar[offset + c] / groups;
  }
}

/** The whole batch on this thread: plain batch norm. */
const LOCAL_STATISTICS: BatchStatistics = {
  acrossThreads: false,
  writesRunningAverages: true,
  compute(x, batch, channels, inner, _groups, work, k) {
    k.channelMoments(x, work.mean, work.variance, batch, channels, inner);
    return { groups: 1, rows: batch, count: batch * inner, folded: false };
  },
};

/**
 * Ghost batch norm: each of G groups of V samples normalized with its own statistics; the running
 * averages get one update per batch, with the mean over the groups of their means and unbiased
 * variances (as Keras's `virtual_batch_size` does).
 */
const GHOST_STATISTICS: BatchStatistics = {
  acrossThreads: false,
  writesRunningAverages: true,
  compute(x, batch, channels, inner, groups, work, k) {
    const rows = groupMoments(x, batch, channels, inner, groups, work, k);
    if (groups === 1) return { groups, rows, count: rows * inner, folded: false };
    const C = channels;
    const sumMean = new Float64Array(C);
    const sumVar = new Float64Array(C);
    for (let g = 0; g < groups; g++) {
      for (let c = 0; c < C; c++) {
        sumMean[c] += work.mean[g * C + c];
        sumVar[c] += work.variance[g * C + c];
      }
    }
    writeFold(work, sumMean, sumVar, groups);
    return { groups, rows, count: rows * inner, folded: true };
  },
};

/**
 * Synchronized batch norm over the whole batch (data-parallel training): each shard's count, mean and
 * variance go to every replica, and each combines them the same way, in rank order (Chan et al.'s
 * pairwise formula: M2 = Σ_r n_r·(var_r + (mean_r − mean)²)), so all normalize with bit-identical
 * statistics of the whole batch — as PyTorch's SyncBatchNorm does across processes.
 */
class SynchronizedStatistics implements BatchStatistics {
  readonly acrossThreads = true;
  readonly ghost = false;
  constructor(readonly sync: BatchNormSync) {}

  get writesRunningAverages(): boolean {
    // The running statistics live in memory all replicas share: one update per step, by replica 0.
    return this.sync.rank === 0;
  }

  compute(x: Float32Array, batch: number, channels: number, inner: number, _groups: number, work: StatisticsWork, k: Kernels): GroupLayout {
    const C = channels;
    const local = work.exchangeBuffer;
    k.channelMoments(x, work.mean, work.variance, batch, channels, inner);
    local[0] = batch * inner;
    for (let c = 0; c < C; c++) {
      local[1 + c] = work.mean[c];
      local[1 + C + c] = work.variance[c];
    }
    const shards = this.sync.exchange(local);
    let count = 0;
    for (const s of shards) count += s[0];
    if (count < 2) return { groups: 1, rows: batch, count, folded: false };
    for (let c = 0; c < C; c++) {
      let mean = 0;
      for (const s of shards) mean += s[0] * s[1 + c];
      mean /= count;
      let m2 = 0;
      for (const s of shards) {
        const d = s[1 + c] - mean;
        m2 += s[0] * (s[1 + C + c] + d * d);
      }
      work.mean[c] = mean;
      work.variance[c] = m2 / count;
    }
    return { groups: 1, rows: batch, count, folded: false };
  }
}

/**
 * Ghost batch norm in data-parallel training: ghost batches stay within each thread's shard (the
 * split keeps consecutive samples together, so they are the same groups as on one thread), and only
 * the running averages need the other replicas: the mean over every replica's groups.
 */
class SynchronizedGhostStatistics implements BatchStatistics {
  readonly acrossThreads = false;
  readonly ghost = true;
  constructor(readonly sync: BatchNormSync) {}

  get writesRunningAverages(): boolean {
    return this.sync.rank === 0;
  }

  compute(x: Float32Array, batch: number, channels: number, inner: number, groups: number, work: StatisticsWork, k: Kernels): GroupLayout {
    const C = channels;
    const rows = groupMoments(x, batch, channels, inner, groups, work, k);
    const local = work.exchangeBuffer;
    local.fill(0);
    local[0] = groups;
    for (let g = 0; g < groups; g++) {
      for (let c = 0; c < C; c++) {
        local[1 + c] += work.mean[g * C + c];
        local[1 + C + c] += work.variance[g * C + c];
      }
    }
    const shards = this.sync.exchange(local);
    const total = new Float64Array(1 + 2 * C);
    for (const s of shards) for (let i = 0; i < total.length; i++) total[i] += s[i];
    writeFold(work, total, total.subarray(C), total[0], 1);
    return { groups, rows, count: rows * inner, folded: true };
  }
}
