/**
 * Both cores: a pool of workers (worker_threads in Node, Web Workers in browsers) that each instantiate
 * the kernel module on the backend's shared memory. The main thread posts a job (an export and its
 * arguments: byte addresses, so nothing is copied or serialized), works on the same job itself, then
 * either cancels the post (the worker never got to it) or waits for the worker to finish. Jobs share
 * their work through an atomic counter (gemmChunked), claimed work items (batch norm), or fixed parts
 * that the main thread runs itself when it cancels the post (elementwise kernels), so a worker that the
 * OS schedules late, or not at all on a busy machine, only means the main thread does more of the work
 * — never that it waits.
 *
 * Signalling goes through a control block per worker in the shared memory, not through messages
 * (postMessage costs tens of microseconds, an atomic store a few nanoseconds). Layout, in i32 slots:
 *   [0] STATE  IDLE → POSTED (main) → RUNNING (worker claims it by compare-exchange) → DONE (worker) → IDLE
 *              (main); or POSTED → IDLE when the main thread cancels first; QUIT stops the worker
 *   [1] OP     index into WORKER_OPS
 *   [2] WORK   the job's shared work counter (gemmChunked's `counter`), or the batch-norm kernels' claimed
 *              items (a bit each)
 *   [3] DONE   batch-norm work items finished (the kernels wait on it between their phases)
 *   f64 [2..2+MAX_ARGS)  the export's arguments (i32 and f32 values are exact in an f64)
 * An idle worker spins for `spinMicros` before it sleeps in Atomics.wait, because the next big kernel
 * usually follows within microseconds (a Linear layer's backward is two matmuls) and waking a sleeping
 * thread costs 10-50 µs.
 */

import { currentPlatform, type ScriptWorker } from '../../platform/index.js';
import type { WasmExports } from './generated/exports.js';

/**
 * Exports a worker can run, by index (the OP slot): the chunked matmul, the batch-norm kernels
 * (assembly/batchnorm.ts: work items) and the elementwise ones of ELEMENTWISE_PARTS (a part of the values each).
 */
export const WORKER_OPS = [
  'gemmChunked', 'channelMoments', 'batchNormApply', 'batchNormBackward', 'batchNormBackwardReduce', 'batchNormBackwardInput', 'batchNormBackwardFixedStats', 'microKernelPeak',
  'fill', 'sigmoid', 'sigmoidBackward', 'tanh', 'tanhBackward', 'relu', 'reluBackward', 'sgdStep', 'adamStep',
] as const satisfies ReadonlyArray<keyof WasmExports>;
export type WorkerOp = (typeof WORKER_OPS)[number];

/**
 * The elementwise exports the threads share by splitting the values into contiguous parts: each reads
 * and writes value i of its arrays only, so a part is the same call with the arrays' addresses moved on
 * and a smaller count. `pointers`: the arguments that are arrays of n values (0 = no array stays 0);
 * `count`: the argument that is n; `heavy`: a vector exp or a square root and a division per value
 * (1-2 ns a value on one thread), so sharing pays from fewer values than for a pass that only moves
 * memory (0.1-0.5 ns a value; measured at 2^16 values, splitting the latter gained nothing reliable).
 */
export const ELEMENTWISE_PARTS = {
  fill: { pointers: [0], count: 2, heavy: false },
  sigmoid: { pointers: [0, 1], count: 2, heavy: true },
  sigmoidBackward: { pointers: [0, 1, 2], count: 3, heavy: false },
  tanh: { pointers: [0, 1], count: 2, heavy: true },
  tanhBackward: { pointers: [0, 1, 2], count: 3, heavy: false },
  relu: { pointers: [0, 1], count: 2, heavy: false },
  reluBackward: { pointers: [0, 1, 2], count: 3, heavy: false },
  sgdStep: { pointers: [0, 1, 2], count: 3, heavy: false },
  adamStep: { pointers: [0, 1, 2, 3], count: 4, heavy: true },
} as const satisfies Partial<Record<WorkerOp, { pointers: readonly number[]; count: number; heavy: boolean }>>;
export type ElementwiseOp = keyof typeof ELEMENTWISE_PARTS;

export const MAX_ARGS = 16;

/** Call export `run` with the MAX_ARGS values of `args` from index `at`: an export ignores those past its own. */
export function callWithArgs(run: (...args: number[]) => void, args: Float64Array, at = 0): void {
  run(args[at], args[at + 1], args[at + 2], args[at + 3], args[at + 4], args[at + 5], args[at + 6], args[at + 7], args[at + 8], args[at + 9], args[at + 10], args[at + 11], args[at + 12], args[at + 13], args[at + 14], args[at + 15]);
}
/** Bytes of control block per worker (a multiple of 64, so workers never share a cache line). */
export const CONTROL_BYTES = 192;
/** Byte offset of the work counter inside a control block. */
export const WORK_COUNTER = 8;

const STATE = 0;
const OP = 1;
const ARGS_F64 = 2; // f64 index of the first argument (byte 16)

const IDLE = 0;
const POSTED = 1;
const RUNNING = 2;
const DONE = 3;
const QUIT = 4;

/** What the main thread sends a new worker (structured-cloned: the memory and module are shared, not copied). */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** The build: a relaxed-SIMD module needs the feature switched on in the worker too (Node 20). */
  simd: 'simd128' | 'relaxed-simd';
  /** Byte offset of this worker's control block. */
  control: number;
  spinMicros: number;
}

/** A kernel worker (worker.ts) started by the platform layer. */
export type SpawnWorker = () => ScriptWorker;

