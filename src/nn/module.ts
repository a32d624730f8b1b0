/**
 * The module base class. A module owns its parameters and buffers, runs `forward(x)` and then
 * `backward(dy)` with whatever it cached in the forward pass, and accumulates parameter gradients with
 * `+=` (call `zeroGrad()` between steps, as in PyTorch).
 *
 * Output tensors are buffers the module reuses from one call to the next (no allocation per training
 * step): a returned tensor is valid until the module's next `forward`/`backward`. `clone()` it to keep it.
 */
import { getBackend, type Kernels } from '../kernels/index.js';
import { Tensor, sameShape, shapeToString } from '../tensor/tensor.js';

/** A trainable tensor and its gradient. `trainable: false` freezes it (the optimizer skips it). */
export interface Parameter {
  value: Tensor;
  grad: Tensor;
  trainable: boolean;
}

export type StateDict = Map<string, Tensor>;

export abstract class Module {
  /** Layer type as PyTorch names it ('Linear', 'BatchNorm1d', ...). */
  abstract readonly typeName: string;
  /** Path in the model, as in PyTorch's state dict ('1', 'features.0'); set by the container. */
  path = '';
  training = true;
  /**
   * Whether `backward` must return the gradient with respect to the input. The Trainer turns it off for
   * the network, whose input is data: the first layer with parameters then skips its input-gradient
   * product (for a first Linear layer, a third of its backward), as PyTorch does for inputs that do not
   * require grad. `backward` then returns an empty tensor (shape [0]).
   */
  inputGrad = true;
  protected kernels: Kernels;
  /** Set by `dispose()`: the memory is the backend's again (see `disposed`). */
  private disposedFlag = false;

  constructor() {
    this.kernels = getBackend();
  }

  /** The output is this module's own buffer, overwritten by its next call: `clone()` it to keep it. */
  abstract forward(x: Tensor): Tensor;
  /** The input gradient, in a buffer of this module's (valid until its next call, as `forward`'s output). */
  abstract backward(dy: Tensor): Tensor;
  /** Output shape for a given input shape (the batch dimension included); throws on an incompatible input. */
  abstract outputShape(inputShape: readonly number[]): number[];

  /** Own parameters by local name ('weight', 'bias'); containers override `children`. */
  namedOwnParameters(): Array<[string, Parameter]> {
    return [];
  }
  /** Own buffers (state that is saved but not trained: 'running_mean', 'num_batches_tracked'). */
  namedOwnBuffers(): Array<[string, Tensor]> {
    return [];
  }
  children(): Array<[string, Module]> {
    return [];
  }

  /** Every module in the tree, depth first, this one included. */
  *modules(): Generator<Module> {
    yield this;
    for (const [, child] of this.children()) yield* child.modules();
  }

  namedParameters(prefix = ''): Array<[string, Parameter]> {
    const out: Array<[string, Parameter]> = this.namedOwnParameters().map(([n, p]) => [prefix + n, p]);
    for (const [name, child] of this.children()) out.push(...child.namedParameters(`${prefix}${name}.`));
    return out;
  }

