#!/usr/bin/env node
/**
 * npm run build:wasm — compile the WebAssembly kernels (src/kernels/wasm/assembly, AssemblyScript) into
 * dist/src/kernels/wasm/, next to the compiled JavaScript that loads them. Two variants of the same
 * source: one declaring shared memory (threads: workers share it, and growing it keeps every
 * Float32Array view valid) and one with ordinary memory, for browsers without cross-origin isolation,
 * where shared memory is unavailable. `npm install` runs this through prepare → build.
 *
 *   node scripts/build-wasm.mjs [--out DIR] [--wat]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
const outDir = outIndex >= 0 ? resolve(args[outIndex + 1]) : join(root, 'dist/src/kernels/wasm');
const entry = join(root, 'src/kernels/wasm/assembly/index.ts');

// The stub runtime (no allocator, no GC) and no abort handler: the kernels never allocate, and the
// module then has no globals and no data segments, so one memory can back several instances.
// 'threads' enables the atomic instructions (gemmChunked's work counter; valid on both memories).
const common = ['-O3', '--noAssert', '--runtime', 'stub', '--use', 'abort=', '--enable', 'simd', '--enable', 'threads', '--importMemory', '--noExportMemory', '--initialMemory', '1'];
const variants = [
  { file: 'bnlab-kernels-shared.wasm', flags: ['--sharedMemory', '--maximumMemory', '65536'] },
  { file: 'bnlab-kernels.wasm', flags: [] },
];

mkdirSync(outDir, { recursive: true });
for (const { file, flags } of variants) {
  const outFile = join(outDir, file);
  const textFlags = args.includes('--wat') ? ['--textFile', outFile.replace(/\.wasm$/, '.wat')] : [];
  const { error } = await asc.main([entry, '--outFile', outFile, ...common, ...flags, ...textFlags], {
    stdout: process.stdout,
    stderr: process.stderr,
    writeFile: (name, contents, baseDir) => writeFileSync(resolve(baseDir, name), contents),
  });
  if (error) {
    console.error(`build:wasm: ${file} failed: ${error.message}`);
    process.exit(1);
  }
  console.log(`build:wasm: ${outFile}`);
}
