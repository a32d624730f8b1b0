/**
 * `batch-size`: batch norm as a regularizer. Each network normalizes with the statistics of its own
 * mini-batch, so every example's output depends on the others in the batch: noise whose size shrinks as
 * 1/√batch. Two measurements:
 *
 * 1. Generalization: for each batch size, networks with no normalization, BN, and (when the library has
 *    them) LayerNorm and GroupNorm train for the same number of epochs on a small training subset (so
 *    they can overfit) with the same learning rate (`lrScaling` can scale it with the batch instead).
 *    Train accuracy, test accuracy and their gap.
 * 2. The noise itself: for a trained BN network, the spread of batch means and variances of each BN
 *    layer's input around the population values, for batch sizes 2..512, against 1/√batch.
 */
import { barChart, xyChart, type Figure, type Row } from '../report/charts.js';
import { BatchNormBase } from '../nn/batchnorm.js';
import { Rng } from '../tensor/rng.js';
import { Tensor } from '../tensor/tensor.js';
import { evaluate } from '../train/evaluate.js';
import { firstUpTo } from './data.js';
import { formatCount, formatNumber, formatPercent, formatValue } from './format.js';
import { BASE_LR, INPUT_SHAPE, NORM_LABELS, availableHiddenNorms, baseModelDescription, buildNetwork, type HiddenNorm } from './models.js';
import { layerInput } from './probe.js';
import { ProgressTicker } from './progress.js';
import { checkPositiveInt, runEverySeed, startRun } from './settings.js';
import { figuresOverSeeds, type EffectMeasure } from './seeds.js';
import { slope } from './stats.js';
import { trainNetwork } from './train-run.js';
import type { ExperimentDefinition, ExperimentOptions, ExperimentResult } from './types.js';

export interface BatchSizeSettings {
  batchSizes: number[];
  /** Training examples (the first ones of the training set): small, so that networks can overfit. */
  trainSize: number;
  testSize: number;
  epochs: number;
  /** Learning rate at batch size 64 (at every batch size with lrScaling 'constant'). */
  lr: number;
  /** How the rate follows the batch size B: 'constant' lr, 'linear' lr·B/64, 'sqrt' lr·√(B/64). */
  lrScaling: string;
  /** Batch sizes at which the noise of the batch statistics is measured. */
  noiseBatchSizes: number[];
  /** Random batches drawn per size for the noise measurement. */
  noiseDraws: number;
}

export type BatchSizeOptions = ExperimentOptions & Partial<BatchSizeSettings> & { norms?: HiddenNorm[] };

export const BATCH_SIZE_DEFAULTS: BatchSizeSettings = {
  batchSizes: [8, 16, 32, 64, 128, 256, 512],
  trainSize: 5_000,
  testSize: 10_000,
  epochs: 30,
  lr: BASE_LR,
  lrScaling: 'constant',
  noiseBatchSizes: [2, 4, 8, 16, 32, 64, 128, 256, 512],
  noiseDraws: 200,
};

export const BATCH_SIZE_QUICK: BatchSizeSettings = {
  // Up to 256 only: with 1,024 examples a batch of 512 gets too few updates to fit them.
  batchSizes: [8, 64, 256],
  trainSize: 1_024,
  testSize: 1_000,
  epochs: 40,
  lr: BASE_LR,
  lrScaling: 'constant',
  noiseBatchSizes: [2, 8, 32, 128, 512],
  noiseDraws: 50,
};

export interface GapRow {
  norm: HiddenNorm;
  batchSize: number;
  lr: number;
  steps: number;
  trainAccuracy: number | null;
  testAccuracy: number | null;
  /** Train minus test accuracy. */
  gap: number | null;
  diverged: boolean;
}

export interface NoiseRow {
  /** Hidden layer (1-based) whose BN input is measured. */
  layer: number;
  batchSize: number;
  /** RMS over draws and units of (batch mean − population mean) / population std. */
  meanSpread: number;
  /** RMS over draws and units of batch variance / population variance − 1. */
  varianceSpread: number;
  /** 1/√batch, with the finite-population correction √((N − B)/(N − 1)) for drawing without replacement. */
  expectedMeanSpread: number;
}

