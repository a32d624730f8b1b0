// The lab's build: web/ is the root, the library comes from its compiled dist/src (the same files Node
// runs, with the wasm modules beside them), the data assets from .cache/lab-public (scripts/lab-data.mjs).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const at = (p) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  root: at('.'),
  base: './',
  publicDir: at('../.cache/lab-public'),
  resolve: { alias: { '@bnlab': at('../dist/src') } },
  worker: { format: 'es' },
  build: { outDir: at('../dist-lab'), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 2000, assetsInlineLimit: 0 },
  logLevel: 'warn',
});
