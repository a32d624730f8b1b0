/**
 * Model files: safetensors encoding, model.json + model.safetensors round trips, and a safetensors file
 * written by PyTorch.
 *
 * The PyTorch fixture (test/fixtures/safetensors/pytorch-mlp-bn.safetensors and .json) was made by
 * test/fixtures/safetensors/make_pytorch_mlp.py with PyTorch 1.13 (Debian's python3-torch): it loads the
 * initial state of the "mlp_bn_sigmoid_sgd" case of test/fixtures/pytorch/bn-models.json into a float32
 * torch.nn.Sequential (Linear 20→16, BatchNorm1d, Sigmoid, Linear 16→13, BatchNorm1d, Sigmoid,
 * Linear 13→4), trains it for that case's 4 SGD steps in PyTorch, saves model.state_dict() in the
 * safetensors layout (F32 tensors, num_batches_tracked as I64; written with struct/json because the
 * safetensors package was not installed), and records PyTorch's eval-mode logits on the case's eval input.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ModelFileError } from '../src/io/errors.js';
import { MODEL_FORMAT_VERSION, decodeModel, describeModel, encodeModel, encodeWeights } from '../src/io/model-file.js';
import { leftoverTemporaries, writeFileAtomic } from '../src/io/node-atomic.js';
import { isModelDir, loadModelDir, saveModelDir } from '../src/io/node-model-dir.js';
import { encodeSafetensors, parseSafetensors, readFloat32 } from '../src/io/safetensors.js';
import { BatchNormBase } from '../src/nn/batchnorm.js';
import { CrossEntropyLoss } from '../src/nn/loss.js';
import { buildSequential, type LayerSpec } from '../src/nn/registry.js';
import type { Sequential } from '../src/nn/sequential.js';
import { setWarningHandler } from '../src/nn/warnings.js';
import { SGD } from '../src/optim/optimizer.js';
import { Rng } from '../src/tensor/rng.js';
import { Tensor } from '../src/tensor/tensor.js';
import { rawSafetensors } from './support/io-hostile-cases.js';
import { maxAbsDiff } from './support/assert.js';

const FIXTURE_DIR = path.join(import.meta.dirname, 'fixtures', 'safetensors');
const fixture = JSON.parse(fs.readFileSync(path.join(FIXTURE_DIR, 'pytorch-mlp-bn.json'), 'utf8'));
const fixtureWeights = path.join(FIXTURE_DIR, 'pytorch-mlp-bn.safetensors');

let tmp: string;
let restoreWarnings: ReturnType<typeof setWarningHandler>;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bnlab-io-model-'));
  restoreWarnings = setWarningHandler(() => {});
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  setWarningHandler(restoreWarnings);
});


function randomInput(shape: number[], seed: number): Tensor {
  const rng = new Rng(seed);
  const x = new Tensor(shape);
  for (let i = 0; i < x.size; i++) x.data[i] = rng.normal();
  return x;
}

/** A few SGD steps so weights and running statistics move away from their initial values. */
function train(model: Sequential, inputShape: number[], steps: number, seed: number): void {
  const sgd = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
  const loss = new CrossEntropyLoss();
  const rng = new Rng(seed);
  model.train();
  for (let s = 0; s < steps; s++) {
    const x = randomInput([8, ...inputShape], seed + s);
    const labels = Array.from({ length: 8 }, () => rng.int(3));
    sgd.zeroGrad();
    loss.forward(model.forward(x), labels);
    model.backward(loss.backward());
    sgd.step();
  }
}

const MLP: LayerSpec[] = [
  { type: 'Linear', inFeatures: 6, outFeatures: 5 },
  { type: 'BatchNorm1d', numFeatures: 5 },
  { type: 'ReLU' },
  { type: 'Dropout', p: 0.25 },
  { type: 'Linear', inFeatures: 5, outFeatures: 3 },
];

