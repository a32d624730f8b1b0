/**
 * `bnlab export --pytorch`: the generated model.py, run in PyTorch (/usr/bin/python3) on the exported
 * state dict, gives bnlab's eval-mode outputs within 1e-5 (and its train-mode outputs, which use batch
 * statistics), for the presets after a few training steps, with batch norm before and after the
 * activation and on the input, and for a model with every layer type the export knows.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { takeFirst, type Dataset } from '../src/data/dataset.js';
import { loadDataset } from '../src/data/node.js';
import { ModelFileError } from '../src/io/errors.js';
import { savePytorchExport } from '../src/io/node-pytorch.js';
import { loadModelDir } from '../src/io/node-model-dir.js';
import { exportPytorch } from '../src/io/pytorch.js';
import { encodeSafetensors } from '../src/io/safetensors.js';
import { buildPreset, getPreset, type PresetOptions } from '../src/models/presets.js';
import { BatchNormBase } from '../src/nn/batchnorm.js';
import { buildSequential, type LayerSpec } from '../src/nn/registry.js';
import { Sequential } from '../src/nn/sequential.js';
import { setWarningHandler } from '../src/nn/warnings.js';
import { SGD } from '../src/optim/optimizer.js';
import { Rng } from '../src/tensor/rng.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Trainer } from '../src/train/trainer.js';
import { lastJson, requireTorch, runPython } from './support/pytorch.js';

const TOLERANCE = 1e-5;
/**
 * The CNN with batch norm on its raw MNIST input: a border pixel that is 0 in nearly every image has a
 * batch (and running) variance near 0, so that layer multiplies its rounding by up to 1/√eps ≈ 316 and
 * two correct implementations differ by more. Over model seeds 1-8 (six training steps, as below) the
 * largest difference was 1.4e-5 with the current wasm kernels and 3.9e-5 with the earlier ones (seed 3);
 * the other cases stay within 1e-5.
 */
const ILL_CONDITIONED_TOLERANCE = 5e-5;
const CHECK_SCRIPT = join(import.meta.dirname, 'python', 'check_export.py');
let dir: string;
let restoreWarnings: ReturnType<typeof setWarningHandler>;
before(() => {
  requireTorch();
  dir = mkdtempSync(join(tmpdir(), 'bnlab-pytorch-export-'));
  restoreWarnings = setWarningHandler(() => {});
});
after(() => {
  setWarningHandler(restoreWarnings);
  rmSync(dir, { recursive: true, force: true });
});

function train(model: Sequential, trainSet: Dataset, inputShape: readonly number[], steps: number, lr: number): void {
  new Trainer({ model, optimizer: new SGD(model.parameters(), { lr }), trainSet, batchSize: 32, steps, evalEvery: 0, logEvery: steps, inputShape, seed: 3 }).run();
}

/** check.safetensors: a batch and bnlab's logits for it in eval mode and (unless skipped) in train mode. */
function writeCheck(exportDir: string, model: Sequential, input: Float32Array, inputShape: readonly number[], withTrain: boolean): void {
  const n = input.length / inputShape.reduce((a, b) => a * b, 1);
  const x = new Tensor([n, ...inputShape], input);
  const evalLogits = model.eval().forward(x).data.slice();
  const tensors = [
    { name: 'input', dtype: 'F32' as const, shape: x.shape, data: input },
    { name: 'bnlab_eval', dtype: 'F32' as const, shape: [n, evalLogits.length / n], data: evalLogits },
  ];
  if (withTrain) {
    const trainLogits = model.train().forward(x).data.slice(); // batch statistics; updates the running averages, after the export
    tensors.push({ name: 'bnlab_train', dtype: 'F32', shape: [n, trainLogits.length / n], data: trainLogits });
  }
  model.eval();
  writeFileSync(join(exportDir, 'check.safetensors'), encodeSafetensors(tensors));
}