export interface BatchSizeData {
  norms: HiddenNorm[];
  gaps: GapRow[];
  noise: NoiseRow[];
  /** Slope of log(mean spread) against log(batch), per layer; −0.5 is 1/√batch. */
  noiseSlopes: Array<{ layer: number; mean: number; variance: number }>;
  /** Batch size of the BN network whose layers the noise was measured on. */
  noiseModelBatchSize: number;
}

export type BatchSizeResult = ExperimentResult<BatchSizeData>;

export async function runBatchSize(options: BatchSizeOptions): Promise<BatchSizeResult> {
  const start = startRun('batch-size', options, BATCH_SIZE_DEFAULTS, BATCH_SIZE_QUICK, ['trainSize', 'testSize', 'epochs', 'noiseDraws']);
  const { data, settings: s } = start;
  const train = firstUpTo(data.train, s.trainSize);
  const test = firstUpTo(data.test, s.testSize);
  for (const b of [...s.batchSizes, ...s.noiseBatchSizes]) {
    checkPositiveInt('batch-size', 'each batch size', b);
    if (b < 2 || b > train.count) throw new Error(`batch-size: batch sizes must be between 2 and the training subset (${train.count}), got ${b}`);
  }
  const available = availableHiddenNorms();
  const norms = options.norms ?? available;
  for (const n of norms) if (!available.includes(n)) throw new Error(`batch-size: normalization "${n}" is not available; this build has ${available.join(', ')}`);
  const stepsFor = (b: number) => Math.max(1, Math.round((s.epochs * Math.floor(train.count / b))));
  // Work in examples seen, so a batch-8 step counts 1/8 of a batch-64 one.
  const progress = new ProgressTicker(start.seeds.length * norms.length * s.batchSizes.reduce((a, b) => a + stepsFor(b) * b, 0), options.onProgress);
  const seedText = (seed: number) => (start.seeds.length > 1 ? `seed ${seed}, ` : '');

  const one = async (seed: number) => {
    const gaps: GapRow[] = [];
    const noiseModelBatchSize = s.batchSizes.reduce((best, b) => (Math.abs(Math.log(b / 64)) < Math.abs(Math.log(best / 64)) ? b : best), s.batchSizes[0]);
    let noiseModel = null as ReturnType<typeof buildNetwork> | null;
    for (const norm of norms) {
      for (const batchSize of s.batchSizes) {
        const lr = learningRate(s, batchSize);
        const steps = stepsFor(batchSize);
        progress.setPhase(`${seedText(seed)}${NORM_LABELS[norm]}, batch ${batchSize}, lr ${formatNumber(lr)}`);
        const model = buildNetwork({ norm, seed });
        const run = await trainNetwork({ model, train, lr, steps, batchSize, seed, progress, progressPerStep: batchSize });
        const trainAccuracy = run.diverged ? null : evaluate(model, train, { inputShape: INPUT_SHAPE }).accuracy;
        const testAccuracy = run.diverged ? null : evaluate(model, test, { inputShape: INPUT_SHAPE }).accuracy;
        gaps.push({ norm, batchSize, lr, steps, trainAccuracy, testAccuracy, gap: trainAccuracy === null || testAccuracy === null ? null : trainAccuracy - testAccuracy, diverged: run.diverged });
        if (norm === 'batch' && batchSize === noiseModelBatchSize && !run.diverged) noiseModel = model;
      }
    }
    progress.setPhase(`${seedText(seed)}noise of the batch statistics`);
    const model = noiseModel ?? buildNetwork({ norm: 'batch', seed });
    const noise = measureNoise(model, train, s.noiseBatchSizes, s.noiseDraws, seed);
    const layers = [...new Set(noise.map((r) => r.layer))];
    const noiseSlopes = layers.map((layer) => {
      const rows = noise.filter((r) => r.layer === layer);
      const x = rows.map((r) => Math.log(r.batchSize));
      return { layer, mean: slope(x, rows.map((r) => Math.log(r.meanSpread))), variance: slope(x, rows.map((r) => Math.log(r.varianceSpread))) };
    });

    const resultData: BatchSizeData = { norms, gaps, noise, noiseSlopes, noiseModelBatchSize };
    return { data: resultData, ...describe(resultData, s, noiseModel !== null) };
  };
  return runEverySeed(start, one, {
    title: 'Batch norm as a regularizer: batch size and noise',
    question: 'Does the noise of batch statistics, which shrinks as 1/√batch, narrow the gap between training and test accuracy at small batch sizes?',
    settings: { ...s, norms, model: `variants of ${baseModelDescription()}`, optimizer: `SGD, no momentum, learning rate ${s.lrScaling === 'constant' ? formatNumber(s.lr) : `${formatNumber(s.lr)} at batch 64, scaled ${s.lrScaling} with the batch`}`, trainSet: `first ${formatCount(train.count)} ${data.train.name} training images`, testSet: `${data.test.name} test, first ${formatCount(test.count)}` },
    effects: (d) => batchSizeEffects(d, s),
  });
}

