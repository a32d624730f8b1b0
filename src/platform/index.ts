/**
 * The platform layer: what differs between Node and browsers, for the kernels and the parallel trainer
 * alike — reading a build asset (a .wasm file), starting a worker on a module file, the number of
 * cores, whether shared memory and blocking waits are allowed, and switching on WebAssembly features
 * that an older engine keeps behind a flag. The Node half (node.ts: fs, worker_threads, v8) is loaded
 * dynamically, only in Node, so browser bundles never see a `node:` module; this file is browser-safe.
 *
 * Callers pass `new URL('./file', import.meta.url)` written out in their own module: that literal form
 * is what bundlers (Vite, webpack, esbuild) recognize and copy as an asset or a worker entry.
 */

export { workerPort, type WorkerPort } from './worker-port.js';

/** A worker that reports once it is ready (its first message) and then talks through shared memory. */
export interface ScriptWorker {
  postMessage(message: unknown): void;
  /** The worker's first message (its "ready" report, or what went wrong), or a rejection with its error. */
  firstMessage(): Promise<unknown>;
  terminate(): void;
}

/** A WebAssembly proposal an engine may ship behind a flag (Node 20: relaxed SIMD). */
export type WasmFeature = 'relaxed-simd';

export interface Platform {
  /** 'node' or 'browser' (a page or a Web Worker). */
  readonly kind: 'node' | 'browser';
  /** The bytes of a build asset (a .wasm file) at `url`. */
  readBytes(url: URL): Promise<ArrayBuffer>;
  /** Start a module worker on the script at `url` (the .js next to the caller; from the TypeScript sources, its .ts). */
  spawnWorker(url: URL): ScriptWorker;
  /** Logical processors this process may use. */
  readonly cores: number;
  /** SharedArrayBuffer is usable (always in Node; in browsers only on cross-origin isolated pages). */
  readonly sharedMemory: boolean;
  /** This thread may block in Atomics.wait (browsers forbid it on a page's main thread). */
  readonly canBlock: boolean;
  /**
   * Switch on a WebAssembly feature the engine has behind a flag, before compiling a module that uses
   * it (Node 20: `--experimental-wasm-relaxed-simd` through v8.setFlagsFromString; every thread that
   * compiles or validates such a module calls it). A no-op where there is no such switch (browsers).
   */
  enableWasmFeature(feature: WasmFeature): void;
  /** A short description of the engine, for reports ("Node 20.20.2 (V8 11.3)", a browser's user agent). */
  readonly engine: string;
}

export function isNode(): boolean {
  return typeof process !== 'undefined' && process.versions?.node !== undefined;
}

let current: Promise<Platform> | null = null;

/** The platform this code runs on (computed once). */
export function currentPlatform(): Promise<Platform> {
  return (current ??= isNode() ? nodePlatform() : Promise.resolve(browserPlatform()));
}

async function nodePlatform(): Promise<Platform> {
  // A variable specifier keeps bundlers from pulling the Node-only file (and node:fs) into browser builds.
  const file = './node.js';
  const node = (await import(/* @vite-ignore */ /* webpackIgnore: true */ file)) as typeof import('./node.js');
  return node.platform();
}

function browserPlatform(): Platform {
  return {
    kind: 'browser',
    readBytes: async (url) => {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`fetching ${url} failed (${response.status} ${response.statusText})`);
      return response.arrayBuffer();
    },
    spawnWorker: spawnWebWorker,
    cores: typeof navigator !== 'undefined' ? navigator.hardwareConcurrency ?? 1 : 1,
    sharedMemory: typeof SharedArrayBuffer !== 'undefined' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false,
    canBlock: canBlockHere(),
    enableWasmFeature: () => {},
    engine: typeof navigator !== 'undefined' ? navigator.userAgent : 'unknown browser',
  };
}

function spawnWebWorker(url: URL): ScriptWorker {
  const worker = new Worker(url, { type: 'module' });
  const first = new Promise<unknown>((resolve, reject) => {
    worker.onmessage = (e: MessageEvent) => resolve(e.data);
    worker.onerror = (e) => reject(new Error(`worker ${url.pathname.split('/').slice(-2).join('/')}: ${e.message}`));
  });
  return {
    postMessage: (message: unknown) => worker.postMessage(message),
    firstMessage: () => first,
    terminate: () => worker.terminate(),
  };
}

/** Whether this thread may block in Atomics.wait: browsers forbid it on the main thread (it would freeze the page). */
export function canBlockHere(): boolean {
  if (typeof SharedArrayBuffer === 'undefined') return false;
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}
