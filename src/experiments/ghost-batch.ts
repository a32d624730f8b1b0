/**
 * `ghost-batch`: the control for batch norm as a regularizer. The batch-size experiment changes the
 * batch size, and with it the number and the noise of the SGD updates, so the noise of the batch
 * statistics is not separated from ordinary SGD noise. Here the SGD batch, the learning rate, the number
 * of updates and the order of the examples stay the same; only the batch over which BN computes its
 * statistics changes (ghost batch norm, `virtualBatchSize`: each group of G examples is normalized with
 * its own statistics), from a few examples to the whole SGD batch. If the regularizing effect comes from
 * the noise of the statistics, the train−test gap should follow G.
 */
import { xyChart, type Figure, type Row } from '../report/charts.js';
import { evaluate } from '../train/evaluate.js';
import { firstUpTo } from './data.js';
import { formatCount, formatNumber, formatPercent, formatPoints } from './format.js';
import { BASE_LR, INPUT_SHAPE, baseModelDescription, buildNetwork } from './models.js';
import { ProgressTicker } from './progress.js';
import { figuresOverSeeds, type EffectMeasure } from './seeds.js';
import { checkPositiveInt, runEverySeed, startRun } from './settings.js';
import { trainNetwork } from './train-run.js';
import type { ExperimentDefinition, ExperimentOptions, ExperimentResult } from './types.js';

export interface GhostBatchSettings {
  /** The SGD batch: the same for every run. */
  batchSize: number;
  /** Statistics batches G (each must divide batchSize); batchSize itself is plain batch norm. */
  ghostSizes: number[];
  /** Training examples (the first ones of the training set): small, so that the networks can overfit. */
  trainSize: number;
  testSize: number;
  epochs: number;
  lr: number;
}

export type GhostBatchOptions = ExperimentOptions & Partial<GhostBatchSettings>;

export const GHOST_BATCH_DEFAULTS: GhostBatchSettings = { batchSize: 256, ghostSizes: [8, 16, 32, 64, 128, 256], trainSize: 5_000, testSize: 10_000, epochs: 30, lr: BASE_LR };

// 480 updates of 128: enough for BN to fit the 1,024 examples at every statistics batch.
export const GHOST_BATCH_QUICK: GhostBatchSettings = { batchSize: 128, ghostSizes: [8, 32, 128], trainSize: 1_024, testSize: 1_000, epochs: 60, lr: BASE_LR };

export interface GhostRow {
  /** Statistics batch; null for the network without BN (the same updates, no batch statistics). */
  ghostSize: number | null;
  trainAccuracy: number | null;
  testAccuracy: number | null;
  gap: number | null;
  diverged: boolean;
}

export interface GhostBatchData {
  rows: GhostRow[];
  /** SGD updates of every run. */
  steps: number;
}

export type GhostBatchResult = ExperimentResult<GhostBatchData>;

