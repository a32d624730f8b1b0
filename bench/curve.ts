/**
 * npm run bench -- --curve [--out DIR] [--quick] [--no-pytorch]
 *
 * The cost curve: training steps per second of the paper's network with batch norm (784-W-W-W-10,
 * sigmoid, BatchNorm1d before each sigmoid, SGD) at hidden widths 100, 400, 1600 and batch sizes 16,
 * 60, 256, 1024, with bnlab (the best wasm build: one thread, data-parallel on two, and each big
 * product split across two threads, `initBackend('wasm', { threads: 2 })`) and PyTorch
 * (bench/pytorch/bench.py, one and two threads) in the same run, alternating so both see the same
 * machine. Writes curve.json and a figure of steps/s and of the ratio against batch and width
 * (curve.svg, curve.png) into DIR (default runs/bench-curve).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { CrossEntropyLoss, DataParallel, Rng, SGD, Tensor, buildSequential, createWasmKernels, initBackend, mlpLayers, registerBackend, setBackend, type Kernels, type Sequential, type WasmKernels } from '../src/index.js';
import { xyChart, CHART_CONFIG_LEGENDS_BESIDE, type Row, type VegaLiteSpec } from '../src/report/charts.js';
import { renderSvg } from '../src/report/render.js';
import { svgToPng } from '../src/report/png.js';

export const WIDTHS = [100, 400, 1600];
export const BATCHES = [16, 60, 256, 1024];

interface Point {
  width: number;
  batch: number;
  /** Matrices of one step (weights, activations, their gradients), in MB: what has to stay in cache. */
  working_set_mb: number;
  /** One thread; data-parallel on two; one model whose big products are split across two threads. */
  bnlab: { wasm: number; wasm_dp: number | null; wasm_split: number | null; best: number };
  pytorch: { one_thread: number; two_threads: number; best: number } | null;
  /** bnlab's best / PyTorch's best. */
  ratio: number | null;
}

const log = (line: string) => process.stderr.write(`${line}\n`);

/**
 * Steps/s within about `budget` seconds: a warm-up, then the best of three windows of ≥ budget/4 s and
 * at least one step (bench.py does the same). A step of the largest point (width 1600, batch 1024)
 * takes about a second on one thread, so it is measured on 4 steps rather than a budget's worth.
 */
function rateWithin(step: () => void, budget: number): number {
  const t0 = performance.now();
  step();
  while (performance.now() - t0 < (budget * 1000) / 8) step();
  let best = 0;
  for (let w = 0; w < 3; w++) {
    let n = 0;
    const w0 = performance.now();
    while (n < 1 || performance.now() - w0 < (budget * 1000) / 4) {
      step();
      n++;
    }
    best = Math.max(best, n / ((performance.now() - w0) / 1000));
  }
  return best;
}

function workingSetMb(width: number, batch: number): number {
  const weights = 784 * width + 2 * width * width + 10 * width;
  const activations = batch * (784 + 3 * width * 4 + 10 * 3); // per hidden layer: Linear y, BN y and x̂, sigmoid y (and as many gradients)
  return ((2 * weights + 2 * activations) * 4) / 2 ** 20;
}

type BnlabRates = { wasm: number; wasm_dp: number | null; wasm_split: number | null };

/**
 * bnlab's steps/s for one point: on one thread, data-parallel on two, and on `split` (a backend that
 * splits big products across two threads) when given. `kernels` is the active backend, and is again
 * on return.
 */
async function bnlabPoint(kernels: Kernels, split: Kernels | null, width: number, batch: number, budget: number, threads: number): Promise<BnlabRates> {
  const build = () => {
    const model = buildSequential(mlpLayers([784, width, width, width, 10], 'Sigmoid', true), { rng: new Rng(0) });
    model.inputGrad = false; // as PyTorch: the data does not require grad
    return model;
  };
  const count = batch < 256 ? 20 : 4;
  const batches = (k: Kernels) => {
    const rng = new Rng(1);
    const data = k.allocate(count * batch * 784); // in the backend's memory, as the DataLoader puts batches
    for (let i = 0; i < data.length; i++) data[i] = rng.uniform();
    const labels = Int32Array.from({ length: count * batch }, () => rng.int(10));
    const xs = Array.from({ length: count }, (_, b) => new Tensor([batch, 784], data.subarray(b * batch * 784, (b + 1) * batch * 784)));
    const ys = Array.from({ length: count }, (_, b) => labels.subarray(b * batch, (b + 1) * batch));
    return { data, xs, ys };
  };
  // One model on one backend, stepping as a training loop does.
  const plainRate = (k: Kernels) => {
    registerBackend(k);
    setBackend(k.name); // modules take the active backend when built
    const { data, xs, ys } = batches(k);
    const model = build();
    const loss = new CrossEntropyLoss(k);
    const optimizer = new SGD(model.parameters(), { lr: 0.5 });
    let i = 0;
    const rate = rateWithin(() => {
      const b = i++ % count;
      optimizer.zeroGrad();
      loss.forward(model.forward(xs[b]), ys[b]);
      model.backward(loss.backward());
      optimizer.step();
    }, budget);
    model.dispose();
    k.release(data);
    return rate;
  };
  const wasmSplit = split ? plainRate(split) : null;
  const wasm = plainRate(kernels);
  const { data, xs, ys } = batches(kernels);

  let wasmDp: number | null = null;
  if (threads > 1 && kernels.sharing) {
    const model = build() as Sequential;
    const opt = new SGD(model.parameters(), { lr: 0.5 });
    const params = 784 * width + 2 * width * width + 10 * width;
    const replicaMemoryMB = Math.ceil(((params * 2 + (batch / 2) * width * 3 * 10) * 4) / 2 ** 20) + 32;
    const parallel = await DataParallel.create(model, { threads, inputShape: [784], optimizer: opt, replicaMemoryMB });
    let j = 0;
    wasmDp = rateWithin(() => {
      const b = j++ % count;
      model.train();
      parallel.trainStep(xs[b], ys[b]);
    }, budget);
    parallel.close();
    model.dispose();
  }
  kernels.release(data);
  return { wasm, wasm_dp: wasmDp, wasm_split: wasmSplit };
}

