/**
 * The WebAssembly SIMD backend: the Kernels interface over the AssemblyScript kernels in ./assembly.
 *
 * Why AssemblyScript: the kernels stay in a TypeScript dialect the project's readers already know, the
 * compiler is an npm package (no C toolchain or Emscripten SDK to install), it exposes every wasm SIMD
 * instruction directly (v128.load, f32x4.add, ...), and with the stub runtime it emits a module with no
 * allocator, no GC and no data segments — a few kilobytes of pure functions on byte addresses, which is
 * what several threads sharing one memory need.
 *
 * Zero copies: `allocate()` returns Float32Arrays that are views of the module's memory, so a kernel call
 * just passes their byteOffsets. Arrays that live elsewhere (a plain `new Float32Array`, labels, a
 * dataset) still work: they are copied into a per-call scratch area and outputs copied back. The memory
 * is shared (SharedArrayBuffer) wherever the platform allows: workers need that, and growing a shared
 * memory keeps the existing views valid (growing an ordinary one detaches them, so the ordinary-memory
 * build used by browsers without cross-origin isolation gets a fixed size and falls back to ordinary
 * arrays, and to the reference kernels, if it fills up).
 *
 * Shape legend: see kernels.ts.
 */
import { batchNormReluPoolFits, type AdamStepOptions, type BackendAttachment, type BackendCapabilities, type Kernels, type MatmulOptions, type SgdStepOptions, type SharedKernelMemory, type Window2d } from '../kernels.js';
import { referenceKernels } from '../reference.js';
import { winogradTiles } from '../winograd.js';
import type { BackendOptions } from '../registry.js';
import { currentPlatform, type Platform } from '../../platform/index.js';
import type { WasmExports } from './generated/exports.js';
import { WasmHeap } from './heap.js';
import { CONTROL_BYTES, ELEMENTWISE_PARTS, MAX_ARGS, ThreadPool, WORKER_OPS, callWithArgs, type ElementwiseOp, type WorkerOp } from './threads.js';

export type { WasmExports } from './generated/exports.js';

/** The SIMD builds: plain 128-bit SIMD, and relaxed SIMD (fused multiply-add in the matmul and elementwise kernels). */
export type WasmSimd = 'simd128' | 'relaxed-simd';

export interface WasmBackendOptions extends BackendOptions {
  /**
   * Threads for the big matmuls and batch-norm kernels, the calling one included: 1 runs everything on
   * the calling thread, 2 adds one worker. Needs shared memory. Default 1 (see the bench for where 2 pays).
   */
  threads?: number;
  /** Matmuls with at least this many multiply-adds (M·N·K) may be split across the threads. Default 1.5e6. */
  parallelMinMacs?: number;
  /**
   * Batch-norm kernels, sigmoid, tanh and Adam steps over at least this many values may be shared by the
   * threads; the lighter elementwise kernels (fill, ReLU, the activations' gradients, SGD steps) from four
   * times as many. Default 65536.
   */
  parallelMinValues?: number;
  /** 'auto' (default): split where it has been measured to pay (SplitPolicy); 'always': split every such matmul, batch-norm and elementwise kernel. */
  split?: 'auto' | 'always';
  /** How long an idle worker spins before it sleeps, in µs. Default 200. */
  spinMicros?: number;
  /** Use the shared-memory build (default: wherever SharedArrayBuffer is available). */
  shared?: boolean;
  /** Largest memory in MB (shared build; default 4096) or its fixed size (ordinary-memory build; default 256). */
  memoryMB?: number;
  /**
   * Which build: 'auto' (default) the best this engine validates (relaxed SIMD, else plain SIMD);
   * 'simd128' or 'relaxed-simd' to insist on one (an error where the engine cannot run it).
   */
  simd?: 'auto' | WasmSimd;
  /** Where to load the module and workers from (default: the current platform's). */
  platform?: Platform;
  /** @internal A backend attached to another one's memory (`attachWasmKernels`) allocates only inside this byte range. */
  region?: { start: number; end: number };
}

const PAGE = 65536;

/** The batch-norm kernels, which the threads can share (their work comes in items: assembly/batchnorm.ts). */
type BatchNormOp = Extract<WorkerOp, 'channelMoments' | 'batchNormApply' | 'batchNormBackward' | 'batchNormBackwardReduce' | 'batchNormBackwardInput' | 'batchNormBackwardFixedStats'>;
const BATCH_NORM_OPS: readonly BatchNormOp[] = ['channelMoments', 'batchNormApply', 'batchNormBackward', 'batchNormBackwardReduce', 'batchNormBackwardInput', 'batchNormBackwardFixedStats'];

/** Every method of the Kernels interface. */
const KERNEL_METHODS = [
  'allocate', 'release', 'fill', 'matmul', 'addRowVector', 'sumRows', 'sumAxis', 'add', 'addAndClear', 'scale', 'mul', 'axpy', 'sigmoid', 'sigmoidBackward', 'tanh', 'tanhBackward',
  'relu', 'reluBackward', 'softmax', 'softmaxCrossEntropy', 'softmaxCrossEntropyBackward', 'channelAffine', 'channelAffineBackward', 'channelMoments', 'batchNormStatistics',
  'batchNormApply', 'batchNormBackward', 'batchNormBackwardFixedStats', 'batchNormBackwardReduce', 'batchNormBackwardInput', 'im2col', 'col2im',
  'winogradWeights', 'winogradWeightsBackward', 'winogradConv3x3', 'winogradConv3x3WeightGrad', 'maxPoolForward', 'maxPoolBackward', 'maxPoolReluForward',
  'maxPoolReluBackward', 'batchNormReluMaxPool2x2', 'batchNormReluMaxPool2x2BackwardReduce', 'batchNormReluMaxPool2x2BackwardInput', 'avgPoolForward', 'avgPoolBackward', 'sgdStep', 'adamStep',
] as const satisfies ReadonlyArray<Exclude<keyof Kernels, 'name'>>;
/** Bytes below the heap: address 0 stays unused, so a 0 pointer can mean "no array". */
const RESERVED = 1024;
const NO_ARRAY = 0;

