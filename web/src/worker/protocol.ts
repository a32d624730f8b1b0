/**
 * The messages between the page and the engine worker(s). The page is a thin view: it sends commands,
 * the worker owns the twins (models, optimizers, trainers on the wasm backend) and answers with numbers.
 *
 * Workers: cross-origin isolated pages run two, one twin each ('bn' in one, 'nobn' in the other), in
 * lockstep: the page sends the same `step` command to both and sends the next one only when both have
 * answered. Otherwise one worker holds both twins and steps them alternately. The page's Engine class
 * (web/src/engine.ts) hides the difference; panels never talk to workers directly.
 *
 * Page → worker (ToWorker):
 *   init      which twins this worker owns; threads for its wasm backend
 *   data      the IDX bytes of a dataset (sent once per dataset; the worker parses them with the library)
 *   reset     rebuild the twins from `spec` (same seed → same initial weights and batch order), on `dataset`
 *             (its 784 features multiplied by factors spanning a ratio of `inputScale`, when given);
 *             `probes` are the probes the mounted panels asked for
 *   step      train `steps` steps (each owned twin that has not diverged), then answer `steps`
 *   set       live settings: the learning rate
 *   probes    replace the probe requests
 *   sweep     the learning-rate sweep: fresh twins for each rate, `steps` steps each; answers `sweep`
 *   classify  one input through each owned twin (and an imported model): eval mode, and a batch of one
 *             in training mode; answers `classified`
 *   export    a twin's model files; answers `exported`
 *   import    model.json + model.safetensors (e.g. trained by `bnlab train`); answers `imported`
 *
 * Worker → page (FromWorker):
 *   ready     backend, threads, shared memory
 *   reset     the twins' layer specs and parameter counts; step 0's test evaluation comes as `steps` with no losses
 *   steps     per-step train losses since the last report, test evaluations, probe results, divergence
 *   sweep / sweep-progress, classified, exported, imported, error
 */
import type { LayerSpec } from '@bnlab/nn/registry.js';
import type { TwinId, TwinSpec } from '@bnlab/runs/twins.js';

export type { TwinId, TwinSpec };
/** The twins, in drawing order (the page's copy of src/runs' TWINS, so the page bundle needs no library code). */
export const TWINS: readonly TwinId[] = ['bn', 'nobn'];
export type ModelId = TwinId | 'imported';

/** JSON-compatible values (a probe's params; typed arrays are fine too, they clone). */
export type ProbeValue = number | string | boolean | null | Float32Array | Float64Array | ProbeValue[] | { [key: string]: ProbeValue };

/**
 * A probe a panel asks for: `name` is a key of PROBES (web/src/worker/probes.ts), computed every
 * `every` steps (and at step 0) on each twin, with `params` passed to it. `id` keys the results
 * (default: the name), so one probe can be asked for twice with different params.
 */
export interface ProbeRequest {
  name: string;
  id?: string;
  every: number;
  params?: { [key: string]: ProbeValue };
}

export interface ProbeResult {
  id: string;
  step: number;
  /** What the probe returned (its type: PanelProbeValues for the panels' probes). */
  value: unknown;
}

export interface TestPoint {
  step: number;
  loss: number;
  accuracy: number;
}

/** Why a twin was stopped: its loss became NaN/∞, or stayed far above where it started. */
export interface Divergence {
  step: number;
  loss: number;
  cause: 'non-finite' | 'exploded';
  /** A sentence for the page. */
  message: string;
}

/** Bytes of a worker's wasm memory (its size, a high-water mark, and the part in use) and (Chromium) its JS heap. */
export interface WorkerMemory {
  wasm: number;
  live: number | null;
  heap: number | null;
}

export interface DataBytes {
  dataset: string;
  /** Shared when the page is cross-origin isolated (every worker reads the same bytes). */
  trainImages: ArrayBufferLike;
  trainLabels: ArrayBufferLike;
  testImages: ArrayBufferLike;
  testLabels: ArrayBufferLike;
  /**
   * Cross-origin isolated: where the images go as float32 (4 bytes per image byte, the IDX header's
   * included), shared by every worker: one copy of the 188 MB MNIST training set instead of one per
   * worker. The workers convert it together, claiming chunks (`state`: for each set, Int32s for the next
   * chunk to claim and the chunks done).
   */
  pixels?: SharedPixels;
}

