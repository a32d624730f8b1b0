/**
 * evaluate() without an Evaluator makes its own loader and loss for the call and gives their buffers
 * back to the backend: on the wasm backend (whose memory is reclaimed only when released), repeated
 * evaluations at several sizes leave the bytes in use where they were. The lab's probes evaluate like
 * this every few hundred steps.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getBackend, initBackend } from '../src/kernels/index.js';
import { buildTwin } from '../src/runs/index.js';
import { evaluate } from '../src/train/evaluate.js';
import { Rng } from '../src/tensor/rng.js';
import type { Dataset } from '../src/data/dataset.js';

function dataset(count: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const images = new Float32Array(count * 784);
  for (let i = 0; i < images.length; i++) images[i] = rng.uniform();
  const labels = new Uint8Array(count).map((_, i) => i % 10);
  return { name: 'random', count, images, labels, sampleShape: [1, 28, 28], numClasses: 10, classNames: [...'0123456789'] } as unknown as Dataset;
}

test('repeated evaluations on the wasm backend leave its bytes in use unchanged', async () => {
  await initBackend('wasm', { threads: 1 });
  const heap = (getBackend() as unknown as { heap: { allocatedBytes: number } }).heap;
  const { model } = buildTwin({ depth: 2, width: 32, activation: 'sigmoid', bnPlacement: 'before', inputBn: false, optimizer: 'sgd', lr: 0.1, batchSize: 60, seed: 1, bnMomentum: 0.1, biasCorrection: true, inputSize: 784, classes: 10, evalEvery: 0 }, 'bn');
  const sets = [dataset(500, 1), dataset(250, 2)];
  // The first round sizes each module's output buffers; from then on nothing may accumulate.
  for (const ds of sets) evaluate(model, ds, { inputShape: [784] });
  const before = heap.allocatedBytes;
  for (let i = 0; i < 5; i++) for (const ds of sets) evaluate(model, ds, { inputShape: [784], batchSize: 100 + 50 * i });
  for (const ds of sets) evaluate(model, ds, { inputShape: [784] });
  assert.equal(heap.allocatedBytes, before);
});
