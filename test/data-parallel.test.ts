/**
 * Data-parallel training with synchronized batch norm (src/parallel): two threads, each on its shard
 * of the batch, must give what one thread gives on the whole batch, up to float rounding — gradients,
 * running statistics, and weights after many SGD and Adam steps — and every way it can go wrong must
 * end in a clear error, not a hang.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Adam,
  BatchNorm1d,
  CrossEntropyLoss,
  DataParallel,
  Linear,
  Rng,
  SGD,
  Sequential,
  Sigmoid,
  Tensor,
  Trainer,
  buildPreset,
  createWasmKernels,
  registerBackend,
  freezeBatchNorm,
  getBackend,
  initBackend,
  setBackend,
  type Dataset,
  type Kernels,
  type Optimizer,
} from '../src/index.js';

let previous: Kernels;
let kernels: Kernels;

before(async () => {
  previous = getBackend();
  kernels = await initBackend('wasm');
});

after(() => {
  setBackend(previous.name);
});

function mlp(seed: number): Sequential {
  const rng = new Rng(seed);
  // No bias before BN (it cancels; its gradient is rounding noise, which Adam would blow up to full steps).
  return new Sequential(new Linear(12, 10, { rng, bias: false }), new BatchNorm1d(10), new Sigmoid(), new Linear(10, 8, { rng, bias: false }), new BatchNorm1d(8), new Sigmoid(), new Linear(8, 4, { rng }));
}

/** Batches in the backend's memory, as the DataLoader makes them. */
function batches(count: number, batch: number, sampleShape: number[], classes: number, seed: number): Array<{ x: Tensor; y: Int32Array }> {
  const rng = new Rng(seed);
  const sample = sampleShape.reduce((a, b) => a * b, 1);
  return Array.from({ length: count }, () => {
    const data = kernels.allocate(batch * sample);
    for (let i = 0; i < data.length; i++) data[i] = rng.normal() * 2 + 0.5;
    return { x: new Tensor([batch, ...sampleShape], data), y: Int32Array.from({ length: batch }, () => rng.int(classes)) };
  });
}

/** One thread: the usual zeroGrad, forward, loss, backward, step. */
function singleStep(model: Sequential, optimizer: Optimizer, loss: CrossEntropyLoss, x: Tensor, y: Int32Array): number {
  model.train();
  optimizer.zeroGrad();
  const value = loss.forward(model.forward(x), y);
  model.backward(loss.backward());
  optimizer.step();
  return value;
}

function maxDifference(a: Sequential, b: Sequential): { name: string; diff: number } {
  let worst = { name: '', diff: 0 };
  const other = b.stateDict();
  for (const [name, t] of a.stateDict()) {
    const u = other.get(name)!;
    for (let i = 0; i < t.size; i++) {
      const diff = Math.abs(t.data[i] - u.data[i]);
      if (diff > worst.diff) worst = { name, diff };
    }
  }
  return worst;
}

test('two threads with synchronized BN train like one thread on the whole batch (SGD with momentum, odd batch 13 = 7 + 6)', async () => {
  const single = mlp(1);
  const parallelModel = mlp(1);
  const optA = new SGD(single.parameters(), { lr: 0.2, momentum: 0.9 });
  const optB = new SGD(parallelModel.parameters(), { lr: 0.2, momentum: 0.9 });
  const parallel = await DataParallel.create(parallelModel, { threads: 2, inputShape: [12], optimizer: optB });
  try {
    const data = batches(5, 13, [12], 4, 2);
    const loss = new CrossEntropyLoss();
    for (let s = 0; s < 40; s++) {
      const { x, y } = data[s % data.length];
      const expected = singleStep(single, optA, loss, x, y);
      parallelModel.train();
      const got = parallel.trainStep(x, y);
      assert.ok(Math.abs(got - expected) < 1e-5, `step ${s}: loss ${got} vs ${expected}`);
    }
    const worst = maxDifference(single, parallelModel);
    assert.ok(worst.diff < 1e-4, `largest difference ${worst.diff} in ${worst.name}`);
    assert.equal((parallelModel.layers[1] as BatchNorm1d).numBatchesTracked, 40, 'one running-statistics update per step, not one per thread');
    // The statistics are those of the whole batch: eval outputs agree too.
    single.eval();
    parallelModel.eval();
    const a = single.forward(data[0].x).clone();
    const b = parallelModel.forward(data[0].x);
    for (let i = 0; i < a.size; i++) assert.ok(Math.abs(a.data[i] - b.data[i]) < 1e-4);
  } finally {
    parallel.close();
  }
});

