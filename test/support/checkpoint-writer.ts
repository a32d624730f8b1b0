/**
 * Child process for test/io-checkpoint.test.ts: trains a model and checkpoints after every step, for
 * ever, printing "done N" after each checkpoint. With `pause-at N` it prints "paused N" after the first
 * file of checkpoint N is on disk and then sleeps, so the parent can kill it mid-write for certain.
 * Usage: node --import tsx checkpoint-writer.ts RUN_DIR [pause-at N]
 */
import { saveCheckpoint } from '../../src/io/node-checkpoint.js';
import { buildSequential } from '../../src/nn/registry.js';
import { Adam } from '../../src/optim/optimizer.js';
import { Rng } from '../../src/tensor/rng.js';
import { Trainer } from '../../src/train/trainer.js';

const [runDir, mode, at] = process.argv.slice(2);
const pauseAt = mode === 'pause-at' ? Number(at) : -1;
const rng = new Rng(7);
const count = 64;
const images = new Float32Array(count * 256).map(() => rng.normal());
const labels = new Uint8Array(count).map(() => rng.int(4));
// About 200k parameters: each checkpoint is a few MB, so a write takes long enough to be interrupted.
const model = buildSequential(
  [
    { type: 'Linear', inFeatures: 256, outFeatures: 384 },
    { type: 'BatchNorm1d', numFeatures: 384 },
    { type: 'ReLU' },
    { type: 'Linear', inFeatures: 384, outFeatures: 256 },
    { type: 'BatchNorm1d', numFeatures: 256 },
    { type: 'ReLU' },
    { type: 'Linear', inFeatures: 256, outFeatures: 4 },
  ],
  { rng },
);
const optimizer = new Adam(model.parameters(), { lr: 1e-3 });
const trainer = new Trainer({ model, optimizer, trainSet: { name: 'noise', images, labels, count, sampleShape: [256], numClasses: 4 }, batchSize: 16, steps: 1_000_000 });
const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
for (;;) {
  trainer.trainStep();
  const step = trainer.step;
  let first = true;
  saveCheckpoint(runDir, { model, optimizer, trainer }, { inputShape: [256] }, {
    keep: 2,
    afterFile: () => {
      if (step === pauseAt && first) {
        process.stdout.write(`paused ${step}\n`);
        sleep(60_000);
      }
      first = false;
    },
  });
  process.stdout.write(`done ${step}\n`);
}
