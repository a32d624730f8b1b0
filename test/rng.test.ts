import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/index.js';

test('same seed, same stream; different seeds differ', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const sa = Array.from({ length: 20 }, () => a.nextUint32());
  assert.deepEqual(sa, Array.from({ length: 20 }, () => b.nextUint32()));
  assert.notDeepEqual(sa, Array.from({ length: 20 }, () => c.nextUint32()));
});

test('state save/restore continues the exact stream, including the spare normal', () => {
  const a = new Rng(7);
  a.normal();
  const state = JSON.parse(JSON.stringify(a.getState()));
  const next = [a.normal(), a.uniform(), a.int(10)];
  const b = new Rng(0);
  b.setState(state);
  assert.deepEqual([b.normal(), b.uniform(), b.int(10)], next);
  assert.throws(() => b.setState({ s: [1, 2], spareNormal: null }), /four unsigned 32-bit integers/);
});

test('uniform and normal have the right moments; permutations are permutations', () => {
  const rng = new Rng(1);
  const n = 200000;
  let su = 0, sn = 0, sn2 = 0;
  for (let i = 0; i < n; i++) {
    su += rng.uniform();
    const z = rng.normal();
    sn += z;
    sn2 += z * z;
  }
  assert.ok(Math.abs(su / n - 0.5) < 0.005);
  assert.ok(Math.abs(sn / n) < 0.01);
  assert.ok(Math.abs(sn2 / n - 1) < 0.02);
  const p = Array.from(rng.permutation(100)).sort((x, y) => x - y);
  assert.deepEqual(p, Array.from({ length: 100 }, (_, i) => i));
});