/** The mlp with every BatchNorm1d built with `options`. */
function mlpWith(seed: number, options: ConstructorParameters<typeof BatchNorm1d>[1]): Sequential {
  const rng = new Rng(seed);
  return new Sequential(new Linear(12, 10, { rng, bias: false }), new BatchNorm1d(10, options), new Sigmoid(), new Linear(10, 8, { rng, bias: false }), new BatchNorm1d(8, options), new Sigmoid(), new Linear(8, 4, { rng }));
}

/** `steps` SGD steps on one thread and on two with synchronized BN; the largest difference of the state dicts. */
async function oneVersusTwo(make: () => Sequential, batch: number, steps: number): Promise<{ worst: { name: string; diff: number }; single: Sequential; parallelModel: Sequential }> {
  const single = make();
  const parallelModel = make();
  const optA = new SGD(single.parameters(), { lr: 0.2, momentum: 0.9 });
  const optB = new SGD(parallelModel.parameters(), { lr: 0.2, momentum: 0.9 });
  const parallel = await DataParallel.create(parallelModel, { threads: 2, inputShape: [12], optimizer: optB });
  try {
    const data = batches(4, batch, [12], 4, 12);
    const loss = new CrossEntropyLoss();
    for (let s = 0; s < steps; s++) {
      const { x, y } = data[s % data.length];
      const expected = singleStep(single, optA, loss, x, y);
      parallelModel.train();
      const got = parallel.trainStep(x, y);
      assert.ok(Math.abs(got - expected) < 1e-5, `step ${s}: loss ${got} vs ${expected}`);
    }
    return { worst: maxDifference(single, parallelModel), single, parallelModel };
  } finally {
    parallel.close();
  }
}

