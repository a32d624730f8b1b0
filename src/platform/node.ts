/**
 * The Node half of the platform layer (index.ts has the browser half): files with fs, workers with
 * worker_threads, engine flags with v8. Imported dynamically, only in Node.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import type { Platform, ScriptWorker, WasmFeature } from './index.js';

/** Running from the TypeScript sources (tsx), not from dist/. */
const fromSource = import.meta.url.endsWith('.ts');
/** The package root when running from the sources (this file is src/platform/node.ts). */
const sourceRoot = new URL('../../', import.meta.url);

export function platform(): Platform {
  return {
    kind: 'node',
    readBytes,
    spawnWorker,
    cores: availableParallelism(),
    sharedMemory: true,
    canBlock: true,
    enableWasmFeature,
    engine: `Node ${process.versions.node} (V8 ${process.versions.v8.split('-')[0]})`,
  };
}

/**
 * The bytes of a build asset. From the TypeScript sources, assets are build output (npm run build):
 * src/X is looked for as dist/src/X.
 */
async function readBytes(url: URL): Promise<ArrayBuffer> {
  const candidates = [url];
  if (fromSource && url.href.startsWith(new URL('src/', sourceRoot).href)) candidates.push(new URL(`dist/${url.href.slice(sourceRoot.href.length)}`, sourceRoot));
  for (const candidate of candidates) {
    try {
      const bytes = await readFile(fileURLToPath(candidate));
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    } catch {
      // try the next place
    }
  }
  throw new Error(`${candidates.map((u) => fileURLToPath(u)).join(' or ')} not found: run "npm run build" (npm install does it).`);
}

/**
 * A worker_threads worker on the script at `url` (a .js file; when only its .ts source exists, the
 * source, with tsx's loader registered inside the worker, since workers do not inherit loader hooks).
 */
function spawnWorker(url: URL): ScriptWorker {
  let worker: Worker;
  const source = new URL(url.href.replace(/\.js$/, '.ts'));
  if (url.href.endsWith('.js') && !existsSync(fileURLToPath(url)) && existsSync(fileURLToPath(source))) {
    const tsx = import.meta.resolve('tsx/esm/api');
    worker = new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(source.href)}); })`, { eval: true });
  } else {
    worker = new Worker(url);
  }
  // A worker sleeping in Atomics.wait must not keep the process alive.
  worker.unref();
  const first = new Promise<unknown>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return {
    postMessage: (message: unknown) => worker.postMessage(message),
    firstMessage: () => first,
    terminate: () => void worker.terminate(),
  };
}

const FLAGS: Record<WasmFeature, string> = { 'relaxed-simd': '--experimental-wasm-relaxed-simd' };

/** V8 flags are per process but read when a module is compiled or validated, so setting one late is fine. */
function enableWasmFeature(feature: WasmFeature): void {
  setFlagsFromString(FLAGS[feature]);
}
