/**
 * Checkpoints: a run interrupted and resumed ends byte-identical to an uninterrupted one; only the last
 * K are kept; a damaged newest checkpoint falls back to the one before; and a writer killed with SIGKILL
 * in the middle of a checkpoint leaves the previous one loadable.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import nodeFs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { restoreTraining, type TrainingParts } from '../src/io/checkpoint.js';
import { ModelFileError } from '../src/io/errors.js';
import { encodeWeights } from '../src/io/model-file.js';
import { leftoverTemporaries } from '../src/io/node-atomic.js';
import { CHECKPOINTS_DIR, listCheckpoints, loadCheckpoint, loadLatestCheckpoint, saveCheckpoint } from '../src/io/node-checkpoint.js';
import type { Dataset } from '../src/data/dataset.js';
import { buildSequential, type LayerSpec } from '../src/nn/registry.js';
import type { Sequential } from '../src/nn/sequential.js';
import { setWarningHandler } from '../src/nn/warnings.js';
import { Adam, SGD, type Optimizer } from '../src/optim/optimizer.js';
import { stepSchedule } from '../src/optim/schedule.js';
import { Rng } from '../src/tensor/rng.js';
import { Trainer } from '../src/train/trainer.js';

let tmp: string;
let restoreWarnings: ReturnType<typeof setWarningHandler>;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bnlab-io-checkpoint-'));
  restoreWarnings = setWarningHandler(() => {});
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  setWarningHandler(restoreWarnings);
});

function toyData(count: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const labels = new Uint8Array(count).map(() => rng.int(3));
  const images = new Float32Array(count * 12);
  for (let i = 0; i < count; i++) for (let j = 0; j < 12; j++) images[i * 12 + j] = rng.normal() + (j % 3 === labels[i] ? 1 : 0);
  return { name: 'toy', images, labels, count, sampleShape: [12], numClasses: 3 };
}

// Dropout (its own RNG), batch norm (running statistics), momentum or Adam buffers, a step schedule and
// 100 samples in batches of 16 (epochs of 6 steps): every piece of state a resume has to restore.
const LAYERS: LayerSpec[] = [
  { type: 'Linear', inFeatures: 12, outFeatures: 10 },
  { type: 'BatchNorm1d', numFeatures: 10 },
  { type: 'ReLU' },
  { type: 'Dropout', p: 0.3 },
  { type: 'Linear', inFeatures: 10, outFeatures: 3 },
];
const trainSet = toyData(100, 1);
const testSet = toyData(30, 2);
const schedule = stepSchedule(15, 0.5);

function makeOptimizer(kind: 'sgd' | 'adam', model: Sequential): Optimizer {
  return kind === 'sgd' ? new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, nesterov: true }) : new Adam(model.parameters(), { lr: 0.01 });
}

function makeRun(kind: 'sgd' | 'adam', steps: number, model = buildSequential(LAYERS, { rng: new Rng(42) }), onStep?: (t: Trainer) => void): TrainingParts {
  const optimizer = makeOptimizer(kind, model);
  const trainer = new Trainer({ model, optimizer, trainSet, testSet, batchSize: 16, steps, schedule, seed: 5, evalEvery: 7, logEvery: 4, onStep: onStep && ((t) => onStep(t)) });
  return { model, optimizer, trainer, schedule };
}

for (const kind of ['sgd', 'adam'] as const) {
  test(`${kind}: 20 steps, then resume from the checkpoint to 40, gives model.safetensors byte-identical to 40 straight steps`, () => {
    const straight = makeRun(kind, 40);
    straight.trainer.run();
    const expected = encodeWeights(straight.model);

    const runDir = path.join(tmp, `resume-${kind}`);
    const first = makeRun(kind, 20, undefined, (t) => {
      if (t.step % 10 === 0) saveCheckpoint(runDir, first, { inputShape: [12] }, { config: { kind } });
    });
    first.trainer.run();
    assert.notDeepEqual(encodeWeights(first.model), expected);

    const { step, checkpoint } = loadLatestCheckpoint(runDir);
    assert.equal(step, 20);
    assert.deepEqual(checkpoint.state.config, { kind });
    // Rebuild from the checkpoint's own model.json, as `bnlab train --resume` does.
    const resumed = makeRun(kind, 40, checkpoint.loaded.model);
    restoreTraining(checkpoint, resumed);
    assert.equal(resumed.trainer.step, 20);
    resumed.trainer.run();
    assert.deepEqual(encodeWeights(resumed.model), expected);
    assert.deepEqual(resumed.optimizer.stateDict(), straight.optimizer.stateDict());
    const withoutTime = (t: Trainer) => t.history.map(({ time: _, ...m }) => m);
    assert.deepEqual(withoutTime(resumed.trainer), withoutTime(straight.trainer));
  });
}

test('restoring into a run that was built differently is a ModelFileError, not a silent mismatch', () => {
  const runDir = path.join(tmp, 'mismatch');
  const run = makeRun('sgd', 5);
  run.trainer.run();
  saveCheckpoint(runDir, run, { inputShape: [12] });
  const { checkpoint } = loadLatestCheckpoint(runDir);
  const adam = makeRun('adam', 10, checkpoint.loaded.model);
  assert.throws(() => restoreTraining(checkpoint, adam), (e: unknown) => e instanceof ModelFileError && e.defect === 'bad training state' && /SGD/.test(e.message));
  const otherSchedule = { ...makeRun('sgd', 10, checkpoint.loaded.model), schedule: stepSchedule(3) };
  assert.throws(() => restoreTraining(checkpoint, otherSchedule), (e: unknown) => e instanceof ModelFileError && /schedule/.test(e.message));
});

describe('checkpoint directories', () => {
  test('only the last K are kept, and no temporaries are left', () => {
    const runDir = path.join(tmp, 'keep');
    const run = makeRun('sgd', 12, undefined, (t) => {
      if (t.step % 2 === 0) saveCheckpoint(runDir, run, { inputShape: [12] }, { keep: 3 });
    });
    run.trainer.run();
    assert.deepEqual(listCheckpoints(runDir).map((c) => c.step), [8, 10, 12]);
    assert.deepEqual(leftoverTemporaries(path.join(runDir, CHECKPOINTS_DIR)), []);
    // A checkpoint is also a model directory.
    assert.ok(fs.existsSync(path.join(runDir, CHECKPOINTS_DIR, 'step-00000012', 'model.json')));
  });

  test('a process dying while it deletes an old checkpoint leaves no half-deleted step-* behind', () => {
    const runDir = path.join(tmp, 'dies-while-pruning');
    const run = makeRun('sgd', 2, undefined, () => saveCheckpoint(runDir, run, { inputShape: [12] }, { keep: 1 }));
    const realRm = nodeFs.rmSync;
    // The deletion gets as far as one file, then the process "dies" (the throw stands for SIGKILL).
    nodeFs.rmSync = ((target: fs.PathLike) => {
      fs.unlinkSync(path.join(String(target), 'model.safetensors'));
      throw new Error('killed while deleting');
    }) as typeof nodeFs.rmSync;
    syncBuiltinESMExports();
    try {
      assert.throws(() => run.trainer.run(), /killed while deleting/);
    } finally {
      nodeFs.rmSync = realRm;
      syncBuiltinESMExports();
    }
    // Step 1 was renamed out of the way before its files went: what is left of it is a temporary,
    // which the next process's save removes; every step-* directory is whole.
    assert.deepEqual(listCheckpoints(runDir).map((c) => c.step), [2]);
    for (const c of listCheckpoints(runDir)) loadCheckpoint(c.dir);
    assert.equal(leftoverTemporaries(path.join(runDir, CHECKPOINTS_DIR)).length, 1);
  });

  test('a damaged newest checkpoint is reported and the previous one is used', () => {
    const runDir = path.join(tmp, 'damaged');
    const run = makeRun('adam', 4, undefined, (t) => {
      if (t.step % 2 === 0) saveCheckpoint(runDir, run, { inputShape: [12] });
    });
    run.trainer.run();
    const newest = listCheckpoints(runDir).at(-1)!.dir;
    const weights = path.join(newest, 'optimizer.safetensors');
    fs.truncateSync(weights, fs.statSync(weights).size - 10);
    const skipped: string[] = [];
    const { step } = loadLatestCheckpoint(runDir, (dir, e) => skipped.push(`${path.basename(dir)}: ${e.defect}`));
    assert.equal(step, 2);
    assert.deepEqual(skipped, ['step-00000004: offsets outside the data']);
    assert.throws(() => loadLatestCheckpoint(path.join(tmp, 'no-such-run')), (e: unknown) => e instanceof ModelFileError && e.defect === 'not found');
  });
});

describe('SIGKILL while writing', () => {
  const child = path.join(import.meta.dirname, 'support', 'checkpoint-writer.ts');

  /** Start the writer; resolve with its output once `until` matches a line, then kill it with SIGKILL. */
  function runAndKill(runDir: string, args: string[], until: (line: string) => boolean, delayMs = 0): Promise<string[]> {
    return new Promise((resolve, reject) => {
      const proc = spawn(process.execPath, ['--import', 'tsx', child, runDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      const lines: string[] = [];
      let stderr = '';
      let buffered = '';
      let killed = false;
      proc.stderr.on('data', (d) => (stderr += d));
      proc.stdout.on('data', (d) => {
        buffered += d;
        const parts = buffered.split('\n');
        buffered = parts.pop()!;
        for (const line of parts) {
          lines.push(line);
          if (!killed && until(line)) {
            killed = true;
            setTimeout(() => proc.kill('SIGKILL'), delayMs);
          }
        }
      });
      proc.on('close', (code, signal) => {
        if (signal === 'SIGKILL') resolve(lines);
        else reject(new Error(`writer exited with ${code ?? signal} before it was killed: ${stderr}`));
      });
    });
  }

  test('killed after the first file of checkpoint 3: checkpoint 2 loads, the partial one is only a temporary', async () => {
    const runDir = path.join(tmp, 'killed-paused');
    const lines = await runAndKill(runDir, ['pause-at', '3'], (l) => l === 'paused 3');
    assert.deepEqual(lines, ['done 1', 'done 2', 'paused 3']);
    const root = path.join(runDir, CHECKPOINTS_DIR);
    assert.equal(leftoverTemporaries(root).length, 1, 'the interrupted write left its temporary directory');
    assert.deepEqual(listCheckpoints(runDir).map((c) => c.step), [1, 2]);
    const { step, checkpoint } = loadLatestCheckpoint(runDir, (dir, e) => assert.fail(`${dir} did not load: ${e.message}`));
    assert.equal(step, 2);
    assert.equal(checkpoint.state.step, 2);
  });

  test('killed at an arbitrary moment while writing checkpoints back to back: the newest complete one loads', async () => {
    const runDir = path.join(tmp, 'killed-anytime');
    // Some milliseconds after the third checkpoint: somewhere inside writing the fourth or a later one.
    const lines = await runAndKill(runDir, [], (l) => l === 'done 3', 5 + (Date.now() % 40));
    const lastDone = Number(lines.filter((l) => l.startsWith('done ')).at(-1)!.slice(5));
    const { step } = loadLatestCheckpoint(runDir, (dir, e) => assert.fail(`${dir} did not load: ${e.message}`));
    assert.ok(step >= lastDone && step <= lastDone + 1, `loaded step ${step}, the writer had reported ${lastDone}`);
    for (const c of listCheckpoints(runDir)) loadCheckpoint(c.dir); // every complete-looking checkpoint is complete
  });
});
