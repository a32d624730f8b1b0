/**
 * The page's side of the engine: starts the worker(s), keeps the twins in lockstep, and collects what
 * they report into one LabData object that panels read on each animation frame. Two workers (one twin
 * each) on a cross-origin isolated page, one worker holding both otherwise.
 */
import { TWINS, type TwinId } from './worker/protocol.js';
import { fetchDataset } from './data.js';
import { LAB_TEST_IMAGES, twinSpec, type LabState } from './state.js';
import type { ClassifyOutput, DataBytes, Divergence, FromWorker, ImportedModelInfo, ModelId, ProbeRequest, SharedPixels, SweepPoint, TestPoint, ToWorker, WorkerMemory } from './worker/protocol.js';
import type { PanelProbeName, PanelProbeValues } from './worker/panel-probes.js';

export interface ProbeSample {
  step: number;
  value: unknown;
}

/** Everything one twin has reported since the last reset. */
export interface RunSeries {
  /** trainLoss[i] is the loss of step i + 1. */
  trainLoss: number[];
  /** Test-set evaluations, step 0 first. */
  test: TestPoint[];
  diverged: Divergence | null;
  /** Probe results by request id, oldest first (capped at MAX_PROBE_SAMPLES by `addSample`). */
  probes: Record<string, ProbeSample[]>;
  lr: number;
  layers: unknown[];
  parameters: number;
}

export interface SweepState {
  /** The run's step when the sweep ran (the sweep itself trains fresh networks). */
  atStep: number;
  rates: number[];
  steps: number;
  /** Progress per twin (rates done). */
  done: Record<TwinId, number>;
  points: Partial<Record<TwinId, SweepPoint[]>>;
  running: boolean;
}

/** The numbers panels draw from. `version` grows with every change, so a panel can skip unchanged frames. */
export interface LabData {
  version: number;
  /** Steps both twins have completed (a diverged twin stops at its divergence step). */
  step: number;
  /** The state the twins were built with (the last reset), lr as it is now. */
  applied: LabState;
  runs: Record<TwinId, RunSeries>;
  playing: boolean;
  /** A step command is in flight (after a pause, the last chunk still lands). */
  busy: boolean;
  sweep: SweepState | null;
  imported: ImportedModelInfo | null;
  env: { isolated: boolean; workers: number; threadsPerWorker: number; backend: string };
  /** Milliseconds since the page opened at which the start-up stages finished. */
  timings: { workersReady?: number; dataLoaded?: number; twinsBuilt?: number };
  /** Steps per second over the last second of playing, and the latest memory reports. */
  stepsPerSecond: number;
  memory: WorkerMemory[];
}

export const MAX_PROBE_SAMPLES = 2000;

/** Per list of samples: the width in steps of the bins that keep one sample each (1 until the cap is first reached). */
const binWidths = new WeakMap<ProbeSample[], number>();

/**
 * Append a probe sample, keeping at most `cap`: past it, the steps are cut into bins twice as wide as
 * before and each bin keeps its newest sample (the first sample and the newest stay), so a long run keeps
 * its start and even spacing. Thinning the older half by index instead thinned the same samples again
 * and again: after 20,000 steps an every-step probe had kept only its last 5,000 steps.
 */
export function addSample(list: ProbeSample[], sample: ProbeSample, cap = MAX_PROBE_SAMPLES): void {
  let width = binWidths.get(list) ?? 1;
  const bin = (s: ProbeSample) => Math.floor(s.step / width);
  // The newest sample of a bin stands for it (never replacing the first sample of the run).
  if (list.length > 1 && bin(list[list.length - 1]) === bin(sample)) list[list.length - 1] = sample;
  else list.push(sample);
  while (list.length > cap) {
    width *= 2;
    let kept = 1;
    for (let i = 1; i < list.length; i++) if (i === list.length - 1 || bin(list[i]) !== bin(list[i + 1])) list[kept++] = list[i];
    list.length = kept;
  }
  binWidths.set(list, width);
}

