/**
 * Entry point of a kernel worker, the same file for worker_threads (Node) and Web Workers (browsers):
 * wait for the init message, then serve kernel jobs on the shared memory (see threads.ts).
 */
import { serveKernelJobs, type WorkerInit } from './threads.js';

interface Port {
  once(handler: (init: WorkerInit) => void): void;
  post(message: unknown): void;
}

async function port(): Promise<Port> {
  const isNode = typeof process !== 'undefined' && process.versions?.node !== undefined && typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope === 'undefined';
  if (isNode) {
    const { parentPort } = await import('node:worker_threads');
    if (!parentPort) throw new Error('kernel worker: not running in a worker thread');
    return { once: (h) => parentPort.once('message', h), post: (m) => parentPort.postMessage(m) };
  }
  const scope = globalThis as unknown as { onmessage: ((e: MessageEvent) => void) | null; postMessage(m: unknown): void };
  return {
    once: (h) => {
      scope.onmessage = (e) => {
        scope.onmessage = null;
        h(e.data as WorkerInit);
      };
    },
    post: (m) => scope.postMessage(m),
  };
}

const p = await port();
p.once((init) => {
  serveKernelJobs(init, () => p.post({ ready: true })).catch((e: unknown) => p.post({ error: e instanceof Error ? e.message : String(e) }));
});
