/**
 * Optimizers update the trainable parameters from their accumulated gradients (frozen parameters,
 * `trainable: false`, are skipped). Semantics are PyTorch's, step for step, so results can be compared.
 */
import { getBackend, type AdamStepOptions, type Kernels, type SgdStepOptions } from '../kernels/index.js';
import type { Parameter } from '../nn/module.js';

export abstract class Optimizer {
  /** Current learning rate; schedulers change it between steps. */
  lr: number;
  readonly initialLr: number;
  protected kernels: Kernels;

  constructor(protected params: Parameter[], lr: number) {
    if (!(lr >= 0) || !Number.isFinite(lr)) throw new Error(`Learning rate must be a non-negative finite number, got ${lr}`);
    if (params.length === 0) throw new Error('Optimizer got no parameters to optimize');
    this.lr = lr;
    this.initialLr = lr;
    this.kernels = getBackend();
  }

  /** Update every trainable parameter from its gradient. */
  step(): void {
    const update = this.nextUpdate();
    const state = this.stateArrays();
    this.params.forEach((p, i) => {
      if (p.trainable) applyUpdate(this.kernels, update, p.value.data, p.grad.data, state[i]);
    });
  }

  /**
   * Advance the step count and return this step's update: an elementwise kernel with its options, which
   * `applyUpdate` applies to a parameter or to any slice of it (with the same slices of the gradient and
   * state). `step()` is this over whole parameters; data-parallel training gives each thread a slice.
   */
  abstract nextUpdate(): ElementwiseUpdate;

  /** Per parameter, the state arrays its update reads and writes (SGD: [momentum buffer] or none; Adam: [m, v]). */
  abstract stateArrays(): Float32Array[][];

  /** The parameters this optimizer updates, in order. */
  get parameters(): readonly Parameter[] {
    return this.params;
  }

  zeroGrad(): void {
    for (const p of this.params) this.kernels.fill(p.grad.data, 0);
  }

  /** Optimizer state (buffers and counters) as plain arrays, for checkpoints. */
  abstract stateDict(): OptimizerState;
  abstract loadStateDict(state: OptimizerState): void;
}

/** One optimizer step as an elementwise kernel call: see `Optimizer.nextUpdate`. */
export type ElementwiseUpdate = { kind: 'sgd'; options: SgdStepOptions } | { kind: 'adam'; options: AdamStepOptions };

/** Apply `update` to parameter values `p` (a whole parameter or a slice) with the same slices of its gradient and state. */
export function applyUpdate(kernels: Kernels, update: ElementwiseUpdate, p: Float32Array, g: Float32Array, state: readonly Float32Array[]): void {
  if (update.kind === 'sgd') kernels.sgdStep(p, g, state[0] ?? null, update.options);
  else kernels.adamStep(p, g, state[0], state[1], update.options);
}

/**
 * The same update, zeroing the gradient as it reads it (`clearGrad`). Every field written out, so the
 * options keep one object shape: a spread plus a property made each kernel call's reads of them slow.
 */
export function clearingGradients(update: ElementwiseUpdate): ElementwiseUpdate {
  if (update.kind === 'sgd') {
    const o = update.options;
    return { kind: 'sgd', options: { lr: o.lr, momentum: o.momentum, dampening: o.dampening, weightDecay: o.weightDecay, nesterov: o.nesterov, firstStep: o.firstStep, clearGrad: true } };
  }
  const o = update.options;
  return { kind: 'adam', options: { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, decoupledWeightDecay: o.decoupledWeightDecay, step: o.step, clearGrad: true } };
}

export interface OptimizerState {
  type: string;
  lr: number;
  step: number;
  /** Per-parameter buffers, by parameter index then buffer name. */
  buffers: Array<Record<string, number[]>>;
}

