/**
 * Preload for running the whole suite on the WebAssembly backend (`npm run test:wasm`): makes 'wasm'
 * the active backend before any test module builds a model, so every test that does not pick a backend
 * itself runs its modules on the wasm kernels.
 */
import { initBackend } from '../../src/kernels/index.js';

await initBackend('wasm');
