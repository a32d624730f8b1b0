/**
 * Entry point of a replica worker (data-parallel training), the same file for worker_threads (Node) and
 * Web Workers (browsers): build the replica from the init message, report its gradient buffers, then
 * train on its shard of every batch until rank 0 ends the group (see replica.ts).
 */
import { workerPort } from '../platform/index.js';
import { serveReplica, type ReplicaInit } from './replica.js';

const p = await workerPort<ReplicaInit>();
p.once((init) => {
  serveReplica(init, (ready) => p.post(ready)).catch((e: unknown) => p.post({ error: e instanceof Error ? e.message : String(e) }));
});