/** The claims about batch size as one seed shows them. */
export function batchSizeEffects(d: BatchSizeData, s: BatchSizeSettings): EffectMeasure[] {
  const smallest = Math.min(...s.batchSizes);
  const largest = Math.max(...s.batchSizes);
  const gapOf = (norm: HiddenNorm, b: number) => d.gaps.find((g) => g.norm === norm && g.batchSize === b)?.gap ?? null;
  const bnS = gapOf('batch', smallest);
  const bnL = gapOf('batch', largest);
  const plainS = gapOf('none', smallest);
  const ratios = d.noise.map((r) => r.meanSpread / r.expectedMeanSpread);
  const worst = ratios.length ? ratios.reduce((a, r) => (Math.abs(Math.log(r)) > Math.abs(Math.log(a)) ? r : a)) : null;
  return [
    { id: 'gap-narrows', claim: `with BN the train−test gap is smaller at batch ${smallest} than at ${largest}`, label: `BN's gap at batch ${largest} minus at batch ${smallest}`, value: bnS !== null && bnL !== null ? bnL - bnS : null, holds: bnS !== null && bnL !== null && bnS < bnL, format: 'points' },
    { id: 'gap-vs-plain', claim: `at batch ${smallest} the gap is smaller with BN than without`, label: `gap without BN minus with BN, batch ${smallest}`, value: bnS !== null && plainS !== null ? plainS - bnS : null, holds: bnS !== null && plainS !== null && bnS < plainS, format: 'points' },
    { id: 'noise-law', claim: 'the noise of the batch means follows 1/√batch (within 25%)', label: 'measured / predicted batch-mean spread, farthest from 1 over layers and sizes', value: worst, holds: ratios.length > 0 && ratios.every((r) => r > 0.8 && r < 1.25), format: 'value' },
  ];
}

export function learningRate(s: BatchSizeSettings, batchSize: number): number {
  switch (s.lrScaling) {
    case 'linear':
      return (s.lr * batchSize) / 64;
    case 'sqrt':
      return s.lr * Math.sqrt(batchSize / 64);
    case 'constant':
      return s.lr;
    default:
      throw new Error(`batch-size: lrScaling must be 'linear', 'sqrt' or 'constant', got ${JSON.stringify(s.lrScaling)}`);
  }
}

/**
 * For every BN layer: its input over the whole `train` subset gives the population mean and variance
 * per unit; then `draws` random batches of each size (without replacement) give batch statistics, whose
 * standardized deviations from the population values are averaged (RMS) over draws and units.
 */
