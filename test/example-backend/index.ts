/**
 * A backend as a plug-in, in its own folder: the reference kernels with this backend's own matmul (a
 * plain i-k-j loop) — what a new backend starts as before its kernels are replaced one by one. Adding
 * it takes this folder and one line: `registerBackendProvider(exampleBackend)`.
 */
import { referenceKernels, type BackendProvider, type Kernels, type MatmulOptions } from '../../src/index.js';

/** Calls of this backend's matmul, so a test can see that training really ran on it. */
export const exampleCalls = { matmul: 0 };

function matmul(a: Float32Array, b: Float32Array, out: Float32Array, m: number, k: number, n: number, opts: MatmulOptions = {}): void {
  exampleCalls.matmul++;
  const { transA = false, transB = false, accumulate = false } = opts;
  if (!accumulate) out.fill(0, 0, m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = transA ? a[p * m + i] : a[i * k + p];
      for (let j = 0; j < n; j++) out[i * n + j] += av * (transB ? b[j * k + p] : b[p * n + j]);
    }
  }
}

export const exampleKernels: Kernels = {
  ...referenceKernels,
  name: 'example',
  capabilities: { threads: 1, sharedMemory: false, simd: null, variant: 'example (i-k-j matmul)' },
  matmul,
};

export const exampleBackend: BackendProvider = {
  name: 'example',
  description: 'an example plug-in: the reference kernels with a plain matmul',
  priority: -1, // never preferred by 'auto'
  available: async () => true,
  create: async () => exampleKernels,
};