export async function runGhostBatch(options: GhostBatchOptions): Promise<GhostBatchResult> {
  const start = startRun('ghost-batch', options, GHOST_BATCH_DEFAULTS, GHOST_BATCH_QUICK, ['batchSize', 'trainSize', 'testSize', 'epochs']);
  const { data, settings: s } = start;
  const train = firstUpTo(data.train, s.trainSize);
  const test = firstUpTo(data.test, s.testSize);
  if (s.batchSize > train.count) throw new Error(`ghost-batch: batchSize ${s.batchSize} is larger than the training subset (${train.count})`);
  if (s.ghostSizes.length === 0) throw new Error('ghost-batch: ghostSizes must list at least one statistics batch');
  for (const g of s.ghostSizes) {
    checkPositiveInt('ghost-batch', 'each ghost size', g);
    if (g < 2 || s.batchSize % g !== 0) throw new Error(`ghost-batch: each ghost size must be at least 2 and divide the SGD batch ${s.batchSize}, got ${g}`);
  }
  const ghostSizes = [...new Set(s.ghostSizes)].sort((a, b) => a - b);
  const steps = s.epochs * Math.floor(train.count / s.batchSize);
  const progress = new ProgressTicker(start.seeds.length * (ghostSizes.length + 1) * steps, options.onProgress);

  const one = async (seed: number) => {
    const rows: GhostRow[] = [];
    for (const ghostSize of [...ghostSizes, null]) {
      const label = ghostSize === null ? 'without BN' : `BN statistics over ${ghostSize}`;
      progress.setPhase(`${start.seeds.length > 1 ? `seed ${seed}, ` : ''}${label}, SGD batch ${s.batchSize}`);
      const model = ghostSize === null ? buildNetwork({ norm: 'none', seed }) : buildNetwork({ norm: 'batch', seed, batchNorm: { virtualBatchSize: ghostSize === s.batchSize ? null : ghostSize } });
      const run = await trainNetwork({ model, train, lr: s.lr, steps, batchSize: s.batchSize, seed, progress });
      const trainAccuracy = run.diverged ? null : evaluate(model, train, { inputShape: INPUT_SHAPE }).accuracy;
      const testAccuracy = run.diverged ? null : evaluate(model, test, { inputShape: INPUT_SHAPE }).accuracy;
      rows.push({ ghostSize, trainAccuracy, testAccuracy, gap: trainAccuracy === null || testAccuracy === null ? null : trainAccuracy - testAccuracy, diverged: run.diverged });
    }
    const d: GhostBatchData = { rows, steps };
    return { data: d, ...describeGhostBatch(d, s) };
  };
  return runEverySeed(start, one, {
    title: 'Ghost batches: the regularizer with the updates held fixed',
    question: 'With the same SGD batch, learning rate and updates, does the train−test gap follow the batch over which batch norm computes its statistics?',
    settings: { ...s, ghostSizes, steps, model: `${baseModelDescription()}, BN with virtualBatchSize G (G = batchSize: plain BN)`, optimizer: `SGD, no momentum, learning rate ${formatNumber(s.lr)}`, trainSet: `first ${formatCount(train.count)} ${data.train.name} training images`, testSet: `${data.test.name} test, first ${formatCount(test.count)}` },
    effects: (d) => ghostBatchEffects(d, s),
  });
}

function rowsOf(d: GhostBatchData) {
  const bn = d.rows.filter((r) => r.ghostSize !== null).sort((a, b) => a.ghostSize! - b.ghostSize!);
  return { smallest: bn[0], full: bn[bn.length - 1], plain: d.rows.find((r) => r.ghostSize === null)! };
}

/** The claim of the control as one seed shows it. */
export function ghostBatchEffects(d: GhostBatchData, s: GhostBatchSettings): EffectMeasure[] {
  const { smallest, full } = rowsOf(d);
  const G = smallest.ghostSize;
  const both = smallest.gap !== null && full.gap !== null;
  return [
    { id: 'gap-follows-statistics', claim: `with the same updates, the train−test gap is smaller with statistics over ${G} examples than over the whole batch of ${s.batchSize}`, label: `gap with statistics over ${s.batchSize} minus over ${G}`, value: both ? full.gap! - smallest.gap! : null, holds: both && smallest.gap! < full.gap!, format: 'points' },
    { id: 'test-accuracy', claim: `statistics over ${G} examples give a higher test accuracy than over ${s.batchSize}`, label: `test accuracy with statistics over ${G} minus over ${s.batchSize}`, value: both ? smallest.testAccuracy! - full.testAccuracy! : null, holds: both && smallest.testAccuracy! > full.testAccuracy!, format: 'points' },
    { id: 'fit', claim: `BN fits the training subset equally (within 2 points) with statistics over ${G} and over ${s.batchSize}, so the gaps compare generalization rather than fitting`, label: `train accuracy with statistics over ${s.batchSize} minus over ${G}`, value: both ? full.trainAccuracy! - smallest.trainAccuracy! : null, holds: both && Math.abs(full.trainAccuracy! - smallest.trainAccuracy!) <= 0.02, format: 'points' },
  ];
}

