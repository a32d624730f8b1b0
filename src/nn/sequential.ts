/**
 * A chain of modules; children are named '0', '1', ... as in PyTorch's nn.Sequential, which makes the
 * state-dict keys '0.weight', '1.running_mean', ...
 */
import { findNonFinite, provenFinite, shapeToString, type Tensor } from '../tensor/tensor.js';
import type { Kernels } from '../kernels/index.js';
import { ReLU } from './activations.js';
import { BatchNormBase } from './batchnorm.js';
import { checkDropoutBeforeBatchNorm } from './batchnorm-modes.js';
import { Module, NO_INPUT_GRAD, disposedError } from './module.js';
import { MaxPool2d } from './pool.js';

export class Sequential extends Module {
  readonly typeName = 'Sequential';
  readonly layers: Module[];
  /** Check the input for NaN/Infinity on every forward (cheap next to a matmul; catches bad data at the door). */
  checkInput = true;
  /**
   * Run a ReLU directly followed by a MaxPool2d as one pass (MaxPool2d.forwardAfterRelu): the same
   * outputs and gradients, without writing the ReLU's output, in forward and backward; and, in
   * training, a 2d batch norm right before them in that pass too (BatchNormBase.forwardThenReluPool),
   * without writing the batch norm's output, and then the backward of the three in one pass as well
   * (BatchNormBase.backwardThroughReluPool: the same gradients up to the order of the batch norm's sums).
   * The ReLU layer, and the batch norm's output buffer, keep no values of their own for such a pass.
   * Default true; false runs every layer on its own.
   */
  fuseReluPool = true;
  /** fused[i]: whether the last forward ran layer i (a ReLU) fused into layer i + 1 (a MaxPool2d). */
  private fused: boolean[] = [];
  /** Column sums of the input check's fast path, in the backend's memory (made at the first forward that can use it). */
  private checkSums: { kernels: Kernels; sums: Float32Array } | null = null;

  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
    this.setPaths('');
    checkDropoutBeforeBatchNorm(layers);
  }

  /** Give every descendant its state-dict path, so errors can name the layer. */
  setPaths(prefix: string): void {
    this.path = prefix.replace(/\.$/, '');
    this.layers.forEach((layer, i) => {
      const path = `${prefix}${i}`;
      if (layer instanceof Sequential) layer.setPaths(`${path}.`);
      else layer.path = path;
    });
  }

  override children(): Array<[string, Module]> {
    return this.layers.map((l, i) => [String(i), l]);
  }

  outputShape(inputShape: readonly number[]): number[] {
    let shape = [...inputShape];
    for (const layer of this.layers) shape = layer.outputShape(shape);
    return shape;
  }

  forward(x: Tensor): Tensor {
    this.checkNotDisposed('run forward');
    if (this.checkInput && !this.inputIsFinite(x)) {
      const bad = findNonFinite(x.data);
      if (bad >= 0) {
        const row = x.shape.length > 1 ? Math.floor(bad / (x.size / x.shape[0])) : bad;
        throw new Error(`Input contains ${x.data[bad]} at flat index ${bad} (sample ${row} of a batch of shape ${shapeToString(x.shape)}). Clean the data (e.g. replace missing values) before training or predicting.`);
      }
    }
    let h = x;
    const layers = this.layers;
    for (let i = 0; i < layers.length; i++) {
      const layer = layers[i];
      const next = layers[i + 1];
      if (this.fuseReluPool && layer instanceof BatchNormBase && next instanceof ReLU && layers[i + 2] instanceof MaxPool2d) {
        const pooled = layer.forwardThenReluPool(h, layers[i + 2] as MaxPool2d);
        if (pooled) {
          // Batch norm (i), ReLU (i + 1) and pooling (i + 2) in one pass; the backward is the pooling's
          // fused one for the ReLU, then the batch norm's own.
          h = pooled;
          this.fused[i] = false;
          this.fused[i + 1] = true;
          this.fused[i + 2] = false;
          i += 2;
          continue;
        }
      }
      this.fused[i] = this.fuseReluPool && layer instanceof ReLU && next instanceof MaxPool2d;
      if (this.fused[i]) {
        h = (next as MaxPool2d).forwardAfterRelu(h);
        this.fused[++i] = false;
      } else h = layer.forward(h);
    }
    return h;
  }

  /** A disposed model, or a disposed layer in it, would work on memory the backend may have given to another model. */
  private checkNotDisposed(action: string): void {
    if (this.disposed) throw disposedError(this, action);
    for (const layer of this.layers) if (layer.disposed) throw disposedError(layer, action);
  }

  /** Whether the backend proves the input finite by column sums (provenFinite), in a buffer of its memory kept for the sample size. */
  private inputIsFinite(x: Tensor): boolean {
    const k = this.kernels;
    // Only a batch in the backend's memory can be summed there; the sums' buffer is made for those.
    if (x.shape.length < 2 || x.size === 0 || !k.sharing?.holds(x.data)) return false;
    const cols = x.size / x.shape[0];
    if (this.checkSums?.kernels !== k || this.checkSums.sums.length !== cols) {
      this.disposeOwned();
      this.checkSums = { kernels: k, sums: k.allocate(cols) };
    }
    return provenFinite(k, x.data, this.checkSums.sums);
  }

  protected override disposeOwned(): void {
    if (this.checkSums) this.checkSums.kernels.release(this.checkSums.sums);
    this.checkSums = null;
  }

  backward(dy: Tensor): Tensor {
    this.checkNotDisposed('run backward');
    // Without an input gradient, layers before the first one with parameters need no backward at all,
    // and that one needs only its parameter gradients.
    const first = this.inputGrad ? 0 : this.layers.findIndex((l) => l.parameters().length > 0);
    if (first < 0) return NO_INPUT_GRAD;
    let g = dy;
    for (let i = this.layers.length - 1; i >= first; i--) {
      const pool = this.layers[i];
      if (i - 2 >= first && this.fused[i - 1] && pool instanceof MaxPool2d && pool.fusedWithBatchNorm) {
        // A batch norm (i - 2), ReLU (i - 1) and this max pooling (i) that ran as one pass: the three
        // backwards as one, the gradient for the batch norm's input.
        const bn = this.layers[i - 2] as BatchNormBase;
        bn.inputGrad = i - 2 > first || this.inputGrad;
        g = bn.backwardThroughReluPool(g, pool);
        i -= 2;
        continue;
      }
      if (i > first && this.fused[i - 1]) {
        // A ReLU (i - 1) fused into this max pooling (i): the pair's gradient for the ReLU's input.
        g = (this.layers[i] as MaxPool2d).backwardAfterRelu(g);
        i--;
        continue;
      }
      this.layers[i].inputGrad = i > first || this.inputGrad;
      g = this.layers[i].backward(g);
    }
    return this.inputGrad ? g : NO_INPUT_GRAD;
  }

  protected override moveTo(kernels: Kernels): void {
    this.kernels = kernels;
  }

  override describe(): string {
    return `Sequential(${this.layers.length} layers)`;
  }
}
