/**
 * What the threads of data-parallel training share: the step block each step is described in, the
 * module state copied from the main model to the replicas, and the replica's side of the loop
 * (`serveReplica`, run by src/parallel/worker.ts).
 *
 * Step block, in i32 slots from its byte offset:
 *   [0] COMMAND      STEP, TRAIN_STEP or QUIT, written by rank 0 before the step's first barrier
 *   [1] TOTAL        rows of the whole batch
 *   [8 + 4·(r-1)]    rank r's shard: rows, byte offset of its samples, byte offset of its labels, first row
 *   [FLAGS ...]      one slot per module (training bit, batch-norm statistics mode) and per parameter (trainable)
 * and after them one f64 per rank, the mean loss of its shard, then 8 f64 describing the optimizer
 * update of a TRAIN step (see `writeUpdate`).
 */
import { CrossEntropyLoss } from '../nn/loss.js';
import { BATCH_NORM_STATISTICS, BatchNormBase } from '../nn/batchnorm.js';
import type { Module, Parameter } from '../nn/module.js';
import { buildSequential, type LayerSpec } from '../nn/registry.js';
import type { Sequential } from '../nn/sequential.js';
import { Tensor, findNonFinite, provenFinite, shapeToString } from '../tensor/tensor.js';
import { attachBackend, type BackendAttachment } from '../kernels/index.js';
import { canBlockHere } from '../platform/index.js';
import { Rng } from '../tensor/rng.js';
import type { Kernels } from '../kernels/kernels.js';
import { applyUpdate, clearingGradients, type ElementwiseUpdate } from '../optim/optimizer.js';
import { GroupAbortedError, SharedSyncGroup } from './sync-group.js';

/** Forward, backward and gradient all-reduce. */
export const STEP = 1;
export const QUIT = 2;
/** STEP, then the optimizer update, each rank on its slice of every parameter. */
export const TRAIN_STEP = 3;
const COMMAND = 0;
export const TOTAL = 1;
const SHARDS = 8;
const FLAGS = 64;

/** Where things are in a step block for a model with `modules` modules and `parameters` parameters. */
export class StepLayout {
  readonly bytes: number;
  readonly lossOffset: number;
  readonly updateOffset: number;
  constructor(readonly base: number, readonly size: number, readonly modules: number, readonly parameters: number) {
    if (SHARDS + 4 * (size - 1) > FLAGS) throw new Error(`data-parallel training supports up to ${(FLAGS - SHARDS) / 4 + 1} threads, not ${size}`);
    this.lossOffset = base + Math.ceil((4 * (FLAGS + modules + parameters)) / 8) * 8;
    this.updateOffset = this.lossOffset + 8 * size;
    this.bytes = this.updateOffset - base + 8 * 8;
  }
  slot(i: number): number {
    return (this.base >> 2) + i;
  }
  command(): number {
    return this.slot(COMMAND);
  }
  /** Slot of rank r's shard description (rows, samples offset, labels offset); r ≥ 1. */
  shard(r: number): number {
    return this.slot(SHARDS + 4 * (r - 1));
  }
  flags(): number {
    return this.slot(FLAGS);
  }
}

/** Everything a replica worker needs, sent once (structured-cloned: the backend's memory is shared, not copied). */
export interface ReplicaInit {
  /** The main thread's backend on its shared memory, allocating only in a region rank 0 reserved for this replica. */
  backend: BackendAttachment;
  rank: number;
  size: number;
  group: { base: number; capacity: number };
  step: { base: number };
  /** µs a waiting thread spins before it sleeps: within a step, and (idle) for the next step. */
  spinMicros: number;
  idleSpinMicros: number;
  layers: LayerSpec[];
  sampleShape: number[];
  /** The main model's parameters and buffers (state-dict names and byte offsets): the replica works on them in place. */
  state: Array<{ name: string; offset: number; length: number }>;
  /**
   * Byte offset of the gradient table: i32[size][parameters], rank q's gradient byte offsets in
   * `parameters()` order. Rank 0 fills it once every replica has reported its own (before the first step).
   */
  gradTable: number;
  /** Byte offsets of the optimizer's state arrays, per parameter (`Optimizer.stateArrays()`), when TRAIN steps are used. */
  optimizerState: number[][] | null;
}

