/**
 * Flatten (PyTorch's nn.Flatten with its defaults): (B, d1, d2, ...) → (B, d1·d2·...), the bridge from
 * convolutional feature maps to a Linear classifier. Row-major data is already in that order, so the
 * output is a view of the input and the backward a view of dy: no copy.
 *
 * Shape legend: B = batch, F = d1·d2·... features per sample.
 */
import { Tensor, sameShape, shapeToString } from '../tensor/tensor.js';
import { Module, checkBackward } from './module.js';

export class Flatten extends Module {
  readonly typeName = 'Flatten';
  // The views are cached so that a step with the same buffers and shapes allocates nothing.
  private y: Tensor | null = null;
  private dx: Tensor | null = null;
  private inputShape: readonly number[] | null = null;

  outputShape(inputShape: readonly number[]): number[] {
    if (inputShape.length < 2) {
      const where = this.path ? ` (layer "${this.path}")` : '';
      throw new Error(`Flatten${where}: expected input [B, ...] with at least 2 dimensions, got ${shapeToString(inputShape)}. The first dimension is the batch; add it for a single sample.`);
    }
    let features = 1;
    for (let i = 1; i < inputShape.length; i++) features *= inputShape[i];
    return [inputShape[0], features];
  }

  forward(x: Tensor): Tensor {
    const shape = this.outputShape(x.shape);
    this.inputShape = x.shape;
    this.y = view(this.y, x.data, shape);
    return this.y;
  }

  backward(dy: Tensor): Tensor {
    checkBackward(this, this.y, dy);
    this.dx = view(this.dx, dy.data, this.inputShape!);
    return this.dx;
  }

  protected override releaseBuffers(): void {
    this.y = this.dx = this.inputShape = null;
  }
}

/** `data` seen with `shape`, reusing `current` when it already is exactly that. */
function view(current: Tensor | null, data: Float32Array, shape: readonly number[]): Tensor {
  if (current && current.data === data && sameShape(current.shape, shape)) return current;
  return new Tensor(shape, data);
}
