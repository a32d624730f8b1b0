/**
 * The engine worker: owns one or both twins on the WebAssembly backend and answers the page's
 * commands (protocol.ts). Everything it computes is library code: src/runs builds the runs, the
 * Trainer steps them, src/io writes and reads model files, the probes call src/experiments.
 */
import { initBackend, getBackend } from '@bnlab/kernels/index.js';
import { parseIdx } from '@bnlab/data/idx.js';
import { bytesToUnit, datasetFromIdx, subset, takeFirst, FASHION_MNIST_CLASS_NAMES, MNIST_CLASS_NAMES, type Dataset } from '@bnlab/data/dataset.js';
import { Tensor } from '@bnlab/tensor/tensor.js';
import { softmax } from '@bnlab/nn/loss.js';
import { batchNormLayers } from '@bnlab/nn/batchnorm-modes.js';
import { BatchNormBase } from '@bnlab/nn/batchnorm.js';
import type { Sequential } from '@bnlab/nn/sequential.js';
import { decodeModel, encodeModel, modelInput, type ModelJson } from '@bnlab/io/model-file.js';
import { layerSpec } from '@bnlab/nn/registry.js';
import type { TwinId, TwinSpec } from '@bnlab/runs/index.js';
import { PROBE_EXAMPLES } from './probes.js';
import { batchOfOneInTraining } from '@bnlab/experiments/test-time.js';
import { featureScales, scaleFeatures, withScaledImages } from '@bnlab/experiments/data.js';
import { Twin, type TwinData } from './twin.js';
import { sweepTail, type ClassifyOutput, type DataBytes, type SharedPixels, type FromWorker, type ModelId, type ProbeRequest, type ProbeResult, type SweepPoint, type TestPoint, type ToWorker, type WorkerMemory } from './protocol.js';

const scope = globalThis as unknown as { onmessage: ((e: MessageEvent<ToWorker>) => void) | null; postMessage(m: FromWorker, transfer?: Transferable[]): void };

let owned: TwinId[] = [];
const datasets = new Map<string, { train: Dataset; test: Dataset }>();
let twins = new Map<TwinId, Twin>();
let probes: ProbeRequest[] = [];
/** A model opened from files, with its model.json: a drawing reaches it in its own input shape and standardization. */
let imported: { model: Sequential; name: string; json: ModelJson } | null = null;
/** The digit pad draws 28×28 gray images: what an opened model must take ([784] or [1, 28, 28]). */
const PAD_VALUES = 28 * 28;
let current: { spec: TwinSpec; dataset: string; testImages: number; inputScale: number } | null = null;

function post(m: FromWorker, transfer: Transferable[] = []): void {
  scope.postMessage(m, transfer);
}

function memory(): WorkerMemory {
  const kernels = getBackend() as { memory?: WebAssembly.Memory; heap?: { allocatedBytes: number } };
  const perf = performance as { memory?: { usedJSHeapSize: number } };
  // live: the bytes of the wasm memory in use now (the memory itself never shrinks, so its size is a high-water mark).
  return { wasm: kernels.memory?.buffer.byteLength ?? 0, live: kernels.heap?.allocatedBytes ?? null, heap: perf.memory?.usedJSHeapSize ?? null };
}

function loadData(d: DataBytes): void {
  const classNames = d.dataset === 'fashion-mnist' ? FASHION_MNIST_CLASS_NAMES : MNIST_CLASS_NAMES;
  const load = (set: 'train' | 'test', images: ArrayBufferLike, labels: ArrayBufferLike): Dataset => {
    const idx = parseIdx(new Uint8Array(images), `${d.dataset} ${set} images`);
    // Shared: the workers convert chunks of values together (any boundary will do for bytes to floats).
    const convert = (out: Float32Array, from: number, to: number) => bytesToUnit(idx.data.subarray(from, to), out.subarray(from, to));
    const pixels = d.pixels ? sharedFloats(d.pixels, set, idx.data.length, 1, convert) : undefined;
    return datasetFromIdx(idx, parseIdx(new Uint8Array(labels), `${d.dataset} ${set} labels`), d.dataset, { classNames, ...(pixels ? { pixels } : {}) });
  };
  datasets.set(d.dataset, { train: load('train', d.trainImages, d.trainLabels), test: load('test', d.testImages, d.testLabels) });
}

