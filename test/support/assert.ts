/**
 * Assertions and small helpers the test files share: closeness of arrays, the largest difference, and
 * collecting the library's warnings instead of printing them.
 */
import assert from 'node:assert/strict';
import { resetWarnings, setWarningHandler } from '../../src/nn/warnings.js';

/** The largest |a[i] − b[i]|; the lengths must match. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'maxAbsDiff: lengths differ');
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/**
 * Every actual[i] within `tol` of expected[i]: absolute by default; `relative` scales the tolerance by
 * 1 + |expected[i]| (for values of any size).
 */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string, scale: 'absolute' | 'relative' = 'absolute'): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    const limit = scale === 'relative' ? tol * (1 + Math.abs(expected[i])) : tol;
    assert.ok(err <= limit, `${what}[${i}]: got ${actual[i]}, expected ${expected[i]} (error ${err})`);
  }
}

/** Collects warnings (from a clean slate of warn-once keys) until `restore()`. */
export function captureWarnings(): { messages: string[]; restore: () => void } {
  resetWarnings();
  const messages: string[] = [];
  const previous = setWarningHandler((m) => messages.push(m));
  return { messages, restore: () => setWarningHandler(previous) };
}
