import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  DataLoader,
  IdxFormatError,
  bytesToUnit,
  datasetFromIdx,
  encodeIdx,
  parseIdx,
  subset,
  takeFirst,
  type Batch,
  type Dataset,
} from '../src/data/index.js';
import { clearLoadedDatasets, loadDataset, loadFashionMnist, loadMnist, readIdxFile } from '../src/data/node.js';

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bnlab-data-test-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function labelCounts(ds: Dataset): number[] {
  const counts = new Array<number>(ds.numClasses).fill(0);
  for (const l of ds.labels) counts[l]++;
  return counts;
}

function range(ds: Dataset): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of ds.images) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

describe('MNIST', () => {
  test('loads the real training set', (t) => {
    clearLoadedDatasets();
    const t0 = performance.now();
    const ds = loadMnist('train');
    const ms = performance.now() - t0;
    t.diagnostic(`MNIST train load: ${ms.toFixed(0)} ms`);
    assert.equal(ds.name, 'mnist');
    assert.equal(ds.count, 60000);
    assert.deepEqual(ds.sampleShape, [1, 28, 28]);
    assert.equal(ds.images.length, 60000 * 28 * 28);
    assert.equal(ds.labels.length, 60000);
    assert.equal(ds.numClasses, 10);
    assert.equal(ds.classNames?.length, 10);
    assert.equal(ds.labels[0], 5);
    const counts = labelCounts(ds);
    assert.ok(counts.every((c) => c > 5000), `every digit is present: ${counts}`);
    assert.equal(counts.reduce((a, b) => a + b), 60000);
    assert.deepEqual(range(ds), [0, 1]);
  });

  test('test split and memoization', () => {
    const ds = loadMnist('test');
    assert.equal(ds.count, 10000);
    assert.deepEqual(ds.sampleShape, [1, 28, 28]);
    assert.ok(ds.labels.every((l) => l < 10));
    assert.equal(loadMnist('train'), loadMnist('train'), 'memoized: the same object, not a reload');
    assert.equal(loadDataset('mnist', 'test'), ds);
  });

  test('loadDataset rejects unknown names and splits', () => {
    assert.throws(() => loadDataset('cifar10', 'train'), { message: 'Unknown dataset "cifar10". Available: mnist, fashion-mnist' });
    assert.throws(() => loadMnist('validation' as 'train'), /Unknown split "validation"/);
  });
});

describe('Fashion-MNIST', () => {
  let cacheDir: string;
  let train: Dataset;
  before(() => {
    cacheDir = path.join(tmp, 'cache', 'fashion-mnist');
    clearLoadedDatasets();
  });

  test('fixed split: 60000 / 10000, 6000 / 1000 per class, interleaved', (t) => {
    const t0 = performance.now();
    train = loadFashionMnist('train', { cacheDir });
    t.diagnostic(`Fashion-MNIST train build from JSON: ${(performance.now() - t0).toFixed(0)} ms`);
    const test = loadFashionMnist('test', { cacheDir });
    assert.equal(train.count, 60000);
    assert.equal(test.count, 10000);
    assert.deepEqual(train.sampleShape, [1, 28, 28]);
    assert.deepEqual(labelCounts(train), new Array(10).fill(6000));
    assert.deepEqual(labelCounts(test), new Array(10).fill(1000));
    assert.equal(train.classNames?.[0], 'T-shirt/top');
    assert.equal(train.classNames?.[9], 'Ankle boot');
    for (let i = 0; i < 200; i++) assert.equal(train.labels[i], i % 10, 'image i of class c is at i*10+c');
    assert.deepEqual(labelCounts(takeFirst(train, 100)), new Array(10).fill(10));
    assert.deepEqual(range(train), [0, 1]);
    // No blank images (the package's empty entries must have been skipped).
    for (let i = 0; i < train.count; i += 997) assert.ok(train.images.subarray(i * 784, (i + 1) * 784).some((v) => v > 0));
    for (const f of ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', 'build.json']) {
      assert.ok(fs.existsSync(path.join(cacheDir, f)), `cache has ${f}`);
    }
    assert.deepEqual(readIdxFile(path.join(cacheDir, 't10k-images-idx3-ubyte')).dims, [10000, 28, 28]);
  });

  test('reads the cache, and rebuilds a corrupt one', async (t) => {
    clearLoadedDatasets();
    const t0 = performance.now();
    const cached = loadFashionMnist('train', { cacheDir });
    t.diagnostic(`Fashion-MNIST train from IDX cache: ${(performance.now() - t0).toFixed(0)} ms`);
    assert.deepEqual(cached.images, train.images);
    assert.deepEqual(cached.labels, train.labels);

    const imagesFile = path.join(cacheDir, 'train-images-idx3-ubyte');
    fs.truncateSync(imagesFile, 1000);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      clearLoadedDatasets();
      const rebuilt = loadFashionMnist('train', { cacheDir });
      assert.deepEqual(rebuilt.labels, train.labels);
      assert.deepEqual(rebuilt.images, train.images);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are delivered on a later tick
    } finally {
      process.off('warning', onWarning);
    }
    assert.ok(warnings.some((m) => m.includes('truncated')), `warned about the corrupt cache: ${warnings}`);
    assert.deepEqual(readIdxFile(imagesFile).dims, [60000, 28, 28], 'cache file was rewritten');
  });
});

