/**
 * Data-parallel training on several threads with synchronized batch norm. Each thread runs a replica of
 * the model on its shard of the batch (rank 0 is the calling thread and its model; the others are
 * workers); every batch-norm layer normalizes with the statistics of the whole batch, gathered from all
 * shards, and uses the whole batch's sums in its backward; after the backward, each thread adds up a
 * slice of every parameter's gradient into rank 0's and applies the optimizer to that slice. The result
 * is single-thread training on the whole batch up to float rounding (test/data-parallel.test.ts checks
 * it), as with PyTorch's DistributedDataParallel and SyncBatchNorm — but with threads that share one
 * WebAssembly memory, so the replicas read the weights and the batch in place.
 *
 * ```ts
 * await initBackend('auto'); // a backend with shared memory (capabilities.sharedMemory)
 * const model = buildPreset('ioffe-mlp');
 * const optimizer = new SGD(model.parameters(), { lr: 1 });
 * const parallel = await DataParallel.create(model, { threads: 2, inputShape: [784], optimizer });
 * const trainer = new Trainer({ model, optimizer, trainSet, batchSize: 60, steps: 1000, parallel });
 * trainer.run();
 * parallel.close();
 * ```
 *
 * Shape legend: B = batch, B_r = rows of rank r's shard.
 */
import { getBackend, type Kernels, type SharedKernelMemory } from '../kernels/index.js';
import { currentPlatform, type Platform, type ScriptWorker } from '../platform/index.js';
import { BatchNormBase } from '../nn/batchnorm.js';
import { CrossEntropyLoss } from '../nn/loss.js';
import { layerSpec } from '../nn/registry.js';
import { Sequential } from '../nn/sequential.js';
import { Tensor, shapeToString } from '../tensor/tensor.js';
import { ModuleState, ParameterSlices, QUIT, STEP, StepLayout, TOTAL, TRAIN_STEP, checkShard, readGradTable, writeUpdate, type ReplicaInit, type ReplicaReady } from './replica.js';
import type { Optimizer } from '../optim/optimizer.js';
import { GroupAbortedError, SharedSyncGroup } from './sync-group.js';

export interface DataParallelOptions {
  /** Threads, the calling one included (each trains on 1/threads of every batch). Default 2. */
  threads?: number;
  /** Shape of one sample as the model takes it ([784], [1, 28, 28]). */
  inputShape: readonly number[];
  /** Memory reserved for each worker's activations, gradients and work space, in MB. Default 64. */
  replicaMemoryMB?: number;
  /**
   * How long a thread waiting for another within a step spins before it sleeps, in µs. Default 50: in
   * a step the threads meet every 10-150 µs and, when both have a core, wait a few µs; a partner that
   * is later than that was most likely descheduled by the OS, and a spinning thread would only keep the
   * core it may need (on a busy two-core machine a 500 µs spin made steps 2-3x slower than a 50 µs one).
   */
  spinMicros?: number;
  /**
   * How long a worker waiting for the next step spins before it sleeps, in µs. Default 500: between
   * steps the caller loads the next batch, and waking a sleeping worker costs 10-50 µs a step.
   */
  idleSpinMicros?: number;
  /**
   * The optimizer of the model's parameters: with it, `trainStep` also spreads the optimizer update
   * over the threads (each updates a slice of every parameter). Its state must be in the shared memory
   * (create it after `initBackend(...)`).
   */
  optimizer?: Optimizer;
  /** Where workers come from (default: the current platform's). */
  platform?: Platform;
}

export class DataParallel {
  readonly threads: number;
  private readonly group: SharedSyncGroup;
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly loss: CrossEntropyLoss;
  private readonly batchNorms: BatchNormBase[];
  private readonly sample: number;
  /** Rank 0's part of the gradient all-reduce and optimizer update (each rank works on a slice of every parameter). */
  private readonly slices: ParameterSlices;
  private readonly state: ModuleState;
  /** Work space of the input check (checkShard): one float per value of a sample. */
  private readonly check: { kernels: Kernels; sums: Float32Array };
  /** Whether the model's gradients are known to be zero (trainStep leaves them so). */
  private gradsZero = false;
  /** Per worker rank: the buffers its shard of samples (when the batch is not in the shared memory already) and labels are copied to. */
  private readonly shardX: Float32Array[] = [];
  private readonly shardLabels: Int32Array[] = [];
  private broken: string | null = null;
  private closed = false;