  namedBuffers(prefix = ''): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = this.namedOwnBuffers().map(([n, b]) => [prefix + n, b]);
    for (const [name, child] of this.children()) out.push(...child.namedBuffers(`${prefix}${name}.`));
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) this.kernels.fill(p.grad.data, 0);
  }

  /** Training mode: batch statistics, dropout on. Applies to every submodule. */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Inference mode: running statistics, dropout off. Same as `train(false)`. */
  eval(): this {
    return this.train(false);
  }

  /**
   * Parameters and buffers under PyTorch's state-dict names ('0.weight', '1.running_mean',
   * '1.num_batches_tracked'). The tensors are the live ones, not copies.
   */
  stateDict(): StateDict {
    const dict: StateDict = new Map();
    // PyTorch orders a module's parameters before its buffers, module by module.
    const visit = (m: Module, prefix: string) => {
      for (const [n, p] of m.namedOwnParameters()) dict.set(prefix + n, p.value);
      for (const [n, b] of m.namedOwnBuffers()) dict.set(prefix + n, b);
      for (const [n, c] of m.children()) visit(c, `${prefix}${n}.`);
    };
    visit(this, '');
    return dict;
  }

  /**
   * Copy values from a state dict. With `strict` (the default) missing and unexpected keys are errors,
   * listed together so one run shows every problem; shapes must match exactly.
   */
  loadStateDict(dict: StateDict | Record<string, Tensor>, options: { strict?: boolean } = {}): void {
    if (this.disposedFlag) throw disposedError(this, 'load a state dict into it');
    const strict = options.strict ?? true;
    const src = dict instanceof Map ? dict : new Map(Object.entries(dict));
    const own = this.stateDict();
    const problems: string[] = [];
    for (const [name, target] of own) {
      const value = src.get(name);
      if (!value) {
        if (name.endsWith('num_batches_tracked')) {
          // Without the step count, bias-corrected running averages cannot be un-biased (PyTorch files
          // from before 0.4.1 lack it too): say so instead of silently assuming 0.
          if (strict) problems.push(`missing key "${name}" (the number of batches behind the running statistics; bias correction needs it. Save it with the model, or load with { strict: false } into a layer built with biasCorrection: false)`);
        } else if (strict) problems.push(`missing key "${name}"`);
        continue;
      }
      if (!sameShape(value.shape, target.shape)) {
        problems.push(`"${name}": expected shape ${shapeToString(target.shape)}, got ${shapeToString(value.shape)}`);
      }
    }
    if (strict) for (const name of src.keys()) if (!own.has(name)) problems.push(`unexpected key "${name}"`);
    if (problems.length) throw new Error(`loadStateDict: ${problems.join('; ')}`);
    for (const [name, target] of own) {
      const value = src.get(name);
      if (value) target.data.set(value.data);
    }
    for (const m of this.modules()) m.afterLoad();
  }

  /** Hook for modules that derive state from loaded tensors. */
  protected afterLoad(): void {}

  /**
   * Give the memory of this module and its children (parameters, gradients, running statistics, work
   * buffers) back to their backend. The explicit end of a model's lifetime: backends never reclaim
   * memory on their own, so a program that builds many models (the lab, a sweep) disposes the ones it
   * drops. The module must not be used afterwards (see `disposed`); a second call does nothing.
   */
  dispose(): void {
    // Twice (or a layer disposed on its own, then its model) would give back blocks the backend may
    // have handed to someone else since.
    for (const m of this.modules()) {
      if (m.disposedFlag) continue;
      m.disposedFlag = true;
      const k = m.kernels;
      for (const p of m.parameters()) {
        k.release(p.value.data);
        k.release(p.grad.data);
      }
      for (const [, b] of m.namedOwnBuffers()) k.release(b.data);
      // Work arrays the module allocated, and the outputs `reuse` made for it; not tensors it only holds
      // (the input it keeps for the backward belongs to whoever produced it).
      for (const value of Object.values(m)) {
        if (value instanceof Float32Array) k.release(value);
        else if (value instanceof Tensor && ownedOutputs.has(value)) k.release(value.data);
      }
      m.disposeOwned();
    }
  }

  /**
   * Whether `dispose()` gave this module's memory back. Sequential's forward/backward, the Trainer,
   * `evaluate`, `useBackend` and `loadStateDict` refuse a disposed model, whose buffers may already
   * belong to another one.
   */
  get disposed(): boolean {
    return this.disposedFlag;
  }

  /** Release memory held in helper objects the generic walk in dispose() cannot see. */
  protected disposeOwned(): void {}

  /** Switch every module to another kernel backend, moving parameters and buffers into memory it can use. */
  useBackend(kernels: Kernels): this {
    if (this.disposedFlag) throw disposedError(this, 'move it to another backend');
    for (const m of this.modules()) m.moveTo(kernels);
    return this;
  }

  protected moveTo(kernels: Kernels): void {
    this.kernels = kernels;
    this.releaseBuffers();
  }

  /** Drop cached work buffers (they are reallocated on the next forward). */
  protected releaseBuffers(): void {}

  /** One-line description of the layer's configuration, for `summary()`. */
  describe(): string {
    return this.typeName;
  }

  /** The layer's constructor options as JSON, enough to rebuild it (used by model files). */
  config(): Record<string, unknown> {
    return {};
  }
}

