/**
 * `bnlab recalibrate --model DIR --out DIR2`: replace a trained model's batch-norm running averages by
 * population statistics, the exact average over many training batches with the weights fixed
 * ("precise BN"), and save the result. Prints test accuracy before and after, so the effect is visible.
 * The training data is the run's own (from its config.json: the bundled dataset, or --data with the same
 * split and standardization), unless --data PATH or --dataset NAME says otherwise.
 */
import { copyFileSync, existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { DataLoader } from '../../data/loader.js';
import type { Dataset } from '../../data/dataset.js';
import { DATASET_NAMES, loadDataset } from '../../data/node.js';
import { readForModel } from '../../data/node-sources.js';
import { initBackend } from '../../kernels/index.js';
import { checkWritable } from '../../io/node-atomic.js';
import { saveModelDir } from '../../io/node-model-dir.js';
import { BatchNormBase } from '../../nn/batchnorm.js';
import { recomputeBatchNormStats } from '../../nn/precise-bn.js';
import { evaluate } from '../../train/evaluate.js';
import { loadModelSource, modelArgument, type ModelSource } from '../model-files.js';
import { noteSkipped, readRunConfig, runData } from '../run-data.js';
import { backendOption, columnList, positiveInt, seed } from '../options.js';

interface RecalibrateFlags {
  model: string;
  out?: string;
  inPlace?: boolean;
  data?: string;
  dataset?: string;
  batches: number;
  batch: number;
  seed: number;
  backend: string;
  ignoreColumns?: string[];
}

export function register(program: Command): Command {
  return program
    .command('recalibrate')
    .summary("replace a model's BN running averages by population statistics (precise BN)")
    .description('Run many training batches through a trained model with its weights fixed and set every batch-norm layer\'s running mean and variance to the exact average of the batch statistics (as Detectron2/fvcore\'s precise BN). The EWA a run ends with is dominated by its last few hundred batches, taken while the weights still moved; population statistics describe the final weights. Test accuracy is printed before and after.')
    .addOption(new Option('--model <dir>', 'a trained model directory (model.json + model.safetensors, e.g. a run directory)').argParser(modelArgument).makeOptionMandatory())
    .option('--out <dir>', 'write the recalibrated model here (a new or empty directory)')
    .option('--in-place', 'replace the model files in --model instead (atomically)')
    .option('--data <path>', "training data for the statistics instead of the run's own: a CSV file with the training columns (the label column may be missing: only the inputs are used), an IDX directory, or class folders of PNG images (read as the model reads its input, standardization included)")
    .addOption(new Option('--dataset <name>', "a bundled training set for the statistics instead of the run's own").choices([...DATASET_NAMES]).conflicts('data'))
    .addOption(new Option('--ignore-columns <names>', "CSV: columns to skip, comma-separated (columns the model does not read are skipped anyway, with a note)").argParser(columnList))
    .addOption(new Option('--batches <n>', 'number of training batches to average').argParser(positiveInt).default(200))
    .addOption(new Option('--batch <n>', 'batch size for the statistics (use the training batch size)').argParser(positiveInt).default(60))
    .addOption(new Option('--seed <s>', 'seed of the batch order').argParser(seed).default(0))
    .addOption(backendOption())
    .addHelpText('after', `
Examples:
  $ bnlab recalibrate --model runs/a --out runs/a-precise
  $ bnlab recalibrate --model runs/a --in-place --batches 500
  $ bnlab recalibrate --model runs/mine --data more-training-rows.csv --out runs/mine-precise`)
    .action(async (flags: RecalibrateFlags) => {
      if (!flags.out === !flags.inPlace) throw new Error('Give exactly one of --out DIR (write a new model directory) or --in-place (replace the model in --model)');
      if (flags.out && existsSync(flags.out) && readdirSync(flags.out).length > 0) throw new Error(`--out ${flags.out} exists and is not empty; choose a new directory (nothing was written)`);
      if (flags.out) checkWritable(flags.out, 'directory', '--out');
      await initBackend(flags.backend);
      const source = loadModelSource(flags.model);
      if (!source.dir) throw new Error(`--model ${flags.model} is a preset, not a trained model directory: recalibrating untrained weights means nothing. Train first (bnlab train --out DIR) and pass DIR.`);
      const layers = [...source.model.modules()].filter((m) => m instanceof BatchNormBase && m.trackRunningStats);
      if (layers.length === 0) throw new Error(`${source.dir} has no batch-norm layers with running statistics: nothing to recalibrate`);
      const dir = source.dir;
      const { trainSet, trainingWhat, testSet, testWhat } = await recalibrationData(flags, { ...source, dir });
      if (trainSet.count < flags.batch) throw new Error(`${trainingWhat} has ${trainSet.count} samples, fewer than one batch of --batch ${flags.batch}; give a smaller --batch`);
      if (flags.batch < 2) throw new Error('--batch 1: a batch of one has no batch statistics (its variance is 0); use the training batch size');
      const inputShape = source.inputShape;
      const before = testSet ? evaluate(source.model, testSet, { inputShape }) : null;
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
      const after = testSet ? evaluate(source.model, testSet, { inputShape }) : null;
      const outDir = resolve(flags.out ?? dir);
      saveModelDir(outDir, source.model, { inputShape, preset: source.preset, classNames: source.classNames, dataset: source.dataset ?? flags.dataset, preprocessing: source.preprocessing });
      // The run's config.json goes along, so evaluate finds the same test data (and split) for the new model.
      const config = join(dir, 'config.json');
      if (flags.out && existsSync(config)) copyFileSync(config, join(outDir, 'config.json'));
      const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
      // Past one pass the loader reshuffles the same samples: said, so that a small set is not read as many batches' worth.
      const perPass = Math.floor(trainSet.count / flags.batch);
      const passes = result.batches > perPass ? ` (${(result.batches / perPass).toFixed(result.batches % perPass === 0 ? 0 : 1)} passes over its ${perPass} batch${perPass === 1 ? '' : 'es'}, reshuffled each time)` : '';
      console.log(`Recomputed the running statistics of ${result.layers.length} batch-norm layer${result.layers.length === 1 ? "" : "s"} over ${result.batches} batches of ${flags.batch} from ${trainingWhat}${passes}, in ${seconds.toFixed(1)} s.`);
      if (before && after) console.log(`Test accuracy on ${testWhat}: ${pct(before.accuracy)} with the running averages, ${pct(after.accuracy)} with population statistics (loss ${before.loss.toFixed(4)} → ${after.loss.toFixed(4)}).`);
      else console.log(`Test accuracy not measured: ${dir} is not a run directory, so its test data is unknown (bnlab evaluate --model ${outDir} --data PATH measures it).`);
      console.log(`Saved ${outDir}`);
    });
}

/** Training data for the statistics, and the run's test data for the before/after accuracy (null when unknown). */
async function recalibrationData(flags: RecalibrateFlags, source: ModelSource & { dir: string }): Promise<{ trainSet: Dataset; trainingWhat: string; testSet: Dataset | null; testWhat: string }> {
  const config = readRunConfig(source.dir, 'give the training data with --data PATH or --dataset NAME');
  const known = config !== null || (source.dataset !== undefined && DATASET_NAMES.includes(source.dataset) && !source.preprocessing?.standardize);
  const test = known || flags.dataset ? await runData({ dataset: flags.dataset }, source, config) : null;
  if (flags.data) {
    const { dataset, skipped } = await readForModel(flags.data, source, { unlabelled: true, ignore: flags.ignoreColumns });
    noteSkipped(flags.data, skipped);
    return { trainSet: dataset, trainingWhat: `${flags.data} (${dataset.count} samples)`, testSet: test?.testSet ?? null, testWhat: test?.testDescription ?? '' };
  }
  if (flags.dataset) {
    if (source.preprocessing?.standardize) throw new Error(`${source.dir} standardizes its input, which the bundled ${flags.dataset} is not made for; use the run's own data (no --dataset) or --data PATH`);
    return { trainSet: loadDataset(flags.dataset, 'train'), trainingWhat: `the ${flags.dataset} training set`, testSet: test?.testSet ?? null, testWhat: test?.testDescription ?? '' };
  }
  if (!test) throw new Error(`${source.dir} is not a run directory (no config.json) and names no bundled dataset, so its training data is unknown; give --data PATH`);
  const trainSet = await test.training();
  const trainingWhat = config?.dataPath ? `the run's training data from ${config.dataPath} (${trainSet.count} samples)` : `the ${config?.dataset ?? source.dataset} training set (${trainSet.count} images)`;
  return { trainSet, trainingWhat, testSet: test.testSet, testWhat: test.testDescription };
}
