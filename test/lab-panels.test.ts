/**
 * The lab's claim panels Inside the network, Input scale, Batch size and noise and Test time, in the
 * built lab (dist-lab/) in headless Chromium: each shows a reading computed from its numbers after the
 * twins train; the input-scale slider changes the two-feature paths (and the numbers match the
 * library's); a digit drawn with the mouse is classified by both networks, with what a batch of one in
 * training mode gives beside it. No console errors, nothing fetched from elsewhere.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { gradientDescentPath, learningRateFor, targetLoss, twoFeatureProblem } from '../src/experiments/two-feature.js';
import { applyStandardization } from '../src/data/preprocess.js';
import { loadModelDir } from '../src/io/node-model-dir.js';
import { softmax } from '../src/nn/loss.js';
import { Tensor } from '../src/tensor/tensor.js';
import { bnlab } from './support/cli.js';
import { separableCsv } from './support/own-data.js';
import { advance, launch, openLab, serve, type WatchedPage } from './support/lab.js';
import { driftStyle, nextHistRange } from '../web/src/panels/inside.js';
import { divergenceMarkers, runReading, sweepOutcome } from '../web/src/panels/convergence.js';
import { ghostProblem } from '../web/src/panels/batch-size.js';
import { addSample, type LabData, type ProbeSample } from '../web/src/engine.js';
import { defaultState } from '../web/src/state.js';
import { tickLabel } from '../web/src/charts/line-chart.js';
import { FASHION_MNIST_CLASS_NAMES } from '../src/data/dataset.js';

let browser: Browser;
let server: { url: string; close(): Promise<void> };
let lab: WatchedPage;
let tmp: string;

const reading = (page: Page, panel: string) => page.locator(`#panel-${panel} .reading`).textContent() as Promise<string>;
/** Readings refresh a few times a second: wait until one differs from `before` (or just exists). */
async function nextReading(page: Page, panel: string, before = ''): Promise<string> {
  await page.waitForFunction(([id, old]) => {
    const t = document.querySelector(`#panel-${id} .reading`)?.textContent ?? '';
    return t !== '' && t !== old;
  }, [panel, before] as const, { timeout: 60_000 });
  return reading(page, panel);
}
/** A "1" on the digit pad: one stroke down the middle, with the mouse. */
async function drawOne(page: Page): Promise<void> {
  const pad = page.locator('#digit-pad');
  await pad.scrollIntoViewIfNeeded();
  const box = (await pad.boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.52, box.y + box.height * 0.15);
  await page.mouse.down();
  for (let i = 1; i <= 20; i++) await page.mouse.move(box.x + box.width * (0.52 - 0.04 * (i / 20)), box.y + box.height * (0.15 + 0.7 * (i / 20)));
  await page.mouse.up();
}
/** Type into a number box and leave it, as a person would (the control reads it on change). */
async function enter(page: Page, id: string, value: string): Promise<void> {
  await page.locator(`#${id}`).fill(value);
  await page.locator(`#${id}`).press('Tab');
}
const readingMatches = (page: Page, panel: string, re: RegExp) =>
  page.waitForFunction(([id, source]) => new RegExp(source).test(document.querySelector(`#panel-${id} .reading`)?.textContent ?? ''), [panel, re.source] as const, { timeout: 60_000 }).catch(() => {});
const numbers = (text: string) => (text.match(/-?\d+(\.\d+)?/g) ?? []).map(Number);

