/**
 * The library as a program of its own uses it: a dataset from arrays in memory, a layer of its own
 * (gradient-checked, registered for JSON specs and model files), and the mistakes such a program makes
 * (a disposed model, an optimizer of other parameters, a second run(), images into an MLP without
 * inputShape, backward before forward), each stopped with a message that names the problem and the fix.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Adam,
  BatchNorm1d,
  Linear,
  Module,
  ReLU,
  Rng,
  SGD,
  Sequential,
  Tensor,
  Trainer,
  buildSequential,
  checkBackward,
  classificationReport,
  confusionMatrix,
  cosineSchedule,
  datasetFromArrays,
  decodeModel,
  encodeModel,
  evaluate,
  getBackend,
  gradCheck,
  intOption,
  layerSpec,
  registerLayer,
  reuse,
  stratifiedSplit,
  type Dataset,
  type Parameter,
  makeParameter,
  createWasmKernels,
} from '../src/index.js';

/** x·sigmoid(x), elementwise; `broken` drops the x·σ'(x) term of its derivative. */
class Swish extends Module {
  readonly typeName = 'Swish';
  private x: Tensor | null = null;
  private y: Tensor | null = null;
  private dx: Tensor | null = null;
  constructor(readonly broken = false) {
    super();
  }
  outputShape(shape: readonly number[]): number[] {
    return [...shape];
  }
  forward(x: Tensor): Tensor {
    this.x = x;
    const y = (this.y = reuse(this.y, x.shape, this.kernels));
    for (let i = 0; i < x.size; i++) y.data[i] = x.data[i] / (1 + Math.exp(-x.data[i]));
    return y;
  }
  backward(dy: Tensor): Tensor {
    checkBackward(this, this.y, dy);
    const x = this.x!;
    const dx = (this.dx = reuse(this.dx, x.shape, this.kernels));
    for (let i = 0; i < x.size; i++) {
      const s = 1 / (1 + Math.exp(-x.data[i]));
      dx.data[i] = dy.data[i] * (this.broken ? s : s + x.data[i] * s * (1 - s));
    }
    return dx;
  }
}

/** y = x·scale, one learnt scale per feature. */
class Scale extends Module {
  readonly typeName = 'Scale';
  scale: Parameter;
  private x: Tensor | null = null;
  private y: Tensor | null = null;
  private dx: Tensor | null = null;
  constructor(readonly features: number) {
    super();
    this.scale = makeParameter(Tensor.full([features], 1), this.kernels);
  }
  override namedOwnParameters(): Array<[string, Parameter]> {
    return [['scale', this.scale]];
  }
  outputShape(shape: readonly number[]): number[] {
    return [...shape];
  }
  forward(x: Tensor): Tensor {
    this.x = x;
    const y = (this.y = reuse(this.y, x.shape, this.kernels));
    for (let i = 0; i < x.size; i++) y.data[i] = x.data[i] * this.scale.value.data[i % this.features];
    return y;
  }
  backward(dy: Tensor): Tensor {
    checkBackward(this, this.y, dy);
    const x = this.x!;
    const f = this.features;
    for (let i = 0; i < x.size; i++) this.scale.grad.data[i % f] += dy.data[i] * x.data[i];
    const dx = (this.dx = reuse(this.dx, x.shape, this.kernels));
    for (let i = 0; i < x.size; i++) dx.data[i] = dy.data[i] * this.scale.value.data[i % f];
    return dx;
  }
  override config(): Record<string, unknown> {
    return { features: this.features };
  }
}

registerLayer('Swish', () => new Swish(), []);
registerLayer('Scale', (spec) => new Scale(intOption(spec, ['features'])), ['features']);

/** Two interleaved spiral arms, 1.5 turns each, as rows of [x, y] and string labels. */
function spiral(n: number, seed: number): { rows: number[][]; labels: string[] } {
  const rng = new Rng(seed);
  const rows: number[][] = [];
  const labels: string[] = [];
  for (let i = 0; i < n; i++) {
    const arm = i % 2;
    const t = (i / n) * 3 * Math.PI;
    const r = t / (3 * Math.PI);
    rows.push([r * Math.cos(t + arm * Math.PI) + 0.02 * rng.normal(), r * Math.sin(t + arm * Math.PI) + 0.02 * rng.normal()]);
    labels.push(arm ? 'outer' : 'inner');
  }
  return { rows, labels };
}

