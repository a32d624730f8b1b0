/**
 * Where batch norm goes: before the activation (the paper's and the default), after it, and on the
 * input features, in the presets and from the command line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Rng, buildPreset, layerSpec } from '../src/index.js';
import { randomTensor } from './support/gradcheck.js';

const types = (name: string, o: Parameters<typeof buildPreset>[1]) => buildPreset(name, o).layers.map((l) => l.typeName);

test('ioffe-mlp: BN before each sigmoid by default, after it on request, and on the input', () => {
  assert.deepEqual(types('ioffe-mlp', { bn: true }).slice(0, 4), ['Linear', 'BatchNorm1d', 'Sigmoid', 'Linear']);
  assert.deepEqual(types('ioffe-mlp', { bn: true, bnPlacement: 'after' }).slice(0, 4), ['Linear', 'Sigmoid', 'BatchNorm1d', 'Linear']);
  assert.deepEqual(types('ioffe-mlp', { bn: false, inputBn: true }), ['BatchNorm1d', 'Linear', 'Sigmoid', 'Linear', 'Sigmoid', 'Linear', 'Sigmoid', 'Linear']);
  assert.equal(types('ioffe-mlp', { bn: true, inputBn: true }).filter((t) => t === 'BatchNorm1d').length, 4);
  assert.throws(() => buildPreset('ioffe-mlp', { bnPlacement: 'sideways' as never }), /bnPlacement must be 'before' or 'after'/);
});

test('mnist-cnn: conv bias only where no BN follows directly; input BN is BatchNorm2d over the channel', () => {
  const before = buildPreset('mnist-cnn', { bn: true });
  assert.equal(layerSpec(before.layers[0]).bias, false);
  assert.deepEqual(before.layers.slice(0, 4).map((l) => l.typeName), ['Conv2d', 'BatchNorm2d', 'ReLU', 'MaxPool2d']);
  const after = buildPreset('mnist-cnn', { bn: true, bnPlacement: 'after', inputBn: true });
  assert.deepEqual(after.layers.slice(0, 5).map((l) => l.typeName), ['BatchNorm2d', 'Conv2d', 'ReLU', 'BatchNorm2d', 'MaxPool2d']);
  assert.equal(layerSpec(after.layers[1]).bias, true);
  const y = after.forward(randomTensor([2, 1, 28, 28], new Rng(1)));
  assert.deepEqual(y.shape, [2, 10]);
});

test('bnlab summary and train accept --bn-placement and --input-bn', () => {
  const cli = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
  const out = execFileSync(process.execPath, [cli, 'summary', '--model', 'ioffe-mlp', '--bn-placement', 'after', '--input-bn'], { encoding: 'utf8' });
  assert.match(out, /0 +BatchNorm1d\(784/);
  assert.match(out, /2 +Sigmoid[\s\S]*3 +BatchNorm1d\(100/);
  assert.throws(() => execFileSync(process.execPath, [cli, 'train', '--bn-placement', 'sideways'], { encoding: 'utf8', stdio: 'pipe' }), /Allowed choices are before, after/);
});

test('a preset brings the SGD momentum its learning rate was tuned with (mnist-cnn: lr 0.02, momentum 0.9)', async () => {
  const { mkdtempSync, readFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const cli = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
  const dir = join(mkdtempSync(join(tmpdir(), 'bnlab-cnn-')), 'run');
  execFileSync(process.execPath, [cli, 'train', '--model', 'mnist-cnn', '--steps', '2', '--batch', '8', '--train-limit', '64', '--test-limit', '16', '--eval-every', '0', '--out', dir], { encoding: 'utf8' });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.deepEqual(config.optimizer, { name: 'sgd', lr: 0.02, momentum: 0.9, weightDecay: 0, nesterov: false });
  const plain = join(dir, '..', 'mlp');
  execFileSync(process.execPath, [cli, 'train', '--model', 'ioffe-mlp', '--steps', '2', '--batch', '8', '--train-limit', '64', '--test-limit', '16', '--eval-every', '0', '--out', plain], { encoding: 'utf8' });
  assert.equal(JSON.parse(readFileSync(join(plain, 'config.json'), 'utf8')).optimizer.momentum, 0);
});
