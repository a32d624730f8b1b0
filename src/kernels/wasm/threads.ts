/**
 * Both cores: a pool of workers (worker_threads in Node, Web Workers in browsers) that each instantiate
 * the kernel module on the backend's shared memory and run kernel calls on request. The main thread
 * splits a big kernel (a matmul) into parts, posts all but one part to workers, runs the last itself and
 * waits; a part is a plain export call on byte addresses, so nothing is copied or serialized.
 *
 * Signalling goes through a control block per worker in the shared memory, not through messages:
 * postMessage costs tens of microseconds, Atomics.store + Atomics.notify a fraction of one. Layout
 * (Int32 slots, then Float64 arguments):
 *   [0] SEQ   job number, bumped by the main thread to start a job (the worker waits on it)
 *   [1] DONE  number of the last job the worker finished (the main thread waits on it)
 *   [2] OP    index into WORKER_OPS, or -1 to stop
 *   f64 [4..4+MAX_ARGS)  the export's arguments (i32 and f32 values are exact in an f64)
 * A worker spins for `spinMicros` after each job before going to sleep in Atomics.wait, because the
 * next big kernel usually follows within microseconds (the three matmuls of a Linear layer's backward)
 * and waking a sleeping thread costs 10-50 µs.
 */

/** Exports a worker can run, by index (the OP slot). */
export const WORKER_OPS = ['gemm'] as const;
export type WorkerOp = (typeof WORKER_OPS)[number];

export const MAX_ARGS = 14;
/** Bytes of control block per worker (a multiple of 64: workers never share a cache line). */
export const CONTROL_BYTES = 192;
const SEQ = 0;
const DONE = 1;
const OP = 2;
const ARGS_F64 = 2; // f64 index of the first argument (byte 16)

/** What the main thread sends a new worker (structured-cloned: the memory and module are shared, not copied). */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** Byte offset of this worker's control block. */
  control: number;
  spinMicros: number;
}

/** The one thing the pool needs from a platform's worker: send the init message, hear "ready", stop it. */
export interface WorkerHandle {
  postMessage(message: WorkerInit): void;
  /** Resolves when the worker reports it has instantiated the module, rejects on its error. */
  ready(): Promise<void>;
  terminate(): void;
}

export type SpawnWorker = () => WorkerHandle;

export class ThreadPool {
  private readonly ints: Int32Array;
  private readonly args: Float64Array;
  private readonly seq: number[];
  private readonly canBlock: boolean;

  private constructor(memory: WebAssembly.Memory, private readonly controls: number[], private readonly handles: WorkerHandle[]) {
    this.ints = new Int32Array(memory.buffer);
    this.args = new Float64Array(memory.buffer);
    this.seq = controls.map(() => 0);
    this.canBlock = mainThreadCanBlock();
  }

  /** Start `count` workers on `memory` (control blocks at the given byte offsets) and wait until each is ready. */
  static async start(spawn: SpawnWorker, module: WebAssembly.Module, memory: WebAssembly.Memory, controls: number[], spinMicros: number): Promise<ThreadPool> {
    const handles: WorkerHandle[] = [];
    try {
      for (const control of controls) {
        const h = spawn();
        handles.push(h);
        h.postMessage({ module, memory, control, spinMicros });
      }
      await Promise.all(handles.map((h) => h.ready()));
    } catch (e) {
      for (const h of handles) h.terminate();
      throw e;
    }
    return new ThreadPool(memory, controls, handles);
  }

  get size(): number {
    return this.handles.length;
  }

  /** Set argument i of worker w's next job. */
  arg(w: number, i: number, value: number): void {
    this.args[this.controls[w] / 8 + ARGS_F64 + i] = value;
  }

  /** Start worker w on `op` with the arguments set by `arg`. */
  run(w: number, op: number): void {
    const base = this.controls[w] >> 2;
    this.ints[base + OP] = op;
    Atomics.store(this.ints, base + SEQ, ++this.seq[w]);
    Atomics.notify(this.ints, base + SEQ);
  }

  /** Wait until worker w has finished its current job. */
  wait(w: number): void {
    const base = this.controls[w] >> 2;
    const target = this.seq[w];
    for (let spin = 0; Atomics.load(this.ints, base + DONE) !== target; spin++) {
      // Spin first (the worker usually finishes within microseconds of us), then sleep where allowed.
      if (spin > 2000 && this.canBlock) Atomics.wait(this.ints, base + DONE, Atomics.load(this.ints, base + DONE), 1);
    }
  }

  /** Stop every worker. */
  close(): void {
    for (let w = 0; w < this.handles.length; w++) {
      const base = this.controls[w] >> 2;
      this.ints[base + OP] = -1;
      Atomics.store(this.ints, base + SEQ, ++this.seq[w]);
      Atomics.notify(this.ints, base + SEQ);
      this.handles[w].terminate();
    }
  }
}

/** Browsers forbid Atomics.wait on the main thread (it would freeze the page); workers and Node allow it. */
function mainThreadCanBlock(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The worker's side: instantiate the module on the shared memory, report ready, then serve jobs until
 * OP = -1. Blocking in Atomics.wait is fine in a worker. Shared by the Node and the browser worker entry.
 */
export async function serveKernelJobs(init: WorkerInit, ready: () => void): Promise<void> {
  const instance = await WebAssembly.instantiate(init.module, { env: { memory: init.memory } });
  const exports = instance.exports as unknown as Record<WorkerOp, (...args: number[]) => void>;
  const ops = WORKER_OPS.map((name) => exports[name]);
  const ints = new Int32Array(init.memory.buffer);
  const args = new Float64Array(init.memory.buffer);
  const base = init.control >> 2;
  const a = init.control / 8 + ARGS_F64;
  let last = Atomics.load(ints, base + SEQ);
  ready();
  for (;;) {
    let seq = Atomics.load(ints, base + SEQ);
    if (seq === last) {
      const until = performance.now() + init.spinMicros / 1000;
      for (let i = 1; (seq = Atomics.load(ints, base + SEQ)) === last; i++) {
        if ((i & 255) === 0 && performance.now() > until) {
          Atomics.wait(ints, base + SEQ, last);
        }
      }
    }
    last = seq;
    const op = ints[base + OP];
    if (op < 0) return;
    ops[op](args[a], args[a + 1], args[a + 2], args[a + 3], args[a + 4], args[a + 5], args[a + 6], args[a + 7], args[a + 8], args[a + 9], args[a + 10], args[a + 11], args[a + 12], args[a + 13]);
    Atomics.store(ints, base + DONE, seq);
    Atomics.notify(ints, base + DONE);
  }
}