/**
 * One twin's samples of the panel probe `name`, oldest first, leaving out nulls (the probe does not
 * apply to that twin). The worker's function for `name` returns PanelProbeValues[name], which is what
 * makes the cast hold.
 */
export function probeSamples<K extends PanelProbeName>(data: LabData, twin: TwinId, name: K): { step: number; value: PanelProbeValues[K] }[] {
  return (data.runs[twin].probes[name] ?? []).filter((s) => s.value !== null) as { step: number; value: PanelProbeValues[K] }[];
}

function emptySeries(): RunSeries {
  return { trainLoss: [], test: [], diverged: null, probes: {}, lr: NaN, layers: [], parameters: 0 };
}

interface WorkerSlot {
  worker: Worker;
  twins: TwinId[];
  datasets: Set<string>;
}

type Listener = (m: FromWorker, slot: WorkerSlot) => void;

export class Engine {
  readonly data: LabData;
  private slots: WorkerSlot[] = [];
  private listeners = new Set<Listener>();
  private nextId = 1;
  private probeRequests: ProbeRequest[] = [];
  private playTimer: number | null = null;
  private stepping: Promise<void> | null = null;
  /**
   * Settles when start() has built the twins. Every command that needs them waits for it, so a click on
   * Play, Step or Reset while the lab is still loading runs once it is up instead of reaching workers
   * that have no networks yet (whose answer would never come).
   */
  private readonly built: Promise<void>;
  private settleBuilt!: (error?: unknown) => void;
  private rateWindow: { time: number; step: number }[] = [];
  /** Called when a twin diverges while playing (the run pauses). */
  onDiverged: (twin: TwinId, d: Divergence) => void = () => {};
  onError: (message: string) => void = () => {};

  constructor(state: LabState, readonly onProgress: (text: string, fraction: number) => void) {
    const isolated = globalThis.crossOriginIsolated === true;
    this.data = {
      version: 0,
      step: 0,
      applied: { ...state },
      runs: { bn: emptySeries(), nobn: emptySeries() },
      playing: false,
      busy: false,
      sweep: null,
      imported: null,
      env: { isolated, workers: isolated ? 2 : 1, threadsPerWorker: 1, backend: '' },
      stepsPerSecond: 0,
      memory: [],
      timings: {},
    };
    this.built = new Promise((resolve, reject) => {
      this.settleBuilt = (error) => (error === undefined ? resolve() : reject(error));
    });
    // start()'s caller reports a failed start; the commands waiting on it fail with the same error.
    this.built.catch(() => {});
  }

  /** Start the workers and their backends, fetch the data, build the twins. */
  async start(probes: ProbeRequest[]): Promise<void> {
    try {
      await this.startUp(probes);
      this.settleBuilt();
    } catch (e) {
      this.settleBuilt(e ?? new Error('the lab could not start'));
      throw e;
    }
  }

  private async startUp(probes: ProbeRequest[]): Promise<void> {
    this.probeRequests = probes;
    // The data downloads while the workers start and compile their wasm modules.
    this.fetching.set(this.data.applied.dataset, this.fetchBytes(this.data.applied.dataset));
    const layout: TwinId[][] = this.data.env.isolated ? [['bn'], ['nobn']] : [[...TWINS]];
    this.slots = layout.map((twins) => {
      const worker = new Worker(new URL('./worker/engine.worker.ts', import.meta.url), { type: 'module', name: `bnlab engine (${twins.join(', ')})` });
      const slot: WorkerSlot = { worker, twins, datasets: new Set() };
      worker.onmessage = (e: MessageEvent<FromWorker>) => this.receive(e.data, slot);
      worker.onerror = (e) => this.onError(`engine worker: ${e.message}`);
      return slot;
    });
    const ready = Promise.all(this.slots.map((s) => this.expect(s, (m) => m.type === 'ready')));
    for (const s of this.slots) this.send(s, { type: 'init', twins: s.twins, threads: 1 });
    const answers = await ready;
    this.data.timings.workersReady = performance.now();
    const first = answers[0] as Extract<FromWorker, { type: 'ready' }>;
    this.data.env.backend = first.backend;
    this.data.env.threadsPerWorker = first.threads;
    // Nothing has stepped yet (every advance waits for `built`), so no pause or wait comes first.
    await this.rebuild(this.data.applied);
    this.data.timings.twinsBuilt = performance.now();
  }

