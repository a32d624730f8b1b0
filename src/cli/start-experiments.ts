/**
 * The second half of `bnlab start`: after both networks have trained, the `convergence` and
 * `distribution` experiments at a size that takes a few minutes, the joined report page, its path and a
 * three-line summary.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import type { ConvergenceSettings } from '../experiments/convergence.js';
import type { DistributionSettings } from '../experiments/distribution.js';
import type { ExperimentResult } from '../experiments/types.js';
import { runAndWrite } from './commands/experiment.js';
import { experimentRunDir, writeCombinedReport } from './experiment-runs.js';

/** Convergence at `bnlab start` size: the start's step count, a shorter sweep. */
export function startConvergenceSettings(steps: number): Partial<ConvergenceSettings> {
  const checkpoints = [500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000].filter((s) => s < steps).concat(steps);
  return { steps, evalEvery: Math.max(1, Math.round(steps / 30)), target: 0.95, checkpoints, sweepLrs: [0.03, 0.1, 0.3, 1, 3, 10, 30, 100], sweepSteps: Math.min(500, steps) };
}

export function startDistributionSettings(steps: number): Partial<DistributionSettings> {
  return { steps, probeEvery: Math.max(1, Math.round(steps / 30)), probeSize: 1_000 };
}

export interface StartExperimentFlags {
  experiments?: boolean;
  seed: number;
  backend: string;
  steps: number;
  lr?: number;
  runsDir: string;
  trainLimit?: number;
  testLimit?: number;
}

/**
 * Run both experiments (unless `--no-experiments`, or the data is limited: they are about the full
 * MNIST sets), write their run directories and the joined report, and print the report's path and the
 * summary. Experiments use the fastest kernels unless `--backend` was given.
 */
export async function runStartExperiments(flags: StartExperimentFlags, command: Command): Promise<ExperimentResult[]> {
  if (flags.experiments === false) return [];
  if (flags.trainLimit !== undefined || flags.testLimit !== undefined) {
    console.log('');
    console.log('Skipping the convergence and distribution experiments: they use the full MNIST sets (run without --train-limit/--test-limit, or bnlab experiment NAME).');
    return [];
  }
  const backend = command.getOptionValueSource('backend') === 'default' ? 'auto' : flags.backend;
  const root = join(flags.runsDir, 'experiments');
  console.log('');
  console.log(`Why it works: the convergence (Figure 1a, plus a learning-rate sweep) and distribution (Figure 1b, c) experiments, ${flags.steps} steps per network.`);
  const started = Date.now();
  const lr = flags.lr === undefined ? {} : { lr: flags.lr };
  const sizes = { convergence: { ...startConvergenceSettings(flags.steps), ...lr }, distribution: { ...startDistributionSettings(flags.steps), ...lr } };
  const results: ExperimentResult[] = [];
  for (const name of ['convergence', 'distribution'] as const) {
    const { result, run } = await runAndWrite(name, { quick: false, seed: flags.seed, seeds: 1, backend, out: experimentRunDir(name, new Date(), root), overrides: sizes[name] });
    results.push(result);
    console.log(`  ${name.padEnd(12)} ${run.dir} (${result.wallTimeSeconds.toFixed(0)} s)`);
  }
  const report = await writeCombinedReport(root);
  const [convergence, distribution] = results;
  console.log('');
  console.log(`Report: ${report.path}`);
  for (const line of [convergence.summary[0], convergence.summary[2], distribution.summary[0]]) console.log(`  ${line}`);
  console.log(`Experiments wall time: ${((Date.now() - started) / 1000).toFixed(0)} s (${convergence.backend} kernels).`);
  return results;
}
