/**
 * 2D convolution (PyTorch's nn.Conv2d, cross-correlation as every framework computes it), implemented
 * as im2col + one matmul per sample.
 *
 * Shape legend: B = batch, C = inChannels, O = outChannels, H, W = input height and width,
 * KH, KW = kernel, OH, OW = output height and width, L = OH·OW output positions, K = C·KH·KW.
 *
 * Forward:  cols[K, L] = im2col(x_b),  y_b[O, L] = weight[O, K] · cols (+ bias[O] on every row),
 *           OH = floor((H + 2·padH - KH) / strideH) + 1 (the same for OW).
 * Backward: cols = im2col(x_b) again,  dWeight += dy_b[O, L] · colsᵀ,  dBias += Σ_b Σ_L dy_b,
 *           dcols = weightᵀ · dy_b,  dx_b = col2im(dcols) (im2col's adjoint sums overlapping windows).
 * One sample at a time, so the column buffers are K·L values however large the batch (a batch of
 * 1000 MNIST images would need 225 MB of columns at once), and they stay in cache. The backward
 * unfolds x again instead of keeping every sample's columns: K·L copies next to O·K·L products.
 *
 * A 3×3 convolution with stride 1 can instead run as Winograd F(2×2, 3×3) (src/kernels/winograd.ts):
 * 16 products per 2×2 outputs and channel pair instead of 36, for the forward, dx and dWeight alike.
 * `algorithm` chooses; 'auto' takes Winograd where it fits, the layer has at least
 * WINOGRAD_MIN_CHANNELS input channels (with fewer, the transforms cost more than the products saved)
 * and the backend's Winograd kernels are its faster ones (`capabilities.winograd`: wasm, not the reference).
 */
import { winogradFits, type Kernels, type MatmulOptions, type Window2d } from '../kernels/index.js';
import { Rng } from '../tensor/rng.js';
import { Tensor, shapeToString } from '../tensor/tensor.js';
import { initBias, initWeight, type InitSpec } from './init.js';
import { Module, NO_INPUT_GRAD, checkBackward, makeParameter, moveParameter, reuse, type Parameter } from './module.js';

/** A size given once for both dimensions (3) or as [height, width]. */
export type Size2 = number | readonly [number, number];

export interface Conv2dOptions {
  inChannels: number;
  outChannels: number;
  kernelSize: Size2;
  /** Default 1. */
  stride?: Size2;
  /** Zeros added on each side of the input. Default 0. */
  padding?: Size2;
  /** Learn a per-channel bias. Default true; turn it off when batch norm follows (its beta replaces it). */
  bias?: boolean;
  /** Weight initialization; default PyTorch's U(-1/√fanIn, 1/√fanIn) with fanIn = C·KH·KW. */
  init?: InitSpec;
  /** Draws the initial values. Default a new `Rng(0)` per layer (the same weights for layers of one size): pass one Rng to every layer of a model built by hand. */
  rng?: Rng;
  /** How to compute the convolution (default 'auto'): see `Conv2d.algorithm`. */
  algorithm?: ConvAlgorithm;
}

/**
 * 'im2col': unfolded windows and a matrix product per sample (any kernel, stride and padding);
 * 'winograd': Winograd F(2×2, 3×3) (3×3 kernels, stride 1, padding 0-2 only);
 * 'auto': Winograd where it fits, the layer has at least WINOGRAD_MIN_CHANNELS input channels and the
 * backend says its Winograd kernels are the faster (`capabilities.winograd`), else im2col.
 */
export type ConvAlgorithm = 'auto' | 'im2col' | 'winograd';
export const CONV_ALGORITHMS: readonly ConvAlgorithm[] = ['auto', 'im2col', 'winograd'];
/**
 * Input channels from which 'auto' takes Winograd. The products it saves grow with C·O, its transforms
 * with C + O: on the wasm backend, mnist-cnn's second convolution (16 → 32 on 14×14) trains faster with
 * it, its first (1 → 16 on 28×28) slower.
 */
export const WINOGRAD_MIN_CHANNELS = 8;

const FORWARD: MatmulOptions = {};
const WEIGHT_GRAD: MatmulOptions = { transB: true, accumulate: true };
const INPUT_GRAD: MatmulOptions = { transA: true };

export class Conv2d extends Module {
  readonly typeName = 'Conv2d';
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: readonly [number, number];
  readonly stride: readonly [number, number];
  readonly padding: readonly [number, number];
  weight: Parameter; // [O, C, KH, KW]
  bias: Parameter | null; // [O]