  private send(slot: WorkerSlot, m: ToWorker, transfer: Transferable[] = []): void {
    slot.worker.postMessage(m, transfer);
  }

  /**
   * The next message from `slot` that `match`es. An error answer to command `id` rejects it; an error
   * that answers no command (a reset or data that failed) rejects every wait on that worker.
   */
  private expect(slot: WorkerSlot | null, match: (m: FromWorker) => boolean, id?: number): Promise<FromWorker> {
    return new Promise((resolve, reject) => {
      const l: Listener = (m, s) => {
        if (slot && s !== slot) return;
        if (m.type === 'error' && (m.id === undefined || m.id === id)) {
          this.listeners.delete(l);
          reject(new Error(m.message));
        } else if (match(m)) {
          this.listeners.delete(l);
          resolve(m);
        }
      };
      this.listeners.add(l);
    });
  }

  private receive(m: FromWorker, slot: WorkerSlot): void {
    const d = this.data;
    switch (m.type) {
      case 'reset':
        for (const t of m.twins) Object.assign(d.runs[t.twin], { layers: t.layers, parameters: t.parameters });
        break;
      case 'steps': {
        const run = d.runs[m.twin];
        for (const loss of m.losses) run.trainLoss.push(loss);
        run.test.push(...m.tests);
        for (const p of m.probes) addSample((run.probes[p.id] ??= []), { step: p.step, value: p.value });
        run.lr = m.lr;
        if (m.diverged && !run.diverged) {
          run.diverged = m.diverged;
          this.onDiverged(m.twin, m.diverged);
        }
        d.memory[this.slots.indexOf(slot)] = m.memory;
        break;
      }
      case 'sweep-progress':
        if (d.sweep) d.sweep.done[m.twin] = m.done;
        break;
      case 'sweep':
        if (d.sweep) d.sweep.points[m.twin] = m.points;
        break;
      case 'error':
        if (m.id === undefined) this.onError(m.message);
        break;
    }
    d.step = Math.max(...TWINS.map((t) => d.runs[t].trainLoss.length));
    d.version++;
    for (const l of [...this.listeners]) l(m, slot);
  }

  private fetching = new Map<string, Promise<DataBytes>>();
  /** Bytes of each dataset's image files (IDX header included): a float32 copy needs 4 bytes for each. */
  private readonly imageBytes = new Map<string, { train: number; test: number }>();
  /** The shared rescaled images of the last reset with input scales, by dataset, scale and seed. */
  private scaled: { key: string; pixels: SharedPixels } | null = null;

  /** Empty shared memory for a float32 copy of a dataset's images, which the workers fill together. */
  private sharedPixels(dataset: string): SharedPixels {
    const bytes = this.imageBytes.get(dataset)!;
    return { train: new SharedArrayBuffer(4 * bytes.train), test: new SharedArrayBuffer(4 * bytes.test), state: new SharedArrayBuffer(16) };
  }

  /** With shared memory and several workers, where the images rescaled for `state` go (made once per dataset, scale and seed). */
  private scaledPixels(state: LabState): SharedPixels | undefined {
    if (state.inputScale <= 1 || this.slots.length < 2 || typeof SharedArrayBuffer === 'undefined' || !globalThis.crossOriginIsolated) return undefined;
    const key = `${state.dataset}/${state.inputScale}/${state.seed}`;
    if (this.scaled?.key !== key) this.scaled = { key, pixels: this.sharedPixels(state.dataset) };
    return this.scaled.pixels;
  }

  private fetchBytes(dataset: string): Promise<DataBytes> {
    return fetchDataset(dataset, (loaded, total) => this.onProgress(`Loading ${dataset}: ${(loaded / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB`, loaded / total));
  }

