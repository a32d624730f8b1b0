import type { Kernels } from './kernels.js';
import { referenceKernels } from './reference.js';

export type { Kernels, MatmulOptions, SgdStepOptions, AdamStepOptions, Window2d } from './kernels.js';
export { referenceKernels } from './reference.js';

const registry = new Map<string, Kernels>([[referenceKernels.name, referenceKernels]]);
let active: Kernels = referenceKernels;

/** Make a backend available by name (e.g. 'wasm'); the reference 'ts' backend is always there. */
export function registerBackend(kernels: Kernels): void {
  registry.set(kernels.name, kernels);
}

export function availableBackends(): string[] {
  return [...registry.keys()];
}

/** Choose the backend modules use from now on. Modules built earlier keep the one they were built with. */
export function setBackend(name: string): Kernels {
  const k = registry.get(name);
  if (!k) throw new Error(`Unknown backend "${name}". Available: ${availableBackends().join(', ')}`);
  active = k;
  return k;
}

export function getBackend(): Kernels {
  return active;
}
