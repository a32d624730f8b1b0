/**
 * `convergence`: Figure 1(a) of Ioffe & Szegedy (2015). The `ioffe-mlp` network with and without batch
 * norm, trained with plain SGD from the same initial weights on the same batches: test accuracy and
 * training loss against steps, the steps each needs to reach a target accuracy, and a learning-rate
 * sweep whose largest rate that still trains is the headline figure.
 */
import { xyChart, type Figure, type Row } from '../report/charts.js';
import { firstUpTo } from './data.js';
import { formatCount, formatDuration, formatNumber, formatPercent, formatRatio, formatValue } from './format.js';
import { BASE_LR, baseModelDescription, buildNetwork } from './models.js';
import { ProgressTicker } from './progress.js';
import { runEverySeed, startRun } from './settings.js';
import { figuresOverSeeds, type EffectMeasure } from './seeds.js';
import { firstReaching } from './stats.js';
import { everyNSteps, trainNetwork, type LossPoint, type TestPoint, type TrainRun } from './train-run.js';
import type { ExperimentDefinition, ExperimentOptions, ExperimentResult } from './types.js';

export type Network = 'bn' | 'plain';
export const NETWORKS: readonly Network[] = ['bn', 'plain'];
export const NETWORK_LABELS: Record<Network, string> = { bn: 'with BN', plain: 'without BN' };

export interface ConvergenceSettings {
  /** Training steps of the two main runs. */
  steps: number;
  batchSize: number;
  /** Learning rate of the two main runs (the same for both, as in the paper's comparison). */
  lr: number;
  /** Evaluate on the test set every this many steps. */
  evalEvery: number;
  /** Test examples evaluated (the first ones of the test set). */
  testSize: number;
  /** Test accuracy whose first crossing is compared. */
  target: number;
  /** Steps at which the reading quotes both accuracies. */
  checkpoints: number[];
  /** Learning rates of the sweep. */
  sweepLrs: number[];
  /** Training steps per rate in the sweep. */
  sweepSteps: number;
}

export type ConvergenceOptions = ExperimentOptions & Partial<ConvergenceSettings>;

export const CONVERGENCE_DEFAULTS: ConvergenceSettings = {
  steps: 50_000,
  batchSize: 60,
  lr: BASE_LR,
  evalEvery: 500,
  testSize: 10_000,
  target: 0.97,
  checkpoints: [1_000, 5_000, 10_000, 20_000, 50_000],
  sweepLrs: [0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100],
  sweepSteps: 2_000,
};

export const CONVERGENCE_QUICK: ConvergenceSettings = {
  steps: 1_000,
  batchSize: 60,
  lr: BASE_LR,
  evalEvery: 25,
  testSize: 1_000,
  target: 0.85,
  checkpoints: [125, 250, 500, 1_000],
  sweepLrs: [0.1, 1, 10, 100],
  sweepSteps: 250,
};

/** Why a sweep run counts as not training: the loss became NaN/∞, or it ended no clearly lower than chance. */
export type SweepStatus = 'trained' | 'diverged' | 'no better than chance';

/**
 * A sweep run trained if its final loss is below this fraction of the chance level ln(classes). A
 * margin, because a network stuck on the plateau (predicting the most frequent class) ends a hair above
 * or below ln(classes) at random.
 */
export const TRAINED_BELOW_CHANCE = 0.9;

export interface SweepPoint {
  network: Network;
  lr: number;
  status: SweepStatus;
  /** Mean batch loss over the last 10% of the steps (null when it diverged). */
  finalLoss: number | null;
  /** Test accuracy at the end (null when it diverged). */
  accuracy: number | null;
  divergedAt: number | null;
}

export interface ConvergenceRun {
  test: TestPoint[];
  train: LossPoint[];
  /** First evaluation step at or above the target, or null. */
  stepsToTarget: number | null;
  bestAccuracy: number;
  finalAccuracy: number;
  diverged: boolean;
  seconds: number;
}

