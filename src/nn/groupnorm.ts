/**
 * Group normalization (Wu & He, 2018) with PyTorch's semantics and state-dict names: the C channels
 * are split into G groups and each sample is normalized per group over (C/G, *spatial), independently
 * of the rest of the batch. G = 1 is LayerNorm over (C, H, W) with per-channel affine; G = C is
 * InstanceNorm.
 *
 * Shape legend: input [B, C, ...] (e.g. (B, C), (B, C, L), (B, C, H, W)); G = numGroups; L = values per
 * channel and sample (product of the dims after C). Statistics: B·G rows of (C/G)·L values.
 * gamma ('weight') and beta ('bias') have shape [C], one per channel.
 *
 * Forward and backward: sample-norm.ts.
 */
import { shapeToString } from '../tensor/tensor.js';
import { SampleNormBase, type SampleNormLayout } from './sample-norm.js';

export interface GroupNormOptions {
  /** Added to the variance inside the square root. Default 1e-5. */
  eps?: number;
  /** Learn per-channel gamma and beta. Default true. */
  affine?: boolean;
}

/** GroupNorm(numGroups, numChannels): statistics per sample and group of channels. */
export class GroupNorm extends SampleNormBase {
  readonly typeName = 'GroupNorm';
  readonly affine: boolean;

  constructor(readonly numGroups: number, readonly numChannels: number, options: GroupNormOptions = {}) {
    for (const [name, v] of [['numGroups', numGroups], ['numChannels', numChannels]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`GroupNorm: ${name} must be a positive integer, got ${v}`);
    }
    if (numChannels % numGroups !== 0) {
      const valid = [];
      for (let g = 1; g <= numChannels; g++) if (numChannels % g === 0) valid.push(g);
      throw new Error(`GroupNorm: numChannels ${numChannels} is not divisible by numGroups ${numGroups}; every group needs the same number of channels. Valid numGroups for ${numChannels} channels: ${valid.join(', ')}`);
    }
    const affine = options.affine ?? true;
    super(options.eps ?? 1e-5, affine ? [numChannels] : null, true);
    this.affine = affine;
  }

  protected layoutOf(shape: readonly number[]): SampleNormLayout {
    if (shape.length < 2 || shape[1] !== this.numChannels) {
      throw new Error(`${this.describe()}${this.where()}: expected input [B, ${this.numChannels}, ...] (${this.numChannels} channels in dim 1), got ${shapeToString(shape)}. numChannels must equal the previous layer's output channels.`);
    }
    const batch = shape[0];
    const inner = shape.slice(2).reduce((a, b) => a * b, 1);
    // [B, C, L] viewed as [B·G, (C/G)·L]: the channels of a group are contiguous within a sample.
    return { rows: batch * this.numGroups, rowSize: (this.numChannels / this.numGroups) * inner, affine: [batch, this.numChannels, inner] };
  }

  override describe(): string {
    return `GroupNorm(${this.numGroups}, ${this.numChannels}, eps=${this.eps}${this.affine ? '' : ', affine=false'})`;
  }

  override config(): Record<string, unknown> {
    return { numGroups: this.numGroups, numChannels: this.numChannels, eps: this.eps, affine: this.affine };
  }
}
