/**
 * Figures for the batch-norm variants.
 *
 *   npx tsx bench/bn-variants.ts timing     forward + backward time of plain BN, ghost BN, Batch Renorm,
 *                                           LayerNorm and GroupNorm on MLP- and CNN-sized activations
 *   npx tsx bench/bn-variants.ts precise    MNIST MLP with Dropout feeding the layers before BN: test
 *                                           accuracy with the EWA running statistics, then after
 *                                           recomputeBatchNormStats (dropout off), and the variance shift
 *   options: --epochs 1 --batches 200 --seed 0
 */
import { parseArgs } from 'node:util';
import { loadDataset } from '../src/data/node.js';
import { DataLoader } from '../src/data/loader.js';
import { BatchNorm1d, BatchNorm2d, BatchNormBase, type BatchNormOptions } from '../src/nn/batchnorm.js';
import { GroupNorm } from '../src/nn/groupnorm.js';
import { LayerNorm } from '../src/nn/layernorm.js';
import type { Module } from '../src/nn/module.js';
import { recomputeBatchNormStats } from '../src/nn/precise-bn.js';
import { buildSequential } from '../src/nn/registry.js';
import { SGD } from '../src/optim/optimizer.js';
import { Rng } from '../src/tensor/rng.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Trainer } from '../src/train/trainer.js';
import { evaluate } from '../src/train/evaluate.js';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    epochs: { type: 'string', default: '1' },
    batches: { type: 'string', default: '200' },
    seed: { type: 'string', default: '0' },
  },
});

function randomTensor(shape: number[], rng: Rng): Tensor {
  const t = new Tensor(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = rng.normal();
  return t;
}

/** Fastest forward + backward of `reps` runs after a warm-up, in ms (the minimum resists other load on the machine). */
function time(module: Module, x: Tensor, reps = 30): number {
  const rng = new Rng(1);
  const dy = randomTensor([...x.shape], rng);
  for (let i = 0; i < 5; i++) {
    module.forward(x);
    module.backward(dy);
  }
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    module.forward(x);
    module.backward(dy);
    times.push(performance.now() - t0);
  }
  return Math.min(...times);
}

function timing(): void {
  const rng = new Rng(0);
  const renorm = { rMax: 3, dMax: 5 };
  const mlp = randomTensor([64, 256], rng);
  const cnn = randomTensor([64, 32, 14, 14], rng);
  const rows: Array<[string, string, number]> = [];
  const bn1 = (o: BatchNormOptions) => new BatchNorm1d(256, o);
  const bn2 = (o: BatchNormOptions) => new BatchNorm2d(32, o);
  for (const [shape, x, make, ln, gn] of [
    ['(64, 256)', mlp, bn1, new LayerNorm(256), new GroupNorm(8, 256)],
    ['(64, 32, 14, 14)', cnn, bn2, new LayerNorm([32, 14, 14]), new GroupNorm(8, 32)],
  ] as const) {
    rows.push([shape, 'BatchNorm', time(make({}), x)]);
    rows.push([shape, 'ghost BN, virtualBatchSize 16', time(make({ virtualBatchSize: 16 }), x)]);
    rows.push([shape, 'Batch Renorm (rMax 3, dMax 5)', time(make({ renorm }), x)]);
    rows.push([shape, 'ghost + renorm', time(make({ renorm, virtualBatchSize: 16 }), x)]);
    rows.push([shape, 'LayerNorm', time(ln, x)]);
    rows.push([shape, 'GroupNorm (8 groups)', time(gn, x)]);
  }
  console.log('| input | layer | forward + backward, ms (best of 30) |\n|---|---|---|');
  for (const [shape, name, ms] of rows) console.log(`| ${shape} | ${name} | ${ms.toFixed(3)} |`);
}

function precise(): void {
  const seed = Number(args.seed);
  const trainSet = loadDataset('mnist', 'train');
  const testSet = loadDataset('mnist', 'test');
  // Dropout before each hidden Linear → BN: in training the BN sees dropout-scaled inputs, in eval not.
  const model = buildSequential(
    [
      { type: 'Linear', in: 784, out: 256 },
      { type: 'BatchNorm1d', numFeatures: 256 },
      { type: 'ReLU' },
      { type: 'Dropout', p: 0.5 },
      { type: 'Linear', in: 256, out: 256 },
      { type: 'BatchNorm1d', numFeatures: 256 },
      { type: 'ReLU' },
      { type: 'Dropout', p: 0.5 },
      { type: 'Linear', in: 256, out: 10 },
    ],
    { rng: new Rng(seed), init: { name: 'kaiming-normal', nonlinearity: 'relu' } },
  );
  const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
  const t0 = performance.now();
  new Trainer({ model, optimizer, trainSet, batchSize: 64, epochs: Number(args.epochs), seed, inputShape: [784] }).run();
  const trainSeconds = (performance.now() - t0) / 1000;
  const ewa = evaluate(model, testSet, { inputShape: [784] });
  const layers = [...model.modules()].filter((m): m is BatchNormBase => m instanceof BatchNormBase);
  const before = layers.map((l) => l.inferenceStatistics().variance);

  const loader = new DataLoader(trainSet, { batchSize: 64, shuffle: true, seed: seed + 1, dropLast: true });
  const count = Number(args.batches);
  const batches = (function* () {
    for (let i = 0; i < count; i++) yield loader.next().x.reshape([64, 784]);
  })();
  const t1 = performance.now();
  recomputeBatchNormStats(model, batches);
  const recomputeSeconds = (performance.now() - t1) / 1000;
  const population = evaluate(model, testSet, { inputShape: [784] });
  const after = layers.map((l) => l.inferenceStatistics().variance);
  const ratios = layers.map((_, i) => {
    let sum = 0;
    for (let c = 0; c < before[i].length; c++) sum += before[i][c] / after[i][c];
    return sum / before[i].length;
  });

  console.log(`MNIST, 784-256-256-10 MLP with Dropout(0.5) → Linear → BN, SGD lr 0.05 momentum 0.9, batch 64, ${args.epochs} epoch(s), seed ${seed}`);
  console.log(`training: ${trainSeconds.toFixed(1)} s`);
  console.log(`test accuracy, EWA running statistics (momentum 0.1, bias-corrected): ${(100 * ewa.accuracy).toFixed(2)}% (loss ${ewa.loss.toFixed(4)})`);
  console.log(`test accuracy after recomputeBatchNormStats over ${count} batches (dropout off): ${(100 * population.accuracy).toFixed(2)}% (loss ${population.loss.toFixed(4)}); ${recomputeSeconds.toFixed(2)} s`);
  console.log(`mean ratio running variance (train-mode EWA) / population variance (dropout off), per BN layer: ${ratios.map((r) => r.toFixed(3)).join(', ')}`);
}

const part = positionals[0] ?? 'timing';
if (part === 'timing') timing();
else if (part === 'precise') precise();
else throw new Error(`Unknown part "${part}": use timing or precise`);