describe('IDX format', () => {
  const valid = () => encodeIdx([3, 2, 2], Uint8Array.from({ length: 12 }, (_, i) => i * 20));

  function expectIdxError(bytes: Uint8Array, defect: string, detail: RegExp): void {
    assert.throws(
      () => parseIdx(bytes, 'some-file'),
      (err: unknown) => {
        assert.ok(err instanceof IdxFormatError, `expected IdxFormatError, got ${err}`);
        assert.equal(err.defect, defect);
        assert.ok(err.message.startsWith(`some-file: ${defect}: `), err.message);
        assert.match(err.message, detail);
        return true;
      },
    );
    // Same through the file reader, which names the file by its path.
    const file = path.join(tmp, `bad-${defect.replace(/ /g, '-')}-idx`);
    fs.writeFileSync(file, bytes);
    assert.throws(() => readIdxFile(file), (err: unknown) => err instanceof IdxFormatError && err.message.startsWith(`${file}: ${defect}: `));
  }

  test('round trip, including a view with a byte offset', () => {
    const bytes = valid();
    const { dims, data } = parseIdx(bytes, 'x');
    assert.deepEqual(dims, [3, 2, 2]);
    assert.deepEqual([...data], Array.from({ length: 12 }, (_, i) => i * 20));
    const padded = new Uint8Array(bytes.length + 7);
    padded.set(bytes, 5);
    assert.deepEqual(parseIdx(padded.subarray(5, 5 + bytes.length), 'x').dims, [3, 2, 2]);
    assert.deepEqual(parseIdx(encodeIdx([4], [1, 2, 3, 4]), 'x').dims, [4]);
    assert.throws(() => encodeIdx([2], [1, 256]), /not a byte/);
  });

  test('file shorter than the header', () => {
    expectIdxError(valid().slice(0, 3), 'too short', /file has 3 bytes, an IDX header needs at least 4/);
    expectIdxError(valid().slice(0, 10), 'too short', /3 dimensions need a 16-byte header, file has 10 bytes/);
  });

  test('wrong magic', () => {
    const b = valid();
    b[1] = 7;
    expectIdxError(b, 'bad magic', /first two bytes are 0x00 0x07, expected 0x00 0x00/);
    const gz = valid();
    gz[0] = 0x1f;
    gz[1] = 0x8b;
    expectIdxError(gz, 'bad magic', /gzip/);
  });

  test('unsupported type code', () => {
    const b = valid();
    b[2] = 0x0d;
    expectIdxError(b, 'unsupported type', /type code 0x0d \(float32\), expected 0x08 \(unsigned byte\)/);
  });

  test('0 or more than 4 dimensions', () => {
    const zero = valid();
    zero[3] = 0;
    expectIdxError(zero, 'bad dimension count', /header says 0 dimensions, expected 1 to 4/);
    const five = valid();
    five[3] = 5;
    expectIdxError(five, 'bad dimension count', /header says 5 dimensions, expected 1 to 4/);
  });

  test('zero dimension', () => {
    const b = valid();
    b.fill(0, 8, 12); // second dimension
    expectIdxError(b, 'bad dimension', /dimension 2 of 3 is 0, expected at least 1/);
  });

  test('absurd dimensions', () => {
    const b = encodeIdx([1, 1], [0]);
    new DataView(b.buffer).setUint32(4, 0xffffffff);
    new DataView(b.buffer).setUint32(8, 0x10000);
    expectIdxError(b, 'too large', /4294967295x65536 = \d+ elements, more than the 2\^31 limit/);
  });

  test('truncated data', () => {
    expectIdxError(valid().slice(0, -1), 'truncated', /header says 3x2x2 = 12 bytes of data, file has 11 bytes after the 16-byte header/);
    const header = encodeIdx([60000, 28, 28], new Uint8Array(60000 * 28 * 28)).subarray(0, 16 + 1000);
    assert.throws(() => parseIdx(header, 'train-images-idx3-ubyte'), {
      name: 'IdxFormatError',
      message: 'train-images-idx3-ubyte: truncated: header says 60000x28x28 = 47040000 bytes of data, file has 1000 bytes after the 16-byte header',
    });
  });

  test('trailing data', () => {
    const b = valid();
    const longer = new Uint8Array(b.length + 2);
    longer.set(b);
    expectIdxError(longer, 'too long', /header says 3x2x2 = 12 bytes of data, file has 14 bytes after the 16-byte header \(2 extra\)/);
  });
});

