/**
 * `bnlab start` (`npm start`), the main job: train the paper's MNIST network (ioffe-mlp) with and
 * without batch norm, same learning rate and seed, in parallel on two worker threads (one per core),
 * then print both test-accuracy curves side by side and where the runs were saved.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import cliProgress from 'cli-progress';
import { Command, Option } from 'commander';
import { getPreset } from '../../models/presets.js';
import type { TrainMetrics } from '../../train/trainer.js';
import { backendOption, nonNegativeInt, positiveInt, positiveNumber, seed } from '../options.js';
import { createProgress, formatAccuracy, type ProgressReporter } from '../progress.js';
import type { WorkerMessage } from '../start-worker.js';
import { runStartExperiments, type StartExperimentFlags } from '../start-experiments.js';
import { DEFAULT_BATCH, DEFAULT_SEED, defaultRunDir, resolveTrainConfig, type TrainConfig, type TrainResult } from './train.js';

/** Steps per network: a few thousand, so both finish in well under 3 minutes on 2 cores. */
export const START_STEPS = 3000;
export const START_EVAL_EVERY = 500;
const MODEL = 'ioffe-mlp';

interface StartFlags {
  steps: number;
  evalEvery: number;
  batch: number;
  lr?: number;
  seed: number;
  backend: string;
  trainLimit?: number;
  testLimit?: number;
  runsDir: string;
}

interface JobOutcome {
  label: string;
  runDir: string;
  curve: TrainMetrics[];
  result?: Omit<TrainResult, 'history'>;
  error?: string;
}

export function register(program: Command): Command {
  return program
    .command('start')
    .summary('the main job: the paper\'s MNIST network with and without batch norm, side by side')
    .description(`Train the Batch Normalization paper's MNIST network (${MODEL}: 784-100-100-100-10, sigmoid) with and without batch norm, with the same learning rate, seed and batches, in parallel on two worker threads; then print both test accuracies side by side. Then run the convergence and distribution experiments (why it works: Figure 1 of the paper) and write <runs-dir>/experiments/report.html.`)
    .addOption(new Option('--steps <n>', 'training steps per network').argParser(positiveInt).default(START_STEPS))
    .addOption(new Option('--eval-every <n>', 'test-set evaluation every n steps').argParser(nonNegativeInt).default(START_EVAL_EVERY))
    .addOption(new Option('--batch <n>', 'mini-batch size').argParser(positiveInt).default(DEFAULT_BATCH))
    .addOption(new Option('--lr <x>', `SGD learning rate for both networks (default: the preset's, ${getPreset(MODEL).defaultLr})`).argParser(positiveNumber))
    .addOption(new Option('--seed <s>', 'seed for initial weights and shuffling').argParser(seed).default(DEFAULT_SEED))
    .addOption(backendOption())
    .addOption(new Option('--train-limit <n>', 'use only the first n training images').argParser(positiveInt))
    .addOption(new Option('--test-limit <n>', 'use only the first n test images').argParser(positiveInt))
    .option('--runs-dir <dir>', 'where the two run directories go', 'runs')
    .option('--no-experiments', 'skip the convergence and distribution experiments that follow the training')
    .addHelpText(
      'after',
      `
Examples:
  $ npm start
  $ bnlab start --steps 10000
  $ bnlab start --lr 0.2 --seed 7`,
    )
    .action(async (flags: StartFlags & StartExperimentFlags, command: Command) => {
      const now = new Date();
      const configs = [true, false].map((bn) =>
        resolveTrainConfig(
          {
            dataset: 'mnist',
            model: MODEL,
            bn,
            steps: flags.steps,
            batch: flags.batch,
            lr: flags.lr,
            optimizer: 'sgd',
            weightDecay: 0,
            schedule: 'constant',
            lrGamma: 0.1,
            seed: flags.seed,
            evalEvery: flags.evalEvery,
            bnMomentum: 0.1,
            bnEps: 1e-5,
            biasCorrection: true,
            backend: flags.backend,
            threads: 1, // the two networks already train side by side, one per core
            trainLimit: flags.trainLimit,
            testLimit: flags.testLimit,
            out: defaultRunDir(MODEL, bn, now, flags.runsDir),
          },
          now,
        ),
      );
      const c = configs[0];
      console.log(`Training ${MODEL} (784-100-100-100-10, sigmoid) on MNIST with and without batch norm: ${c.steps} steps of batch ${c.batchSize}, SGD lr ${c.optimizer.lr} for both, seed ${c.seed}, two worker threads`);
      const started = Date.now();
      const outcomes = await runJobs(configs, ['with BN', 'without BN']);
      const seconds = (Date.now() - started) / 1000;
      const failed = outcomes.filter((o) => o.error);
      if (failed.length) throw new Error(failed.map((o) => `${o.label}: ${o.error}`).join('\n'));
      console.log('');
      console.log(comparisonTable(outcomes));
      console.log('');
      const [bn, plain] = outcomes.map((o) => o.result!);
      console.log(`Test accuracy after ${c.steps} steps: ${formatAccuracy(bn.test.accuracy)} with batch norm, ${formatAccuracy(plain.test.accuracy)} without.`);
      console.log(`Wall time: ${seconds.toFixed(1)} s for both networks in parallel.`);
      console.log('Runs:');
      for (const o of outcomes) console.log(`  ${o.label.padEnd(11)} ${o.runDir}`);
      await runStartExperiments(flags, command);
    });
}