  private constructor(
    readonly model: Sequential,
    private readonly kernels: Kernels,
    private readonly sharing: SharedKernelMemory,
    private readonly layout: StepLayout,
    group: SharedSyncGroup,
    private readonly workers: ScriptWorker[],
    gradTable: number,
    readonly optimizer: Optimizer | null,
    /** The shape of one sample as the model takes it (a Trainer given this object reshapes its batches to it). */
    readonly inputShape: readonly number[],
    /** Blocks of the shared memory this object reserved; referenced so they stay allocated while it lives. */
    private readonly reserved: Float32Array[],
    private readonly idleSpinMicros: number,
  ) {
    this.threads = workers.length + 1;
    this.group = group;
    const buffer = sharing.buffer;
    this.i32 = new Int32Array(buffer);
    this.f64 = new Float64Array(buffer);
    this.loss = new CrossEntropyLoss(kernels);
    this.batchNorms = [...model.modules()].filter((m): m is BatchNormBase => m instanceof BatchNormBase);
    this.sample = inputShape.reduce((a, b) => a * b, 1);
    const params = model.parameters();
    const grads = readGradTable(buffer, gradTable, this.threads, params.map((p) => p.grad.size));
    this.slices = new ParameterSlices(params.map((p) => p.value.data), grads, optimizer?.stateArrays() ?? null, 0, this.threads);
    this.state = new ModuleState(model);
    this.check = { kernels, sums: kernels.allocate(this.sample) };
    reserved.push(this.check.sums);
  }

  /**
   * Start `threads - 1` workers, each with a replica of `model` working on the model's own weights. The
   * model must be a Sequential of layers built on a backend whose memory other threads can share
   * (`capabilities.sharedMemory`: the wasm backend with shared memory).
   */
  static async create(model: Sequential, options: DataParallelOptions): Promise<DataParallel> {
    const threads = options.threads ?? 2;
    if (!Number.isInteger(threads) || threads < 2) throw new Error(`DataParallel: threads must be an integer of at least 2 (1 thread is plain training: leave DataParallel out), got ${threads}`);
    const kernels = getBackend();
    const sharing = kernels.sharing;
    if (!sharing) {
      throw new Error(`DataParallel: data-parallel training needs a backend whose memory the threads can share (the weights are shared in place), but the active backend "${kernels.name}" (${kernels.capabilities.variant}) has none. Call await initBackend('auto') before building the model (in a browser, on a cross-origin isolated page), or train on one thread.`);
    }
    const state = [...model.stateDict()];
    for (const [name, t] of state) {
      if (!sharing.holds(t.data)) throw new Error(`DataParallel: "${name}" is not in the "${kernels.name}" backend's memory: build the model after initBackend(...) (or move it there with model.useBackend(getBackend())).`);
    }
    for (const layer of model.layers) {
      if (layer instanceof Sequential) throw new Error('DataParallel: nested Sequential containers are not supported; flatten the model into one Sequential.');
    }
    const batchNorms = [...model.modules()].filter((m): m is BatchNormBase => m instanceof BatchNormBase);
    const platform = options.platform ?? (await currentPlatform());
    const capacity = Math.max(1, ...batchNorms.map((bn) => 1 + 2 * bn.numFeatures));
    const reserved: Float32Array[] = [];
    const reserve = (bytes: number): number => {
      const block = kernels.allocate(Math.ceil(bytes / 4));
      if (!sharing.holds(block)) throw new Error(`DataParallel: the backend's memory cannot hold another ${Math.ceil(bytes / 2 ** 20)} MB for the workers; pass a smaller replicaMemoryMB or a larger memoryMB to initBackend.`);
      reserved.push(block);
      return block.byteOffset;
    };
    const groupBase = reserve(SharedSyncGroup.bytes(threads, capacity));
    const moduleCount = [...model.modules()].length;
    const parameterCount = model.parameters().length;
    const layout = new StepLayout(reserve(new StepLayout(0, threads, moduleCount, parameterCount).bytes), threads, moduleCount, parameterCount);
    const gradTable = reserve(4 * threads * parameterCount);
    const optimizer = options.optimizer ?? null;
    if (optimizer) {
      const params = model.parameters();
      if (optimizer.parameters.length !== params.length || optimizer.parameters.some((p, i) => p !== params[i])) {
        throw new Error("DataParallel: the optimizer must update exactly the model's parameters, in order (new SGD(model.parameters(), ...))");
      }
      for (const arrays of optimizer.stateArrays()) {
        for (const a of arrays) if (!sharing.holds(a)) throw new Error("DataParallel: the optimizer's state is not in the backend's shared memory: create the optimizer after initBackend(...).");
      }
    }
    const spinMicros = options.spinMicros ?? 50;
    const idleSpinMicros = options.idleSpinMicros ?? 500;
    const regionBytes = Math.round((options.replicaMemoryMB ?? 64) * 2 ** 20);
    const layers = model.layers.map(layerSpec);
    const stateOffsets = state.map(([name, t]) => ({ name, offset: t.data.byteOffset, length: t.size }));
    const workers: ScriptWorker[] = [];
    try {
      const table = new Int32Array(sharing.buffer, gradTable, threads * parameterCount);
      model.parameters().forEach((p, i) => (table[i] = p.grad.data.byteOffset));
      for (let rank = 1; rank < threads; rank++) {
        const start = reserve(regionBytes);
        const init: ReplicaInit = {
          backend: sharing.attachment({ start, end: start + regionBytes }),
          rank,
          size: threads,
          group: { base: groupBase, capacity },
          step: { base: layout.base },
          spinMicros,
          idleSpinMicros,
          layers,
          sampleShape: [...options.inputShape],
          state: stateOffsets,
          gradTable,
          optimizerState: optimizer ? optimizer.stateArrays().map((arrays) => arrays.map((a) => a.byteOffset)) : null,
        };
        const worker = platform.spawnWorker(new URL('./worker.js', import.meta.url));
        workers.push(worker);
        worker.postMessage(init);
      }
      for (const [w, worker] of workers.entries()) {
        const reply = (await worker.firstMessage()) as ReplicaReady | { error: string };
        if (!('ready' in reply)) throw new Error(`DataParallel: a replica could not be built: ${reply.error}`);
        table.set(reply.grads, (w + 1) * parameterCount);
      }
      const group = new SharedSyncGroup(sharing.buffer, groupBase, 0, threads, capacity, { spinMicros, canBlock: platform.canBlock });
      return new DataParallel(model, kernels, sharing, layout, group, workers, gradTable, optimizer, options.inputShape, reserved, idleSpinMicros);
    } catch (e) {
      for (const w of workers) w.terminate();
      throw e;
    }
  }