/** Kernels on WebAssembly SIMD; create with `createWasmKernels()` (async: the module must be compiled). */
export class WasmKernels implements Kernels {
  readonly name = 'wasm';
  /** Whether the memory is a SharedArrayBuffer (workers possible, memory can grow). */
  readonly shared: boolean;
  /** The build in use. */
  readonly simd: WasmSimd;
  readonly capabilities: BackendCapabilities;
  readonly sharing?: SharedKernelMemory;
  /** Threads a big matmul, batch-norm or elementwise kernel can be split across (1 = no workers); threadLimit may use fewer. */
  get threads(): number {
    return (this.pool?.size ?? 0) + 1;
  }
  /** Kernels.threadLimit: at most this many of `threads` share one call (the first `threadLimit − 1` workers). */
  get threadLimit(): number {
    return Math.min(this.limit, this.threads);
  }
  set threadLimit(n: number) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`wasm backend: threadLimit must be a whole number of threads, at least 1, got ${n}`);
    this.limit = n;
  }
  private limit = Infinity;
  /** Workers a kernel call may share its work with now. */
  private get workers(): number {
    return Math.min(this.pool?.size ?? 0, this.limit - 1);
  }
  readonly parallelMinMacs: number;
  readonly parallelMinValues: number;
  readonly heap: WasmHeap;
  private readonly x: WasmExports;
  private readonly gemmScratch: number[];
  /** The matmul register tile's height in this build (4, or 6 with relaxed SIMD). */
  private readonly tileRows: number;
  private f32: Float32Array;
  private i32: Int32Array;
  private viewBuffer: ArrayBufferLike;
  // Per-call scratch for arrays outside the memory and for kernels' work space: a bump area, reset every call.
  private scratch = 0;
  private scratchBytes = 0;
  private scratchTop = 0;
  private readonly retired: number[] = []; // outgrown scratch blocks, freed when the call ends
  private failed = false;
  private readonly pendingArrays: Array<Float32Array | Int32Array> = [];
  private readonly pendingPtrs: number[] = [];
  private pendingCount = 0;
  private warnedFull = false;
  /** The compiled module (set by createWasmKernels), so another thread can instantiate it on the same memory. */
  module: WebAssembly.Module | null = null;
  /** When to split a matmul across threads; public so the bench can report how often it did. */
  readonly policy: SplitPolicy;
  /** When to share each batch-norm kernel with the worker (per size class ⌊log2 B·C·L⌋). */
  readonly batchNormPolicies: Readonly<Record<BatchNormOp, SplitPolicy>>;
  /** When to share each elementwise kernel of ELEMENTWISE_PARTS with the worker (per size class ⌊log2 n⌋). */
  readonly elementwisePolicies: Readonly<Record<ElementwiseOp, SplitPolicy>>;
  // Arguments of the batch-norm or shared elementwise call in progress, handed to this thread's export and the worker's.
  private readonly job = new Float64Array(MAX_ARGS);
  // A part's arguments: the job's, with the arrays' addresses and the count of that part.
  private readonly part = new Float64Array(MAX_ARGS);

  /** @internal use createWasmKernels() */
  constructor(readonly memory: WebAssembly.Memory, instance: WebAssembly.Instance, shared: boolean, maxBytes: number, private pool: ThreadPool | null, controlBytes: number, options: WasmBackendOptions & { simd: WasmSimd }) {
    this.x = instance.exports as unknown as WasmExports;
    this.shared = shared;
    this.simd = options.simd;
    this.parallelMinMacs = options.parallelMinMacs ?? 1.5e6;
    this.parallelMinValues = options.parallelMinValues ?? 65536;
    this.policy = new SplitPolicy(options.split ?? 'auto');
    this.batchNormPolicies = Object.fromEntries(BATCH_NORM_OPS.map((op) => [op, new SplitPolicy(options.split ?? 'auto', 64)])) as Record<BatchNormOp, SplitPolicy>;
    this.elementwisePolicies = Object.fromEntries(Object.keys(ELEMENTWISE_PARTS).map((op) => [op, new SplitPolicy(options.split ?? 'auto', 64)])) as Record<ElementwiseOp, SplitPolicy>;
    const region = options.region;
    this.heap = region ? new WasmHeap(memory, region.start, false, region.end) : new WasmHeap(memory, RESERVED + controlBytes, shared, maxBytes);
    this.viewBuffer = memory.buffer;
    this.f32 = new Float32Array(this.viewBuffer);
    this.i32 = new Int32Array(this.viewBuffer);
    // Own, bound methods: a copy of this object ({ ...kernels, one: replaced }), as tests and wrappers
    // make of a plain kernels object, keeps working.
    for (const name of KERNEL_METHODS) (this as unknown as Record<string, unknown>)[name] = (this[name] as (...a: unknown[]) => unknown).bind(this);
    this.tileRows = this.x.gemmTileRows();
    const gemmBytes = this.x.gemmScratchFloats() * 4;
    this.gemmScratch = [];
    for (let t = 0; t < this.threads; t++) this.gemmScratch.push(this.mustAlloc(gemmBytes));
    const threads = this.threads;
    this.capabilities = { threads, sharedMemory: shared, simd: this.simd, variant: `wasm ${this.simd}${shared ? '' : ', ordinary memory'}`, winograd: true };
    if (shared) {
      const heap = this.heap;
      const simd = this.simd;
      this.sharing = {
        get buffer() {
          return heap.current();
        },
        holds: (view) => heap.buffers.has(view.buffer),
        attachment: (region): WasmAttachment => ({ backend: 'wasm', module: this.module!, memory, region, simd }),
      };
    }
  }

  /** Stop the workers (the backend keeps working, on the calling thread only). */
  close(): void {
    this.pool?.close();
    this.pool = null;
  }

  /** Stop the workers and give back every block: arrays from `allocate` must not be used afterwards. */
  dispose(): void {
    this.close();
    this.heap.reset();
  }

  release(array: Float32Array): void {
    if (this.heap.buffers.has(array.buffer)) this.heap.free(array.byteOffset, array.length * 4);
  }

  allocate(length: number): Float32Array {
    if (length === 0) return new Float32Array(0);
    const ptr = this.heap.alloc(length * 4);
    if (ptr < 0) {
      if (!this.warnedFull) {
        this.warnedFull = true;
        console.warn(`wasm backend: its ${this.heap.memoryBytes >> 20} MB of memory are full; further buffers are ordinary arrays (copied on every kernel call). Serve the page cross-origin isolated (shared memory can grow) or pass a larger memoryMB.`);
      }
      return new Float32Array(length);
    }
    const arr = new Float32Array(this.heap.buffer, ptr, length);
    this.x.fill(ptr, 0, length);
    return arr;
  }

  matmul(a: Float32Array, b: Float32Array, out: Float32Array, m: number, k: number, n: number, opts?: MatmulOptions): void {
    const transA = opts?.transA ?? false;
    const transB = opts?.transB ?? false;
    const accumulate = opts?.accumulate ?? false;
    this.begin();
    const pa = this.in(a, m * k);
    const pb = this.in(b, k * n);
    const pc = this.out(out, m * n, accumulate);
    const transposed = this.transposedIsCheaper(m, n, k) && !this.x.gemmInPlace(+transA, +transB, n, k);
    const pt = transposed ? this.tmp(m * n * 4) : 0;
    if (this.failed) return referenceKernels.matmul(a, b, out, m, k, n, opts);
    const lda = transA ? m : k;
    const ldb = transB ? k : n;
    if (transposed) {
      // Cᵀ[N,M] = op(B)ᵀ·op(A)ᵀ into scratch, then added into C. The threads split the transposed product
      // as they would any other, so one and two threads still agree bit for bit.
      this.gemmOnThreads(!transB, !transA, n, m, k, pb, ldb, pa, lda, pt, m, false);
      this.x.addTransposed(pt, pc, m, n, n, +accumulate);
    } else {
      this.gemmOnThreads(transA, transB, m, n, k, pa, lda, pb, ldb, pc, n, accumulate);
    }
    this.end();
  }

  /** C (+)= op(A)·op(B) on this thread, or split across the threads where that has been paying off for products of this size (SplitPolicy). */
  private gemmOnThreads(transA: boolean, transB: boolean, m: number, n: number, k: number, pa: number, lda: number, pb: number, ldb: number, pc: number, ldc: number, accumulate: boolean): void {
    const macs = m * n * k;
    if (this.workers > 0 && macs >= this.parallelMinMacs && (n >= 16 || m >= 8)) {
      const size = Math.floor(Math.log2(macs));
      const parallel = this.policy.choose(size);
      const t0 = performance.now();
      if (parallel) this.parallelGemm(transA, transB, m, n, k, pa, lda, pb, ldb, pc, ldc, accumulate);
      else this.x.gemm(+transA, +transB, m, n, k, pa, lda, pb, ldb, pc, ldc, +accumulate, this.gemmScratch[0]);
      this.policy.record(size, parallel, (performance.now() - t0) / macs);
    } else {
      this.x.gemm(+transA, +transB, m, n, k, pa, lda, pb, ldb, pc, ldc, +accumulate, this.gemmScratch[0]);
    }
  }

  /**
   * Whether computing Cᵀ = op(B)ᵀ·op(A)ᵀ and transposing it costs clearly less than C = op(A)·op(B). The
   * micro-kernel's work is whole register tiles, so a product pays for its rows in whole panels (4 or 6
   * rows) and its columns rounded up to 8: a 16×9 weight gradient pays for 16 rows by 16 columns, its
   * transpose for 10 by 16. Taken at a saving of a quarter or more, where K is long enough for the
   * saving to outweigh the transpose, and for small outputs (the transpose is a plain loop in scratch).
   * Not asked where the gemm computes the product as dot products (gemmInPlace: A·Bᵀ, N < 16, K ≥ 256).
   */
  private transposedIsCheaper(m: number, n: number, k: number): boolean {
    if (k < 16 || m * n > 65536) return false;
    const mr = this.tileRows;
    return 4 * panelRowCost(n, mr) * tileCols(m) <= 3 * panelRowCost(m, mr) * tileCols(n);
  }

  /**
   * Split C into blocks of whole register tiles (8 columns, or the tile's 4 or 6 rows when N is narrow), two per thread,
   * which the threads claim through a shared counter (gemmChunked): the worker is offered the job, this
   * thread works on it too, and only waits for a block the worker has already started.
   */
  private parallelGemm(transA: boolean, transB: boolean, m: number, n: number, k: number, pa: number, lda: number, pb: number, ldb: number, pc: number, ldc: number, accumulate: boolean): void {
    const pool = this.pool!;
    const workers = this.workers;
    const byColumns = n >= 16;
    const chunks = 2 * (workers + 1);
    const op = WORKER_OPS.indexOf('gemmChunked');
    // One counter for the job, in worker 0's control block.
    const counter = pool.workCounter(0);
    for (let w = 0; w < workers; w++) {
      pool.arg(w, 0, +transA);
      pool.arg(w, 1, +transB);
      pool.arg(w, 2, m);
      pool.arg(w, 3, n);
      pool.arg(w, 4, k);
      pool.arg(w, 5, pa);
      pool.arg(w, 6, lda);
      pool.arg(w, 7, pb);
      pool.arg(w, 8, ldb);
      pool.arg(w, 9, pc);
      pool.arg(w, 10, ldc);
      pool.arg(w, 11, +accumulate);
      pool.arg(w, 12, this.gemmScratch[w + 1]);
      pool.arg(w, 13, counter);
      pool.arg(w, 14, chunks);
      pool.arg(w, 15, +byColumns);
      pool.post(w, op);
    }
    this.x.gemmChunked(+transA, +transB, m, n, k, pa, lda, pb, ldb, pc, ldc, +accumulate, this.gemmScratch[0], counter, chunks, +byColumns);
    for (let w = 0; w < workers; w++) pool.finish(w);
  }

  addRowVector(x: Float32Array, v: Float32Array, out: Float32Array, rows: number, cols: number): void {
    this.begin();
    const px = this.in(x, rows * cols), pv = this.in(v, cols), po = this.out(out, rows * cols, false);
    if (this.failed) return referenceKernels.addRowVector(x, v, out, rows, cols);
    this.x.addRowVector(px, pv, po, rows, cols);
    this.end();
  }

  sumRows(x: Float32Array, out: Float32Array, rows: number, cols: number, accumulate: boolean): void {
    this.begin();
    const px = this.in(x, rows * cols), po = this.out(out, cols, accumulate);
    if (this.failed) return referenceKernels.sumRows(x, out, rows, cols, accumulate);
    this.x.sumRows(px, po, rows, cols, +accumulate);
    this.end();
  }

  sumAxis(x: Float32Array, out: Float32Array, outer: number, axis: number, inner: number): void {
    this.begin();
    const px = this.in(x, outer * axis * inner), po = this.out(out, outer * inner, false);
    if (this.failed) return referenceKernels.sumAxis(x, out, outer, axis, inner);
    this.x.sumAxis(px, po, outer, axis, inner);
    this.end();
  }

  add(a: Float32Array, b: Float32Array, out: Float32Array): void {
    const n = out.length;
    this.begin();
    const pa = this.in(a, n), pb = this.in(b, n), po = this.out(out, n, false);
    if (this.failed) return referenceKernels.add(a, b, out);
    this.x.add(pa, pb, po, n);
    this.end();
  }

  addAndClear(target: Float32Array, source: Float32Array): void {
    const n = target.length;
    this.begin();
    const pt = this.out(target, n, true), ps = this.out(source, n, true);
    if (this.failed) return referenceKernels.addAndClear(target, source);
    this.x.addAndClear(pt, ps, n);
    this.end();
  }

  fill(out: Float32Array, value: number): void {
    const n = out.length;
    if (!this.inMemory(out)) {
      out.fill(value); // an ordinary array fills fast in JavaScript
      return;
    }
    this.setJob(out.byteOffset, value, n);
    this.runElementwise('fill', 3, n);
  }

  scale(a: Float32Array, s: number, out: Float32Array): void {
    const n = out.length;
    this.begin();
    const pa = this.in(a, n), po = this.out(out, n, false);
    if (this.failed) return referenceKernels.scale(a, s, out);
    this.x.scale(pa, s, po, n);
    this.end();
  }

  mul(a: Float32Array, b: Float32Array, out: Float32Array): void {
    const n = out.length;
    this.begin();
    const pa = this.in(a, n), pb = this.in(b, n), po = this.out(out, n, false);
    if (this.failed) return referenceKernels.mul(a, b, out);
    this.x.mul(pa, pb, po, n);
    this.end();
  }

  axpy(s: number, a: Float32Array, out: Float32Array): void {
    const n = out.length;
    this.begin();
    const pa = this.in(a, n), po = this.out(out, n, true);
    if (this.failed) return referenceKernels.axpy(s, a, out);
    this.x.axpy(s, pa, po, n);
    this.end();
  }

  sigmoid(x: Float32Array, y: Float32Array): void {
    this.unary('sigmoid', x, y, referenceKernels.sigmoid);
  }
  sigmoidBackward(y: Float32Array, dy: Float32Array, dx: Float32Array): void {
    this.binary('sigmoidBackward', y, dy, dx, referenceKernels.sigmoidBackward);
  }
  tanh(x: Float32Array, y: Float32Array): void {
    this.unary('tanh', x, y, referenceKernels.tanh);
  }
  tanhBackward(y: Float32Array, dy: Float32Array, dx: Float32Array): void {
    this.binary('tanhBackward', y, dy, dx, referenceKernels.tanhBackward);
  }
  relu(x: Float32Array, y: Float32Array): void {
    this.unary('relu', x, y, referenceKernels.relu);
  }
  reluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array): void {
    this.binary('reluBackward', x, dy, dx, referenceKernels.reluBackward);
  }

  /** y = f(x) over x.length values (the reference's count). */
  private unary(op: 'sigmoid' | 'tanh' | 'relu', x: Float32Array, y: Float32Array, fallback: (x: Float32Array, y: Float32Array) => void): void {
    const n = x.length;
    this.begin();
    const px = this.in(x, n), py = this.out(y, n, false);
    if (this.failed) return fallback(x, y);
    this.setJob(px, py, n);
    this.runElementwise(op, 3, n);
    this.end();
  }

  /** dx = f(first, dy) over first.length values. */
  private binary(op: 'sigmoidBackward' | 'tanhBackward' | 'reluBackward', first: Float32Array, dy: Float32Array, dx: Float32Array, fallback: (a: Float32Array, dy: Float32Array, dx: Float32Array) => void): void {
    const n = first.length;
    this.begin();
    const pa = this.in(first, n), pd = this.in(dy, n), po = this.out(dx, n, false);
    if (this.failed) return fallback(first, dy, dx);
    this.setJob(pa, pd, po, n);
    this.runElementwise(op, 4, n);
    this.end();
  }

  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void {
    this.begin();
    const px = this.in(x, rows * cols), po = this.out(out, rows * cols, false);
    if (this.failed) return referenceKernels.softmax(x, out, rows, cols);
    this.x.softmax(px, po, rows, cols);
    this.end();
  }

  softmaxCrossEntropy(logits: Float32Array, labels: Int32Array, probs: Float32Array, rows: number, cols: number): number {
    this.begin();
    const pz = this.in(logits, rows * cols), pl = this.inInt(labels, rows), pp = this.out(probs, rows * cols, false);
    if (this.failed) return referenceKernels.softmaxCrossEntropy(logits, labels, probs, rows, cols);
    const loss = this.x.softmaxCrossEntropy(pz, pl, pp, rows, cols);
    this.end();
    return loss;
  }

  softmaxCrossEntropyBackward(probs: Float32Array, labels: Int32Array, dlogits: Float32Array, rows: number, cols: number): void {
    this.begin();
    const pp = this.in(probs, rows * cols), pl = this.inInt(labels, rows), pd = this.out(dlogits, rows * cols, false);
    if (this.failed) return referenceKernels.softmaxCrossEntropyBackward(probs, labels, dlogits, rows, cols);
    this.x.softmaxCrossEntropyBackward(pp, pl, pd, rows, cols);
    this.end();
  }

  channelAffine(x: Float32Array, scale: Float32Array, shift: Float32Array | null, out: Float32Array, batch: number, channels: number, inner: number): void {
    const size = batch * channels * inner;
    this.begin();
    const px = this.in(x, size), ps = this.in(scale, channels), pt = this.inOrNull(shift, channels), po = this.out(out, size, false);
    if (this.failed) return referenceKernels.channelAffine(x, scale, shift, out, batch, channels, inner);
    this.x.channelAffine(px, ps, pt, po, batch, channels, inner);
    this.end();
  }

  channelAffineBackward(dy: Float32Array, x: Float32Array, scale: Float32Array, dx: Float32Array, dScale: Float32Array | null, dShift: Float32Array | null, batch: number, channels: number, inner: number): void {
    const size = batch * channels * inner;
    this.begin();
    const pdy = this.in(dy, size), px = this.in(x, size), ps = this.in(scale, channels), pdx = this.out(dx, size, false);
    const pds = this.outOrNull(dScale, channels, true), pdt = this.outOrNull(dShift, channels, true);
    if (this.failed) return referenceKernels.channelAffineBackward(dy, x, scale, dx, dScale, dShift, batch, channels, inner);
    this.x.channelAffineBackward(pdy, px, ps, pdx, pds, pdt, batch, channels, inner);
    this.end();
  }

  channelMoments(x: Float32Array, mean: Float32Array, variance: Float32Array, batch: number, channels: number, inner: number): void {
    const size = batch * channels * inner;
    this.begin();
    const px = this.in(x, size), pm = this.out(mean, channels, false), pv = this.out(variance, channels, false);
    const work = this.batchNormScratch(batch, channels, inner);
    if (this.failed) return referenceKernels.channelMoments(x, mean, variance, batch, channels, inner);
    this.setJob(px, pm, pv, batch, channels, inner, work);
    this.runBatchNorm('channelMoments', 7, size);
    this.end();
  }

  batchNormApply(x: Float32Array, mean: Float32Array, invStd: Float32Array, scale: Float32Array | null, shift: Float32Array | null, y: Float32Array, xhat: Float32Array | null, batch: number, channels: number, inner: number): void {
    const size = batch * channels * inner;
    this.begin();
    const px = this.in(x, size), pm = this.in(mean, channels), pi = this.in(invStd, channels);
    const ps = this.inOrNull(scale, channels), pt = this.inOrNull(shift, channels);
    const py = this.out(y, size, false), ph = this.outOrNull(xhat, size, false);
    if (this.failed) return referenceKernels.batchNormApply(x, mean, invStd, scale, shift, y, xhat, batch, channels, inner);
    this.setJob(px, pm, pi, ps, pt, py, ph, batch, channels, inner);
    this.runBatchNorm('batchNormApply', 10, size);
    this.end();
  }

  batchNormBackward(dy: Float32Array, xhat: Float32Array, invStd: Float32Array, gamma: Float32Array | null, dx: Float32Array, dGamma: Float32Array | null, dBeta: Float32Array | null, batch: number, channels: number, inner: number): void {
    this.bnBackward(false, dy, xhat, invStd, gamma, dx, dGamma, dBeta, batch, channels, inner);
  }

  batchNormBackwardFixedStats(dy: Float32Array, xhat: Float32Array, invStd: Float32Array, gamma: Float32Array | null, dx: Float32Array, dGamma: Float32Array | null, dBeta: Float32Array | null, batch: number, channels: number, inner: number): void {
    this.bnBackward(true, dy, xhat, invStd, gamma, dx, dGamma, dBeta, batch, channels, inner);
  }

  batchNormBackwardReduce(dy: Float32Array, xhat: Float32Array, sumDy: Float32Array, sumDyXhat: Float32Array, batch: number, channels: number, inner: number): void {
    const size = batch * channels * inner;
    this.begin();
    const pdy = this.in(dy, size), ph = this.in(xhat, size), ps = this.out(sumDy, channels, false), pt = this.out(sumDyXhat, channels, false);
    const work = this.batchNormScratch(batch, channels, inner);
    if (this.failed) return referenceKernels.batchNormBackwardReduce(dy, xhat, sumDy, sumDyXhat, batch, channels, inner);
    this.setJob(pdy, ph, ps, pt, batch, channels, inner, work);
    this.runBatchNorm('batchNormBackwardReduce', 8, size);
    this.end();
  }

  batchNormStatistics(mean: Float32Array, variance: Float32Array, invStd: Float32Array, eps: number, runningMean: Float32Array | null, runningVar: Float32Array | null, momentum: number, unbias: number, channels: number): void {
    this.begin();
    const pm = this.in(mean, channels), pv = this.in(variance, channels), pi = this.out(invStd, channels, false);
    const running = runningMean !== null && runningVar !== null;
    const prm = running ? this.out(runningMean, channels, true) : NO_ARRAY, prv = running ? this.out(runningVar, channels, true) : NO_ARRAY;
    if (this.failed) return referenceKernels.batchNormStatistics(mean, variance, invStd, eps, runningMean, runningVar, momentum, unbias, channels);
    this.x.batchNormStatistics(pm, pv, pi, eps, prm, prv, momentum, unbias, channels);
    this.end();
  }

  batchNormBackwardInput(dy: Float32Array, xhat: Float32Array, invStd: Float32Array, gamma: Float32Array | null, sumDy: Float32Array, sumDyXhat: Float32Array, count: number, dx: Float32Array, batch: number, channels: number, inner: number): void {
    const size = batch * channels * inner;
    this.begin();
    const pdy = this.in(dy, size), ph = this.in(xhat, size), pi = this.in(invStd, channels), pg = this.inOrNull(gamma, channels);
    const ps = this.in(sumDy, channels), pt = this.in(sumDyXhat, channels), pdx = this.out(dx, size, false);
    const work = this.batchNormScratch(batch, channels, inner);
    if (this.failed) return referenceKernels.batchNormBackwardInput(dy, xhat, invStd, gamma, sumDy, sumDyXhat, count, dx, batch, channels, inner);
    this.setJob(pdy, ph, pi, pg, ps, pt, count, pdx, batch, channels, inner, work);
    this.runBatchNorm('batchNormBackwardInput', 12, size);
    this.end();
  }

  private bnBackward(fixed: boolean, dy: Float32Array, xhat: Float32Array, invStd: Float32Array, gamma: Float32Array | null, dx: Float32Array, dGamma: Float32Array | null, dBeta: Float32Array | null, batch: number, channels: number, inner: number): void {
    const size = batch * channels * inner;
    this.begin();
    const pdy = this.in(dy, size), ph = this.in(xhat, size), pi = this.in(invStd, channels), pg = this.inOrNull(gamma, channels);
    const pdx = this.out(dx, size, false), pdg = this.outOrNull(dGamma, channels, true), pdb = this.outOrNull(dBeta, channels, true);
    const work = this.batchNormScratch(batch, channels, inner);
    if (this.failed) {
      const ref = fixed ? referenceKernels.batchNormBackwardFixedStats : referenceKernels.batchNormBackward;
      return ref(dy, xhat, invStd, gamma, dx, dGamma, dBeta, batch, channels, inner);
    }
    this.setJob(pdy, ph, pi, pg, pdx, pdg, pdb, batch, channels, inner, work);
    this.runBatchNorm(fixed ? 'batchNormBackwardFixedStats' : 'batchNormBackward', 11, size);
    this.end();
  }

  /** Per-call scratch for a batch-norm kernel, 64-byte aligned so the threads sharing a call, which write disjoint parts of it, never write one cache line. */
  private batchNormScratch(batch: number, channels: number, inner: number): number {
    const p = this.tmp(this.x.batchNormScratchFloats(batch, channels, inner) * 4 + 48);
    return p + ((64 - (p % 64)) % 64);
  }

  /** The next batch-norm call's arguments, in the export's order. */
  private setJob(...args: number[]): void {
    // A loop, not job.set(args): TypedArray.set from an array takes V8's generic path, a quarter of a small batch norm's time.
    const job = this.job;
    for (let i = 0; i < args.length; i++) job[i] = args[i];
  }

  /**
   * Run batch-norm export `op` on the job's first `argc` arguments plus its claims, chunk count and thread
   * index: on this thread, or shared with the worker when there is one, the tensor has at least
   * `parallelMinValues` values, and sharing has been paying for this kernel at this size (SplitPolicy).
   * One item per thread and phase; a thread takes its own first and then any left (so a late worker only
   * means this thread does more).
   */
  private runBatchNorm(op: BatchNormOp, argc: number, values: number): void {
    const a = this.job;
    const run = this.x[op] as (...args: number[]) => void;
    const pool = this.pool;
    const workers = this.workers;
    const splittable = workers > 0 && values >= this.parallelMinValues;
    const size = Math.floor(Math.log2(values));
    const policy = this.batchNormPolicies[op];
    const parallel = splittable && policy.choose(size);
    const t0 = performance.now();
    let woke = false;
    a[argc + 2] = 0; // this thread is thread 0
    if (parallel && pool) {
      a[argc] = pool.workCounter(0);
      a[argc + 1] = Math.min(workers + 1, 10); // the claims are bits of one i32: at most 3 phases × 10 items
      const index = WORKER_OPS.indexOf(op);
      for (let w = 0; w < workers; w++) {
        for (let i = 0; i < argc + 2; i++) pool.arg(w, i, a[i]);
        pool.arg(w, argc + 2, w + 1);
        woke = pool.post(w, index) || woke;
      }
    } else {
      a[argc] = 0;
      a[argc + 1] = 1;
    }
    callWithArgs(run, a);
    if (parallel) for (let w = 0; w < workers; w++) pool!.finish(w);
    // A call that had to wake the worker times the wake-up, not the split: measure the next one instead.
    if (splittable && woke) policy.discard(size);
    else if (splittable) policy.record(size, parallel, (performance.now() - t0) / values);
  }

  /**
   * Run elementwise export `op` on the job's first `argc` arguments (n values): on this thread, or split
   * into one contiguous part per thread (ELEMENTWISE_PARTS) when there is a worker, n is big enough for
   * `op`, and sharing has been paying for this kernel at this size (SplitPolicy). This thread runs the
   * first part, and any part a worker had not started by then: a late worker only means this thread
   * does more. Every value is computed as on one thread.
   */
  private runElementwise(op: ElementwiseOp, argc: number, n: number): void {
    const pool = this.pool;
    const workers = this.workers;
    const run = this.x[op] as (...args: number[]) => void;
    const a = this.job;
    if (pool === null || workers === 0 || n < (ELEMENTWISE_PARTS[op].heavy ? this.parallelMinValues : 4 * this.parallelMinValues)) {
      callWithArgs(run, a);
      return;
    }
    const size = Math.floor(Math.log2(n));
    const policy = this.elementwisePolicies[op];
    const parallel = policy.choose(size);
    const t0 = performance.now();
    let woke = false;
    if (parallel) {
      const parts = workers + 1;
      const index = WORKER_OPS.indexOf(op);
      for (let w = 0; w < workers; w++) {
        this.setPart(op, argc, n, w + 1, parts);
        for (let i = 0; i < argc; i++) pool.arg(w, i, this.part[i]);
        woke = pool.post(w, index) || woke;
      }
      this.setPart(op, argc, n, 0, parts);
      callWithArgs(run, this.part);
      for (let w = 0; w < workers; w++) {
        if (!pool.finish(w)) continue;
        this.setPart(op, argc, n, w + 1, parts);
        callWithArgs(run, this.part);
      }
    } else {
      callWithArgs(run, a);
    }
    // A call that had to wake the worker times the wake-up, not the split: measure the next one instead.
    if (woke) policy.discard(size);
    else policy.record(size, parallel, (performance.now() - t0) / n);
  }

  /** Part `index` of `parts` of the job's values, starting on a 64-byte line (so no two threads write one), into `this.part`. */
  private setPart(op: ElementwiseOp, argc: number, n: number, index: number, parts: number): void {
    const spec = ELEMENTWISE_PARTS[op];
    const bound = (i: number) => (i >= parts ? n : Math.floor((i * n) / parts / 16) * 16);
    const start = bound(index);
    const p = this.part;
    for (let i = 0; i < argc; i++) p[i] = this.job[i];
    for (const i of spec.pointers) if (p[i] !== NO_ARRAY) p[i] += 4 * start;
    p[spec.count] = bound(index + 1) - start;
  }

  im2col(x: Float32Array, cols: Float32Array, batch: number, channels: number, g: Window2d): void {
    const planes = batch * channels;
    this.begin();
    const px = this.in(x, planes * g.height * g.width), pc = this.out(cols, planes * g.kernelH * g.kernelW * g.outH * g.outW, false);
    if (this.failed) return referenceKernels.im2col(x, cols, batch, channels, g);
    this.x.im2col(px, pc, planes, g.height, g.width, g.kernelH, g.kernelW, g.strideH, g.strideW, g.padH, g.padW, g.outH, g.outW);
    this.end();
  }

  col2im(cols: Float32Array, dx: Float32Array, batch: number, channels: number, g: Window2d): void {
    const planes = batch * channels;
    this.begin();
    const pc = this.in(cols, planes * g.kernelH * g.kernelW * g.outH * g.outW), pd = this.out(dx, planes * g.height * g.width, false);
    if (this.failed) return referenceKernels.col2im(cols, dx, batch, channels, g);
    this.x.col2im(pc, pd, planes, g.height, g.width, g.kernelH, g.kernelW, g.strideH, g.strideW, g.padH, g.padW, g.outH, g.outW);
    this.end();
  }

  winogradWeights(weight: Float32Array, u: Float32Array, outChannels: number, inChannels: number, flip: boolean): void {
    const pairs = outChannels * inChannels;
    this.begin();
    const pw = this.in(weight, 9 * pairs), pu = this.out(u, 16 * pairs, false);
    if (this.failed) return referenceKernels.winogradWeights(weight, u, outChannels, inChannels, flip);
    this.x.winogradWeights(pw, pu, outChannels, inChannels, +flip);
    this.end();
  }

  winogradWeightsBackward(du: Float32Array, dWeight: Float32Array, outChannels: number, inChannels: number): void {
    const pairs = outChannels * inChannels;
    this.begin();
    const pu = this.in(du, 16 * pairs), pw = this.out(dWeight, 9 * pairs, true);
    if (this.failed) return referenceKernels.winogradWeightsBackward(du, dWeight, outChannels, inChannels);
    this.x.winogradWeightsBackward(pu, pw, outChannels, inChannels);
    this.end();
  }

  winogradConv3x3(x: Float32Array, u: Float32Array, y: Float32Array, batch: number, inChannels: number, outChannels: number, height: number, width: number, padH: number, padW: number): void {
    const { outH, outW } = winogradTiles(height, width, padH, padW);
    this.begin();
    const px = this.in(x, batch * inChannels * height * width), pu = this.in(u, 16 * outChannels * inChannels);
    const py = this.out(y, batch * outChannels * outH * outW, false);
    const work = this.tmp(4 * this.x.winogradScratchFloats(batch, inChannels, outChannels, height, width, padH, padW));
    if (this.failed) return referenceKernels.winogradConv3x3(x, u, y, batch, inChannels, outChannels, height, width, padH, padW);
    this.x.winogradConv3x3(px, pu, py, batch, inChannels, outChannels, height, width, padH, padW, work, this.gemmScratch[0]);
    this.end();
  }

  winogradConv3x3WeightGrad(x: Float32Array, dy: Float32Array, du: Float32Array, batch: number, inChannels: number, outChannels: number, height: number, width: number, padH: number, padW: number): void {
    const { outH, outW } = winogradTiles(height, width, padH, padW);
    this.begin();
    const px = this.in(x, batch * inChannels * height * width), pd = this.in(dy, batch * outChannels * outH * outW);
    const pu = this.out(du, 16 * outChannels * inChannels, false);
    const work = this.tmp(4 * this.x.winogradScratchFloats(batch, inChannels, outChannels, height, width, padH, padW));
    if (this.failed) return referenceKernels.winogradConv3x3WeightGrad(x, dy, du, batch, inChannels, outChannels, height, width, padH, padW);
    this.x.winogradConv3x3WeightGrad(px, pd, pu, batch, inChannels, outChannels, height, width, padH, padW, work, this.gemmScratch[0]);
    this.end();
  }

  maxPoolForward(x: Float32Array, y: Float32Array, argmax: Int32Array, planes: number, g: Window2d): void {
    this.maxPool(x, y, argmax, planes, g, false);
  }

  maxPoolReluForward(x: Float32Array, y: Float32Array, argmax: Int32Array, planes: number, g: Window2d): void {
    this.maxPool(x, y, argmax, planes, g, true);
  }

  private maxPool(x: Float32Array, y: Float32Array, argmax: Int32Array, planes: number, g: Window2d, relu: boolean): void {
    const outSize = planes * g.outH * g.outW;
    this.begin();
    const px = this.in(x, planes * g.height * g.width), py = this.out(y, outSize, false), pa = this.outInt(argmax, outSize);
    if (this.failed) return (relu ? referenceKernels.maxPoolReluForward : referenceKernels.maxPoolForward)(x, y, argmax, planes, g);
    this.x.maxPoolForward(px, py, pa, planes, g.height, g.width, g.kernelH, g.kernelW, g.strideH, g.strideW, g.padH, g.padW, g.outH, g.outW, +relu);
    this.end();
  }

  maxPoolBackward(dy: Float32Array, argmax: Int32Array, dx: Float32Array, planes: number, g: Window2d): void {
    this.maxUnpool(dy, null, argmax, dx, planes, g);
  }

  batchNormReluMaxPool2x2(x: Float32Array, mean: Float32Array, invStd: Float32Array, scale: Float32Array | null, shift: Float32Array | null, y: Float32Array, xhat: Float32Array, out: Float32Array, argmax: Int32Array, xhatMax: Float32Array | null, batch: number, channels: number, height: number, width: number): void {
    if (!batchNormReluPoolFits(height, width)) throw new Error(`batchNormReluMaxPool2x2: needs even sides, height·width a multiple of 4 and width ≥ 8, got ${height}x${width}`);
    const size = batch * channels * height * width, outSize = size / 4;
    this.begin();
    const px = this.in(x, size), pm = this.in(mean, channels), pi = this.in(invStd, channels), ps = this.inOrNull(scale, channels), pt = this.inOrNull(shift, channels);
    const ph = this.out(xhat, size, false), po = this.out(out, outSize, false), pa = this.outInt(argmax, outSize), pe = this.outOrNull(xhatMax, outSize, false);
    if (this.failed) return referenceKernels.batchNormReluMaxPool2x2(x, mean, invStd, scale, shift, y, xhat, out, argmax, xhatMax, batch, channels, height, width);
    this.x.batchNormReluMaxPool2x2(px, pm, pi, ps, pt, ph, po, pa, pe, batch, channels, height, width);
    this.end();
  }

  batchNormReluMaxPool2x2BackwardReduce(dy: Float32Array, out: Float32Array, xhatMax: Float32Array, sumDy: Float32Array, sumDyXhat: Float32Array, batch: number, channels: number, height: number, width: number): void {
    if (!batchNormReluPoolFits(height, width)) throw new Error(`batchNormReluMaxPool2x2BackwardReduce: needs even sides, height·width a multiple of 4 and width ≥ 8, got ${height}x${width}`);
    const pooled = (height * width) / 4, outSize = batch * channels * pooled;
    this.begin();
    const pd = this.in(dy, outSize), po = this.in(out, outSize), pe = this.in(xhatMax, outSize);
    const ps = this.out(sumDy, channels, false), pt = this.out(sumDyXhat, channels, false);
    const work = this.tmp(channels * 16);
    if (this.failed) return referenceKernels.batchNormReluMaxPool2x2BackwardReduce(dy, out, xhatMax, sumDy, sumDyXhat, batch, channels, height, width);
    this.x.batchNormReluMaxPool2x2BackwardReduce(pd, po, pe, ps, pt, batch, channels, pooled, work);
    this.end();
  }

  batchNormReluMaxPool2x2BackwardInput(dy: Float32Array, out: Float32Array, argmax: Int32Array, xhat: Float32Array, invStd: Float32Array, gamma: Float32Array | null, sumDy: Float32Array, sumDyXhat: Float32Array, count: number, dx: Float32Array, batch: number, channels: number, height: number, width: number): void {
    if (!batchNormReluPoolFits(height, width)) throw new Error(`batchNormReluMaxPool2x2BackwardInput: needs even sides, height·width a multiple of 4 and width ≥ 8, got ${height}x${width}`);
    const size = batch * channels * height * width, outSize = size / 4;
    this.begin();
    const pd = this.in(dy, outSize), po = this.in(out, outSize), pa = this.inInt(argmax, outSize), ph = this.in(xhat, size);
    const pi = this.in(invStd, channels), pg = this.inOrNull(gamma, channels), ps = this.in(sumDy, channels), pt = this.in(sumDyXhat, channels);
    const px = this.out(dx, size, false);
    if (this.failed) return referenceKernels.batchNormReluMaxPool2x2BackwardInput(dy, out, argmax, xhat, invStd, gamma, sumDy, sumDyXhat, count, dx, batch, channels, height, width);
    this.x.batchNormReluMaxPool2x2BackwardInput(pd, po, pa, ph, pi, pg, ps, pt, count, px, batch, channels, height, width);
    this.end();
  }

  maxPoolReluBackward(dy: Float32Array, y: Float32Array, argmax: Int32Array, dx: Float32Array, planes: number, g: Window2d): void {
    this.maxUnpool(dy, y, argmax, dx, planes, g);
  }

  private maxUnpool(dy: Float32Array, y: Float32Array | null, argmax: Int32Array, dx: Float32Array, planes: number, g: Window2d): void {
    const outSize = planes * g.outH * g.outW;
    this.begin();
    const pd = this.in(dy, outSize), py = this.inOrNull(y, outSize), pa = this.inInt(argmax, outSize), px = this.out(dx, planes * g.height * g.width, false);
    if (this.failed) return y ? referenceKernels.maxPoolReluBackward(dy, y, argmax, dx, planes, g) : referenceKernels.maxPoolBackward(dy, argmax, dx, planes, g);
    this.x.maxPoolBackward(pd, pa, px, planes, g.height, g.width, g.kernelH, g.kernelW, g.strideH, g.strideW, g.padH, g.padW, g.outH, g.outW, py);
    this.end();
  }

  avgPoolForward(x: Float32Array, y: Float32Array, planes: number, g: Window2d): void {
    this.begin();
    const px = this.in(x, planes * g.height * g.width), py = this.out(y, planes * g.outH * g.outW, false);
    if (this.failed) return referenceKernels.avgPoolForward(x, y, planes, g);
    this.x.avgPoolForward(px, py, planes, g.height, g.width, g.kernelH, g.kernelW, g.strideH, g.strideW, g.padH, g.padW, g.outH, g.outW);
    this.end();
  }

  avgPoolBackward(dy: Float32Array, dx: Float32Array, planes: number, g: Window2d): void {
    this.begin();
    const pd = this.in(dy, planes * g.outH * g.outW), px = this.out(dx, planes * g.height * g.width, false);
    if (this.failed) return referenceKernels.avgPoolBackward(dy, dx, planes, g);
    this.x.avgPoolBackward(pd, px, planes, g.height, g.width, g.kernelH, g.kernelW, g.strideH, g.strideW, g.padH, g.padW, g.outH, g.outW);
    this.end();
  }

  sgdStep(p: Float32Array, g: Float32Array, buf: Float32Array | null, o: SgdStepOptions): void {
    const n = p.length;
    this.begin();
    const pp = this.out(p, n, true), pg = o.clearGrad ? this.out(g, n, true) : this.in(g, n), pb = this.outOrNull(buf, n, true);
    if (this.failed) return referenceKernels.sgdStep(p, g, buf, o);
    this.setJob(pp, pg, pb, n, o.lr, o.momentum, 1 - o.dampening, o.weightDecay, +o.nesterov, +o.firstStep, +(o.clearGrad ?? false));
    this.runElementwise('sgdStep', 11, n);
    this.end();
  }

  adamStep(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, o: AdamStepOptions): void {
    const n = p.length;
    this.begin();
    const pp = this.out(p, n, true), pg = o.clearGrad ? this.out(g, n, true) : this.in(g, n), pm = this.out(m, n, true), pv = this.out(v, n, true);
    if (this.failed) return referenceKernels.adamStep(p, g, m, v, o);
    const stepSize = o.lr / (1 - Math.pow(o.beta1, o.step));
    const invSqrtBc2 = 1 / Math.sqrt(1 - Math.pow(o.beta2, o.step));
    const l2 = o.decoupledWeightDecay ? 0 : o.weightDecay;
    const decay = o.decoupledWeightDecay ? o.lr * o.weightDecay : 0;
    this.setJob(pp, pg, pm, pv, n, o.beta1, 1 - o.beta1, o.beta2, 1 - o.beta2, o.eps, l2, decay, stepSize, invSqrtBc2, +(o.clearGrad ?? false));
    this.runElementwise('adamStep', 15, n);
    this.end();
  }

  /**
   * Memory bandwidth of this engine: the STREAM triad a = b + s·c over `floats`-long arrays, in GB/s
   * (12 bytes per element; the best of `repeats` runs).
   */
  measureTriad(floats: number, repeats: number): number {
    const a = this.allocate(floats), b = this.allocate(floats), c = this.allocate(floats);
    b.fill(1);
    c.fill(2);
    let best = Infinity;
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now();
      this.x.triad(a.byteOffset, b.byteOffset, c.byteOffset, 0.5, floats);
      best = Math.min(best, performance.now() - t0);
    }
    return (12 * floats) / (best * 1e6);
  }

  /** The micro-kernel's multiply-add rate with all data in L1, in GFLOPS on one thread (best of `repeats`). */
  measureMicroKernelPeak(repeats: number): number {
    return this.measurePeak(1, repeats);
  }

  /**
   * The processor's arithmetic ceiling as this build reaches it: the matmul micro-kernel's loop (its
   * register tile, 4×8 or 6×8 by build; 256 steps, data in L1) run on `threads` threads at once — this one and up to threads − 1
   * workers — in GFLOPS in total (best of `repeats`, each `calls` loops a thread: 2000 take about 1 ms).
   * Plain SIMD measures the mul+add peak, relaxed SIMD the FMA peak.
   */
  measurePeak(threads: number, repeats: number, calls = 2000): number {
    const flops = 2 * this.tileRows * 8 * 256 * calls;
    const workers = Math.min(Math.max(0, threads - 1), this.pool?.size ?? 0);
    const op = WORKER_OPS.indexOf('microKernelPeak');
    let best = Infinity;
    for (let r = 0; r < repeats; r++) {
      for (let w = 0; w < workers; w++) {
        this.pool!.arg(w, 0, calls);
        this.pool!.arg(w, 1, this.gemmScratch[w + 1]);
      }
      const t0 = performance.now();
      for (let w = 0; w < workers; w++) this.pool!.post(w, op);
      this.x.microKernelPeak(calls, this.gemmScratch[0]);
      // The worker's share has to run in full: wait for it even if it had not started.
      for (let w = 0; w < workers; w++) this.pool!.complete(w);
      best = Math.min(best, performance.now() - t0);
    }
    return ((workers + 1) * flops) / (best * 1e6);
  }

  // ---- argument passing ----

  private begin(): void {
    this.scratchTop = 0;
    this.failed = false;
    this.pendingCount = 0;
    while (this.retired.length) this.heap.free(this.retired.pop()!);
    this.refreshViews();
  }

  /** Copy outputs that live outside the memory back to their arrays. */
  private end(): void {
    for (let i = 0; i < this.pendingCount; i++) {
      const arr = this.pendingArrays[i];
      const p = this.pendingPtrs[i];
      if (arr instanceof Float32Array) arr.set(this.f32.subarray(p >> 2, (p >> 2) + arr.length));
      else arr.set(this.i32.subarray(p >> 2, (p >> 2) + arr.length));
    }
    this.pendingCount = 0;
    while (this.retired.length) this.heap.free(this.retired.pop()!);
  }

  private inMemory(a: ArrayBufferView): boolean {
    return a.buffer === this.viewBuffer || this.heap.buffers.has(a.buffer);
  }

  /** Byte address of the first n floats of `a` (copied into scratch when `a` is not in the memory). */
  private in(a: Float32Array, n: number): number {
    if (this.inMemory(a)) return a.byteOffset;
    const p = this.tmp(n * 4);
    if (p > 0) this.f32.set(a.length === n ? a : a.subarray(0, n), p >> 2);
    return p;
  }

  private inOrNull(a: Float32Array | null, n: number): number {
    return a ? this.in(a, n) : NO_ARRAY;
  }

  /** Address an output array; when it is copied, `read` says whether the kernel reads it first (+=). */
  private out(a: Float32Array, n: number, read: boolean): number {
    if (this.inMemory(a)) return a.byteOffset;
    const p = read ? this.in(a, n) : this.tmp(n * 4);
    if (p > 0) this.pending(a.length === n ? a : a.subarray(0, n), p);
    return p;
  }

  private outOrNull(a: Float32Array | null, n: number, read: boolean): number {
    return a ? this.out(a, n, read) : NO_ARRAY;
  }

  private inInt(a: Int32Array, n: number): number {
    if (this.inMemory(a)) return a.byteOffset;
    const p = this.tmp(n * 4);
    if (p > 0) this.i32.set(a.length === n ? a : a.subarray(0, n), p >> 2);
    return p;
  }

  private outInt(a: Int32Array, n: number): number {
    if (this.inMemory(a)) return a.byteOffset;
    const p = this.tmp(n * 4);
    if (p > 0) this.pending(a.length === n ? a : a.subarray(0, n), p);
    return p;
  }

  private pending(a: Float32Array | Int32Array, p: number): void {
    this.pendingArrays[this.pendingCount] = a;
    this.pendingPtrs[this.pendingCount] = p;
    this.pendingCount++;
  }

  /** `bytes` of per-call scratch (16-byte aligned), or 0 with `failed` set when the memory cannot hold it. */
  private tmp(bytes: number): number {
    const size = (bytes + 15) & ~15;
    if (this.scratchTop + size > this.scratchBytes) {
      // Grow into a new block; the old one stays allocated until the call ends, since earlier arguments of
      // this call may sit in it.
      const want = Math.max(2 * this.scratchBytes, this.scratchTop + size, 1 << 16);
      const ptr = this.heap.alloc(want);
      if (ptr < 0) {
        this.failed = true;
        return 0;
      }
      if (this.scratch > 0) this.retired.push(this.scratch);
      this.scratch = ptr;
      this.scratchBytes = want;
      this.scratchTop = 0;
      this.refreshViews();
    }
    const p = this.scratch + this.scratchTop;
    this.scratchTop += size;
    return p;
  }

  /** Refresh the typed views after the memory grew (shared memory: old views stay valid but are shorter). */
  private refreshViews(): void {
    if (this.heap.buffer !== this.viewBuffer) {
      this.viewBuffer = this.heap.buffer;
      this.f32 = new Float32Array(this.viewBuffer);
      this.i32 = new Int32Array(this.viewBuffer);
    }
  }

  private mustAlloc(bytes: number): number {
    const p = this.heap.alloc(bytes);
    if (p < 0) throw new Error(`wasm backend: cannot reserve ${bytes} bytes of work space`);
    return p;
  }
}