describe('datasets', () => {
  const images = parseIdx(encodeIdx([3, 2, 2], [0, 255, 51, 102, 0, 0, 0, 0, 255, 255, 255, 255]), 'img');

  test('datasetFromIdx scales pixels and checks counts and labels', () => {
    const ds = datasetFromIdx(images, parseIdx(encodeIdx([3], [2, 0, 1]), 'lbl'), 'tiny', { numClasses: 3 });
    assert.equal(ds.count, 3);
    assert.deepEqual(ds.sampleShape, [1, 2, 2]);
    assert.deepEqual([...ds.images.subarray(0, 4)], [0, 1, 0.2, 0.4].map(Math.fround));
    assert.deepEqual([...ds.labels], [2, 0, 1]);
    assert.throws(() => datasetFromIdx(images, parseIdx(encodeIdx([2], [0, 1]), 'lbl'), 'tiny'), /3 images but label file has 2 labels/);
    assert.throws(() => datasetFromIdx(images, parseIdx(encodeIdx([3], [0, 3, 1]), 'lbl'), 'tiny', { numClasses: 3 }), /label 3 at index 1 is not < numClasses \(3\)/);
  });

  test('pixels converted once (into shared memory, as the lab\'s workers share them) are taken as they are', () => {
    const shared = new Float32Array(new SharedArrayBuffer(4 * images.data.length));
    assert.equal(bytesToUnit(images.data, shared), shared, 'converted into the array given');
    const labels = parseIdx(encodeIdx([3], [2, 0, 1]), 'lbl');
    const ds = datasetFromIdx(images, labels, 'tiny', { numClasses: 3, pixels: shared });
    assert.equal(ds.images, shared, 'no copy');
    assert.deepEqual([...ds.images], [...datasetFromIdx(images, labels, 'tiny', { numClasses: 3 }).images]);
    assert.throws(() => datasetFromIdx(images, labels, 'tiny', { numClasses: 3, pixels: shared.subarray(1) }), /tiny: options\.pixels has 11 values for 12 image bytes; it must have one per byte/);
    assert.throws(() => bytesToUnit(images.data, new Float32Array(3)), /bytesToUnit: 3 values for 12 bytes/);
  });

  test('subset and takeFirst are bounds-checked views', () => {
    const ds = datasetFromIdx(images, parseIdx(encodeIdx([3], [2, 0, 1]), 'lbl'), 'tiny');
    const s = subset(ds, 1, 2);
    assert.equal(s.count, 2);
    assert.deepEqual([...s.labels], [0, 1]);
    assert.equal(s.images.length, 8);
    assert.equal(s.images.buffer, ds.images.buffer);
    assert.equal(takeFirst(ds, 2).labels[1], 0);
    assert.throws(() => subset(ds, 2, 2), /start \+ count <= 3/);
    assert.throws(() => takeFirst(ds, 4), /between 0 and 3/);
  });
});

