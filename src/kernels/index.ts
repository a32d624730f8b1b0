/**
 * The kernels layer: the Kernels interface, the reference backend, the registry, and the built-in
 * backends (registered by backends.ts).
 */
import './backends.js';

export type { Kernels, MatmulOptions, SgdStepOptions, AdamStepOptions, Window2d, BackendCapabilities, SharedKernelMemory, BackendAttachment } from './kernels.js';
export { referenceKernels } from './reference.js';
export { batchNormReluPoolFits } from './kernels.js';
export { winogradFits, winogradTiles } from './winograd.js';
export {
  registerBackendProvider,
  backendProviders,
  registerBackend,
  availableBackends,
  setBackend,
  getBackend,
  initBackend,
  attachBackend,
  type BackendProvider,
  type BackendOptions,
  type BackendChoice,
} from './registry.js';
// The WebAssembly backend's own API (creating one with options, its split policy) for code that wants it by name.
export { WasmKernels, SplitPolicy, createWasmKernels, detectSimd, type WasmBackendOptions, type WasmSimd } from './wasm/index.js';
