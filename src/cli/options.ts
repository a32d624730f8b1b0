/**
 * Argument parsers shared by the CLI commands. Each rejects what commander would otherwise pass through
 * as NaN or a nonsense value (`--steps abc`, `--lr -1`, `--batch 0`) with an InvalidArgumentError, which
 * commander prints as "error: option '--steps <n>' argument 'abc' is invalid. <reason>" and exits 1.
 */
import { InvalidArgumentError, Option } from 'commander';
import { backendProviders } from '../kernels/index.js';

/** A plain decimal number: digits with an optional point, sign and exponent; no hex, no blanks, no "Infinity". */
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function toNumber(value: string): number {
  const n = NUMBER.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`Expected a number, got "${value}".`);
  return n;
}

/** An integer >= 1 (`--steps`, `--batch`). Accepts `1e4`. */
export function positiveInt(value: string): number {
  const n = toNumber(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`Expected a positive integer (1, 2, 3, ...), got "${value}".`);
  return n;
}

/** An integer >= 0 (`--eval-every 0` = only at the end). */
export function nonNegativeInt(value: string): number {
  const n = toNumber(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`Expected an integer >= 0, got "${value}".`);
  return n;
}

/** A finite number > 0 (`--lr`, `--bn-eps`, `--epochs`). */
export function positiveNumber(value: string): number {
  const n = toNumber(value);
  if (!(n > 0)) throw new InvalidArgumentError(`Expected a number greater than 0, got "${value}".`);
  return n;
}

/** A finite number >= 0 (`--weight-decay`, SGD `--momentum`). */
export function nonNegativeNumber(value: string): number {
  const n = toNumber(value);
  if (!(n >= 0)) throw new InvalidArgumentError(`Expected a number >= 0, got "${value}".`);
  return n;
}

/** A number in [0, 1) (SGD momentum: 1 or more never forgets a gradient). */
export function unitIntervalOpen(value: string): number {
  const n = toNumber(value);
  if (!(n >= 0 && n < 1)) throw new InvalidArgumentError(`Expected a number in [0, 1), got "${value}".`);
  return n;
}

/** A fraction strictly between 0 and 1 (`--test-fraction 0.2`). */
export function fraction(value: string): number {
  const n = toNumber(value);
  if (!(n > 0 && n < 1)) throw new InvalidArgumentError(`Expected a number between 0 and 1 (exclusive), e.g. 0.2, got "${value}".`);
  return n;
}

/** Layer sizes: `256,128` → [256, 128]; `none` → [] (no hidden layer). */
export function layerSizes(value: string): number[] {
  if (value.trim() === 'none') return [];
  const parts = value.split(',').map((p) => p.trim());
  const sizes = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : NaN));
  if (parts.length === 0 || sizes.some((n) => !(Number.isSafeInteger(n) && n >= 1 && n <= 1 << 20))) {
    throw new InvalidArgumentError(`Expected positive integers separated by commas (e.g. 256,128), or "none", got "${value}".`);
  }
  return sizes;
}

/** Column names separated by commas (`--ignore-columns id,name`). */
export function columnList(value: string): string[] {
  const names = value.split(',').map((c) => c.trim());
  if (names.some((c) => c === '')) throw new InvalidArgumentError(`Expected column names separated by commas (e.g. id,name), got "${value}".`);
  return names;
}

/** An image size: `32x24` (height x width) or `32` (square). */
export function imageSize(value: string): [number, number] {
  const m = /^\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*$/.exec(value);
  const h = m ? Number(m[1]) : NaN;
  const w = m ? Number(m[2] ?? m[1]) : NaN;
  if (!(h >= 1 && w >= 1 && h <= 4096 && w <= 4096)) throw new InvalidArgumentError(`Expected HEIGHTxWIDTH in pixels (e.g. 32x32, each 1 to 4096), got "${value}".`);
  return [h, w];
}

/** A seed: an integer in [0, 2^32). */
export function seed(value: string): number {
  const n = toNumber(value);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new InvalidArgumentError(`Expected an integer seed in [0, 4294967295], got "${value}".`);
  return n;
}

/**
 * Batch-norm momentum in PyTorch's convention: a number in (0, 1], or `cumulative` (null: the
 * cumulative moving average). Values >= 0.9 are accepted; the BatchNorm layer warns that they look like
 * Keras's convention.
 */
export function bnMomentum(value: string): number | null {
  if (value === 'cumulative' || value === 'null') return null;
  const n = toNumber(value);
  if (!(n > 0 && n <= 1)) {
    throw new InvalidArgumentError(`Expected a number in (0, 1] or "cumulative", got "${value}". bnlab's momentum is the weight of the new batch (PyTorch's convention, default 0.1); Keras's momentum m is 1 - m here.`);
  }
  return n;
}

/** The batch-norm momentum convention as written in `--help` and the docs. */
export const MOMENTUM_CONVENTION =
  'running = (1 - m)·running + m·batch (PyTorch convention); Keras/TensorFlow momentum = 1 - m';

/**
 * `--backend`, the same for every command: 'auto' (the default) takes the most preferred registered
 * backend that works here, falling back to the reference TypeScript kernels; the choices are whatever
 * backends are registered (src/kernels/backends.ts).
 */
export function backendOption(): Option {
  const choices = backendProviders().map((p) => `${p.name} (${p.description})`).join(', ');
  return new Option('--backend <name>', `kernel backend: auto (the fastest that works here, else ts), or one of: ${choices}`).default('auto');
}