/** Chunks a shared set is filled in: enough for the workers to share the work evenly. */
const FILL_CHUNKS = 32;

/**
 * `length` floats of `shared[set]`, memory every worker shares, filled by all of them together: each
 * claims chunks (whole runs of `unit` values: a sample, when the filler works sample by sample) and
 * calls `fill(out, from, to)` on them until none is left, then waits until every chunk is done (a worker
 * may block; filling takes well under a second). A set filled before returns at once.
 */
function sharedFloats(shared: SharedPixels, set: 'train' | 'test', length: number, unit: number, fill: (out: Float32Array, from: number, to: number) => void): Float32Array {
  const out = new Float32Array(shared[set], 0, length);
  const state = new Int32Array(shared.state);
  const next = set === 'train' ? 0 : 2;
  const done = next + 1;
  const units = length / unit;
  const edge = (c: number) => Math.floor((c * units) / FILL_CHUNKS) * unit;
  for (let c = Atomics.add(state, next, 1); c < FILL_CHUNKS; c = Atomics.add(state, next, 1)) {
    fill(out, edge(c), edge(c + 1));
    if (Atomics.add(state, done, 1) + 1 === FILL_CHUNKS) Atomics.notify(state, done);
  }
  for (let seen = Atomics.load(state, done); seen < FILL_CHUNKS; seen = Atomics.load(state, done)) Atomics.wait(state, done, seen, 1000);
  return out;
}

/** Per-feature factors spanning a ratio of `ratio` (from 1/√ratio to √ratio, in a seeded order), or null for 1. */
function inputScales(ratio: number, seed: number, features: number): Float32Array | null {
  return ratio > 1 ? featureScales(features, 1 / Math.sqrt(ratio), Math.sqrt(ratio), seed) : null;
}

let scaled: { key: string; train: Dataset; test: Dataset } | null = null;

/** A filler for sharedFloats: samples [from, to) of `ds` (in values) rescaled into `out`. */
function rescale(ds: Dataset, scales: Float32Array): (out: Float32Array, from: number, to: number) => void {
  const size = scales.length;
  return (out, from, to) => scaleFeatures(subset(ds, from / size, (to - from) / size), scales, out.subarray(from, to));
}

function twinData(dataset: string, testImages: number, inputScale = 1, seed = 1, shared?: SharedPixels): TwinData {
  let d = datasets.get(dataset);
  if (!d) throw new Error(`dataset ${dataset} has not been sent to the worker`);
  const scales = inputScales(inputScale, seed, d.test.images.length / d.test.count);
  if (scales) {
    // The input-scale panel's MNIST with badly scaled features: the same images, each pixel multiplied by its own factor.
    const key = `${dataset}/${inputScale}/${seed}`;
    if (scaled?.key !== key) {
      // With shared memory the workers share one rescaled copy, which they write together.
      const rescaled = (set: 'train' | 'test', ds: Dataset) =>
        shared ? withScaledImages(ds, sharedFloats(shared, set, ds.images.length, scales.length, rescale(ds, scales))) : scaleFeatures(ds, scales);
      scaled = { key, train: rescaled('train', d.train), test: rescaled('test', d.test) };
    }
    d = scaled;
  }
  const testSet = takeFirst(d.test, Math.min(testImages, d.test.count));
  const n = Math.min(PROBE_EXAMPLES, d.test.count);
  const per = d.test.images.length / d.test.count;
  const probeInput = new Tensor([n, per], d.test.images.slice(0, n * per));
  return { trainSet: d.train, testSet, probeInput, probeLabels: d.test.labels.slice(0, n) };
}