function pytorchCurve(root: string, python: string, threads: number, budget: number): Array<{ width: number; batch: number; steps_per_s: number }> | null {
  const script = join(root, 'bench/pytorch/bench.py');
  const spec = `${WIDTHS.join(',')}:${BATCHES.join(',')}:${budget}`;
  const res = spawnSync(python, [script, '--threads', String(threads), '--curve', spec], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) } });
  if (res.status !== 0) {
    log(`PyTorch curve on ${threads} thread(s) failed: ${res.stderr.trim().split('\n').at(-1)}`);
    return null;
  }
  return (JSON.parse(res.stdout.trim().split('\n').at(-1)!) as { points: Array<{ width: number; batch: number; steps_per_s: number }> }).points;
}

/** The figure: steps/s against batch (one line per width and implementation), and bnlab / PyTorch. */
export function curveSpec(points: Point[]): VegaLiteSpec {
  const rows: Row[] = [];
  const ratios: Row[] = [];
  for (const p of points) {
    const width = `width ${p.width}`;
    rows.push({ batch: p.batch, width, impl: 'bnlab (solid)', steps: p.bnlab.best });
    if (p.pytorch) rows.push({ batch: p.batch, width, impl: 'PyTorch (dashed)', steps: p.pytorch.best });
    if (p.ratio !== null) ratios.push({ batch: p.batch, width, ratio: p.ratio });
  }
  const widths = WIDTHS.map((w) => `width ${w}`);
  const batchAxis = { field: 'batch', title: 'batch size', scale: 'log' as const, values: BATCHES };
  const steps = xyChart({ values: rows, x: batchAxis, y: { field: 'steps', title: 'training steps / s', scale: 'log' }, color: { field: 'width', title: 'hidden width', domain: widths }, detail: { field: 'impl', title: 'implementation', domain: ['bnlab (solid)', 'PyTorch (dashed)'] }, mark: 'line+point', width: 360, height: 260 });
  const ratio = xyChart({ values: ratios, x: batchAxis, y: { field: 'ratio', title: 'bnlab steps/s ÷ PyTorch steps/s', zero: true }, color: { field: 'width', title: 'hidden width', domain: widths }, mark: 'line+point', rules: [{ y: 1, label: 'as fast as PyTorch' }], width: 360, height: 260 });
  const strip = (s: VegaLiteSpec) => {
    const { $schema: _schema, config: _config, ...rest } = s as Record<string, unknown>;
    // The dash legend draws a stroke: give it a color (the lines take theirs from the width).
    const dash = ((rest.layer as Array<{ encoding?: Record<string, { legend?: Record<string, unknown> }> }>)[0].encoding ?? {}).strokeDash;
    if (dash?.legend) Object.assign(dash.legend, { symbolStrokeColor: '#333', symbolOpacity: 1, symbolDash: undefined });
    return rest;
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: { ...CHART_CONFIG_LEGENDS_BESIDE, legend: { ...CHART_CONFIG_LEGENDS_BESIDE.legend, symbolStrokeColor: '#333' } },
    title: { text: "Cost curve: the paper's MLP with batch norm (784-W-W-W-10, sigmoid), SGD training steps", subtitle: 'each side its best of one and two threads (bnlab: data-parallel with synchronized batch norm, or split products)', anchor: 'start' },
    hconcat: [strip(steps), strip(ratio)],
    resolve: { scale: { color: 'shared' } },
  };
}