const PRESET_CASES: Array<{ name: string; preset: string; options: PresetOptions; lr: number }> = [
  { name: 'ioffe-mlp-bn', preset: 'ioffe-mlp', options: { bn: true }, lr: 1 },
  { name: 'ioffe-mlp-nobn', preset: 'ioffe-mlp', options: { bn: false }, lr: 1 },
  { name: 'ioffe-mlp-input-bn-after', preset: 'ioffe-mlp', options: { bn: true, inputBn: true, bnPlacement: 'after' }, lr: 1 },
  { name: 'mlp-relu-bn', preset: 'mlp-relu', options: { bn: true }, lr: 0.1 },
  { name: 'mnist-cnn-bn', preset: 'mnist-cnn', options: { bn: true }, lr: 0.02 },
  { name: 'mnist-cnn-input-bn-after', preset: 'mnist-cnn', options: { bn: true, inputBn: true, bnPlacement: 'after' }, lr: 0.02 },
];

/** Every layer type the export maps, with the batch-norm options PyTorch has (and the frozen mode), on [3, 10, 10] inputs. */
const ZOO: LayerSpec[] = [
  { type: 'BatchNorm2d', numFeatures: 3, momentum: null }, // cumulative average; frozen after training below
  { type: 'Conv2d', inChannels: 3, outChannels: 4, kernelSize: 3, stride: 2, padding: 1 }, // -> [4, 5, 5]
  { type: 'GroupNorm', numGroups: 2, numChannels: 4, eps: 1e-4 },
  { type: 'Tanh' },
  { type: 'AvgPool2d', kernelSize: 3, stride: 1, padding: 1 }, // -> [4, 5, 5]
  { type: 'Conv2d', inChannels: 4, outChannels: 6, kernelSize: [3, 2], bias: false }, // -> [6, 3, 4]
  { type: 'BatchNorm2d', numFeatures: 6, affine: false, eps: 1e-3, momentum: 0.3 },
  { type: 'ReLU' },
  { type: 'MaxPool2d', kernelSize: 2 }, // -> [6, 1, 2]
  { type: 'Flatten' },
  { type: 'Linear', inFeatures: 12, outFeatures: 20 },
  { type: 'LayerNorm', normalizedShape: 20, bias: false },
  { type: 'Dropout', p: 0.2 },
  { type: 'Sigmoid' },
  { type: 'BatchNorm1d', numFeatures: 20, trackRunningStats: false },
  { type: 'Linear', inFeatures: 20, outFeatures: 8 },
  { type: 'BatchNorm1d', numFeatures: 8, virtualBatchSize: 8 },
  { type: 'ReLU' },
  { type: 'Linear', inFeatures: 8, outFeatures: 5 },
];

