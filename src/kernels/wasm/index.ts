/**
 * The WebAssembly backend's folder entry: its provider for the registry (name 'wasm', the variants it
 * has and how it detects them) and its public API.
 */
import type { BackendAttachment } from '../kernels.js';
import type { BackendOptions, BackendProvider } from '../registry.js';
import { attachWasmKernels, createWasmKernels, detectSimd, type WasmAttachment, type WasmBackendOptions } from './backend.js';

export { WasmKernels, SplitPolicy, createWasmKernels, attachWasmKernels, detectSimd, type WasmBackendOptions, type WasmSimd } from './backend.js';

export const wasmBackend: BackendProvider = {
  name: 'wasm',
  description: 'WebAssembly SIMD, with relaxed-SIMD fused multiply-add where the engine has it',
  priority: 10,
  available: async () => (await detectSimd()) !== null,
  create: (options?: BackendOptions) => createWasmKernels(options as WasmBackendOptions | undefined),
  attach: (attachment: BackendAttachment) => attachWasmKernels(attachment as unknown as WasmAttachment),
};
