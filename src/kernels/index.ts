import type { Kernels } from './kernels.js';
import { referenceKernels } from './reference.js';
import { createWasmKernels, type WasmBackendOptions } from './wasm/backend.js';

export type { Kernels, MatmulOptions, SgdStepOptions, AdamStepOptions, Window2d } from './kernels.js';
export { referenceKernels } from './reference.js';
export { WasmKernels, SplitPolicy, createWasmKernels, type WasmBackendOptions } from './wasm/backend.js';

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
  if (!k && name === 'wasm') throw new Error('The "wasm" backend must be created first: await initBackend(\'wasm\') (compiling WebAssembly is asynchronous).');
  if (!k) throw new Error(`Unknown backend "${name}". Available: ${availableBackends().join(', ')}`);
  active = k;
  return k;
}

export function getBackend(): Kernels {
  return active;
}

/** Backend names `initBackend` accepts: the reference 'ts', WebAssembly SIMD 'wasm', or 'auto'. */
export type BackendChoice = 'ts' | 'wasm' | 'auto';

/**
 * Create a backend if needed, register it and make it the active one (what `getBackend()` returns and
 * new modules use). Async because the WebAssembly backend compiles its module (and starts its workers
 * when `threads > 1`) first; every kernel call after that is synchronous.
 *
 * 'auto' picks the fastest backend that works here: 'wasm' (WebAssembly SIMD: Node 16.4+, every current
 * browser), else the reference 'ts'. A 'wasm' backend created earlier is reused unless options are given.
 *
 * ```ts
 * await initBackend('wasm', { threads: 2 });
 * const model = buildPreset('ioffe-mlp'); // its buffers live in the wasm memory
 * ```
 */
export async function initBackend(name: BackendChoice | string = 'auto', options?: WasmBackendOptions): Promise<Kernels> {
  if (name === 'ts') return setBackend('ts');
  if (name !== 'wasm' && name !== 'auto') return setBackend(name);
  const existing = registry.get('wasm');
  if (existing && !options) return setBackend('wasm');
  try {
    const created = await createWasmKernels(options);
    if (existing && 'close' in existing) (existing as { close(): void }).close();
    registerBackend(created);
    return setBackend('wasm');
  } catch (e) {
    if (name === 'wasm') throw e;
    return setBackend('ts');
  }
}