export interface ConvergenceData {
  runs: Record<Network, ConvergenceRun>;
  /** Test accuracy of both networks at each checkpoint step. */
  checkpoints: Array<{ step: number; bn: number | null; plain: number | null }>;
  /** Steps each network needs to first reach several accuracies (null: not within the run). */
  thresholds: Array<{ accuracy: number; bn: number | null; plain: number | null }>;
  sweep: SweepPoint[];
  /** Loss of a uniform guess, ln(classes). */
  chanceLoss: number;
  /** A sweep run counts as trained when its final loss ends below this: TRAINED_BELOW_CHANCE · chanceLoss. */
  trainedBelow: number;
  /** Largest learning rate of the sweep that trained, per network (null: none did). */
  largestStableLr: Record<Network, number | null>;
  /** Rate of the sweep with the best final test accuracy among those that trained, per network. */
  bestLr: Record<Network, { lr: number; accuracy: number } | null>;
}

export type ConvergenceResult = ExperimentResult<ConvergenceData>;

export async function runConvergence(options: ConvergenceOptions): Promise<ConvergenceResult> {
  const start = startRun('convergence', options, CONVERGENCE_DEFAULTS, CONVERGENCE_QUICK, ['steps', 'batchSize', 'evalEvery', 'testSize', 'sweepSteps']);
  const { data, quick, settings } = start;
  if (!options.checkpoints) settings.checkpoints = defaultCheckpoints(settings.steps, quick ? CONVERGENCE_QUICK : CONVERGENCE_DEFAULTS);
  const test = firstUpTo(data.test, settings.testSize);
  const chanceLoss = Math.log(data.train.numClasses);
  const trainedBelow = TRAINED_BELOW_CHANCE * chanceLoss;
  const progress = new ProgressTicker(start.seeds.length * (2 * settings.steps + 2 * settings.sweepLrs.length * settings.sweepSteps), options.onProgress);
  const seedText = (seed: number) => (start.seeds.length > 1 ? `seed ${seed}, ` : '');

  const one = async (seed: number) => {
    const evalSteps = everyNSteps(settings.steps, settings.evalEvery, settings.checkpoints);
    const runs = {} as Record<Network, ConvergenceRun>;
    for (const network of NETWORKS) {
      progress.setPhase(`${seedText(seed)}${NETWORK_LABELS[network]}, lr ${formatNumber(settings.lr)}`);
      const model = buildNetwork({ norm: network === 'bn' ? 'batch' : 'none', seed });
      const run = await trainNetwork({ model, train: data.train, test, lr: settings.lr, steps: settings.steps, batchSize: settings.batchSize, seed, evalSteps, progress });
      runs[network] = summarizeRun(run, settings.target);
    }

    const sweep: SweepPoint[] = [];
    for (const network of NETWORKS) {
      for (const lr of settings.sweepLrs) {
        progress.setPhase(`${seedText(seed)}sweep ${NETWORK_LABELS[network]}, lr ${formatNumber(lr)}`);
        const model = buildNetwork({ norm: network === 'bn' ? 'batch' : 'none', seed });
        const run = await trainNetwork({ model, train: data.train, test, lr, steps: settings.sweepSteps, batchSize: settings.batchSize, seed, evalSteps: [settings.sweepSteps], progress });
        const status: SweepStatus = run.diverged ? 'diverged' : run.finalLoss >= trainedBelow ? 'no better than chance' : 'trained';
        sweep.push({ network, lr, status, finalLoss: run.diverged ? null : run.finalLoss, accuracy: run.diverged ? null : run.test[run.test.length - 1].accuracy, divergedAt: run.divergedAt });
      }
    }

    const accuracyAt = (network: Network, step: number) => runs[network].test.find((p) => p.step === step)?.accuracy ?? null;
    const thresholdsList = [...new Set([0.8, 0.9, 0.95, 0.97, 0.98, settings.target])].sort((a, b) => a - b);
    const resultData: ConvergenceData = {
      runs,
      checkpoints: settings.checkpoints.map((step) => ({ step, bn: accuracyAt('bn', step), plain: accuracyAt('plain', step) })),
      thresholds: thresholdsList.map((accuracy) => ({
        accuracy,
        bn: firstReaching(runs.bn.test, (p) => p.accuracy, accuracy),
        plain: firstReaching(runs.plain.test, (p) => p.accuracy, accuracy),
      })),
      sweep,
      chanceLoss,
      trainedBelow,
      largestStableLr: { bn: largestTrained(sweep, 'bn'), plain: largestTrained(sweep, 'plain') },
      bestLr: { bn: bestRate(sweep, 'bn'), plain: bestRate(sweep, 'plain') },
    };
    return { data: resultData, ...describe(resultData, settings) };
  };
  return runEverySeed(start, one, {
    title: 'Faster training with batch norm (Figure 1a)',
    question: 'Does batch norm make the same network reach a given test accuracy in fewer steps, and train at larger learning rates?',
    settings: { ...settings, model: baseModelDescription(), optimizer: 'SGD, no momentum', trainSet: `${data.train.name} train (${formatCount(data.train.count)})`, testSet: `${data.test.name} test, first ${formatCount(test.count)}` },
    effects: (d) => convergenceEffects(d, settings),
  });
}

