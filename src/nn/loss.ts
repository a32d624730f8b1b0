/**
 * Softmax cross-entropy, averaged over the batch (PyTorch's nn.CrossEntropyLoss on logits).
 * loss = mean_b [ log Σ_c exp(z_bc) - z_b,label ];  dz = (softmax(z) - onehot(label)) / B.
 * Shape legend: B = batch, C = classes.
 */
import { getBackend, type Kernels } from '../kernels/index.js';
import { Tensor, shapeToString } from '../tensor/tensor.js';
import { reuse } from './module.js';

export class CrossEntropyLoss {
  private probs: Tensor | null = null; // softmax of the logits, all the backward needs
  private labels: Int32Array | null = null;
  private dLogits: Tensor | null = null;

  constructor(private kernels: Kernels = getBackend()) {}

  /** Mean loss over the batch. Labels are class indices in [0, C). */
  forward(logits: Tensor, labels: ArrayLike<number>): number {
    if (logits.rank !== 2) throw new Error(`CrossEntropyLoss: expected logits of shape [B, C], got ${shapeToString(logits.shape)}`);
    const [batch, classes] = logits.shape;
    if (labels.length !== batch) throw new Error(`CrossEntropyLoss: ${batch} logit rows but ${labels.length} labels`);
    const lab = labels instanceof Int32Array ? labels : Int32Array.from(labels);
    for (let i = 0; i < batch; i++) {
      // The original value: Int32Array.from would have truncated 0.5 to a valid class 0.
      if (!Number.isInteger(labels[i])) throw new Error(`CrossEntropyLoss: label ${labels[i]} at index ${i} is not a class index (an integer in [0, ${classes - 1}]); give class indices, not probabilities or one-hot rows`);
      if (lab[i] < 0 || lab[i] >= classes) {
        throw new Error(`CrossEntropyLoss: label ${labels[i]} at index ${i} is outside [0, ${classes - 1}] (the model has ${classes} outputs)`);
      }
    }
    this.probs = reuse(this.probs, logits.shape, this.kernels);
    this.labels = lab;
    return this.kernels.softmaxCrossEntropy(logits.data, lab, this.probs.data, batch, classes);
  }

  /** Gradient of the mean loss with respect to the logits of the last forward. */
  backward(): Tensor {
    if (!this.probs || !this.labels) throw new Error('CrossEntropyLoss: backward() called before forward()');
    const [batch, classes] = this.probs.shape;
    this.dLogits = reuse(this.dLogits, this.probs.shape, this.kernels);
    this.kernels.softmaxCrossEntropyBackward(this.probs.data, this.labels, this.dLogits.data, batch, classes);
    return this.dLogits;
  }

  /** Softmax probabilities of the last forward. */
  get probabilities(): Tensor | null {
    return this.probs;
  }

  /** Give its buffers back to the backend (for a loss made for one pass, such as an evaluation's). */
  dispose(): void {
    for (const t of [this.probs, this.dLogits]) if (t) this.kernels.release(t.data);
    this.probs = this.dLogits = null;
  }
}

/** Row-wise softmax into a new tensor (for predictions). */
export function softmax(logits: Tensor, kernels: Kernels = getBackend()): Tensor {
  if (logits.rank !== 2) throw new Error(`softmax: expected [B, C], got ${shapeToString(logits.shape)}`);
  const out = new Tensor(logits.shape);
  kernels.softmax(logits.data, out.data, logits.shape[0], logits.shape[1]);
  return out;
}

/** Index of the largest value in each row. */
export function argmax(logits: Tensor): Int32Array {
  const [rows, cols] = logits.shape;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (logits.data[r * cols + c] > logits.data[r * cols + best]) best = c;
    out[r] = best;
  }
  return out;
}