/** What a worker needs to run the backend on the same memory (SharedKernelMemory.attachment). */
export interface WasmAttachment extends BackendAttachment {
  readonly backend: 'wasm';
  readonly module: WebAssembly.Module;
  readonly memory: WebAssembly.Memory;
  readonly region: { start: number; end: number };
  readonly simd: WasmSimd;
}

/** The build files, as literal `new URL(..., import.meta.url)` forms so bundlers copy all four. */
function wasmUrl(simd: WasmSimd, shared: boolean): URL {
  if (simd === 'relaxed-simd') return shared ? new URL('./bnlab-kernels-relaxed-shared.wasm', import.meta.url) : new URL('./bnlab-kernels-relaxed.wasm', import.meta.url);
  return shared ? new URL('./bnlab-kernels-shared.wasm', import.meta.url) : new URL('./bnlab-kernels.wasm', import.meta.url);
}

// Probe modules for feature detection: one function each, (v128, v128, v128) -> v128.
// SIMD: f32x4.add of the first two parameters; relaxed SIMD: f32x4.relaxed_madd of all three.
const PROBE_HEAD = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b, 0x03, 0x02, 0x01, 0x00];
const SIMD_PROBE = new Uint8Array([...PROBE_HEAD, 0x0a, 0x0b, 0x01, 0x09, 0x00, 0x20, 0x00, 0x20, 0x01, 0xfd, 0xe4, 0x01, 0x0b]);
const RELAXED_PROBE = new Uint8Array([...PROBE_HEAD, 0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x85, 0x02, 0x0b]);

