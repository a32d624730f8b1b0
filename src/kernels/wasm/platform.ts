/**
 * Where the WebAssembly backend gets its module bytes and its workers: fs and worker_threads in Node
 * (node.ts, loaded dynamically so bundlers never follow it), fetch and Web Workers in browsers. The
 * literal `new URL('./file', import.meta.url)` forms are the ones bundlers (Vite, webpack, esbuild)
 * recognize and copy as assets.
 */
import type { SpawnWorker, WorkerHandle, WorkerInit } from './threads.js';

export interface Platform {
  /** Bytes of the shared-memory or the ordinary-memory build. */
  readWasm(shared: boolean): Promise<ArrayBuffer>;
  spawnWorker: SpawnWorker;
  /** A worker running src/parallel/worker.ts (a model replica for data-parallel training). */
  spawnReplicaWorker(): ScriptWorker;
  /** Logical processors. */
  cores: number;
  /** SharedArrayBuffer is usable (always in Node; in browsers only on cross-origin isolated pages). */
  sharedMemory: boolean;
}

/** A worker that reports once it is ready (its first message) and then talks through shared memory. */
export interface ScriptWorker {
  postMessage(message: unknown): void;
  /** The worker's first message (its "ready" report, or what went wrong), or a rejection with its error. */
  firstMessage(): Promise<unknown>;
  terminate(): void;
}

export const WASM_FILES = { shared: 'bnlab-kernels-shared.wasm', unshared: 'bnlab-kernels.wasm' } as const;

export function isNode(): boolean {
  return typeof process !== 'undefined' && process.versions?.node !== undefined;
}

export async function currentPlatform(): Promise<Platform> {
  if (isNode()) {
    // A variable specifier keeps bundlers from pulling the Node-only file (and node:fs) into browser builds.
    const nodeModule = './node.js';
    const node = (await import(/* @vite-ignore */ /* webpackIgnore: true */ nodeModule)) as typeof import('./node.js');
    return {
      readWasm: (shared) => node.readWasm(shared ? WASM_FILES.shared : WASM_FILES.unshared),
      spawnWorker: node.spawnWorker,
      spawnReplicaWorker: node.spawnReplicaWorker,
      cores: node.cores(),
      sharedMemory: true,
    };
  }
  return {
    readWasm: async (shared) => {
      const url = shared ? new URL('./bnlab-kernels-shared.wasm', import.meta.url) : new URL('./bnlab-kernels.wasm', import.meta.url);
      const response = await fetch(url);
      if (!response.ok) throw new Error(`WebAssembly kernels: fetching ${url} failed (${response.status} ${response.statusText})`);
      return response.arrayBuffer();
    },
    spawnWorker: spawnWebWorker,
    spawnReplicaWorker: spawnReplicaWebWorker,
    cores: typeof navigator !== 'undefined' ? navigator.hardwareConcurrency ?? 1 : 1,
    sharedMemory: typeof SharedArrayBuffer !== 'undefined' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false,
  };
}

function spawnWebWorker(): WorkerHandle {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  const readyPromise = new Promise<void>((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<{ ready?: boolean; error?: string }>) => (e.data.ready ? resolve() : reject(new Error(`kernel worker: ${e.data.error}`)));
    worker.onerror = (e) => reject(new Error(`kernel worker: ${e.message}`));
  });
  return {
    postMessage: (message: WorkerInit) => worker.postMessage(message),
    ready: () => readyPromise,
    terminate: () => worker.terminate(),
  };
}

function spawnReplicaWebWorker(): ScriptWorker {
  const worker = new Worker(new URL('../../parallel/worker.js', import.meta.url), { type: 'module' });
  const first = new Promise<unknown>((resolve, reject) => {
    worker.onmessage = (e: MessageEvent) => resolve(e.data);
    worker.onerror = (e) => reject(new Error(`replica worker: ${e.message}`));
  });
  return {
    postMessage: (message: unknown) => worker.postMessage(message),
    firstMessage: () => first,
    terminate: () => worker.terminate(),
  };
}