  private async ensureData(dataset: string): Promise<void> {
    const missing = this.slots.filter((s) => !s.datasets.has(dataset));
    if (missing.length === 0) return;
    const pending = this.fetching.get(dataset) ?? this.fetchBytes(dataset);
    this.fetching.delete(dataset); // its buffers go to the workers below
    const bytes = await pending;
    this.data.timings.dataLoaded ??= performance.now();
    const files = ['trainImages', 'trainLabels', 'testImages', 'testLabels'] as const;
    // Shared bytes go to every worker as they are; otherwise the last worker gets the buffers
    // themselves and the others copies, each moved rather than cloned again by postMessage.
    const shared = typeof SharedArrayBuffer !== 'undefined' && bytes.trainImages instanceof SharedArrayBuffer;
    // With shared memory the workers also share one float32 copy of the images, which they convert together.
    this.imageBytes.set(dataset, { train: bytes.trainImages.byteLength, test: bytes.testImages.byteLength });
    const pixels = shared && missing.length > 1 ? this.sharedPixels(dataset) : undefined;
    missing.forEach((s, i) => {
      const own = shared || i === missing.length - 1;
      const m = { dataset, ...(pixels ? { pixels } : {}) } as DataBytes;
      for (const f of files) m[f] = own ? bytes[f] : bytes[f].slice(0);
      this.send(s, { type: 'data', ...m }, shared ? [] : files.map((f) => m[f] as ArrayBuffer));
      s.datasets.add(dataset);
    });
    this.onProgress(`Loaded ${dataset}`, 1);
  }

  /** Rebuild both twins from `state` (same seed → same initial weights and batches). Pauses first. */
  async reset(state: LabState): Promise<void> {
    await this.built;
    this.pause();
    await this.stepping;
    await this.rebuild(state);
  }

  private async rebuild(state: LabState): Promise<void> {
    await this.ensureData(state.dataset);
    this.data.applied = { ...state };
    this.data.runs = { bn: emptySeries(), nobn: emptySeries() };
    this.data.sweep = null;
    this.data.step = 0;
    this.rateWindow = [];
    const done = Promise.all(this.slots.flatMap((s) => s.twins.map((t) => this.expect(s, (m) => m.type === 'steps' && m.id === 0 && m.twin === t))));
    const scaledPixels = this.scaledPixels(state);
    for (const s of this.slots) this.send(s, { type: 'reset', spec: twinSpec(state), dataset: state.dataset, testImages: LAB_TEST_IMAGES, probes: this.probeRequests, inputScale: state.inputScale, ...(scaledPixels ? { scaledPixels } : {}) });
    await done;
    this.data.version++;
  }

  /** The learning rate, live. */
  setLr(lr: number): void {
    this.data.applied.lr = lr;
    for (const s of this.slots) this.send(s, { type: 'set', lr });
  }

  /** The panels' measurements the workers run between steps. */
  get probes(): readonly ProbeRequest[] {
    return this.probeRequests;
  }

  setProbes(probes: ProbeRequest[]): void {
    this.probeRequests = probes;
    for (const s of this.slots) this.send(s, { type: 'probes', probes });
  }

  /** `steps` steps on both twins, in lockstep; resolves when both have reported. */
  advance(steps: number): Promise<void> {
    const run = async () => {
      await this.built;
      const id = this.nextId++;
      this.data.busy = true;
      const waits = this.slots.flatMap((s) => s.twins.map((t) => this.expect(s, (m) => m.type === 'steps' && m.id === id && m.twin === t, id)));
      for (const s of this.slots) this.send(s, { type: 'step', id, steps });
      try {
        await Promise.all(waits);
      } finally {
        this.data.busy = false;
        this.data.version++;
      }
      const now = performance.now();
      this.rateWindow.push({ time: now, step: this.data.runs.bn.trainLoss.length });
      while (this.rateWindow.length > 2 && now - this.rateWindow[0].time > 1000) this.rateWindow.shift();
      const first = this.rateWindow[0];
      this.data.stepsPerSecond = now > first.time ? ((this.data.runs.bn.trainLoss.length - first.step) * 1000) / (now - first.time) : 0;
    };
    const previous = this.stepping ?? Promise.resolve();
    const next = previous.then(run);
    this.stepping = next.finally(() => {
      if (this.stepping === tracked) this.stepping = null;
    });
    const tracked = this.stepping;
    return next;
  }

