/**
 * Runs PyTorch reference fixtures (format "bn-fixture/1") against bnlab. Browser-safe: it takes parsed
 * JSON and returns results; the CLI (cli/conformance.ts) reads the files and prints them.
 *
 * Two kinds of case: a single module (`module`, `config`, `state`, `steps` of train/eval forward and
 * backward) and a whole Sequential model (`layers`, `optimizer`, `state`, `steps` of SGD training, then
 * `eval`). PyTorch has no bias correction, so every batch-norm layer runs with biasCorrection off.
 */
import { SGD } from '../optim/optimizer.js';
import { CrossEntropyLoss } from '../nn/loss.js';
import type { Module } from '../nn/module.js';
import { buildLayer, buildSequential, layerTypes, type LayerSpec } from '../nn/registry.js';
import { Rng } from '../tensor/rng.js';
import { Tensor, shapeToString, sameShape } from '../tensor/tensor.js';

export interface FixtureTensor {
  shape: number[];
  data: number[];
}

export interface Tolerance {
  abs: number;
  rel: number;
}

export interface CaseResult {
  file: string;
  name: string;
  status: 'passed' | 'failed' | 'skipped';
  /** Largest |actual - expected| over every compared value. */
  maxAbsError: number;
  /** Largest |actual - expected| / (abs + rel·|expected|): above 1 fails. */
  maxRatio: number;
  /** The quantity with the largest ratio, e.g. 'step 2 dx'. */
  worst: string;
  message?: string;
}

export const LAYER_TOLERANCE: Tolerance = { abs: 1e-4, rel: 1e-4 };
export const MODEL_TOLERANCE: Tolerance = { abs: 1e-4, rel: 1e-3 };

class Comparison {
  maxAbsError = 0;
  maxRatio = 0;
  worst = '';
  failures: string[] = [];
  constructor(private tol: Tolerance) {}

  values(label: string, actual: ArrayLike<number>, actualShape: readonly number[] | null, expected: FixtureTensor): void {
    if (actualShape && !sameShape(actualShape, expected.shape)) {
      this.failures.push(`${label}: shape ${shapeToString(actualShape)}, expected ${shapeToString(expected.shape)}`);
      this.maxRatio = Infinity;
      return;
    }
    if (actual.length !== expected.data.length) {
      this.failures.push(`${label}: ${actual.length} values, expected ${expected.data.length}`);
      this.maxRatio = Infinity;
      return;
    }
    let worstIndex = -1;
    let caseRatio = 0;
    for (let i = 0; i < actual.length; i++) this.one(label, actual[i], expected.data[i], (r) => {
      if (r > caseRatio) {
        caseRatio = r;
        worstIndex = i;
      }
    });
    if (caseRatio > 1) this.failures.push(`${label}[${worstIndex}]: got ${actual[worstIndex]}, expected ${expected.data[worstIndex]}`);
  }

  scalar(label: string, actual: number, expected: number): void {
    this.one(label, actual, expected, (r) => {
      if (r > 1) this.failures.push(`${label}: got ${actual}, expected ${expected}`);
    });
  }

  private one(label: string, a: number, e: number, onRatio: (r: number) => void): void {
    const err = Math.abs(a - e);
    const ratio = Number.isNaN(err) ? Infinity : err / (this.tol.abs + this.tol.rel * Math.abs(e));
    if (err > this.maxAbsError || Number.isNaN(err)) this.maxAbsError = Number.isNaN(err) ? Infinity : err;
    if (ratio > this.maxRatio) {
      this.maxRatio = ratio;
      this.worst = label;
    }
    onRatio(ratio);
  }
}

function tensorOf(t: FixtureTensor, where: string): Tensor {
  if (!t || !Array.isArray(t.shape) || !Array.isArray(t.data)) throw new Error(`${where}: expected { shape, data }`);
  return Tensor.from(t.shape, t.data);
}

/** The layer types a case needs that bnlab does not provide (the case is then skipped). */
function missingTypes(types: string[]): string[] {
  const known = new Set(layerTypes());
  return [...new Set(types.filter((t) => !known.has(t)))];
}

function stateDictOf(state: Record<string, FixtureTensor>, prefix = ''): Map<string, Tensor> {
  return new Map(Object.entries(state ?? {}).map(([k, v]) => [prefix + k, tensorOf(v, `state "${k}"`)]));
}

/** Load a PyTorch state dict that may lack num_batches_tracked (the fixtures omit it). */
function loadFixtureState(module: Module, state: Map<string, Tensor>): void {
  const own = module.stateDict();
  const missing = [...own.keys()].filter((k) => !state.has(k) && !k.endsWith('num_batches_tracked'));
  const unexpected = [...state.keys()].filter((k) => !own.has(k));
  if (missing.length || unexpected.length) {
    throw new Error(`state keys do not match the module: ${[...missing.map((k) => `missing ${k}`), ...unexpected.map((k) => `unexpected ${k}`)].join(', ')}`);
  }
  module.loadStateDict(state, { strict: false });
}