  private x: Tensor | null = null; // kept for the backward, which unfolds it again
  private y: Tensor | null = null;
  private dx: Tensor | null = null;
  private cols: Float32Array | null = null; // [K, L], one sample's columns
  private dcols: Float32Array | null = null; // [K, L]
  private dBiasPerSample: Float32Array | null = null; // [B·O], Σ_L dy before summing over the batch
  private ones: Float32Array | null = null; // [O], for adding the bias
  private window: Window2d | null = null;
  private _algorithm: ConvAlgorithm = 'auto';
  /** Whether the last forward ran as Winograd (the backward follows it). */
  private ranWinograd = false;
  private u: Float32Array | null = null; // [16, O, C], the transformed filters
  private uFlipped: Float32Array | null = null; // [16, C, O], the input gradient's
  private du: Float32Array | null = null; // [16, O, C]
  private readonly xViews = new SampleViews();
  private readonly yViews = new SampleViews();
  private readonly dyViews = new SampleViews();
  private readonly dxViews = new SampleViews();

  constructor(options: Conv2dOptions) {
    super();
    this.inChannels = positiveInt('inChannels', options.inChannels);
    this.outChannels = positiveInt('outChannels', options.outChannels);
    this.kernelSize = pair('kernelSize', options.kernelSize, 1);
    this.stride = pair('stride', options.stride ?? 1, 1);
    this.padding = pair('padding', options.padding ?? 0, 0);
    const init = options.init ?? { name: 'pytorch' };
    const rng = options.rng ?? new Rng(0);
    const [kh, kw] = this.kernelSize;
    const w = new Tensor([this.outChannels, this.inChannels, kh, kw]);
    initWeight(w.data, w.shape, init, rng);
    this.weight = makeParameter(w, this.kernels);
    if (options.bias ?? true) {
      const b = new Tensor([this.outChannels]);
      initBias(b.data, this.inChannels * kh * kw, init, rng);
      this.bias = makeParameter(b, this.kernels);
    } else this.bias = null;
    if (options.algorithm !== undefined) this.algorithm = options.algorithm;
  }

  /**
   * How forward and backward compute the convolution ('auto', 'im2col' or 'winograd', see
   * ConvAlgorithm), as PyTorch lets cuDNN choose: the results agree up to float rounding. A choice other
   * than 'auto' is part of the layer's config, so data-parallel replicas and saved models keep it.
   */
  get algorithm(): ConvAlgorithm {
    return this._algorithm;
  }

  set algorithm(value: ConvAlgorithm) {
    if (!CONV_ALGORITHMS.includes(value)) throw new Error(`${this.describe()}${this.where()}: algorithm must be one of ${CONV_ALGORITHMS.join(', ')}, got ${JSON.stringify(value)}`);
    if (value === 'winograd' && !this.winogradFits()) {
      throw new Error(`${this.describe()}${this.where()}: the 'winograd' algorithm needs a 3x3 kernel, stride 1 and padding of at most 2; use 'im2col' (or 'auto') for this layer`);
    }
    this._algorithm = value;
  }

  /** Whether the next forward runs as Winograd (for 'auto': where the backend's Winograd kernels are the faster, `capabilities.winograd`). */
  get usesWinograd(): boolean {
    if (this._algorithm !== 'auto') return this._algorithm === 'winograd';
    return this.kernels.capabilities.winograd === true && this.winogradFits() && this.inChannels >= WINOGRAD_MIN_CHANNELS;
  }

  private winogradFits(): boolean {
    return winogradFits(this.kernelSize, this.stride, this.padding);
  }

  override namedOwnParameters(): Array<[string, Parameter]> {
    return this.bias ? [['weight', this.weight], ['bias', this.bias]] : [['weight', this.weight]];
  }

  outputShape(inputShape: readonly number[]): number[] {
    const g = this.geometry(inputShape);
    return [inputShape[0], this.outChannels, g.outH, g.outW];
  }

  forward(x: Tensor): Tensor {
    const g = this.geometry(x.shape);
    const batch = x.shape[0];
    const rows = this.inChannels * g.kernelH * g.kernelW; // K
    const positions = g.outH * g.outW; // L
    const k = this.kernels;
    this.x = x;
    this.y = reuse(this.y, [batch, this.outChannels, g.outH, g.outW], k);
    const bias = this.bias?.value.data;
    this.ranWinograd = this.usesWinograd;
    if (this.ranWinograd) {
      const u = (this.u = this.transformBuffer(this.u));
      k.winogradWeights(this.weight.value.data, u, this.outChannels, this.inChannels, false);
      k.winogradConv3x3(x.data, u, this.y.data, batch, this.inChannels, this.outChannels, g.height, g.width, g.padH, g.padW);
      if (bias) k.channelAffine(this.y.data, this.unitScale(), bias, this.y.data, batch, this.outChannels, positions);
      return this.y;
    }
    const cols = this.columnBuffer('cols', rows * positions);
    const xs = this.xViews.of(x.data, batch);
    const ys = this.yViews.of(this.y.data, batch);
    const weight = this.weight.value.data;
    for (let b = 0; b < batch; b++) {
      k.im2col(xs[b], cols, 1, this.inChannels, g);
      k.matmul(weight, cols, ys[b], this.outChannels, rows, positions, FORWARD);
    }
    // The bias after the products, in one pass: each output is its sum of products plus its channel's
    // bias, rounded in PyTorch's order (a sum started from the bias rounds differently).
    if (bias) k.channelAffine(this.y.data, this.unitScale(), bias, this.y.data, batch, this.outChannels, positions);
    return this.y;
  }

