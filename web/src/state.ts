/**
 * The lab's whole state as ONE typed list of properties (TensorFlow Playground's PROPS idea): each entry
 * drives the URL hash (serialize and parse, with validation), the control drawn for it, and, through
 * `twinSpec`, the worker's configuration. A panel that needs a setting of its own adds one entry here.
 *
 * `applies`: 'now' — sent to the running twins at once (learning rate, speed); 'reset' — takes effect
 * when both twins are rebuilt from their seed (architecture, data, optimizer, batch, seed); 'view' —
 * changes only what is drawn.
 */
import type { TwinSpec } from '@bnlab/runs/twins.js';

export type Applies = 'now' | 'reset' | 'view';

interface PropBase {
  name: string;
  label: string;
  applies: Applies;
  help?: string;
  /** Which group of controls it sits in: 'run' (top bar), 'network', 'training', or a panel id. */
  group: string;
}
export interface EnumProp extends PropBase { type: 'enum'; choices: readonly string[]; labels?: readonly string[]; default: string }
/** `belowMin`: why a smaller value is refused, said wherever one is (a number box's hint, a link's note). */
export interface IntProp extends PropBase { type: 'int'; min: number; max: number; default: number; belowMin?: string }
/** `log`: the control is a log-scale slider between min and max. */
export interface NumberProp extends PropBase { type: 'number'; min: number; max: number; log?: boolean; default: number }
export interface BoolProp extends PropBase { type: 'bool'; default: boolean }
export type Prop = EnumProp | IntProp | NumberProp | BoolProp;

export const PROPS = [
  { name: 'dataset', type: 'enum', choices: ['mnist', 'fashion-mnist'], labels: ['MNIST digits', 'Fashion-MNIST'], default: 'mnist', label: 'Dataset', applies: 'reset', group: 'network' },
  { name: 'depth', type: 'int', min: 1, max: 6, default: 3, label: 'Hidden layers', applies: 'reset', group: 'network' },
  { name: 'width', type: 'int', min: 2, max: 512, default: 100, label: 'Units per layer', applies: 'reset', group: 'network' },
  { name: 'activation', type: 'enum', choices: ['sigmoid', 'relu', 'tanh'], labels: ['sigmoid', 'ReLU', 'tanh'], default: 'sigmoid', label: 'Activation', applies: 'reset', group: 'network' },
  { name: 'bnPlacement', type: 'enum', choices: ['before', 'after'], labels: ['before the activation', 'after the activation'], default: 'before', label: 'Batch norm sits', applies: 'reset', group: 'network' },
  { name: 'inputBn', type: 'bool', default: false, label: 'Batch norm on the input', applies: 'reset', group: 'input-scale', help: 'BN twin only: the other twin has no batch norm anywhere' },
  { name: 'optimizer', type: 'enum', choices: ['sgd', 'momentum', 'adam'], labels: ['SGD', 'SGD + momentum 0.9', 'Adam'], default: 'sgd', label: 'Optimizer', applies: 'reset', group: 'training' },
  { name: 'lr', type: 'number', min: 1e-4, max: 100, log: true, default: 1, label: 'Learning rate', applies: 'now', group: 'convergence' },
  { name: 'batchSize', type: 'int', min: 2, max: 1000, default: 60, label: 'Batch size', applies: 'reset', group: 'batch-size', belowMin: 'batch norm trains on two examples or more: in a batch of one every unit equals its batch mean, so it normalizes to 0 whatever the input (Test time shows it)' },
  { name: 'bnMomentum', type: 'number', min: 0.001, max: 1, log: true, default: 0.1, label: 'BN momentum', applies: 'reset', group: 'test-time', help: "weight of the newest batch in the running averages (PyTorch's convention)" },
  { name: 'biasCorrection', type: 'bool', default: true, label: 'Bias correction', applies: 'reset', group: 'test-time', help: 'divide the running averages by 1 - (1 - m)^t' },
  { name: 'seed', type: 'int', min: 0, max: 2 ** 31 - 1, default: 1, label: 'Seed', applies: 'reset', group: 'training' },
  { name: 'insideLayer', type: 'int', min: 1, max: 6, default: 3, label: 'Hidden layer', applies: 'view', group: 'inside' },
  { name: 'insideUnit', type: 'int', min: 0, max: 511, default: 0, label: 'Unit', applies: 'view', group: 'inside' },
  { name: 'inputScale', type: 'number', min: 1, max: 1000, log: true, default: 1, label: 'Pixel scales span ×', applies: 'reset', group: 'input-scale', help: 'each pixel multiplied by its own factor, from 1/√r to √r (seeded): the largest is r times the smallest; 1 = as in the dataset' },
  { name: 'scaleRatio', type: 'number', min: 1, max: 1000, log: true, default: 100, label: 'Scale ratio of the two features', applies: 'view', group: 'input-scale', help: 'std of feature 2 / std of feature 1' },
  { name: 'noiseLayer', type: 'int', min: 1, max: 6, default: 1, label: 'Hidden layer', applies: 'view', group: 'batch-size' },
  { name: 'noiseUnit', type: 'int', min: 0, max: 511, default: 0, label: 'Unit', applies: 'view', group: 'batch-size' },
  { name: 'ghostBatch', type: 'int', min: 0, max: 1000, default: 0, label: 'Ghost-batch size', applies: 'view', group: 'batch-size', help: 'sub-batches whose means are measured; 0 = none. It must be 2 or more and divide the batch size' },
  // Hidden layer 2 by default: with batch norm on the input, layer 1's input has population mean 0 by construction (nothing to warm up to).
  { name: 'testLayer', type: 'int', min: 1, max: 6, default: 2, label: 'Hidden layer', applies: 'view', group: 'test-time' },
  { name: 'testUnit', type: 'int', min: 0, max: 511, default: 0, label: 'Unit', applies: 'view', group: 'test-time' },
  { name: 'speed', type: 'int', min: 1, max: 5, default: 4, label: 'Speed', applies: 'now', group: 'run', help: '1 = a few steps a second, 5 = as fast as it goes' },
] as const satisfies readonly Prop[];

