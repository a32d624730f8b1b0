/**
 * `bnlab recalibrate`: population statistics for a trained model, written to a new directory; and the
 * errors for what cannot be recalibrated.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModelDir } from '../src/io/node-model-dir.js';
import { BatchNormBase } from '../src/index.js';

const cli = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('recalibrate replaces the running averages by population statistics and saves a new model', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bnlab-recal-'));
  const trained = join(dir, 'run');
  execFileSync(process.execPath, [cli, 'train', '--steps', '60', '--train-limit', '2000', '--test-limit', '500', '--eval-every', '0', '--out', trained], { encoding: 'utf8' });
  const out = join(dir, 'precise');
  const r = run(['recalibrate', '--model', trained, '--out', out, '--batches', '30']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Recomputed the running statistics of 3 batch-norm layers over 30 batches/);
  assert.match(r.stdout, /over 30 batches of 60 from the mnist training set \(2000 images\), in/);
  assert.match(r.stdout, /Test accuracy on the mnist test set \(the first 500 images, as the run's --test-limit\): [\d.]+% with the running averages, [\d.]+% with population statistics/);
  const before = loadModelDir(trained).model;
  const after = loadModelDir(out).model;
  const bnBefore = [...before.modules()].filter((m): m is BatchNormBase => m instanceof BatchNormBase);
  const bnAfter = [...after.modules()].filter((m): m is BatchNormBase => m instanceof BatchNormBase);
  assert.equal(bnAfter.length, 3);
  const a = bnBefore[0].inferenceStatistics().mean;
  const b = bnAfter[0].inferenceStatistics().mean;
  assert.ok(a.some((v, i) => Math.abs(v - b[i]) > 1e-6), 'the statistics changed');
  assert.deepEqual(Array.from(before.stateDict().get('0.weight')!.data), Array.from(after.stateDict().get('0.weight')!.data), 'the weights did not');

  assert.match(run(['recalibrate', '--model', trained, '--out', out]).stderr, /exists and is not empty/);
  assert.match(run(['recalibrate', '--model', trained]).stderr, /exactly one of --out DIR .* or --in-place/);
  assert.match(run(['recalibrate', '--model', 'ioffe-mlp', '--out', join(dir, 'x')]).stderr, /is a preset, not a trained model directory/);
  const noBn = join(dir, 'nobn');
  execFileSync(process.execPath, [cli, 'train', '--no-bn', '--steps', '5', '--train-limit', '600', '--test-limit', '100', '--eval-every', '0', '--out', noBn], { encoding: 'utf8' });
  assert.match(run(['recalibrate', '--model', noBn, '--in-place']).stderr, /no batch-norm layers with running statistics/);
});

test("recalibrate on a run trained on the user's own CSV uses that run's training data and keeps its standardization", () => {
  const dir = mkdtempSync(join(tmpdir(), 'bnlab-recal-csv-'));
  const csv = fileURLToPath(new URL('../examples/machines.csv', import.meta.url));
  const trained = join(dir, 'run');
  execFileSync(process.execPath, [cli, 'train', '--data', csv, '--model', 'mlp', '--hidden', '16', '--standardize', '--steps', '60', '--batch', '30', '--eval-every', '0', '--out', trained], { encoding: 'utf8' });
  const out = join(dir, 'precise');
  const r = run(['recalibrate', '--model', trained, '--out', out, '--batches', '20', '--batch', '30']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /over 20 batches of 30 from the run's training data from .*machines\.csv \(720 samples\), in/);
  // More batches than the data holds: the line says they are passes over the same samples.
  const again = run(['recalibrate', '--model', trained, '--out', join(dir, 'passes'), '--batches', '60', '--batch', '30']);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /over 60 batches of 30 from .*\(720 samples\) \(2\.5 passes over its 24 batches, reshuffled each time\), in/);
  assert.match(r.stdout, /Test accuracy on the run's test split of .*machines\.csv \(180 samples: 0\.2 of each class, seed \d+\): [\d.]+% with the running averages/);
  const saved = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
  assert.ok(saved.preprocessing?.standardize, 'the recalibrated model still standardizes its input');
  // evaluate finds the same test split for the new model (config.json went along), with the accuracy recalibrate printed.
  const ev = run(['evaluate', '--model', out, '--json']);
  assert.equal(ev.status, 0, ev.stderr);
  const printed = Number(/([\d.]+)% with population statistics/.exec(r.stdout)![1]);
  assert.equal((JSON.parse(ev.stdout).accuracy * 100).toFixed(2), printed.toFixed(2));
  // A bundled dataset is not made for a standardized CSV model; a batch of one has no statistics.
  assert.match(run(['recalibrate', '--model', trained, '--out', join(dir, 'x'), '--dataset', 'mnist']).stderr, /standardizes its input.*--data PATH/);
  assert.match(run(['recalibrate', '--model', trained, '--out', join(dir, 'y'), '--batch', '1']).stderr, /a batch of one has no batch statistics/);
  // --data: statistics from the rows given, read through the model's standardization.
  const more = run(['recalibrate', '--model', trained, '--out', join(dir, 'z'), '--data', csv, '--batches', '5', '--batch', '30']);
  assert.equal(more.status, 0, more.stderr);
  assert.match(more.stdout, /from .*machines\.csv \(900 samples\)/);
});
