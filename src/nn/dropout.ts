/**
 * Inverted dropout (PyTorch's): in training each value is zeroed with probability p and the survivors
 * are scaled by 1/(1-p), so eval mode is the identity and needs no rescaling.
 */
import { Rng } from '../tensor/rng.js';
import { Tensor } from '../tensor/tensor.js';
import { Module, checkBackward, reuse } from './module.js';

export class Dropout extends Module {
  readonly typeName = 'Dropout';
  private mask: Tensor | null = null; // 0 or 1/(1-p) per value, reused by the backward
  private y: Tensor | null = null;
  private dx: Tensor | null = null;
  private usedMask = false;
  readonly rng: Rng;

  /**
   * `p`: the probability of zeroing a value in training. `options.rng` draws the masks; default a new
   * `Rng(0)` per layer, so two Dropout layers of a model built by hand would drop the same positions:
   * give each its own (`new Rng(seed)`), as `buildSequential` does.
   */
  constructor(readonly p = 0.5, options: { rng?: Rng } = {}) {
    super();
    if (!(p >= 0 && p < 1)) throw new Error(`Dropout: p must be in [0, 1), got ${p}`);
    this.rng = options.rng ?? new Rng(0);
  }

  outputShape(inputShape: readonly number[]): number[] {
    return [...inputShape];
  }

  forward(x: Tensor): Tensor {
    this.usedMask = this.training && this.p > 0;
    this.y = reuse(this.y, x.shape, this.kernels);
    if (!this.usedMask) {
      this.y.data.set(x.data);
      return this.y;
    }
    const mask = (this.mask = reuse(this.mask, x.shape, this.kernels));
    const keep = 1 / (1 - this.p);
    for (let i = 0; i < mask.size; i++) mask.data[i] = this.rng.uniform() < this.p ? 0 : keep;
    this.kernels.mul(x.data, mask.data, this.y.data);
    return this.y;
  }

  backward(dy: Tensor): Tensor {
    checkBackward(this, this.y, dy);
    this.dx = reuse(this.dx, dy.shape, this.kernels);
    if (this.usedMask) this.kernels.mul(dy.data, this.mask!.data, this.dx.data);
    else this.dx.data.set(dy.data);
    return this.dx;
  }

  protected override releaseBuffers(): void {
    this.mask = this.y = this.dx = null;
  }

  override describe(): string {
    return `Dropout(p=${this.p})`;
  }

  override config(): Record<string, unknown> {
    return { p: this.p };
  }
}