describe('safetensors', () => {
  test('F32, F64 and I64 tensors round-trip with metadata; the header is padded to 8 bytes', () => {
    const bytes = encodeSafetensors(
      [
        { name: 'a', dtype: 'F32', shape: [2, 3], data: [1.5, -2, 3.25, 0, 1e-8, -7] },
        { name: 'b', dtype: 'F64', shape: [2], data: [0.1, 1e300] },
        { name: 'n', dtype: 'I64', shape: [], data: [12345] },
      ],
      { format: 'pt' },
    );
    const headerLen = new DataView(bytes.buffer).getUint32(0, true);
    assert.equal(headerLen % 8, 0);
    const file = parseSafetensors(bytes, 'x.safetensors');
    assert.deepEqual(file.metadata, { format: 'pt' });
    assert.deepEqual([...file.entries.keys()], ['a', 'b', 'n']);
    assert.deepEqual(file.entries.get('a')!.shape, [2, 3]);
    assert.deepEqual(Array.from(readFloat32(file, 'a')), Array.from(Float32Array.from([1.5, -2, 3.25, 0, 1e-8, -7])));
    assert.deepEqual(Array.from(readFloat32(file, 'b')), [Math.fround(0.1), Infinity]); // 1e300 overflows float32
    assert.deepEqual(Array.from(readFloat32(file, 'n')), [12345]);
  });

  test('F16, BF16 and integer dtypes widen to float32; data at an odd offset reads correctly', () => {
    // F16: 1.0 = 0x3c00, -2.5 = 0xc100, 65504 = 0x7bff, smallest subnormal 0x0001; BF16: 1.0 = 0x3f80, -0.5 = 0xbf00.
    const data = new Uint8Array([0x00, 0x3c, 0x00, 0xc1, 0xff, 0x7b, 0x01, 0x00, 0x80, 0x3f, 0x00, 0xbf, 0xfe, 0xff, 0xff, 0xff, 0xff]);
    const header = {
      h: { dtype: 'F16', shape: [4], data_offsets: [0, 8] },
      b: { dtype: 'BF16', shape: [2], data_offsets: [8, 12] },
      i: { dtype: 'I32', shape: [1], data_offsets: [12, 16] },
      u: { dtype: 'U8', shape: [1], data_offsets: [16, 17] },
    };
    const file = parseSafetensors(rawSafetensors(header, data), 'odd.safetensors'); // unpadded header: data at an odd offset
    assert.deepEqual(Array.from(readFloat32(file, 'h')), [1, -2.5, 65504, 2 ** -24]);
    assert.deepEqual(Array.from(readFloat32(file, 'b')), [1, -0.5]);
    assert.deepEqual(Array.from(readFloat32(file, 'i')), [-2]);
    assert.deepEqual(Array.from(readFloat32(file, 'u')), [255]);
  });

  test('an F32 tensor at an unaligned offset reads correctly', () => {
    const values = Float32Array.from([3.5, -1.25, 42]);
    const file = parseSafetensors(rawSafetensors({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 12] } }, new Uint8Array(values.buffer)), 'w.safetensors');
    assert.notEqual((8 + JSON.stringify({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 12] } }).length) % 4, 0);
    assert.deepEqual(Array.from(readFloat32(file, 'w')), Array.from(values));
  });
});

