/**
 * `bnlab experiment NAME`: run one of the experiments behind "why batch norm works" on MNIST and write
 * runs/experiments/NAME-<timestamp>/ with results.json, the plots as SVG and PNG, and report.html.
 */
import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadDataset } from '../../data/node.js';
import { experimentNames, getExperiment } from '../../experiments/index.js';
import type { ExperimentData, ExperimentDefinition, ExperimentProgress, ExperimentResult } from '../../experiments/types.js';
import { initBackend } from '../../kernels/index.js';
import { EXPERIMENTS_DIR, experimentRunDir, writeExperimentRun, type WrittenRun } from '../experiment-runs.js';
import { backendOption, positiveInt, seed } from '../options.js';

interface ExperimentFlags {
  quick?: boolean;
  seed: number;
  seeds?: number;
  out?: string;
  backend: string;
  set: Record<string, number | number[] | string>;
  dataset: string;
}

export function register(program: Command): Command {
  return program
    .command('experiment')
    .summary('run one experiment on why batch norm works, with plots and a report')
    .description(
      `Run an experiment and write runs/experiments/NAME-<timestamp>/ with results.json (every curve and setting), the plots as SVG and PNG, and report.html (plots, a reading generated from the numbers, settings). Experiments: ${experimentNames().join(', ')}.`,
    )
    .argument('<name>', `one of: ${experimentNames().join(', ')}`)
    .option('--quick', 'the small size (about a minute on 2 cores) instead of the full one')
    .addOption(new Option('--seed <s>', 'seed for weights, shuffling and every random choice; the same seed and kernels repeat a run exactly (the first seed with --seeds)').argParser(seed).default(1))
    .addOption(new Option('--seeds <n>', 'run seeds s, s+1, ... s+n-1 and combine them: mean and min–max band per curve, each effect with the number of seeds it held on (default: 1 with --quick, 3 at full size)').argParser(positiveInt))
    .option('--out <dir>', `run directory (default: ${EXPERIMENTS_DIR}/NAME-<timestamp>)`)
    .addOption(backendOption())
    .addOption(new Option('--dataset <name>', 'dataset: mnist or fashion-mnist').default('mnist'))
    .addOption(new Option('--set <key=value...>', 'override a setting, e.g. --set steps=2000 --set sweepLrs=0.1,1,10 (names: see results.json "settings")').argParser(collectSetting).default({}))
    .addHelpText(
      'after',
      `
Examples:
  $ bnlab experiment convergence                 Figure 1(a): 50,000 steps with and without BN, plus a learning-rate sweep
  $ bnlab experiment distribution --quick        Figure 1(b, c) in about a minute
  $ bnlab experiment input-scale --seed 7
  $ bnlab experiment two-feature --seeds 3      two features, scale ratio 1 to 1000: contours, paths, steps to a fixed loss (seconds)
  $ bnlab experiment batch-size --quick --seeds 3   three seeds: mean, min–max bands, effects held on k of 3
  $ bnlab experiment batch-size --set epochs=10
  $ bnlab report                                 join every run into runs/experiments/report.html`,
    )
    .action(async (name: string, flags: ExperimentFlags) => {
      const definition = getExperiment(name);
      const written = await runAndWrite(definition.name, {
        quick: flags.quick ?? false,
        seed: flags.seed,
        seeds: flags.seeds,
        out: flags.out,
        backend: flags.backend,
        dataset: flags.dataset,
        overrides: flags.set,
      });
      printOutcome(written.result, written.run);
    });
}

export interface RunAndWriteOptions {
  quick: boolean;
  seed: number;
  /** How many seeds (seed, seed + 1, ...); default 1 at the quick size, 3 at the full size. */
  seeds?: number;
  out?: string;
  backend: string;
  dataset?: string;
  overrides?: Record<string, unknown>;
  /** Progress bar label; default the experiment name. */
  label?: string;
}

/** Load the data, run the experiment with a progress bar, write its run directory. */
export async function runAndWrite(name: string, options: RunAndWriteOptions): Promise<{ result: ExperimentResult; run: WrittenRun }> {
  const definition = getExperiment(name);
  const overrides = checkOverrides(definition, options.overrides ?? {});
  const dir = options.out ?? experimentRunDir(name);
  await initBackend(options.backend);
  const dataset = options.dataset ?? 'mnist';
  const data: ExperimentData = { train: loadDataset(dataset, 'train'), test: loadDataset(dataset, 'test') };
  const progress = progressBar(options.label ?? name);
  let result: ExperimentResult;
  try {
    result = await definition.run({ ...overrides, data, quick: options.quick, seed: options.seed, seeds: options.seeds, onProgress: progress.update });
  } finally {
    progress.stop();
  }
  const run = await writeExperimentRun(result, dir);
  return { result, run };
}

export function printOutcome(result: ExperimentResult, run: WrittenRun): void {
  console.log(`${result.experiment}: ${result.title} (${result.quick ? 'quick' : 'full size'}, ${result.seeds.length === 1 ? `seed ${result.seed}` : `seeds ${result.seeds.join(', ')}`}, ${result.backend} kernels, ${result.wallTimeSeconds.toFixed(1)} s)`);
  for (const line of result.summary) console.log(`  ${line}`);
  console.log('');
  for (const p of result.reading) console.log(p);
  console.log('');
  console.log(`Report: ${run.report}`);
}

/**
 * `--set` names must be settings of the experiment, so a typo stops the run instead of running the
 * default; one value where the setting is a list becomes a one-element list.
 */
function checkOverrides(definition: ExperimentDefinition, overrides: Record<string, unknown>): Record<string, unknown> {
  const names = Object.keys(definition.settings);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(overrides)) {
    if (!names.includes(key)) throw new Error(`--set ${key}=...: ${definition.name} has no setting "${key}"; its settings are ${names.join(', ')}`);
    out[key] = Array.isArray(definition.settings[key]) && !Array.isArray(value) ? [value] : value;
  }
  return out;
}

/** `--set key=value`: a number, a comma-separated list (of numbers, or else of words), or text. */
function collectSetting(value: string, previous: Record<string, unknown>): Record<string, unknown> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`Expected key=value (e.g. steps=2000), got "${value}".`);
  const key = value.slice(0, eq).trim();
  const raw = value.slice(eq + 1).trim();
  const parts = raw.split(',').map((p) => p.trim());
  const numbers = parts.map(Number);
  // One value where the setting is a list becomes a one-element list in checkOverrides, which knows the settings.
  const allNumbers = parts.every((p) => p !== '' && Number.isFinite(Number(p)));
  const parsed = parts.length > 1 ? (allNumbers ? numbers : parts) : allNumbers ? numbers[0] : raw;
  return { ...previous, [key]: parsed };
}

/** A cli-progress bar on a terminal; otherwise a line every 30 s, so logs stay readable. */
function progressBar(label: string): { update: (p: ExperimentProgress) => void; stop: () => void } {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { stream: process.stderr, hideCursor: true, format: `${label} {bar} {percentage}% | {phase} | ETA {eta_formatted}`, etaBuffer: 500 },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(p) {
        if (!started) {
          started = true;
          bar.start(p.total, p.done, { phase: p.phase });
        } else bar.update(p.done, { phase: p.phase });
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  // The first line after 30 s: a run shorter than that prints only its result, not "0%".
  let last = Date.now();
  return {
    update(p) {
      if (Date.now() - last < 30_000) return;
      last = Date.now();
      console.error(`${label}: ${((100 * p.done) / Math.max(1, p.total)).toFixed(0)}% (${p.phase})`);
    },
    stop() {},
  };
}
