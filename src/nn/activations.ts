/**
 * Element-wise activations. Sigmoid and Tanh keep their output (their derivatives are functions of it:
 * σ' = y(1-y), tanh' = 1-y²); ReLU keeps its input.
 */
import { Tensor } from '../tensor/tensor.js';
import { Module, checkBackward, reuse } from './module.js';

abstract class Activation extends Module {
  protected x: Tensor | null = null;
  protected y: Tensor | null = null;
  protected dx: Tensor | null = null;

  outputShape(inputShape: readonly number[]): number[] {
    return [...inputShape];
  }

  forward(x: Tensor): Tensor {
    this.x = x;
    this.y = reuse(this.y, x.shape, this.kernels);
    this.apply(x.data, this.y.data);
    return this.y;
  }

  backward(dy: Tensor): Tensor {
    checkBackward(this, this.y, dy);
    this.dx = reuse(this.dx, dy.shape, this.kernels);
    this.applyBackward(dy.data, this.dx.data);
    return this.dx;
  }

  protected abstract apply(x: Float32Array, y: Float32Array): void;
  protected abstract applyBackward(dy: Float32Array, dx: Float32Array): void;

  protected override releaseBuffers(): void {
    this.x = this.y = this.dx = null;
  }
}

export class Sigmoid extends Activation {
  readonly typeName = 'Sigmoid';
  protected apply(x: Float32Array, y: Float32Array): void {
    this.kernels.sigmoid(x, y);
  }
  protected applyBackward(dy: Float32Array, dx: Float32Array): void {
    this.kernels.sigmoidBackward(this.y!.data, dy, dx);
  }
}

export class Tanh extends Activation {
  readonly typeName = 'Tanh';
  protected apply(x: Float32Array, y: Float32Array): void {
    this.kernels.tanh(x, y);
  }
  protected applyBackward(dy: Float32Array, dx: Float32Array): void {
    this.kernels.tanhBackward(this.y!.data, dy, dx);
  }
}

export class ReLU extends Activation {
  readonly typeName = 'ReLU';
  protected apply(x: Float32Array, y: Float32Array): void {
    this.kernels.relu(x, y);
  }
  protected applyBackward(dy: Float32Array, dx: Float32Array): void {
    this.kernels.reluBackward(this.x!.data, dy, dx);
  }
}