test('exported presets and a model of every layer type give bnlab\'s outputs in PyTorch within 1e-5 (5e-5 for input batch norm on raw pixels)', { timeout: 300_000 }, async () => {
  const mnistTrain = takeFirst(loadDataset('mnist', 'train'), 640);
  const mnistTest = loadDataset('mnist', 'test');
  const dirs: string[] = [];
  for (const c of PRESET_CASES) {
    const model = buildPreset(c.preset, { ...c.options, seed: 7 });
    const inputShape = getPreset(c.preset).inputShape;
    train(model, mnistTrain, inputShape, 6, c.lr);
    const out = join(dir, c.name);
    savePytorchExport(out, model, { inputShape, preset: c.preset, classNames: mnistTest.classNames, dataset: 'mnist' });
    writeCheck(out, model, mnistTest.images.slice(100 * 784, 124 * 784), inputShape, true);
    dirs.push(out);
  }

  const rng = new Rng(11);
  const zooShape = [3, 10, 10];
  const images = new Float32Array(96 * 300).map(() => rng.normal() * 2 + 0.5);
  const zooData: Dataset = { name: 'random', images, labels: Uint8Array.from({ length: 96 }, () => rng.nextUint32() % 5), count: 96, sampleShape: zooShape, numClasses: 5 };
  const zoo = buildSequential(ZOO, { rng: new Rng(5) });
  train(zoo, zooData, zooShape, 5, 0.05);
  (zoo.layers[0] as BatchNormBase).statistics = 'running'; // frozen batch norm
  const zooDir = join(dir, 'zoo');
  const exported = savePytorchExport(zooDir, zoo, { inputShape: zooShape });
  assert.match(exported.notes.join('\n'), /ghost batches of 8/);
  const modelPy = readFileSync(join(zooDir, 'model.py'), 'utf8');
  assert.match(modelPy, /nn\.BatchNorm2d\(3, eps=1e-05, momentum=None\)/);
  assert.match(modelPy, /nn\.BatchNorm2d\(6, eps=0\.001, momentum=0\.3, affine=False\)/);
  assert.match(modelPy, /nn\.BatchNorm1d\(20, eps=1e-05, momentum=0\.1, track_running_stats=False\)/);
  assert.match(modelPy, /nn\.Conv2d\(4, 6, kernel_size=\(3, 2\), bias=False\)/);
  assert.match(modelPy, /self\[11\]\.register_parameter\("bias", None\)/);
  writeCheck(zooDir, zoo, new Float32Array(16 * 300).map(() => rng.normal()), zooShape, false); // dropout: eval only
  dirs.push(zooDir);

  const run = await runPython([CHECK_SCRIPT, ...dirs], { timeoutMs: 240_000 });
  assert.equal(run.code, 0, run.stderr);
  const results = lastJson(run.stdout) as Record<string, { eval: number; train?: number; frozen: number[] }>;
  const report = Object.entries(results).map(([d, r]) => `${d.split('/').pop()}: eval ${r.eval.toExponential(2)}${r.train === undefined ? '' : `, train ${r.train.toExponential(2)}`}`);
  console.log(`max |PyTorch - bnlab| per case:\n  ${report.join('\n  ')}`);
  for (const d of dirs) {
    const r = results[d];
    const tolerance = d.endsWith('mnist-cnn-input-bn-after') ? ILL_CONDITIONED_TOLERANCE : TOLERANCE;
    assert.ok(r.eval <= tolerance, `${d}: eval outputs differ by ${r.eval}`);
    if (r.train !== undefined) assert.ok(r.train <= tolerance, `${d}: train-mode outputs differ by ${r.train}`);
  }
  assert.deepEqual(results[zooDir].frozen, [0], 'the frozen batch norm stays in eval mode under model.train()');
});

test('the export directory is a bnlab model directory too: model.json reads the statistics as PyTorch does', () => {
  const model = buildPreset('ioffe-mlp', { seed: 2 });
  train(model, takeFirst(loadDataset('mnist', 'train'), 320), [784], 4, 1);
  const out = join(dir, 'as-bnlab');
  savePytorchExport(out, model, { inputShape: [784], preset: 'ioffe-mlp', dataset: 'mnist' });
  const loaded = loadModelDir(out);
  assert.equal(loaded.json.batchNorm.biasCorrection, false);
  const x = new Tensor([8, 784], loadDataset('mnist', 'test').images.slice(0, 8 * 784));
  const expected = model.eval().forward(x).data.slice();
  const actual = loaded.model.forward(x).data;
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(expected[i] - actual[i]) < 1e-5, `logit ${i}: ${actual[i]} vs ${expected[i]}`);
  assert.throws(() => savePytorchExport(out, model, { inputShape: [784] }), /already exists.*--overwrite/);
});

test('example.py runs from another directory and reports the difference from bnlab', { timeout: 120_000 }, async () => {
  const model = buildPreset('mnist-cnn', { seed: 4 });
  train(model, takeFirst(loadDataset('mnist', 'train'), 320), [1, 28, 28], 3, 0.02);
  const out = join(dir, 'example');
  savePytorchExport(out, model, { inputShape: [1, 28, 28], preset: 'mnist-cnn', classNames: loadDataset('mnist', 'test').classNames, dataset: 'mnist' });
  const run = await runPython([join(out, 'example.py')], { cwd: tmpdir() });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^example 0: predicted \d \(\d+\.\d%\), label 7$/m);
  assert.match(run.stdout, /^\d of 8 correct$/m);
  const difference = Number(/largest difference from bnlab's logits: (\S+)/.exec(run.stdout)![1]);
  assert.ok(difference <= TOLERANCE, run.stdout);
});