function randomTensor(shape: number[], rng: Rng): Tensor {
  const t = new Tensor(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = rng.normal();
  return t;
}

function smallSet(n = 64, features = 3): Dataset {
  const rng = new Rng(11);
  const rows = Array.from({ length: n }, () => Array.from({ length: features }, () => rng.normal()));
  return datasetFromArrays(rows, rows.map((r) => (r[0] > 0 ? 1 : 0)), { name: 'small' });
}

function mlp(features = 3, seed = 1): Sequential {
  const rng = new Rng(seed);
  return new Sequential(new Linear(features, 8, { rng }), new BatchNorm1d(8), new ReLU(), new Linear(8, 2, { rng }));
}

describe('datasetFromArrays', () => {
  test('rows and string labels: classes sorted and named, values copied, and a model trains on it', () => {
    const { rows, labels } = spiral(400, 7);
    const all = datasetFromArrays(rows, labels, { name: 'spiral' });
    assert.deepEqual(all.classNames, ['inner', 'outer']);
    assert.equal(all.numClasses, 2);
    assert.deepEqual(all.sampleShape, [2]);
    assert.equal(all.count, 400);
    assert.equal(all.labels[0], 0);
    assert.equal(all.labels[1], 1);
    assert.equal(all.images[2], Math.fround(rows[1][0]));
    rows[1][0] = 99; // the dataset holds its own copy
    assert.notEqual(all.images[2], 99);

    const { train, test: held } = stratifiedSplit(all, 0.2, 1);
    const rng = new Rng(3);
    const model = new Sequential(
      new Linear(2, 32, { rng }), new BatchNorm1d(32), new ReLU(),
      new Linear(32, 32, { rng }), new BatchNorm1d(32), new ReLU(),
      new Linear(32, 2, { rng }),
    );
    const trainer = new Trainer({ model, optimizer: new SGD(model.parameters(), { lr: 0.1, momentum: 0.9 }), trainSet: train, testSet: held, batchSize: 32, steps: 300, seed: 1 });
    const result = trainer.run();
    assert.ok(result && result.accuracy > 0.85, `spiral test accuracy ${result?.accuracy}`);
    // `predictions: true` types `predicted` as present: no non-null assertion needed.
    const { predicted } = evaluate(model, held, { predictions: true });
    const report = classificationReport(confusionMatrix(held.labels, predicted, held.numClasses), held.classNames);
    assert.equal(report.count, held.count);
    assert.equal(report.accuracy, result.accuracy);
  });

  test('one flat array with a sample shape, and number labels with names', () => {
    const ds = datasetFromArrays(new Float32Array(12).map((_, i) => i), [0, 2, 1], { sampleShape: [1, 2, 2], classNames: ['a', 'b', 'c'] });
    assert.deepEqual(ds.sampleShape, [1, 2, 2]);
    assert.equal(ds.numClasses, 3);
    assert.deepEqual([...ds.labels], [0, 2, 1]);
    assert.deepEqual(ds.classNames, ['a', 'b', 'c']);
    // Without a shape, a flat array is split evenly over the labels.
    assert.deepEqual(datasetFromArrays([1, 2, 3, 4, 5, 6], [0, 1, 1]).sampleShape, [2]);
  });

  test('string labels follow given classNames, which fix the class indices of a test set', () => {
    const ds = datasetFromArrays([[1], [2]], ['worn', 'faulty'], { classNames: ['faulty', 'normal', 'worn'] });
    assert.deepEqual([...ds.labels], [2, 0]);
    assert.equal(ds.numClasses, 3);
    assert.throws(() => datasetFromArrays([[1]], ['broken'], { classNames: ['faulty', 'normal'] }), /label 0 "broken" is not one of classNames \("faulty", "normal"\)/);
  });

  test('bad data is refused with the sample it is in', () => {
    assert.throws(() => datasetFromArrays([[1, 2], [3]], [0, 1]), /row 1 has 1 values, row 0 has 2/);
    assert.throws(() => datasetFromArrays([[1, 2], [3, NaN]], [0, 1], { name: 'sensors' }), /datasetFromArrays\("sensors"\): sample 1, value 1 is NaN/);
    assert.throws(() => datasetFromArrays([[1e39]], [0]), /sample 0, value 0 is 1e\+39, beyond float32's range/);
    assert.throws(() => datasetFromArrays([[1], [2], [3]], [0, 1]), /3 rows of features but 2 labels/);
    assert.throws(() => datasetFromArrays([1, 2, 3, 4, 5], [0, 1]), /5 values cannot be 2 samples of equal size/);
    assert.throws(() => datasetFromArrays([[1], [2]], [0, 0.5]), /label 1 is 0.5; labels must be class indices/);
    assert.throws(() => datasetFromArrays([[1], [2]], [0, 300]), /label 1 is 300; labels must be class indices \(integers 0 to 255\)/);
    assert.throws(() => datasetFromArrays([[1], [2]], [0, 2], { numClasses: 2 }), /label 1 is 2, not below numClasses \(2\)/);
    assert.throws(() => datasetFromArrays([[1], [2]], ['a', 1] as unknown as string[]), /label 1 is 1 but label 0 is a string/);
    assert.throws(() => datasetFromArrays([], []), /no labels/);
  });
});

describe('a layer of your own', () => {
  test('gradCheck passes a correct backward and catches a missing term', () => {
    const rng = new Rng(5);
    const x = randomTensor([4, 6], rng);
    assert.ok(gradCheck(new Swish(), x).dx < 1e-3);
    // Measured: 3e-6 for the right backward, 0.09 without the x·σ'(x) term; 1e-2 separates them.
    const broken = gradCheck(new Swish(true), x).dx;
    assert.ok(broken > 5e-2, `broken backward: relative error ${broken}`);
    const r = gradCheck(new Scale(6), x);
    assert.ok(r.dx < 1e-2 && r.params.scale < 1e-2, JSON.stringify(r));
  });

  test('registered, it builds from JSON specs, trains with Adam and a schedule, and survives the model files', () => {
    const model = buildSequential([
      { type: 'Linear', in: 3, out: 8 },
      { type: 'BatchNorm1d', numFeatures: 8 },
      { type: 'Swish' },
      { type: 'Scale', features: 8 },
      { type: 'Linear', in: 8, out: 2 },
    ], { rng: new Rng(2) });
    assert.deepEqual(layerSpec(model.layers[3]), { type: 'Scale', features: 8 });
    const ds = smallSet();
    const trainer = new Trainer({ model, optimizer: new Adam(model.parameters(), { lr: 0.01 }), schedule: cosineSchedule(60), trainSet: ds, testSet: ds, batchSize: 16, steps: 60, seed: 2 });
    const result = trainer.run()!;
    assert.ok(result.accuracy > 0.8, `accuracy ${result.accuracy}`);
    assert.notDeepEqual([...(model.layers[3] as Scale).scale.value.data], new Array(8).fill(1), 'the Scale layer learnt');

    const { model: back } = decodeModel(encodeModel(model, { inputShape: [3] }));
    model.eval();
    const x = new Tensor([1, 3], ds.images.slice(0, 3));
    assert.deepEqual(back.forward(x).toArray(), model.forward(x).toArray());
    assert.throws(() => buildSequential([{ type: 'Scale', features: 0 }], { rng: new Rng(1) }), /layer 0: Scale.features must be an integer in \[1, \d+\], got 0/);
  });

  test('backward before forward names the layer and the fix', () => {
    const model = new Sequential(new Linear(3, 4), new Swish());
    assert.throws(() => model.backward(new Tensor([2, 4])), /Swish \(layer "1"\): backward\(\) called before forward\(\); .*run forward on the batch first/);
    assert.throws(() => model.layers[0].backward(new Tensor([2, 4])), /Linear\(3, 4\) \(layer "0"\): backward\(\) called before forward\(\)/);
  });
});

describe('mistakes stopped with the fix', () => {
  test('a disposed model is refused everywhere it could run, and disposing twice is harmless', () => {
    const model = mlp();
    model.dispose();
    assert.equal(model.disposed, true);
    model.dispose();
    const x = new Tensor([2, 3]);
    assert.throws(() => model.forward(x), /cannot run forward: the model was disposed .*Build or load the model again/);
    assert.throws(() => model.backward(new Tensor([2, 2])), /cannot run backward: the model was disposed/);
    assert.throws(() => evaluate(model, smallSet()), /cannot evaluate it: the model was disposed/);
    assert.throws(() => new Trainer({ model, optimizer: new SGD(model.parameters(), { lr: 0.1 }), trainSet: smallSet(), batchSize: 16, steps: 2 }), /cannot train it: the model was disposed/);
    assert.throws(() => model.useBackend(getBackend()), /the model was disposed/);
    assert.throws(() => model.loadStateDict(mlp().stateDict()), /the model was disposed/);
    // One layer disposed on its own inside a live model.
    const other = mlp();
    other.layers[1].dispose();
    assert.throws(() => other.forward(x), /BatchNorm1d\(8.*\(layer "1"\): cannot run forward: the model was disposed/);
    other.dispose(); // the layer's blocks are not given back a second time
    assert.equal(other.layers[0].disposed, true);
  });

  test("disposing a layer, then its model, gives no block back twice (on wasm that would free another model's)", async () => {
    const k = await createWasmKernels();
    try {
      const base = k.heap.allocatedBytes;
      const probe = mlp().useBackend(k);
      const one = k.heap.allocatedBytes - base;
      probe.dispose();
      assert.equal(k.heap.allocatedBytes, base);
      const a = mlp().useBackend(k);
      a.layers[1].dispose();
      const b = mlp().useBackend(k); // may take the blocks layer 1 gave back
      a.dispose();
      a.dispose();
      assert.equal(k.heap.allocatedBytes - base, one, "only b's memory is left, all of it");
      b.dispose();
    } finally {
      k.dispose();
    }
  });

  test("an optimizer of other parameters is refused: the model would never change", () => {
    const model = mlp();
    assert.throws(() => new Trainer({ model, optimizer: new SGD(mlp(3, 2).parameters(), { lr: 0.1 }), trainSet: smallSet(), batchSize: 16, steps: 2 }), /the optimizer updates none of the model's parameters/);
    // useBackend copies the parameters into the backend's memory: an optimizer made before holds the old ones.
    const optimizer = new SGD(model.parameters(), { lr: 0.1 });
    model.useBackend(getBackend());
    assert.throws(() => new Trainer({ model, optimizer, trainSet: smallSet(), batchSize: 16, steps: 2 }), /updates none of the model's parameters.*after it is built and on its backend/);
    // Part of the parameters (fine-tuning the last layer) is a choice, not a mistake.
    const head = new SGD(model.layers[3].parameters(), { lr: 0.1 });
    assert.doesNotThrow(() => new Trainer({ model, optimizer: head, trainSet: smallSet(), batchSize: 16, steps: 2 }));
  });

  test('a trainer runs once: a second run() says how to train further instead of recording its result again', async () => {
    const model = mlp();
    const ds = smallSet();
    const records: number[] = [];
    const trainer = new Trainer({ model, optimizer: new SGD(model.parameters(), { lr: 0.1 }), trainSet: ds, testSet: ds, batchSize: 16, steps: 10, seed: 1, onMetrics: (m) => records.push(m.step) });
    const first = trainer.run();
    assert.ok(first && first.count === ds.count);
    const recorded = trainer.history.length;
    assert.throws(() => trainer.run(), /Trainer\.run\(\): this trainer already trained its 10 steps.*make a new Trainer with the same model and optimizer/);
    await assert.rejects(trainer.runUntil(() => false), /Trainer\.runUntil\(\): this trainer already trained its 10 steps/);
    assert.equal(trainer.history.length, recorded);
    assert.equal(records.length, recorded);

    // Stopped early, it may go on.
    const again = new Trainer({ model, optimizer: new SGD(model.parameters(), { lr: 0.1 }), trainSet: ds, testSet: ds, batchSize: 16, steps: 10, seed: 1 });
    const { stopped } = await again.runUntil(() => again.step >= 4);
    assert.equal(stopped, true);
    again.run();
    assert.equal(again.step, 10);
  });

  test('images into an MLP without inputShape: the error gives the option that reshapes them', () => {
    const images = datasetFromArrays(new Float32Array(64 * 4).map((_, i) => (i % 7) / 7), Array.from({ length: 64 }, (_, i) => i % 2), { name: 'tiles', sampleShape: [1, 2, 2] });
    const model = new Sequential(new Linear(4, 2, { rng: new Rng(1) }));
    const make = (inputShape?: number[]) => new Trainer({ model, optimizer: new SGD(model.parameters(), { lr: 0.1 }), trainSet: images, batchSize: 16, steps: 2, inputShape });
    assert.throws(() => make(), /The model takes flat samples of 4 values, but dataset "tiles" has samples of shape \[1, 2, 2\]: give the Trainer inputShape: \[4\]/);
    assert.throws(() => evaluate(model, images), /give evaluate inputShape: \[4\]/);
    assert.doesNotThrow(() => make([4]).run());
    assert.equal(evaluate(model, images, { inputShape: [4] }).count, 64);
    // A misfit that flattening does not cure is left to the layer's own message.
    const wide = new Sequential(new Linear(5, 2));
    assert.throws(() => evaluate(wide, images), /Linear\(5, 2\) \(layer "0"\): expected input \[B, 5\], got \[64, 1, 2, 2\]/);
  });
});