export function measureNoise(model: ReturnType<typeof buildNetwork>, train: { images: Float32Array; count: number }, sizes: number[], draws: number, seed: number): NoiseRow[] {
  const features = INPUT_SHAPE.reduce((a, b) => a * b, 1);
  const x = new Tensor([train.count, features], train.images.subarray(0, train.count * features));
  const rng = new Rng(seed + 1);
  const rows: NoiseRow[] = [];
  let layer = 0;
  model.layers.forEach((m, index) => {
    if (!(m instanceof BatchNormBase)) return;
    layer++;
    const h = layerInput(model, x, index); // [N, U]
    const [n, units] = h.shape;
    const popMean = new Float64Array(units);
    const popVar = new Float64Array(units);
    for (let r = 0; r < n; r++) for (let u = 0; u < units; u++) popMean[u] += h.data[r * units + u] / n;
    for (let r = 0; r < n; r++) for (let u = 0; u < units; u++) popVar[u] += (h.data[r * units + u] - popMean[u]) ** 2 / n;
    const live = [...popVar.keys()].filter((u) => popVar[u] > 1e-12); // a constant unit has no spread to compare with
    for (const b of sizes) {
      let meanSq = 0;
      let varSq = 0;
      const bm = new Float64Array(units);
      const bv = new Float64Array(units);
      for (let d = 0; d < draws; d++) {
        const pick = rng.permutation(n).subarray(0, b);
        bm.fill(0);
        bv.fill(0);
        for (const r of pick) for (const u of live) bm[u] += h.data[r * units + u] / b;
        for (const r of pick) for (const u of live) bv[u] += (h.data[r * units + u] - bm[u]) ** 2 / b;
        for (const u of live) {
          meanSq += (bm[u] - popMean[u]) ** 2 / popVar[u];
          varSq += (bv[u] / popVar[u] - 1) ** 2;
        }
      }
      const count = draws * live.length;
      rows.push({ layer, batchSize: b, meanSpread: Math.sqrt(meanSq / count), varianceSpread: Math.sqrt(varSq / count), expectedMeanSpread: Math.sqrt((n - b) / (b * (n - 1))) });
    }
  });
  return rows;
}

