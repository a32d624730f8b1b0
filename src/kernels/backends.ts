/**
 * The built-in backends: one line each. A new backend is a folder under src/kernels/ whose index.ts
 * exports a BackendProvider (see registry.ts and docs/wasm-backend.md "Adding a backend"), plus its line here.
 */
import { registerBackendProvider } from './registry.js';
import { wasmBackend } from './wasm/index.js';

registerBackendProvider(wasmBackend);