export class ThreadPool {
  private readonly ints: Int32Array;
  private readonly args: Float64Array;
  private readonly canBlock: boolean;

  private constructor(memory: WebAssembly.Memory, readonly controls: number[], private readonly handles: ScriptWorker[], canBlock: boolean) {
    this.ints = new Int32Array(memory.buffer);
    this.args = new Float64Array(memory.buffer);
    this.canBlock = canBlock;
  }

  /**
   * Start one worker per control block (byte offsets in `memory`) and wait until each is ready.
   * `canBlock`: whether this thread may sleep in Atomics.wait (the platform's answer).
   */
  static async start(spawn: SpawnWorker, build: Pick<WorkerInit, 'module' | 'memory' | 'simd'>, controls: number[], spinMicros: number, canBlock: boolean): Promise<ThreadPool> {
    const handles: ScriptWorker[] = [];
    try {
      for (const control of controls) {
        const h = spawn();
        handles.push(h);
        h.postMessage({ ...build, control, spinMicros } satisfies WorkerInit);
      }
      await Promise.all(
        handles.map(async (h) => {
          const { ready, error } = (await h.firstMessage()) as { ready?: boolean; error?: string };
          if (!ready) throw new Error(`kernel worker: ${error}`);
        }),
      );
    } catch (e) {
      for (const h of handles) h.terminate();
      throw e;
    }
    return new ThreadPool(build.memory, controls, handles, canBlock);
  }

  get size(): number {
    return this.handles.length;
  }

  /** Set argument i of worker w's next job. */
  arg(w: number, i: number, value: number): void {
    this.args[this.controls[w] / 8 + ARGS_F64 + i] = value;
  }

  /** Byte address of worker w's work counter (zeroed here, with the DONE count after it: call before `post`). */
  workCounter(w: number): number {
    Atomics.store(this.ints, (this.controls[w] + WORK_COUNTER) >> 2, 0);
    Atomics.store(this.ints, ((this.controls[w] + WORK_COUNTER) >> 2) + 1, 0);
    return this.controls[w] + WORK_COUNTER;
  }

  /** Offer `op` with the arguments set by `arg` to worker w; true when the worker was asleep (it then starts tens of µs late). */
  post(w: number, op: number): boolean {
    const base = this.controls[w] >> 2;
    this.ints[base + OP] = op;
    Atomics.store(this.ints, base + STATE, POSTED);
    return Atomics.notify(this.ints, base + STATE) > 0;
  }

  /**
   * After the main thread's share: withdraw the offer if worker w has not taken it (returns true: the
   * job did not run there), else wait until it is done (returns false).
   */
  finish(w: number): boolean {
    const i = (this.controls[w] >> 2) + STATE;
    if (Atomics.compareExchange(this.ints, i, POSTED, IDLE) === POSTED) return true;
    for (let spin = 0; Atomics.load(this.ints, i) !== DONE; spin++) {
      // The worker is mid-block: spin, then sleep in short naps where the platform allows blocking.
      if (spin > 4000 && this.canBlock) Atomics.wait(this.ints, i, RUNNING, 1);
    }
    Atomics.store(this.ints, i, IDLE);
    return false;
  }

  /** Wait until worker w has run the job posted to it (never withdraws it: for jobs that must run on the worker). */
  complete(w: number): void {
    const i = (this.controls[w] >> 2) + STATE;
    for (let spin = 0; Atomics.load(this.ints, i) !== DONE; spin++) {
      if (spin > 4000 && this.canBlock) Atomics.wait(this.ints, i, Atomics.load(this.ints, i), 1);
    }
    Atomics.store(this.ints, i, IDLE);
  }

  /** Stop every worker. */
  close(): void {
    for (let w = 0; w < this.handles.length; w++) {
      const i = (this.controls[w] >> 2) + STATE;
      Atomics.store(this.ints, i, QUIT);
      Atomics.notify(this.ints, i);
      this.handles[w].terminate();
    }
  }
}

/**
 * The worker's side: instantiate the module on the shared memory, report ready, then serve jobs until
 * QUIT. Blocking in Atomics.wait is fine in a worker. Shared by the Node and the browser worker entry.
 */
export async function serveKernelJobs(init: WorkerInit, ready: () => void): Promise<void> {
  if (init.simd === 'relaxed-simd') (await currentPlatform()).enableWasmFeature('relaxed-simd');
  const instance = await WebAssembly.instantiate(init.module, { env: { memory: init.memory } });
  const exports = instance.exports as unknown as Record<WorkerOp, (...args: number[]) => void>;
  const ops = WORKER_OPS.map((name) => exports[name]);
  const ints = new Int32Array(init.memory.buffer);
  const args = new Float64Array(init.memory.buffer);
  const state = (init.control >> 2) + STATE;
  const a = init.control / 8 + ARGS_F64;
  ready();
  let idleSince = performance.now();
  for (let i = 0; ; i++) {
    const s = Atomics.load(ints, state);
    if (s === QUIT) return;
    if (s === POSTED && Atomics.compareExchange(ints, state, POSTED, RUNNING) === POSTED) {
      const op = ops[ints[(init.control >> 2) + OP]];
      callWithArgs(op, args, a);
      Atomics.store(ints, state, DONE);
      Atomics.notify(ints, state);
      idleSince = performance.now();
      continue;
    }
    // Spin a while (the next job is usually close), then sleep until the state changes.
    if ((i & 255) === 0 && performance.now() - idleSince > init.spinMicros / 1000) {
      Atomics.wait(ints, state, s);
      idleSince = performance.now();
    }
  }
}