describe('DataLoader', () => {
  /** Sample i holds the values [i, -i] and label i % 3, so batches reveal which samples they hold. */
  function synthetic(count: number): Dataset {
    const images = new Float32Array(count * 2);
    const labels = new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      images[2 * i] = i;
      images[2 * i + 1] = -i;
      labels[i] = i % 3;
    }
    return { name: 'synthetic', images, labels, count, sampleShape: [2], numClasses: 3 };
  }

  function indices(b: Batch): number[] {
    const out: number[] = [];
    for (let i = 0; i < b.labels.length; i++) {
      const idx = b.x.data[2 * i];
      assert.equal(b.x.data[2 * i + 1], -idx);
      assert.equal(b.labels[i], idx % 3);
      out.push(idx);
    }
    return out;
  }

  function take(loader: DataLoader, n: number): { idx: number[]; epoch: number; indexInEpoch: number }[] {
    return Array.from({ length: n }, () => {
      const b = loader.next();
      return { idx: indices(b), epoch: b.epoch, indexInEpoch: b.indexInEpoch };
    });
  }

  const ds = synthetic(10);

  test('same seed gives the same batches, another seed different ones', () => {
    const a = take(new DataLoader(ds, { batchSize: 3, seed: 1 }), 12);
    const b = take(new DataLoader(ds, { batchSize: 3, seed: 1 }), 12);
    const c = take(new DataLoader(ds, { batchSize: 3, seed: 2 }), 12);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  test('each epoch visits every sample exactly once, in a new order', () => {
    const loader = new DataLoader(ds, { batchSize: 3, seed: 7 });
    assert.equal(loader.batchesPerEpoch, 4);
    const orders: number[][] = [];
    for (let e = 0; e < 3; e++) {
      const batches = take(loader, 4);
      assert.deepEqual(batches.map((b) => b.idx.length), [3, 3, 3, 1]);
      assert.deepEqual(batches.map((b) => b.epoch), [e, e, e, e]);
      assert.deepEqual(batches.map((b) => b.indexInEpoch), [0, 1, 2, 3]);
      const order = batches.flatMap((b) => b.idx);
      assert.deepEqual([...order].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      orders.push(order);
    }
    assert.notDeepEqual(orders[0], orders[1]);
    assert.notDeepEqual(orders[1], orders[2]);
  });

  test('shuffle: false keeps dataset order', () => {
    const loader = new DataLoader(ds, { batchSize: 4, shuffle: false });
    assert.deepEqual(take(loader, 4).map((b) => b.idx), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [0, 1, 2, 3]]);
  });

  test('dropLast skips the short batch', () => {
    const loader = new DataLoader(ds, { batchSize: 3, seed: 3, dropLast: true });
    assert.equal(loader.batchesPerEpoch, 3);
    const batches = take(loader, 6);
    assert.ok(batches.every((b) => b.idx.length === 3));
    assert.deepEqual(batches.map((b) => b.epoch), [0, 0, 0, 1, 1, 1]);
    for (const epoch of [batches.slice(0, 3), batches.slice(3)]) assert.equal(new Set(epoch.flatMap((b) => b.idx)).size, 9);
    assert.equal(new DataLoader(ds, { batchSize: 5, dropLast: true }).batchesPerEpoch, 2);
  });

  test('reuses its output buffers', () => {
    const loader = new DataLoader(ds, { batchSize: 3 });
    const b1 = loader.next();
    const b2 = loader.next();
    assert.equal(b1.x, b2.x);
    assert.equal(b1.labels, b2.labels);
    assert.deepEqual(b1.x.shape, [3, 2]);
  });

  test('getState/setState resumes the identical sequence', () => {
    for (const [warmup, opts] of [
      [5, { batchSize: 3, seed: 11 }],
      [4, { batchSize: 3, seed: 11 }], // exactly at an epoch boundary
      [7, { batchSize: 4, seed: 5, dropLast: true }],
      [3, { batchSize: 4, shuffle: false }],
    ] as const) {
      const a = new DataLoader(ds, opts);
      take(a, warmup);
      const state = JSON.parse(JSON.stringify(a.getState()));
      const expected = take(a, 13);
      const b = new DataLoader(ds, { ...opts, seed: 999 });
      take(b, 2);
      b.setState(state);
      assert.deepEqual(take(b, 13), expected);
    }
    const saved = new DataLoader(ds, { batchSize: 3 }).getState();
    assert.throws(() => new DataLoader(ds, { batchSize: 2 }).setState(saved), /batchSize 3 vs 2/);
    assert.throws(() => new DataLoader(synthetic(11), { batchSize: 3 }).setState(saved), /dataset size 10 vs 11/);
    assert.throws(() => new DataLoader(ds, { batchSize: 3 }).setState({ ...saved, position: 4 }), /position must be an integer in \[0, 4\)/);
  });

  test('epochBatches: one ordered pass with the short batch, independent of next()', () => {
    const loader = new DataLoader(ds, { batchSize: 4, seed: 2, dropLast: true });
    const reference = take(new DataLoader(ds, { batchSize: 4, seed: 2, dropLast: true }), 5);
    const first = take(loader, 2);
    const held = loader.next(); // must survive the evaluation pass below
    const heldIdx = indices(held);
    const evalIdx = [...loader.epochBatches()].length;
    assert.equal(evalIdx, 3);
    assert.deepEqual([...loader.epochBatches()].map((b) => b.labels.length), [4, 4, 2]);
    assert.deepEqual([...loader.epochBatches(10)].map(indices), [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
    const seen: number[] = [];
    for (const b of loader.epochBatches(3)) seen.push(...indices(b));
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(indices(held), heldIdx);
    assert.deepEqual([...first, { idx: heldIdx, epoch: held.epoch, indexInEpoch: held.indexInEpoch }, ...take(loader, 2)], reference);
  });

  test('bad batch sizes are rejected with the value and a fix', () => {
    for (const bad of [0, -4, 2.5, NaN]) {
      assert.throws(() => new DataLoader(ds, { batchSize: bad }), new RegExp(`batchSize must be a positive integer, got ${bad}`));
    }
    assert.throws(() => new DataLoader(ds, { batchSize: 11 }), /batchSize 11 is larger than dataset "synthetic" \(10 samples\); use a batchSize of at most 10/);
    assert.throws(() => [...new DataLoader(ds, { batchSize: 2 }).epochBatches(0)], /got 0/);
  });

  test('batches of real MNIST', () => {
    const mnist = loadMnist('test');
    const loader = new DataLoader(mnist, { batchSize: 64, seed: 0, dropLast: true });
    assert.equal(loader.batchesPerEpoch, 156);
    const b = loader.next();
    assert.deepEqual(b.x.shape, [64, 1, 28, 28]);
    assert.equal(b.labels.length, 64);
    let total = 0;
    for (const e of loader.epochBatches(1000)) total += e.labels.length;
    assert.equal(total, 10000);
  });
});