async function reset(spec: TwinSpec, dataset: string, testImages: number, inputScale = 1, scaledPixels?: SharedPixels): Promise<void> {
  for (const t of twins.values()) t.close();
  twins = new Map();
  current = { spec, dataset, testImages, inputScale };
  const data = twinData(dataset, testImages, inputScale, spec.seed, scaledPixels);
  for (const id of owned) twins.set(id, await Twin.create(id, spec, data));
  post({ type: 'reset', twins: [...twins.values()].map((t) => ({ twin: t.id, layers: t.run.model.layers.map((l) => layerSpec(l)), parameters: t.run.model.parameters().reduce((n, p) => n + p.value.size, 0) })) });
  // Step 0: the probes of the initial weights. No test evaluation: the running statistics of the BN
  // twin are not yet defined, and both nets are at chance anyway.
  for (const t of twins.values()) {
    const out = { losses: [] as number[], tests: [] as TestPoint[], probes: [] as ProbeResult[] };
    t.probe(probes, out.probes);
    report(0, t, out, 0);
  }
}

function report(id: number, t: Twin, out: { losses: number[]; tests: TestPoint[]; probes: ProbeResult[] }, seconds: number): void {
  const losses = Float64Array.from(out.losses);
  post({ type: 'steps', id, twin: t.id, firstStep: t.step - out.losses.length + 1, losses, tests: out.tests, probes: out.probes, diverged: t.diverged, lr: t.lr, seconds, memory: memory() }, [losses.buffer]);
}

function step(id: number, steps: number): void {
  // Lockstep within this worker: each twin takes the same number of steps before either reports.
  for (const t of twins.values()) {
    const out = { losses: [] as number[], tests: [] as TestPoint[], probes: [] as ProbeResult[] };
    const start = performance.now();
    t.train(steps, probes, out);
    report(id, t, out, (performance.now() - start) / 1000);
  }
}

async function sweep(id: number, rates: number[], steps: number): Promise<void> {
  if (!current) throw new Error('sweep before reset');
  const data = twinData(current.dataset, current.testImages, current.inputScale, current.spec.seed);
  for (const twin of owned) {
    const points: SweepPoint[] = [];
    for (const [i, lr] of rates.entries()) {
      const t = await Twin.create(twin, { ...current.spec, lr, evalEvery: 0 }, data);
      const out = { losses: [] as number[], tests: [] as TestPoint[], probes: [] as ProbeResult[] };
      t.train(steps, [], out);
      t.close();
      const tail = out.losses.slice(-sweepTail(steps));
      points.push({ lr, finalLoss: t.diverged ? t.diverged.loss : tail.reduce((a, b) => a + b, 0) / tail.length, diverged: t.diverged });
      post({ type: 'sweep-progress', id, twin, done: i + 1, total: rates.length });
    }
    post({ type: 'sweep', id, twin, points, steps });
  }
}

/** Eval mode (running statistics) and a batch of one in training mode, without touching any state. */
function classify(model: Sequential, x: Tensor): ClassifyOutput {
  const modes = [...model.modules()].map((m) => m.training);
  const bns = batchNormLayers(model);
  const statistics = bns.map((l) => l.statistics);
  const probabilities = () => Array.from(softmax(model.forward(x)).data);
  // Running averages never updated hold mean 0 and variance 1: eval mode would answer from those, and the
  // library warns about it. The page says "untrained" instead of quoting that answer.
  const untrained = bns.some((l) => l.numBatchesTracked === 0);
  try {
    model.eval();
    const evalOut = untrained ? null : probabilities();
    let trainBatchOfOne: ClassifyOutput['trainBatchOfOne'];
    try {
      // 'batch-frozen': batch statistics without updating the running averages.
      for (const l of bns) l.statistics = 'batch-frozen';
      model.train();
      trainBatchOfOne = { probabilities: probabilities() };
    } catch (e) {
      trainBatchOfOne = { error: e instanceof Error ? e.message : String(e), formula: batchOfOneInTraining(model, x).probabilities };
    }
    return { eval: evalOut, untrained, hasBatchNorm: bns.length > 0, trainBatchOfOne };
  } finally {
    [...model.modules()].forEach((m, i) => (m.training = modes[i]));
    bns.forEach((l, i) => (l.statistics = statistics[i]));
  }
}

