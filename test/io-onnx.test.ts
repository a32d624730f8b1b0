/**
 * ONNX export, run in onnxruntime-node: the outputs equal bnlab's eval-mode outputs within 1e-4, with
 * batch norm as BatchNormalization nodes or folded into the layer before it, for an MLP and a CNN.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { applyStandardization, type Standardization } from '../src/data/preprocess.js';
import { ModelFileError } from '../src/io/errors.js';
import { exportOnnx } from '../src/io/onnx.js';
import { decodeModelProto } from '../src/io/onnx-schema.js';
import { BatchNormBase } from '../src/nn/batchnorm.js';
import { softmax } from '../src/nn/loss.js';
import { buildSequential, type LayerSpec } from '../src/nn/registry.js';
import type { Sequential } from '../src/nn/sequential.js';
import { setWarningHandler } from '../src/nn/warnings.js';
import { Rng } from '../src/tensor/rng.js';
import { Tensor } from '../src/tensor/tensor.js';
import { maxAbsDiff } from './support/assert.js';
import { randomTensor } from './support/gradcheck.js';

let restoreWarnings: ReturnType<typeof setWarningHandler>;
before(() => (restoreWarnings = setWarningHandler(() => {})));
after(() => setWarningHandler(restoreWarnings));


/** Batch-norm layers with trained-looking state: running statistics after a few batches, gamma/beta away from 1/0. */
function prepare(layers: LayerSpec[], inputShape: number[], seed: number): Sequential {
  const rng = new Rng(seed);
  const model = buildSequential(layers, { rng });
  for (const m of model.modules()) {
    if (m instanceof BatchNormBase && m.weight && m.bias) {
      for (let c = 0; c < m.numFeatures; c++) {
        m.weight.value.data[c] = 0.5 + rng.uniform();
        m.bias.value.data[c] = rng.normal(0, 0.3);
      }
    }
  }
  model.train();
  for (let i = 0; i < 3; i++) model.forward(randomTensor([16, ...inputShape], rng, 2));
  return model.eval();
}

async function runOnnx(bytes: Uint8Array, x: Tensor, output: string): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  const result = await session.run({ input: new ort.Tensor('float32', x.data, [...x.shape]) });
  return result[output].data as Float32Array;
}


function opTypes(bytes: Uint8Array): string[] {
  return decodeModelProto(bytes).graph!.node!.map((n) => n.opType!);
}

const MLP: LayerSpec[] = [
  { type: 'Linear', inFeatures: 20, outFeatures: 16 },
  { type: 'BatchNorm1d', numFeatures: 16 },
  { type: 'Sigmoid' },
  { type: 'Linear', inFeatures: 16, outFeatures: 12 },
  { type: 'BatchNorm1d', numFeatures: 12, biasCorrection: false },
  { type: 'Tanh' },
  { type: 'Dropout', p: 0.5 },
  { type: 'Linear', inFeatures: 12, outFeatures: 8, bias: false },
  { type: 'BatchNorm1d', numFeatures: 8, affine: false },
  { type: 'ReLU' },
  { type: 'Linear', inFeatures: 8, outFeatures: 5 },
];

const CNN: LayerSpec[] = [
  { type: 'Conv2d', inChannels: 1, outChannels: 4, kernelSize: 3, padding: 1 },
  { type: 'BatchNorm2d', numFeatures: 4 },
  { type: 'ReLU' },
  { type: 'MaxPool2d', kernelSize: 2 },
  { type: 'Conv2d', inChannels: 4, outChannels: 6, kernelSize: [3, 2], stride: [2, 1], padding: [1, 0], bias: false },
  { type: 'BatchNorm2d', numFeatures: 6 },
  { type: 'Tanh' },
  { type: 'AvgPool2d', kernelSize: 3, stride: 2, padding: 1 },
  { type: 'Flatten' },
  { type: 'Linear', inFeatures: 24, outFeatures: 10 },
  { type: 'BatchNorm1d', numFeatures: 10 },
  { type: 'Sigmoid' },
  { type: 'Linear', inFeatures: 10, outFeatures: 3 },
];

for (const [name, layers, inputShape] of [['MLP', MLP, [20]], ['CNN', CNN, [1, 10, 8]]] as const) {
  for (const foldBatchNorm of [false, true]) {
    test(`${name}${foldBatchNorm ? ' with batch norm folded' : ''}: onnxruntime's logits and probabilities equal bnlab's within 1e-4`, async (t) => {
      const model = prepare([...layers], [...inputShape], 11);
      const x = randomTensor([7, ...inputShape], new Rng(3), 2);
      const expected = model.forward(x).clone();
      const logitsGraph = exportOnnx(model, { inputShape: [...inputShape], foldBatchNorm });
      const ops = opTypes(logitsGraph);
      const bnCount = layers.filter((l) => l.type.startsWith('BatchNorm')).length;
      // Folding removes every BN that follows a Linear/Conv2d; the MLP's affine-free BN after a bias-free Linear folds too.
      assert.equal(ops.filter((op) => op === 'BatchNormalization').length, foldBatchNorm ? 0 : bnCount, ops.join(' '));
      assert.ok(!ops.includes('Dropout'));
      const logits = await runOnnx(logitsGraph, x, 'logits');
      assert.ok(maxAbsDiff(logits, expected.data) < 1e-4, `max diff ${maxAbsDiff(logits, expected.data)}`);

      const probabilities = await runOnnx(exportOnnx(model, { inputShape: [...inputShape], foldBatchNorm, softmax: true }), x, 'probabilities');
      assert.ok(maxAbsDiff(probabilities, softmax(expected).data) < 1e-4);
      t.diagnostic(`max |onnxruntime - bnlab|: logits ${maxAbsDiff(logits, expected.data).toExponential(2)}, probabilities ${maxAbsDiff(probabilities, softmax(expected).data).toExponential(2)}`);
      // The graph has a symbolic batch dimension: one sample works too (the case the running statistics are for).
      const one = new Tensor([1, ...inputShape], x.data.slice(0, x.size / 7));
      assert.ok(maxAbsDiff(await runOnnx(logitsGraph, one, 'logits'), expected.data.slice(0, expected.shape[1])) < 1e-4);
    });
  }
}