/** What a replica reports once built: the byte offsets of its parameter gradients, in `parameters()` order. */
export interface ReplicaReady {
  ready: true;
  grads: number[];
}

/**
 * This rank's part of the gradient all-reduce and of the optimizer update, as views made once: for
 * every parameter, its slice [r·n/size, (r+1)·n/size) of the values, of rank 0's gradient, of every other
 * rank's gradient and of the optimizer state. All ranks work on their slices at the same time, so neither
 * the sum nor the update waits on one thread.
 */
export class ParameterSlices {
  private readonly index: number[] = [];
  private readonly values: Float32Array[] = [];
  private readonly target: Float32Array[] = [];
  private readonly sources: Float32Array[][] = [];
  private readonly state: Float32Array[][] = [];

  /**
   * @param values each parameter's values
   * @param grads `grads[q][i]`: rank q's gradient of parameter i (rank 0's receives the sum)
   * @param state each parameter's optimizer state arrays (or none)
   */
  constructor(values: Float32Array[], grads: Float32Array[][], state: Float32Array[][] | null, rank: number, size: number) {
    for (let i = 0; i < values.length; i++) {
      const n = values[i].length;
      const lo = Math.floor((rank * n) / size);
      const hi = Math.floor(((rank + 1) * n) / size);
      if (hi === lo) continue;
      this.index.push(i);
      this.values.push(values[i].subarray(lo, hi));
      this.target.push(grads[0][i].subarray(lo, hi));
      this.sources.push(grads.slice(1).map((g) => g[i].subarray(lo, hi)));
      this.state.push(state ? state[i].map((a) => a.subarray(lo, hi)) : []);
    }
  }

  /** Rank 0's gradient slices += every other rank's (in rank order), which are zeroed as they are read. */
  reduce(kernels: Kernels): void {
    for (let i = 0; i < this.target.length; i++) {
      for (const source of this.sources[i]) kernels.addAndClear(this.target[i], source);
    }
  }

  /** The optimizer update on these slices of the trainable parameters, rank 0's gradient slices zeroed for the next step (by the update, as it reads them). */
  update(kernels: Kernels, update: ElementwiseUpdate, trainable: readonly boolean[]): void {
    const clearing = clearingGradients(update);
    for (let i = 0; i < this.target.length; i++) {
      if (trainable[this.index[i]]) applyUpdate(kernels, clearing, this.values[i], this.target[i], this.state[i]);
      else kernels.fill(this.target[i], 0);
    }
  }
}

/** Put this step's optimizer update in the step block (8 f64). */
export function writeUpdate(f64: Float64Array, layout: StepLayout, update: ElementwiseUpdate): void {
  const o = layout.updateOffset >> 3;
  if (update.kind === 'sgd') {
    const u = update.options;
    f64[o] = 0;
    f64[o + 1] = u.lr;
    f64[o + 2] = u.momentum;
    f64[o + 3] = u.dampening;
    f64[o + 4] = u.weightDecay;
    f64[o + 5] = +u.nesterov;
    f64[o + 6] = +u.firstStep;
  } else {
    const u = update.options;
    f64[o] = 1;
    f64[o + 1] = u.lr;
    f64[o + 2] = u.beta1;
    f64[o + 3] = u.beta2;
    f64[o + 4] = u.eps;
    f64[o + 5] = u.weightDecay;
    f64[o + 6] = +u.decoupledWeightDecay;
    f64[o + 7] = u.step;
  }
}

export function readUpdate(f64: Float64Array, layout: StepLayout): ElementwiseUpdate {
  const o = layout.updateOffset >> 3;
  const v = (k: number) => f64[o + k];
  if (v(0) === 0) return { kind: 'sgd', options: { lr: v(1), momentum: v(2), dampening: v(3), weightDecay: v(4), nesterov: v(5) === 1, firstStep: v(6) === 1 } };
  return { kind: 'adam', options: { lr: v(1), beta1: v(2), beta2: v(3), eps: v(4), weightDecay: v(5), decoupledWeightDecay: v(6) === 1, step: v(7) } };
}

