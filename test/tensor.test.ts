/** Tensor helpers that guard training against bad data. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/index.js';
import { findNonFinite } from '../src/tensor/tensor.js';

test('findNonFinite finds the first NaN or infinity anywhere, and nothing in finite data however large', () => {
  const rng = new Rng(1);
  for (const n of [1, 2, 3, 4, 5, 7, 8, 31, 1000, 1003]) {
    const data = Float32Array.from({ length: n }, () => rng.normal());
    assert.equal(findNonFinite(data), -1);
    for (const bad of [NaN, Infinity, -Infinity]) {
      for (const at of new Set([0, n >> 1, n - 1])) {
        const copy = data.slice();
        copy[at] = bad;
        assert.equal(findNonFinite(copy), at, `${bad} at ${at} of ${n}`);
        if (at + 1 < n) {
          copy[at + 1] = NaN; // a later one does not hide the first
          assert.equal(findNonFinite(copy), at);
        }
      }
    }
  }
  // +∞ and -∞ in different lanes of the fast path's sums: their sum is NaN, still found.
  const both = new Float32Array(8);
  both[1] = Infinity;
  both[2] = -Infinity;
  assert.equal(findNonFinite(both), 1);
  // The largest finite float32 values, many of them: finite, whatever their float32 sum would do.
  assert.equal(findNonFinite(new Float32Array(100_000).fill(3.4e38)), -1);
  assert.equal(findNonFinite(new Float32Array(100_000).fill(-3.4e38)), -1);
  assert.equal(findNonFinite(new Float32Array(0)), -1);
});