before(async () => {
  browser = await launch();
  server = await serve(true);
  lab = await openLab(browser, `${server.url}#seed=3`);
  tmp = mkdtempSync(join(tmpdir(), 'bnlab-lab-panels-'));
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('lab panels', () => {
  test('each panel has a reading computed from its numbers, and it changes as the twins train', async () => {
    const page = lab.page;
    await advance(page, 120);
    const first: Record<string, string> = {};
    for (const id of ['inside', 'input-scale', 'batch-size', 'test-time']) {
      // The probes behind a reading come from the workers a few frames after the steps: wait for them.
      await page
        .waitForFunction((panel) => {
          const t = document.querySelector(`#panel-${panel} .reading`)?.textContent ?? '';
          return (t.match(/-?\d+(\.\d+)?/g) ?? []).length >= 4 && !/Waiting|Train a few steps|train a few steps|NaN|undefined/.test(t);
        }, id, { timeout: 60_000 })
        .catch(() => {}); // the assertions below then say what the reading lacks
      first[id] = await nextReading(page, id);
      assert.ok(numbers(first[id]).length >= 4, `${id}: the reading quotes its numbers: ${first[id]}`);
      assert.doesNotMatch(first[id], /Waiting|Train a few steps|NaN|undefined/, `${id}: ${first[id]}`);
    }
    assert.match(first.inside, /with batch norm its median input went from .* without from/);
    assert.match(first['batch-size'], /σ\/√B = \d/);
    assert.match(first['test-time'], /raw and .* bias-corrected against a population mean/);
    await advance(page, 120);
    for (const id of ['inside', 'batch-size']) {
      const again = await nextReading(page, id, first[id]);
      assert.notEqual(again, first[id], `${id}: the reading follows the training`);
    }
    // Test time reports accuracy under each kind of statistics once measured (step 10, 20, ...).
    assert.match(await reading(page, 'test-time'), /test accuracy at step \d+ is [\d.]+% with the raw averages, [\d.]+% bias-corrected, [\d.]+% with population and [\d.]+% with batch statistics/);
    const inside = await reading(page, 'inside');
    const [bnDrift, plainDrift] = inside.match(/moved ([\d.]+) of their spread on average with batch norm and ([\d.]+) without/)!.slice(1).map(Number);
    assert.ok(bnDrift < plainDrift, `with batch norm the layers' inputs drift less: ${inside}`);
  });

  test('"Measure drift from now on" says it waits for a later probe, then measures from the new reference only', async () => {
    const page = lab.page;
    const at = (await page.evaluate(() => (globalThis as unknown as { bnlabLab: { snapshot(): { step: number } } }).bnlabLab.snapshot().step));
    await page.locator('#inside-reference').click();
    await readingMatches(page, 'inside', /Drift will be measured|Drift is measured from step/);
    const waiting = await reading(page, 'inside');
    assert.match(waiting, new RegExp(`Drift will be measured from the first probe at or after step ${at}: train on\\.|Drift is measured from step \\d+ on`), waiting);
    assert.doesNotMatch(waiting, /moved/, 'no conclusion from a single probe');
    await advance(page, 300);
    await readingMatches(page, 'inside', /Since step \d+ the hidden layers/);
    const measured = await reading(page, 'inside');
    const since = Number(/Since step (\d+) the hidden layers' input distributions moved [\d.]+ of their spread on average with batch norm and [\d.]+ without/.exec(measured)?.[1]);
    assert.ok(since >= at, `measured from the new reference (${at} or later): ${measured}`);
  });

  test('Batch size and noise: another unit starts its own series; a ghost-batch size that does not divide the batch says so', async () => {
    const page = lab.page;
    await readingMatches(page, 'batch-size', /σ\/√B = \d/);
    await enter(page, 'ctl-noiseUnit', '5');
    // The samples of unit 0 are not this unit's: until it is measured the panel has nothing to quote.
    await readingMatches(page, 'batch-size', /^Train a few steps/);
    assert.match(await reading(page, 'batch-size'), /^Train a few steps/);
    await advance(page, 10);
    await readingMatches(page, 'batch-size', /σ\/√B = \d/);
    assert.match(await reading(page, 'batch-size'), /jitters [-\d.e]+ from step to step/);
    await enter(page, 'ctl-ghostBatch', '7');
    await page.locator('#ghost-note').waitFor({ state: 'visible' });
    assert.match(await page.locator('#ghost-note').innerText(), /^Ghost batches of 7 are off: the size must divide the batch size 60 \(e\.g\. 2, 3, 4, 5, 6, 10, 12, 15\)\.$/);
    // A ghost batch of one is a batch of one: variance 0, refused as the library refuses it.
    await enter(page, 'ctl-ghostBatch', '1');
    await page.waitForFunction(() => /^Ghost batches of 1 are off: .*variance 0/.test(document.getElementById('ghost-note')?.textContent ?? ''));
    assert.match(await page.locator('#ghost-note').innerText(), /^Ghost batches of 1 are off: .*one example is its own mean, with variance 0 .*Use 2 or more\.$/);
    await enter(page, 'ctl-ghostBatch', '10');
    await page.locator('#ghost-note').waitFor({ state: 'hidden' });
    // A training batch of one: the box says why it is refused.
    await enter(page, 'ctl-batchSize', '1');
    assert.match(await page.locator('#hint-batchSize').innerText(), /^1 is not allowed: a whole number from 2 to 1000 \(batch norm trains on two examples or more: in a batch of one every unit equals its batch mean, so it normalizes to 0 whatever the input .*\); still 60$/);
    await enter(page, 'ctl-noiseUnit', '0');
    await enter(page, 'ctl-ghostBatch', '0');
  });

  test('Inside the network: the drift chart keeps the networks’ line styles and numbers its layers, so colour is never the only cue', async () => {
    for (const layer of [0, 1, 2, 5]) {
      assert.deepEqual(driftStyle('bn', layer).dash, [], `layer ${layer + 1} with batch norm is solid`);
      assert.ok(driftStyle('nobn', layer).dash.length > 0, `layer ${layer + 1} without is dashed`);
      assert.equal(driftStyle('bn', layer).endLabel, String(layer + 1));
    }
    const legend = await lab.page.locator('#panel-inside .chart-cell .html-legend').evaluate((row) =>
      Array.from(row.querySelectorAll('.html-legend-item')).map((item) => ({ text: item.textContent, dash: item.querySelector('line')?.getAttribute('stroke-dasharray') ?? null })),
    );
    assert.deepEqual(legend.slice(0, 2), [{ text: 'with batch norm', dash: null }, { text: 'without', dash: '7 4' }]);
    assert.match(legend[2].text!, /number at a line’s end: its hidden layer/);
  });

  test('Inside the network: a unit past the layer’s width is its last unit, and the reading says so', async () => {
    const narrow = await openLab(browser, `${server.url}#seed=3&width=2&insideUnit=50`);
    try {
      await advance(narrow.page, 60);
      await readingMatches(narrow.page, 'inside', /steps 0 to 50/);
      assert.match(await reading(narrow.page, 'inside'), /^Unit 1 of hidden layer 3 \(the layer has 2 units, so unit 50 does not exist: its last unit is shown\), steps 0 to 50: with batch norm its median input went from -?[\d.]+ to/);
      assert.deepEqual(narrow.errors, []);
    } finally {
      await narrow.page.context().close();
    }
  });

  test('Inside the network after the network without batch norm diverged: the reading names the step and describes the other', async () => {
    const relu = await openLab(browser, `${server.url}#activation=relu&lr=1`);
    try {
      await advance(relu.page, 60);
      // Each network reports from its own worker: wait for the reading written once both have.
      await readingMatches(relu.page, 'inside', /diverged at step \d+ .*steps 0 to 50/);
      const text = await reading(relu.page, 'inside');
      const snap = await relu.page.evaluate(() => (globalThis as unknown as { bnlabLab: { snapshot(): { runs: { nobn: { diverged: { step: number } | null } } } } }).bnlabLab.snapshot());
      assert.ok(snap.runs.nobn.diverged, 'the network without batch norm diverged');
      assert.match(text, new RegExp(`^The network without batch norm diverged at step ${snap.runs.nobn.diverged!.step} and is no longer measured; in the one with it, unit 0 of hidden layer 3, steps 0 to 50: its median input went from`), text);
      assert.doesNotMatch(text, /train a few steps/);
      assert.deepEqual(relu.errors, []);
    } finally {
      await relu.page.context().close();
    }
  });

  test('Fashion-MNIST: the input-scale panel names it; a digit drawn before any training says the network is untrained, without console warnings', async () => {
    const fashion = await openLab(browser, `${server.url}#dataset=fashion-mnist&seed=3`);
    try {
      const page = fashion.page;
      await drawOne(page);
      const results = page.locator('#digit-results');
      await results.locator('.prob-block').first().waitFor({ timeout: 60_000 });
      assert.match(await results.locator('.prob-bn').innerText(), /untrained/);
      // The answers are Fashion-MNIST's classes by name, and the pad asks for clothing.
      const classes = FASHION_MNIST_CLASS_NAMES.map((c) => c.replace('/', '\\/')).join('|');
      assert.match(await results.locator('.prob-nobn .prob-title').first().innerText(), new RegExp(`^prediction \\(no batch norm: the same in eval and training mode\\): (${classes}) \\(`));
      assert.deepEqual(await results.locator('.prob-nobn .prob-bars').first().locator('.prob-label').allInnerTexts(), [...FASHION_MNIST_CLASS_NAMES]);
      await page.locator('#digit-clear').click();
      assert.match(await results.innerText(), /^Draw a piece of clothing on the black square: these networks learned Fashion-MNIST \(t-shirt\/top, trouser, .* ankle boot\)\.$/);
      await drawOne(page);
      await results.locator('.prob-block').first().waitFor({ timeout: 60_000 });
      await readingMatches(page, 'test-time', /has not trained yet/);
      assert.match(await reading(page, 'test-time'), /the network with batch norm has not trained yet.*train some steps first/);
      await advance(page, 10);
      await readingMatches(page, 'input-scale', /on Fashion-MNIST/);
      assert.match(await reading(page, 'input-scale'), /; on Fashion-MNIST with its pixels as they are, after 10 steps/);
      assert.match(await page.locator('#input-scale-dataset-title').innerText(), /^Fashion-MNIST, with and without batch norm$/);
      assert.doesNotMatch(await page.locator('#panel-input-scale').innerText(), /\bMNIST\b(?<!Fashion-MNIST)/);
      assert.deepEqual(fashion.warnings, [], 'no console warnings');
      assert.deepEqual(fashion.errors, []);
    } finally {
      await fashion.page.context().close();
    }
  });

  test('the histogram range follows the data, with hysteresis; the sweep tells trained, did not learn and diverged apart', () => {
    assert.equal(nextHistRange(8, 5), 8, 'data inside the range: unchanged');
    assert.equal(nextHistRange(8, 9), 16, 'wider data widen it at once');
    assert.equal(nextHistRange(64, 7), 8, 'data in a quarter of the range or less narrow it');
    assert.equal(nextHistRange(16, 7), 16, 'not back and forth at a boundary');
    assert.equal(nextHistRange(8, NaN), 8);
    assert.equal(sweepOutcome({ finalLoss: 0.2, diverged: null }), 'trained');
    assert.equal(sweepOutcome({ finalLoss: 2.3, diverged: null }), 'did not learn');
    assert.equal(sweepOutcome({ finalLoss: NaN, diverged: { step: 3 } }), 'diverged');
    // A run where batch norm trails: on batches of 2 the reading names the noisy statistics; on batches of 60 it does not guess.
    const series = (loss: number, accuracy: number) => ({ trainLoss: Array(60).fill(loss), test: [{ step: 100, accuracy }], diverged: null });
    const trailing = (batchSize: number) => ({ step: 7000, playing: false, applied: { ...defaultState(), batchSize }, runs: { bn: series(2.26, 0.224), nobn: series(1.6, 0.475) } }) as unknown as LabData;
    assert.match(runReading(trailing(2)), /higher than without \(1\.6.*In batches of 2, each batch's mean and variance are too noisy/);
    assert.doesNotMatch(runReading(trailing(60)), /too noisy/);
    assert.equal(ghostProblem(10, 60), null);
    assert.equal(ghostProblem(0, 60), null);
    assert.match(ghostProblem(7, 1000)!, /must divide the batch size 1000/);
  });

  test('long runs: tick labels stay distinct past 10,000; probe samples keep the whole run evenly; two crosses at one step both show and name their network', () => {
    assert.deepEqual([5000, 10000, 15000, 20000, 150000].map(tickLabel), ['5000', '10,000', '15,000', '20,000', '150,000']);
    assert.deepEqual([1e6, 1.5e-4, 1e-6, 0.001, 0.25, 0].map(tickLabel), ['1e+6', '1.5e-4', '1e-6', '0.001', '0.25', '0']);
    const list: ProbeSample[] = [];
    for (let step = 0; step <= 20_000; step++) addSample(list, { step, value: step });
    assert.ok(list.length <= 2000 && list.length >= 1000, `${list.length} samples`);
    assert.equal(list[0].step, 0, 'the first sample stays');
    assert.equal(list.at(-1)!.step, 20_000, 'the newest sample is there');
    const gaps = list.slice(1).map((s, i) => s.step - list[i].step);
    assert.ok(Math.max(...gaps) <= 32, `evenly spaced over the whole run: largest gap ${Math.max(...gaps)} steps`);
    const firstHalf = list.filter((s) => s.step < 10_000).length;
    assert.ok(firstHalf >= 0.4 * list.length, `${firstHalf} of ${list.length} samples in the first half of the run`);
    const diverged = (step: number, loss: number) => ({ step, loss, cause: 'threshold', message: '' });
    const data = { step: 50, runs: { bn: { diverged: diverged(50, 7.6) }, nobn: { diverged: diverged(50, 7.3) } } } as unknown as LabData;
    const markers = divergenceMarkers(data);
    assert.deepEqual(markers.map((m) => m.label), ['with BN: diverged at step 50', 'without BN: diverged at step 50']);
    assert.ok((markers[1].dy ?? 0) >= 14, 'the second cross sits below the first');
  });

  test('training does not redraw the two-feature charts, which depend on the ratio alone', async () => {
    const page = lab.page;
    await page.locator('#panel-input-scale').scrollIntoViewIfNeeded();
    await page.evaluate(() => {
      const g = globalThis as unknown as { twoFeatureDraws: number };
      g.twoFeatureDraws = 0;
      for (const canvas of Array.from(document.querySelectorAll<HTMLCanvasElement>('#panel-input-scale .chart-row canvas'))) {
        const ctx = canvas.getContext('2d')!;
        const clear = ctx.clearRect.bind(ctx);
        ctx.clearRect = (...args: Parameters<CanvasRenderingContext2D['clearRect']>) => {
          g.twoFeatureDraws++;
          clear(...args);
        };
      }
    });
    for (let i = 0; i < 3; i++) await advance(page, 20);
    // The panel has drawn the last of those steps (its reading quotes the step count).
    const step = await page.evaluate(() => (globalThis as unknown as { bnlabLab: { snapshot(): { step: number } } }).bnlabLab.snapshot().step);
    await readingMatches(page, 'input-scale', new RegExp(`after ${step} steps`));
    assert.match(await reading(page, 'input-scale'), new RegExp(`after ${step} steps`));
    await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
    assert.equal(await page.evaluate(() => (globalThis as unknown as { twoFeatureDraws: number }).twoFeatureDraws), 0, 'contours and loss curve redrawn by training steps');
  });

  test('the input-scale slider changes the gradient-descent paths, with the library’s step counts', async () => {
    const page = lab.page;
    const canvas = page.locator('#panel-input-scale canvas').first();
    const before = await canvas.evaluate((c: HTMLCanvasElement) => c.toDataURL());
    const text100 = await reading(page, 'input-scale');
    assert.match(text100, /At a scale ratio of 100, gradient descent on raw inputs needs 12,639 \(estimated\) steps/);
    await page.locator('#ctl-scaleRatio').fill('1'); // log10 of 10
    const text10 = await nextReading(page, 'input-scale', text100);
    const p = twoFeatureProblem({ ratio: 10 });
    const raw = gradientDescentPath(p, { inputs: 'raw', lr: learningRateFor(p, 'raw', 0.9), steps: 2000, targetLoss: targetLoss(p) });
    assert.match(text10, new RegExp(`At a scale ratio of 10, gradient descent on raw inputs needs ${raw.stepsToTarget} steps`));
    const after10 = await canvas.evaluate((c: HTMLCanvasElement) => c.toDataURL());
    assert.notEqual(after10, before, 'the contour chart was redrawn with the new path');
    assert.match(page.url(), /scaleRatio=10(&|$)/, 'the ratio is in the URL');
    await page.locator('#ctl-scaleRatio').fill('0'); // ratio 1: the two features alike
    assert.match(await nextReading(page, 'input-scale', text10), /At a scale ratio of 1 the two features are alike/);
  });

  test('a digit drawn with the mouse is classified by both networks, beside a batch of one in training mode', async () => {
    const page = lab.page;
    await advance(page, 300);
    await drawOne(page);
    const results = page.locator('#digit-results');
    await results.locator('.prob-block').first().waitFor({ timeout: 60_000 });
    const text = (await results.textContent())!;
    assert.match(text, /With batch norm.*eval mode \(running statistics\): \d \(/s);
    assert.match(text, /Without batch norm.*prediction \(no batch norm: the same in eval and training mode\): \d \(/s);
    assert.match(text, /batch of one, training mode: each batch norm outputs β/);
    assert.match(text, /The library refuses it: .*batch statistics need more than one value per channel/);
    const top = (await results.locator('.prob-bn .prob-title').first().textContent())!;
    assert.match(top, /^eval mode \(running statistics\): 1 \(/, `the network with batch norm reads the drawn 1 as a 1: ${top}`);
    // The preview is the 28x28 MNIST-style input: ink centred by mass.
    const centre = await page.locator('#digit-preview').evaluate((c: HTMLCanvasElement) => {
      const d = c.getContext('2d')!.getImageData(0, 0, 28, 28).data;
      let m = 0, x = 0, y = 0;
      for (let i = 0; i < 784; i++) { m += d[4 * i]; x += d[4 * i] * (i % 28); y += d[4 * i] * Math.floor(i / 28); }
      return [x / m, y / m];
    });
    assert.ok(Math.abs(centre[0] - 14) <= 0.5 && Math.abs(centre[1] - 14) <= 0.5, `centre of mass ${centre}`);
    await page.waitForFunction(() => /Your drawing: in eval mode the network with batch norm says \d/.test(document.querySelector('#panel-test-time .reading')?.textContent ?? ''), null, { timeout: 60_000 });
    assert.match(await reading(page, 'test-time'), /as a batch of one in training mode it would say \d \([\d.]+%\) for any drawing, since every batch norm outputs its β/);
    // A model trained by `bnlab train`, opened from its files, is classified beside the twins.
    const runDir = join(tmp, 'cli-run');
    const trained = await bnlab(['train', '--steps', '200', '--train-limit', '6000', '--test-limit', '100', '--eval-every', '0', '--out', runDir]);
    assert.equal(trained.code, 0, trained.stderr);
    await page.locator('#import-model').setInputFiles([join(runDir, 'model.json'), join(runDir, 'model.safetensors')]);
    await page.waitForFunction(() => document.getElementById('import-status')!.textContent!.startsWith('Opened'));
    await page.locator('#digit-again').click();
    await results.locator('.prob-imported').waitFor({ timeout: 60_000 });
    assert.match((await results.locator('.prob-imported').textContent())!, /^Opened model \(model\)eval mode \(running statistics\): \d \(/);

    // A CNN trained with --standardize: the drawing reaches it as [1, 28, 28], standardized with its
    // training statistics, and it says what the same model says in Node on the same pixels.
    const cnnDir = join(tmp, 'cli-cnn');
    const cnn = await bnlab(['train', '--model', 'mnist-cnn', '--standardize', '--steps', '60', '--train-limit', '3000', '--test-limit', '100', '--eval-every', '0', '--out', cnnDir]);
    assert.equal(cnn.code, 0, cnn.stderr);
    await page.locator('#import-model').setInputFiles([join(cnnDir, 'model.json'), join(cnnDir, 'model.safetensors')]);
    await page.waitForFunction(() => /^Opened model\.json: 13 layers/.test(document.getElementById('import-status')!.textContent!));
    // The block of the model opened before stays until the new classification replaces it: wait for that,
    // not for text the old block already has (on a busy machine the old block was read as the CNN's).
    const previous = await results.locator('.prob-imported').elementHandle();
    await page.locator('#digit-again').click();
    await page.waitForFunction((old) => !old?.isConnected && !!document.querySelector('#digit-results .prob-imported')?.textContent?.includes('eval mode'), previous);
    const labTitle = (await results.locator('.prob-imported .prob-title').first().textContent())!;
    const [, labClass, labPercent] = /^eval mode \(running statistics\): (\d) \(([\d.]+)%\)/.exec(labTitle)!;
    const pixels = await page.locator('#digit-preview').evaluate((c: HTMLCanvasElement) => Array.from(c.getContext('2d')!.getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0), (v) => v / 255));
    const { model, json } = loadModelDir(cnnDir);
    model.eval();
    const x = applyStandardization(Float32Array.from(pixels), json.inputShape, json.preprocessing!.standardize!);
    const probs = Array.from(softmax(model.forward(new Tensor([1, ...json.inputShape], x))).data);
    const nodeClass = probs.indexOf(Math.max(...probs));
    assert.equal(Number(labClass), nodeClass, `the lab says ${labTitle}; Node: ${probs.map((p) => p.toFixed(3))}`);
    assert.ok(Math.abs(Number(labPercent) - 100 * probs[nodeClass]) < 1, `the lab says ${labTitle}; Node ${(100 * probs[nodeClass]).toFixed(1)}% (the preview rounds pixels to 1/255)`);

    // A model that does not take 28×28 images (a CSV table) is refused, naming its input; the opened one stays.
    const csv = join(tmp, 'table.csv');
    separableCsv(csv);
    const csvDir = join(tmp, 'cli-csv');
    const tabular = await bnlab(['train', '--data', csv, '--model', 'mlp', '--hidden', '8', '--steps', '20', '--eval-every', '0', '--out', csvDir]);
    assert.equal(tabular.code, 0, tabular.stderr);
    await page.locator('#import-model').setInputFiles([join(csvDir, 'model.json'), join(csvDir, 'model.safetensors')]);
    await page.waitForFunction(() => document.getElementById('import-status')!.textContent!.startsWith('Could not open'));
    assert.match(await page.locator('#import-status').innerText(), /takes input \[4\] \(4 values, the CSV columns .*\), and the digit pad draws 28×28 gray images \(784 values\)/);
    await page.locator('#digit-again').click();
    await page.waitForFunction(() => document.querySelector('#digit-results .prob-imported')?.textContent?.includes('eval mode'));

    await page.locator('#digit-clear').click();
    assert.equal(await results.textContent(), 'Draw a digit on the black square.');
  });

  test('MNIST with rescaled pixels (input scale) and batch norm on the input, from the URL; test time explains a mean that is 0 by construction', async () => {
    const scaled = await openLab(browser, `${server.url}#seed=3&inputScale=1000&inputBn=true`);
    try {
      await advance(scaled.page, 60);
      const expected = /on MNIST with pixel scales spanning 1000×, after 60 steps the loss is [\d.]+ with batch norm \(also on the input\) and ([\d.]+|diverged at step \d+) without/;
      // Each twin's losses come from its own worker, so wait for the frame that has both.
      await scaled.page.waitForFunction((source) => new RegExp(source).test(document.querySelector('#panel-input-scale .reading')?.textContent ?? ''), expected.source, { timeout: 60_000 }).catch(() => {});
      const text = await reading(scaled.page, 'input-scale');
      assert.match(text, expected);
      const snap = (await scaled.page.evaluate(() => (globalThis as unknown as { bnlabLab: { snapshot(): { config: { inputScale: number }; runs: { nobn: { trainLoss: number[] } } } } }).bnlabLab.snapshot()));
      assert.equal(snap.config.inputScale, 1000);
      const plain = await lab.page.evaluate(() => (globalThis as unknown as { bnlabLab: { snapshot(): { runs: { nobn: { trainLoss: number[] } } } } }).bnlabLab.snapshot());
      // Same seed and batches, other pixels: the network without batch norm sees a different problem from step 1.
      assert.notEqual(snap.runs.nobn.trainLoss[1], plain.runs.nobn.trainLoss[1]);
      // Test time, hidden layer 2 (the default): a unit with a population mean to warm up to.
      const warmUp = /raw and .* bias-corrected against a population mean of (-?\d+\.\d+)/;
      await scaled.page.waitForFunction((source) => new RegExp(source).test(document.querySelector('#panel-test-time .reading')?.textContent ?? ''), warmUp.source).catch(() => {});
      const layer2 = await reading(scaled.page, 'test-time');
      assert.match(layer2, warmUp);
      assert.ok(Math.abs(Number(warmUp.exec(layer2)![1])) >= 1e-3, layer2);
      // Hidden layer 1 behind batch norm on the input: its mean is 0 by construction, and the reading says so.
      await scaled.page.locator('#ctl-testLayer').evaluate((el) => {
        (el as HTMLInputElement).value = '1';
        el.dispatchEvent(new Event('input', { bubbles: true }));
      });
      // The probe follows the new layer from its next measured step (70).
      await scaled.page.waitForFunction(() => /is measured from now on/.test(document.querySelector('#panel-test-time .reading')?.textContent ?? '')).catch(() => {});
      await advance(scaled.page, 20);
      await scaled.page.waitForFunction(() => /0 by construction/.test(document.querySelector('#panel-test-time .reading')?.textContent ?? '')).catch(() => {});
      const layer1 = await reading(scaled.page, 'test-time');
      assert.match(layer1, /^The input of unit 0 in hidden layer 1 has a population mean of (-?\d\.\de[-+]\d+), 0 by construction \(batch norm on the input/);
      assert.ok(Math.abs(Number(/population mean of (\S+),/.exec(layer1)![1])) < 1e-3, layer1);
      assert.match(layer1, /Choose hidden layer 2/);
      // Batch size and noise, hidden layer 1 behind batch norm on the input: the batch's mean is pinned, and the reading says by what.
      await scaled.page.waitForFunction(() => /pins the whole batch’s mean/.test(document.querySelector('#panel-batch-size .reading')?.textContent ?? '')).catch(() => {});
      assert.match(await reading(scaled.page, 'batch-size'), /hidden layer 1 jitters \S+ from step to step, well below σ\/√B = .* \(the batch norm on the input pins the whole batch’s mean\)/);
      assert.deepEqual(scaled.errors, []);
    } finally {
      await scaled.page.context().close();
    }
  });

  test('no console errors and nothing fetched from elsewhere', () => {
    assert.deepEqual(lab.errors, []);
    assert.deepEqual(lab.foreign, []);
  });
});