/** Float32 images in memory every worker shares, and how far each set's conversion is (DataBytes.pixels). */
export interface SharedPixels {
  train: SharedArrayBuffer;
  test: SharedArrayBuffer;
  state: SharedArrayBuffer;
}

/** Steps at the end of a swept run whose mean train loss is its `finalLoss`: the last tenth. */
export function sweepTail(steps: number): number {
  return Math.max(1, Math.round(steps / 10));
}

/**
 * A ghost-batch size the twins can use with batches of `batchSize`: 2 or more (a ghost batch of one has
 * variance 0, and the library refuses it as it refuses a batch of one), smaller than it, and dividing it.
 */
export function ghostFits(ghost: number, batchSize: number): boolean {
  return ghost > 1 && ghost < batchSize && batchSize % ghost === 0;
}

export interface SweepPoint {
  lr: number;
  /** Mean train loss over the last `sweepTail(steps)` steps (NaN/∞ if it diverged). */
  finalLoss: number;
  diverged: Divergence | null;
}

export interface ClassifyOutput {
  /** Softmax probabilities in eval mode (running statistics); null when those were never updated. */
  eval: number[] | null;
  /** The model has batch norm whose running statistics were never updated (no training step yet). */
  untrained: boolean;
  /** Without batch norm, eval and training mode compute the same thing. */
  hasBatchNorm: boolean;
  /**
   * The same input as a batch of one in training mode (batch statistics), or why that cannot work; then
   * `formula` is what the arithmetic would give (variance 0, every batch norm outputs its β).
   */
  trainBatchOfOne: { probabilities: number[] } | { error: string; formula?: number[] };
}

export interface ImportedModelInfo {
  name: string;
  inputShape: number[];
  layers: LayerSpec[];
  parameters: number;
  dataset?: string;
  classNames?: string[];
  hasBatchNorm: boolean;
}

export type ToWorker =
  | { type: 'init'; twins: TwinId[]; threads: number }
  | ({ type: 'data' } & DataBytes)
  /** `scaledPixels`: with input scales above 1 and shared memory, where the rescaled images go, shared as DataBytes.pixels. */
  | { type: 'reset'; spec: TwinSpec; dataset: string; testImages: number; probes: ProbeRequest[]; inputScale?: number; scaledPixels?: SharedPixels }
  | { type: 'step'; id: number; steps: number }
  | { type: 'set'; lr: number }
  | { type: 'probes'; probes: ProbeRequest[] }
  | { type: 'sweep'; id: number; rates: number[]; steps: number }
  | { type: 'classify'; id: number; input: Float32Array }
  | { type: 'export'; id: number; twin: TwinId }
  | { type: 'import'; id: number; name: string; modelJson: Uint8Array; safetensors: Uint8Array };

export type FromWorker =
  | { type: 'ready'; twins: TwinId[]; backend: string; threads: number; sharedMemory: boolean }
  | { type: 'reset'; twins: { twin: TwinId; layers: LayerSpec[]; parameters: number }[] }
  | {
      type: 'steps';
      /** The `step` command answered (0 for the report after a reset). */
      id: number;
      twin: TwinId;
      /** Step number of losses[0]; losses[i] is the train loss of step firstStep + i (steps count from 1). */
      firstStep: number;
      losses: Float64Array;
      tests: TestPoint[];
      probes: ProbeResult[];
      diverged: Divergence | null;
      lr: number;
      /** Wall time of the training in this report. */
      seconds: number;
      memory: WorkerMemory;
    }
  | { type: 'sweep-progress'; id: number; twin: TwinId; done: number; total: number }
  | { type: 'sweep'; id: number; twin: TwinId; points: SweepPoint[]; steps: number }
  | { type: 'classified'; id: number; outputs: Partial<Record<ModelId, ClassifyOutput>> }
  | { type: 'exported'; id: number; twin: TwinId; modelJson: string; safetensors: Uint8Array }
  | { type: 'imported'; id: number; info: ImportedModelInfo }
  | { type: 'error'; id?: number; message: string };