  backward(dy: Tensor): Tensor {
    checkBackward(this, this.y, dy);
    const x = this.x!;
    const g = this.window!;
    const batch = dy.shape[0];
    const rows = this.inChannels * g.kernelH * g.kernelW;
    const positions = g.outH * g.outW;
    const k = this.kernels;
    if (this.bias) {
      // dBias[O] += Σ_B Σ_L dy: first over L per (b, o), then over the batch.
      if (this.dBiasPerSample?.length !== batch * this.outChannels) this.dBiasPerSample = k.allocate(batch * this.outChannels);
      k.sumAxis(dy.data, this.dBiasPerSample, batch * this.outChannels, positions, 1);
      k.sumRows(this.dBiasPerSample, this.bias.grad.data, batch, this.outChannels, true);
    }
    this.dx = reuse(this.dx, x.shape, k);
    if (this.ranWinograd) {
      const du = (this.du = this.transformBuffer(this.du));
      k.winogradConv3x3WeightGrad(x.data, dy.data, du, batch, this.inChannels, this.outChannels, g.height, g.width, g.padH, g.padW);
      k.winogradWeightsBackward(du, this.weight.grad.data, this.outChannels, this.inChannels);
      if (!this.inputGrad) return NO_INPUT_GRAD;
      // dx: the full correlation of dy with the flipped filters, padded by 2 - pad (winograd.ts).
      const uFlipped = (this.uFlipped = this.transformBuffer(this.uFlipped));
      k.winogradWeights(this.weight.value.data, uFlipped, this.outChannels, this.inChannels, true);
      k.winogradConv3x3(dy.data, uFlipped, this.dx.data, batch, this.outChannels, this.inChannels, g.outH, g.outW, 2 - g.padH, 2 - g.padW);
      return this.dx;
    }
    const cols = this.columnBuffer('cols', rows * positions);
    const dcols = this.columnBuffer('dcols', rows * positions);
    const xs = this.xViews.of(x.data, batch);
    const dys = this.dyViews.of(dy.data, batch);
    const dxs = this.dxViews.of(this.dx.data, batch);
    const weight = this.weight.value.data;
    for (let b = 0; b < batch; b++) {
      k.im2col(xs[b], cols, 1, this.inChannels, g);
      // dWeight[O, K] += dy_b[O, L] · cols[K, L]ᵀ
      k.matmul(dys[b], cols, this.weight.grad.data, this.outChannels, positions, rows, WEIGHT_GRAD);
      if (!this.inputGrad) continue;
      // dcols[K, L] = weight[O, K]ᵀ · dy_b[O, L], then folded back onto the input positions.
      k.matmul(weight, dys[b], dcols, rows, this.outChannels, positions, INPUT_GRAD);
      k.col2im(dcols, dxs[b], 1, this.inChannels, g);
    }
    return this.inputGrad ? this.dx : NO_INPUT_GRAD;
  }

  /** O ones: the scale of the channelAffine that adds the bias. */
  private unitScale(): Float32Array {
    if (this.ones?.length !== this.outChannels) this.ones = this.kernels.allocate(this.outChannels).fill(1);
    return this.ones;
  }

  /** A [16, O, C] buffer of transformed filters (or their gradient), allocated once. */
  private transformBuffer(current: Float32Array | null): Float32Array {
    const size = 16 * this.outChannels * this.inChannels;
    return current && current.length === size ? current : this.kernels.allocate(size);
  }

  /** A [K, L] column buffer, reallocated only when the input size changes. */
  private columnBuffer(name: 'cols' | 'dcols', size: number): Float32Array {
    const current = this[name];
    if (current && current.length === size) return current;
    return (this[name] = this.kernels.allocate(size));
  }