function describe(d: BatchSizeData, s: BatchSizeSettings, trainedNoiseModel: boolean) {
  const reading: string[] = [];
  const row = (norm: HiddenNorm, b: number) => d.gaps.find((g) => g.norm === norm && g.batchSize === b)!;
  const smallest = Math.min(...s.batchSizes);
  const largest = Math.max(...s.batchSizes);
  const gapText = (g: GapRow) => (g.gap === null ? 'diverged' : `${formatPercent(g.trainAccuracy!)} train, ${formatPercent(g.testAccuracy!)} test, gap ${formatPercent(g.gap)}`);
  for (const norm of d.norms) {
    reading.push(`${NORM_LABELS[norm]}: batch ${smallest}: ${gapText(row(norm, smallest))}; batch ${largest}: ${gapText(row(norm, largest))}.`);
  }
  const gapOf = (norm: HiddenNorm, b: number) => row(norm, b)?.gap ?? null;
  const bnSmall = gapOf('batch', smallest);
  const bnLarge = gapOf('batch', largest);
  const plainSmall = gapOf('none', smallest);
  const plainLarge = gapOf('none', largest);
  // Each side's gaps at the smallest and largest batch, or why there are none (the run diverged, or
  // `norms` left that normalization out).
  const gapPair = (norm: HiddenNorm) => {
    if (!d.norms.includes(norm)) return 'not run';
    const [a, b] = [gapOf(norm, smallest), gapOf(norm, largest)];
    return `${a === null ? 'diverged' : formatPercent(a)} / ${b === null ? 'diverged' : formatPercent(b)}`;
  };
  const gapLine = `train−test gap at batch ${smallest} / ${largest}: with BN ${gapPair('batch')}, without ${gapPair('none')}`;
  if (bnSmall !== null && bnLarge !== null && plainSmall !== null && plainLarge !== null) {
    const bnS = row('batch', smallest);
    const bnL = row('batch', largest);
    const plS = row('none', smallest);
    reading.push(
      bnSmall < bnLarge
        ? `With BN the train−test gap was ${formatPercent(bnSmall)} at batch ${smallest} and ${formatPercent(bnLarge)} at batch ${largest}: narrower at the small batch, where the batch statistics are noisier, as a regularizing effect of that noise would predict.`
        : `With BN the train−test gap was ${formatPercent(bnSmall)} at batch ${smallest} and ${formatPercent(bnLarge)} at batch ${largest}: it did not narrow at the small batch, so the regularizing effect of the noise did not show in this run.`,
    );
    // LayerNorm and GroupNorm use no batch statistics: whatever their gaps do with the batch size is not
    // that noise (smaller batches also mean more, noisier updates), so BN's narrowing is read against theirs.
    const controls = (['layer', 'group'] as const).filter((n) => d.norms.includes(n) && gapOf(n, smallest) !== null && gapOf(n, largest) !== null);
    if (bnSmall < bnLarge && controls.length) {
      const narrowing = (n: HiddenNorm) => gapOf(n, largest)! - gapOf(n, smallest)!;
      const asMuch = controls.filter((n) => narrowing(n) >= narrowing('batch') || gapOf(n, smallest)! <= bnSmall);
      const list = controls.map((n) => `${NORM_LABELS[n]} ${formatPercent(gapOf(n, smallest)!)} at batch ${smallest} and ${formatPercent(gapOf(n, largest)!)} at batch ${largest}`).join('; ');
      reading.push(
        asMuch.length
          ? `But the controls without batch statistics had gaps of ${list}: ${asMuch.map((n) => NORM_LABELS[n]).join(' and ')} narrowed as much or ended as small, so in this run the narrowing at small batches is not shown to come from the noise of the batch statistics; the batch size changes the updates too.`
          : `The controls without batch statistics had gaps of ${list}: they narrowed less than BN's, which points to the noise of the batch statistics for the rest.`,
      );
    }
    const fitGap = bnS.trainAccuracy! - bnL.trainAccuracy!;
    reading.push(
      Math.abs(fitGap) <= 0.02
        ? `BN fit the training set about equally at both sizes (${formatPercent(bnS.trainAccuracy!)} and ${formatPercent(bnL.trainAccuracy!)} train accuracy, after ${formatCount(bnS.steps)} and ${formatCount(bnL.steps)} updates), so the difference is in generalization, not in fitting.`
        : `Train accuracy with BN differed between the two sizes (${formatPercent(bnS.trainAccuracy!)} at batch ${smallest} after ${formatCount(bnS.steps)} updates, ${formatPercent(bnL.trainAccuracy!)} at batch ${largest} after ${formatCount(bnL.steps)}: the same epochs mean fewer updates for larger batches), so part of the difference in gap is a difference in fitting.`,
    );
    const diffs = s.batchSizes.map((b) => ({ b, bn: gapOf('batch', b), none: gapOf('none', b) })).filter((x) => x.bn !== null && x.none !== null);
    const smaller = diffs.filter((x) => x.bn! < x.none!).map((x) => x.b);
    const unfit = d.gaps.filter((g) => g.norm === 'none' && g.trainAccuracy !== null && g.trainAccuracy < 0.9);
    reading.push(
      `Gap with BN against without, by batch size: ${diffs.map((x) => `${x.b}: ${formatPercent(x.bn!)} vs ${formatPercent(x.none!)}`).join('; ')}. ` +
        (bnSmall < plainSmall
          ? `At batch ${smallest} BN had the smaller gap (without BN the network reached ${formatPercent(plS.trainAccuracy!)} train accuracy, with BN ${formatPercent(bnS.trainAccuracy!)}).`
          : `At batch ${smallest} BN did not have the smaller gap.`) +
        (smaller.filter((b) => b !== smallest).length ? ` BN had the smaller gap ${bnSmall < plainSmall ? 'also ' : ''}at batch ${smaller.filter((b) => b !== smallest).join(', ')}.` : '') +
        (unfit.length ? ` Without BN the network reached only ${unfit.map((g) => `${formatPercent(g.trainAccuracy!)} train accuracy at batch ${g.batchSize}`).join(', ')} in the same epochs, so its gap there says little.` : ''),
    );
  }
  const first = d.noiseSlopes[0];
  const noiseAt = (b: number) => d.noise.find((r) => r.layer === 1 && r.batchSize === b);
  const nb = Math.min(...s.noiseBatchSizes);
  const nl = Math.max(...s.noiseBatchSizes);
  const ratios = d.noise.map((r) => r.meanSpread / r.expectedMeanSpread);
  if (first && noiseAt(nb) && noiseAt(nl)) {
    reading.push(
      `The noise BN injects (BN layers of the network trained at batch ${d.noiseModelBatchSize}${trainedNoiseModel ? '' : ', untrained'}): batch means deviate from the population mean by ${formatValue(noiseAt(nb)!.meanSpread)} standard deviations at batch ${nb} and ${formatValue(noiseAt(nl)!.meanSpread)} at batch ${nl}; 1/√batch, corrected for drawing ${formatCount(s.trainSize)} examples without replacement, predicts ${formatValue(noiseAt(nb)!.expectedMeanSpread)} and ${formatValue(noiseAt(nl)!.expectedMeanSpread)} (measured / predicted over all layers and sizes: ${formatValue(Math.min(...ratios))} to ${formatValue(Math.max(...ratios))}). ` +
        `Batch variances deviate by ${formatPercent(noiseAt(nb)!.varianceSpread, 0)} at batch ${nb} and ${formatPercent(noiseAt(nl)!.varianceSpread, 0)} at batch ${nl}. Log-log slopes against the batch size, per BN layer: ${d.noiseSlopes.map((sl) => `${formatValue(sl.mean)} (mean), ${formatValue(sl.variance)} (variance)`).join('; ')} (1/√batch alone is −0.5; the finite-population correction makes it steeper near the subset size).`,
    );
  }
  const headlines = [
    { label: `train−test gap with BN at batch ${smallest} / ${largest}`, value: gapPair('batch') },
    { label: `train−test gap without BN at batch ${smallest} / ${largest}`, value: gapPair('none') },
    { label: 'batch-mean noise, measured / predicted by 1/√batch', value: ratios.length ? `${formatValue(Math.min(...ratios))} to ${formatValue(Math.max(...ratios))}` : '—' },
  ];
  const summary = [
    gapLine,
    first ? `batch-mean noise ${formatValue(noiseAt(nb)!.meanSpread)} std at batch ${nb}, ${formatValue(noiseAt(nl)!.meanSpread)} at batch ${nl}: ${formatValue(Math.min(...ratios))}–${formatValue(Math.max(...ratios))}× the 1/√batch prediction` : 'noise not measured',
    `test accuracy at batch ${smallest} / ${largest}: ${d.norms.map((n) => `${NORM_LABELS[n]} ${row(n, smallest).testAccuracy === null ? '—' : formatPercent(row(n, smallest).testAccuracy!)} / ${row(n, largest).testAccuracy === null ? '—' : formatPercent(row(n, largest).testAccuracy!)}`).join(', ')}`,
  ];
  return { reading, summary, headlines };
}

