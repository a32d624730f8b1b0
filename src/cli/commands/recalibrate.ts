/**
 * `bnlab recalibrate --model DIR --out DIR2`: replace a trained model's batch-norm running averages by
 * population statistics, the exact average over many training batches with the weights fixed
 * ("precise BN"), and save the result. Prints test accuracy before and after, so the effect is visible.
 */
import { existsSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { DataLoader } from '../../data/loader.js';
import { DATASET_NAMES, loadDataset } from '../../data/node.js';
import { initBackend } from '../../kernels/index.js';
import { saveModelDir } from '../../io/node-model-dir.js';
import { BatchNormBase } from '../../nn/batchnorm.js';
import { recomputeBatchNormStats } from '../../nn/precise-bn.js';
import { evaluate } from '../../train/evaluate.js';
import { loadModelSource, modelArgument } from '../model-files.js';
import { backendOption, positiveInt, seed } from '../options.js';

interface RecalibrateFlags {
  model: string;
  out?: string;
  inPlace?: boolean;
  dataset?: string;
  batches: number;
  batch: number;
  seed: number;
  backend: string;
}

export function register(program: Command): Command {
  return program
    .command('recalibrate')
    .summary("replace a model's BN running averages by population statistics (precise BN)")
    .description('Run many training batches through a trained model with its weights fixed and set every batch-norm layer\'s running mean and variance to the exact average of the batch statistics (as Detectron2/fvcore\'s precise BN). The EWA a run ends with is dominated by its last few hundred batches, taken while the weights still moved; population statistics describe the final weights. Test accuracy is printed before and after.')
    .addOption(new Option('--model <dir>', 'a trained model directory (model.json + model.safetensors, e.g. a run directory)').argParser(modelArgument).makeOptionMandatory())
    .option('--out <dir>', 'write the recalibrated model here (a new or empty directory)')
    .option('--in-place', 'replace the model files in --model instead (atomically)')
    .addOption(new Option('--dataset <name>', "training data for the statistics (default: the model's dataset, else mnist)").choices([...DATASET_NAMES]))
    .addOption(new Option('--batches <n>', 'number of training batches to average').argParser(positiveInt).default(200))
    .addOption(new Option('--batch <n>', 'batch size for the statistics (use the training batch size)').argParser(positiveInt).default(60))
    .addOption(new Option('--seed <s>', 'seed of the batch order').argParser(seed).default(0))
    .addOption(backendOption())
    .addHelpText('after', `
Examples:
  $ bnlab recalibrate --model runs/a --out runs/a-precise
  $ bnlab recalibrate --model runs/a --in-place --batches 500`)
    .action(async (flags: RecalibrateFlags) => {
      if (!flags.out === !flags.inPlace) throw new Error('Give exactly one of --out DIR (write a new model directory) or --in-place (replace the model in --model)');
      if (flags.out && existsSync(flags.out) && readdirSync(flags.out).length > 0) throw new Error(`--out ${flags.out} exists and is not empty; choose a new directory (nothing was written)`);
      await initBackend(flags.backend);
      const source = loadModelSource(flags.model);
      if (!source.dir) throw new Error(`--model ${flags.model} is a preset, not a trained model directory: recalibrating untrained weights means nothing. Train first (bnlab train --out DIR) and pass DIR.`);
      const layers = [...source.model.modules()].filter((m) => m instanceof BatchNormBase && m.trackRunningStats);
      if (layers.length === 0) throw new Error(`${source.dir} has no batch-norm layers with running statistics: nothing to recalibrate`);
      const dataset = flags.dataset ?? source.dataset ?? 'mnist';
      const trainSet = loadDataset(dataset, 'train');
      const testSet = loadDataset(dataset, 'test');
      const inputShape = source.inputShape;
      const before = evaluate(source.model, testSet, { inputShape });
      const loader = new DataLoader(trainSet, { batchSize: flags.batch, shuffle: true, seed: flags.seed, dropLast: true });
      const batches = (function* () {
        for (let i = 0; i < flags.batches; i++) {
          const b = loader.next();
          yield b.x.reshape([b.labels.length, ...inputShape]);
        }
      })();
      const t0 = Date.now();
      const result = recomputeBatchNormStats(source.model, batches);
      const seconds = (Date.now() - t0) / 1000;
      const after = evaluate(source.model, testSet, { inputShape });
      const outDir = resolve(flags.out ?? source.dir);
      saveModelDir(outDir, source.model, { inputShape, preset: source.preset, classNames: source.classNames, dataset: source.dataset ?? dataset });
      const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
      console.log(`Recomputed the running statistics of ${result.layers.length} batch-norm layers over ${result.batches} batches of ${flags.batch} ${dataset} training images (${seconds.toFixed(1)} s).`);
      console.log(`Test accuracy: ${pct(before.accuracy)} with the running averages, ${pct(after.accuracy)} with population statistics (loss ${before.loss.toFixed(4)} → ${after.loss.toFixed(4)}).`);
      console.log(`Saved ${outDir}`);
    });
}