/** `root`: the repository (bench/pytorch/bench.py is there). */
export async function runCurve(argv: string[], root: string): Promise<void> {
  const out = resolve(argv.includes('--out') ? argv[argv.indexOf('--out') + 1] : 'runs/bench-curve');
  const quick = argv.includes('--quick');
  const budget = quick ? 0.25 : 1.2;
  const threads = argv.includes('--no-threads') ? 1 : 2;
  const kernels = await initBackend('auto');
  // The split-products setting needs a backend with threads of its own: the wasm one.
  const split: WasmKernels | null = threads > 1 && kernels.name === 'wasm' ? await createWasmKernels({ threads: 2 }) : null;
  const loadStart = loadavg();
  log(`bench --curve: ${cpus()[0]?.model.trim()}, ${cpus().length} cores, load average ${loadStart.map((l) => l.toFixed(1)).join(' ')}; ${kernels.capabilities.variant}; ${budget} s per point and setting`);
  const python = argv.includes('--no-pytorch') ? undefined : ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
  if (!argv.includes('--no-pytorch') && !python) throw new Error('bench --curve: PyTorch is needed for the comparison (/usr/bin/python3 -c "import torch" fails): sudo apt-get install python3-torch libopenblas0-pthread, or pass --no-pytorch');

  // bnlab, then PyTorch on one and two threads, then bnlab again: each point keeps bnlab's better run,
  // so both sides had the machine as it was through the whole run.
  const bnlab = new Map<string, BnlabRates>();
  const better = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.max(a, b));
  const measureBnlab = async () => {
    for (const width of WIDTHS) {
      for (const batch of BATCHES) {
        const r = await bnlabPoint(kernels, split, width, batch, budget / 2, threads);
        const key = `${width}x${batch}`;
        const old = bnlab.get(key);
        bnlab.set(key, old ? { wasm: Math.max(old.wasm, r.wasm), wasm_dp: better(old.wasm_dp, r.wasm_dp), wasm_split: better(old.wasm_split, r.wasm_split) } : r);
        log(`bnlab width ${width} batch ${batch}: ${r.wasm.toFixed(1)} steps/s on one thread${r.wasm_dp === null ? '' : `, ${r.wasm_dp.toFixed(1)} data-parallel on two`}${r.wasm_split === null ? '' : `, ${r.wasm_split.toFixed(1)} with products split across two`}`);
      }
    }
  };
  await measureBnlab();
  const torch1 = python ? pytorchCurve(root, python, 1, budget) : null;
  log('PyTorch, 1 thread: done');
  const torch2 = python && threads > 1 ? pytorchCurve(root, python, 2, budget) : null;
  log('PyTorch, 2 threads: done');
  await measureBnlab();
  split?.close();

  const points: Point[] = [];
  for (const width of WIDTHS) {
    for (const batch of BATCHES) {
      const b = bnlab.get(`${width}x${batch}`)!;
      const best = Math.max(b.wasm, b.wasm_dp ?? 0, b.wasm_split ?? 0);
      const t1 = torch1?.find((p) => p.width === width && p.batch === batch)?.steps_per_s;
      const t2 = torch2?.find((p) => p.width === width && p.batch === batch)?.steps_per_s;
      const pytorch = t1 !== undefined ? { one_thread: t1, two_threads: t2 ?? 0, best: Math.max(t1, t2 ?? 0) } : null;
      points.push({ width, batch, working_set_mb: workingSetMb(width, batch), bnlab: { ...b, best }, pytorch, ratio: pytorch ? best / pytorch.best : null });
    }
  }
  const result = {
    format: 'bnlab-cost-curve/1',
    createdAt: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model.trim() ?? 'unknown', cores: cpus().length, node: process.versions.node, load_average_start: loadStart, load_average_end: loadavg() },
    backend: kernels.capabilities.variant,
    pytorch: python ? { python, threads_tried: threads > 1 ? [1, 2] : [1] } : null,
    model: '784-W-W-W-10, sigmoid, BatchNorm1d before each sigmoid, SGD lr 0.5, cross-entropy; data in memory',
    seconds_per_point: budget,
    points,
  };
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'curve.json'), JSON.stringify(result, null, 2) + '\n');
  const svg = await renderSvg(curveSpec(points));
  writeFileSync(join(out, 'curve.svg'), svg);
  writeFileSync(join(out, 'curve.png'), svgToPng(svg));
  console.log(`width  batch  working set MB  bnlab 1 thr  bnlab DP×2  bnlab split×2  PyTorch 1 thr  PyTorch 2 thr  ratio`);
  for (const p of points) {
    const f = (x: number | null | undefined, d = 1) => (typeof x === 'number' ? x.toFixed(d) : '-');
    console.log(`${String(p.width).padStart(5)}  ${String(p.batch).padStart(5)}  ${f(p.working_set_mb).padStart(14)}  ${f(p.bnlab.wasm).padStart(11)}  ${f(p.bnlab.wasm_dp).padStart(10)}  ${f(p.bnlab.wasm_split).padStart(13)}  ${f(p.pytorch?.one_thread).padStart(13)}  ${f(p.pytorch?.two_threads).padStart(13)}  ${(p.ratio === null ? '-' : `${p.ratio.toFixed(2)}x`).padStart(5)}`);
  }
  console.log(`Wrote ${join(out, 'curve.json')}, curve.svg and curve.png (load average at start ${loadStart.map((l) => l.toFixed(1)).join(' ')}, at end ${loadavg().map((l) => l.toFixed(1)).join(' ')})`);
}
