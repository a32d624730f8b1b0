/**
 * The Node half of the WebAssembly backend's platform layer (the browser half is in platform.ts): read
 * the compiled .wasm from disk and start kernel workers with worker_threads. Imported dynamically, only
 * when running in Node, so browser bundles never see `node:` modules.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import type { WorkerHandle, WorkerInit } from './threads.js';

/** Running from the TypeScript sources (tsx), not from dist/. */
const fromSource = import.meta.url.endsWith('.ts');

/**
 * The bytes of a compiled kernel module. Next to this file in dist/; when running from the sources, the
 * build output in dist/src/kernels/wasm/ (made by `npm run build:wasm`).
 */
export async function readWasm(file: string): Promise<ArrayBuffer> {
  const candidates = [new URL(`./${file}`, import.meta.url)];
  if (fromSource) candidates.push(new URL(`../../../dist/src/kernels/wasm/${file}`, import.meta.url));
  for (const url of candidates) {
    try {
      const bytes = await readFile(fileURLToPath(url));
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    } catch {
      // try the next place
    }
  }
  throw new Error(`WebAssembly kernels not found (${candidates.map((u) => fileURLToPath(u)).join(', ')}): run "npm run build:wasm" (npm install does it).`);
}

/** A worker_threads worker running worker.ts / worker.js. */
export function spawnWorker(): WorkerHandle {
  let worker: Worker;
  if (fromSource) {
    // Workers do not inherit tsx's loader hooks: register them inside the worker before importing the .ts entry.
    const tsx = import.meta.resolve('tsx/esm/api');
    const entry = new URL('./worker.ts', import.meta.url).href;
    worker = new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`, { eval: true });
  } else {
    worker = new Worker(new URL('./worker.js', import.meta.url));
  }
  // A worker sleeping in Atomics.wait must not keep the process alive.
  worker.unref();
  const readyPromise = new Promise<void>((resolve, reject) => {
    worker.once('message', (m: { ready?: boolean; error?: string }) => (m.ready ? resolve() : reject(new Error(`kernel worker: ${m.error}`))));
    worker.once('error', reject);
  });
  return {
    postMessage: (message: WorkerInit) => worker.postMessage(message),
    ready: () => readyPromise,
    terminate: () => void worker.terminate(),
  };
}

/** Logical processors this process may use. */
export function cores(): number {
  return availableParallelism();
}
