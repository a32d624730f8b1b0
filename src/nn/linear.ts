/**
 * Linear layer, y = x·Wᵀ + b, with W stored [out, in] as in PyTorch.
 * Shape legend: B = batch, I = inFeatures, O = outFeatures.
 */
import { Rng } from '../tensor/rng.js';
import { Tensor } from '../tensor/tensor.js';
import { initBias, initWeight, type InitSpec } from './init.js';
import type { Kernels } from '../kernels/index.js';
import { Module, NO_INPUT_GRAD, checkBackward, makeParameter, moveParameter, reuse, shapeError, type Parameter } from './module.js';

export interface LinearOptions {
  /** Learn a bias b. Default true. */
  bias?: boolean;
  /** Weight initialization; default PyTorch's U(-1/√in, 1/√in) for weights and bias. */
  init?: InitSpec;
  /**
   * Draws the initial values. Default: a new `Rng(0)` per layer, so that a model is the same on every
   * run, but then two layers of the same size start with the same weights: pass one Rng to every layer
   * of a model built by hand (`buildSequential` does).
   */
  rng?: Rng;
}

export class Linear extends Module {
  readonly typeName = 'Linear';
  weight: Parameter;
  bias: Parameter | null;
  private x: Tensor | null = null; // kept for dW = dyᵀ·x
  private y: Tensor | null = null;
  private dx: Tensor | null = null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, options: LinearOptions = {}) {
    super();
    for (const [name, v] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`Linear: ${name} must be a positive integer, got ${v}`);
    }
    const init = options.init ?? { name: 'pytorch' };
    const rng = options.rng ?? new Rng(0);
    const w = new Tensor([outFeatures, inFeatures]);
    initWeight(w.data, w.shape, init, rng);
    this.weight = makeParameter(w, this.kernels);
    if (options.bias ?? true) {
      const b = new Tensor([outFeatures]);
      initBias(b.data, inFeatures, init, rng);
      this.bias = makeParameter(b, this.kernels);
    } else this.bias = null;
  }

  override namedOwnParameters(): Array<[string, Parameter]> {
    return this.bias ? [['weight', this.weight], ['bias', this.bias]] : [['weight', this.weight]];
  }

  outputShape(inputShape: readonly number[]): number[] {
    if (inputShape.length !== 2 || inputShape[1] !== this.inFeatures) throw shapeError(this, `[B, ${this.inFeatures}]`, inputShape);
    return [inputShape[0], this.outFeatures];
  }

  forward(x: Tensor): Tensor {
    const [batch] = this.outputShape(x.shape);
    this.x = x;
    const y = (this.y = reuse(this.y, [batch, this.outFeatures], this.kernels));
    // y[B,O] = x[B,I] · W[O,I]ᵀ (+ b)
    this.kernels.matmul(x.data, this.weight.value.data, y.data, batch, this.inFeatures, this.outFeatures, { transB: true });
    if (this.bias) this.kernels.addRowVector(y.data, this.bias.value.data, y.data, batch, this.outFeatures);
    return y;
  }

  backward(dy: Tensor): Tensor {
    checkBackward(this, this.y, dy);
    const x = this.x!;
    const batch = x.shape[0];
    const k = this.kernels;
    // dW[O,I] += dy[B,O]ᵀ · x[B,I];  db[O] += Σ_B dy;  dx[B,I] = dy[B,O] · W[O,I]
    k.matmul(dy.data, x.data, this.weight.grad.data, this.outFeatures, batch, this.inFeatures, { transA: true, accumulate: true });
    if (this.bias) k.sumRows(dy.data, this.bias.grad.data, batch, this.outFeatures, true);
    if (!this.inputGrad) return NO_INPUT_GRAD;
    const dx = (this.dx = reuse(this.dx, x.shape, k));
    k.matmul(dy.data, this.weight.value.data, dx.data, batch, this.outFeatures, this.inFeatures);
    return dx;
  }

  protected override releaseBuffers(): void {
    this.x = this.y = this.dx = null;
  }

  protected override moveTo(kernels: Kernels): void {
    super.moveTo(kernels);
    this.weight = moveParameter(this.weight, kernels);
    if (this.bias) this.bias = moveParameter(this.bias, kernels);
  }

  override describe(): string {
    return `Linear(${this.inFeatures}, ${this.outFeatures}${this.bias ? '' : ', bias=false'})`;
  }

  override config(): Record<string, unknown> {
    return { inFeatures: this.inFeatures, outFeatures: this.outFeatures, bias: this.bias !== null };
  }
}