test('layers and modes PyTorch cannot express are refused, naming the layer', () => {
  const model = buildSequential([{ type: 'Linear', inFeatures: 4, outFeatures: 3 }, { type: 'BatchNorm1d', numFeatures: 3, statistics: 'batch-frozen' }], { rng: new Rng(1) });
  const example = { input: new Float32Array(8), count: 2, logits: new Float32Array(6), note: 'test' };
  assert.throws(() => exportPytorch(model, { inputShape: [4], example }), (e: unknown) => e instanceof ModelFileError && e.defect === 'not exportable' && /layer 1 \(BatchNorm1d\(3.*statistics 'batch-frozen'/.test(e.message));
  const nested = new Sequential(new Sequential(...buildSequential([{ type: 'Linear', inFeatures: 4, outFeatures: 3 }], { rng: new Rng(1) }).layers));
  assert.throws(() => exportPytorch(nested, { inputShape: [4], example }), /layer 0 is a nested Sequential/);
  assert.throws(() => exportPytorch(buildSequential([{ type: 'Linear', inFeatures: 4, outFeatures: 3 }], { rng: new Rng(1) }), { inputShape: [5], example }), /does not take input \[5\]/);
});

test('a model trained on standardized CSV data standardizes raw inputs itself in PyTorch, as bnlab predict does', { timeout: 180_000 }, async () => {
  const { bnlab, ROOT } = await import('./support/cli.js');
  const run = join(dir, 'csv-standardized');
  const exported = join(dir, 'csv-standardized-pytorch');
  const trained = await bnlab(['train', '--data', join(ROOT, 'examples/machines.csv'), '--test-fraction', '0.2', '--standardize', '--model', 'mlp', '--hidden', '16', '--steps', '60', '--eval-every', '0', '--out', run]);
  assert.equal(trained.code, 0, trained.stderr);
  const exportRun = await bnlab(['export', '--model', run, '--pytorch', exported]);
  assert.equal(exportRun.code, 0, exportRun.stderr);
  const modelPy = readFileSync(join(exported, 'model.py'), 'utf8');
  assert.match(modelPy, /register_buffer\("input_mean", .*persistent=False\)/s);
  assert.match(modelPy, /return super\(\)\.forward\(\(x - self\.input_mean\) \/ self\.input_std\)/);
  assert.match(modelPy, /the CSV columns temperature_c,\s+pressure_pa,[^"]*raw:\s+the\s+model\s+standardizes\s+them/);
  const example = await runPython(['example.py'], { cwd: exported });
  assert.equal(example.code, 0, example.stderr);
  const diff = Number(/largest difference from bnlab's logits: (\S+)/.exec(example.stdout)?.[1]);
  assert.ok(diff < TOLERANCE, `PyTorch vs bnlab on raw CSV-scale inputs: ${diff}`);
  // The export's model.json keeps the preprocessing, so the directory works as a bnlab model too.
  assert.ok(JSON.parse(readFileSync(join(exported, 'model.json'), 'utf8')).preprocessing.standardize);
});

test('an mlp standardized per channel on flattened images (the paper network on MNIST) repeats each channel statistic over its pixels in PyTorch', { timeout: 180_000 }, async () => {
  const { bnlab } = await import('./support/cli.js');
  const run = join(dir, 'mnist-standardized');
  const exported = join(dir, 'mnist-standardized-pytorch');
  const trained = await bnlab(['train', '--model', 'ioffe-mlp', '--standardize', '--train-limit', '2000', '--test-limit', '200', '--steps', '200', '--eval-every', '0', '--out', run]);
  assert.equal(trained.code, 0, trained.stderr);
  const exportRun = await bnlab(['export', '--model', run, '--pytorch', exported]);
  assert.equal(exportRun.code, 0, exportRun.stderr);
  assert.match(readFileSync(join(exported, 'model.py'), 'utf8'), /register_buffer\("input_mean", torch\.tensor\(\[[^\]]+\]\)\.repeat_interleave\(784\), persistent=False\)/);
  const example = await runPython(['example.py'], { cwd: exported });
  assert.equal(example.code, 0, example.stderr);
  const diff = Number(/largest difference from bnlab's logits: (\S+)/.exec(example.stdout)?.[1]);
  assert.ok(diff < TOLERANCE, `PyTorch vs bnlab on raw MNIST images: ${diff}`);
});