const SAMPLING = 'sampling prediction';

/** The figures of a result: one seed's curves, or the mean and range over the seeds. */
export const batchSizeFigures: (result: BatchSizeResult) => Figure[] = figuresOverSeeds(batchSizeFiguresOfOne);

function batchSizeFiguresOfOne(result: BatchSizeResult): Figure[] {
  const d = result.data;
  const s = result.settings as unknown as BatchSizeSettings;
  const domain = d.norms.map((n) => NORM_LABELS[n]);
  const acc: Row[] = [];
  const gap: Row[] = [];
  for (const g of d.gaps) {
    if (g.gap === null) continue;
    acc.push({ batchSize: g.batchSize, accuracy: g.trainAccuracy, split: 'train', norm: NORM_LABELS[g.norm] });
    acc.push({ batchSize: g.batchSize, accuracy: g.testAccuracy, split: 'test', norm: NORM_LABELS[g.norm] });
    gap.push({ batchSize: String(g.batchSize), gap: g.gap, norm: NORM_LABELS[g.norm] });
  }
  const noise: Row[] = [];
  for (const r of d.noise) {
    noise.push({ batchSize: r.batchSize, spread: r.meanSpread, statistic: 'batch mean', series: `BN layer ${r.layer}` });
    noise.push({ batchSize: r.batchSize, spread: r.varianceSpread, statistic: 'batch variance', series: `BN layer ${r.layer}` });
  }
  // What sampling alone predicts. The batch mean's spread is the prediction the reading quotes: 1/√B standard
  // deviations with the correction for drawing B of the subset's N without replacement (exact for any
  // values; plain 1/√B would sit above the measured points near N). The batch variance's is √(2/(B−1)),
  // for normally distributed values drawn independently (the two panels need different lines).
  for (const b of s.noiseBatchSizes) {
    const expected = d.noise.find((r) => r.batchSize === b)?.expectedMeanSpread ?? 1 / Math.sqrt(b);
    noise.push({ batchSize: b, spread: expected, statistic: 'batch mean', series: SAMPLING });
    noise.push({ batchSize: b, spread: Math.sqrt(2 / (b - 1)), statistic: 'batch variance', series: SAMPLING });
  }
  const layerSeries = [...new Set(d.noise.map((r) => `BN layer ${r.layer}`))];
  return [
    {
      id: 'accuracy',
      title: 'Train and test accuracy against batch size',
      caption: `Same number of epochs (${s.epochs}) on ${formatCount(s.trainSize)} training images at every batch size, learning rate ${s.lrScaling === 'constant' ? formatNumber(s.lr) : `${formatNumber(s.lr)} at batch 64, scaled ${s.lrScaling} with the batch`}. Solid: train; dashed: test.`,
      spec: xyChart({ values: acc, mark: 'line+point', x: { field: 'batchSize', title: 'batch size (log scale)', scale: 'log', values: s.batchSizes }, y: { field: 'accuracy', title: 'accuracy', format: '.0%' }, color: { field: 'norm', title: 'normalization', domain }, detail: { field: 'split', title: 'data', domain: ['train', 'test'] } }),
    },
    {
      id: 'gap',
      title: 'Generalization gap (train − test accuracy)',
      caption: 'A smaller bar is a smaller gap between training and test accuracy.',
      spec: barChart({ values: gap, x: { field: 'batchSize', title: 'batch size', domain: s.batchSizes.map(String) }, y: { field: 'gap', title: 'train − test accuracy', format: '.0%' }, color: { field: 'norm', title: 'normalization', domain }, width: 60 * s.batchSizes.length }),
    },
    {
      id: 'noise',
      title: 'Noise of the batch statistics against batch size',
      caption: `Spread (RMS over ${s.noiseDraws} random batches and all units) of each BN layer's batch mean, in population standard deviations, and of its batch variance relative to the population variance; log-log. The black line is what sampling alone predicts: for the mean 1/√batch, corrected for drawing the batch from ${formatCount(s.trainSize)} examples without replacement (the prediction the reading quotes); for the variance √(2/(batch−1)), for normally distributed values drawn independently (no such correction).`,
      spec: xyChart({ values: noise, mark: 'line+point', x: { field: 'batchSize', title: 'batch size (log scale)', scale: 'log', values: s.noiseBatchSizes }, y: { field: 'spread', title: 'spread around population value (log)', scale: 'log' }, color: { field: 'series', title: 'series', domain: [...layerSeries, SAMPLING], range: ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00'].slice(0, layerSeries.length).concat(['#000000']) }, column: { field: 'statistic', title: '', domain: ['batch mean', 'batch variance'] }, width: 300 }),
    },
  ];
}

export const batchSizeExperiment: ExperimentDefinition<BatchSizeData, BatchSizeOptions> = {
  name: 'batch-size',
  title: 'Batch norm as a regularizer: batch size and noise',
  description: 'train/test accuracy and gap for batch sizes 8..512 with and without normalization, and the noise of batch statistics against 1/sqrt(batch)',
  compared:
    'Networks without normalization, with batch norm (BN), with LayerNorm and with GroupNorm train for the same number of epochs on a small training subset (small enough to overfit), at several batch sizes. Compared: the gap between train and test accuracy at each batch size. LayerNorm and GroupNorm compute no batch statistics, so they are the control: what their gaps do as the batch changes cannot come from the noise of batch statistics. Then, on one trained BN network: how far batch means and variances stray from the whole subset\'s at each batch size.',
  settings: { ...BATCH_SIZE_DEFAULTS, norms: ['none', 'batch', 'layer', 'group'] satisfies HiddenNorm[] },
  run: runBatchSize,
  figures: batchSizeFigures,
};
