/**
 * 2D max and average pooling (PyTorch's nn.MaxPool2d, nn.AvgPool2d), each channel of each sample pooled
 * on its own.
 *
 * Shape legend: B = batch, C = channels, H, W = input height and width, KH, KW = kernel,
 * OH, OW = output height and width; P = B·C planes.
 *
 * Max:      y = max over the window (padding is -∞); the backward routes dy to the argmax input only.
 * Average:  y = Σ window / (KH·KW) (padding counts as 0, PyTorch's count_include_pad); the backward
 *           spreads dy/(KH·KW) over the window. Overlapping windows (stride < kernel) add up in dx.
 * OH = floor((H + 2·padH - KH) / strideH) + 1, the same for OW.
 */
import { batchNormReluPoolFits, type Window2d } from '../kernels/index.js';
import { Tensor, shapeToString } from '../tensor/tensor.js';
import { pair, sizeConfig, sizeText, slidingWindow, type Size2 } from './conv2d.js';
import { Module, checkBackward, reuse } from './module.js';

export interface Pool2dOptions {
  kernelSize: Size2;
  /** Default: the kernel size (non-overlapping windows). */
  stride?: Size2;
  /** Padding on each side, at most half the kernel. Default 0. */
  padding?: Size2;
}

abstract class Pool2d extends Module {
  readonly kernelSize: readonly [number, number];
  readonly stride: readonly [number, number];
  readonly padding: readonly [number, number];
  protected y: Tensor | null = null;
  protected dx: Tensor | null = null;
  protected inputShape: readonly number[] | null = null;
  protected window: Window2d | null = null;

  constructor(options: Pool2dOptions) {
    super();
    const name = new.target.name;
    this.kernelSize = pair('kernelSize', options.kernelSize, 1, name);
    this.stride = options.stride === undefined ? this.kernelSize : pair('stride', options.stride, 1, name);
    this.padding = pair('padding', options.padding ?? 0, 0, name);
    // PyTorch's limit: a window must never lie entirely in the padding.
    if (this.padding[0] > this.kernelSize[0] / 2 || this.padding[1] > this.kernelSize[1] / 2) {
      throw new Error(`${name}: padding ${sizeText(this.padding)} must be at most half the kernel size ${sizeText(this.kernelSize)}`);
    }
  }

  outputShape(inputShape: readonly number[]): number[] {
    const g = this.geometryOf(inputShape);
    return [inputShape[0], inputShape[1], g.outH, g.outW];
  }

  forward(x: Tensor): Tensor {
    return this.poolForward(x, false);
  }

  /** The forward, of relu(x) when `relu` (max pooling only: MaxPool2d.forwardAfterRelu). */
  protected poolForward(x: Tensor, relu: boolean): Tensor {
    const g = this.geometryOf(x.shape);
    this.inputShape = x.shape;
    this.y = reuse(this.y, [x.shape[0], x.shape[1], g.outH, g.outW], this.kernels);
    this.pool(x, this.y, x.shape[0] * x.shape[1], g, relu);
    return this.y;
  }

  backward(dy: Tensor): Tensor {
    checkBackward(this, this.y, dy);
    this.dx = reuse(this.dx, this.inputShape!, this.kernels);
    this.unpool(dy, this.dx, dy.shape[0] * dy.shape[1], this.window!);
    return this.dx;
  }

  /** y = the pooling of x, or of relu(x) when `relu` (max pooling only). */
  protected abstract pool(x: Tensor, y: Tensor, planes: number, g: Window2d, relu: boolean): void;
  protected abstract unpool(dy: Tensor, dx: Tensor, planes: number, g: Window2d): void;

