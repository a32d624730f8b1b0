#!/usr/bin/env node
/**
 * npm run bench:lab [-- --json] [-- --quick]
 *
 * The lab in headless Chromium against the same WebAssembly backend in Node, measured in one run so the
 * ratios compare like with like on a shared machine. All on the paper's network (784-100-100-100-10,
 * sigmoid, batch 60, SGD lr 1):
 *   node_bn_1t       one network with BN, one thread (steps/s)
 *   node_bn_2t       the same, data-parallel on two threads (synchronized BN)
 *   node_twins_1t    the twins (with and without BN) in lockstep on one thread (twin steps/s)
 *   node_twins_2t    the twins on two worker threads, one each
 *   lab_twins_1t     the lab without isolation headers: one worker, both twins (training alone,
 *                    the panels' measurements off as in Node; *_with_panels: with them, as a learner sees it)
 *   lab_twins_2t     the lab cross-origin isolated: two workers, one twin each
 *   fps              requestAnimationFrame rate of the isolated page while both twins train at full speed
 *   first_step_s     page open (data in the HTTP cache) to the first step done
 *   memory           each worker's wasm memory (size and bytes in use) and JS heap after a GC (DevTools
 *                    protocol), the page's heap, and the tab's resident memory (its renderer process,
 *                    shared buffers counted once), at step 100 and at step 10,000
 * A benchmark, not a test: nothing here fails. Needs the built lab (npm run lab:build) and Chromium.
 */
import { Worker } from 'node:worker_threads';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Page } from 'playwright-core';
import { initBackend } from '../src/kernels/index.js';
import { serveLab } from '../src/lab-server/index.js';
import { loadDataset } from '../src/data/node.js';
import { takeFirst } from '../src/data/dataset.js';
import { buildTwin, createRun, twinRunConfig, type Run, type TwinId, type TwinSpec } from '../src/runs/index.js';

const args = new Set(process.argv.slice(2));
const json = args.has('--json');
const quick = args.has('--quick');
const log = (line: string) => process.stderr.write(`${line}\n`);

// dist/bench/lab.js when built, bench/lab.ts under tsx: the repository root either way.
const here = dirname(fileURLToPath(import.meta.url));
const root = existsSync(join(here, '../package.json')) ? resolve(here, '..') : resolve(here, '../..');
const labDir = join(root, 'dist-lab');
const CHROMIUM = '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) throw new Error(`bench:lab needs Chromium at ${CHROMIUM}: apt-get install chromium`);
if (!existsSync(join(labDir, 'index.html'))) throw new Error(`bench:lab needs the built lab in ${labDir}: npm run lab:build`);

const SPEC: TwinSpec = { depth: 3, width: 100, activation: 'sigmoid', bnPlacement: 'before', inputBn: false, optimizer: 'sgd', lr: 1, batchSize: 60, seed: 1, bnMomentum: 0.1, biasCorrection: true, inputSize: 784, classes: 10, evalEvery: 100 };
const STEPS = quick ? 300 : 1000;
const WARMUP = 50;

/** Steps/s of `twins` trained in lockstep in this thread, evaluations included as in the lab. */
async function nodeRate(twins: TwinId[], threads: number): Promise<number> {
  const trainSet = loadDataset('mnist', 'train');
  const testSet = takeFirst(loadDataset('mnist', 'test'), 2000);
  const runs: Run[] = [];
  for (const t of twins) {
    const { model, inputShape } = buildTwin(SPEC, t);
    runs.push(await createRun({ ...twinRunConfig(SPEC), threads }, { trainSet, testSet }, { model, inputShape }));
  }
  const go = (n: number) => {
    for (let i = 0; i < n; i++)
      for (const r of runs) {
        r.trainer.trainStep();
        if (r.trainer.step % SPEC.evalEvery === 0) r.trainer.evaluateTest();
      }
  };
  go(WARMUP);
  const start = performance.now();
  go(STEPS);
  const seconds = (performance.now() - start) / 1000;
  for (const r of runs) r.close();
  return STEPS / seconds;
}