  /** Both twins stopped (diverged): nothing to play. */
  get finished(): boolean {
    return TWINS.every((t) => this.data.runs[t].diverged);
  }

  /** Play at `speed()` (1-5): chunks of steps, each sent when the previous one is done. */
  play(speed: () => number): void {
    if (this.data.playing || this.finished) return;
    this.data.playing = true;
    this.data.version++;
    const tick = async () => {
      if (!this.data.playing) return;
      const s = speed();
      // Speeds 1-3 pace the steps (4, 16, 64 a second); 4-5 take chunks as fast as the workers go.
      const chunk = [1, 1, 4, 10, 25][s - 1] ?? 10;
      const delay = [250, 62, 62, 0, 0][s - 1] ?? 0;
      try {
        await this.advance(chunk);
      } catch (e) {
        this.pause();
        this.onError(e instanceof Error ? e.message : String(e));
        return;
      }
      if (this.finished) this.pause();
      if (this.data.playing) this.playTimer = window.setTimeout(tick, delay);
    };
    void tick();
  }

  pause(): void {
    if (this.playTimer !== null) clearTimeout(this.playTimer);
    this.playTimer = null;
    if (this.data.playing) {
      this.data.playing = false;
      this.data.version++;
    }
  }

  /** The learning-rate sweep: fresh twins from the current setup for each rate, `steps` steps each. Pauses the run. */
  async sweep(rates: number[], steps: number): Promise<SweepState> {
    await this.built;
    this.pause();
    await this.stepping;
    const id = this.nextId++;
    const sweep: SweepState = { atStep: this.data.step, rates, steps, done: { bn: 0, nobn: 0 }, points: {}, running: true };
    this.data.sweep = sweep;
    const waits = this.slots.flatMap((s) => s.twins.map((t) => this.expect(s, (m) => m.type === 'sweep' && m.id === id && m.twin === t, id)));
    for (const s of this.slots) this.send(s, { type: 'sweep', id, rates, steps });
    try {
      await Promise.all(waits);
    } finally {
      sweep.running = false;
      this.data.version++;
    }
    return sweep;
  }

  /** One input (inputSize values in [0, 1]) through both twins (and an imported model). */
  async classify(input: Float32Array): Promise<Partial<Record<ModelId, ClassifyOutput>>> {
    await this.built;
    const id = this.nextId++;
    const waits = this.slots.map((s) => this.expect(s, (m) => m.type === 'classified' && m.id === id, id));
    for (const s of this.slots) this.send(s, { type: 'classify', id, input });
    const answers = (await Promise.all(waits)) as Extract<FromWorker, { type: 'classified' }>[];
    return Object.assign({}, ...answers.map((a) => a.outputs));
  }

  /** A twin's model files, as `bnlab predict --model DIR` reads them. */
  async exportModel(twin: TwinId): Promise<{ modelJson: string; safetensors: Uint8Array }> {
    await this.built;
    const slot = this.slots.find((s) => s.twins.includes(twin))!;
    const id = this.nextId++;
    const wait = this.expect(slot, (m) => m.type === 'exported' && m.id === id, id);
    this.send(slot, { type: 'export', id, twin });
    const m = (await wait) as Extract<FromWorker, { type: 'exported' }>;
    return { modelJson: m.modelJson, safetensors: m.safetensors };
  }

  /** Open model files (e.g. from `bnlab train`); classify() then includes it as 'imported'. */
  async importModel(name: string, modelJson: Uint8Array, safetensors: Uint8Array): Promise<ImportedModelInfo> {
    await this.built;
    const slot = this.slots.find((s) => s.twins.includes('bn'))!;
    const id = this.nextId++;
    const wait = this.expect(slot, (m) => m.type === 'imported' && m.id === id, id);
    this.send(slot, { type: 'import', id, name, modelJson, safetensors });
    const m = (await wait) as Extract<FromWorker, { type: 'imported' }>;
    this.data.imported = m.info;
    this.data.version++;
    return m.info;
  }
}