/** The claims of Figure 1(a) as one seed shows them. */
export function convergenceEffects(d: ConvergenceData, s: ConvergenceSettings): EffectMeasure[] {
  const { bn, plain } = d.runs;
  const target = formatPercent(s.target, s.target * 100 === Math.round(s.target * 100) ? 0 : 1);
  // Not reaching the target counts as the whole run: a lower bound on the speed-up.
  const speedup = bn.stepsToTarget === null ? null : (plain.stepsToTarget ?? s.steps) / bn.stepsToTarget;
  const ls = d.largestStableLr;
  return [
    { id: 'speedup', claim: `BN reaches ${target} test accuracy in fewer steps`, label: `steps to ${target} without BN / with BN (the whole run where not reached)`, value: speedup, holds: bn.stepsToTarget !== null && (plain.stepsToTarget === null || plain.stepsToTarget > bn.stepsToTarget), format: 'ratio' },
    { id: 'final-accuracy', claim: `BN is ahead after ${formatCount(s.steps)} steps`, label: `test accuracy after ${formatCount(s.steps)} steps, with minus without BN`, value: bn.finalAccuracy - plain.finalAccuracy, holds: bn.finalAccuracy > plain.finalAccuracy, format: 'points' },
    // Where no rate trained without BN, the grid's smallest rate stands in for it: a lower bound.
    { id: 'largest-lr', claim: 'BN trains at larger learning rates', label: 'largest rate of the sweep that trained, with BN / without (the smallest rate of the grid where none trained without BN)', value: ls.bn !== null ? ls.bn / (ls.plain ?? Math.min(...s.sweepLrs)) : null, holds: ls.bn !== null && (ls.plain === null || ls.bn > ls.plain), format: 'ratio' },
  ];
}

function summarizeRun(run: TrainRun, target: number): ConvergenceRun {
  const accuracies = run.test.map((p) => p.accuracy);
  return {
    test: run.test,
    train: run.train,
    stepsToTarget: firstReaching(run.test, (p) => p.accuracy, target),
    bestAccuracy: accuracies.length ? Math.max(...accuracies) : NaN,
    finalAccuracy: accuracies.length ? accuracies[accuracies.length - 1] : NaN,
    diverged: run.diverged,
    seconds: run.seconds,
  };
}

function defaultCheckpoints(steps: number, base: ConvergenceSettings): number[] {
  const fitting = base.checkpoints.filter((s) => s <= steps);
  return [...new Set([...fitting, steps])].sort((a, b) => a - b);
}

function largestTrained(sweep: SweepPoint[], network: Network): number | null {
  const ok = sweep.filter((p) => p.network === network && p.status === 'trained').map((p) => p.lr);
  return ok.length ? Math.max(...ok) : null;
}

function bestRate(sweep: SweepPoint[], network: Network): { lr: number; accuracy: number } | null {
  let best: { lr: number; accuracy: number } | null = null;
  for (const p of sweep) if (p.network === network && p.status === 'trained' && p.accuracy !== null && (!best || p.accuracy > best.accuracy)) best = { lr: p.lr, accuracy: p.accuracy };
  return best;
}

