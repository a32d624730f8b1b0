/**
 * Layer normalization (Ba, Kiros & Hinton, 2016) with PyTorch's semantics and state-dict names: each
 * sample is normalized over its trailing dims `normalizedShape`, independently of the rest of the batch.
 *
 * Shape legend: input [..., *normalizedShape]; R = product of the leading dims (rows), D = product of
 * normalizedShape. gamma ('weight') and beta ('bias') have shape normalizedShape: one per normalized value.
 *
 * y = (x - mean)/√(var + eps)·gamma + beta, mean and biased var over the D values of each row.
 * Forward and backward: sample-norm.ts.
 */
import { shapeToString } from '../tensor/tensor.js';
import { SampleNormBase, type SampleNormLayout } from './sample-norm.js';

export interface LayerNormOptions {
  /** Added to the variance inside the square root. Default 1e-5. */
  eps?: number;
  /** Learn gamma and beta of shape normalizedShape. Default true. */
  elementwiseAffine?: boolean;
  /** Learn beta (with elementwiseAffine). Default true. */
  bias?: boolean;
}

/** LayerNorm(normalizedShape): statistics per sample over the trailing dims. */
export class LayerNorm extends SampleNormBase {
  readonly typeName = 'LayerNorm';
  readonly normalizedShape: readonly number[];
  readonly elementwiseAffine: boolean;
  private readonly size: number;

  constructor(normalizedShape: number | readonly number[], options: LayerNormOptions = {}) {
    const dims = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    if (dims.length === 0 || dims.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new Error(`LayerNorm: normalizedShape must be a positive integer or a non-empty list of them (the trailing dims of the input), got ${JSON.stringify(normalizedShape)}`);
    }
    const affine = options.elementwiseAffine ?? true;
    super(options.eps ?? 1e-5, affine ? dims : null, options.bias ?? true);
    this.normalizedShape = Object.freeze(dims);
    this.elementwiseAffine = affine;
    this.size = dims.reduce((a, b) => a * b, 1);
  }

  protected layoutOf(shape: readonly number[]): SampleNormLayout {
    const n = this.normalizedShape.length;
    const trailing = shape.slice(shape.length - n);
    if (shape.length < n || trailing.some((d, i) => d !== this.normalizedShape[i])) {
      const expected = `[..., ${this.normalizedShape.join(', ')}]`;
      throw new Error(`${this.describe()}${this.where()}: expected input ${expected} (the last ${n} dim${n > 1 ? 's' : ''} equal to normalizedShape), got ${shapeToString(shape)}. normalizedShape must be the trailing dims of the previous layer's output, e.g. [${shape.slice(Math.max(1, shape.length - n)).join(', ')}].`);
    }
    const rows = shape.slice(0, shape.length - n).reduce((a, b) => a * b, 1);
    // The affine map is per value of the row: [R, D] with D as the "channels".
    return { rows, rowSize: this.size, affine: [rows, this.size, 1] };
  }

  override describe(): string {
    const opts = [`eps=${this.eps}`];
    if (!this.elementwiseAffine) opts.push('elementwiseAffine=false');
    else if (!this.bias) opts.push('bias=false');
    return `LayerNorm([${this.normalizedShape.join(', ')}], ${opts.join(', ')})`;
  }

  override config(): Record<string, unknown> {
    return { normalizedShape: [...this.normalizedShape], eps: this.eps, elementwiseAffine: this.elementwiseAffine, bias: this.bias !== null };
  }
}