/** Run each config on its own worker thread; resolves when all have finished (or failed). */
function runJobs(configs: TrainConfig[], labels: string[]): Promise<JobOutcome[]> {
  // Under tsx the sources are .ts files, built they are .js: start the worker file of the same kind.
  const here = fileURLToPath(import.meta.url);
  const ext = extname(here);
  const workerUrl = new URL(`../start-worker${ext}`, import.meta.url);
  // Run from sources (tsx), the worker is a .ts file, and workers do not inherit tsx's loader:
  // register it in the worker before importing the file.
  const spawnWorker = (workerData: unknown) =>
    ext === '.ts'
      ? new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(workerUrl.href)}); })`, { eval: true, workerData })
      : new Worker(workerUrl, { workerData });
  const tty = Boolean(process.stderr.isTTY);
  const width = Math.max(...labels.map((l) => l.length));
  const multi = tty
    ? new cliProgress.MultiBar({ stream: process.stderr, hideCursor: false, format: '{label} {bar} {percentage}% | step {value}/{total} | loss {loss} | test acc {acc}' }, cliProgress.Presets.shades_classic)
    : null;

  const jobs = configs.map(
    (config, i) =>
      new Promise<JobOutcome>((resolveJob) => {
        const label = labels[i];
        const outcome: JobOutcome = { label, runDir: config.out, curve: [] };
        const worker = spawnWorker({ config });
        let reporter: ProgressReporter | null = null;
        let bar: cliProgress.SingleBar | null = null;
        let loss = '-';
        let acc = '-';
        worker.on('message', (msg: WorkerMessage) => {
          switch (msg.type) {
            case 'start':
              outcome.runDir = msg.runDir;
              if (multi) bar = multi.create(msg.totalSteps, 0, { label: label.padEnd(width), loss, acc });
              else reporter = createProgress({ total: msg.totalSteps, label: label.padEnd(width), tty: false, intervalSeconds: 30 });
              break;
            case 'metrics':
              if (msg.metrics.split === 'test') outcome.curve.push(msg.metrics);
              if (msg.metrics.split === 'train') loss = msg.metrics.loss.toFixed(4);
              else acc = formatAccuracy(msg.metrics.accuracy);
              reporter?.onMetrics(msg.metrics);
              bar?.update({ loss, acc });
              break;
            case 'step':
              reporter?.onStep(msg.step);
              bar?.update(msg.step, { loss, acc });
              break;
            case 'done':
              outcome.result = msg.result;
              break;
            case 'error':
              outcome.error = msg.message;
              break;
          }
        });
        worker.on('error', (err) => {
          outcome.error = err.message;
        });
        worker.on('exit', (code) => {
          if (!outcome.result && !outcome.error) outcome.error = `worker exited with code ${code}`;
          reporter?.stop();
          resolveJob(outcome);
        });
      }),
  );
  return Promise.all(jobs).finally(() => multi?.stop());
}

/** Test accuracy of each job at every evaluated step, side by side. */
export function comparisonTable(outcomes: JobOutcome[]): string {
  const steps = [...new Set(outcomes.flatMap((o) => o.curve.map((m) => m.step)))].sort((a, b) => a - b);
  const header = ['step', ...outcomes.map((o) => o.label)];
  const rows = steps.map((s) => [String(s), ...outcomes.map((o) => formatAccuracy(o.curve.find((m) => m.step === s)?.accuracy))]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const fmt = (r: string[]) => '  ' + r.map((cell, c) => cell.padStart(widths[c])).join('   ');
  return ['MNIST test accuracy', fmt(header), ...rows.map(fmt)].join('\n');
}
