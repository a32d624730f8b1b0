/**
 * The report as a reader meets it: log axes labelled to their ends, prediction lines that match the
 * reading, readings that claim no more than their numbers, pages that say what is compared before the
 * results, and pages that stay readable on a phone and keep working when their folder moves.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { chromium, type Browser } from 'playwright-core';
import { loadDataset } from '../src/data/node.js';
import { initBackend } from '../src/kernels/index.js';
import { EXPERIMENTS, batchSizeFigures, describeSmoothness, runBatchSize, runConvergence, runDistribution, runInference, runInputScale, runSmoothness, smoothnessVerdict, SMOOTHNESS_QUICK, type BatchSizeResult, type ExperimentResult, type SmoothnessData } from '../src/experiments/index.js';
import { combineEffects, type EffectMeasure } from '../src/experiments/seeds.js';
import { seedBandSpec, xyChart, type VegaLiteSpec } from '../src/report/charts.js';
import { combinedReportHtml, experimentReportHtml } from '../src/report/html.js';
import { writeCombinedReport, writeExperimentRun } from '../src/cli/experiment-runs.js';

const CHROMIUM = '/usr/bin/chromium';

/** The y scale's domain as Vega draws it, and the labels the spec asks for. */
async function yAxis(spec: VegaLiteSpec): Promise<{ domain: number[]; labels: number[] }> {
  const view = new vega.View(vega.parse(vl.compile(spec as unknown as vl.TopLevelSpec).spec), { renderer: 'none' });
  await view.runAsync();
  const domain = view.scale('y').domain() as number[];
  view.finalize();
  const layers = (spec.layer as Array<{ encoding?: { y?: { axis?: { values?: number[] } } } }> | undefined) ?? [spec as { encoding?: { y?: { axis?: { values?: number[] } } } }];
  const labels = layers.map((l) => l.encoding?.y?.axis?.values).find((v) => v !== undefined) ?? [];
  return { domain, labels };
}

describe('charts', () => {
  test('a log axis is labelled at both ends of the decades Vega rounds it out to', async () => {
    // Losses from 0.22 to 3.3: Vega draws the axis from 0.1 to 10, so 0.1 and 10 need labels too.
    const values = [0.22, 0.4, 1, 3.3].map((loss, step) => ({ step, loss }));
    const { domain, labels } = await yAxis(xyChart({ values, x: { field: 'step', title: 'steps' }, y: { field: 'loss', title: 'loss (log scale)', scale: 'log' } }));
    assert.deepEqual(domain, [0.1, 10]);
    assert.equal(labels[0], 0.1);
    assert.equal(labels.at(-1), 10);
    // Points (padded, not rounded out) keep labels inside the data.
    const points = await yAxis(xyChart({ values, mark: 'point', x: { field: 'step', title: 'steps' }, y: { field: 'loss', title: 'loss (log scale)', scale: 'log' } }));
    assert.ok(points.labels[0] >= 0.22 && points.labels.at(-1)! <= 3.3, `labels ${points.labels}`);
  });

  test('over several seeds the log labels cover every seed, not only the first', async () => {
    const spec = xyChart({ values: [{ step: 0, loss: 2 }, { step: 1, loss: 3 }], x: { field: 'step', title: 'steps' }, y: { field: 'loss', title: 'loss (log scale)', scale: 'log' } });
    const values = [
      { step: 0, loss: 2, seed: 1 },
      { step: 1, loss: 3, seed: 1 },
      { step: 0, loss: 0.05, seed: 2 },
      { step: 1, loss: 40, seed: 2 },
    ];
    const { domain, labels } = await yAxis(seedBandSpec(spec, values));
    assert.ok(labels[0] <= domain[0] && labels.at(-1)! >= domain[1], `labels ${labels} for the domain ${domain}`);
  });

  test('batch-size: the black line of the batch-mean panel is the prediction the reading quotes', () => {
    const noise = [2, 512].map((b) => ({ layer: 1, batchSize: b, meanSpread: 0.5, varianceSpread: 0.5, expectedMeanSpread: Math.sqrt((1024 - b) / (b * 1023)) }));
    const settings = { batchSizes: [8], trainSize: 1024, testSize: 100, epochs: 1, lr: 1, lrScaling: 'constant', noiseBatchSizes: [2, 512], noiseDraws: 5 };
    const data = { norms: ['batch'], gaps: [], noise, noiseSlopes: [], noiseModelBatchSize: 64 };
    const result = { experiment: 'batch-size', settings, data, seedRuns: [] } as unknown as BatchSizeResult;
    const figure = batchSizeFigures(result).find((f) => f.id === 'noise')!;
    const rows = (figure.spec.data as { values: Array<Record<string, unknown>> }).values.filter((r) => r.series === 'sampling prediction' && r.statistic === 'batch mean');
    assert.deepEqual(rows.map((r) => r.spread), noise.map((r) => r.expectedMeanSpread));
    assert.match(figure.caption, /without replacement/);
  });
});

