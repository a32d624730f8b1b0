/**
 * Entry point of a kernel worker, the same file for worker_threads (Node) and Web Workers (browsers):
 * wait for the init message, then serve kernel jobs on the shared memory (see threads.ts).
 */
import { serveKernelJobs, type WorkerInit } from './threads.js';
import { workerPort } from '../../platform/index.js';

const p = await workerPort<WorkerInit>();
p.once((init) => {
  serveKernelJobs(init, () => p.post({ ready: true })).catch((e: unknown) => p.post({ error: e instanceof Error ? e.message : String(e) }));
});