  /** Checks the input shape and returns the window geometry for it (cached while H and W stay the same). */
  protected geometryOf(shape: readonly number[]): Window2d {
    const where = this.where();
    if (shape.length !== 4) {
      throw new Error(`${this.describe()}${where}: expected input [B, C, H, W], got ${shapeToString(shape)}. Pooling works on images (batch, channels, height, width); put it before Flatten, not after.`);
    }
    const [, , height, width] = shape;
    const g = this.window;
    if (g && g.height === height && g.width === width) return g;
    const [kh, kw] = this.kernelSize;
    const [ph, pw] = this.padding;
    if (height + 2 * ph < kh || width + 2 * pw < kw) {
      throw new Error(`${this.describe()}${where}: kernel ${kh}x${kw} is larger than the padded input ${height + 2 * ph}x${width + 2 * pw} (input ${shapeToString(shape)}). Use a smaller kernel or fewer downsampling layers before this one.`);
    }
    this.window = slidingWindow(height, width, this.kernelSize, this.stride, this.padding);
    return this.window;
  }

  protected override releaseBuffers(): void {
    this.y = this.dx = null;
    this.inputShape = null;
  }

  /** ' (layer "path")' for error messages, or nothing for a layer outside a model. */
  protected where(): string {
    return this.path ? ` (layer "${this.path}")` : '';
  }

  override describe(): string {
    const opts = [`kernel=${sizeText(this.kernelSize)}`];
    if (this.stride[0] !== this.kernelSize[0] || this.stride[1] !== this.kernelSize[1]) opts.push(`stride=${sizeText(this.stride)}`);
    if (this.padding[0] !== 0 || this.padding[1] !== 0) opts.push(`padding=${sizeText(this.padding)}`);
    return `${this.typeName}(${opts.join(', ')})`;
  }

  override config(): Record<string, unknown> {
    return { kernelSize: sizeConfig(this.kernelSize), stride: sizeConfig(this.stride), padding: sizeConfig(this.padding) };
  }
}

/**
 * Max pooling; caches the index of each window's maximum for the backward. A ReLU right before it can
 * run fused with it (`forwardAfterRelu`, which Sequential uses): max pooling of relu(x) in one pass.
 */
export class MaxPool2d extends Pool2d {
  readonly typeName = 'MaxPool2d';
  private argmax: Int32Array | null = null; // flat input index of each output's maximum: the backward's routing table
  // The backend's memory behind argmax (an Int32Array view of it), so kernels read and write it in place.
  private argmaxBlock: Float32Array | null = null;
  private reluFused = false; // whether the last forward was forwardAfterRelu
  private batchNormFused = false; // whether it was forwardAfterBatchNormRelu
  private xhatMax: Tensor | null = null; // after forwardAfterBatchNormRelu: the normalized value at each window's winner

  override forward(x: Tensor): Tensor {
    this.reluFused = false;
    this.batchNormFused = false;
    return this.poolForward(x, false);
  }

  /**
   * This layer applied to relu(x): the output and argmax of a ReLU followed by this layer, without
   * writing relu(x) (one pass over x instead of two). `backwardAfterRelu` then returns the gradient
   * with respect to the ReLU's input.
   */
  forwardAfterRelu(x: Tensor): Tensor {
    this.reluFused = true;
    this.batchNormFused = false;
    return this.poolForward(x, true);
  }

  /**
   * This layer applied to relu(batch norm's output) for x, in one pass with the normalization (the
   * kernel batchNormReluMaxPool2x2; BatchNormBase.forwardThenReluPool calls it once the statistics are
   * known): writes xhat, and this layer's output and argmax, as forwardAfterRelu of the batch norm's
   * output would. For a 2×2, stride-2, unpadded window on sides batchNormReluPoolFits takes. `y` is
   * the batch norm's output buffer, as scratch.
   */
  forwardAfterBatchNormRelu(x: Tensor, mean: Float32Array, invStd: Float32Array, scale: Float32Array | null, shift: Float32Array | null, y: Float32Array, xhat: Float32Array): Tensor {
    const out = this.outputFor(x.shape);
    const [batch, channels, height, width] = x.shape;
    this.xhatMax = reuse(this.xhatMax, out.shape, this.kernels);
    this.kernels.batchNormReluMaxPool2x2(x.data, mean, invStd, scale, shift, y, xhat, out.data, this.argmaxFor(out.size), this.xhatMax.data, batch, channels, height, width);
    this.reluFused = true;
    this.batchNormFused = true;
    return out;
  }