  /**
   * One forward and backward of the whole batch x[B, ...] across the threads: afterwards the model's
   * parameter gradients hold the gradient of the batch's mean loss (added to what they held, as
   * `backward` does: zero them first), and its batch-norm running statistics have one update. Returns
   * the batch's mean loss. The optimizer step is the caller's, on rank 0's (the model's) parameters.
   */
  step(x: Tensor, labels: Int32Array): number {
    this.gradsZero = false;
    return this.onOwnThread(() => this.run(x, labels, null));
  }

  /**
   * A whole training step on the batch: `step`, then the optimizer update (the one given to `create`),
   * each thread on its slice of every parameter, then the gradients zeroed for the next step — what
   * `optimizer.zeroGrad(); loss.backward(); optimizer.step()` does on one thread. Returns the mean loss.
   */
  trainStep(x: Tensor, labels: Int32Array): number {
    const optimizer = this.optimizer;
    if (!optimizer) throw new Error('DataParallel: trainStep() needs the optimizer: DataParallel.create(model, { optimizer, ... })');
    this.validate(x, labels); // before the optimizer counts a step
    return this.onOwnThread(() => {
      if (!this.gradsZero) optimizer.zeroGrad();
      this.gradsZero = false;
      const update = optimizer.nextUpdate();
      writeUpdate(this.f64, this.layout, update);
      const loss = this.run(x, labels, () => this.slices.update(this.kernels, update, this.state.trainable));
      this.gradsZero = true;
      return loss;
    });
  }

  /**
   * `fn` with this thread's kernels kept on it (threadLimit 1, as torchrun sets OMP_NUM_THREADS=1 for
   * each process): the replicas take the other cores, so a kernel shared with a worker of the backend
   * would only wait for a core, and that worker's spinning would slow the replicas.
   */
  private onOwnThread<T>(fn: () => T): T {
    const limit = this.kernels.threadLimit;
    if (limit === undefined) return fn();
    this.kernels.threadLimit = 1;
    try {
      return fn();
    } finally {
      this.kernels.threadLimit = limit;
    }
  }

  private validate(x: Tensor, labels: Int32Array): void {
    if (this.closed) throw new Error('DataParallel: step() after close()');
    if (this.broken) throw new Error(`DataParallel: a previous step failed (${this.broken}); create a new DataParallel`);
    const total = x.shape[0];
    const sampleShape = x.shape.slice(1);
    if (sampleShape.length !== this.inputShape.length || sampleShape.some((d, i) => d !== this.inputShape[i])) {
      throw new Error(`DataParallel: expected a batch of samples of shape ${shapeToString(this.inputShape)}, got ${shapeToString(x.shape)}`);
    }
    if (labels.length !== total) throw new Error(`DataParallel: ${total} samples but ${labels.length} labels`);
    if (total < this.threads) throw new Error(`DataParallel: a batch of ${total} cannot be split across ${this.threads} threads (each needs a sample): use a larger batch (drop the short last batch) or fewer threads`);
  }