/** The reading, summary and headlines of one seed's measurements. */
export function describeGhostBatch(d: GhostBatchData, s: GhostBatchSettings) {
  const { smallest, full, plain } = rowsOf(d);
  const text = (r: GhostRow) => (r.gap === null ? 'diverged' : `${formatPercent(r.trainAccuracy!)} train, ${formatPercent(r.testAccuracy!)} test, gap ${formatPercent(r.gap)}`);
  const reading: string[] = [];
  reading.push(
    `Every network took the same ${formatCount(d.steps)} SGD updates on batches of ${s.batchSize} (${s.epochs} epochs of ${formatCount(s.trainSize)} examples, lr ${formatNumber(s.lr)}, the same batches and initial weights); only the batch over which BN computes its statistics changed: ` +
      d.rows.filter((r) => r.ghostSize !== null).map((r) => `statistics over ${r.ghostSize}: ${text(r)}`).join('; ') +
      `; without BN: ${text(plain)}.`,
  );
  if (smallest.gap !== null && full.gap !== null) {
    // The standard error of a test accuracy p measured on n images, √(p(1−p)/n): a narrower gap whose test
    // side moved less than that is mostly a train-accuracy difference, which one seed cannot tell from chance.
    const testGain = smallest.testAccuracy! - full.testAccuracy!;
    const testNoise = Math.sqrt((full.testAccuracy! * (1 - full.testAccuracy!)) / s.testSize);
    const withinNoise = testGain < testNoise;
    reading.push(
      smallest.gap < full.gap
        ? `The gap was ${formatPercent(smallest.gap)} with statistics over ${smallest.ghostSize} examples and ${formatPercent(full.gap)} over the whole batch of ${s.batchSize} (${formatPoints(full.gap - smallest.gap)} narrower): with the updates unchanged, the gap followed the statistics batch in this run` +
          (withinNoise
            ? `, but test accuracy differed by only ${formatPoints(testGain)} (${formatCount(Math.round(Math.abs(testGain) * s.testSize))} of ${formatCount(s.testSize)} test images), less than the ${formatPoints(testNoise)} standard error of an accuracy measured on ${formatCount(s.testSize)} images` +
              (full.trainAccuracy! - smallest.trainAccuracy! > testGain ? `; most of the narrowing is lower train accuracy (${formatPercent(smallest.trainAccuracy!)} against ${formatPercent(full.trainAccuracy!)})` : '') +
              '. One run cannot tell this from chance: more seeds (--seeds 3) can.'
            : `, and test accuracy rose by ${formatPoints(testGain)}: that much of the regularizing effect comes from the noise of the batch statistics rather than from the SGD noise of small batches.`)
        : `The gap was ${formatPercent(smallest.gap)} with statistics over ${smallest.ghostSize} examples and ${formatPercent(full.gap)} over the whole batch of ${s.batchSize}: with the updates unchanged, the gap did not narrow with the smaller statistics batch, so in this run the regularizing effect did not follow the statistics batch.`,
    );
    reading.push(
      Math.abs(full.trainAccuracy! - smallest.trainAccuracy!) <= 0.02
        ? `Both fit the training subset about equally (${formatPercent(smallest.trainAccuracy!)} and ${formatPercent(full.trainAccuracy!)} train accuracy), so the gaps compare generalization.`
        : `They fit the training subset differently (${formatPercent(smallest.trainAccuracy!)} train accuracy with statistics over ${smallest.ghostSize}, ${formatPercent(full.trainAccuracy!)} over ${full.ghostSize}), so part of the difference in gap is a difference in fitting; test accuracy was ${formatPercent(smallest.testAccuracy!)} and ${formatPercent(full.testAccuracy!)}.`,
    );
  }
  if (plain.trainAccuracy !== null && plain.trainAccuracy < 0.9) reading.push(`Without BN the network reached only ${formatPercent(plain.trainAccuracy)} train accuracy with these updates, so its small gap says nothing about generalization.`);
  const headlines = [
    { label: `train−test gap, statistics over ${smallest.ghostSize} / ${full.ghostSize} / without BN`, value: [smallest, full, plain].map((r) => (r.gap === null ? '—' : formatPercent(r.gap))).join(' / ') },
    { label: `test accuracy, statistics over ${smallest.ghostSize} / ${full.ghostSize} / without BN`, value: [smallest, full, plain].map((r) => (r.testAccuracy === null ? '—' : formatPercent(r.testAccuracy))).join(' / ') },
  ];
  const summary = [
    `same ${formatCount(d.steps)} updates of batch ${s.batchSize}: gap ${smallest.gap === null ? '—' : formatPercent(smallest.gap)} with statistics over ${smallest.ghostSize}, ${full.gap === null ? '—' : formatPercent(full.gap)} over ${full.ghostSize}, ${plain.gap === null ? '—' : formatPercent(plain.gap)} without BN`,
    `test accuracy ${[smallest, full, plain].map((r) => (r.testAccuracy === null ? '—' : formatPercent(r.testAccuracy))).join(' / ')} (statistics over ${smallest.ghostSize} / ${full.ghostSize} / without BN)`,
    `train accuracy ${[smallest, full, plain].map((r) => (r.trainAccuracy === null ? '—' : formatPercent(r.trainAccuracy))).join(' / ')}`,
  ];
  return { reading, summary, headlines };
}

