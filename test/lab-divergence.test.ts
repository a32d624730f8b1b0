/**
 * The lab's divergence rule (web/src/worker/twin.ts), on the paper's network in Node: a network that
 * overshoots in its first steps and recovers is not stopped; one whose loss stays far above its start,
 * or overflows, is. The same rule marks the learning-rate sweep's crosses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDataset } from '../src/data/node.js';
import { takeFirst } from '../src/data/dataset.js';
import { initBackend } from '../src/kernels/index.js';
import { Tensor } from '../src/tensor/tensor.js';
import { EXPLODE_FACTOR, EXPLODE_FROM, Twin, type TwinData } from '../web/src/worker/twin.js';
import { defaultState, twinSpec } from '../web/src/state.js';
import type { TwinId } from '../web/src/worker/protocol.js';

async function trained(twin: TwinId, lr: number, steps: number): Promise<{ twin: Twin; losses: number[] }> {
  const test = loadDataset('mnist', 'test');
  const data: TwinData = { trainSet: loadDataset('mnist', 'train'), testSet: takeFirst(test, 100), probeInput: new Tensor([10, 784], test.images.slice(0, 7840)), probeLabels: test.labels.slice(0, 10) };
  const t = await Twin.create(twin, { ...twinSpec({ ...defaultState(), lr }), evalEvery: 0 }, data);
  const out = { losses: [] as number[], tests: [], probes: [] };
  t.train(steps, [], out);
  return { twin: t, losses: out.losses };
}

test('sigmoid network at rate 30: with batch norm its early overshoot is not a divergence; without, a loss that stays 3x its start is', async () => {
  await initBackend('wasm');
  const bn = await trained('bn', 30, 400);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  // The case the rule is for: over the first 50 steps its mean is above the threshold ...
  assert.ok(mean(bn.losses.slice(0, EXPLODE_FROM)) > EXPLODE_FACTOR * bn.losses[0], `steps 1-50 average ${mean(bn.losses.slice(0, 50))}`);
  // ... but it recovers and trains on.
  assert.equal(bn.twin.diverged, null);
  assert.equal(bn.losses.length, 400);
  assert.ok(mean(bn.losses.slice(-50)) < bn.losses[0], `the last 50 steps average ${mean(bn.losses.slice(-50))}, below the start ${bn.losses[0]}`);
  bn.twin.close();

  const plain = await trained('nobn', 30, 200);
  assert.equal(plain.twin.diverged?.cause, 'exploded');
  assert.ok(plain.twin.diverged!.step >= EXPLODE_FROM && plain.twin.diverged!.step < 200, `stopped at step ${plain.twin.diverged!.step}`);
  assert.match(plain.twin.diverged!.message, /^the loss averaged [\d.]+ over steps \d+-\d+, more than 3x its start \(2\.\d\d\)/);
  plain.twin.close();

  const far = await trained('bn', 100, 100);
  assert.equal(far.twin.diverged?.cause, 'exploded');
  assert.equal(far.twin.diverged!.step, EXPLODE_FROM, 'at rate 100 it is stopped as soon as the rule judges');
  far.twin.close();
});
