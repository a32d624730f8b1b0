/**
 * `bnlab evaluate --model RUN [--data PATH] [--stats running|population|batch] [--json]`: loss, accuracy,
 * per-class precision/recall/F1 and the confusion matrix of a trained model, in eval mode. Without --data
 * it recreates the run's own test set from config.json (bundled dataset, --test-data, or the same seeded
 * split), with the same preprocessing. The metric math is src/train/metrics.ts.
 */
import { Command, Option } from 'commander';
import { DataLoader } from '../../data/loader.js';
import { DATASET_NAMES } from '../../data/node.js';
import { initBackend } from '../../kernels/index.js';
import { BatchNormBase } from '../../nn/batchnorm.js';
import { recomputeBatchNormStats } from '../../nn/precise-bn.js';
import { evaluate } from '../../train/evaluate.js';
import { classificationReport, confusionMatrix, type ClassificationReport } from '../../train/metrics.js';
import { loadModelSource, modelArgument } from '../model-files.js';
import { readRunConfig, runData } from '../run-data.js';
import { backendOption, columnList, positiveInt, seed } from '../options.js';
import { formatLoss, listName, nameList } from '../format.js';

type Stats = 'running' | 'population' | 'batch';

interface EvaluateFlags {
  model: string;
  data?: string;
  dataset?: string;
  stats: Stats;
  batch?: number;
  batches: number;
  seed: number;
  json?: boolean;
  backend: string;
  ignoreColumns?: string[];
}

/** What `--json` prints. */
export interface EvaluationOutput {
  model: string;
  data: string;
  count: number;
  loss: number;
  accuracy: number;
  stats: Stats;
  /** Batch size of the forward passes (with stats "batch", the size of the batches normalized together). */
  batchSize: number;
  /** With stats "population": training batches averaged. */
  populationBatches?: number;
  classes: string[];
  perClass: ClassificationReport['perClass'];
  macro: ClassificationReport['macro'];
  /** Classes with no samples and no predictions, left out of the macro average (as scikit-learn). */
  absentClasses: string[];
  weighted: ClassificationReport['weighted'];
  /** Rows: true class; columns: predicted class. */
  confusionMatrix: number[][];
}