type ValueOf<P> = P extends { type: 'enum'; choices: readonly (infer C)[] } ? C : P extends { type: 'bool' } ? boolean : number;
export type LabState = { -readonly [P in (typeof PROPS)[number] as P['name']]: ValueOf<P> };

export const PROP_LIST: readonly Prop[] = PROPS;

export function defaultState(): LabState {
  return Object.fromEntries(PROP_LIST.map((p) => [p.name, p.default])) as LabState;
}

export function propByName(name: string): Prop | undefined {
  return PROP_LIST.find((p) => p.name === name);
}

/** A value of `p` from its text form, or an explanation of why it is not one. */
export function parseValue(p: Prop, text: string): { value: string | number | boolean } | { error: string } {
  switch (p.type) {
    case 'enum':
      return p.choices.includes(text) ? { value: text } : { error: `not one of ${p.choices.join(', ')}` };
    case 'bool':
      return text === 'true' || text === '1' ? { value: true } : text === 'false' || text === '0' ? { value: false } : { error: 'not true or false' };
    case 'int': {
      if (!/^-?\d+$/.test(text)) return { error: 'not a whole number' };
      const v = Number(text);
      return v >= p.min && v <= p.max ? { value: v } : { error: `outside ${p.min}..${p.max}${v < p.min && p.belowMin ? `: ${p.belowMin}` : ''}` };
    }
    case 'number': {
      if (!/^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(text)) return { error: 'not a number' };
      const v = Number(text);
      return Number.isFinite(v) && v >= p.min && v <= p.max ? { value: v } : { error: `outside ${p.min}..${p.max}` };
    }
  }
}

export interface ParsedHash {
  state: LabState;
  /** One line per ignored entry, e.g. `depth=9 (outside 1..6)`; shown on the page as text, never as HTML. */
  ignored: string[];
}

/** Read the state from a URL hash (`#depth=3&lr=0.5`); unknown, malformed or out-of-range entries keep their defaults. */
export function parseHash(hash: string): ParsedHash {
  const state = defaultState() as Record<string, string | number | boolean>;
  const ignored: string[] = [];
  const text = hash.startsWith('#') ? hash.slice(1) : hash;
  if (text.length > 4000) return { state: state as LabState, ignored: ['the whole link (longer than 4000 characters)'] };
  const seen = new Set<string>();
  for (const part of text.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    let key: string, raw: string;
    try {
      key = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
      raw = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
    } catch {
      ignored.push(`${clip(part)} (malformed)`);
      continue;
    }
    const p = propByName(key);
    if (!p) {
      ignored.push(`${key === '' ? '(empty name)' : clip(key)} (unknown setting)`);
      continue;
    }
    if (seen.has(key)) {
      ignored.push(`${key} (given twice; the first value is used)`);
      continue;
    }
    seen.add(key);
    const r = parseValue(p, raw);
    if ('error' in r) ignored.push(`${key}=${raw === '' ? ' (empty value)' : `${clip(raw)} (${r.error})`}`);
    else state[key] = r.value;
  }
  return { state: state as LabState, ignored };
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/** The hash for a state: every property, in PROPS order, so equal states give equal links. */
export function serializeHash(state: LabState): string {
  const s = state as Record<string, string | number | boolean>;
  return '#' + PROP_LIST.map((p) => `${p.name}=${encodeURIComponent(String(s[p.name]))}`).join('&');
}

/** Test-set images the lab evaluates on (the first N of the test split), to keep evaluations short. */
export const LAB_TEST_IMAGES = 2000;
/** Test-set evaluation every N steps. */
export const LAB_EVAL_EVERY = 100;

/** The worker's configuration of the twins for a state. */
export function twinSpec(state: LabState): TwinSpec {
  return {
    depth: state.depth,
    width: state.width,
    activation: state.activation,
    bnPlacement: state.bnPlacement,
    inputBn: state.inputBn,
    optimizer: state.optimizer,
    lr: state.lr,
    batchSize: state.batchSize,
    seed: state.seed,
    bnMomentum: state.bnMomentum,
    biasCorrection: state.biasCorrection,
    inputSize: 784,
    classes: 10,
    evalEvery: LAB_EVAL_EVERY,
  };
}

/** The properties whose change needs a reset to take effect, between two states. */
export function pendingReset(applied: LabState, current: LabState): string[] {
  const a = applied as Record<string, unknown>;
  const c = current as Record<string, unknown>;
  return PROP_LIST.filter((p) => p.applies === 'reset' && a[p.name] !== c[p.name]).map((p) => p.label);
}

/** The learning rate each optimizer starts from when it is chosen. */
export const DEFAULT_LR: Record<LabState['optimizer'], number> = { sgd: 1, momentum: 0.1, adam: 0.001 };