function runLayerCase(c: any, cmp: Comparison): void {
  const config = { ...c.config, biasCorrection: false };
  const module = buildLayer({ type: c.module, ...config } as LayerSpec, { rng: new Rng(0) });
  loadFixtureState(module, stateDictOf(c.state));
  const dict = module.stateDict();
  c.steps.forEach((step: any, s: number) => {
    if (step.mode !== 'train' && step.mode !== 'eval') throw new Error(`step ${s}: mode must be "train" or "eval", got ${JSON.stringify(step.mode)}`);
    module.train(step.mode === 'train');
    module.zeroGrad();
    const y = module.forward(tensorOf(step.x, `step ${s} x`));
    const e = step.expect ?? {};
    if (e.y) cmp.values(`step ${s} y`, y.data, y.shape, e.y);
    if (step.dy) {
      const dx = module.backward(tensorOf(step.dy, `step ${s} dy`));
      if (e.dx) cmp.values(`step ${s} dx`, dx.data, dx.shape, e.dx);
      const params = new Map(module.namedParameters());
      for (const [key, name] of [['dweight', 'weight'], ['dbias', 'bias']] as const) {
        if (!e[key]) continue;
        const p = params.get(name);
        if (!p) throw new Error(`step ${s}: fixture has ${key} but the module has no ${name}`);
        cmp.values(`step ${s} ${key}`, p.grad.data, p.grad.shape, e[key]);
      }
    }
    for (const name of ['running_mean', 'running_var']) {
      if (!e[name]) continue;
      const buf = dict.get(name);
      if (!buf) throw new Error(`step ${s}: fixture has ${name} but the module keeps no running statistics`);
      cmp.values(`step ${s} ${name}`, buf.data, buf.shape, e[name]);
    }
  });
}

function runModelCase(c: any, cmp: Comparison): void {
  if (c.loss !== 'CrossEntropy') throw new Error(`unsupported loss ${JSON.stringify(c.loss)} (only CrossEntropy)`);
  const opt = c.optimizer ?? {};
  if (opt.type !== 'SGD') throw new Error(`unsupported optimizer ${JSON.stringify(opt.type)} (only SGD)`);
  const model = buildSequential(c.layers, { rng: new Rng(0), batchNorm: { biasCorrection: false } });
  loadFixtureState(model, stateDictOf(c.state));
  const sgd = new SGD(model.parameters(), { lr: opt.lr, momentum: opt.momentum ?? 0, weightDecay: opt.weightDecay ?? 0, nesterov: opt.nesterov ?? false, dampening: opt.dampening ?? 0 });
  const loss = new CrossEntropyLoss();
  const params = new Map(model.namedParameters());
  const state = model.stateDict();
  c.steps.forEach((step: any, s: number) => {
    model.train();
    sgd.zeroGrad();
    const logits = model.forward(tensorOf(step.x, `step ${s} x`));
    const e = step.expect ?? {};
    if (e.logits) cmp.values(`step ${s} logits`, logits.data, logits.shape, e.logits);
    const value = loss.forward(logits, step.labels);
    if (typeof e.loss === 'number') cmp.scalar(`step ${s} loss`, value, e.loss);
    model.backward(loss.backward());
    for (const [name, g] of Object.entries<FixtureTensor>(e.grads ?? {})) {
      const p = params.get(name);
      if (!p) throw new Error(`step ${s}: fixture has a gradient for "${name}", which the model does not have`);
      cmp.values(`step ${s} grad ${name}`, p.grad.data, p.grad.shape, g);
    }
    sgd.step();
    for (const [name, v] of Object.entries<FixtureTensor>(e.state_after ?? {})) {
      const t = state.get(name);
      if (!t) throw new Error(`step ${s}: fixture has state "${name}", which the model does not have`);
      cmp.values(`step ${s} ${name}`, t.data, t.shape, v);
    }
  });
  if (c.eval) {
    model.eval();
    const logits = model.forward(tensorOf(c.eval.x, 'eval x'));
    if (c.eval.expect?.logits) cmp.values('eval logits', logits.data, logits.shape, c.eval.expect.logits);
  }
}

/** Run every case of one parsed fixture file. */
export function runFixtureFile(json: any, file: string, tolerance?: { layer?: Tolerance; model?: Tolerance }): CaseResult[] {
  if (!json || json.format !== 'bn-fixture/1') throw new Error(`${file}: not a bn-fixture/1 file (format is ${JSON.stringify(json?.format)})`);
  if (!Array.isArray(json.cases)) throw new Error(`${file}: "cases" must be an array`);
  return json.cases.map((c: any, i: number): CaseResult => {
    const name = typeof c?.name === 'string' ? c.name : `case ${i}`;
    const isModel = Array.isArray(c?.layers);
    const needed = isModel ? c.layers.map((l: any) => l?.type) : [c?.module];
    const missing = missingTypes(needed);
    if (missing.length) return { file, name, status: 'skipped', maxAbsError: 0, maxRatio: 0, worst: '', message: `needs ${missing.join(', ')}, not available` };
    const cmp = new Comparison(isModel ? tolerance?.model ?? MODEL_TOLERANCE : tolerance?.layer ?? LAYER_TOLERANCE);
    try {
      if (isModel) runModelCase(c, cmp);
      else runLayerCase(c, cmp);
    } catch (e) {
      return { file, name, status: 'failed', maxAbsError: cmp.maxAbsError, maxRatio: cmp.maxRatio, worst: cmp.worst, message: (e as Error).message };
    }
    const failed = cmp.failures.length > 0;
    return { file, name, status: failed ? 'failed' : 'passed', maxAbsError: cmp.maxAbsError, maxRatio: cmp.maxRatio, worst: cmp.worst, message: failed ? cmp.failures.slice(0, 3).join('; ') + (cmp.failures.length > 3 ? `; and ${cmp.failures.length - 3} more` : '') : undefined };
  });
}

export function formatResult(r: CaseResult): string {
  const status = r.status.toUpperCase().padEnd(7);
  if (r.status === 'skipped') return `${status} ${r.file} ${r.name}: ${r.message}`;
  const err = `max abs error ${r.maxAbsError.toExponential(2)} (${(r.maxRatio * 100).toFixed(1)}% of tolerance${r.worst ? `, at ${r.worst}` : ''})`;
  return `${status} ${r.file} ${r.name}: ${err}${r.message ? ` — ${r.message}` : ''}`;
}