export function register(program: Command): Command {
  return program
    .command('evaluate')
    .summary('loss, accuracy, per-class precision/recall/F1 and the confusion matrix of a trained model')
    .description("Evaluate a trained model in eval mode on the run's own test set (recreated from its config.json: the bundled test set, --test-data, or the same seeded split) or on --data PATH, with the run's preprocessing (standardization, image size). Prints loss, accuracy, precision, recall and F1 per class with macro and weighted averages, and the confusion matrix; --json prints one JSON object.")
    .addOption(new Option('--model <run>', 'a trained model directory (a run directory)').argParser(modelArgument).makeOptionMandatory())
    .option('--data <path>', 'evaluate on this data instead (a CSV file with the training columns, an IDX directory, or class folders of PNG images): all of it, or an IDX directory\'s test pair')
    .addOption(new Option('--dataset <name>', 'a bundled test set instead').choices([...DATASET_NAMES]).conflicts('data'))
    .addOption(new Option('--ignore-columns <names>', "CSV: columns to skip, comma-separated (columns the model does not read are skipped anyway, with a note)").argParser(columnList))
    .addOption(
      new Option('--stats <which>', 'batch-norm statistics: running (the averages saved with the model), population (recomputed over training batches with the weights fixed, as bnlab recalibrate), batch (each evaluation batch normalized with its own statistics)')
        .choices(['running', 'population', 'batch'])
        .default('running'),
    )
    .addOption(new Option('--batch <n>', "batch size: of the evaluation batches with --stats batch, of the training batches with --stats population (default: the run's training batch, else 60)").argParser(positiveInt))
    .addOption(new Option('--batches <n>', '--stats population: training batches to average').argParser(positiveInt).default(200))
    .addOption(new Option('--seed <s>', '--stats population: seed of the batch order').argParser(seed).default(0))
    .option('--json', 'print the result as one JSON object')
    .addOption(backendOption())
    .addHelpText(
      'after',
      `
Examples:
  $ bnlab evaluate --model runs/NAME                        the run's own test set
  $ bnlab evaluate --model runs/NAME --data more.csv --json
  $ bnlab evaluate --model runs/NAME --stats batch --batch 60
  $ bnlab evaluate --model runs/NAME --stats population`,
    )
    .action(async (flags: EvaluateFlags) => {
      await initBackend(flags.backend);
      const source = loadModelSource(flags.model);
      if (!source.dir) throw new Error(`--model ${flags.model} is a preset: evaluating untrained weights means nothing. Train first (bnlab train --out DIR) and pass DIR.`);
      const config = readRunConfig(source.dir, 'pass --data PATH to evaluate on data of your choice');
      const { testSet, testDescription: what, training } = await runData(flags, { ...source, dir: source.dir }, config);
      const bn = [...source.model.modules()].filter((m): m is BatchNormBase => m instanceof BatchNormBase && m.trackRunningStats);
      if (flags.stats !== 'running' && bn.length === 0) console.warn(`bnlab warning: ${source.dir} has no batch-norm layers, so --stats ${flags.stats} changes nothing`);
      const runBatch = typeof config?.batchSize === 'number' ? config.batchSize : 60;
      const batchSize = flags.batch ?? (flags.stats === 'batch' ? runBatch : 1000);
      // Batch statistics of one value per channel do not exist (variance 0): refuse before any work.
      if (flags.stats !== 'running' && bn.length && flags.batch === 1) {
        throw new Error(`--stats ${flags.stats} --batch 1: a batch of one has no batch statistics (its variance is 0); give --batch 2 or more${flags.stats === 'batch' ? ', or --stats running to normalize each example with the running averages' : ' (the training batch size is best)'}`);
      }
      let populationBatches: number | undefined;
      if (flags.stats === 'population' && bn.length) {
        const train = await training();
        const loader = new DataLoader(train, { batchSize: Math.min(flags.batch ?? runBatch, train.count), shuffle: true, seed: flags.seed, dropLast: true });
        const shape = source.inputShape;
        const batches = (function* () {
          for (let i = 0; i < flags.batches; i++) {
            const b = loader.next();
            yield b.x.reshape([b.labels.length, ...shape]);
          }
        })();
        populationBatches = recomputeBatchNormStats(source.model, batches).batches;
      }
      if (flags.stats === 'batch' && bn.length) {
        const size = Math.min(batchSize, testSet.count);
        if (testSet.count % size === 1) throw new Error(`--stats batch with batches of ${size}: the last of the ${testSet.count} samples would be a batch of 1, which has no batch statistics; choose another --batch`);
      }
      const result = evaluate(source.model, testSet, { inputShape: source.inputShape, batchSize: Math.min(batchSize, testSet.count), useBatchStatistics: flags.stats === 'batch', predictions: true });
      const classes = source.classNames ?? testSet.classNames ?? Array.from({ length: testSet.numClasses }, (_, k) => String(k));
      const report = classificationReport(confusionMatrix(testSet.labels, result.predicted!, classes.length), classes);
      const out: EvaluationOutput = {
        model: source.dir,
        data: what,
        count: result.count,
        loss: result.loss,
        accuracy: result.accuracy,
        stats: flags.stats,
        batchSize: Math.min(batchSize, testSet.count),
        ...(populationBatches !== undefined ? { populationBatches } : {}),
        classes,
        perClass: report.perClass,
        macro: report.macro,
        absentClasses: report.absent,
        weighted: report.weighted,
        confusionMatrix: report.confusion,
      };
      if (flags.json) {
        console.log(JSON.stringify(out));
        return;
      }
      const statsText =
        flags.stats === 'running'
          ? `running statistics${bn.some((b) => b.biasCorrection) ? ' (bias-corrected)' : ''}`
          : flags.stats === 'population'
            ? `population statistics over ${populationBatches ?? 0} training batches of ${Math.min(flags.batch ?? runBatch, testSet.count)}`
            : `batch statistics of each evaluation batch of ${out.batchSize}`;
      console.log(`${source.dir} on ${what}`);
      console.log(`eval mode, ${bn.length ? `${bn.length} batch-norm layer${bn.length > 1 ? 's' : ''} with ${statsText}` : 'no batch-norm layers'}`);
      console.log(`loss ${formatLoss(out.loss)}, accuracy ${(out.accuracy * 100).toFixed(2)}% (${Math.round(out.accuracy * out.count)} of ${out.count})`);
      console.log('');
      console.log(formatReport(report));
    });
}

/** The classification report and the confusion matrix as text tables. */
export function formatReport(report: ClassificationReport): string {
  const names = report.perClass.map((m) => listName(m.name));
  const nameWidth = Math.max(12, ...names.map((n) => n.length));
  const f = (x: number) => x.toFixed(3).padStart(9);
  const lines = [`${'class'.padEnd(nameWidth)}  precision     recall         f1    support`];
  for (const m of report.perClass) lines.push(`${m.name.padEnd(nameWidth)}  ${f(m.precision)}  ${f(m.recall)}  ${f(m.f1)}  ${String(m.support).padStart(9)}`);
  lines.push('');
  lines.push(`${'macro avg'.padEnd(nameWidth)}  ${f(report.macro.precision)}  ${f(report.macro.recall)}  ${f(report.macro.f1)}  ${String(report.count).padStart(9)}`);
  lines.push(`${'weighted avg'.padEnd(nameWidth)}  ${f(report.weighted.precision)}  ${f(report.weighted.recall)}  ${f(report.weighted.f1)}  ${String(report.count).padStart(9)}`);
  // As scikit-learn: a class with neither samples nor predictions has no precision or recall to average.
  if (report.absent.length) lines.push(`(macro avg over the ${names.length - report.absent.length} of ${names.length} classes that occur; left out, with no samples and no predictions here: ${nameList(report.absent)})`);
  lines.push('');
  lines.push('Confusion matrix (rows: true class, columns: predicted class)');
  const short = names.map((n) => (n.length > 10 ? `${n.slice(0, 9)}…` : n));
  const cell = Math.max(5, ...short.map((n) => n.length), ...report.confusion.flat().map((v) => String(v).length));
  lines.push(`${''.padEnd(nameWidth)}  ${short.map((n) => n.padStart(cell)).join(' ')}`);
  report.confusion.forEach((row, t) => lines.push(`${names[t].padEnd(nameWidth)}  ${row.map((v) => String(v).padStart(cell)).join(' ')}`));
  return lines.join('\n');
}