/** Every rank's gradients, as views of the table rank 0 filled: `[rank][parameter]`. */
export function readGradTable(buffer: ArrayBufferLike, table: number, size: number, lengths: number[]): Float32Array[][] {
  const i32 = new Int32Array(buffer, table, size * lengths.length);
  return Array.from({ length: size }, (_, q) => lengths.map((n, i) => new Float32Array(buffer, i32[q * lengths.length + i], n)));
}

/**
 * Error for a non-finite input value in a shard that starts at row `firstRow` of a batch of `total`:
 * names the sample in the whole batch. With `fast` (`sums`: one float per value of a sample, in the
 * backend's memory), the backend first tries to prove the shard finite by column sums (provenFinite);
 * the value-by-value search alone took 15 µs for 30 rows of 784, a few percent of a data-parallel step.
 */
export function checkShard(x: Float32Array, firstRow: number, total: number, sampleShape: readonly number[], fast?: { kernels: Kernels; sums: Float32Array }): void {
  if (fast && provenFinite(fast.kernels, x, fast.sums)) return;
  const bad = findNonFinite(x);
  if (bad < 0) return;
  const sample = sampleShape.reduce((a, b) => a * b, 1);
  const index = firstRow * sample + bad;
  throw new Error(`Input contains ${x[bad]} at flat index ${index} (sample ${Math.floor(index / sample)} of a batch of shape ${shapeToString([total, ...sampleShape])}). Clean the data (e.g. replace missing values) before training.`);
}

/**
 * The state of a model's modules that the replicas copy from rank 0 every step: train/eval flags,
 * batch-norm statistics modes and which parameters are trainable. The lists are taken once: a step
 * walks arrays, not the module tree.
 */
export class ModuleState {
  readonly modules: Module[];
  readonly params: Parameter[];
  /** `trainable` of each parameter, as of the last `write` or `read`. */
  readonly trainable: boolean[];

  constructor(model: Module) {
    this.modules = [...model.modules()];
    this.params = model.parameters();
    this.trainable = this.params.map((p) => p.trainable);
  }

  /** Rank 0: put the flags into the step block. */
  write(i32: Int32Array, layout: StepLayout): void {
    let i = layout.flags();
    for (const m of this.modules) {
      const mode = m instanceof BatchNormBase ? BATCH_NORM_STATISTICS.indexOf(m.statistics) + 1 : 0;
      i32[i++] = (m.training ? 1 : 0) | (mode << 1);
    }
    for (let p = 0; p < this.params.length; p++) i32[i++] = (this.trainable[p] = this.params[p].trainable) ? 1 : 0;
  }

  /** A replica: take the flags rank 0 wrote (a BN mode only where it differs: setting one validates it). */
  read(i32: Int32Array, layout: StepLayout): void {
    let i = layout.flags();
    for (const m of this.modules) {
      const v = i32[i++];
      m.training = (v & 1) === 1;
      const mode = v >> 1;
      if (mode > 0 && m instanceof BatchNormBase && m.statistics !== BATCH_NORM_STATISTICS[mode - 1]) m.statistics = BATCH_NORM_STATISTICS[mode - 1];
    }
    for (let p = 0; p < this.params.length; p++) this.params[p].trainable = this.trainable[p] = i32[i++] === 1;
  }
}

/**
 * Build the replica a worker trains: the same layers on a backend attached to the shared memory, with
 * every parameter and buffer a view of the main model's (so the optimizer's update on rank 0 is the
 * replica's next weights without a copy), and gradients of its own.
 */
async function buildReplica(init: ReplicaInit): Promise<{ model: Sequential; kernels: Kernels }> {
  const kernels = await attachBackend(init.backend); // the backend the main thread uses, on its memory
  const model = buildSequential(init.layers, { rng: new Rng(0) });
  const views = new Map(init.state.map((s) => [s.name, new Float32Array(kernels.sharing!.buffer, s.offset, s.length)]));
  const take = (name: string, shape: readonly number[]): Tensor => {
    const view = views.get(name);
    if (!view) throw new Error(`replica: the main model has no "${name}"`);
    return new Tensor(shape, view);
  };
  for (const [name, p] of model.namedParameters()) p.value = take(name, p.value.shape);
  for (const m of model.modules()) {
    if (!(m instanceof BatchNormBase) || !m.runningMean) continue;
    const prefix = m.path ? `${m.path}.` : '';
    m.runningMean = take(`${prefix}running_mean`, m.runningMean.shape);
    m.runningVar = take(`${prefix}running_var`, m.runningVar!.shape);
    m.numBatchesTrackedTensor = take(`${prefix}num_batches_tracked`, []);
    if (m.renormStepsTensor) m.renormStepsTensor = take(`${prefix}renorm_steps`, []);
  }
  model.checkInput = false; // checkShard does it, naming the sample in the whole batch
  model.inputGrad = false;
  return { model, kernels };
}