test('the exported graph uses the standard operators and opset 13', () => {
  const model = prepare([...CNN], [1, 10, 8], 1);
  const proto = decodeModelProto(exportOnnx(model, { inputShape: [1, 10, 8], softmax: true }));
  assert.equal(Number(proto.opsetImport![0].version), 13);
  assert.deepEqual(proto.graph!.node!.map((n) => n.opType), ['Conv', 'BatchNormalization', 'Relu', 'MaxPool', 'Conv', 'BatchNormalization', 'Tanh', 'AveragePool', 'Flatten', 'Gemm', 'BatchNormalization', 'Sigmoid', 'Gemm', 'Softmax']);
  assert.equal(proto.graph!.input![0].type!.tensorType!.shape!.dim![0].dimParam, 'batch');
});

test('a layer without an ONNX export, or batch norm on batch statistics in eval, is a clear error', () => {
  const layerNorm = buildSequential([{ type: 'Linear', inFeatures: 4, outFeatures: 4 }, { type: 'LayerNorm', normalizedShape: 4 }, { type: 'Linear', inFeatures: 4, outFeatures: 2 }], { rng: new Rng(0) });
  assert.throws(() => exportOnnx(layerNorm, { inputShape: [4], fileName: 'out.onnx' }), (e: unknown) => e instanceof ModelFileError && e.defect === 'not exportable' && /LayerNorm/.test(e.message) && e.message.startsWith('out.onnx'));
  const batchStats = buildSequential([{ type: 'Linear', inFeatures: 4, outFeatures: 4 }, { type: 'BatchNorm1d', numFeatures: 4, trackRunningStats: false }, { type: 'Linear', inFeatures: 4, outFeatures: 2 }], { rng: new Rng(0) });
  assert.throws(() => exportOnnx(batchStats, { inputShape: [4] }), (e: unknown) => e instanceof ModelFileError && /batch statistics/.test(e.message));
  assert.throws(() => exportOnnx(layerNorm, { inputShape: [5] }), (e: unknown) => e instanceof ModelFileError && /does not take input \[5\]/.test(e.message));
});

test("a model trained on standardized input: the graph takes raw values and standardizes them first, per feature and per channel", async () => {
  // Features of an [F] sample; channels of a [C, H, W] one; and the two channels of 10 values each of an
  // image flattened to [20] for an MLP (channel by channel).
  for (const [layers, inputShape, per, groups] of [[MLP, [20], 'feature', 20], [CNN, [1, 10, 8], 'channel', 1], [MLP, [20], 'channel', 2]] as const) {
    const model = prepare([...layers], [...inputShape], 5);
    const rng = new Rng(9);
    const standardize: Standardization = { per, mean: Array.from({ length: groups }, () => 1e3 * rng.normal()), std: Array.from({ length: groups }, () => 10 ** (4 * rng.uniform() - 2)) };
    const raw = randomTensor([6, ...inputShape], new Rng(4), 1);
    const size = inputShape.reduce((a: number, b: number) => a * b, 1);
    for (let i = 0; i < raw.size; i++) {
      const g = Math.floor((i % size) / (size / groups));
      raw.data[i] = raw.data[i] * standardize.std[g] + standardize.mean[g];
    }
    const expected = model.forward(new Tensor(raw.shape, applyStandardization(raw.data, inputShape, standardize))).clone();
    const graph = exportOnnx(model, { inputShape: [...inputShape], standardize });
    assert.deepEqual(opTypes(graph).slice(0, 2), ['Sub', 'Div']);
    const logits = await runOnnx(graph, raw, 'logits');
    assert.ok(maxAbsDiff(logits, expected.data) < 1e-3, `${per} over [${inputShape}]: max diff ${maxAbsDiff(logits, expected.data)}`);
  }
  assert.throws(() => exportOnnx(prepare([...MLP], [20], 5), { inputShape: [20], standardize: { per: 'feature', mean: [0, 0], std: [1, 1] } }), /standardization has 2 means and 2 stds per feature, but its input is \[20\]/);
});

test("where code generation from strings is forbidden (a page's Content-Security-Policy without 'unsafe-eval'), export says so and what to do", () => {
  // Node's --disallow-code-generation-from-strings makes `Function` throw EvalError, as such a page does.
  const script = `
    import { exportOnnx } from './src/io/onnx.ts';
    import { buildSequential } from './src/nn/registry.ts';
    import { Rng } from './src/tensor/rng.ts';
    const model = buildSequential([{ type: 'Linear', inFeatures: 2, outFeatures: 3 }], { rng: new Rng(1) });
    model.eval();
    try { exportOnnx(model, { inputShape: [2] }); console.log('exported'); } catch (e) { console.log(String(e)); }`;
  const run = spawnSync(process.execPath, ['--disallow-code-generation-from-strings', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: fileURLToPath(new URL('..', import.meta.url)), encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /Content-Security-Policy forbids .*'unsafe-eval'.*bnlab export --onnx/);
});
