/**
 * The Node half of the WebAssembly backend's platform layer (the browser half is in platform.ts): read
 * the compiled .wasm from disk and start kernel workers with worker_threads. Imported dynamically, only
 * when running in Node, so browser bundles never see `node:` modules.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import type { ScriptWorker } from './platform.js';
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

/**
 * A worker_threads worker running `entry` (a path relative to this file, without extension: the .ts
 * source under tsx, the .js build otherwise).
 */
function startWorker(entry: string): Worker {
  let worker: Worker;
  if (fromSource) {
    // Workers do not inherit tsx's loader hooks: register them inside the worker before importing the .ts entry.
    const tsx = import.meta.resolve('tsx/esm/api');
    const url = new URL(`${entry}.ts`, import.meta.url).href;
    worker = new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(url)}); })`, { eval: true });
  } else {
    worker = new Worker(new URL(`${entry}.js`, import.meta.url));
  }
  // A worker sleeping in Atomics.wait must not keep the process alive.
  worker.unref();
  return worker;
}

/** The worker's first message, or its error. */
function firstMessage(worker: Worker): Promise<unknown> {
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

/** A kernel worker (worker.ts): serves split matmuls. */
export function spawnWorker(): WorkerHandle {
  const worker = startWorker('./worker');
  const readyPromise = firstMessage(worker).then((m) => {
    const { ready, error } = m as { ready?: boolean; error?: string };
    if (!ready) throw new Error(`kernel worker: ${error}`);
  });
  return {
    postMessage: (message: WorkerInit) => worker.postMessage(message),
    ready: () => readyPromise,
    terminate: () => void worker.terminate(),
  };
}

/** A replica worker (src/parallel/worker.ts): runs a copy of a model for data-parallel training. */
export function spawnReplicaWorker(): ScriptWorker {
  const worker = startWorker('../../parallel/worker');
  const first = firstMessage(worker);
  return {
    postMessage: (message: unknown) => worker.postMessage(message),
    firstMessage: () => first,
    terminate: () => void worker.terminate(),
  };
}

/** Logical processors this process may use. */
export function cores(): number {
  return availableParallelism();
}
