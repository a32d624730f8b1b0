/** Test helpers around the library's finite-difference gradient check (src/nn/gradcheck.ts). */
import { Rng, Tensor } from '../../src/index.js';

export { gradCheck, type GradCheckResult } from '../../src/index.js';

export function randomTensor(shape: number[], rng: Rng, scale = 1, shift = 0): Tensor {
  const t = new Tensor(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = shift + scale * rng.normal();
  return t;
}
