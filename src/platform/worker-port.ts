/**
 * The message port of the worker this code runs in, the same for worker_threads (Node) and Web Workers
 * (browsers): workers get one init message, answer once ("ready" or an error), and afterwards talk only
 * through shared memory.
 */
export interface WorkerPort<Init> {
  once(handler: (init: Init) => void): void;
  post(message: unknown): void;
}

export async function workerPort<Init>(): Promise<WorkerPort<Init>> {
  const isNode = typeof process !== 'undefined' && process.versions?.node !== undefined && typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope === 'undefined';
  if (isNode) {
    // A variable specifier keeps bundlers from pulling node:worker_threads into browser builds.
    const threadsModule = 'node:worker_threads';
    const { parentPort } = (await import(/* @vite-ignore */ threadsModule)) as typeof import('node:worker_threads');
    if (!parentPort) throw new Error('not running in a worker thread');
    return { once: (h) => parentPort.once('message', h), post: (m) => parentPort.postMessage(m) };
  }
  const scope = globalThis as unknown as { onmessage: ((e: MessageEvent) => void) | null; postMessage(m: unknown): void };
  return {
    once: (h) => {
      scope.onmessage = (e) => {
        scope.onmessage = null;
        h(e.data as Init);
      };
    },
    post: (m) => scope.postMessage(m),
  };
}