/**
 * The best build this engine runs: 'relaxed-simd' when it validates the relaxed-SIMD probe (after
 * switching the feature on where the engine keeps it behind a flag: Node 20), else 'simd128' when it
 * validates plain SIMD, else null (no SIMD: the backend is unavailable).
 */
export async function detectSimd(platform?: Platform): Promise<WasmSimd | null> {
  if (typeof WebAssembly === 'undefined') return null;
  if (!WebAssembly.validate(SIMD_PROBE)) return null;
  if (relaxedSimdValidates(platform ?? (await currentPlatform()))) return 'relaxed-simd';
  return 'simd128';
}

function relaxedSimdValidates(platform: Platform): boolean {
  if (WebAssembly.validate(RELAXED_PROBE)) return true;
  try {
    platform.enableWasmFeature('relaxed-simd');
  } catch {
    return false;
  }
  return WebAssembly.validate(RELAXED_PROBE);
}

/**
 * Compile the kernel module and create the backend. Async because compiling (and starting workers)
 * is; every kernel call after that is synchronous.
 */
export async function createWasmKernels(options: WasmBackendOptions = {}): Promise<WasmKernels> {
  const platform = options.platform ?? (await currentPlatform());
  const shared = options.shared ?? platform.sharedMemory;
  if (shared && !platform.sharedMemory) throw new Error('wasm backend: shared memory is not available here (browsers need a cross-origin isolated page: COOP/COEP headers)');
  const threads = Math.max(1, Math.floor(options.threads ?? 1));
  if (threads > 1 && !shared) throw new Error('wasm backend: threads need shared memory (in browsers, a cross-origin isolated page)');
  const best = await detectSimd(platform);
  if (best === null) throw new Error(`wasm backend: this engine (${platform.engine}) has no WebAssembly SIMD; use the reference backend ('ts')`);
  const wanted = options.simd ?? 'auto';
  if (wanted === 'relaxed-simd' && best !== 'relaxed-simd') throw new Error(`wasm backend: this engine (${platform.engine}) has no relaxed SIMD; use simd: 'simd128' or 'auto'`);
  if (wanted !== 'auto' && wanted !== 'simd128' && wanted !== 'relaxed-simd') throw new Error(`wasm backend: simd must be 'auto', 'simd128' or 'relaxed-simd', not "${String(wanted)}"`);
  const simd: WasmSimd = wanted === 'auto' ? best : wanted;
  const module = await WebAssembly.compile(await platform.readBytes(wasmUrl(simd, shared)));
  const maxBytes = (options.memoryMB ?? (shared ? 4096 : 256)) * 1024 * 1024;
  const maxPages = Math.min(65536, Math.floor(maxBytes / PAGE));
  const memory = shared ? new WebAssembly.Memory({ initial: Math.min(256, maxPages), maximum: maxPages, shared: true }) : fixedMemory(maxPages);
  const instance = await WebAssembly.instantiate(module, { env: { memory } });
  const controls = Array.from({ length: threads - 1 }, (_, w) => RESERVED + w * CONTROL_BYTES);
  const spawn = () => platform.spawnWorker(new URL('./worker.js', import.meta.url));
  const pool = controls.length ? await ThreadPool.start(spawn, { module, memory, simd }, controls, options.spinMicros ?? 200, platform.canBlock) : null;
  const kernels = new WasmKernels(memory, instance, shared, shared ? maxPages * PAGE : memory.buffer.byteLength, pool, controls.length * CONTROL_BYTES, { ...options, simd });
  kernels.module = module;
  return kernels;
}

