/**
 * The experiments at their quick size on fixed seeds: each effect points the way the paper (and the
 * issue) says, and the readings quote the measured numbers. Then the report: files on disk, text in the
 * PNGs, and the page opened in headless Chromium without console errors, with a screenshot.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { before, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { chromium } from 'playwright-core';
import { loadDataset } from '../src/data/node.js';
import { initBackend } from '../src/kernels/index.js';
import {
  getExperiment,
  runBatchSize,
  runConvergence,
  runDistribution,
  runGhostBatch,
  describeGhostBatch,
  GHOST_BATCH_QUICK,
  runInference,
  runSmoothness,
  runInputScale,
  runTwoFeature,
  type ExperimentData,
  type ExperimentResult,
} from '../src/experiments/index.js';
import { featureScales, scaleFeatures, withScaledImages } from '../src/experiments/data.js';
import { formatCount, formatNumber, formatPercent, formatRatio } from '../src/experiments/format.js';
import { combineEffects, heldText, seedsReading, upgradeResult } from '../src/experiments/seeds.js';
import { availableHiddenNorms } from '../src/experiments/models.js';
import { resolveSettings } from '../src/experiments/settings.js';
import { logSteps, percentileSorted, wasserstein1Sorted } from '../src/experiments/stats.js';
import { logTicks, seedBandSpec, xyChart } from '../src/report/charts.js';
import { namespaceSvgIds } from '../src/report/html.js';
import { svgToPng } from '../src/report/png.js';
import { renderSvg } from '../src/report/render.js';
import { readRuns, writeCombinedReport, writeExperimentRun } from '../src/cli/experiment-runs.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SEED = 1;
const CHROMIUM = '/usr/bin/chromium';
let data: ExperimentData;
const results = new Map<string, ExperimentResult>();

before(async () => {
  // WebAssembly SIMD when this Node has it (about 5x faster); the directions hold on either backend.
  await initBackend('auto');
  data = { train: loadDataset('mnist', 'train'), test: loadDataset('mnist', 'test') };
});

describe('helpers', () => {
  test('percentiles interpolate like NumPy; Wasserstein-1 is the mean quantile distance', () => {
    const sorted = [1, 2, 3, 4, 5];
    assert.equal(percentileSorted(sorted, 50), 3);
    assert.equal(percentileSorted(sorted, 15), 1.6);
    assert.equal(percentileSorted(sorted, 85), 4.4);
    assert.equal(wasserstein1Sorted([0, 1, 2], [1, 2, 3]), 1);
    assert.equal(wasserstein1Sorted([0, 1, 2], [0, 1, 5]), 1);
  });

  test('log-spaced steps and ticks', () => {
    const steps = logSteps(1000, 3);
    assert.equal(steps[0], 1);
    assert.equal(steps.at(-1), 1000);
    assert.ok(steps.every((s, i) => i === 0 || s > steps[i - 1]));
    assert.deepEqual(logTicks(0.05, 3), [0.05, 0.1, 0.2, 0.5, 1, 2]);
    assert.deepEqual(logTicks(0.001, 100), [0.001, 0.01, 0.1, 1, 10, 100]);
  });

  test('feature factors span the range and are a seeded permutation', () => {
    const a = featureScales(784, 1e-3, 1e3, 1);
    const sorted = Float32Array.from(a).sort();
    assert.ok(Math.abs(sorted[0] - 1e-3) < 1e-9 && Math.abs(sorted[783] - 1e3) < 1e-3);
    assert.deepEqual(featureScales(784, 1e-3, 1e3, 1), a);
    assert.notDeepEqual(featureScales(784, 1e-3, 1e3, 2), a);
  });

  test('rescaled features: written into memory given (the lab\'s workers share one copy), the dataset rebuilt around them', () => {
    const ds = { name: 'tiny', images: Float32Array.from([1, 2, 3, 4, 5, 6]), labels: Uint8Array.from([0, 1, 0]), count: 3, sampleShape: [2], numClasses: 2 };
    const scales = Float32Array.from([10, 0.5]);
    const own = scaleFeatures(ds, scales);
    assert.deepEqual([...own.images], [10, 1, 30, 2, 50, 3]);
    const shared = new Float32Array(new SharedArrayBuffer(4 * 6));
    const into = scaleFeatures(ds, scales, shared);
    assert.equal(into.images, shared, 'written in place');
    const rebuilt = withScaledImages(ds, shared);
    assert.deepEqual({ ...rebuilt, images: [...rebuilt.images] }, { ...own, images: [...own.images] }, 'the same dataset as a fresh copy');
    assert.throws(() => scaleFeatures(ds, scales, new Float32Array(4)), /scaleFeatures: 4 values to write for 6/);
    assert.throws(() => withScaledImages(ds, new Float32Array(5)), /withScaledImages: 5 values for 6/);
  });

  test('settings: overrides are type-checked, a number stands for a one-element list', () => {
    const defaults = { steps: 10, lrs: [0.1, 1] };
    assert.deepEqual(resolveSettings('x', { steps: 5, lrs: 3 }, defaults, defaults, false), { steps: 5, lrs: [3] });
    assert.throws(() => resolveSettings('x', { steps: 'many' }, defaults, defaults, false), /x: option "steps" must be a number/);
  });

  test('ghost-batch reading: a narrower gap is credited to the statistics noise only when test accuracy moved beyond its standard error', () => {
    const rows = (testSmall: number, trainSmall: number) => [
      { ghostSize: 8, trainAccuracy: trainSmall, testAccuracy: testSmall, gap: trainSmall - testSmall, diverged: false },
      { ghostSize: 128, trainAccuracy: 1, testAccuracy: 0.791, gap: 1 - 0.791, diverged: false },
      { ghostSize: null, trainAccuracy: 0.165, testAccuracy: 0.16, gap: 0.005, diverged: false },
    ];
    // 0.1 points of test accuracy on 1,000 images (SE 1.3 points), the rest of the 0.7 points from train accuracy.
    const noise = describeGhostBatch({ rows: rows(0.792, 0.994), steps: 480 }, GHOST_BATCH_QUICK).reading.join(' ');
    assert.match(noise, /test accuracy differed by only 0\.1 points \(1 of 1,000 test images\), less than the 1\.3 points standard error/);
    assert.match(noise, /most of the narrowing is lower train accuracy \(99\.4% against 100\.0%\)\. One run cannot tell this from chance: more seeds \(--seeds 3\) can\./);
    assert.doesNotMatch(noise, /comes from the noise of the batch statistics/);
    // Test accuracy up 3 points: credited.
    const real = describeGhostBatch({ rows: rows(0.821, 1), steps: 480 }, GHOST_BATCH_QUICK).reading.join(' ');
    assert.match(real, /test accuracy rose by 3\.0 points: that much of the regularizing effect comes from the noise of the batch statistics/);
  });

  test('effects over seeds: the count of seeds, the mean and range, and a reading that states only what held on every seed', () => {
    const measure = (value: number, holds: boolean) => [{ id: 'x', claim: 'BN is faster', label: 'speed-up', value, holds, format: 'ratio' as const }];
    const [all] = combineEffects([measure(2, true), measure(3, true), measure(4, true)]);
    assert.deepEqual([all.heldOn, all.mean, all.min, all.max], [3, 3, 2, 4]);
    const [some] = combineEffects([measure(2, true), measure(0.5, false), measure(4, true)]);
    assert.equal(some.heldOn, 2);
    const reading = seedsReading([1, 2, 3], [all, some]);
    assert.match(reading[1], /BN is faster: held on every seed \(3 of 3\), so shown\. Speed-up: mean 3\.0× \(range 2\.0× to 4\.0×\); per seed 2\.0×, 3\.0×, 4\.0×\./);
    assert.match(reading[2], /held on 2 of 3 seeds only, so not established/);
    assert.match(reading[2], /0\.5× \(did not hold\)/);
    assert.throws(() => combineEffects([measure(1, true), [{ ...measure(1, true)[0], id: 'y' }]]), /seeds measured different effects/);
  });

  test('seed bands: each curve becomes the mean with min and max over the seeds', async () => {
    const values = [1, 2, 3].flatMap((seed) => [1, 2].map((x) => ({ x, y: x * seed, series: 'a', seed })));
    const spec = seedBandSpec(xyChart({ values: [], x: { field: 'x', title: 'x' }, y: { field: 'y', title: 'y' }, color: { field: 'series', title: 's', domain: ['a'] } }), values);
    const layers = spec.layer as Array<{ mark: { type: string } | string; transform: Array<{ aggregate?: unknown; groupby?: string[] }> }>;
    assert.equal((layers[0].mark as { type: string }).type, 'area');
    assert.deepEqual(layers[0].transform[0].groupby, ['x', 'series']);
    const compiled = vl.compile(spec as never).spec;
    const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
    await view.runAsync();
    const name = (compiled.data ?? []).map((d) => d.name).find((n) => (view.data(n) as Array<Record<string, number>>)[0]?.['y (min over seeds)'] !== undefined)!;
    const rows = (view.data(name) as Array<Record<string, number>>).sort((a, b) => a.x - b.x);
    const band = rows.map((r) => [r.x, r.y, r['y (min over seeds)'], r['y (max over seeds)']]);
    assert.deepEqual(band, [[1, 2, 1, 3], [2, 4, 2, 6]]);
    view.finalize();
  });

  test('results.json of version 1 (one seed, before seeds) reads as a one-seed run', () => {
    const v1 = { format: 'bnlab-experiment', version: 1, experiment: 'inference', seed: 4, data: { a: 1 }, headlines: [], reading: ['r'], summary: ['s'], startedAt: '2026-01-01T00:00:00.000Z' };
    const r = upgradeResult(v1);
    assert.deepEqual([r.version, r.seeds, r.seedRuns[0].seed, r.seedRuns[0].data], [2, [4], 4, { a: 1 }]);
    assert.throws(() => upgradeResult({ ...v1, version: 3 }), /version 1 or 2/);
  });

  test('number formats', () => {
    assert.equal(formatCount(14800), '14,800');
    assert.equal(formatPercent(0.97), '97.0%');
    assert.equal(formatNumber(1e-5), '1e-5');
    assert.equal(formatNumber(0.03), '0.03');
  });
});

/** The claims are checked on each of these seeds (at the quick size): an effect must not be one seed's luck. */
const SEEDS = [1, 2, 3];

