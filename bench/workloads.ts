/**
 * The bench's workloads on bnlab's own backends: training steps of the paper's network and of the CNN,
 * batch norm forward+backward, matmul, and the heap check. Each function takes the kernels to run on;
 * timings are the best of several repeats, since on a shared machine a timing can only come out slower
 * than the truth, never faster.
 */
import { buildPreset, CrossEntropyLoss, Conv2d, DataParallel, SGD, Tensor, Rng, BatchNorm1d, BatchNorm2d, type ConvAlgorithm, registerBackend, setBackend, type Kernels, type Module, type Sequential, type WasmKernels } from '../src/index.js';

/** Seconds per call of `fn`: the fastest of `repeats` runs of `inner` calls. */
export function bestSeconds(fn: () => void, repeats: number, inner: number): number {
  let best = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) fn();
    best = Math.min(best, (performance.now() - t0) / inner);
  }
  return best / 1000;
}

/** Build with `kernels` as the active backend (modules take the active one when constructed). */
export function withKernels<T>(kernels: Kernels, build: () => T): T {
  registerBackend(kernels);
  setBackend(kernels.name);
  return build();
}

/** A training step on batches of random data already in memory (20 batches, taken in turn). */
export interface Trainer {
  step(): number;
  model: Module;
  data: Float32Array;
}

export function trainer(kernels: Kernels, preset: string, bn: boolean, batch: number, lr: number, momentum: number): Trainer {
  return withKernels(kernels, () => {
    const model = buildPreset(preset, { bn, seed: 0 });
    const sampleShape = preset === 'mnist-cnn' ? [1, 28, 28] : [784];
    const sample = sampleShape.reduce((a, b) => a * b, 1);
    const loss = new CrossEntropyLoss(kernels);
    const optimizer = new SGD(model.parameters(), { lr, momentum });
    const batches = 20;
    const rng = new Rng(1);
    const data = kernels.allocate(batches * batch * sample); // in the backend's memory, as a loader feeding it would be
    for (let i = 0; i < data.length; i++) data[i] = rng.uniform();
    const labels = Int32Array.from({ length: batches * batch }, () => rng.int(10));
    const xs = Array.from({ length: batches }, (_, b) => new Tensor([batch, ...sampleShape], data.subarray(b * batch * sample, (b + 1) * batch * sample)));
    const ys = Array.from({ length: batches }, (_, b) => labels.subarray(b * batch, (b + 1) * batch));
    // As in training (and in PyTorch, where the data does not require grad): no gradient for the input.
    model.inputGrad = false;
    let i = 0;
    return {
      model,
      data, // the batches are subarrays of it (a block of the backend's memory for as long as the bench runs)
      step() {
        const b = i++ % batches;
        optimizer.zeroGrad();
        const value = loss.forward(model.forward(xs[b]), ys[b]);
        model.backward(loss.backward());
        optimizer.step();
        return value;
      },
    };
  });
}

/**
 * The same training step on `threads` threads (data-parallel with synchronized batch norm, the optimizer
 * update split across the threads too): `DataParallel.trainStep` on the batches `trainer` makes.
 */
export async function parallelTrainer(kernels: Kernels, preset: string, bn: boolean, batch: number, lr: number, momentum: number, threads: number): Promise<Trainer & { close(): void }> {
  const single = trainer(kernels, preset, bn, batch, lr, momentum);
  const rng = new Rng(1);
  const sampleShape = preset === 'mnist-cnn' ? [1, 28, 28] : [784];
  const sample = sampleShape.reduce((a, b) => a * b, 1);
  const xs = Array.from({ length: 20 }, (_, b) => new Tensor([batch, ...sampleShape], single.data.subarray(b * batch * sample, (b + 1) * batch * sample)));
  const ys = Array.from({ length: 20 }, () => Int32Array.from({ length: batch }, () => rng.int(10)));
  const optimizer = new SGD(single.model.parameters(), { lr, momentum });
  registerBackend(kernels);
  setBackend(kernels.name);
  const parallel = await DataParallel.create(single.model as Sequential, { threads, inputShape: sampleShape, optimizer });
  let i = 0;
  return {
    model: single.model,
    data: single.data,
    step() {
      const b = i++ % xs.length;
      single.model.train();
      return parallel.trainStep(xs[b], ys[b]);
    },
    close: () => parallel.close(),
  };
}

/** Training steps per second. */
export function trainingRate(t: Trainer, warmup: number, repeats: number, inner: number): number {
  for (let i = 0; i < warmup; i++) t.step();
  return 1 / bestSeconds(() => t.step(), repeats, inner);
}

/** Milliseconds for one forward + backward of a training-mode batch-norm layer. */
export function batchNormMs(kernels: Kernels, shape: number[], repeats: number, inner: number): number {
  const layer = withKernels(kernels, () => (shape.length === 2 ? new BatchNorm1d(shape[1]) : new BatchNorm2d(shape[1])));
  const size = shape.reduce((a, b) => a * b, 1);
  const rng = new Rng(2);
  const x = new Tensor(shape, kernels.allocate(size));
  const dy = new Tensor(shape, kernels.allocate(size));
  for (let i = 0; i < size; i++) {
    x.data[i] = rng.normal();
    dy.data[i] = rng.normal();
  }
  const run = () => {
    layer.forward(x);
    layer.backward(dy);
  };
  run();
  return bestSeconds(run, repeats, inner) * 1000;
}