/** The twins on two worker threads, one each, started together: steps/s of the slower. */
async function nodeTwinsTwoThreads(): Promise<number> {
  const self = pathToFileURL(fileURLToPath(import.meta.url)).href;
  const tsx = import.meta.url.endsWith('.ts');
  const code = `
    ${tsx ? `await import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => m.register());` : ''}
    const { workerData, parentPort } = await import('node:worker_threads');
    const bench = await import(${JSON.stringify(self)});
    parentPort.postMessage(await bench.workerRate(workerData));`;
  const rates = await Promise.all(
    (['bn', 'nobn'] as const).map(
      (twin) =>
        new Promise<number>((done, fail) => {
          const w = new Worker(code, { eval: true, workerData: twin, env: { ...process.env, BNLAB_BENCH_LAB_WORKER: '1' } });
          w.once('message', (m: number) => {
            done(m);
            void w.terminate();
          });
          w.once('error', fail);
        }),
    ),
  );
  return Math.min(...rates);
}

/** In a worker thread: one twin on its own thread. */
export async function workerRate(twin: TwinId): Promise<number> {
  await initBackend('wasm', { threads: 1 });
  return nodeRate([twin], 1);
}

interface LabFigures {
  /** Training alone (the panels' measurements off, as the Node reference trains). */
  twinsRate: number;
  /** As a learner sees it: every panel's measurements between the steps. */
  twinsRateWithPanels: number;
  fps?: number;
  firstStepSeconds?: number;
  memory?: { start: unknown; end: unknown; steps: number };
}

/**
 * The JS heap of each engine worker, by name, after a full garbage collection: V8's used heap plus the
 * ArrayBuffers it holds (`Runtime.getHeapUsage` over the DevTools protocol, which reaches workers, as
 * `performance.measureUserAgentSpecificMemory` cannot tell two workers of one script apart).
 */
async function workerHeaps(page: Page): Promise<Record<string, { heap: number; arrayBuffers: number }>> {
  const cdp = await page.context().newCDPSession(page);
  const { targetInfos } = (await cdp.send('Target.getTargets')) as { targetInfos: { targetId: string; type: string; title: string }[] };
  const replies = new Map<number, (result: Record<string, number>) => void>();
  cdp.on('Target.receivedMessageFromTarget', ({ message }: { message: string }) => {
    const m = JSON.parse(message) as { id?: number; result?: Record<string, number> };
    if (m.id !== undefined) replies.get(m.id)?.(m.result ?? {});
  });
  let nextId = 1;
  const out: Record<string, { heap: number; arrayBuffers: number }> = {};
  for (const t of targetInfos.filter((t) => t.type === 'worker' && t.title.startsWith('bnlab engine'))) {
    const { sessionId } = (await cdp.send('Target.attachToTarget', { targetId: t.targetId, flatten: false })) as { sessionId: string };
    const send = (method: string) =>
      new Promise<Record<string, number>>((done) => {
        const id = nextId++;
        replies.set(id, done);
        void cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method }) });
      });
    await send('HeapProfiler.enable');
    await send('HeapProfiler.collectGarbage');
    const usage = await send('Runtime.getHeapUsage');
    out[t.title.replace(/^bnlab engine /, '')] = { heap: usage.usedSize, arrayBuffers: usage.backingStorageSize };
    await cdp.send('Target.detachFromTarget', { sessionId });
  }
  await cdp.detach();
  return out;
}

/**
 * Resident memory of the largest Chromium renderer process: the lab's tab, with its workers and the
 * buffers they share (which no worker's heap figure counts). Linux only (/proc); null elsewhere.
 */
function tabResidentBytes(): number | null {
  if (process.platform !== 'linux') return null;
  let largest = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--type=renderer')) continue;
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (rss) largest = Math.max(largest, Number(rss[1]) * 1024);
    } catch {
      // the process ended while being read
    }
  }
  return largest || null;
}

