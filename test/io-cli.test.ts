/**
 * The built `bnlab` command and model files (dist/src/cli/main.js; `npm test` builds first): every
 * training run ends with model.json + model.safetensors, --checkpoint-every/--keep-checkpoints, a
 * --resume that is byte-identical to an uninterrupted run, and predict/export/summary on a run directory.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { loadDataset } from '../src/data/node.js';
import { pngBytes } from './support/io-hostile-cases.js';
import { CLI, bnlab } from './support/cli.js';

let tmp: string;


async function ok(args: string[]): Promise<string> {
  const r = await bnlab(args);
  assert.equal(r.code, 0, `bnlab ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

async function fails(args: string[], pattern: RegExp): Promise<void> {
  const r = await bnlab(args);
  assert.notEqual(r.code, 0, `bnlab ${args.join(' ')} should fail`);
  assert.match(r.stderr, pattern);
}

before(() => {
  assert.ok(existsSync(CLI), `${CLI} is missing: run npm run build first (npm test does)`);
  tmp = mkdtempSync(join(tmpdir(), 'bnlab-io-cli-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

// Small and fast: 2000 training images, batches of 32, a 300-image test set.
const RUN = ['--batch', '32', '--train-limit', '2000', '--test-limit', '300', '--eval-every', '20', '--optimizer', 'sgd', '--momentum', '0.9'];

describe('bnlab train with model files and checkpoints', () => {
  const straight = () => join(tmp, 'straight');
  const resumed = () => join(tmp, 'resumed');

  test('40 steps + --resume to 60 gives a model.safetensors byte-identical to 60 straight steps', async () => {
    await ok(['train', ...RUN, '--steps', '60', '--out', straight()]);
    await ok(['train', ...RUN, '--steps', '40', '--checkpoint-every', '10', '--keep-checkpoints', '2', '--out', resumed()]);
    assert.deepEqual(readdirSync(join(resumed(), 'checkpoints')), ['step-00000030', 'step-00000040']);
    assert.ok(existsSync(join(straight(), 'model.json')) && existsSync(join(straight(), 'model.safetensors')), 'every run ends with its model files');
    assert.notDeepEqual(readFileSync(join(resumed(), 'model.safetensors')), readFileSync(join(straight(), 'model.safetensors')));

    const out = await ok(['train', '--resume', resumed(), '--steps', '60']);
    assert.match(out, /Resuming at step 40/);
    assert.deepEqual(readFileSync(join(resumed(), 'model.safetensors')), readFileSync(join(straight(), 'model.safetensors')));
    assert.deepEqual(readdirSync(join(resumed(), 'checkpoints')), ['step-00000050', 'step-00000060']);
    // The metrics so far came back with the checkpoint: the curve is the uninterrupted run's. (Stopped at a
    // step that is not a multiple of --eval-every, the first run's own closing records would stay in it.)
    const curve = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => { const { time: _, ...m } = JSON.parse(l); return m; });
    assert.deepEqual(curve(resumed()), curve(straight()));
  });

  test('Ctrl-C ends a run before its next step, saved with a checkpoint; --resume then gives the uninterrupted model byte for byte', async () => {
    const args = ['train', ...RUN, '--eval-every', '500', '--steps', '3000'];
    const interrupted = join(tmp, 'interrupted');
    const child = spawn(process.execPath, [CLI, ...args, '--out', interrupted], { env: { ...process.env, FORCE_COLOR: '0' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((done) => child.on('close', done));
    // Once the run has logged its first losses (every 100 steps), press Ctrl-C.
    const metrics = join(interrupted, 'metrics.jsonl');
    while (!(existsSync(metrics) && readFileSync(metrics, 'utf8').includes('"split":"train"'))) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    const at = Number(/Interrupted at step (\d+) of 3000\./.exec(stdout)?.[1]);
    assert.ok(at >= 100 && at < 3000, stdout);
    assert.match(stderr, /Interrupted: saving the run at the step in progress/);
    assert.match(stdout, new RegExp(`model\\.json and model\\.safetensors \\(the weights at step ${at}\\) and a checkpoint; continue with: bnlab train --resume ${interrupted}`));
    assert.deepEqual(readdirSync(join(interrupted, 'checkpoints')), [`step-${String(at).padStart(8, '0')}`]);
    // The model saved at the interruption is a model directory like any other.
    assert.match(await ok(['predict', '--model', interrupted, '--mnist-test', '0']), /Predicted: \d/);
    assert.match(await ok(['train', '--resume', interrupted]), new RegExp(`Resuming at step ${at} from the latest checkpoint`));
    const straight3000 = join(tmp, 'straight-3000');
    await ok([...args, '--out', straight3000]);
    assert.deepEqual(readFileSync(join(interrupted, 'model.safetensors')), readFileSync(join(straight3000, 'model.safetensors')));
  });

  test('--resume refuses settings that would change the run, and runs without checkpoints', async () => {
    await fails(['train', '--resume', resumed(), '--lr', '0.3'], /--resume continues a run with its own settings; --lr cannot change them/);
    await fails(['train', '--resume', straight(), '--steps', '80'], /checkpoints: not found: no checkpoints: train with --checkpoint-every N/);
    await fails(['train', '--resume', join(tmp, 'nothing')], /not a bnlab run directory \(no config\.json\)/);
  });

  test('predict: --mnist-test and the same digit as a PNG (and inverted) give the same probabilities', async () => {
    const digit = loadDataset('mnist', 'test').images.subarray(0, 784);
    const byte = (x: number, y: number) => Math.round(digit[y * 28 + x] * 255);
    writeFileSync(join(tmp, 'digit.png'), pngBytes(28, 28, { fill: byte }));
    writeFileSync(join(tmp, 'inverted.png'), pngBytes(28, 28, { colorType: 0, fill: (x, y) => 255 - byte(x, y) }));
    const predict = async (args: string[]) => JSON.parse(await ok(['predict', '--model', straight(), ...args, '--json']));
    const fromSet = await predict(['--mnist-test', '0']);
    assert.equal(fromSet.label, 7);
    const sum = fromSet.probabilities.reduce((s: number, p: { probability: number }) => s + p.probability, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5);
    for (const file of ['digit.png', 'inverted.png']) {
      const fromPng = await predict(['--image', join(tmp, file)]);
      assert.equal(fromPng.predicted, fromSet.predicted);
      fromPng.probabilities.forEach((p: { probability: number }, i: number) => assert.ok(Math.abs(p.probability - fromSet.probabilities[i].probability) < 1e-5, file));
    }
    // The same digit photographed large: dark ink on grey paper, 10x the size, off-centre. MNIST's recipe
    // (levels, 20x20 box, centre of mass) gives back the test image, so the same probabilities.
    const paper = (x: number, y: number) => {
      const [i, j] = [Math.floor((x - 30) / 10), Math.floor((y - 20) / 10)];
      const v = i >= 0 && i < 28 && j >= 0 && j < 28 ? digit[j * 28 + i] : 0;
      return Math.round(210 - 170 * v);
    };
    writeFileSync(join(tmp, 'photo.png'), pngBytes(360, 320, { fill: paper }));
    const fromPhoto = await predict(['--image', join(tmp, 'photo.png')]);
    assert.match(fromPhoto.source, /photo\.png \(360x320, inverted to white on black: the digit fitted into 20x20 and centred by mass in 28x28/);
    assert.equal(fromPhoto.predicted, fromSet.predicted);
    fromPhoto.probabilities.forEach((p: { probability: number }, i: number) => assert.ok(Math.abs(p.probability - fromSet.probabilities[i].probability) < 1e-3, `photo: class ${i}`));
    writeFileSync(join(tmp, 'blank.png'), pngBytes(90, 60, { fill: () => 200 }));
    await fails(['predict', '--model', straight(), '--image', join(tmp, 'blank.png')], /blank\.png: no digit found: no pixel stands out from the background/);
    const text = await ok(['predict', '--model', straight(), '--mnist-test', '0']);
    assert.match(text, /eval mode: 3 batch-norm layers normalizing with running statistics \(bias-corrected\), after 60 training batches/);
    assert.match(text, /Predicted: \d/);
  });

  test('predict: a PNG of the wrong size or a truncated one is a clear error', async () => {
    // MNIST models take a digit at any size (above); a model of other 28x28 images takes that size only.
    const fashion = join(tmp, 'fashion');
    await ok(['train', '--dataset', 'fashion-mnist', '--steps', '5', '--train-limit', '300', '--test-limit', '50', '--eval-every', '0', '--out', fashion]);
    writeFileSync(join(tmp, 'big.png'), pngBytes(64, 48));
    await fails(['predict', '--model', fashion, '--image', join(tmp, 'big.png')], /big\.png: wrong size: the image is 64x48 pixels, the model takes 28x28/);
    writeFileSync(join(tmp, 'cut.png'), pngBytes(28, 28).subarray(0, 50));
    await fails(['predict', '--model', straight(), '--image', join(tmp, 'cut.png')], /cut\.png: truncated: /);
    await fails(['predict', '--model', straight(), '--image', join(tmp, 'none.png')], /none\.png: not found/);
    await fails(['predict', '--model', join(tmp, 'nothing'), '--mnist-test', '0'], /'--model <dir>' argument .* is invalid\. Allowed choices are ioffe-mlp, .*, or a model directory.*There is no ".*nothing" \(from .*\): check the path/);
  });

  test('export --onnx: onnxruntime gives the probabilities predict prints', async () => {
    const file = join(tmp, 'model.onnx');
    const out = await ok(['export', '--model', straight(), '--onnx', file, '--fold-bn', '--softmax']);
    assert.match(out, /Graph: Gemm → Sigmoid → Gemm → Sigmoid → Gemm → Sigmoid → Gemm → Softmax/);
    const session = await ort.InferenceSession.create(readFileSync(file));
    const x = loadDataset('mnist', 'test').images.slice(0, 784);
    const probs = (await session.run({ input: new ort.Tensor('float32', x, [1, 784]) })).probabilities.data as Float32Array;
    const expected = JSON.parse(await ok(['predict', '--model', straight(), '--mnist-test', '0', '--json'])).probabilities;
    probs.forEach((p, i) => assert.ok(Math.abs(p - expected[i].probability) < 1e-4));
  });

  test('summary accepts a run directory', async () => {
    const out = await ok(['summary', '--model', straight(), '--eval']);
    assert.match(out, /running stats: t=60/);
    assert.match(out, /Total params: 100,910/);
  });
});
