/**
 * Preload for running the whole suite on the WebAssembly backend (`npm run test:wasm`, and
 * `test:wasm-simd128` with BNLAB_TEST_WASM_SIMD=simd128): makes 'wasm' the active backend, in the build
 * asked for (default: the best one here), before any test module builds a model, so every test that does
 * not pick a backend itself runs its modules on those kernels.
 */
import { initBackend, type WasmSimd } from '../../src/kernels/index.js';

const simd = process.env.BNLAB_TEST_WASM_SIMD as WasmSimd | undefined;
await initBackend('wasm', simd ? { simd } : undefined);
