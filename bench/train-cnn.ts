/**
 * Train the `mnist-cnn` preset on MNIST or Fashion-MNIST with SGD + momentum and report test accuracy
 * and wall time: the figures behind the CLI defaults for `bnlab train --model mnist-cnn`.
 *
 *   npx tsx bench/train-cnn.ts --dataset mnist --lr 0.05
 *   npx tsx bench/train-cnn.ts --dataset fashion-mnist --no-bn
 *   npx tsx bench/train-cnn.ts --train-limit 10000 --epochs 1      (a quick look at a learning rate)
 *   npx tsx bench/train-cnn.ts --widths 16,32                       (the same layout, other conv widths)
 */
import { parseArgs } from 'node:util';
import { loadDataset } from '../src/data/node.js';
import { DataLoader } from '../src/data/loader.js';
import { takeFirst } from '../src/data/dataset.js';
import { buildPreset, cnnLayers, getPreset } from '../src/models/presets.js';
import { buildSequential } from '../src/nn/registry.js';
import { Rng } from '../src/tensor/rng.js';
import { CrossEntropyLoss } from '../src/nn/loss.js';
import { summary } from '../src/nn/summary.js';
import { SGD } from '../src/optim/optimizer.js';
import { applySchedule, constantSchedule, cosineSchedule, type LrSchedule } from '../src/optim/schedule.js';
import { evaluate } from '../src/train/evaluate.js';

const { values: args } = parseArgs({
  options: {
    dataset: { type: 'string', default: 'mnist' },
    model: { type: 'string', default: 'mnist-cnn' },
    widths: { type: 'string' },
    'no-bn': { type: 'boolean', default: false },
    lr: { type: 'string', default: '0.05' },
    momentum: { type: 'string', default: '0.9' },
    'weight-decay': { type: 'string', default: '0' },
    schedule: { type: 'string', default: 'constant' },
    epochs: { type: 'string', default: '2' },
    batch: { type: 'string', default: '64' },
    seed: { type: 'string', default: '0' },
    'train-limit': { type: 'string' },
    quiet: { type: 'boolean', default: false },
  },
});

const epochs = Number(args.epochs);
const batchSize = Number(args.batch);
const seed = Number(args.seed);
const lr = Number(args.lr);
const bn = !args['no-bn'];

let train = loadDataset(args.dataset!, 'train');
if (args['train-limit']) train = takeFirst(train, Number(args['train-limit']));
const test = loadDataset(args.dataset!, 'test');

const model = args.widths
  ? buildSequential(cnnLayers([1, 28, 28], args.widths.split(',').map(Number), 10, bn), { rng: new Rng(seed), init: getPreset('mnist-cnn').defaultInit })
  : buildPreset(args.model!, { bn, seed });
const loader = new DataLoader(train, { batchSize, shuffle: true, seed, dropLast: bn });
const optimizer = new SGD(model.parameters(), { lr, momentum: Number(args.momentum), weightDecay: Number(args['weight-decay']) });
const totalSteps = epochs * loader.batchesPerEpoch;
const schedule: LrSchedule = args.schedule === 'cosine' ? cosineSchedule(totalSteps) : constantSchedule;
const loss = new CrossEntropyLoss();

if (!args.quiet) console.log(summary(model, [batchSize, ...train.sampleShape], args.widths ? `cnn ${args.widths}` : args.model));
console.log(`${args.dataset}, ${args.widths ? `cnn ${args.widths}` : args.model}: ${train.count} training images, ${epochs} epochs of ${loader.batchesPerEpoch} batches of ${batchSize}; SGD lr ${lr} (${schedule.name}), momentum ${args.momentum}, weight decay ${args['weight-decay']}, bn ${bn}, seed ${seed}`);

const start = performance.now();
let trainTime = 0;
for (let epoch = 0; epoch < epochs; epoch++) {
  const epochStart = performance.now();
  let running = 0;
  for (let s = 0; s < loader.batchesPerEpoch; s++) {
    applySchedule(schedule, optimizer, epoch * loader.batchesPerEpoch + s);
    const batch = loader.next();
    model.train();
    optimizer.zeroGrad();
    const value = loss.forward(model.forward(batch.x), batch.labels);
    if (!Number.isFinite(value)) throw new Error(`loss is ${value} at epoch ${epoch}, step ${s}: lower the learning rate`);
    model.backward(loss.backward());
    optimizer.step();
    running += value;
    if (!args.quiet && (s + 1) % 200 === 0) {
      console.log(`  epoch ${epoch + 1} step ${s + 1}/${loader.batchesPerEpoch}: loss ${(running / 200).toFixed(4)}, ${((performance.now() - epochStart) / (s + 1)).toFixed(0)} ms/step`);
      running = 0;
    }
  }
  trainTime += performance.now() - epochStart;
  const result = evaluate(model, test);
  console.log(`epoch ${epoch + 1}: test accuracy ${(result.accuracy * 100).toFixed(2)}%, test loss ${result.loss.toFixed(4)}, epoch time ${((performance.now() - epochStart) / 1000).toFixed(1)} s`);
}
console.log(`done: training ${(trainTime / 1000).toFixed(1)} s, wall ${((performance.now() - start) / 1000).toFixed(1)} s`);