/**
 * A backend on another backend's shared memory, for a worker thread that runs a replica of a model
 * (data-parallel training): the same compiled module instantiated on the same memory, so byte addresses
 * mean the same thing in both threads. It allocates only inside `region` (a block the owning backend
 * reserved for it) and never grows the memory.
 */
export async function attachWasmKernels(attachment: WasmAttachment): Promise<WasmKernels> {
  const { module, memory, region, simd } = attachment;
  if (simd === 'relaxed-simd') (await currentPlatform()).enableWasmFeature('relaxed-simd'); // this thread may compile or validate too
  const instance = await WebAssembly.instantiate(module, { env: { memory } });
  const kernels = new WasmKernels(memory, instance, true, region.end, null, 0, { region, simd });
  kernels.module = module;
  return kernels;
}

/** An ordinary memory of `pages`, or of half as many, down to 16 MB, where the browser refuses that much. */
function fixedMemory(pages: number): WebAssembly.Memory {
  for (;;) {
    try {
      return new WebAssembly.Memory({ initial: pages });
    } catch (e) {
      if (pages <= 256) throw e;
      pages >>= 1;
    }
  }
}

/**
 * Decides, per size class of matmul (⌊log2 M·N·K⌋) or of a batch-norm kernel (⌊log2 B·C·L⌋), whether
 * splitting it across the threads pays: it keeps a moving average of the time per multiply-add (or
 * value) with and without the split and picks the faster,
 * re-trying the other one every `explore`-th call. On a quiet machine two threads win for big products;
 * on a busy one (other processes on the cores, a worker the OS schedules late) they can lose, and the
 * policy then falls back to one thread by itself.
 */