async function measureLab(isolated: boolean): Promise<LabFigures> {
  const { chromium } = await import('playwright-core');
  const { url, close } = await serveLab({ dir: labDir, isolated });
  // A profile on disk, as a learner's browser has: its HTTP cache keeps the 47 MB training images
  // (a fresh in-memory profile's cache does not take files that big).
  const profile = mkdtempSync(join(tmpdir(), 'bnlab-bench-lab-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, viewport: { width: 1280, height: 800 }, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--enable-precise-memory-info'] });
  try {
    const ready = (page: Page) => page.waitForFunction(() => (globalThis as { bnlabLab?: { ready: boolean } }).bnlabLab?.ready === true, null, { timeout: 120_000 });
    const advance = (page: Page, n: number) => page.evaluate((k) => (globalThis as unknown as { bnlabLab: { advance(k: number): Promise<void> } }).bnlabLab.advance(k), n);
    // A first visit puts the data in the HTTP cache; the second is the one timed.
    const warm = await context.newPage();
    await warm.goto(url);
    await ready(warm);
    await warm.close();
    const page = await context.newPage();
    await page.goto(url);
    await ready(page);
    await advance(page, 1);
    const firstStepSeconds = (await page.evaluate(() => performance.now())) / 1000;
    const cached = await page.evaluate(() => performance.getEntriesByType('resource').filter((e) => e.name.endsWith('.idx')).every((e) => (e as PerformanceResourceTiming).transferSize === 0));
    if (!cached) log('  (the data came over the network again: the first step includes its download)');
    const startup = JSON.parse((await page.locator('#env').getAttribute('data-timings')) ?? '{}') as Record<string, number>;
    log(`  start-up (ms since opening): ${Object.entries(startup).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}, first step done ${(firstStepSeconds * 1000).toFixed(0)}`);

    await advance(page, WARMUP);
    const rate = async () => {
      const start = Date.now();
      for (let done = 0; done < STEPS; done += 100) await advance(page, 100);
      return STEPS / ((Date.now() - start) / 1000);
    };
    const twinsRateWithPanels = await rate();
    await page.evaluate(() => (globalThis as unknown as { bnlabLab: { measure(on: boolean): void } }).bnlabLab.measure(false));
    const twinsRate = await rate();
    await page.evaluate(() => (globalThis as unknown as { bnlabLab: { measure(on: boolean): void } }).bnlabLab.measure(true));
    if (!isolated) return { twinsRate, twinsRateWithPanels, firstStepSeconds };

    // Frames per second while playing at full speed (speed 5).
    await page.evaluate(() => {
      const el = document.getElementById('ctl-speed') as HTMLInputElement;
      el.value = '5';
      el.dispatchEvent(new Event('input'));
    });
    await page.locator('#play').click();
    const fps = await page.evaluate(
      () =>
        new Promise<number>((done) => {
          let frames = 0;
          const t0 = performance.now();
          const tick = (t: number) => {
            frames++;
            if (t - t0 < 5000) requestAnimationFrame(tick);
            else done((frames * 1000) / (t - t0));
          };
          requestAnimationFrame(tick);
        }),
    );
    await page.locator('#play').click();
    await page.waitForFunction(() => document.getElementById('rate')!.textContent === 'paused');

    // Memory over 10,000 steps from a reset.
    const memory = async () => ({
      // Each worker's wasm memory: its size (a high-water mark, it never shrinks) and the bytes in use.
      workers: JSON.parse((await page.locator('#memory').getAttribute('data-bytes')) ?? '[]'),
      pageHeap: await page.evaluate(() => (performance as { memory?: { usedJSHeapSize: number } }).memory?.usedJSHeapSize ?? null),
      workerJs: await workerHeaps(page),
      tab: tabResidentBytes(),
    });
    await page.locator('body').press('r');
    await page.waitForFunction(() => (globalThis as unknown as { bnlabLab: { snapshot(): { step: number } } }).bnlabLab.snapshot().step === 0);
    await advance(page, 100);
    const memStart = await memory();
    const memSteps = quick ? 2000 : 10_000;
    for (let done = 100; done < memSteps; done += 500) await advance(page, 500);
    const memEnd = await memory();
    return { twinsRate, twinsRateWithPanels, fps, firstStepSeconds, memory: { start: memStart, end: memEnd, steps: memSteps } };
  } finally {
    await context.close();
    await close();
    rmSync(profile, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  await initBackend('wasm', { threads: 1 });
  log('node: one network with BN, one thread');
  const nodeBn1 = await nodeRate(['bn'], 1);
  log('node: one network with BN, two threads (data-parallel)');
  await initBackend('wasm', { threads: 2 });
  const nodeBn2 = await nodeRate(['bn'], 2);
  await initBackend('wasm', { threads: 1 });
  log('node: twins on one thread');
  const nodeTwins1 = await nodeRate(['bn', 'nobn'], 1);
  log('node: twins on two threads');
  const nodeTwins2 = await nodeTwinsTwoThreads();
  log('lab: not isolated (one worker)');
  const lab1 = await measureLab(false);
  log('lab: cross-origin isolated (two workers)');
  const lab2 = await measureLab(true);
  const result = {
    steps: STEPS,
    node_bn_1t: nodeBn1,
    node_bn_2t: nodeBn2,
    node_twins_1t: nodeTwins1,
    node_twins_2t: nodeTwins2,
    lab_twins_1t: lab1.twinsRate,
    lab_twins_2t: lab2.twinsRate,
    lab_twins_1t_with_panels: lab1.twinsRateWithPanels,
    lab_twins_2t_with_panels: lab2.twinsRateWithPanels,
    ratio_lab_vs_node_1t: lab1.twinsRate / nodeTwins1,
    ratio_lab_vs_node_2t: lab2.twinsRate / nodeTwins2,
    /** With every panel's measurements, work the Node reference does not do. */
    ratio_lab_with_panels_vs_node_1t: lab1.twinsRateWithPanels / nodeTwins1,
    ratio_lab_with_panels_vs_node_2t: lab2.twinsRateWithPanels / nodeTwins2,
    /** The lab's BN twin on its own thread (isolated) against one BN network on one thread in Node. */
    ratio_lab_2t_vs_node_bn_1t: lab2.twinsRate / nodeBn1,
    fps: lab2.fps,
    first_step_s: lab2.firstStepSeconds,
    first_step_s_one_thread: lab1.firstStepSeconds,
    memory: lab2.memory,
  };
  if (json) {
    console.log(JSON.stringify(result));
    return;
  }
  const f = (v: number) => v.toFixed(1);
  const mb = (b: number | null | undefined) => (b === null || b === undefined ? 'n/a' : `${(b / 2 ** 20).toFixed(1)} MB`);
  console.log(`bnlab lab benchmark (${STEPS} steps after ${WARMUP} warm-up, paper's network, batch 60, evaluations every 100 steps on 2,000 test images)`);
  console.log(`  Node, one network with BN:        1 thread ${f(nodeBn1)} steps/s, 2 threads ${f(nodeBn2)} steps/s`);
  console.log(`  Node, twins in lockstep:          1 thread ${f(nodeTwins1)} steps/s, 2 threads (one each) ${f(nodeTwins2)} steps/s`);
  console.log(`  Lab, twins in lockstep, training: 1 thread ${f(lab1.twinsRate)} steps/s (${(100 * result.ratio_lab_vs_node_1t).toFixed(0)}% of Node), 2 workers ${f(lab2.twinsRate)} steps/s (${(100 * result.ratio_lab_vs_node_2t).toFixed(0)}% of Node)`);
  console.log(`  ...with every panel measuring:    1 thread ${f(lab1.twinsRateWithPanels)} steps/s (${(100 * result.ratio_lab_with_panels_vs_node_1t).toFixed(0)}% of Node), 2 workers ${f(lab2.twinsRateWithPanels)} steps/s (${(100 * result.ratio_lab_with_panels_vs_node_2t).toFixed(0)}% of Node)`);
  console.log(`  Lab BN twin on its own thread vs one BN network in Node on one thread: ${(100 * result.ratio_lab_2t_vs_node_bn_1t).toFixed(0)}%`);
  console.log(`  Frames per second while training at full speed: ${f(lab2.fps ?? NaN)}`);
  console.log(`  First step after opening the page (data cached): ${lab2.firstStepSeconds?.toFixed(2)} s isolated, ${lab1.firstStepSeconds?.toFixed(2)} s one thread`);
  if (lab2.memory) {
    const { start, end, steps } = lab2.memory as { start: { workers: { wasm: number; live: number | null }[]; workerJs: Record<string, { heap: number; arrayBuffers: number }>; pageHeap: number | null; tab: number | null }; end: typeof start; steps: number };
    start.workers.forEach((w, i) => console.log(`  Worker ${i + 1} wasm memory, step 100 → ${steps}: size ${mb(w.wasm)} → ${mb(end.workers[i]?.wasm)}, in use ${mb(w.live)} → ${mb(end.workers[i]?.live)}`));
    for (const [name, w] of Object.entries(start.workerJs)) {
      const e = end.workerJs[name];
      console.log(`  Worker ${name} JS heap after a GC, step 100 → ${steps}: ${mb(w.heap)} → ${mb(e?.heap)}, ArrayBuffers of its own ${mb(w.arrayBuffers)} → ${mb(e?.arrayBuffers)}`);
    }
    console.log(`  Page JS heap, step 100 → ${steps}: ${mb(start.pageHeap)} → ${mb(end.pageHeap)}`);
    // The workers share the data's bytes and one float32 copy of the images (188 + 31 MB for MNIST), counted here once.
    console.log(`  The tab's renderer process (page, workers, shared buffers), resident, step 100 → ${steps}: ${mb(start.tab)} → ${mb(end.tab)}`);
  }
}

if (!process.env.BNLAB_BENCH_LAB_WORKER) await main();