/** GFLOPS of out[M,N] = a[M,K] · op(b), with b stored [N,K] (transB, as Linear's forward) or [K,N]. */
export function matmulGflops(kernels: Kernels, m: number, k: number, n: number, transB: boolean, repeats: number, inner: number): number {
  const product = matmulProduct(kernels, m, k, n, transB);
  try {
    return product.gflops(repeats, inner);
  } finally {
    product.release();
  }
}

/** A product of random matrices in the backend's memory, to time again and again; `release` gives the memory back. */
function matmulProduct(kernels: Kernels, m: number, k: number, n: number, transB: boolean): { gflops(repeats: number, inner: number): number; release(): void } {
  const rng = new Rng(3);
  const a = kernels.allocate(m * k), b = kernels.allocate(k * n), out = kernels.allocate(m * n);
  for (let i = 0; i < a.length; i++) a[i] = rng.normal();
  for (let i = 0; i < b.length; i++) b[i] = rng.normal();
  const opts = { transB };
  const run = () => kernels.matmul(a, b, out, m, k, n, opts);
  run();
  return {
    gflops: (repeats, inner) => (2 * m * n * k) / bestSeconds(run, repeats, inner) / 1e9,
    release: () => [a, b, out].forEach((x) => kernels.release(x)),
  };
}

/**
 * A product's GFLOPS and the arithmetic peak of the same build on the same number of threads, measured
 * in turns, `rounds` times, best of each. On a shared machine either can catch a busy minute (peaks
 * read at a run's start and end have come out below what the 1024³ product reached in between); measured
 * in turns, both have the same minutes, so their ratio is the kernel's more than the host's.
 */
export function matmulAgainstPeak(kernels: WasmKernels, threads: number, m: number, k: number, n: number, transB: boolean, rounds: number, repeats: number, inner: number): { gflops: number; peak: number } {
  const product = matmulProduct(kernels, m, k, n, transB);
  let gflops = 0, peak = 0;
  try {
    // Peak samples as long as the product's timing windows: best-of favours short samples, which more
    // often fit between two interruptions.
    const t0 = performance.now();
    kernels.measurePeak(threads, 1);
    const peakSample = performance.now() - t0;
    const window = ((2 * m * n * k * inner) / (product.gflops(1, inner) * 1e9)) * 1000;
    const calls = Math.min(200_000, Math.max(2000, Math.round((2000 * window) / peakSample)));
    for (let i = 0; i < rounds; i++) {
      peak = Math.max(peak, kernels.measurePeak(threads, 2, calls));
      gflops = Math.max(gflops, product.gflops(repeats, inner));
    }
  } finally {
    product.release();
  }
  return { gflops, peak };
}

/** mnist-cnn's second convolution: 16 → 32 channels, 3×3, padding 1, on a batch of 64 14×14 maps. */
export const CONV_SHAPE = { batch: 64, inChannels: 16, outChannels: 32, size: 14 };
/** Its flops as a direct convolution computes them, forward + input gradient + filter gradient: 3 · 2·B·O·C·9·H·W. */
export const CONV_FLOPS = 3 * 2 * CONV_SHAPE.batch * CONV_SHAPE.outChannels * CONV_SHAPE.inChannels * 9 * CONV_SHAPE.size ** 2;

/** ms per forward + backward (input and filter gradients) of that convolution with `algorithm`. */
export function convMs(kernels: Kernels, algorithm: ConvAlgorithm, repeats: number, inner: number): number {
  const { batch, inChannels, outChannels, size } = CONV_SHAPE;
  return withKernels(kernels, () => {
    const conv = new Conv2d({ inChannels, outChannels, kernelSize: 3, padding: 1, bias: false, algorithm, rng: new Rng(4) });
    const rng = new Rng(5);
    const x = new Tensor([batch, inChannels, size, size], kernels.allocate(batch * inChannels * size * size));
    const dy = new Tensor([batch, outChannels, size, size], kernels.allocate(batch * outChannels * size * size));
    for (let i = 0; i < x.size; i++) x.data[i] = rng.normal();
    for (let i = 0; i < dy.size; i++) dy.data[i] = rng.normal();
    const run = () => {
      conv.forward(x);
      conv.backward(dy);
    };
    run();
    return bestSeconds(run, repeats, inner) * 1000;
  });
}

/**
 * Heap (and wasm memory) growth in MB between step 100 and step `steps` of training: buffers are planned
 * once per model and batch shape, so it should stay within a few MB (GC noise).
 */
export function heapGrowthMb(t: Trainer, steps: number, wasmMemoryBytes: () => number, gc: () => void): number {
  for (let i = 0; i < 100; i++) t.step();
  gc();
  const before = process.memoryUsage().heapUsed + wasmMemoryBytes();
  for (let i = 100; i < steps; i++) t.step();
  gc();
  const after = process.memoryUsage().heapUsed + wasmMemoryBytes();
  return (after - before) / (1024 * 1024);
}