  /** Checks the input shape and returns the window geometry for it (cached while H and W stay the same). */
  private geometry(shape: readonly number[]): Window2d {
    const [kh, kw] = this.kernelSize;
    if (shape.length !== 4 || shape[1] !== this.inChannels) {
      const fix =
        shape.length === 4
          ? `inChannels (${this.inChannels}) must equal the input's channel count (dimension 1, here ${shape[1]}): set inChannels to the previous layer's output channels`
          : shape.length === 2
            ? `Conv2d needs images (batch, channels, height, width), not flattened vectors: give the input its image shape, e.g. [B, ${this.inChannels}, 28, 28]`
            : `Conv2d needs 4D input (batch, channels, height, width)${shape.length === 3 ? '; add the batch dimension for a single image' : ''}`;
      throw new Error(`${this.describe()}${this.where()}: expected input [B, ${this.inChannels}, H, W], got ${shapeToString(shape)}. ${fix}.`);
    }
    const [, , height, width] = shape;
    const g = this.window;
    if (g && g.height === height && g.width === width) return g;
    const [ph, pw] = this.padding;
    if (height + 2 * ph < kh || width + 2 * pw < kw) {
      throw new Error(
        `${this.describe()}${this.where()}: kernel ${kh}x${kw} is larger than the padded input ${height + 2 * ph}x${width + 2 * pw} (input ${shapeToString(shape)}, padding ${ph}x${pw}). Use a smaller kernel, more padding, or fewer pooling layers before this one.`,
      );
    }
    this.window = slidingWindow(height, width, this.kernelSize, this.stride, this.padding);
    return this.window;
  }

  private where(): string {
    return this.path ? ` (layer "${this.path}")` : '';
  }

  protected override releaseBuffers(): void {
    this.x = this.y = this.dx = null;
    this.cols = this.dcols = this.dBiasPerSample = this.ones = null;
    this.u = this.uFlipped = this.du = null;
  }

  protected override moveTo(kernels: Kernels): void {
    super.moveTo(kernels);
    this.weight = moveParameter(this.weight, kernels);
    if (this.bias) this.bias = moveParameter(this.bias, kernels);
  }

  override describe(): string {
    const opts = [`kernel=${sizeText(this.kernelSize)}`];
    if (this.stride[0] !== 1 || this.stride[1] !== 1) opts.push(`stride=${sizeText(this.stride)}`);
    if (this.padding[0] !== 0 || this.padding[1] !== 0) opts.push(`padding=${sizeText(this.padding)}`);
    if (!this.bias) opts.push('bias=false');
    if (this._algorithm !== 'auto') opts.push(`algorithm=${this._algorithm}`);
    return `Conv2d(${this.inChannels}, ${this.outChannels}, ${opts.join(', ')})`;
  }

  override config(): Record<string, unknown> {
    return {
      inChannels: this.inChannels,
      outChannels: this.outChannels,
      kernelSize: sizeConfig(this.kernelSize),
      stride: sizeConfig(this.stride),
      padding: sizeConfig(this.padding),
      bias: this.bias !== null,
      // Only a choice the user made: 'auto' is the default, and configs saved before it existed have none.
      ...(this._algorithm === 'auto' ? {} : { algorithm: this._algorithm }),
    };
  }
}

/**
 * Per-sample subarrays of a batch buffer for the per-sample matmuls, rebuilt only when the buffer or
 * the batch size changes, so a training step allocates nothing.
 */
export class SampleViews {
  private data: Float32Array | null = null;
  private views: Float32Array[] = [];

  of(data: Float32Array, batch: number): Float32Array[] {
    if (data !== this.data || this.views.length !== batch) {
      const size = data.length / batch;
      this.views = Array.from({ length: batch }, (_, b) => data.subarray(b * size, (b + 1) * size));
      this.data = data;
    }
    return this.views;
  }
}

/** A Size2 as [h, w], each an integer >= min; names the option in the error. */
export function pair(name: string, value: Size2, min: number, owner = 'Conv2d'): [number, number] {
  const v: readonly number[] = typeof value === 'number' ? [value, value] : value;
  if (!Array.isArray(v) || v.length !== 2 || !v.every((d) => Number.isInteger(d) && d >= min)) {
    throw new Error(`${owner}: ${name} must be an integer >= ${min} or a pair [height, width] of them, got ${JSON.stringify(value)}`);
  }
  return [v[0], v[1]];
}

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new Error(`Conv2d: ${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return value;
}

/** '3' for a square size, '3x5' otherwise (height x width). */
export function sizeText([h, w]: readonly [number, number]): string {
  return h === w ? `${h}` : `${h}x${w}`;
}

/** The JSON form of a size: a number when square, as PyTorch users write it. */
export function sizeConfig([h, w]: readonly [number, number]): number | [number, number] {
  return h === w ? h : [h, w];
}

/** The geometry of a kernel moving by `stride` over a height x width plane with `padding` on each side. */
export function slidingWindow(height: number, width: number, [kernelH, kernelW]: readonly [number, number], [strideH, strideW]: readonly [number, number], [padH, padW]: readonly [number, number]): Window2d {
  return {
    height,
    width,
    kernelH,
    kernelW,
    strideH,
    strideW,
    padH,
    padW,
    outH: Math.floor((height + 2 * padH - kernelH) / strideH) + 1,
    outW: Math.floor((width + 2 * padW - kernelW) / strideW) + 1,
  };
}