function describe(d: ConvergenceData, s: ConvergenceSettings) {
  const { bn, plain } = d.runs;
  const target = formatPercent(s.target, s.target * 100 === Math.round(s.target * 100) ? 0 : 1);
  const reading: string[] = [];
  let speedLine: string;
  if (bn.stepsToTarget !== null && plain.stepsToTarget !== null) {
    const ratio = plain.stepsToTarget / bn.stepsToTarget;
    const verdict = ratio > 1 ? `${formatRatio(ratio)} fewer steps` : ratio === 1 ? 'the same number of steps: no speed-up showed in this run' : `${formatRatio(1 / ratio)} more steps with BN: the speed-up did not show in this run`;
    reading.push(`With BN the network reached ${target} test accuracy in ${formatCount(bn.stepsToTarget)} steps; without, in ${formatCount(plain.stepsToTarget)}: ${verdict}.`);
    speedLine = `${target} test accuracy in ${formatCount(bn.stepsToTarget)} steps with BN, ${formatCount(plain.stepsToTarget)} without (${ratio >= 1 ? `${formatRatio(ratio)} fewer` : `${formatRatio(1 / ratio)} more`})`;
  } else if (bn.stepsToTarget !== null) {
    reading.push(`With BN the network reached ${target} test accuracy in ${formatCount(bn.stepsToTarget)} steps; without BN it did not reach it within ${formatCount(s.steps)} steps (best ${formatPercent(plain.bestAccuracy)}): at least ${formatRatio(s.steps / bn.stepsToTarget)} fewer steps.`);
    speedLine = `${target} test accuracy in ${formatCount(bn.stepsToTarget)} steps with BN; not within ${formatCount(s.steps)} without`;
  } else if (plain.stepsToTarget !== null) {
    reading.push(`Without BN the network reached ${target} test accuracy in ${formatCount(plain.stepsToTarget)} steps; with BN it did not within ${formatCount(s.steps)} steps (best ${formatPercent(bn.bestAccuracy)}): the speed-up did not show in this run.`);
    speedLine = `${target} test accuracy in ${formatCount(plain.stepsToTarget)} steps without BN; not within ${formatCount(s.steps)} with BN`;
  } else {
    reading.push(`Neither network reached ${target} test accuracy within ${formatCount(s.steps)} steps (best: ${formatPercent(bn.bestAccuracy)} with BN, ${formatPercent(plain.bestAccuracy)} without).`);
    speedLine = `${target} not reached in ${formatCount(s.steps)} steps (best ${formatPercent(bn.bestAccuracy)} with BN, ${formatPercent(plain.bestAccuracy)} without)`;
  }
  const cps = d.checkpoints.filter((c) => c.bn !== null && c.plain !== null);
  if (cps.length) {
    reading.push(`Test accuracy after ${cps.map((c) => formatCount(c.step)).join(' / ')} steps: with BN ${cps.map((c) => formatPercent(c.bn!)).join(' / ')}; without BN ${cps.map((c) => formatPercent(c.plain!)).join(' / ')}.`);
  }
  const lead = cps.filter((c) => c.bn! > c.plain!).length;
  if (cps.length) reading.push(lead === cps.length ? 'BN was ahead at every checkpoint.' : lead === 0 ? 'BN was not ahead at any checkpoint.' : `BN was ahead at ${lead} of ${cps.length} checkpoints.`);

  const ls = d.largestStableLr;
  const rates = `${formatNumber(Math.min(...s.sweepLrs))} to ${formatNumber(Math.max(...s.sweepLrs))}`;
  let sweepLine: string;
  if (ls.bn !== null && ls.plain !== null) {
    const ratio = ls.bn / ls.plain;
    const cmp = ratio > 1 ? `, ${formatRatio(ratio)} larger with BN` : ratio === 1 ? ': the same for both, so BN did not allow a larger rate on this grid' : `: larger without BN (${formatRatio(1 / ratio)}), so the effect did not show`;
    reading.push(`Learning-rate sweep (${formatCount(s.sweepSteps)} steps per rate, ${rates}): the largest rate that trained (finite loss, ending below ${formatValue(d.trainedBelow)}, ${Math.round(TRAINED_BELOW_CHANCE * 100)}% of the chance level ln ${Math.round(Math.exp(d.chanceLoss))}) was ${formatNumber(ls.bn)} with BN and ${formatNumber(ls.plain)} without${cmp}.`);
    sweepLine = `largest learning rate that trained: ${formatNumber(ls.bn)} with BN, ${formatNumber(ls.plain)} without`;
  } else {
    const which = (n: Network) => (ls[n] === null ? `no rate trained ${NETWORK_LABELS[n]}` : `${formatNumber(ls[n]!)} ${NETWORK_LABELS[n]}`);
    reading.push(`Learning-rate sweep (${formatCount(s.sweepSteps)} steps per rate, ${rates}): largest rate that trained: ${which('bn')}; ${which('plain')}.`);
    sweepLine = `largest learning rate that trained: ${which('bn')}; ${which('plain')}`;
  }
  // Tolerating a higher rate is about divergence: a network that diverged nowhere but trained nowhere either
  // sat on a plateau (slow at every rate), which the sweep must not pass off as instability.
  const largestFinite = (n: Network) => {
    const ok = d.sweep.filter((p) => p.network === n && p.status !== 'diverged').map((p) => p.lr);
    return ok.length ? Math.max(...ok) : null;
  };
  const neverDiverged = NETWORKS.filter((n) => !d.sweep.some((p) => p.network === n && p.status === 'diverged'));
  const stuck = NETWORKS.filter((n) => ls[n] === null && neverDiverged.includes(n));
  reading.push(
    (neverDiverged.length === NETWORKS.length
      ? `No rate of the grid (up to ${formatNumber(Math.max(...s.sweepLrs))}) diverged, with BN or without.`
      : `Largest rate that did not diverge: ${NETWORKS.map((n) => `${largestFinite(n) === null ? 'none' : formatNumber(largestFinite(n)!)} ${NETWORK_LABELS[n]}`).join('; ')}.`) +
      (stuck.length ? ` ${stuck.map((n) => NETWORK_LABELS[n]).map((l) => l[0].toUpperCase() + l.slice(1)).join(' and ')} no rate trained and none diverged: in ${formatCount(s.sweepSteps)} steps the network stayed near the chance loss at every rate (the sigmoid plateau), so this sweep shows slow training, not instability at large rates.` : ''),
  );
  const unstable = (n: Network) => d.sweep.filter((p) => p.network === n && p.status !== 'trained').map((p) => `${formatNumber(p.lr)} (${p.status})`);
  for (const n of NETWORKS) {
    const u = unstable(n);
    if (u.length) reading.push(`Rates that did not train ${NETWORK_LABELS[n]}: ${u.join(', ')}.`);
  }
  if (d.bestLr.bn && d.bestLr.plain) {
    reading.push(`Best rate of the sweep: ${formatNumber(d.bestLr.bn.lr)} with BN (${formatPercent(d.bestLr.bn.accuracy)} after ${formatCount(s.sweepSteps)} steps), ${formatNumber(d.bestLr.plain.lr)} without (${formatPercent(d.bestLr.plain.accuracy)}).`);
  }
  reading.push(`Training the two main runs took ${formatDuration(bn.seconds)} with BN and ${formatDuration(plain.seconds)} without (including test evaluations every ${formatCount(s.evalEvery)} steps).`);

  const final = `accuracy after ${formatCount(s.steps)} steps: ${formatPercent(bn.finalAccuracy)} with BN, ${formatPercent(plain.finalAccuracy)} without`;
  const headlines = [
    { label: `steps to ${target} test accuracy, with BN`, value: bn.stepsToTarget === null ? `not reached in ${formatCount(s.steps)}` : formatCount(bn.stepsToTarget) },
    { label: `steps to ${target} test accuracy, without BN`, value: plain.stepsToTarget === null ? `not reached in ${formatCount(s.steps)}` : formatCount(plain.stepsToTarget) },
    { label: `test accuracy after ${formatCount(s.steps)} steps, with / without BN`, value: `${formatPercent(bn.finalAccuracy)} / ${formatPercent(plain.finalAccuracy)}` },
    { label: 'largest learning rate that trained, with / without BN', value: `${ls.bn === null ? 'none' : formatNumber(ls.bn)} / ${ls.plain === null ? 'none' : formatNumber(ls.plain)}` },
  ];
  return { reading, summary: [speedLine, final, sweepLine], headlines };
}