describe('model files', () => {
  test('model.json records the format version, layers, input shape and batch-norm settings', () => {
    const model = buildSequential(MLP, { rng: new Rng(1) });
    const json = describeModel(model, { inputShape: [6], preset: null, classNames: ['a', 'b', 'c'], dataset: 'toy' });
    assert.equal(json.format, 'bnlab-model');
    assert.equal(json.formatVersion, MODEL_FORMAT_VERSION);
    assert.deepEqual(json.inputShape, [6]);
    assert.deepEqual(json.batchNorm, { biasCorrection: true });
    assert.equal(json.layers.length, MLP.length);
    assert.deepEqual(json.layers[1], { type: 'BatchNorm1d', numFeatures: 5, eps: 1e-5, momentum: 0.1, affine: true, trackRunningStats: true, biasCorrection: true });
    assert.deepEqual(json.classNames, ['a', 'b', 'c']);
  });

  test('a layer spec with an option its type does not take is refused, naming it and the options it takes', () => {
    // A misspelt option would otherwise build the layer with its default (momentum 0.1) and say nothing.
    assert.throws(() => buildSequential([{ type: 'BatchNorm1d', numFeatures: 3, momentun: 0.01 }], { rng: new Rng(1) }),
      /layer 0: BatchNorm1d: unknown option "momentun" \(did you mean "momentum"\?\); it takes numFeatures, eps, momentum, /);
    assert.throws(() => buildSequential([{ type: 'Linear', in: 2, out: 3, activation: 'relu' }], { rng: new Rng(1) }), /Linear: unknown option "activation"; it takes inFeatures, in, outFeatures, out, bias/);
    assert.throws(() => buildSequential([{ type: 'ReLU', inplace: true }], { rng: new Rng(1) }), /ReLU: unknown option "inplace"; it takes no options/);
    // Every spec a model writes builds again: the keys config() emits are all known to the registry.
    const specs = describeModel(buildSequential([...MLP, { type: 'Dropout', p: 0.2 }, { type: 'LayerNorm', normalizedShape: 3 }], { rng: new Rng(1) }), { inputShape: [6], preset: null }).layers;
    assert.doesNotThrow(() => buildSequential(specs, { rng: new Rng(1) }));
  });

  test('the loss takes class indices: a fractional label is an error, not truncated to a class', () => {
    const loss = new CrossEntropyLoss();
    assert.throws(() => loss.forward(Tensor.from([2, 2], [1, 2, 3, 4]), [0.5, 1]), /label 0\.5 at index 0 is not a class index/);
    assert.throws(() => loss.forward(Tensor.from([2, 2], [1, 2, 3, 4]), [0, 2]), /label 2 at index 1 is outside \[0, 1\]/);
  });

  test('save and load a trained model: identical state, identical eval outputs, num_batches_tracked as I64', () => {
    const model = buildSequential(MLP, { rng: new Rng(1) });
    train(model, [6], 5, 10);
    const dir = path.join(tmp, 'mlp');
    saveModelDir(dir, model, { inputShape: [6], dataset: 'toy' });
    assert.ok(isModelDir(dir));
    assert.deepEqual(leftoverTemporaries(dir), []);

    const file = parseSafetensors(new Uint8Array(fs.readFileSync(path.join(dir, 'model.safetensors'))), 'm');
    assert.equal(file.entries.get('1.num_batches_tracked')!.dtype, 'I64');
    assert.deepEqual(file.entries.get('1.num_batches_tracked')!.shape, []);
    assert.equal(file.entries.get('0.weight')!.dtype, 'F32');
    assert.deepEqual(Array.from(readFloat32(file, '1.num_batches_tracked')), [5]);

    const { model: loaded, json } = loadModelDir(dir);
    assert.equal(json.dataset, 'toy');
    assert.equal(loaded.training, false);
    for (const [name, t] of model.stateDict()) assert.deepEqual(loaded.stateDict().get(name)!.data, t.data, name);
    const bn = loaded.layers[1] as BatchNormBase;
    assert.equal(bn.numBatchesTracked, 5);
    assert.equal(bn.biasCorrection, true);
    model.eval();
    const x = randomInput([4, 6], 99);
    assert.deepEqual(loaded.forward(x).data, model.forward(x).data);
    // Saving the loaded model gives the same bytes: nothing is lost or reordered.
    assert.deepEqual(encodeWeights(loaded), new Uint8Array(fs.readFileSync(path.join(dir, 'model.safetensors'))));
  });

  test('a CNN round-trips too', () => {
    const layers: LayerSpec[] = [
      { type: 'Conv2d', inChannels: 1, outChannels: 3, kernelSize: 3, padding: 1 },
      { type: 'BatchNorm2d', numFeatures: 3 },
      { type: 'ReLU' },
      { type: 'MaxPool2d', kernelSize: 2 },
      { type: 'Flatten' },
      { type: 'Linear', inFeatures: 12, outFeatures: 3 },
    ];
    const model = buildSequential(layers, { rng: new Rng(2) });
    train(model, [1, 4, 4], 3, 20);
    const { modelJson, safetensors } = encodeModel(model, { inputShape: [1, 4, 4] });
    const { model: loaded } = decodeModel({ modelJson, safetensors });
    model.eval();
    const x = randomInput([2, 1, 4, 4], 5);
    assert.deepEqual(loaded.forward(x).data, model.forward(x).data);
  });

  test('loading checks everything before copying: a bad file leaves nothing half-loaded', () => {
    const model = buildSequential(MLP, { rng: new Rng(1) });
    train(model, [6], 2, 3);
    const { modelJson, safetensors } = encodeModel(model, { inputShape: [6] });
    // Poison the last tensor: the first ones are fine, but loading must fail before copying any of them.
    const file = parseSafetensors(safetensors, 'm');
    const last = [...file.entries.values()].at(-1)!;
    const bad = safetensors.slice();
    new DataView(bad.buffer).setFloat32(8 + (safetensors.length - file.data.length - 8) + last.begin, NaN, true);
    assert.throws(() => decodeModel({ modelJson, safetensors: bad }), (e: unknown) => e instanceof ModelFileError && e.defect === 'non-finite values' && e.message.includes(last.name));
  });

  test('loadModelDir: a missing directory and a directory without model.json are ModelFileErrors', () => {
    assert.throws(() => loadModelDir(path.join(tmp, 'nope')), (e: unknown) => e instanceof ModelFileError && e.defect === 'not found');
    const dir = path.join(tmp, 'bare');
    fs.mkdirSync(dir);
    fs.copyFileSync(fixtureWeights, path.join(dir, 'model.safetensors'));
    assert.throws(() => loadModelDir(dir), (e: unknown) => e instanceof ModelFileError && e.defect === 'not found' && e.message.includes('model.json'));
  });

  test('writeFileAtomic replaces a file and leaves no temporary behind', () => {
    const file = path.join(tmp, 'atomic.txt');
    writeFileAtomic(file, 'one');
    writeFileAtomic(file, new TextEncoder().encode('two'));
    assert.equal(fs.readFileSync(file, 'utf8'), 'two');
    assert.deepEqual(leftoverTemporaries(tmp), []);
  });
});

