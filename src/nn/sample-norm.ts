/**
 * The shared base of LayerNorm and GroupNorm: normalization with statistics computed per sample, over
 * a contiguous block of its values, then a per-channel affine map. Nothing depends on the other samples
 * of the batch, so there are no running averages and train and eval mode compute the same thing.
 *
 * Shape legend: S = statistics rows (one per normalized block: B for LayerNorm over (B, D), B·G for
 * GroupNorm), D = values per row; the affine map sees the input as [AB, AC, AL] with one gamma/beta per AC.
 *
 * Forward:  mean = Σx/D,  var = Σ(x - mean)²/D (biased),  invStd = 1/√(var + eps),
 *           xhat = (x - mean)·invStd,  y = gamma[c]·xhat + beta[c].
 * Backward: dxhat = dy·gamma;  dx = invStd/D · (D·dxhat - Σdxhat - xhat·Σ(dxhat·xhat)) per row, the
 *           batch-norm backward with rows in place of channels; dGamma = Σ dy·xhat, dBeta = Σ dy.
 */
import type { Kernels } from '../kernels/index.js';
import { Tensor } from '../tensor/tensor.js';
import { Module, checkBackward, makeParameter, moveParameter, reuse, type Parameter } from './module.js';

/** How a module views an input: S rows of D values for the statistics, [AB, AC, AL] for the affine map. */
export interface SampleNormLayout {
  rows: number;
  rowSize: number;
  affine: [number, number, number];
}

export abstract class SampleNormBase extends Module {
  readonly eps: number;
  weight: Parameter | null; // gamma
  bias: Parameter | null; // beta
  private mean: Float32Array;
  private invStd: Float32Array; // [S], kept for the backward
  private variance: Float32Array;
  private xhat: Tensor | null = null; // kept instead of recomputing (x - mean)·invStd
  private dxhat: Tensor | null = null;
  private y: Tensor | null = null;
  private dx: Tensor | null = null;
  private layout: SampleNormLayout | null = null;

  /** `affineShape` null: no gamma/beta; `bias` false: gamma only (PyTorch's LayerNorm bias=False). */
  constructor(eps: number, affineShape: readonly number[] | null, bias: boolean) {
    super();
    if (!(eps > 0) || !Number.isFinite(eps)) throw new Error(`${this.constructor.name}: eps must be a positive number, got ${eps}`);
    this.eps = eps;
    const k = this.kernels;
    this.weight = affineShape ? makeParameter(Tensor.full(affineShape, 1), k) : null;
    this.bias = affineShape && bias ? makeParameter(Tensor.zeros(affineShape), k) : null;
    this.mean = this.variance = this.invStd = new Float32Array(0);
  }

  /** The layout of an input of this shape; throws naming the layer, the expected and the actual shape. */
  protected abstract layoutOf(shape: readonly number[]): SampleNormLayout;

  outputShape(inputShape: readonly number[]): number[] {
    this.layoutOf(inputShape);
    return [...inputShape];
  }

  forward(x: Tensor): Tensor {
    const layout = (this.layout = this.layoutOf(x.shape));
    const { rows, rowSize } = layout;
    const k = this.kernels;
    if (this.mean.length < rows) {
      this.mean = k.allocate(rows);
      this.variance = k.allocate(rows);
      this.invStd = k.allocate(rows);
    }
    this.xhat = reuse(this.xhat, x.shape, k);
    this.y = reuse(this.y, x.shape, k);
    // Rows play batch norm's channels: moments and normalization of x[1, S, D].
    k.channelMoments(x.data, this.mean, this.variance, 1, rows, rowSize);
    for (let s = 0; s < rows; s++) this.invStd[s] = 1 / Math.sqrt(this.variance[s] + this.eps);
    if (!this.weight) {
      k.batchNormApply(x.data, this.mean, this.invStd, null, null, this.y.data, this.xhat.data, 1, rows, rowSize);
      return this.y;
    }
    k.batchNormApply(x.data, this.mean, this.invStd, null, null, this.xhat.data, null, 1, rows, rowSize);
    const [ab, ac, al] = layout.affine;
    k.channelAffine(this.xhat.data, this.weight.value.data, this.bias?.value.data ?? null, this.y.data, ab, ac, al);
    return this.y;
  }

  backward(dy: Tensor): Tensor {
    checkBackward(this, this.y, dy);
    const { rows, rowSize, affine } = this.layout!;
    const k = this.kernels;
    const xhat = this.xhat!.data;
    this.dx = reuse(this.dx, dy.shape, k);
    let dxhat = dy.data;
    if (this.weight) {
      this.dxhat = reuse(this.dxhat, dy.shape, k);
      dxhat = this.dxhat.data;
      // Frozen gamma/beta (trainable: false) get no gradient.
      const dGamma = this.weight.trainable ? this.weight.grad.data : null;
      const dBeta = this.bias?.trainable ? this.bias.grad.data : null;
      k.channelAffineBackward(dy.data, xhat, this.weight.value.data, dxhat, dGamma, dBeta, affine[0], affine[1], affine[2]);
    }
    k.batchNormBackward(dxhat, xhat, this.invStd, null, this.dx.data, null, null, 1, rows, rowSize);
    return this.dx;
  }

  override namedOwnParameters(): Array<[string, Parameter]> {
    const params: Array<[string, Parameter]> = [];
    if (this.weight) params.push(['weight', this.weight]);
    if (this.bias) params.push(['bias', this.bias]);
    return params;
  }

  protected override releaseBuffers(): void {
    this.xhat = this.dxhat = this.y = this.dx = null;
    this.layout = null;
    this.mean = this.variance = this.invStd = new Float32Array(0);
  }

  protected override moveTo(kernels: Kernels): void {
    super.moveTo(kernels);
    if (this.weight) this.weight = moveParameter(this.weight, kernels);
    if (this.bias) this.bias = moveParameter(this.bias, kernels);
  }

  protected where(): string {
    return this.path ? ` (layer "${this.path}")` : '';
  }
}
