#!/usr/bin/env node
/**
 * The test tiers. `npm test` runs every file on the reference (ts) backend, then `npm run test:wasm`
 * runs again, with the wasm backend preloaded, only the files whose results depend on the backend.
 *
 *   node scripts/test.mjs wasm   the backend-dependent files on the wasm backend (npm run test:wasm)
 *   node scripts/test.mjs fast   unit, gradient and conformance tests on ts, then on wasm (npm run test:fast)
 *
 * A new test file runs on both backends unless it is listed in ONCE below.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TEST = join(ROOT, 'test');

/**
 * Files that do not depend on the active backend: they spawn the CLI (which picks its own), parse
 * files, fuzz parsers, run the experiments on the backend they choose ('auto'), install the packed
 * package, drive the lab (its workers use wasm), or test the wasm kernels and the browser build by name. One run on the ts pass is enough.
 */
const ONCE = ['cli', 'io-cli', 'io-fuzz', 'io-hostile', 'experiments', 'landscape', 'rng', 'wasm-kernels', 'wasm-browser', 'installed-package', 'own-data', 'own-data-cli', 'pytorch-ddp', 'lab', 'lab-panels', 'lab-bundle', 'digit', 'two-feature', 'metrics'];

/** The fast tier: unit, gradient and conformance tests of the math, each a few seconds. */
const FAST = ['tensor', 'kernels', 'batchnorm', 'bn-variants', 'gradients', 'norms', 'conv', 'optim', 'fuse', 'conformance'];
/** Also in the fast tier, on one pass only: the wasm kernels against the reference ones, the PRNG, the smoothness math. */
const FAST_ONCE = ['wasm-kernels', 'rng', 'landscape'];

const WASM_PRELOAD = ['--import', './test/support/wasm-backend.ts'];

function files(names) {
  return names.map((n) => {
    const f = join('test', `${n}.test.ts`);
    if (!existsSync(join(ROOT, f))) throw new Error(`scripts/test.mjs: ${f} is listed but does not exist`);
    return f;
  });
}

function run(label, testFiles, preload = []) {
  console.log(`\n# ${label}: ${testFiles.length} files`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', ...preload, '--test', '--test-concurrency=2', ...testFiles], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`# ${label} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
}

const all = readdirSync(TEST).filter((f) => f.endsWith('.test.ts')).map((f) => f.slice(0, -'.test.ts'.length)).sort();
for (const n of [...ONCE, ...FAST, ...FAST_ONCE]) if (!all.includes(n)) throw new Error(`scripts/test.mjs: test/${n}.test.ts is listed but does not exist`);

const tier = process.argv[2];
if (tier === 'wasm') {
  run('wasm backend, backend-dependent tests', files(all.filter((n) => !ONCE.includes(n))), WASM_PRELOAD);
} else if (tier === 'fast') {
  run('fast tier, ts backend', files([...FAST, ...FAST_ONCE]));
  run('fast tier, wasm backend', files(FAST), WASM_PRELOAD);
} else {
  console.error('usage: node scripts/test.mjs wasm|fast');
  process.exit(2);
}