export class SplitPolicy {
  /**
   * @param explore re-try the other choice every this many calls (16 for matmul; batch norm, with three
   *   short calls per layer and step, uses 64 so the re-tries cost less).
   */
  constructor(readonly mode: 'auto' | 'always' = 'auto', readonly explore = 16) {}

  private readonly serial: number[] = [];
  private readonly parallel: number[] = [];
  private readonly calls: number[] = [];
  private readonly retry: boolean[] = [];
  /** Calls that were split / not split, over all sizes (timed or discarded). */
  splitCalls = 0;
  serialCalls = 0;

  choose(size: number): boolean {
    if (this.mode === 'always') return true;
    if (this.retry[size]) {
      this.retry[size] = false;
      return true;
    }
    const n = (this.calls[size] = (this.calls[size] ?? 0) + 1);
    const s = this.serial[size], p = this.parallel[size];
    if (s === undefined) return false;
    if (p === undefined) return true;
    const better = p < s;
    return n % this.explore === 0 ? !better : better;
  }

  /** Per size class: the moving averages, in ns per multiply-add, with and without the split. */
  summary(): Array<{ macs: string; serialNsPerMac: number | null; splitNsPerMac: number | null; split: boolean }> {
    const out = [];
    for (let size = 0; size < this.calls.length; size++) {
      if (this.calls[size] === undefined) continue;
      const s = this.serial[size] ?? null, p = this.parallel[size] ?? null;
      out.push({ macs: `2^${size}`, serialNsPerMac: s === null ? null : s * 1e6, splitNsPerMac: p === null ? null : p * 1e6, split: s !== null && p !== null && p < s });
    }
    return out;
  }