describe('a safetensors file written by PyTorch', () => {
  const architecture = { layers: fixture.layers as LayerSpec[], inputShape: fixture.inputShape as number[] };
  const x = () => Tensor.from(fixture.eval.x.shape, fixture.eval.x.data);

  test('loads with PyTorch semantics (no bias correction) and reproduces PyTorch eval logits', (t) => {
    const { model, json } = loadModelDir(fixtureWeights, { architecture });
    assert.equal(json.batchNorm.biasCorrection, false);
    for (const m of model.modules()) if (m instanceof BatchNormBase) {
      assert.equal(m.biasCorrection, false);
      assert.equal(m.numBatchesTracked, fixture.numBatchesTracked);
    }
    const logits = model.forward(x());
    assert.deepEqual(logits.shape, fixture.eval.logits.shape);
    assert.ok(maxAbsDiff(logits.data, fixture.eval.logits.data) < 1e-5, `max diff ${maxAbsDiff(logits.data, fixture.eval.logits.data)}`);
    t.diagnostic(`max |bnlab - PyTorch| over the eval logits: ${maxAbsDiff(logits.data, fixture.eval.logits.data).toExponential(2)}`);
  });

  test('a model.json saying biasCorrection: false means the same; biasCorrection: true would not match PyTorch', () => {
    const dir = path.join(tmp, 'from-pytorch');
    fs.mkdirSync(dir);
    fs.copyFileSync(fixtureWeights, path.join(dir, 'model.safetensors'));
    const json = { format: 'bnlab-model', formatVersion: 1, preset: null, inputShape: fixture.inputShape, layers: fixture.layers, batchNorm: { biasCorrection: false } };
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
    const logits = loadModelDir(dir).model.forward(x());
    assert.ok(maxAbsDiff(logits.data, fixture.eval.logits.data) < 1e-5);

    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ ...json, batchNorm: { biasCorrection: true } }));
    const wrong = loadModelDir(dir).model.forward(x());
    assert.ok(maxAbsDiff(wrong.data, fixture.eval.logits.data) > 1e-2, 'bias correction changes the eval statistics of a PyTorch-trained model');
  });

  test('bnlab re-saves it under the same names and shapes, readable back bit for bit', () => {
    const { model } = loadModelDir(fixtureWeights, { architecture });
    const ours = parseSafetensors(encodeWeights(model), 'ours');
    const theirs = parseSafetensors(new Uint8Array(fs.readFileSync(fixtureWeights)), 'theirs');
    assert.deepEqual([...ours.entries.keys()], [...theirs.entries.keys()]);
    for (const [name, e] of theirs.entries) {
      assert.equal(ours.entries.get(name)!.dtype, e.dtype, name);
      assert.deepEqual(ours.entries.get(name)!.shape, e.shape, name);
      assert.deepEqual(readFloat32(ours, name), readFloat32(theirs, name), name);
    }
  });
});
