/**
 * Weight initializers. `fanIn`/`fanOut` follow PyTorch: for a weight [out, in, ...kernel],
 * fanIn = in·prod(kernel), fanOut = out·prod(kernel).
 */
import type { Rng } from '../tensor/rng.js';

export type InitName = 'pytorch' | 'xavier-uniform' | 'xavier-normal' | 'kaiming-uniform' | 'kaiming-normal' | 'normal';

export interface InitSpec {
  name: InitName;
  /** Standard deviation for 'normal' (the paper's "small random Gaussian values"; default 0.01). */
  std?: number;
  /** Nonlinearity gain for Kaiming: 'relu' (√2, the default), 'sigmoid' (1), 'tanh' (5/3). */
  nonlinearity?: 'relu' | 'sigmoid' | 'tanh' | 'linear';
}

export const initNames: InitName[] = ['pytorch', 'xavier-uniform', 'xavier-normal', 'kaiming-uniform', 'kaiming-normal', 'normal'];

export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: (shape[1] ?? 1) * receptive, fanOut: shape[0] * receptive };
}

function gain(nonlinearity: InitSpec['nonlinearity'] = 'relu'): number {
  switch (nonlinearity) {
    case 'relu':
      return Math.SQRT2;
    case 'tanh':
      return 5 / 3;
    default:
      return 1;
  }
}

function fillUniform(data: Float32Array, bound: number, rng: Rng): void {
  for (let i = 0; i < data.length; i++) data[i] = rng.uniformRange(-bound, bound);
}

function fillNormal(data: Float32Array, std: number, rng: Rng): void {
  for (let i = 0; i < data.length; i++) data[i] = rng.normal(0, std);
}

/**
 * Fill a weight tensor. 'pytorch' is nn.Linear/nn.Conv2d's default: kaiming_uniform(a=√5), which works
 * out to U(-1/√fanIn, 1/√fanIn).
 */
export function initWeight(data: Float32Array, shape: readonly number[], spec: InitSpec, rng: Rng): void {
  const { fanIn, fanOut } = fans(shape);
  switch (spec.name) {
    case 'pytorch':
      return fillUniform(data, 1 / Math.sqrt(fanIn), rng);
    case 'xavier-uniform':
      return fillUniform(data, Math.sqrt(6 / (fanIn + fanOut)), rng);
    case 'xavier-normal':
      return fillNormal(data, Math.sqrt(2 / (fanIn + fanOut)), rng);
    case 'kaiming-uniform':
      return fillUniform(data, gain(spec.nonlinearity) * Math.sqrt(3 / fanIn), rng);
    case 'kaiming-normal':
      return fillNormal(data, gain(spec.nonlinearity) / Math.sqrt(fanIn), rng);
    case 'normal':
      return fillNormal(data, spec.std ?? 0.01, rng);
    default:
      throw new Error(`Unknown initializer "${(spec as InitSpec).name}". Available: ${initNames.join(', ')}`);
  }
}

/** Biases: PyTorch's default U(-1/√fanIn, 1/√fanIn); zero for every other scheme (the usual choice). */
export function initBias(data: Float32Array, fanIn: number, spec: InitSpec, rng: Rng): void {
  if (spec.name === 'pytorch') fillUniform(data, 1 / Math.sqrt(fanIn), rng);
  else data.fill(0);
}