  /** The last split call of this size gave no fair timing (its worker had to be woken): split the next one too, and time that. */
  discard(size: number): void {
    this.retry[size] = true;
    this.splitCalls++; // it was split all the same
  }

  record(size: number, parallel: boolean, msPerMac: number): void {
    const avg = parallel ? this.parallel : this.serial;
    const old = avg[size];
    // A sample is counted as at most twice the average: one call stalled by the operating system (a thread
    // preempted mid-job) must not outweigh dozens of ordinary ones; a lasting slowdown still shows within a few calls.
    avg[size] = old === undefined ? msPerMac : 0.8 * old + 0.2 * Math.min(msPerMac, 2 * old);
    if (parallel) this.splitCalls++;
    else this.serialCalls++;
  }
}

/**
 * The rows a product of `rows` rows pays for in the micro-kernel's panels (gemm.ts, panelHeight): 6-row
 * panels in the relaxed build (tile height 6), ending on 4-row ones, which run about 1.13x slower a
 * row; 4-row panels in the plain build.
 */
function panelRowCost(rows: number, tileRows: number): number {
  if (tileRows === 4) return Math.ceil(rows / 4) * 4;
  let cost = 0;
  for (let rest = rows; rest > 0; ) {
    const h = rest > 8 || rest === 6 || rest === 5 ? 6 : 4;
    cost += h === 6 ? 6 : 4.5;
    rest -= h;
  }
  return cost;
}

/** The columns a product of `cols` columns pays for: whole 8-wide tiles. */
function tileCols(cols: number): number {
  return Math.ceil(cols / 8) * 8;
}