function ghostBatchFiguresOfOne(result: GhostBatchResult): Figure[] {
  const d = result.data;
  const s = result.settings as unknown as GhostBatchSettings;
  const ghostSizes = d.rows.filter((r) => r.ghostSize !== null).map((r) => r.ghostSize!);
  const acc: Row[] = [];
  const gap: Row[] = [];
  for (const r of d.rows) {
    if (r.ghostSize === null || r.gap === null) continue;
    acc.push({ ghostSize: r.ghostSize, accuracy: r.trainAccuracy, split: 'train' });
    acc.push({ ghostSize: r.ghostSize, accuracy: r.testAccuracy, split: 'test' });
    gap.push({ ghostSize: r.ghostSize, gap: r.gap, network: 'with BN' });
  }
  const plain = d.rows.find((r) => r.ghostSize === null);
  // Without BN there is no statistics batch: drawn flat across, the same updates at every G.
  // A network that did not fit the training set has a small gap for the wrong reason: left out.
  const plainFits = !!plain && plain.gap !== null && plain.trainAccuracy! >= 0.9;
  if (plainFits) for (const g of ghostSizes) gap.push({ ghostSize: g, gap: plain!.gap!, network: 'without BN' });
  const x = { field: 'ghostSize', title: 'batch of the BN statistics, G (log scale)', scale: 'log' as const, values: ghostSizes };
  return [
    {
      id: 'gap',
      title: 'Train − test gap against the statistics batch, SGD batch fixed',
      caption: `Every run: ${formatCount(d.steps)} SGD updates on batches of ${s.batchSize}, lr ${formatNumber(s.lr)}. Only the batch over which BN computes mean and variance changes. ${plainFits ? 'Without BN (flat): the same training with no batch statistics.' : `Without BN the same training did not fit the training set (${plain?.trainAccuracy == null ? 'diverged' : `${formatPercent(plain.trainAccuracy)} train accuracy`}), so its gap is not drawn.`}`,
      // From zero: a range of 20.2-20.9% would make a fraction of a point look like a steep trend.
      spec: xyChart({ values: gap, mark: 'line+point', x, y: { field: 'gap', title: 'train − test accuracy', format: '.1%', zero: true }, color: { field: 'network', title: 'network', domain: plainFits ? ['with BN', 'without BN'] : ['with BN'] } }),
    },
    {
      id: 'accuracy',
      title: 'Train and test accuracy against the statistics batch',
      caption: `The BN network at each statistics batch G, the same ${formatCount(d.steps)} updates. Solid: train; dashed: test.`,
      spec: xyChart({ values: acc, mark: 'line+point', x, y: { field: 'accuracy', title: 'accuracy', format: '.0%' }, color: { field: 'split', title: 'data', domain: ['train', 'test'] }, detail: { field: 'split', title: 'data', domain: ['train', 'test'] } }),
    },
  ];
}

/** The figures of a result: one seed's curves, or the mean and range over the seeds. */
export const ghostBatchFigures: (result: GhostBatchResult) => Figure[] = figuresOverSeeds(ghostBatchFiguresOfOne);

export const ghostBatchExperiment: ExperimentDefinition<GhostBatchData, GhostBatchOptions> = {
  name: 'ghost-batch',
  title: 'Ghost batches: the regularizer with the updates held fixed',
  description: 'fixed SGD batch, BN statistics over ghost batches of 8 to the whole batch: does the train/test gap follow the statistics batch?',
  compared:
    'One batch-norm (BN) network trained several times with exactly the same SGD updates (batch, learning rate, initial weights and batch order); only the group of examples over which batch norm computes its mean and variance changes, from small ghost batches of G examples within each batch up to the whole batch (plain batch norm). The network without BN takes the same updates for reference. Compared: train accuracy, test accuracy and their gap for each G.',
  settings: { ...GHOST_BATCH_DEFAULTS },
  run: runGhostBatch,
  figures: ghostBatchFigures,
};