describe('readings', () => {
  const measure = (id: string, holds: boolean): EffectMeasure => ({ id, claim: id, label: id, value: holds ? 1 : -1, holds, format: 'value' });
  const effects = (trains: boolean) => combineEffects([['loss-range', 'gradient-predictiveness', 'beta-smoothness', 'ics-reduced', 'noisy-shift', 'noisy-ics'].map((id) => measure(id, true)).concat(measure('noisy-trains', trains))]);

  test('smoothness verdict: a noisy BN that lost the lead is said to have lost it, and the noise test is not said to question anything', () => {
    const text = smoothnessVerdict(effects(false)).join('\n');
    assert.match(text, /did not keep 90% of BN's lead over the better network without BN in this run/);
    assert.match(text, /without proving it/);
    assert.doesNotMatch(text, /not in this run/, 'the old sentence read "kept 90% ... not in this run"');
    assert.doesNotMatch(text, /noise test questions/);
  });

  test('smoothness verdict: a noisy BN that kept the lead questions the steadiness, not the observation', () => {
    const text = smoothnessVerdict(effects(true)).join('\n');
    assert.match(text, /is not supported as the reason BN helps/);
    assert.match(text, /The noise test does not question what the original paper observed/);
  });

  test('smoothness: a lead of BN within two standard errors is flagged before the noise test', () => {
    const run = (finalAccuracy: number) => ({ probes: [], train: [], test: [], finalAccuracy, finalLoss: 0.3, diverged: false, medians: { icsL2: 0.05, icsCosine: 0.9, lossRange: 0.1, gradientPredictiveness: 0.5, betaSmoothness: 0.6, drift: 0.01 } });
    const data = (bn: number, xavier: number): SmoothnessData => ({ networks: { bn: run(bn), plain: run(0.3), 'plain-xavier': run(xavier), 'noisy-bn': run(0.85) } });
    const close = describeSmoothness(data(0.89, 0.877), SMOOTHNESS_QUICK).reading.join('\n');
    assert.match(close, /BN's lead over the better network without BN was only 1\.3 points, less than two standard errors \(2\.0 points\) of an accuracy measured on 1,000 test images/);
    const clear = describeSmoothness(data(0.89, 0.7), SMOOTHNESS_QUICK).reading.join('\n');
    assert.doesNotMatch(clear, /standard errors/);
    const behind = describeSmoothness(data(0.86, 0.877), SMOOTHNESS_QUICK).reading.join('\n');
    assert.match(behind, /BN was not ahead of the better network without BN at the end \(86\.0% against 87\.7%\)/);
  });
});

describe('pages', () => {
  let data: { train: ReturnType<typeof loadDataset>; test: ReturnType<typeof loadDataset> };
  let result: ExperimentResult;
  let browser: Browser;

  before(async () => {
    await initBackend('auto');
    data = { train: loadDataset('mnist', 'train'), test: loadDataset('mnist', 'test') };
    result = await runInference({ data, quick: true, seed: 1, steps: 20, momenta: [0.1], testBatchSizes: [4, 16] });
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium package`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'] });
  });
  after(async () => {
    await browser?.close();
  });

  test('every experiment says what it compares, and the page says it before the results', () => {
    for (const e of EXPERIMENTS) assert.ok(e.compared.length > 100, `${e.name}: compared`);
    assert.match(EXPERIMENTS.find((e) => e.name === 'smoothness')!.compared, /noisy BN, which follows every batch-norm layer with a random scale and shift/);
    const html = experimentReportHtml(result, [], { compared: 'The two things.' });
    assert.ok(html.indexOf('What is compared.</strong> The two things.') > 0 && html.indexOf('What is compared.') < html.indexOf('<h2>Reading</h2>'));
  });

  test('the joined page: each run with its question, what it compares, its folder and its settings', () => {
    const html = combinedReportHtml([{ result, figures: [], href: 'inference-20250101-120000', compared: 'The two things.' }]);
    assert.ok(html.includes(`<p class="question">${result.question}</p>`));
    assert.ok(html.includes('What is compared.</strong> The two things.'));
    assert.match(html, /<td><a href="#run-0">inference<\/a><br><span class="folder">inference-20250101-120000<\/span><\/td><td>Batch norm at test time<\/td>/);
    assert.match(html, /<details class="settings">\n<summary>Settings<\/summary>[\s\S]*<th scope="row">momenta<\/th><td>0\.1<\/td>/);
    // Under a run's h2, its seeds are a subsection (h3); on the run's own page they are a section (h2).
    const twoSeeds = { ...result, seeds: [1, 2], seedRuns: [result.seedRuns[0], { ...result.seedRuns[0], seed: 2 }] };
    assert.match(combinedReportHtml([{ result: twoSeeds, figures: [], href: 'x' }]), /<h3>Each seed<\/h3>/);
    assert.match(experimentReportHtml(twoSeeds, []), /<h2>Each seed<\/h2>/);
  });

  test('on a phone (390 px) nothing widens the page and the charts keep a readable size; a moved folder still works offline', async () => {
    const root = mkdtempSync(join(tmpdir(), 'bnlab-report-pages-'));
    await writeExperimentRun(result, join(root, 'runs', 'inference-one'));
    await writeExperimentRun({ ...result, startedAt: '2025-01-01T12:00:00.000Z' }, join(root, 'runs', 'inference-two'));
    await writeCombinedReport(join(root, 'runs'));
    // Moved elsewhere, the pages must find everything they link to beside them.
    const moved = join(mkdtempSync(join(tmpdir(), 'bnlab-report-moved-')), 'elsewhere');
    cpSync(join(root, 'runs'), moved, { recursive: true });
    for (const file of [join(moved, 'report.html'), join(moved, 'inference-one', 'report.html')]) {
      const page = await browser.newPage({ viewport: { width: 390, height: 800 } });
      const outside: string[] = [];
      const errors: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith(pathToFileURL(moved).href) && !r.url().startsWith('data:')) outside.push(r.url());
      });
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      const layout = await page.evaluate(() => ({
        pageWidth: document.documentElement.scrollWidth,
        charts: Array.from(document.querySelectorAll('.chart svg')).map((svg) => ({ drawn: svg.getBoundingClientRect().width, own: Number(svg.getAttribute('width')) })),
        links: Array.from(document.querySelectorAll('a[href]')).map((a) => a.getAttribute('href')!).filter((h) => !h.startsWith('#')),
      }));
      await page.close();
      assert.deepEqual(errors, [], file);
      assert.deepEqual(outside, [], `${file} fetched from outside its folder`);
      assert.ok(layout.pageWidth <= 390, `${file}: the page is ${layout.pageWidth} px wide on a 390 px screen`);
      assert.ok(layout.charts.length >= 2);
      for (const c of layout.charts) assert.ok(c.drawn >= 0.8 * c.own - 1, `${file}: a ${c.own} px chart drawn ${Math.round(c.drawn)} px wide (its labels shrink to ${((11 * c.drawn) / c.own).toFixed(1)} px)`);
      for (const href of layout.links) assert.ok(!/^[a-z]+:/i.test(href) && existsSync(resolve(dirname(file), decodeURIComponent(href))), `${file}: ${href} does not lead to a file beside the page`);
    }
    assert.match(readFileSync(join(moved, 'report.html'), 'utf8'), /inference-one[\s\S]*inference-two/);
  });

  test('every y-axis title fits beside its plot (a longer one pads the chart with empty bands)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'bnlab-report-titles-'));
    // Tiny runs: the titles and plot sizes are those of the full runs.
    const runs = [
      await runConvergence({ data, quick: true, steps: 50, evalEvery: 25, checkpoints: [25, 50], sweepLrs: [1, 10], sweepSteps: 20 }),
      await runDistribution({ data, quick: true, steps: 60, probeEvery: 20, probeSize: 100 }),
      await runInputScale({ data, quick: true, steps: 20, lrs: [0.3, 3], testSize: 100 }),
      await runBatchSize({ data, quick: true, epochs: 1, batchSizes: [64, 128], noiseBatchSizes: [8, 32], noiseDraws: 2, trainSize: 128, testSize: 64 }),
      await runSmoothness({ data, quick: true, steps: 40, probeEvery: 20, probeSize: 50, testSize: 100 }),
      result,
    ];
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    for (const r of runs) {
      const run = await writeExperimentRun(r, join(root, r.experiment));
      await page.goto(pathToFileURL(run.report).href, { waitUntil: 'load' });
      const titles = await page.evaluate(() =>
        Array.from(document.querySelectorAll('figure svg')).flatMap((svg) => {
          const plot = svg.querySelector('path.background[stroke="#ccc"]')!.getBoundingClientRect().height;
          return Array.from(svg.querySelectorAll('.role-axis-title text'))
            .filter((t) => (t.getAttribute('transform') ?? '').includes('rotate(-90)'))
            .map((t) => ({ text: t.textContent, height: t.getBoundingClientRect().height, plot }));
        }),
      );
      assert.ok(titles.length >= 2);
      for (const t of titles) assert.ok(t.height <= t.plot, `${r.experiment}: the y title "${t.text}" is ${Math.round(t.height)} px long beside a ${Math.round(t.plot)} px plot`);
    }
    await page.close();
  });
});
