/**
 * The lab (dist-lab/, built by `npm test`'s pretest) in headless Chromium: cross-origin isolated with two
 * workers, the same numbers as the Node trainer (src/runs) for the same config, the URL as the state,
 * the run controls and keys, divergence, export and import of model files, one-thread mode without the
 * isolation headers, a phone by touch, keyboard and screen-reader use; no console errors and no request
 * outside the origin, on every page.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { loadDataset } from '../src/data/node.js';
import { takeFirst } from '../src/data/dataset.js';
import { featureScales, scaleFeatures } from '../src/experiments/data.js';
import { initBackend } from '../src/kernels/index.js';
import { buildTwin, createRun, twinRunConfig, type TwinId } from '../src/runs/index.js';
import { softmax } from '../src/nn/loss.js';
import { Tensor } from '../src/tensor/tensor.js';
import { DivergenceError } from '../src/train/trainer.js';
import { defaultState, parseHash, serializeHash, twinSpec, LAB_TEST_IMAGES, type LabState } from '../web/src/state.js';
import { bnlab } from './support/cli.js';
import { advance, launch, openLab, serve, snapshot, type OpenOptions, type WatchedPage } from './support/lab.js';

let browser: Browser;
let isolated: { url: string; close(): Promise<void> };
let plain: { url: string; close(): Promise<void> };
let tmp: string;
const pages: WatchedPage[] = [];

before(async () => {
  browser = await launch();
  isolated = await serve(true);
  plain = await serve(false);
  tmp = mkdtempSync(join(tmpdir(), 'bnlab-lab-test-'));
  await initBackend('wasm', { threads: 1 }); // the lab's backend, for the Node side of the comparisons
});

after(async () => {
  await browser?.close();
  await isolated?.close();
  await plain?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function open(url: string, options?: OpenOptions): Promise<WatchedPage> {
  const p = await openLab(browser, url, options);
  pages.push(p);
  return p;
}

/** Move a slider as a person would: its value changes and it fires 'input'. */
async function setSlider(page: import('playwright-core').Page, id: string, value: string): Promise<void> {
  await page.locator(`#${id}`).evaluate((el, v) => {
    (el as HTMLInputElement).value = v;
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, value);
}

/** Every page of a test: no console errors, nothing fetched from elsewhere. */
function checkClean(p: WatchedPage): void {
  assert.deepEqual(p.errors, [], 'console errors');
  assert.deepEqual(p.foreign, [], 'requests outside the origin');
}

/**
 * The Node trainer on the lab's config: both twins from src/runs, `steps` steps, per-step losses and test
 * accuracy. Input scales above 1 rescale the pixels as the lab's worker does (factors from 1/√r to √r, seeded).
 */
async function nodeTwins(state: LabState, steps: number) {
  const spec = twinSpec(state);
  let trainSet = loadDataset(state.dataset, 'train');
  let testSet = takeFirst(loadDataset(state.dataset, 'test'), LAB_TEST_IMAGES);
  if (state.inputScale > 1) {
    const scales = featureScales(784, 1 / Math.sqrt(state.inputScale), Math.sqrt(state.inputScale), state.seed);
    trainSet = scaleFeatures(trainSet, scales);
    testSet = scaleFeatures(testSet, scales);
  }
  const out: Record<TwinId, { losses: number[]; accuracy: Map<number, number>; model: import('../src/nn/sequential.js').Sequential }> = {} as never;
  for (const twin of ['bn', 'nobn'] as const) {
    const { model, inputShape } = buildTwin(spec, twin);
    const run = await createRun(twinRunConfig(spec), { trainSet, testSet }, { model, inputShape });
    const losses: number[] = [];
    const accuracy = new Map<number, number>();
    for (let i = 0; i < steps; i++) {
      try {
        losses.push(run.trainer.trainStep());
      } catch (e) {
        if (e instanceof DivergenceError) break;
        throw e;
      }
      if (run.trainer.step % spec.evalEvery === 0) accuracy.set(run.trainer.step, run.trainer.evaluateTest()!.accuracy);
    }
    out[twin] = { losses, accuracy, model };
  }
  return out;
}

describe('the lab in Chromium', { timeout: 300_000 }, () => {
  test('cross-origin isolated, two workers; after advance(200) both losses equal the Node trainer’s within 1e-5', async () => {
    const p = await open(isolated.url);
    assert.equal(await p.page.evaluate(() => globalThis.crossOriginIsolated), true);
    assert.ok(p.page.workers().length >= 2, `expected two engine workers, found ${p.page.workers().length}`);
    assert.match(await p.page.locator('#env').innerText(), /2 workers/);
    await advance(p.page, 200);
    const snap = await snapshot(p.page);
    assert.equal(snap.step, 200);
    const node = await nodeTwins(defaultState(), 200);
    for (const twin of ['bn', 'nobn'] as const) {
      const lab = snap.runs[twin].trainLoss;
      assert.equal(lab.length, 200, `${twin}: one loss per step`);
      const worst = Math.max(...lab.map((l, i) => Math.abs((l as number) - node[twin].losses[i])));
      assert.ok(worst <= 1e-5, `${twin}: largest difference from the Node trainer ${worst}`);
      for (const { step, accuracy } of snap.runs[twin].testAccuracy) assert.ok(Math.abs(accuracy - node[twin].accuracy.get(step)!) < 1e-9, `${twin} test accuracy at step ${step}`);
    }
    assert.deepEqual(snap.runs.bn.testAccuracy.map((t) => t.step), [100, 200]);
    // With batch norm the paper's network is well ahead after 200 steps at the same rate.
    assert.ok(snap.runs.bn.testAccuracy[1].accuracy > snap.runs.nobn.testAccuracy[1].accuracy + 0.3);
    checkClean(p);
  });

  test('rescaled pixels (input scale): the two workers share one rescaled copy, and both losses equal the Node trainer’s', async () => {
    const state: LabState = { ...defaultState(), inputScale: 100, inputBn: true, seed: 3 };
    const p = await open(isolated.url + serializeHash(state));
    assert.match(await p.page.locator('#env').innerText(), /2 workers/);
    await advance(p.page, 60);
    const snap = await snapshot(p.page);
    const node = await nodeTwins(state, 60);
    for (const twin of ['bn', 'nobn'] as const) {
      const lab = snap.runs[twin].trainLoss;
      assert.equal(lab.length, 60, `${twin}: one loss per step`);
      const worst = Math.max(...lab.map((l, i) => Math.abs((l as number) - node[twin].losses[i])));
      assert.ok(worst <= 1e-5, `${twin}: largest difference from the Node trainer ${worst}`);
    }
    checkClean(p);
  });

  test('a fresh page with the same URL repeats the numbers; the URL round-trips the config', async () => {
    const state: LabState = { ...defaultState(), dataset: 'fashion-mnist', depth: 2, width: 32, activation: 'tanh', optimizer: 'adam', lr: 0.002, batchSize: 32, seed: 7, bnPlacement: 'after', inputBn: true };
    const hash = serializeHash(state);
    const runs = [];
    for (let i = 0; i < 2; i++) {
      const p = await open(isolated.url + hash);
      assert.equal(await p.page.evaluate(() => location.hash), hash);
      assert.equal(await p.page.locator('#ctl-activation').inputValue(), 'tanh');
      assert.equal(await p.page.locator('#ctl-dataset').inputValue(), 'fashion-mnist');
      assert.equal(await p.page.locator('#ctl-inputBn').isChecked(), true);
      await advance(p.page, 30);
      const snap = await snapshot(p.page);
      assert.deepEqual(snap.config, state);
      runs.push(snap.runs);
      checkClean(p);
    }
    assert.deepEqual(runs[0], runs[1]);
    // A control changes the URL, and the URL read back gives that state.
    const p = pages.at(-1)!;
    await setSlider(p.page, 'ctl-depth', '5');
    const after = await p.page.evaluate(() => location.hash);
    assert.equal(parseHash(after).state.depth, 5);
    assert.match(await p.page.locator('#pending').innerText(), /Hidden layers/);
  });

  test('a hostile link opens with the defaults for what it got wrong, says which, and injects nothing', async () => {
    const hash = '#depth=99&lr=abc&activation=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E&%3Cscript%3E=1&width=64&seed=1e3&%E0%A4%A=1';
    const p = await open(isolated.url + hash);
    const notices = await p.page.locator('#notices').innerText();
    for (const bad of ['depth=99', 'lr=abc', 'activation=<img', '<script> (unknown setting)', 'seed=1e3', 'malformed']) assert.ok(notices.includes(bad), `notice mentions ${bad}: ${notices}`);
    assert.equal(await p.page.locator('#notices img, #notices script').count(), 0);
    const snap = await snapshot(p.page);
    assert.equal(snap.config.depth, 3);
    assert.equal(snap.config.width, 64);
    assert.equal(snap.config.activation, 'sigmoid');
    assert.equal(snap.config.lr, 1);
    assert.equal(await p.page.evaluate(() => location.hash), serializeHash({ ...defaultState(), width: 64 }));
    checkClean(p);
  });

  test('a link with hundreds of ignored entries: the note sits below the bar, names a few, counts the rest and closes', async () => {
    const many = Array.from({ length: 380 }, (_, i) => `k${i}=1`).join('&');
    const p = await open(`${isolated.url}#=5&depth=2&${many}`);
    const { page } = p;
    const note = page.locator('#ignored-settings');
    const text = await note.innerText();
    assert.match(text, /\(empty name\) \(unknown setting\); k0 \(unknown setting\)/, text);
    assert.match(text, /and 373 more\./, text);
    assert.ok(text.length < 400, `the note stays short: ${text.length} characters`);
    assert.equal(await page.locator('.top #ignored-settings').count(), 0, 'the note is not in the sticky bar');
    const header = await page.locator('.top').evaluate((h) => h.getBoundingClientRect().height);
    assert.ok(header < 160, `the sticky bar is ${header} px tall`);
    assert.equal((await snapshot(page)).config.depth, 2, 'the valid entries apply');
    await note.locator('.note-close').click();
    assert.equal(await page.locator('#ignored-settings').count(), 0, 'closed');
    checkClean(p);
  });

  test('a hash changed in the same tab is read as at load and applied as a Reset; the lab’s own writes do not reset it', async () => {
    const p = await open(isolated.url);
    const { page } = p;
    await advance(page, 5);
    await page.evaluate(() => (location.hash = '#depth=2&width=16&seed=4&bogus=1'));
    await page.waitForFunction(() => (globalThis as any).bnlabLab.snapshot().config.depth === 2);
    const snap = await snapshot(page);
    const wanted = { ...defaultState(), depth: 2, width: 16, seed: 4 };
    assert.deepEqual(snap.config, wanted);
    assert.equal(snap.step, 0, 'the twins were rebuilt');
    assert.equal(await page.evaluate(() => location.hash), serializeHash(wanted));
    assert.equal(await page.locator('#ctl-width').inputValue(), '16');
    assert.equal(await page.locator('#ctl-depth').inputValue(), '2');
    assert.match(await page.locator('#ignored-settings').innerText(), /bogus \(unknown setting\)/);
    // A control changed now writes the new state, not the one before the hash changed, and does not reset.
    await advance(page, 3);
    await setSlider(page, 'ctl-lr', String(Math.log10(0.1)));
    await page.waitForTimeout(300);
    assert.equal(parseHash(await page.evaluate(() => location.hash)).state.depth, 2);
    assert.equal((await snapshot(page)).step, 3, 'the lab’s own hash write did not reset the twins');
    // Back to the previous link: read again and applied.
    await page.evaluate(() => (location.hash = '#depth=4'));
    await page.waitForFunction(() => (globalThis as any).bnlabLab.snapshot().config.depth === 4);
    assert.equal(await page.locator('#ignored-settings').count(), 0, 'the old note went with its link');
    await page.evaluate(() => history.back());
    await page.waitForFunction(() => (globalThis as any).bnlabLab.snapshot().config.depth === 2);
    assert.equal(await page.locator('#ctl-depth').inputValue(), '2');

    // A number box emptied shows the value in use again, with a hint, and the state keeps it.
    const unit = page.locator('#ctl-insideUnit');
    await unit.fill('5');
    await unit.press('Tab');
    await page.waitForFunction(() => /insideUnit=5(&|$)/.test(location.hash));
    await unit.fill('');
    await unit.press('Tab');
    assert.equal(await unit.inputValue(), '5');
    assert.match(await page.locator('#hint-insideUnit').innerText(), /empty: a whole number from 0 to 511; still 5/);
    assert.match(await page.evaluate(() => location.hash), /insideUnit=5(&|$)/);
    await unit.fill('9');
    await unit.press('Tab');
    assert.equal(await page.locator('#hint-insideUnit').isVisible(), false, 'the hint goes with the next valid entry');
    checkClean(p);
  });

  test('play, pause and step with the buttons and the keyboard; reset returns to the same start', async () => {
    const p = await open(isolated.url);
    const { page } = p;
    const step = async () => (await snapshot(page)).step;
    await page.locator('#step').click();
    await page.waitForFunction(() => document.getElementById('step-count')!.textContent === 'step 1');
    await page.locator('body').press('s');
    await page.waitForFunction(() => document.getElementById('step-count')!.textContent === 'step 2');
    await page.locator('body').press('ArrowRight');
    await page.waitForFunction(() => document.getElementById('step-count')!.textContent === 'step 3');
    // The count is the further of the two networks; each reports from its own worker, so wait for both.
    await page.waitForFunction(() => Object.values((globalThis as any).bnlabLab.snapshot().runs).every((r: any) => r.trainLoss.length === 3));
    const first3 = (await snapshot(page)).runs;
    await page.locator('#play').click();
    await page.waitForFunction(() => (globalThis as any).bnlabLab.snapshot().step > 20);
    await page.locator('#play').click(); // pause: the chunk in flight still lands, then 'paused'
    await page.waitForFunction(() => document.getElementById('rate')!.textContent === 'paused');
    const paused = await step();
    await page.waitForTimeout(400);
    assert.equal(await step(), paused, 'no steps while paused');
    await page.locator('body').press(' ');
    await page.waitForFunction((n) => (globalThis as any).bnlabLab.snapshot().step > n + 10, paused);
    await page.locator('body').press(' ');
    await page.waitForFunction(() => document.getElementById('rate')!.textContent === 'paused');
    const stopped = await step();
    await page.waitForTimeout(300);
    assert.equal(await step(), stopped);
    await page.locator('body').press('r');
    await page.waitForFunction(() => (globalThis as any).bnlabLab.snapshot().step === 0);
    await advance(page, 3);
    assert.deepEqual((await snapshot(page)).runs, first3, 'after a reset the same losses again');
    // Controls carry labels a screen reader announces.
    for (const id of ['ctl-depth', 'ctl-lr', 'ctl-optimizer', 'ctl-seed']) assert.ok((await page.locator(`label[for=${id}]`).innerText()).length > 2, `label for ${id}`);
    checkClean(p);
  });

  test('Step and Play pressed while the lab is still loading take effect once it is up', async () => {
    // The datasets are held back until both clicks are in, so they surely come before the twins exist.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const p = await open(isolated.url, {
      waitForReady: false,
      before: (context) => context.route('**/data/**', async (route) => {
        await held;
        await route.continue();
      }),
    });
    const { page } = p;
    await page.locator('#step').click();
    await page.locator('#play').click();
    assert.equal(await page.evaluate(() => (globalThis as any).bnlabLab.ready), false, 'the clicks came before the lab was up');
    release();
    await page.waitForFunction(() => (globalThis as any).bnlabLab.ready === true);
    await page.waitForFunction(() => (globalThis as any).bnlabLab.snapshot().step > 20);
    await page.locator('#play').click();
    await page.waitForFunction(() => document.getElementById('rate')!.textContent === 'paused');
    // The step and the play ran on the twins built at start-up, as on a page already up.
    const run = await snapshot(page);
    assert.equal(run.runs.bn.trainLoss.length, run.step);
    const fresh = await open(isolated.url);
    await advance(fresh.page, run.step);
    assert.deepEqual((await snapshot(fresh.page)).runs.bn.trainLoss, run.runs.bn.trainLoss, 'the same losses as a page that waited');
    checkClean(p);
    checkClean(fresh);
  });

  test('a reset gives the dropped twins’ memory back: the wasm memory in use does not grow from reset to reset', async () => {
    const p = await open(isolated.url);
    const { page } = p;
    const inUse = async () => (JSON.parse((await page.locator('#memory').getAttribute('data-bytes')) ?? '[]') as { live: number }[]).map((m) => m.live);
    await advance(page, 150);
    const first = await inUse();
    assert.equal(first.length, 2);
    for (let i = 0; i < 3; i++) {
      await page.locator('body').press('r');
      await page.waitForFunction(() => (globalThis as any).bnlabLab.snapshot().step === 0);
      await advance(page, 150);
    }
    // Each twin holds about 6 MB of buffers: kept after a reset, three resets would add 18 MB a worker.
    const last = await inUse();
    last.forEach((bytes, i) => assert.ok(bytes <= first[i] + 2 ** 20, `worker ${i + 1}: ${(first[i] / 2 ** 20).toFixed(1)} MB in use after the first run, ${(bytes / 2 ** 20).toFixed(1)} MB after three resets`));
    checkClean(p);
  });

  test('at a high learning rate the network without batch norm is marked diverged and the run pauses; the one with BN is not', async () => {
    const p = await open(isolated.url + serializeHash({ ...defaultState(), activation: 'relu', lr: 1 }));
    await p.page.locator('#play').click();
    await p.page.waitForFunction(() => (globalThis as any).bnlabLab.snapshot().runs.nobn.diverged !== null, null, { timeout: 60_000 });
    await p.page.waitForFunction(() => document.getElementById('play')!.textContent === 'Play');
    const snap = await snapshot(p.page);
    assert.equal(snap.runs.bn.diverged, null);
    assert.equal(snap.runs.nobn.diverged!.cause, 'non-finite');
    const at = snap.runs.nobn.diverged!.step;
    assert.equal(snap.runs.nobn.trainLoss.length, at, 'no steps after the divergence');
    const node = await nodeTwins({ ...defaultState(), activation: 'relu', lr: 1 }, at);
    assert.equal(node.nobn.losses.length, at - 1, 'the Node trainer stops at the same step');
    const note = await p.page.locator('#panel-convergence .note.warning').innerText();
    assert.match(note, new RegExp(`without batch norm was stopped: the loss became NaN at step ${at}`));
    // Readings refresh a few times a second: wait for the one written after the divergence.
    await p.page.waitForFunction((n) => new RegExp(`diverged at step ${n}`).test(document.querySelector('#panel-convergence .reading')?.textContent ?? ''), at).catch(() => {});
    assert.match(await p.page.locator('#panel-convergence .reading').innerText(), new RegExp(`diverged at step ${at}, while the one with batch norm trains on \\(loss [\\d.]+; its test accuracy is first measured at step 100\\)\\. Press Play to let it go on\\.`));
    checkClean(p);
  });

  test('exported models predict in Node (bnlab predict) exactly as the same net trained in Node; metrics export; a CLI model opens', async () => {
    const p = await open(isolated.url);
    await advance(p.page, 200);
    const dir = join(tmp, 'exported-bn');
    mkdirSync(dir);
    // Two downloads: model.json and model.safetensors, saved under the names `bnlab predict --model DIR` reads.
    let saved = 0;
    const done = new Promise<void>((resolve, reject) => {
      const onDownload = (d: import('playwright-core').Download) => {
        d.saveAs(join(dir, d.suggestedFilename().endsWith('.json') ? 'model.json' : 'model.safetensors')).then(() => {
          if (++saved === 2) {
            p.page.off('download', onDownload);
            resolve();
          }
        }, reject);
      };
      p.page.on('download', onDownload);
    });
    await p.page.locator('#export-model-bn').click();
    await done;
    const node = await nodeTwins(defaultState(), 200);
    const testSet = loadDataset('mnist', 'test');
    for (const index of [0, 1, 2]) {
      const r = await bnlab(['predict', '--model', dir, '--mnist-test', String(index), '--json']);
      assert.equal(r.code, 0, r.stderr);
      const predicted = JSON.parse(r.stdout) as { probabilities: { probability: number }[] };
      const model = node.bn.model.eval();
      const x = new Tensor([1, 784], testSet.images.slice(index * 784, (index + 1) * 784));
      const expected = softmax(model.forward(x)).data;
      predicted.probabilities.forEach((q, k) => assert.ok(Math.abs(q.probability - expected[k]) < 1e-6, `image ${index} class ${k}: ${q.probability} vs ${expected[k]}`));
    }
    // Metrics: CSV with one row per step and twin (plus evaluations), JSON with the same losses.
    const csvDownload = p.page.waitForEvent('download');
    await p.page.locator('#export-csv').click();
    const csvPath = join(tmp, 'metrics.csv');
    await (await csvDownload).saveAs(csvPath);
    const rows = readFileSync(csvPath, 'utf8').trim().split('\n');
    assert.equal(rows[0], 'twin,step,train_loss,test_loss,test_accuracy');
    assert.equal(rows.length, 1 + 2 * 200);
    const snap = await snapshot(p.page);
    assert.equal(Number(rows[1].split(',')[2]), snap.runs.bn.trainLoss[0]);
    const jsonDownload = p.page.waitForEvent('download');
    await p.page.locator('#export-json').click();
    const jsonPath = join(tmp, 'metrics.json');
    await (await jsonDownload).saveAs(jsonPath);
    const metrics = JSON.parse(readFileSync(jsonPath, 'utf8'));
    assert.deepEqual(metrics.runs.nobn.trainLoss, snap.runs.nobn.trainLoss);

    // A model trained by the CLI opens in the lab (for the test-time panel).
    const runDir = join(tmp, 'cli-run');
    const trained = await bnlab(['train', '--steps', '20', '--train-limit', '600', '--test-limit', '100', '--eval-every', '0', '--out', runDir]);
    assert.equal(trained.code, 0, trained.stderr);
    await p.page.locator('#import-model').setInputFiles([join(runDir, 'model.json'), join(runDir, 'model.safetensors')]);
    await p.page.waitForFunction(() => document.getElementById('import-status')!.textContent!.startsWith('Opened'));
    assert.match(await p.page.locator('#import-status').innerText(), /with batch norm, trained on mnist/);
    // A broken file is refused with the reason, and nothing else changes.
    writeFileSync(join(tmp, 'model.safetensors'), 'not a safetensors file');
    await p.page.locator('#import-model').setInputFiles([join(runDir, 'model.json'), join(tmp, 'model.safetensors')]);
    await p.page.waitForFunction(() => document.getElementById('import-status')!.textContent!.startsWith('Could not open'));
    checkClean(p);
  });

  test('the learning-rate slider acts on the running twins at once, as the same change does in Node', async () => {
    const p = await open(isolated.url);
    await advance(p.page, 3);
    await setSlider(p.page, 'ctl-lr', String(Math.log10(0.1))); // a log-scale slider
    assert.equal(await p.page.locator('label[for=ctl-lr] output').innerText(), '0.1');
    await advance(p.page, 3);
    const snap = await snapshot(p.page);
    assert.equal(snap.config.lr, 0.1);
    assert.match(p.page.url(), /lr=0\.1(&|$)/);
    const spec = twinSpec(defaultState());
    const trainSet = loadDataset('mnist', 'train');
    const testSet = takeFirst(loadDataset('mnist', 'test'), LAB_TEST_IMAGES);
    for (const twin of ['bn', 'nobn'] as const) {
      const { model, inputShape } = buildTwin(spec, twin);
      const run = await createRun(twinRunConfig(spec), { trainSet, testSet }, { model, inputShape });
      const losses: number[] = [];
      for (let i = 0; i < 6; i++) {
        if (i === 3) run.optimizer.lr = 0.1;
        losses.push(run.trainer.trainStep());
      }
      snap.runs[twin].trainLoss.forEach((l, i) => assert.ok(Math.abs((l as number) - losses[i]) <= 1e-6, `${twin} step ${i + 1}: ${l} vs ${losses[i]}`));
    }
    assert.match(await p.page.locator('#ctl-lr ~ .applies').innerText(), /applies now/);
    assert.match(await p.page.locator('#ctl-depth ~ .applies').innerText(), /on reset/);
    checkClean(p);
  });

  test('served without the isolation headers it runs on one thread, with the same numbers', async () => {
    const p = await open(plain.url);
    assert.equal(await p.page.evaluate(() => globalThis.crossOriginIsolated), false);
    assert.equal(p.page.workers().length, 1);
    assert.match(await p.page.locator('#env').innerText(), /one thread/);
    await advance(p.page, 20);
    const snap = await snapshot(p.page);
    const node = await nodeTwins(defaultState(), 20);
    for (const twin of ['bn', 'nobn'] as const) snap.runs[twin].trainLoss.forEach((l, i) => assert.ok(Math.abs((l as number) - node[twin].losses[i]) <= 1e-5, `${twin} step ${i + 1}`));
    checkClean(p);
  });

  test('on a phone, upright and on its side, the run bar stays on screen and small; touch targets are 24 px or more; the pad draws by touch', async () => {
    for (const viewport of [{ width: 390, height: 844 }, { width: 844, height: 390 }]) {
      const p = await open(isolated.url, { viewport, touch: true });
      const { page } = p;
      await page.locator('#panel-test-time').scrollIntoViewIfNeeded();
      const bar = await page.locator('.top').evaluate((el) => {
        const r = el.getBoundingClientRect();
        const play = document.getElementById('play')!.getBoundingClientRect();
        return { top: r.top, height: r.height, playHit: document.elementFromPoint(play.x + play.width / 2, play.y + play.height / 2)?.id };
      });
      assert.equal(bar.top, 0, `${viewport.width}×${viewport.height}: the run bar stays at the top while scrolled to the last panel`);
      assert.equal(bar.playHit, 'play', 'Play can be pressed there');
      assert.ok(bar.height <= viewport.height * 0.15, `${viewport.width}×${viewport.height}: the bar takes ${bar.height} px of ${viewport.height}`);
      const small = await page.evaluate(() =>
        Array.from(document.querySelectorAll<HTMLElement>('button, select, input'))
          .map((e) => ({ e, r: e.getBoundingClientRect() }))
          .filter(({ r }) => r.width > 0 && (r.width < 24 || r.height < 24))
          .map(({ e, r }) => `${e.id || e.className} ${Math.round(r.width)}×${Math.round(r.height)}`),
      );
      assert.deepEqual(small, [], 'targets smaller than 24 px');
      checkClean(p);
      await page.context().close();
    }
    // A finger draws a 1 on the pad, and both networks classify it.
    const p = await open(isolated.url, { viewport: { width: 390, height: 844 }, touch: true });
    const { page } = p;
    await advance(page, 200);
    const pad = page.locator('#digit-pad');
    await pad.scrollIntoViewIfNeeded();
    // The readings above the pad are rewritten up to 250 ms after a step (and off-screen panels less
    // often), which moves the pad: touch where it is once it has stayed put for half a second.
    let box = (await pad.boundingBox())!;
    for (let still = 0; still < 5; ) {
      await page.waitForTimeout(100);
      const now = (await pad.boundingBox())!;
      still = now.x === box.x && now.y === box.y ? still + 1 : 0;
      box = now;
    }
    const cdp = await page.context().newCDPSession(page);
    const at = (f: number, g: number) => [{ x: box.x + box.width * f, y: box.y + box.height * g }];
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: at(0.52, 0.15) });
    for (let i = 1; i <= 20; i++) await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: at(0.52 - 0.04 * (i / 20), 0.15 + 0.7 * (i / 20)) });
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    await page.locator('#digit-results .prob-bn').waitFor();
    assert.match(await page.locator('#digit-results .prob-bn .prob-title').first().innerText(), /^eval mode \(running statistics\): \d \(/);
    assert.equal(await page.evaluate(() => scrollY > 0 && document.getElementById('digit-pad')!.getBoundingClientRect().top > 0), true, 'drawing did not scroll the page off the pad');
    checkClean(p);
  });

  test('keyboard and screen reader: space keeps its meaning on the Setup summary; log sliders speak their value; charts point to their reading; readings are not rewritten while paused and are marked busy while playing', async () => {
    const p = await open(isolated.url);
    const { page } = p;
    await advance(page, 20);
    const summary = page.locator('details.setup > summary');
    await summary.focus();
    await page.keyboard.press(' ');
    assert.equal(await page.locator('details.setup').evaluate((d) => (d as HTMLDetailsElement).open), false, 'space folded the Setup');
    assert.equal(await page.locator('#play').getAttribute('aria-pressed'), 'false', 'and did not start the run');
    await page.keyboard.press(' ');
    assert.equal(await page.locator('details.setup').evaluate((d) => (d as HTMLDetailsElement).open), true);
    // A log-scale slider's position is a logarithm: the rate itself is what a screen reader announces.
    assert.equal(await page.locator('#ctl-lr').getAttribute('aria-valuetext'), '1');
    await setSlider(page, 'ctl-lr', '-1');
    assert.equal(await page.locator('#ctl-lr').getAttribute('aria-valuetext'), '0.1');
    assert.equal(await page.locator('#ctl-bnMomentum').getAttribute('aria-valuetext'), '0.1');
    await setSlider(page, 'ctl-lr', '0');
    const charts = await page.evaluate(() =>
      Array.from(document.querySelectorAll('figure.chart canvas')).map((c) => ({ label: c.getAttribute('aria-label'), reading: document.getElementById(c.getAttribute('aria-describedby') ?? '')?.className })),
    );
    assert.ok(charts.length >= 12, `${charts.length} charts`);
    for (const c of charts) assert.equal(c.reading, 'reading', `${c.label}: described by its panel's reading`);
    // Paused: the readings stay as they are (a rewrite with the same words is announced again).
    await page.waitForTimeout(500);
    const mutations = await page.evaluate(
      () =>
        new Promise<number>((done) => {
          let n = 0;
          const seen = new MutationObserver((records) => (n += records.length));
          for (const r of Array.from(document.querySelectorAll('.reading'))) seen.observe(r, { childList: true, characterData: true, subtree: true });
          setTimeout(() => (seen.disconnect(), done(n)), 1500);
        }),
    );
    assert.equal(mutations, 0, 'readings rewritten while nothing changed');
    await page.locator('#play').click();
    await page.waitForFunction(() => document.querySelector('#panel-convergence .reading')?.getAttribute('aria-busy') === 'true');
    await page.locator('#play').click();
    await page.waitForFunction(() => Array.from(document.querySelectorAll('.reading')).every((r) => r.getAttribute('aria-busy') === 'false'));
    checkClean(p);
  });

  test('usable at 390 pixels wide: nothing wider than the screen', async () => {
    const p = await open(isolated.url, { viewport: { width: 390, height: 844 } });
    await advance(p.page, 20);
    const overflow = await p.page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(overflow <= 390, `page is ${overflow} px wide`);
    checkClean(p);
  });
});