async function handle(m: ToWorker): Promise<void> {
  switch (m.type) {
    case 'init': {
      owned = m.twins;
      const kernels = await initBackend('wasm', { threads: m.threads });
      const k = kernels as { threads?: number; shared?: boolean };
      post({ type: 'ready', twins: owned, backend: kernels.name, threads: k.threads ?? 1, sharedMemory: k.shared ?? false });
      return;
    }
    case 'data':
      loadData(m);
      return;
    case 'reset':
      probes = m.probes;
      await reset(m.spec, m.dataset, m.testImages, m.inputScale ?? 1, m.scaledPixels);
      return;
    case 'step':
      step(m.id, m.steps);
      return;
    case 'set':
      for (const t of twins.values()) t.lr = m.lr;
      if (current) current.spec = { ...current.spec, lr: m.lr };
      return;
    case 'probes':
      probes = m.probes;
      return;
    case 'sweep':
      await sweep(m.id, m.rates, m.steps);
      return;
    case 'classify': {
      const outputs: Partial<Record<ModelId, ClassifyOutput>> = {};
      // The twins were trained on rescaled pixels when the input scale is set: they see a drawing the same way.
      const scales = current ? inputScales(current.inputScale, current.spec.seed, m.input.length) : null;
      const input = scales ? m.input.map((v, i) => v * scales[i]) : m.input;
      for (const t of twins.values()) outputs[t.id] = classify(t.evalModel(), new Tensor([1, input.length], Float32Array.from(input)));
      if (imported && owned.includes('bn')) outputs.imported = classify(imported.model, modelInput(imported.json, m.input));
      post({ type: 'classified', id: m.id, outputs });
      return;
    }
    case 'export': {
      const t = twins.get(m.twin);
      if (!t) throw new Error(`this worker does not own twin ${m.twin}`);
      const d = current!;
      const { modelJson, safetensors } = encodeModel(t.run.model, { inputShape: t.run.inputShape, preset: null, classNames: t.run.trainSet.classNames, dataset: d.dataset });
      post({ type: 'exported', id: m.id, twin: m.twin, modelJson, safetensors }, [safetensors.buffer as ArrayBuffer]);
      return;
    }
    case 'import': {
      const { model, json } = decodeModel({ modelJson: m.modelJson, safetensors: m.safetensors, modelJsonName: `${m.name}/model.json`, safetensorsName: `${m.name}/model.safetensors` });
      const values = json.inputShape.reduce((a, b) => a * b, 1);
      if (values !== PAD_VALUES) {
        model.dispose();
        const what = json.preprocessing?.features ? `, the CSV columns ${json.preprocessing.features.slice(0, 4).join(', ')}${json.preprocessing.features.length > 4 ? ', …' : ''}` : '';
        throw new Error(`${m.name}/model.json: the model takes input [${json.inputShape.join(', ')}] (${values} values${what}), and the digit pad draws 28×28 gray images (784 values). Open a model trained on 28×28 gray images, such as MNIST with bnlab train --model ioffe-mlp, mlp-relu or mnist-cnn`);
      }
      imported?.model.dispose(); // the one it replaces
      imported = { model, name: m.name, json };
      const hasBatchNorm = model.layers.some((l) => l instanceof BatchNormBase);
      post({ type: 'imported', id: m.id, info: { name: m.name, inputShape: json.inputShape, layers: json.layers, parameters: model.parameters().reduce((n, p) => n + p.value.size, 0), dataset: json.dataset, classNames: json.classNames, hasBatchNorm } });
      return;
    }
  }
}

// Commands run one at a time, in order: a step never overlaps a reset.
let queue = Promise.resolve();
scope.onmessage = (e) => {
  const m = e.data;
  queue = queue.then(() => handle(m)).catch((err: unknown) => post({ type: 'error', id: 'id' in m ? (m.id as number) : undefined, message: err instanceof Error ? err.message : String(err) }));
};