/** The reading of one seed's run of a multi-seed result. */
function readingOf(r: ExperimentResult, seed: number): string[] {
  const run = r.seedRuns.find((x) => x.seed === seed);
  assert.ok(run, `no run for seed ${seed}`);
  return run.reading;
}

/** Runs `check` on every seed's data of a multi-seed result, naming the seed when it fails. */
function everySeed<D>(r: ExperimentResult<D>, check: (d: D, seed: number) => void): void {
  assert.deepEqual(r.seeds, SEEDS);
  assert.equal(r.seedRuns.length, SEEDS.length);
  for (const run of r.seedRuns) check(run.data, run.seed);
}

describe(`experiments, quick size, seeds ${SEEDS.join(', ')}`, () => {
  test('convergence: on every seed BN reaches the target in fewer steps and trains at larger rates', async () => {
    const r = await runConvergence({ data, quick: true, seeds: SEEDS });
    results.set('convergence', r);
    everySeed(r, (d, seed) => {
      const { bn, plain } = d.runs;
      assert.notEqual(bn.stepsToTarget, null, `seed ${seed}: with BN the target accuracy must be reached`);
      assert.ok(plain.stepsToTarget === null || plain.stepsToTarget > bn.stepsToTarget!, `seed ${seed}: BN ${bn.stepsToTarget} steps vs ${plain.stepsToTarget} without`);
      assert.ok(bn.finalAccuracy > plain.finalAccuracy, `seed ${seed}`);
      const cp = d.checkpoints.at(-1)!;
      assert.ok(cp.bn! > cp.plain!, `seed ${seed}`);
      assert.notEqual(d.largestStableLr.bn, null, `seed ${seed}`);
      assert.ok(d.largestStableLr.plain === null || d.largestStableLr.bn! > d.largestStableLr.plain, `seed ${seed}: largest rate ${d.largestStableLr.bn} with BN vs ${d.largestStableLr.plain}`);
      assert.equal(d.sweep.length, 2 * (r.settings.sweepLrs as number[]).length);
    });
    // The combined reading counts the seeds and quotes each seed's figure.
    const speedup = r.effects.find((e) => e.id === 'speedup')!;
    assert.equal(speedup.heldOn, 3);
    assert.ok(speedup.min! <= speedup.mean! && speedup.mean! <= speedup.max!);
    assert.ok(r.reading.some((p) => p.includes('held on every seed (3 of 3)') && p.includes(`mean ${formatRatio(speedup.mean!)}`)));
    assert.equal(r.summary.length, 3);
    // Each seed's own reading quotes its own numbers.
    for (const run of r.seedRuns) assert.match(run.reading[0], new RegExp(`in ${formatCount(run.data.runs.bn.stepsToTarget!)} steps`));
  });

  test('distribution: on every seed the sigmoid-input percentiles and layer inputs drift less with BN', async () => {
    const r = await runDistribution({ data, quick: true, seeds: SEEDS });
    results.set('distribution', r);
    everySeed(r, (d, seed) => {
      const { bn, plain } = d.networks;
      assert.ok(bn.trackedRelativePath < plain.trackedRelativePath, `seed ${seed}, tracked sigmoid: ${bn.trackedRelativePath} with BN vs ${plain.trackedRelativePath}`);
      assert.ok(bn.lastLayerMedianRelativePath < plain.lastLayerMedianRelativePath, `seed ${seed}`);
      const last = d.trackedLayer;
      assert.ok(bn.totalRelativeDrift[last] < plain.totalRelativeDrift[last], `seed ${seed}`);
      assert.equal(bn.tracked.length, plain.tracked.length);
      assert.ok(bn.tracked.every((p) => p.p15 <= p.p50 && p.p50 <= p.p85));
    });
  });

  test('input-scale: on every seed input BN removes most of the scale penalty', async () => {
    const r = await runInputScale({ data, quick: true, seeds: SEEDS });
    results.set('input-scale', r);
    everySeed(r, (d, seed) => {
      const { penalty, removed } = d;
      assert.ok(penalty.none! > 0, `seed ${seed}: scaling should hurt the network without normalization (penalty ${penalty.none})`);
      assert.ok(removed['input-bn']! > 0.5, `seed ${seed}: input BN removed ${removed['input-bn']} of the penalty`);
      assert.ok(removed['bn-everywhere']! > 0.5, `seed ${seed}`);
      assert.ok(d.runs.every((run) => run.overshoot === null || (run.overshoot >= 0 && run.overshoot <= 1)));
    });
  });

  test('two-feature: on every seed raw inputs need more steps than standardized ones at r = 10, 100 and 1000, growing about as r²; standardized and input-BN counts stay flat', async () => {
    const r = await runTwoFeature({ data, quick: true, seeds: SEEDS });
    results.set('two-feature', r);
    const ratios = r.settings.ratios as number[];
    assert.deepEqual(ratios, [1, 10, 100, 1000]);
    everySeed(r, (d, seed) => {
      const steps = (ratio: number, inputs: string) => d.rows.find((x) => x.ratio === ratio && x.inputs === inputs)!;
      for (const ratio of ratios) for (const inputs of ['raw', 'standardized', 'batchnorm']) assert.notEqual(steps(ratio, inputs).steps, null, `seed ${seed}, r = ${ratio}, ${inputs}: target not reached`);
      // At r = 1 raw and standardized inputs are the same problem.
      assert.equal(steps(1, 'raw').steps, steps(1, 'standardized').steps, `seed ${seed}`);
      for (const ratio of [10, 100, 1000]) {
        const raw = steps(ratio, 'raw').steps!;
        const std = steps(ratio, 'standardized').steps!;
        assert.ok(raw > 10 * std, `seed ${seed}, r = ${ratio}: raw ${raw} vs standardized ${std} steps`);
        assert.ok(steps(ratio, 'batchnorm').steps! < raw / 10, `seed ${seed}, r = ${ratio}: input BN ${steps(ratio, 'batchnorm').steps} vs raw ${raw}`);
        assert.equal(std, steps(1, 'standardized').steps, `seed ${seed}: standardized inputs do not depend on the ratio`);
      }
      const growth = steps(100, 'raw').steps! / steps(10, 'raw').steps!;
      assert.ok(growth > 50 && growth < 200, `seed ${seed}: raw steps grew ${growth}× from r = 10 to 100 (r² says 100×)`);
      // Simulated where it is short enough; the quadratic model's count only past the simulated steps.
      assert.equal(steps(100, 'raw').estimated, false, `seed ${seed}`);
      assert.ok(d.rows.every((x) => x.estimated === (x.steps! > (r.settings.maxSimulatedSteps as number))), `seed ${seed}`);
      assert.ok(d.rows.filter((x) => x.inputs !== 'batchnorm').every((x) => x.lrFraction > 0 && x.lrFraction < 1), `seed ${seed}: every chosen rate is below 2/λmax`);
      assert.equal(d.panels.length, ratios.length * 3);
      for (const p of d.panels) {
        for (const q of p.path) assert.ok(q.w1 >= p.w1[0] && q.w1 <= p.w1[1] && q.w2 >= p.w2[0] && q.w2 <= p.w2[1], `seed ${seed}, r = ${p.ratio}, ${p.inputs}: path point outside the plotted window`);
        assert.equal(p.excess.length, (r.settings.gridSize as number) ** 2);
      }
    });
    const exponent = r.effects.find((e) => e.id === 'raw-exponent')!;
    assert.equal(exponent.heldOn, 3);
    assert.ok(exponent.min! > 1.8 && exponent.max! < 2.2, `slope ${exponent.min}..${exponent.max}`);
    assert.equal(r.effects.find((e) => e.id === 'raw-slower-r100')!.heldOn, 3);
    assert.ok(r.reading.some((p) => p.startsWith('Steps to the target, mean (min–max) over the 3 seeds: r = 1:')));
    // Each seed's reading quotes its own counts.
    for (const run of r.seedRuns) assert.ok(run.reading[0].includes(`r = 10: ${formatCount(run.data.rows.find((x) => x.ratio === 10 && x.inputs === 'raw')!.steps!)} / `));
  });

  test('batch-size: on every seed the BN gap narrows as the batch (and its noise) shrinks, below the gap without BN; the noise follows 1/sqrt(batch)', async () => {
    // The claim is about BN against no normalization; LayerNorm and GroupNorm only add to the plots.
    const r = await runBatchSize({ data, quick: true, seeds: SEEDS, norms: ['none', 'batch'] });
    results.set('batch-size', r);
    const sizes = r.settings.batchSizes as number[];
    const [smallest, largest] = [Math.min(...sizes), Math.max(...sizes)];
    everySeed(r, (d, seed) => {
      const row = (norm: string, b: number) => d.gaps.find((g) => g.norm === norm && g.batchSize === b)!;
      assert.ok(row('batch', smallest).gap! < row('batch', largest).gap!, `seed ${seed}: BN gap ${row('batch', smallest).gap} at ${smallest} vs ${row('batch', largest).gap} at ${largest}`);
      // The gap compares generalization only where the network fits its training subset. Without BN, at
      // batch 8 and quick size, it reaches 74-97% train accuracy depending on the seed and on float
      // rounding (a kernel that rounds differently moves it as much as a seed does); below 90% the
      // reading says its gap "says little", and the comparison is not made.
      const plain = row('none', smallest);
      if (plain.trainAccuracy! >= 0.9) assert.ok(row('batch', smallest).gap! < plain.gap!, `seed ${seed}, batch ${smallest}: BN gap ${row('batch', smallest).gap} vs ${plain.gap} without`);
      else assert.ok(readingOf(r, seed).some((p) => p.includes(`Without BN the network reached only ${formatPercent(plain.trainAccuracy!)} train accuracy at batch ${smallest}`)), `seed ${seed}: the reading notes that without BN the network did not fit at batch ${smallest}`);
      assert.ok(row('batch', smallest).testAccuracy! > plain.testAccuracy!, `seed ${seed}, batch ${smallest}: test accuracy with BN ${row('batch', smallest).testAccuracy} vs ${plain.testAccuracy} without`);
      assert.ok(row('batch', smallest).trainAccuracy! > 0.95 && row('batch', largest).trainAccuracy! > 0.95, `seed ${seed}: BN fits the training subset at both sizes, so the gaps compare generalization`);
      for (const layer of new Set(d.noise.map((n) => n.layer))) {
        const rows = d.noise.filter((n) => n.layer === layer).sort((a, b) => a.batchSize - b.batchSize);
        for (let i = 1; i < rows.length; i++) assert.ok(rows[i].meanSpread < rows[i - 1].meanSpread && rows[i].varianceSpread < rows[i - 1].varianceSpread, `seed ${seed}, layer ${layer}`);
        for (const n of rows) {
          const ratio = n.meanSpread / n.expectedMeanSpread;
          assert.ok(ratio > 0.8 && ratio < 1.25, `seed ${seed}, layer ${layer}, batch ${n.batchSize}: measured/predicted ${ratio}`);
        }
      }
    });
  });

  test('ghost-batch: with the updates fixed, BN fits at every statistics batch; the gap is reported per seed', async () => {
    const r = await runGhostBatch({ data, quick: true, seeds: SEEDS });
    results.set('ghost-batch', r);
    const ghostSizes = r.settings.ghostSizes as number[];
    everySeed(r, (d, seed) => {
      assert.equal(d.rows.length, ghostSizes.length + 1);
      for (const row of d.rows.filter((x) => x.ghostSize !== null)) {
        assert.ok(row.trainAccuracy! > 0.9, `seed ${seed}, statistics over ${row.ghostSize}: train accuracy ${row.trainAccuracy}`);
        assert.ok(Math.abs(row.gap! - (row.trainAccuracy! - row.testAccuracy!)) < 1e-12);
      }
    });
    // The direction of the gap is a finding, not a given: the test checks that the reading reports the count.
    const gap = r.effects.find((e) => e.id === 'gap-follows-statistics')!;
    assert.equal(gap.holds.length, 3);
    assert.equal(gap.heldOn, gap.holds.filter(Boolean).length);
    assert.ok(r.reading.some((p) => p.includes(heldText(gap))));
  });

  test('inference: on every seed single-example eval equals batched eval; bias correction helps early; small test batches hurt', async () => {
    const r = await runInference({ data, quick: true, seeds: SEEDS });
    results.set('inference', r);
    everySeed(r, (d, seed) => {
      const { single, early, batchStatistics, runningAccuracy, identicalWeights } = d;
      assert.equal(single.mismatches, 0, `seed ${seed}`);
      assert.ok(single.maxRelDiff < 1e-5, `seed ${seed}: largest relative logit difference ${single.maxRelDiff}`);
      assert.ok(identicalWeights, `seed ${seed}`);
      for (const e of early) assert.ok(e.biasCorrected > e.plain, `seed ${seed}, momentum ${e.momentum}: bias-corrected ${e.biasCorrected} vs plain ${e.plain}`);
      assert.ok(batchStatistics[0].accuracy < runningAccuracy, `seed ${seed}`);
    });
  });

  test('the same seed repeats a run exactly', async () => {
    const a = await runInference({ data, quick: true, seed: 5, steps: 30, momenta: [0.1], testBatchSizes: [4] });
    const b = await runInference({ data, quick: true, seed: 5, steps: 30, momenta: [0.1], testBatchSizes: [4] });
    assert.deepEqual(a.data, b.data);
    assert.deepEqual(a.reading, b.reading);
  });

  test('batch-size compares every normalization this build has by default', async () => {
    const r = await runBatchSize({ data, quick: true, epochs: 1, batchSizes: [64], noiseBatchSizes: [8], noiseDraws: 2, trainSize: 128, testSize: 64 });
    assert.deepEqual(r.data.norms, availableHiddenNorms());
    assert.deepEqual([...new Set(r.data.gaps.map((g) => g.norm))], availableHiddenNorms());
  });

  test('smoothness: on every seed BN is smoother along the gradient than the network without BN that trains, and noisy BN shifts the inputs more yet keeps most of the benefit', async () => {
    const r = await runSmoothness({ data, quick: true, seeds: SEEDS });
    results.set('smoothness', r);
    everySeed(r, (d, seed) => {
      const { bn } = d.networks;
      const xavier = d.networks['plain-xavier'];
      const noisy = d.networks['noisy-bn'];
      assert.ok(bn.medians.lossRange < xavier.medians.lossRange, `seed ${seed}: loss range ${bn.medians.lossRange} with BN vs ${xavier.medians.lossRange}`);
      assert.ok(bn.medians.betaSmoothness < xavier.medians.betaSmoothness, `seed ${seed}: β ${bn.medians.betaSmoothness} with BN vs ${xavier.medians.betaSmoothness}`);
      assert.ok(noisy.medians.drift > 5 * bn.medians.drift, `seed ${seed}: drift ${noisy.medians.drift} noisy vs ${bn.medians.drift}`);
      assert.ok(noisy.finalAccuracy! > d.networks.plain.finalAccuracy! + 0.3, `seed ${seed}: noisy BN ${noisy.finalAccuracy} vs no BN ${d.networks.plain.finalAccuracy}`);
      for (const p of bn.probes) for (const g of p.ics) assert.ok(g.cosine <= 1 + 1e-6 && g.cosine >= -1 - 1e-6 && g.l2 >= 0);
      assert.equal(bn.probes.length, (r.settings.steps as number) / (r.settings.probeEvery as number));
    });
    assert.ok(r.reading.some((p) => p.startsWith("Santurkar et al.'s explanation")), 'the reading says which explanation the numbers support');
    assert.ok(r.reading.some((p) => p.startsWith('The original explanation')));
  });

  test('a seed gives the same numbers alone and as one of several seeds', async () => {
    const small = { data, quick: true, steps: 30, momenta: [0.1], testBatchSizes: [4] };
    const alone = await runInference({ ...small, seeds: [5] });
    const both = await runInference({ ...small, seeds: [4, 5] });
    assert.deepEqual(both.seedRuns[1].data, alone.data);
    assert.notDeepEqual(both.seedRuns[0].data, alone.data);
    assert.deepEqual(alone.reading, alone.seedRuns[0].reading, 'one seed: the reading is that seed\'s');
    assert.deepEqual(both.seeds, [4, 5]);
  });

  test('mistyped settings are errors', async () => {
    await assert.rejects(() => runConvergence({ data, quick: true, seed: SEED, steps: 0 }), /convergence: steps must be a positive integer/);
    await assert.rejects(() => runConvergence({ data, quick: true, seeds: 0 }), /convergence: seeds must be a positive integer/);
    await assert.rejects(() => runConvergence({ data, quick: true, seeds: [1, 1] }), /seeds must differ/);
    await assert.rejects(() => runGhostBatch({ data, quick: true, ghostSizes: [48] }), /ghost-batch: each ghost size must be at least 2 and divide the SGD batch 128, got 48/);
    await assert.rejects(() => runBatchSize({ data, quick: true, seed: SEED, batchSizes: [1] }), /batch sizes must be between 2/);
    await assert.rejects(() => runTwoFeature({ data, quick: true, ratios: [0] }), /two-feature: ratios must list positive numbers/);
    await assert.rejects(() => runTwoFeature({ data, quick: true, bnBatchSize: 1 }), /two-feature: bnBatchSize must be from 2 to samples \(256\), got 1/);
  });
});