  private run(x: Tensor, labels: Int32Array, update: (() => void) | null): number {
    this.validate(x, labels);
    const total = x.shape[0];
    const sampleShape = x.shape.slice(1);
    // A batch in the shared memory (the DataLoader puts it there) is read in place by every rank.
    const inPlace = this.sharing.holds(x.data);

    // Rank r gets rows [start_r, start_r + B_r): B / threads each, the remainder to the first ranks.
    const i32 = this.i32;
    const base = Math.floor(total / this.threads);
    const extra = total % this.threads;
    const rows0 = base + (extra > 0 ? 1 : 0);
    let start = rows0;
    for (let r = 1; r < this.threads; r++) {
      const rows = base + (r < extra ? 1 : 0);
      const [xs, ls] = this.shardBuffers(r, rows, inPlace);
      const shard = x.data.subarray(start * this.sample, (start + rows) * this.sample);
      if (xs) xs.set(shard);
      for (let i = 0; i < rows; i++) ls[i] = labels[start + i];
      const s = this.layout.shard(r);
      i32[s] = rows;
      i32[s + 1] = xs ? xs.byteOffset : shard.byteOffset;
      i32[s + 2] = ls.byteOffset;
      i32[s + 3] = start;
      start += rows;
    }
    i32[this.layout.slot(TOTAL)] = total;
    this.state.write(i32, this.layout);
    Atomics.store(i32, this.layout.command(), update ? TRAIN_STEP : STEP);

    const model = this.model;
    const { checkInput, inputGrad } = model;
    for (const bn of this.batchNorms) bn.sync = this.group;
    model.checkInput = false; // each rank checks its shard (and names the sample in the whole batch)
    model.inputGrad = false;
    let loss0: number;
    try {
      this.group.barrier(this.idleSpinMicros); // the step starts (a worker that slept takes a while to wake)
      const x0 = new Tensor([rows0, ...sampleShape], x.data.subarray(0, rows0 * this.sample));
      checkShard(x0.data, 0, total, this.inputShape, this.check);
      loss0 = this.loss.forward(model.forward(x0), labels.subarray(0, rows0));
      const dLogits = this.loss.backward();
      this.kernels.scale(dLogits.data, rows0 / total, dLogits.data); // this shard's share of the batch mean
      model.backward(dLogits);
      this.group.barrier(); // every replica's gradients are complete
      this.slices.reduce(this.kernels); // rank 0's gradients become the sum, slice by slice on every rank
      update?.();
      this.group.barrier();
    } catch (e) {
      this.fail(e);
    } finally {
      for (const bn of this.batchNorms) bn.sync = null;
      model.checkInput = checkInput;
      model.inputGrad = inputGrad;
    }

    let loss = loss0! * rows0;
    for (let r = 1; r < this.threads; r++) loss += this.f64[(this.layout.lossOffset >> 3) + r] * i32[this.layout.shard(r)];
    return loss / total;
  }

  /** Stop the workers. The model stays usable on this thread. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.broken) {
      Atomics.store(this.i32, this.layout.command(), QUIT);
      try {
        this.group.barrier();
      } catch {
        // a worker already gone: nothing to tell it
      }
    }
    for (const w of this.workers) w.terminate();
    this.reserved.length = 0;
  }

  /** Buffers in the shared memory for rank r's shard, grown when a batch needs more. */
  private shardBuffers(r: number, rows: number, inPlace: boolean): [Float32Array | null, Int32Array] {
    const i = r - 1;
    if (!inPlace && (this.shardX[i]?.length ?? 0) < rows * this.sample) this.shardX[i] = this.kernels.allocate(rows * this.sample);
    if ((this.shardLabels[i]?.length ?? 0) < rows) {
      const labelBlock = this.kernels.allocate(rows);
      this.reserved.push(labelBlock);
      this.shardLabels[i] = new Int32Array(labelBlock.buffer, labelBlock.byteOffset, rows);
    }
    return [inPlace ? null : this.shardX[i].subarray(0, rows * this.sample), this.shardLabels[i].subarray(0, rows)];
  }

  /** Stop the group after an error on this thread (or learn a worker's) and make further steps fail clearly. */
  private fail(e: unknown): never {
    if (e instanceof GroupAbortedError) {
      this.broken = e.message;
      throw new Error(e.message);
    }
    const message = e instanceof Error ? e.message : String(e);
    this.broken = message;
    this.group.abort(`data-parallel rank 0: ${message}`);
    throw e;
  }
}