/** What `backward` returns when `inputGrad` is off: no values, so a caller that uses it fails loudly. */
export const NO_INPUT_GRAD: Tensor = new Tensor([0]);

/** A parameter with a zeroed gradient of the same shape. */
export function makeParameter(value: Tensor, kernels: Kernels): Parameter {
  const data = kernels.allocate(value.size);
  data.set(value.data);
  return { value: new Tensor(value.shape, data), grad: new Tensor(value.shape, kernels.allocate(value.size)), trainable: true };
}

/**
 * A reusable output buffer: returns `current` when it already has `shape`, else a fresh tensor from the
 * backend. This is how modules avoid allocating on every step.
 */
export function reuse(current: Tensor | null, shape: readonly number[], kernels: Kernels): Tensor {
  if (current && sameShape(current.shape, shape)) return current;
  // The module owns its output buffers, and an output is valid only until its next call (above): the
  // one being replaced goes back to the backend (a buffer of another backend is ignored by this one).
  if (current && ownedOutputs.has(current)) kernels.release(current.data);
  let size = 1;
  for (const d of shape) size *= d;
  const t = new Tensor(shape, kernels.allocate(size));
  ownedOutputs.add(t);
  return t;
}

/** Tensors `reuse` allocated: a module owns these (and gives them back), not tensors it merely holds. */
const ownedOutputs = new WeakSet<Tensor>();

/** Error for a forward/backward called with a tensor of the wrong shape; names the layer. */
export function shapeError(module: Module, expected: string, got: readonly number[]): Error {
  const where = module.path ? ` (layer "${module.path}")` : '';
  return new Error(`${module.describe()}${where}: expected input ${expected}, got ${shapeToString(got)}`);
}

/**
 * Error for backward called before forward, or with a gradient whose shape is not the output's. A layer
 * of your own calls it first thing in `backward(dy)`, with the output its `forward` kept (null before any).
 */
export function checkBackward(module: Module, output: Tensor | null, dy: Tensor): asserts output is Tensor {
  const where = module.path ? ` (layer "${module.path}")` : '';
  if (!output) throw new Error(`${module.describe()}${where}: backward() called before forward(); backward uses what forward kept, so run forward on the batch first`);
  if (!sameShape(output.shape, dy.shape)) {
    throw new Error(`${module.describe()}${where}: backward() expected a gradient of shape ${shapeToString(output.shape)} (the output's), got ${shapeToString(dy.shape)}`);
  }
}

/**
 * Error for a model used after `dispose()`: its memory is the backend's again and may already hold
 * another model's tensors, so running it would read, and training it would overwrite, those.
 */
export function disposedError(module: Module, action: string): Error {
  const where = module.path ? ` (layer "${module.path}")` : '';
  return new Error(`${module.describe()}${where}: cannot ${action}: the model was disposed (dispose() gave its memory back to the backend). Build or load the model again, and dispose it only when it is no longer used`);
}

/** The same parameter (values, gradient, trainable flag) in memory owned by another backend. */
export function moveParameter(p: Parameter, kernels: Kernels): Parameter {
  const moved = makeParameter(p.value, kernels);
  moved.grad.data.set(p.grad.data);
  moved.trainable = p.trainable;
  return moved;
}

/** A tensor copied into memory owned by `kernels`. */
export function moveTensor(t: Tensor, kernels: Kernels): Tensor {
  const data = kernels.allocate(t.size);
  data.set(t.data);
  return new Tensor(t.shape, data);
}