/** The figures of a result: one seed's curves, or the mean and range over the seeds. */
export const convergenceFigures: (result: ConvergenceResult) => Figure[] = figuresOverSeeds(convergenceFiguresOfOne);

function convergenceFiguresOfOne(result: ConvergenceResult): Figure[] {
  const d = result.data;
  const s = result.settings as unknown as ConvergenceSettings;
  const domain = NETWORKS.map((n) => NETWORK_LABELS[n]);
  const acc: Row[] = [];
  const loss: Row[] = [];
  for (const n of NETWORKS) {
    for (const p of d.runs[n].test) acc.push({ step: p.step, accuracy: p.accuracy, network: NETWORK_LABELS[n] });
    for (const p of d.runs[n].train) if (p.loss > 0 && Number.isFinite(p.loss)) loss.push({ step: p.step, loss: p.loss, network: NETWORK_LABELS[n] });
  }
  // Drawn a little apart at each rate (×0.9 with BN, ×1.1 without), so one network's point never hides the other's.
  const sweepRows: Row[] = d.sweep.map((p) => ({ lr: p.lr, drawnAt: p.lr * (p.network === 'bn' ? 0.9 : 1.1), accuracy: p.accuracy, loss: p.finalLoss, network: NETWORK_LABELS[p.network], status: p.status }));
  return [
    {
      id: 'accuracy',
      title: 'Test accuracy during training',
      caption: `Figure 1(a) of the paper: test accuracy (first ${formatCount(Number(s.testSize))} test images) of the same network with and without BN, lr ${formatNumber(s.lr)}, batch ${s.batchSize}. The dashed line is the target.`,
      spec: xyChart({ values: acc, x: { field: 'step', title: 'training steps (batches of ' + s.batchSize + ')', zero: true }, y: { field: 'accuracy', title: 'test accuracy', format: '.0%' }, color: { field: 'network', title: 'network', domain }, rules: [{ y: s.target, label: `target ${formatPercent(s.target, 0)}` }] }),
    },
    {
      id: 'training-loss',
      title: 'Training loss',
      caption: 'Cross-entropy of the training batches, averaged over windows of steps; log scale.',
      spec: xyChart({ values: loss, x: { field: 'step', title: 'training steps', zero: true }, y: { field: 'loss', title: 'training loss (nats, log scale)', scale: 'log' }, color: { field: 'network', title: 'network', domain } }),
    },
    {
      id: 'lr-sweep-accuracy',
      title: 'Learning-rate sweep: test accuracy',
      caption: `Test accuracy after ${formatCount(s.sweepSteps)} steps at each learning rate (log scale). Runs that diverged have no point; shapes mark the run's status; the two networks' points at a rate are drawn slightly apart.`,
      spec: xyChart({ values: sweepRows.filter((r) => r.accuracy !== null), mark: 'point', x: { field: 'drawnAt', title: 'learning rate (log scale)', scale: 'log', values: s.sweepLrs }, y: { field: 'accuracy', title: 'test accuracy', format: '.0%', domain: [0, 1] }, color: { field: 'network', title: 'network', domain }, detail: { field: 'status', title: 'run', domain: ['trained', 'no better than chance'] } }),
    },
    {
      id: 'lr-sweep-loss',
      title: 'Learning-rate sweep: final training loss',
      caption: `Mean training loss over the last 10% of ${formatCount(s.sweepSteps)} steps. Above the dashed line (${Math.round(TRAINED_BELOW_CHANCE * 100)}% of ln ${Math.round(Math.exp(d.chanceLoss))}, the loss of a uniform guess) a run counts as not trained; diverged runs (NaN) are left out; the two networks' points at a rate are drawn slightly apart.`,
      spec: xyChart({ values: sweepRows.filter((r) => r.loss !== null), mark: 'line+point', x: { field: 'drawnAt', title: 'learning rate (log scale)', scale: 'log', values: s.sweepLrs }, y: { field: 'loss', title: 'final training loss (nats, log scale)', scale: 'log' }, color: { field: 'network', title: 'network', domain }, rules: [{ y: d.trainedBelow, label: `${Math.round(TRAINED_BELOW_CHANCE * 100)}% of chance level` }] }),
    },
  ];
}

export const convergenceExperiment: ExperimentDefinition<ConvergenceData, ConvergenceOptions> = {
  name: 'convergence',
  title: 'Faster training with batch norm (Figure 1a)',
  description: 'ioffe-mlp with and without BN: test accuracy and loss against steps, steps to a target accuracy, and a learning-rate sweep',
  compared:
    'The paper\'s network (784-100-100-100-10, sigmoid units, small random initial weights) trained twice with plain SGD, once with a batch-norm (BN) layer before every sigmoid and once without; both start from the same initial weights, see the same batches and use the same learning rate. Compared: test accuracy as training goes on, the steps each needs to reach a target accuracy, and, in a sweep of learning rates, which rates each network trains at.',
  settings: { ...CONVERGENCE_DEFAULTS },
  run: runConvergence,
  figures: convergenceFigures,
};
