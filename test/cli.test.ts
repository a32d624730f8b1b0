/**
 * The built `bnlab` command (dist/src/cli/main.js; `npm test` builds first): argument errors, help,
 * summary, and small real training runs that write config.json and metrics.jsonl.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI, bnlab, type CliResult as Result } from './support/cli.js';

const FORMULA = 'running = (1 - m)·running + m·batch (PyTorch convention); Keras/TensorFlow momentum = 1 - m';
let tmp: string;

async function fails(args: string[], pattern: RegExp): Promise<Result> {
  const r = await bnlab(args);
  assert.notEqual(r.code, 0, `bnlab ${args.join(' ')} should fail; stdout: ${r.stdout}`);
  assert.match(r.stderr, pattern);
  return r;
}

before(() => {
  assert.ok(existsSync(CLI), `${CLI} is missing: run npm run build first (npm test does)`);
  tmp = mkdtempSync(join(tmpdir(), 'bnlab-cli-test-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('bnlab arguments', () => {
  test('--help lists the commands with examples', async () => {
    const r = await bnlab(['--help']);
    assert.equal(r.code, 0);
    for (const cmd of ['start', 'train', 'summary']) assert.match(r.stdout, new RegExp(`^  ${cmd} `, 'm'));
    assert.match(r.stdout, /Examples:/);
  });

  test('train --help writes out the momentum convention as a formula', async () => {
    const r = await bnlab(['train', '--help']);
    assert.equal(r.code, 0);
    assert.ok(r.stdout.includes(FORMULA), r.stdout);
    assert.match(r.stdout, /--bn-momentum <m>/);
    assert.match(r.stdout, /--no-bias-correction/);
    assert.match(r.stdout, /\$ bnlab train --model ioffe-mlp --bn --steps 10000 --batch 60/);
  });

  test('summary --help and start --help work', async () => {
    for (const cmd of ['summary', 'start']) {
      const r = await bnlab([cmd, '--help']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`Usage: bnlab ${cmd}`));
    }
  });

  test('unknown command and unknown option', async () => {
    await Promise.all([
      fails(['trian'], /unknown command 'trian'[\s\S]*Did you mean train\?/),
      fails(['train', '--bogus'], /unknown option '--bogus'/),
      fails(['train', '--step', '10'], /unknown option '--step'[\s\S]*Did you mean --steps\?/),
    ]);
  });

  test('unknown dataset and model list the choices', async () => {
    await Promise.all([
      fails(['train', '--dataset', 'cifar10'], /'--dataset <name>' argument 'cifar10' is invalid\. Allowed choices are mnist, fashion-mnist/),
      fails(['train', '--model', 'resnet'], /'--model <name>' argument 'resnet' is invalid\. Allowed choices are ioffe-mlp, /),
      fails(['summary', '--model', 'resnet'], /Allowed choices are ioffe-mlp/),
      fails(['summary'], /required option '--model <name>' not specified/),
    ]);
  });

  test('bad values are rejected with the option and the reason', async () => {
    // Independent processes: run them side by side.
    await Promise.all([
      fails(['train', '--steps', 'abc'], /option '--steps <n>' argument 'abc' is invalid\. Expected a number/),
      fails(['train', '--steps', '1.5'], /'--steps <n>' argument '1\.5' is invalid\. Expected a positive integer/),
      fails(['train', '--lr', '-1'], /option '--lr <x>' argument '-1' is invalid\. Expected a number greater than 0/),
      fails(['train', '--lr', 'NaN'], /'--lr <x>' argument 'NaN' is invalid/),
      fails(['train', '--batch', '0'], /option '--batch <n>' argument '0' is invalid\. Expected a positive integer/),
      fails(['train', '--bn-momentum', '0'], /'--bn-momentum <m>' argument '0' is invalid\. Expected a number in \(0, 1\]/),
      fails(['train', '--momentum', '1'], /'--momentum <m>' argument '1' is invalid/),
      fails(['train', '--seed', '-3'], /'--seed <s>' argument '-3' is invalid/),
      fails(['train', '--steps'], /option '--steps <n>' argument missing/),
      fails(['train', '--steps', '10', '--epochs', '1'], /'--steps <n>' cannot be used with option '--epochs <e>'/),
    ]);
  });

  test('option combinations that make no sense', async () => {
    await fails(['train', '--optimizer', 'adam', '--momentum', '0.9'], /--momentum and --nesterov are SGD options/);
    await fails(['train', '--nesterov'], /--nesterov needs SGD momentum/);
    await fails(['train', '--backend', 'nope', '--steps', '1', '--out', join(tmp, 'nope')], /Unknown backend "nope"\. Available: (.*, )?ts\b/);
    assert.equal(existsSync(join(tmp, 'nope')), false, 'no run directory for a run that never started');
  });
});

describe('bnlab summary', () => {
  test('ioffe-mlp with batch norm', async () => {
    const r = await bnlab(['summary', '--model', 'ioffe-mlp']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((r.stdout.match(/BatchNorm1d\(100, eps=0\.00001, momentum=0\.1\)/g) ?? []).length, 3);
    assert.match(r.stdout, /running stats: never updated/);
    assert.match(r.stdout, /Total params: 100,910/);
    assert.match(r.stdout, /Trainable params: 100,310/);
    assert.match(r.stdout, /Non-trainable params: 600/);
    assert.match(r.stdout, /mode: train/);
  });

  test('ioffe-mlp without batch norm, in eval mode', async () => {
    const r = await bnlab(['summary', '--model', 'ioffe-mlp', '--no-bn', '--eval']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /BatchNorm/);
    assert.match(r.stdout, /Linear\(784, 100\)[\s\S]*Sigmoid[\s\S]*Linear\(100, 10\)/);
    assert.match(r.stdout, /Total params: 99,710/);
    assert.match(r.stdout, /mode: eval/);
  });
});

describe('bnlab train', () => {
  let runDir: string;

  test('a tiny real run writes config.json and metrics.jsonl', async () => {
    runDir = join(tmp, 'tiny');
    const r = await bnlab(['train', '--dataset', 'mnist', '--model', 'ioffe-mlp', '--bn', '--steps', '50', '--batch', '32', '--eval-every', '25', '--test-limit', '2000', '--out', runDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Test accuracy after 50 steps: \d+\.\d\d%/);
    // Not a TTY here: plain progress lines with step, loss, accuracy and speed.
    assert.match(r.stdout, /step 50\/50 {2}loss \d\.\d{4} {2}test acc \d+\.\d\d% {2}\d+\.\d steps\/s/);

    const config = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'));
    assert.equal(config.format, 'bnlab-run/1');
    assert.equal(config.steps, 50);
    assert.equal(config.totalSteps, 50);
    assert.equal(config.batchSize, 32);
    assert.equal(config.evalEvery, 25);
    assert.deepEqual(config.optimizer, { name: 'sgd', lr: 1, momentum: 0, weightDecay: 0, nesterov: false });
    assert.deepEqual(config.batchNorm, { momentum: 0.1, eps: 1e-5, biasCorrection: true });
    assert.deepEqual(config.init, { name: 'normal', std: 0.01 });
    assert.equal(config.data.trainCount, 60000);
    assert.equal(config.data.testCount, 2000);
    assert.equal(config.seed, 1);
    assert.equal(config.backend, 'auto', 'the fastest backend is the default');
    assert.match(config.backendUsed, /^(wasm|ts)$/);
    assert.deepEqual(config.modelSpec.layers.map((l: { type: string }) => l.type), ['Linear', 'BatchNorm1d', 'Sigmoid', 'Linear', 'BatchNorm1d', 'Sigmoid', 'Linear', 'BatchNorm1d', 'Sigmoid', 'Linear']);
    assert.equal(config.modelSpec.parameters, 100310);
    assert.match(config.versions.bnlab, /^\d+\.\d+\.\d+/);
    assert.equal(config.versions.node, process.versions.node);

    const lines = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trimEnd().split('\n');
    const metrics = lines.map((l) => JSON.parse(l));
    const tests = metrics.filter((m) => m.split === 'test');
    assert.deepEqual(tests.map((m) => m.step), [25, 50]);
    for (const m of tests) assert.ok(m.accuracy > 0 && m.accuracy <= 1 && Number.isFinite(m.loss));
    // Measured 0.61 after 50 steps; chance is 0.1.
    assert.ok(tests[1].accuracy > 0.3, `test accuracy ${tests[1].accuracy}`);
    assert.ok(metrics.some((m) => m.split === 'train' && m.step === 50));
  });

  test('--threads 2 trains each batch on both threads and reaches what one thread reaches', async () => {
    const args = ['train', '--model', 'ioffe-mlp', '--bn', '--steps', '200', '--batch', '60', '--eval-every', '0', '--train-limit', '6000', '--test-limit', '1000', '--backend', 'wasm'];
    const one = await bnlab([...args, '--out', join(tmp, 'threads-1')]);
    const two = await bnlab([...args, '--threads', '2', '--out', join(tmp, 'threads-2')]);
    assert.equal(two.code, 0, two.stderr);
    const accuracy = (r: Result) => Number(/Test accuracy after 200 steps: (\d+\.\d\d)%/.exec(r.stdout)![1]);
    assert.ok(accuracy(two) > 80, `accuracy ${accuracy(two)}%`);
    // The same computation up to float rounding: the accuracies agree within a few test images.
    assert.ok(Math.abs(accuracy(two) - accuracy(one)) <= 0.3, `1 thread ${accuracy(one)}%, 2 threads ${accuracy(two)}%`);
    assert.equal(JSON.parse(readFileSync(join(tmp, 'threads-2', 'config.json'), 'utf8')).threads, 2);
    await fails([...args.slice(0, -2), '--backend', 'ts', '--threads', '2', '--out', join(tmp, 'threads-ts')], /--threads 2 .*the "ts" backend \(ts\) cannot do: use --backend auto/);
    await fails([...args.slice(0, -4), '--batch', '3', '--threads', '2', '--out', join(tmp, 'threads-b3')], /use a batch of at least 4/);
    assert.ok(!existsSync(join(tmp, 'threads-ts')) && !existsSync(join(tmp, 'threads-b3')), 'nothing is written when the options are impossible');
  });

  test('a batch of 1 with batch norm is refused before anything is written, naming the layer; without batch norm it trains', async () => {
    const args = ['train', '--steps', '2', '--batch', '1', '--eval-every', '0', '--train-limit', '100', '--test-limit', '100'];
    await fails([...args, '--model', 'ioffe-mlp', '--out', join(tmp, 'batch-1')], /a batch of 1 gives BatchNorm1d\(100.*\(layer "1"\) one value per channel.*use a batch of at least 2/);
    assert.ok(!existsSync(join(tmp, 'batch-1')), 'nothing is written');
    // BatchNorm2d has 28x28 values per channel even in a batch of 1; the CNN's hidden BatchNorm1d does not.
    await fails([...args, '--model', 'mnist-cnn', '--out', join(tmp, 'batch-1-cnn')], /BatchNorm1d\(128.*\(layer "10"\)/);
    const plain = await bnlab([...args, '--model', 'ioffe-mlp', '--no-bn', '--out', join(tmp, 'batch-1-no-bn')]);
    assert.equal(plain.code, 0, plain.stderr);
  });

  test('refuses to overwrite a previous run unless --overwrite', async () => {
    const before = readFileSync(join(runDir, 'config.json'), 'utf8');
    await fails(['train', '--steps', '2', '--eval-every', '0', '--test-limit', '100', '--out', runDir], /already exists and is not empty.*--overwrite/);
    assert.equal(readFileSync(join(runDir, 'config.json'), 'utf8'), before);

    const r = await bnlab(['train', '--steps', '2', '--eval-every', '0', '--test-limit', '100', '--out', runDir, '--overwrite']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')).steps, 2);

    // --overwrite deletes a run directory, never something that is not one.
    const other = join(tmp, 'not-a-run');
    mkdirSync(other);
    writeFileSync(join(other, 'notes.txt'), 'keep me');
    await fails(['train', '--steps', '2', '--out', other, '--overwrite'], /Refusing to --overwrite .*no config\.json/);
    assert.deepEqual(readdirSync(other), ['notes.txt']);
  });

  test('a Keras-style --bn-momentum 0.99 gets the warning', async () => {
    const r = await bnlab(['train', '--bn-momentum', '0.99', '--steps', '2', '--eval-every', '0', '--test-limit', '100', '--out', join(tmp, 'keras')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /momentum 0\.99 gives each new batch 99% of the weight.*Keras's momentum=0\.99, pass 0\.01/);
  });

  test('divergence stops the run with the step, and a non-zero exit', async () => {
    const out = join(tmp, 'diverged');
    const r = await fails(['train', '--model', 'mlp-relu', '--no-bn', '--lr', '10000', '--steps', '50', '--eval-every', '0', '--test-limit', '100', '--out', out], /error: Training diverged at step \d+: the loss is (NaN|Infinity)/);
    assert.doesNotMatch(r.stdout, /Test accuracy after/);
    assert.ok(existsSync(join(out, 'config.json')), 'the config of the failed run is kept');
  });
});

describe('bnlab start', () => {
  test('trains both networks on two workers and prints the accuracies side by side', async () => {
    const runs = join(tmp, 'runs');
    const r = await bnlab(['start', '--steps', '20', '--eval-every', '10', '--train-limit', '1200', '--test-limit', '200', '--runs-dir', runs]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /step +with BN +without BN/);
    assert.match(r.stdout, /^ +10 +\d+\.\d\d% +\d+\.\d\d%$/m);
    assert.match(r.stdout, /^ +20 +\d+\.\d\d% +\d+\.\d\d%$/m);
    assert.match(r.stdout, /Test accuracy after 20 steps: \d+\.\d\d% with batch norm, \d+\.\d\d% without/);
    const dirs = readdirSync(runs).sort();
    assert.equal(dirs.length, 2);
    assert.match(dirs[0], /^ioffe-mlp-bn-\d{8}-\d{6}$/);
    assert.match(dirs[1], /^ioffe-mlp-nobn-\d{8}-\d{6}$/);
    const configs = dirs.map((d) => JSON.parse(readFileSync(join(runs, d, 'config.json'), 'utf8')));
    assert.deepEqual(configs.map((c) => c.bn), [true, false]);
    assert.equal(configs[0].optimizer.lr, configs[1].optimizer.lr, 'same learning rate for both');
    for (const d of dirs) assert.ok(r.stdout.includes(join(runs, d)), `prints where ${d} is`);
  });
});
