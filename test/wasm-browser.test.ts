/**
 * The WebAssembly backend in a real browser (Chromium through playwright-core), from the same compiled
 * files as Node (dist/src): the module is fetched, workers are Web Workers. Two pages: a cross-origin
 * isolated one (COOP/COEP headers: shared memory, two threads) and a plain one (the ordinary-memory
 * build). Both pages check the build the backend picked (relaxed SIMD where Chromium has it, 114+).
 * A missing Chromium or an unbuilt dist/ fails with the command that fixes it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist/src');
const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));

/** Fails (never skips) when something the test needs is missing, naming the command that installs it. */
function requireBrowserAndBuild(): string {
  if (!chromium) throw new Error('Chromium is not installed (looked for /usr/bin/chromium): install it with  apt-get install chromium');
  const built = existsSync(join(dist, 'kernels/wasm/backend.js')) && existsSync(join(dist, 'kernels/wasm/bnlab-kernels-shared.wasm'));
  if (!built) throw new Error(`${dist} has no wasm backend: build it with  npm run build  (npm test does it first)`);
  return chromium;
}

const TYPES: Record<string, string> = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };

/** Serves dist/src; with `isolated`, the COOP/COEP headers that make SharedArrayBuffer available. */
function serve(isolated: boolean): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url!, 'http://x').pathname));
    const headers: Record<string, string> = isolated ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } : {};
    if (path === '/') {
      res.writeHead(200, { ...headers, 'Content-Type': 'text/html' }).end('<!doctype html><title>bnlab</title>');
      return;
    }
    const file = join(dist, path);
    if (!file.startsWith(dist) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/` })));
}

interface PageResult {
  simd: string;
  variant: string;
  shared: boolean;
  threads: number;
  matmulError: number;
  lossWasm: number;
  lossTs: number;
  allocatedInMemory: boolean;
  /** The same three steps on two threads (data-parallel, synchronized BN), on the isolated page. */
  lossParallel: number | null;
}

/**
 * What runs in the page: a matmul, and three training steps of the paper's network on wasm and on the
 * reference. A string, not a function, so that no transpiler helper ends up in the page.
 */
const pageCheck = (threads: number) => `(async () => {
  // The modules themselves, not the package index: a bare npm specifier (the index reaches protobufjs)
  // needs a bundler or an import map, which is not what this test is about.
  const lib = {
    ...(await import('/kernels/index.js')),
    ...(await import('/models/presets.js')),
    ...(await import('/nn/loss.js')),
    ...(await import('/optim/optimizer.js')),
    ...(await import('/tensor/tensor.js')),
    ...(await import('/tensor/rng.js')),
    ...(await import('/parallel/data-parallel.js')),
  };
  const wasm = await lib.createWasmKernels({ threads: ${threads}, split: 'always', parallelMinMacs: 1 });
  const ref = lib.referenceKernels;
  const rng = new lib.Rng(1);
  const [m, k, n] = [37, 65, 29];
  const a = wasm.allocate(m * k), b = wasm.allocate(n * k), out = wasm.allocate(m * n), expected = new Float32Array(m * n);
  const allocatedInMemory = a.buffer === wasm.memory.buffer; // before anything grows the memory (a new buffer object)
  for (let i = 0; i < a.length; i++) a[i] = rng.normal();
  for (let i = 0; i < b.length; i++) b[i] = rng.normal();
  wasm.matmul(a, b, out, m, k, n, { transB: true });
  ref.matmul(a, b, expected, m, k, n, { transB: true });
  let matmulError = 0;
  for (let i = 0; i < out.length; i++) matmulError = Math.max(matmulError, Math.abs(out[i] - expected[i]));
  const losses = [];
  for (const kernels of [wasm, ref]) {
    lib.registerBackend(kernels);
    lib.setBackend(kernels.name);
    const model = lib.buildPreset('ioffe-mlp', { bn: true, seed: 3 });
    const loss = new lib.CrossEntropyLoss(kernels);
    const opt = new lib.SGD(model.parameters(), { lr: 0.5 });
    const data = new lib.Rng(4);
    const x = new lib.Tensor([60, 784], Float32Array.from({ length: 60 * 784 }, () => data.uniform()));
    const y = Int32Array.from({ length: 60 }, () => data.int(10));
    let value = 0;
    for (let s = 0; s < 3; s++) {
      opt.zeroGrad();
      value = loss.forward(model.forward(x), y);
      model.backward(loss.backward());
      opt.step();
    }
    losses.push(value);
  }
  let lossParallel = null;
  if (${threads} > 1) {
    // Data-parallel on two threads: a replica in a module Web Worker on the same shared memory.
    lib.setBackend(wasm.name);
    const model = lib.buildPreset('ioffe-mlp', { bn: true, seed: 3 });
    const opt = new lib.SGD(model.parameters(), { lr: 0.5 });
    const parallel = await lib.DataParallel.create(model, { threads: 2, inputShape: [784], optimizer: opt });
    const data = new lib.Rng(4);
    const x = new lib.Tensor([60, 784], Float32Array.from({ length: 60 * 784 }, () => data.uniform()));
    const y = Int32Array.from({ length: 60 }, () => data.int(10));
    for (let s = 0; s < 3; s++) lossParallel = parallel.trainStep(x, y);
    parallel.close();
  }
  const result = { simd: wasm.simd, variant: wasm.capabilities.variant, shared: wasm.shared, threads: wasm.threads, matmulError, lossWasm: losses[0], lossTs: losses[1], allocatedInMemory, lossParallel };
  wasm.close();
  return result;
})()`;

for (const isolated of [true, false]) {
  test(`wasm backend in Chromium, ${isolated ? 'cross-origin isolated: shared memory and a Web Worker' : 'not isolated: ordinary memory, one thread'}`, { timeout: 60_000 }, async () => {
    const executablePath = requireBrowserAndBuild();
    const { chromium: launcher } = await import('playwright-core');
    const { server, url } = await serve(isolated);
    const browser = await launcher.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(url);
      assert.equal(await page.evaluate('globalThis.crossOriginIsolated'), isolated);
      const r = (await page.evaluate(pageCheck(isolated ? 2 : 1))) as PageResult;
      assert.deepEqual(errors, []);
      assert.equal(r.shared, isolated);
      const relaxed = (await page.evaluate('WebAssembly.validate(new Uint8Array([0,97,115,109,1,0,0,0,1,8,1,96,3,123,123,123,1,123,3,2,1,0,10,13,1,11,0,32,0,32,1,32,2,253,133,2,11]))')) as boolean;
      assert.equal(r.simd, relaxed ? 'relaxed-simd' : 'simd128');
      assert.equal(r.variant, `wasm ${r.simd}${isolated ? '' : ', ordinary memory'}`);
      assert.equal(r.threads, isolated ? 2 : 1);
      assert.ok(r.allocatedInMemory);
      assert.ok(r.matmulError < 1e-4, `matmul error ${r.matmulError}`);
      assert.ok(Math.abs(r.lossWasm - r.lossTs) < 1e-4, `loss after 3 steps: wasm ${r.lossWasm}, ts ${r.lossTs}`);
      if (isolated) assert.ok(r.lossParallel !== null && Math.abs(r.lossParallel - r.lossWasm) < 1e-4, `loss after 3 steps: two threads ${r.lossParallel}, one ${r.lossWasm}`);
    } finally {
      await browser.close();
      server.close();
    }
  });
}