export interface SgdOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/** SGD with momentum, Nesterov and L2 weight decay, exactly as torch.optim.SGD. */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  private buffers: Array<Float32Array | null>;
  private steps = 0;

  constructor(params: Parameter[], options: SgdOptions) {
    super(params, options.lr);
    this.momentum = options.momentum ?? 0;
    this.dampening = options.dampening ?? 0;
    this.weightDecay = options.weightDecay ?? 0;
    this.nesterov = options.nesterov ?? false;
    if (!(this.momentum >= 0)) throw new Error(`SGD momentum must be >= 0, got ${this.momentum}`);
    if (!(this.weightDecay >= 0)) throw new Error(`SGD weightDecay must be >= 0, got ${this.weightDecay}`);
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) throw new Error('SGD: Nesterov momentum requires momentum > 0 and dampening = 0 (as in PyTorch)');
    this.buffers = params.map((p) => (this.momentum !== 0 ? this.kernels.allocate(p.value.size) : null));
  }

  nextUpdate(): ElementwiseUpdate {
    const firstStep = this.steps === 0;
    this.steps++;
    return { kind: 'sgd', options: { lr: this.lr, momentum: this.momentum, dampening: this.dampening, weightDecay: this.weightDecay, nesterov: this.nesterov, firstStep } };
  }

  stateArrays(): Float32Array[][] {
    return this.buffers.map((b) => (b ? [b] : []));
  }

  stateDict(): OptimizerState {
    return { type: 'SGD', lr: this.lr, step: this.steps, buffers: this.buffers.map((b): Record<string, number[]> => (b ? { momentum_buffer: Array.from(b) } : {})) };
  }

  loadStateDict(state: OptimizerState): void {
    checkState(state, 'SGD', this.buffers.length);
    this.lr = state.lr;
    this.steps = state.step;
    state.buffers.forEach((b, i) => {
      const buf = this.buffers[i];
      if (buf && b.momentum_buffer) buf.set(checkedBuffer(b.momentum_buffer, buf.length, i));
    });
  }
}

export interface AdamOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** AdamW: decay the weights directly instead of adding weightDecay·p to the gradient. */
  decoupledWeightDecay?: boolean;
}

/** Adam (Kingma & Ba), as torch.optim.Adam; AdamW with `decoupledWeightDecay`. */
export class Adam extends Optimizer {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly decoupledWeightDecay: boolean;
  private m: Float32Array[];
  private v: Float32Array[];
  private steps = 0;

  constructor(params: Parameter[], options: AdamOptions = {}) {
    super(params, options.lr ?? 1e-3);
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    this.decoupledWeightDecay = options.decoupledWeightDecay ?? false;
    for (const [name, b] of [['beta1', this.beta1], ['beta2', this.beta2]] as const) {
      if (!(b >= 0 && b < 1)) throw new Error(`Adam ${name} must be in [0, 1), got ${b}`);
    }
    this.m = params.map((p) => this.kernels.allocate(p.value.size));
    this.v = params.map((p) => this.kernels.allocate(p.value.size));
  }

  nextUpdate(): ElementwiseUpdate {
    this.steps++;
    return {
      kind: 'adam',
      options: { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay, decoupledWeightDecay: this.decoupledWeightDecay, step: this.steps },
    };
  }

  stateArrays(): Float32Array[][] {
    return this.m.map((m, i) => [m, this.v[i]]);
  }

  stateDict(): OptimizerState {
    return { type: 'Adam', lr: this.lr, step: this.steps, buffers: this.m.map((m, i) => ({ exp_avg: Array.from(m), exp_avg_sq: Array.from(this.v[i]) })) };
  }

  loadStateDict(state: OptimizerState): void {
    checkState(state, 'Adam', this.m.length);
    this.lr = state.lr;
    this.steps = state.step;
    state.buffers.forEach((b, i) => {
      this.m[i].set(checkedBuffer(b.exp_avg, this.m[i].length, i));
      this.v[i].set(checkedBuffer(b.exp_avg_sq, this.v[i].length, i));
    });
  }
}

function checkState(state: OptimizerState, type: string, count: number): void {
  if (!state || state.type !== type) throw new Error(`Optimizer state is for ${state?.type ?? 'nothing'}, not ${type}`);
  if (!Array.isArray(state.buffers) || state.buffers.length !== count) throw new Error(`Optimizer state has ${state.buffers?.length} parameter entries, the model has ${count}`);
  if (!Number.isInteger(state.step) || state.step < 0 || !Number.isFinite(state.lr)) throw new Error('Optimizer state has an invalid step or learning rate');
}

function checkedBuffer(values: number[] | undefined, length: number, index: number): number[] {
  if (!Array.isArray(values) || values.length !== length) throw new Error(`Optimizer state for parameter ${index} has ${values?.length ?? 0} values, expected ${length}`);
  return values;
}