describe('report', () => {
  let root: string;

  test('PNG text renders (a font is found)', async () => {
    const svg = await renderSvg(xyChart({ values: [{ x: 1, y: 1 }, { x: 2, y: 3 }], x: { field: 'x', title: 'XXXXXXXX' }, y: { field: 'y', title: 'YYYYYYYY' } }));
    assert.match(svg, /XXXXXXXX/);
    const textOnly = '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><text x="5" y="30" font-family="sans-serif" font-size="28">Wg 97%</text></svg>';
    const png = PNG.sync.read(Buffer.from(svgToPng(textOnly, { scale: 1 })));
    let dark = 0;
    for (let i = 0; i < png.data.length; i += 4) if (png.data[i] < 100) dark++;
    assert.ok(dark > 200, `only ${dark} dark pixels: no font rendered the text`);
  });

  test('run directories: results.json, SVG and PNG plots, report.html; the joined report', async () => {
    root = mkdtempSync(join(tmpdir(), 'bnlab-experiments-'));
    for (const name of ['convergence', 'two-feature', 'inference']) {
      const result = results.get(name) ?? (await getExperiment(name).run({ data, quick: true, seed: SEED }));
      const run = await writeExperimentRun(result, join(root, `${name}-test`));
      assert.deepEqual(JSON.parse(readFileSync(run.results, 'utf8')), JSON.parse(JSON.stringify(result)));
      const html = readFileSync(run.report, 'utf8');
      for (const p of result.reading) assert.ok(html.includes(p.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&#39;')), `report.html lacks the reading "${p.slice(0, 40)}..."`);
      for (const f of getExperiment(name).figures(result)) {
        assert.ok(statSync(join(run.dir, `${f.id}.svg`)).size > 1000);
        const png = PNG.sync.read(readFileSync(join(run.dir, `${f.id}.png`)));
        assert.ok(png.width > 400 && png.height > 200);
        assert.match(html, new RegExp(`<figure id="${name}-${f.id}">`));
      }
    }
    const { runs } = readRuns(root);
    assert.deepEqual(runs.map((r) => r.result.experiment), ['convergence', 'two-feature', 'inference']);
    const joined = await writeCombinedReport(root);
    assert.equal(joined.runs, 3);
    assert.match(readFileSync(joined.path, 'utf8'), /href="convergence-test\/report.html"/);
  });

  test('the report pages open in headless Chromium without console errors (screenshot)', async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium); .ci/run does this`);
    const userDataDir = mkdtempSync(join(tmpdir(), 'bnlab-chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1200, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      for (const page of [join(root, 'convergence-test', 'report.html'), join(root, 'report.html')]) {
        const tab = await context.newPage();
        const errors: string[] = [];
        tab.on('console', (m) => {
          if (m.type() === 'error') errors.push(m.text());
        });
        tab.on('pageerror', (e) => errors.push(String(e)));
        tab.on('requestfailed', (req) => errors.push(`request failed: ${req.url()}`));
        await tab.goto(pathToFileURL(page).href, { waitUntil: 'load' });
        assert.deepEqual(errors, [], `console errors on ${page}`);
        assert.ok((await tab.locator('figure svg').count()) >= 2);
        const shot = page.replace(/\.html$/, '-screenshot.png');
        await tab.screenshot({ path: shot, fullPage: true });
        const png = PNG.sync.read(readFileSync(shot));
        assert.ok(png.width >= 1200 && png.height > 900, `screenshot ${png.width}x${png.height}`);
        await tab.close();
      }
    } finally {
      await context.close();
    }
  });
});

test('namespaced SVG ids do not collide', () => {
  const svg = '<svg><clipPath id="clip1"></clipPath><g clip-path="url(#clip1)"></g></svg>';
  assert.equal(namespaceSvgIds(svg, 'a'), '<svg><clipPath id="a-clip1"></clipPath><g clip-path="url(#a-clip1)"></g></svg>');
});

describe('bnlab experiment and bnlab report', () => {
  const bnlab = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });

  test('a run directory from the command line, then the joined page', () => {
    const root = mkdtempSync(join(tmpdir(), 'bnlab-cli-experiments-'));
    const out = join(root, 'inference-cli');
    const r = bnlab(['experiment', 'inference', '--quick', '--seed', '3', '--seeds', '2', '--set', 'steps=20', '--set', 'momenta=0.1', '--set', 'testBatchSizes=4,16', '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Report: ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/report.html`));
    const result = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as ExperimentResult;
    assert.equal(result.seed, 3);
    assert.deepEqual(result.seeds, [3, 4]);
    assert.deepEqual(result.seedRuns.map((s) => s.seed), [3, 4]);
    assert.match(r.stdout, /\(quick, seeds 3, 4, /);
    assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /<h2>Each seed<\/h2>/);
    assert.deepEqual([result.settings.steps, result.settings.momenta, result.settings.testBatchSizes], [20, [0.1], [4, 16]]);
    for (const line of result.summary) assert.ok(r.stdout.includes(line));
    for (const f of ['report.html', 'running-statistics.svg', 'running-statistics.png', 'test-batch-statistics.png']) assert.ok(existsSync(join(out, f)), f);
    const joined = bnlab(['report', '--dir', root]);
    assert.equal(joined.status, 0, joined.stderr);
    assert.match(joined.stdout, /1 run joined/);
    assert.ok(existsSync(join(root, 'report.html')));
  });

  test('an unknown experiment or setting is an error that says what exists', () => {
    const r = bnlab(['experiment', 'nope', '--quick']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Unknown experiment "nope"\. Available: convergence, distribution, input-scale, two-feature, batch-size, ghost-batch, inference, smoothness/);
    const bad = bnlab(['experiment', 'inference', '--quick', '--set', 'steps=many', '--out', join(mkdtempSync(join(tmpdir(), 'bnlab-cli-bad-')), 'x')]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /inference: option "steps" must be a number/);
    // A misspelt name stops the run (before any training), naming the settings there are.
    const out = join(mkdtempSync(join(tmpdir(), 'bnlab-cli-bad-')), 'x');
    const typo = bnlab(['experiment', 'inference', '--quick', '--set', 'step=20', '--out', out]);
    assert.equal(typo.status, 1);
    assert.match(typo.stderr, /--set step=\.\.\.: inference has no setting "step"; its settings are steps, batchSize, lr, momenta/);
    assert.ok(!existsSync(out), 'no run directory');
  });

  test('--set takes a list of words, and one value where the setting is a list', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'bnlab-cli-set-')), 'x');
    const r = bnlab(['experiment', 'batch-size', '--quick', '--set', 'norms=none,batch', '--set', 'epochs=1', '--set', 'batchSizes=64', '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    const settings = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).settings;
    assert.deepEqual(settings.norms, ['none', 'batch']);
    assert.deepEqual(settings.batchSizes, [64]);
    // One word where the setting is a list: a one-element list; the summary says the other side was not run.
    const one = bnlab(['experiment', 'batch-size', '--quick', '--set', 'norms=batch', '--set', 'epochs=1', '--set', 'batchSizes=8,64', '--out', `${out}-one`]);
    assert.equal(one.status, 0, one.stderr);
    assert.match(one.stdout, /train−test gap at batch 8 \/ 64: with BN -?[\d.]+% \/ -?[\d.]+%, without not run/);
  });
});