/** The replica's loop: wait for a step, train on its shard, meet the others at each batch-norm layer and at the end. */
export async function serveReplica(init: ReplicaInit, ready: (message: ReplicaReady) => void): Promise<void> {
  const { model, kernels } = await buildReplica(init);
  const sharing = kernels.sharing!;
  const buffer = sharing.buffer;
  const i32 = new Int32Array(buffer);
  const f64 = new Float64Array(buffer);
  const state = new ModuleState(model);
  const layout = new StepLayout(init.step.base, init.size, state.modules.length, state.params.length);
  const group = new SharedSyncGroup(buffer, init.group.base, init.rank, init.size, init.group.capacity, { spinMicros: init.spinMicros, canBlock: canBlockHere() });
  for (const m of model.modules()) if (m instanceof BatchNormBase) m.sync = group;
  const loss = new CrossEntropyLoss(kernels);
  const grads = state.params.map((p) => p.grad.data);
  ready({ ready: true, grads: grads.map((g) => g.byteOffset) });
  const values = state.params.map((p) => p.value.data);
  const optimizerState = init.optimizerState?.map((arrays, i) => arrays.map((offset) => new Float32Array(buffer, offset, values[i].length))) ?? null;
  let slices: ParameterSlices | null = null; // built at the first step, when the gradient table is complete
  const sample = init.sampleShape.reduce((a, b) => a * b, 1);
  const check = { kernels, sums: kernels.allocate(sample) };
  let x: Tensor | null = null;
  let labels: Int32Array | null = null;
  for (;;) {
    try {
      group.barrier(init.idleSpinMicros); // the step starts (or the group ends)
    } catch (e) {
      if (e instanceof GroupAbortedError) return;
      throw e;
    }
    if (Atomics.load(i32, layout.command()) === QUIT) return;
    try {
      const s = layout.shard(init.rank);
      const rows = i32[s];
      const xOffset = i32[s + 1];
      const labelsOffset = i32[s + 2];
      const firstRow = i32[s + 3];
      const total = i32[layout.slot(TOTAL)];
      if (!x || x.shape[0] !== rows || x.data.byteOffset !== xOffset || !labels || labels.byteOffset !== labelsOffset) {
        // Rank 0 may have placed new shard buffers after the memory grew: view them through its current buffer.
        const current = sharing.buffer;
        x = new Tensor([rows, ...init.sampleShape], new Float32Array(current, xOffset, rows * sample));
        labels = new Int32Array(current, labelsOffset, rows);
      }
      state.read(i32, layout);
      checkShard(x.data, firstRow, total, init.sampleShape, check);
      const value = loss.forward(model.forward(x), labels);
      const dLogits = loss.backward();
      // The loss is the mean over the whole batch: this shard's gradient weighs rows/total of it.
      kernels.scale(dLogits.data, rows / total, dLogits.data);
      model.backward(dLogits);
      f64[(layout.lossOffset >> 3) + init.rank] = value;
      group.barrier(); // every replica's gradients are complete
      slices ??= new ParameterSlices(values, readGradTable(buffer, init.gradTable, init.size, grads.map((g) => g.length)), optimizerState, init.rank, init.size);
      slices.reduce(kernels);
      if (Atomics.load(i32, layout.command()) === TRAIN_STEP) slices.update(kernels, readUpdate(f64, layout), state.trainable);
      group.barrier(); // the gradients are summed into rank 0's
    } catch (e) {
      if (e instanceof GroupAbortedError) return;
      group.abort(`data-parallel replica ${init.rank}: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
  }
}