  /**
   * For the batch norm's backward through this layer and the ReLU (BatchNormBase.backwardThroughReluPool),
   * after forwardAfterBatchNormRelu: this layer's output and argmax, and the normalized value at each
   * window's winner, once dy is checked against the output.
   */
  batchNormReluWindows(dy: Tensor): { out: Float32Array; argmax: Int32Array; xhatMax: Float32Array } {
    if (!this.batchNormFused) throw new Error(`${this.describe()}${this.where()}: the backward through a batch norm and ReLU needs a forwardAfterBatchNormRelu before it`);
    checkBackward(this, this.y, dy);
    return { out: this.y.data, argmax: this.argmax!, xhatMax: this.xhatMax!.data };
  }

  /** Whether the last forward was forwardAfterBatchNormRelu (its backward is then the batch norm's backwardThroughReluPool). */
  get fusedWithBatchNorm(): boolean {
    return this.batchNormFused;
  }

  /** Whether forwardAfterBatchNormRelu takes an input of this shape. */
  fusesBatchNormRelu(shape: readonly number[]): boolean {
    const [kh, kw] = this.kernelSize, [sh, sw] = this.stride, [ph, pw] = this.padding;
    return shape.length === 4 && kh === 2 && kw === 2 && sh === 2 && sw === 2 && ph === 0 && pw === 0 && batchNormReluPoolFits(shape[2], shape[3]);
  }

  /** The backward of forwardAfterRelu: dL/dx for the ReLU's input x. */
  backwardAfterRelu(dy: Tensor): Tensor {
    if (!this.reluFused) throw new Error(`${this.describe()}${this.where()}: backwardAfterRelu needs a forwardAfterRelu before it`);
    return super.backward(dy);
  }

  override backward(dy: Tensor): Tensor {
    if (this.reluFused) throw new Error(`${this.describe()}${this.where()}: its last forward was fused with the ReLU before it (forwardAfterRelu), so its backward is backwardAfterRelu`);
    return super.backward(dy);
  }

  protected pool(x: Tensor, y: Tensor, planes: number, g: Window2d, relu: boolean): void {
    const argmax = this.argmaxFor(y.size);
    if (relu) this.kernels.maxPoolReluForward(x.data, y.data, argmax, planes, g);
    else this.kernels.maxPoolForward(x.data, y.data, argmax, planes, g);
  }

  protected unpool(dy: Tensor, dx: Tensor, planes: number, g: Window2d): void {
    if (this.reluFused) this.kernels.maxPoolReluBackward(dy.data, this.y!.data, this.argmax!, dx.data, planes, g);
    else this.kernels.maxPoolBackward(dy.data, this.argmax!, dx.data, planes, g);
  }

  /** The forward's bookkeeping for an input of `shape` (geometry, the input shape for the backward): the output buffer. */
  private outputFor(shape: readonly number[]): Tensor {
    const g = this.geometryOf(shape);
    this.inputShape = shape;
    return (this.y = reuse(this.y, [shape[0], shape[1], g.outH, g.outW], this.kernels));
  }

  private argmaxFor(size: number): Int32Array {
    if (this.argmax?.length === size) return this.argmax;
    if (this.argmaxBlock) this.kernels.release(this.argmaxBlock);
    this.argmaxBlock = this.kernels.allocate(size);
    this.argmax = new Int32Array(this.argmaxBlock.buffer, this.argmaxBlock.byteOffset, size);
    return this.argmax;
  }

  protected override releaseBuffers(): void {
    super.releaseBuffers();
    this.argmax = this.argmaxBlock = this.xhatMax = null;
    this.reluFused = this.batchNormFused = false;
  }
}

/** Average pooling over each window, padding included in the count. */
export class AvgPool2d extends Pool2d {
  readonly typeName = 'AvgPool2d';

  protected pool(x: Tensor, y: Tensor, planes: number, g: Window2d): void {
    this.kernels.avgPoolForward(x.data, y.data, planes, g);
  }

  protected unpool(dy: Tensor, dx: Tensor, planes: number, g: Window2d): void {
    this.kernels.avgPoolBackward(dy.data, dx.data, planes, g);
  }
}