test('ghost batches on two threads train like one thread: each thread normalizes its own ghost batches, the running averages are the mean over all of them', async () => {
  const { worst, single, parallelModel } = await oneVersusTwo(() => mlpWith(21, { virtualBatchSize: 4 }), 16, 30);
  assert.ok(worst.diff < 1e-4, `largest difference ${worst.diff} in ${worst.name}`);
  const bn = parallelModel.layers[1] as BatchNorm1d;
  assert.equal(bn.numBatchesTracked, 30, 'one running-statistics update per step');
  assert.ok(Math.abs(bn.runningVar!.data[0] - (single.layers[1] as BatchNorm1d).runningVar!.data[0]) < 1e-5);
  // A shard that is no multiple of the ghost batch is refused, naming the thread's share.
  const odd = mlpWith(22, { virtualBatchSize: 4 });
  const parallel = await DataParallel.create(odd, { threads: 2, inputShape: [12] });
  try {
    const [{ x, y }] = batches(1, 12, [12], 4, 13);
    odd.train();
    assert.throws(() => parallel.step(x, y), /virtualBatchSize 4 does not divide the batch size 6 \(this thread's share of a data-parallel batch split across 2 threads/);
  } finally {
    parallel.close();
  }
});

test('Batch Renormalization on two threads trains like one thread (the corrections use the whole batch and the running estimates before the update)', async () => {
  const renorm = { rMax: 1.5, dMax: 0.5, relaxFrom: 5, rMaxAt: 15, dMaxAt: 15 };
  const { worst, parallelModel } = await oneVersusTwo(() => mlpWith(23, { renorm }), 14, 30);
  assert.ok(worst.diff < 1e-4, `largest difference ${worst.diff} in ${worst.name}`);
  const bn = parallelModel.layers[1] as BatchNorm1d;
  assert.equal(bn.renormSteps, 30);
  const { rMax } = bn.renormLimits();
  assert.equal(rMax, 1.5, 'the warm-up reached its target: the corrections were active');
  // Renorm with ghost batches on two threads, too.
  const both = await oneVersusTwo(() => mlpWith(24, { renorm, virtualBatchSize: 4 }), 16, 20);
  assert.ok(both.worst.diff < 1e-4, `renorm + ghost: largest difference ${both.worst.diff} in ${both.worst.name}`);
});

test('a broken synchronization is caught: without the shared statistics the replicas drift apart', async () => {
  // The same run with each thread normalizing by its own shard's statistics (plain per-thread BN) gives
  // clearly different gradients, so the equivalence above is a real check of the synchronization.
  const single = mlp(3);
  const data = batches(1, 12, [12], 4, 4);
  const loss = new CrossEntropyLoss();
  single.train();
  single.zeroGrad();
  loss.forward(single.forward(data[0].x), data[0].y);
  single.backward(loss.backward());
  const whole = single.parameters()[0].grad.clone();
  const halves = mlp(3);
  halves.train();
  halves.zeroGrad();
  for (const [from, to] of [[0, 6], [6, 12]]) {
    const x = new Tensor([to - from, 12], data[0].x.data.subarray(from * 12, to * 12));
    loss.forward(halves.forward(x), data[0].y.subarray(from, to));
    const d = loss.backward();
    kernels.scale(d.data, 0.5, d.data);
    halves.backward(d);
  }
  let diff = 0;
  for (let i = 0; i < whole.size; i++) diff = Math.max(diff, Math.abs(whole.data[i] - halves.parameters()[0].grad.data[i]));
  assert.ok(diff > 1e-3, `per-shard statistics should change the gradient noticeably (got ${diff})`);
});

test('mnist-cnn (BatchNorm2d, a hidden BatchNorm1d): one step gives the same gradients and statistics on two threads', async () => {
  const single = buildPreset('mnist-cnn', { bn: true, seed: 5 });
  const parallelModel = buildPreset('mnist-cnn', { bn: true, seed: 5 });
  const parallel = await DataParallel.create(parallelModel, { inputShape: [1, 28, 28] });
  try {
    const [{ x, y }] = batches(1, 10, [1, 28, 28], 10, 6);
    const loss = new CrossEntropyLoss();
    single.train();
    single.zeroGrad();
    const expected = loss.forward(single.forward(x), y);
    single.backward(loss.backward());
    parallelModel.train();
    parallelModel.zeroGrad();
    const got = parallel.step(x, y);
    assert.ok(Math.abs(got - expected) < 1e-5);
    const b = parallelModel.namedParameters();
    single.namedParameters().forEach(([name, p], i) => {
      let scale = 0;
      let diff = 0;
      for (let j = 0; j < p.grad.size; j++) {
        scale = Math.max(scale, Math.abs(p.grad.data[j]));
        diff = Math.max(diff, Math.abs(p.grad.data[j] - b[i][1].grad.data[j]));
      }
      assert.ok(diff <= 1e-5 * Math.max(scale, 1e-3), `${name}: gradient differs by ${diff} (scale ${scale})`);
    });
    assert.ok(maxDifference(single, parallelModel).diff < 1e-6, 'running statistics');
  } finally {
    parallel.close();
  }
});

test('Adam, frozen BN statistics and the Trainer: the replica follows the main model (the Trainer takes the sample shape from the DataParallel)', async () => {
  const makeSet = (seed: number) => {
    const rng = new Rng(seed);
    const n = 120;
    const x = new Float32Array(n * 12).map(() => rng.normal());
    const labels = Uint8Array.from({ length: n }, (_, i) => (x[i * 12] + x[i * 12 + 1] > 0 ? 1 : 0) + (x[i * 12 + 2] > 0.5 ? 2 : 0));
    // Samples stored as 3×4 (as MNIST's are 1×28×28): the flat shape the model takes comes from inputShape.
    const set: Dataset = { name: 'toy', images: x, labels, count: n, sampleShape: [3, 4], numClasses: 4 };
    return set;
  };
  const run = async (threads: number) => {
    const model = mlp(7);
    freezeBatchNorm(model, { statistics: 'batch', affine: false }); // batch statistics, no running-average updates
    const optimizer = new Adam(model.parameters(), { lr: 0.01 });
    const parallel = threads > 1 ? await DataParallel.create(model, { threads, inputShape: [12], optimizer }) : undefined;
    try {
      // Data-parallel: no inputShape here, the DataParallel's [12] is used (as docs/wasm-backend.md's example does).
      const trainer = new Trainer({ model, optimizer, trainSet: makeSet(8), batchSize: 20, steps: 30, seed: 3, parallel, inputShape: parallel ? undefined : [12] });
      if (parallel) assert.throws(() => new Trainer({ model, optimizer, trainSet: makeSet(8), batchSize: 20, steps: 30, parallel, inputShape: [3, 4] }), /inputShape \[3, 4\] differs from the DataParallel's \[12\]/);
      trainer.run();
      return { model, loss: trainer.history.at(-1)!.loss };
    } finally {
      parallel?.close();
    }
  };
  const one = await run(1);
  const two = await run(2);
  const worst = maxDifference(one.model, two.model);
  assert.ok(worst.diff < 1e-4, `largest difference ${worst.diff} in ${worst.name}`);
  assert.equal((two.model.layers[1] as BatchNorm1d).numBatchesTracked, 0, "'batch-frozen' reached the replica: no updates");
  assert.ok(Math.abs(one.loss - two.loss) < 1e-4);
});

test("on a backend that splits kernels across threads of its own, a step keeps the main thread's kernels on it (threadLimit 1), then gives the limit back", async () => {
  // A backend that would split every matmul, batch-norm and elementwise call with its worker: during a
  // step the replica's thread already takes the second core, so rank 0 must split none.
  const splitting = await createWasmKernels({ threads: 2, split: 'always', parallelMinMacs: 1, parallelMinValues: 1 });
  const splitCalls = () => [splitting.policy, ...Object.values(splitting.batchNormPolicies), ...Object.values(splitting.elementwisePolicies)].reduce((n, p) => n + p.splitCalls, 0);
  registerBackend(splitting);
  setBackend('wasm');
  try {
    const model = mlp(3);
    const single = mlp(3);
    const optimizer = new SGD(model.parameters(), { lr: 0.2, momentum: 0.9 });
    const optSingle = new SGD(single.parameters(), { lr: 0.2, momentum: 0.9 });
    const parallel = await DataParallel.create(model, { threads: 2, inputShape: [12], optimizer });
    try {
      const data = batches(3, 16, [12], 4, 5).map(({ x, y }) => {
        const copy = splitting.allocate(x.size);
        copy.set(x.data);
        return { x: new Tensor(x.shape, copy), y };
      });
      const loss = new CrossEntropyLoss(splitting);
      const before = splitCalls();
      const expected = singleStep(single, optSingle, loss, data[0].x, data[0].y);
      assert.ok(splitCalls() > before, 'outside a data-parallel step the backend splits its kernels');
      const during = splitCalls();
      for (let s = 0; s < 6; s++) {
        model.train();
        const got = parallel.trainStep(data[s % 3].x, data[s % 3].y);
        if (s === 0) assert.ok(Math.abs(got - expected) < 1e-5, `loss ${got} vs ${expected}`);
        assert.equal(splitting.threadLimit, 2, 'the limit is given back after each step');
      }
      assert.equal(splitCalls(), during, 'no kernel of a data-parallel step was split');
      // A failed step gives the limit back too.
      data[1].x.data[5] = Number.NaN;
      assert.throws(() => parallel.trainStep(data[1].x, data[1].y), /NaN/);
      assert.equal(splitting.threadLimit, 2);
    } finally {
      parallel.close();
    }
  } finally {
    registerBackend(kernels);
    setBackend('wasm');
    splitting.dispose();
  }
});

test('bad input and impossible setups get clear errors, and a failed step never hangs', async () => {
  const model = mlp(9);
  await assert.rejects(DataParallel.create(model, { threads: 1, inputShape: [12] }), /threads must be an integer of at least 2/);
  setBackend('ts');
  try {
    const onReference = mlp(9);
    setBackend('wasm');
    await assert.rejects(DataParallel.create(onReference, { inputShape: [12] }), /not in the "wasm" backend's memory/);
    setBackend('ts');
    await assert.rejects(DataParallel.create(model, { inputShape: [12] }), /needs a backend whose memory the threads can share/);
  } finally {
    setBackend('wasm');
  }

  const parallel = await DataParallel.create(model, { inputShape: [12] });
  try {
    const [{ x, y }] = batches(1, 8, [12], 4, 10);
    assert.throws(() => parallel.step(new Tensor([1, 12], x.data.subarray(0, 12)), y.subarray(0, 1)), /batch of 1 cannot be split across 2 threads/);
    assert.throws(() => parallel.step(new Tensor([8, 6, 2], x.data), y), /samples of shape \[12\]/);
    assert.throws(() => parallel.trainStep(x, y), /trainStep\(\) needs the optimizer/);
    // A NaN in the second thread's shard: the error names the sample in the whole batch.
    const saved = x.data[6 * 12 + 3];
    x.data[6 * 12 + 3] = NaN;
    assert.throws(() => parallel.step(x, y), /NaN at flat index 75 \(sample 6 of a batch of shape \[8, 12\]\)/);
    x.data[6 * 12 + 3] = saved;
    assert.throws(() => parallel.step(x, y), /a previous step failed/);
  } finally {
    parallel.close();
  }

  // A label out of range on the worker's shard fails there; the main thread reports it instead of waiting.
  const second = await DataParallel.create(mlp(9), { inputShape: [12] });
  try {
    const [{ x, y }] = batches(1, 8, [12], 4, 11);
    y[7] = 9;
    assert.throws(() => second.step(x, y), /replica 1: CrossEntropyLoss: label 9/);
  } finally {
    second.close();
  }
});
