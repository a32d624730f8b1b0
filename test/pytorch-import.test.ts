/**
 * `bnlab import --pytorch`: state dicts saved by PyTorch itself (/usr/bin/python3, test/python/
 * make_state_dicts.py) become bnlab model directories whose eval outputs equal PyTorch's within 1e-5;
 * files that do not fit get errors naming the tensor, the expected and the actual shape.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadModelDir } from '../src/io/node-model-dir.js';
import { parseSafetensors, readFloat32 } from '../src/io/safetensors.js';
import { BatchNormBase } from '../src/nn/batchnorm.js';
import { setWarningHandler } from '../src/nn/warnings.js';
import { Tensor } from '../src/tensor/tensor.js';
import { bnlab } from './support/cli.js';
import { requireTorch, runPython } from './support/pytorch.js';

let dir: string;
let restoreWarnings: ReturnType<typeof setWarningHandler>;
before(async () => {
  requireTorch();
  restoreWarnings = setWarningHandler(() => {});
  dir = mkdtempSync(join(tmpdir(), 'bnlab-pytorch-import-'));
  const made = await runPython([join(import.meta.dirname, 'python', 'make_state_dicts.py'), dir], { timeoutMs: 120_000 });
  assert.equal(made.code, 0, made.stderr);
});
after(() => {
  setWarningHandler(restoreWarnings);
  rmSync(dir, { recursive: true, force: true });
});

/** Max |bnlab - PyTorch| over the eval logits of the batch in NAME.check.safetensors. */
function difference(modelDir: string, name: string): number {
  const check = parseSafetensors(new Uint8Array(readFileSync(join(dir, `${name}.check.safetensors`))), name);
  const input = check.entries.get('input')!;
  const expected = readFloat32(check, 'logits');
  const { model } = loadModelDir(modelDir);
  const actual = model.forward(new Tensor(input.shape, readFloat32(check, 'input'))).data;
  let max = 0;
  for (let i = 0; i < expected.length; i++) max = Math.max(max, Math.abs(actual[i] - expected[i]));
  return max;
}

test('a PyTorch-trained ioffe-mlp and mnist-cnn (BN after ReLU) import with PyTorch\'s eval outputs', { timeout: 120_000 }, async () => {
  const ioffe = join(dir, 'run-ioffe');
  let r = await bnlab(['import', '--pytorch', join(dir, 'ioffe.safetensors'), '--arch', 'ioffe-mlp', '--out', ioffe]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Imported .*ioffe\.safetensors \(23 tensors\) as ioffe-mlp/);
  const cnn = join(dir, 'run-cnn');
  r = await bnlab(['import', '--pytorch', join(dir, 'cnn-after.safetensors'), '--arch', 'mnist-cnn', '--bn-placement', 'after', '--out', cnn]);
  assert.equal(r.code, 0, r.stderr);
  const dIoffe = difference(ioffe, 'ioffe');
  const dCnn = difference(cnn, 'cnn-after');
  console.log(`max |bnlab - PyTorch| after import: ioffe-mlp ${dIoffe.toExponential(2)}, mnist-cnn (BN after) ${dCnn.toExponential(2)}`);
  assert.ok(dIoffe <= 1e-5, `ioffe-mlp: ${dIoffe}`);
  assert.ok(dCnn <= 1e-5, `mnist-cnn: ${dCnn}`);

  const { model, json } = loadModelDir(ioffe);
  assert.equal(json.batchNorm.biasCorrection, false);
  assert.equal(json.preset, 'ioffe-mlp');
  const bn = [...model.modules()].find((m): m is BatchNormBase => m instanceof BatchNormBase)!;
  assert.equal(bn.numBatchesTracked, 5, "PyTorch's batch count");
  assert.equal(bn.biasCorrection, false);

  // The same file into a model.json architecture (here: the one just written), and predict on it.
  r = await bnlab(['import', '--pytorch', join(dir, 'ioffe.safetensors'), '--arch', join(ioffe, 'model.json'), '--out', join(dir, 'run-ioffe-2')]);
  assert.equal(r.code, 0, r.stderr);
  r = await bnlab(['predict', '--model', join(dir, 'run-ioffe-2'), '--mnist-test', '0', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).label, 7);
});

test('state dicts that do not fit the architecture name the tensors and shapes; nothing is written', { timeout: 120_000 }, async () => {
  const out = join(dir, 'never');
  let r = await bnlab(['import', '--pytorch', join(dir, 'ioffe.safetensors'), '--arch', 'ioffe-mlp', '--no-bn', '--out', out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /shape mismatch: the state dict does not fit the architecture/);
  assert.match(r.stderr, /"4\.weight" is \[100\], the architecture needs \[100, 100\]/);
  assert.match(r.stderr, /missing: "2\.weight" \[100, 100\]/);
  assert.match(r.stderr, /not in the architecture: "1\.weight" \[100\]/);
  assert.match(r.stderr, /--bn\/--no-bn, --bn-placement, --input-bn/);

  r = await bnlab(['import', '--pytorch', join(dir, 'ioffe-ddp.safetensors'), '--arch', 'ioffe-mlp', '--out', out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /"module\.…".*DistributedDataParallel.*model\.module\.state_dict\(\)/);

  r = await bnlab(['import', '--pytorch', join(dir, 'ioffe.pt'), '--arch', 'ioffe-mlp', '--out', out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /torch\.save\(\) file .* not safetensors.*save_safetensors/);

  r = await bnlab(['import', '--pytorch', join(dir, 'ioffe-no-count.safetensors'), '--arch', 'ioffe-mlp', '--out', out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /missing tensor: no "1\.num_batches_tracked", "4\.num_batches_tracked", "7\.num_batches_tracked"/);
  assert.match(r.stderr, /README "Pitfalls"/);
  assert.match(r.stderr, /--assume-batches N/);
  assert.equal(existsSync(out), false, 'nothing written');

  r = await bnlab(['import', '--pytorch', join(dir, 'ioffe-no-count.safetensors'), '--arch', 'ioffe-mlp', '--assume-batches', '1000', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /set to 1000 \(--assume-batches\)/);
  assert.ok(difference(out, 'ioffe') <= 1e-5, 'the batch count does not change eval outputs');

  // An existing directory is left alone.
  const taken = join(dir, 'taken');
  mkdirSync(taken);
  writeFileSync(join(taken, 'keep.txt'), 'mine');
  r = await bnlab(['import', '--pytorch', join(dir, 'ioffe.safetensors'), '--arch', 'ioffe-mlp', '--out', taken]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /already exists.*--overwrite/);
  assert.equal(readFileSync(join(taken, 'keep.txt'), 'utf8'), 'mine');
});
