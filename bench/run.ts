#!/usr/bin/env node
/**
 * npm run bench [-- --curve (bench/curve.ts)] [-- --json] [-- --quick] [-- --no-pytorch] [-- --no-tfjs] [-- --no-threads] [-- --no-accuracy] [-- --no-start] [-- --only bn|matmul|training]
 *
 * The performance figures of issue "Fast", measured in one process so that ratios compare like with
 * like on a shared machine: the reference TypeScript backend ('ts'), the WebAssembly SIMD backend on
 * one thread ('wasm') and on two ('wasm×2', big matmuls and batch norm shared with a worker; 'wasm_dp', each batch split
 * across two threads with synchronized batch norm), @tensorflow/tfjs with its
 * wasm backend, and PyTorch (bench/pytorch/bench.py, best of 1 and 2 threads and of two passes, at the start and the end of the run) when `import torch`
 * works; bnlab's training rates are likewise the better of two passes (the middle and the end of the run). Prints a table, or with --json one JSON object. A benchmark, not a test: nothing here fails.
 * `--only` measures one part (and PyTorch's figures for it; tfjs only runs in the full bench).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, totalmem, platform, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createWasmKernels, detectSimd, referenceKernels, buildPreset, CrossEntropyLoss, DataParallel, SGD, setBackend, type WasmKernels } from '../src/index.js';
import { DataLoader } from '../src/data/loader.js';
import { loadDataset } from '../src/data/node.js';
import { evaluate } from '../src/train/evaluate.js';
import { CONV_FLOPS, batchNormMs, convMs, heapGrowthMb, matmulAgainstPeak, matmulGflops, parallelTrainer, trainer, trainingRate, withKernels } from './workloads.js';
import { runTfjs, type TfjsResults } from './tfjs.js';
import { runCurve } from './curve.js';

const argv = process.argv.slice(2);
const args = new Set(argv);
const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : null;
if (only !== null && !['bn', 'matmul', 'training'].includes(only)) throw new Error(`bench: --only takes bn, matmul or training, got ${only}`);
/** Whether this run measures that part of the bench. */
const section = (name: 'bn' | 'matmul' | 'training') => only === null || only === name;
const json = args.has('--json');
const quick = args.has('--quick');
const q = quick ? 0.2 : 1;
const r = (n: number) => Math.max(1, Math.round(n * q));
const log = (line: string) => process.stderr.write(`${line}\n`);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

type Impl = 'ts' | 'wasm' | 'wasm2' | 'wasm_dp' | 'tfjs' | 'pytorch';
type Values = Partial<Record<Impl, number | null>>;

const root = findRoot(dirname(fileURLToPath(import.meta.url)));

async function main(): Promise<void> {
  if (args.has('--curve')) return runCurve(argv, root);
  const machine = describeMachine();
  const loadStart = loadavg();
  log(`bench: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}${quick ? ' (quick)' : ''}`);
  const wasm = await createWasmKernels();
  const wasm2 = args.has('--no-threads') ? null : await createWasmKernels({ threads: 2 });
  const fast: Array<['wasm' | 'wasm2', WasmKernels]> = [['wasm', wasm], ...(wasm2 ? [['wasm2', wasm2] as ['wasm2', WasmKernels]] : [])];

  log('limits: triad bandwidth, micro-kernel peak');
  const triad = {
    dram: wasm.measureTriad(8 << 20, r(10)), // 3 × 32 MB: past every cache
    bn1d: wasm.measureTriad(256 * 1024, r(40)), // the BN1d tensor's size
    bn2d: wasm.measureTriad(32 * 64 * 32 * 32, r(20)), // the BN2d tensor's size
  };
  const simdPeak = wasm.measureMicroKernelPeak(r(20));
  log('limits: mul+add and FMA peaks, one and two threads');
  // Measured at the start and again at the end, and in turns with the matrix products (the best of all):
  // the machine may be busy at any one of them.
  const peaks = await measurePeaks(!args.has('--no-threads'));
  // PyTorch is measured at the start and again at the end of the run, each figure the better of the two
  // passes (as the peaks are): its rates moved by up to 45% between runs on a shared two-core machine.
  const torchStart = args.has('--no-pytorch') ? null : runPytorchPass('start');
  /** The peaks of a wasm setting's build: FMA for the relaxed-SIMD build, mul+add for the plain one. */
  const buildPeaks = (k: WasmKernels) => (k.simd === 'relaxed-simd' ? peaks.fma_gflops : peaks.mul_add_gflops);
  /** The ceiling a wasm setting runs against: its build's peak on its number of threads. */
  const ceiling = (k: WasmKernels, threads: number) => buildPeaks(k)?.[threads === 2 ? 'two_threads' : 'one_thread'] ?? null;

  const matmul: Record<string, Values> = { '60x784x100': {}, '1024x1024x1024': {} };
  /** The peak of each setting's build and threads, measured in turns with its product (matmulAgainstPeak): the ceiling of the products' fractions. */
  const matmulPeak: Record<string, Partial<Record<'wasm' | 'wasm2', number>>> = {};
  /** A peak reading taken elsewhere in the run also counts for `peaks` (each figure there is the best reading). */
  const foldPeak = (k: WasmKernels, threads: number, gflops: number) => {
    const p = buildPeaks(k);
    if (!p) return;
    if (threads === 1) p.one_thread = Math.max(p.one_thread, gflops);
    else if (p.two_threads !== null) p.two_threads = Math.max(p.two_threads, gflops);
  };
  if (section('matmul')) {
    log('matmul');
    matmul['60x784x100'].ts = matmulGflops(referenceKernels, 60, 784, 100, true, r(10), 5);
    matmul['1024x1024x1024'].ts = matmulGflops(referenceKernels, 1024, 1024, 1024, false, 1, 1);
    for (const [impl, k] of fast) {
      const threads = impl === 'wasm2' ? 2 : 1;
      for (const [size, m, kk, n, transB, repeats, inner] of [['60x784x100', 60, 784, 100, true, 6, 10], ['1024x1024x1024', 1024, 1024, 1024, false, 2, 1]] as const) {
        // Five rounds even with --quick: with two, a product read 111% of a peak whose samples were interrupted.
        const { gflops, peak } = matmulAgainstPeak(k, threads, m, kk, n, transB, Math.max(5, r(10)), repeats, inner);
        matmul[size][impl] = gflops;
        (matmulPeak[size] ??= {})[impl] = peak;
        foldPeak(k, threads, peak);
      }
    }
  }

  // mnist-cnn's second convolution, forward + backward, both ways on one thread.
  const conv: Record<'im2col' | 'winograd', number | null> = { im2col: null, winograd: null };
  if (section('matmul')) {
    log('convolution 16 → 32 on 14×14: im2col and Winograd');
    for (let pass = 0; pass < 2; pass++) {
      for (const algorithm of ['im2col', 'winograd'] as const) {
        const ms = convMs(wasm, algorithm, r(10), 2);
        conv[algorithm] = Math.min(conv[algorithm] ?? Infinity, ms);
      }
    }
  }

  const bn1d: Values = {}, bn2d: Values = {};
  const bnShare: Record<string, number> = {};
  if (section('bn')) {
    log('batch norm');
    bn1d.ts = batchNormMs(referenceKernels, [256, 1024], r(10), 2);
    bn2d.ts = batchNormMs(referenceKernels, [32, 64, 32, 32], r(3), 1);
    for (const [impl, k] of fast) {
      const policies = Object.values(k.batchNormPolicies);
      const before = policies.map((p) => [p.splitCalls, p.serialCalls]);
      bn1d[impl] = batchNormMs(k, [256, 1024], r(100), 5);
      bn2d[impl] = batchNormMs(k, [32, 64, 32, 32], r(40), 2);
      if (k.threads > 1) {
        for (const [op, p] of Object.entries(k.batchNormPolicies)) {
          const i = policies.indexOf(p);
          const split = p.splitCalls - before[i][0], serial = p.serialCalls - before[i][1];
          if (split + serial > 0) bnShare[op] = split / (split + serial);
        }
      }
    }
  }

  const mlpBn: Values = {}, mlpNoBn: Values = {}, cnn: Values = {};
  const splitShare: Record<string, number> = {};
  const heapSteps = quick ? 1000 : 10000;
  const heap: Values = {};
  let accuracy: Awaited<ReturnType<typeof mnistAccuracy>> = null;
  let startSeconds: ReturnType<typeof measureStart> = null;
  let measureTraining: ((pass: string) => Promise<void>) | null = null;
  if (section('training')) {
    log('training: ioffe-mlp (batch 60, SGD) and mnist-cnn (batch 64, SGD + momentum)');
    mlpBn.ts = trainingRate(trainer(referenceKernels, 'ioffe-mlp', true, 60, 0.5, 0), 10, r(10), 5);
    mlpNoBn.ts = trainingRate(trainer(referenceKernels, 'ioffe-mlp', false, 60, 0.5, 0), 10, r(10), 5);
    cnn.ts = 64 * trainingRate(trainer(referenceKernels, 'mnist-cnn', true, 64, 0.05, 0.9), 1, r(3), 1);
    const share = (name: string, k: WasmKernels, measure: () => number) => {
      const before = [k.policy.splitCalls, k.policy.serialCalls];
      const value = measure();
      const split = k.policy.splitCalls - before[0], serial = k.policy.serialCalls - before[1];
      if (k.threads > 1 && !(name in splitShare)) splitShare[name] = split + serial > 0 ? split / (split + serial) : 0;
      return value;
    };
    // bnlab's training rates, in every setting: measured here and again at the end of the run, after
    // PyTorch's second pass, keeping the better of the two, as for PyTorch (this host's speed moves by
    // tens of percent from one minute to the next, and each side gets its faster minute).
    measureTraining = async (pass: string) => {
      log(`bnlab training rates (${pass} of the run)`);
      for (const [impl, k] of fast) {
        keepBetter(mlpBn, impl, share('ioffe_mlp_bn', k, () => trainingRate(trainer(k, 'ioffe-mlp', true, 60, 0.5, 0), 200, r(60), 10)));
        keepBetter(mlpNoBn, impl, share('ioffe_mlp_nobn', k, () => trainingRate(trainer(k, 'ioffe-mlp', false, 60, 0.5, 0), 200, r(60), 10)));
        keepBetter(cnn, impl, share('mnist_cnn_bn', k, () => 64 * trainingRate(trainer(k, 'mnist-cnn', true, 64, 0.05, 0.9), 5, r(20), 1)));
      }
      if (!args.has('--no-threads')) {
        // Data-parallel: each batch split across two threads, synchronized batch norm (src/parallel).
        const rate = async (preset: string, bn: boolean, batch: number, lr: number, momentum: number, warmup: number, repeats: number, inner: number) => {
          const t = await parallelTrainer(wasm, preset, bn, batch, lr, momentum, 2);
          try {
            return trainingRate(t, warmup, repeats, inner);
          } finally {
            t.close();
          }
        };
        keepBetter(mlpBn, 'wasm_dp', await rate('ioffe-mlp', true, 60, 0.5, 0, 200, r(60), 10));
        keepBetter(mlpNoBn, 'wasm_dp', await rate('ioffe-mlp', false, 60, 0.5, 0, 200, r(60), 10));
        keepBetter(cnn, 'wasm_dp', 64 * (await rate('mnist-cnn', true, 64, 0.05, 0.9, 5, r(20), 1)));
      }
    };
    await measureTraining('middle');

    log(`heap and wasm memory growth over ${heapSteps} training steps`);
    heap.ts = heapGrowthMb(trainer(referenceKernels, 'ioffe-mlp', true, 60, 0.5, 0), heapSteps, () => 0, gc);
    heap.wasm = heapGrowthMb(trainer(wasm, 'ioffe-mlp', true, 60, 0.5, 0), heapSteps, () => wasm.heap.memoryBytes, gc);
    if (!args.has('--no-threads')) {
      const t = await parallelTrainer(wasm, 'ioffe-mlp', true, 60, 0.5, 0, 2);
      heap.wasm_dp = heapGrowthMb(t, heapSteps, () => wasm.heap.memoryBytes, gc);
      t.close();
    }

    accuracy = args.has('--no-accuracy') || quick ? null : await mnistAccuracy(wasm, args.has('--no-threads') ? 1 : 2);
    if (!quick && !args.has('--no-start')) startSeconds = measureStart();
  }

  let tfjs: TfjsResults | null = null;
  if (!args.has('--no-tfjs') && only === null) {
    log('@tensorflow/tfjs, wasm backend');
    try {
      tfjs = await runTfjs(q);
    } catch (e) {
      log(`tfjs: skipped (${(e as Error).message})`);
    }
  }
  const torch = args.has('--no-pytorch') ? null : combinePytorch([...(torchStart ?? []), ...(runPytorchPass('end') ?? [])]);
  if (measureTraining && !quick) await measureTraining('end');
  wasm2?.close();
  mergePeaks(peaks, await measurePeaks(!args.has('--no-threads')));

  const fromTfjs = (v: number | null | undefined) => (tfjs ? v ?? null : undefined);
  mlpBn.tfjs = fromTfjs(tfjs?.ioffe_mlp_bn_steps_per_s);
  mlpNoBn.tfjs = fromTfjs(tfjs?.ioffe_mlp_nobn_steps_per_s);
  cnn.tfjs = fromTfjs(tfjs?.mnist_cnn_bn_images_per_s);
  bn1d.tfjs = fromTfjs(tfjs?.bn1d_fwd_bwd_ms);
  bn2d.tfjs = fromTfjs(tfjs?.bn2d_fwd_bwd_ms);
  for (const s of Object.keys(matmul)) matmul[s].tfjs = fromTfjs(tfjs?.matmul_gflops[s]);
  if (torch) {
    mlpBn.pytorch = torch.best.ioffe_mlp_bn_steps_per_s;
    mlpNoBn.pytorch = torch.best.ioffe_mlp_nobn_steps_per_s;
    cnn.pytorch = torch.best.mnist_cnn_bn_images_per_s;
    bn1d.pytorch = torch.best.bn1d_fwd_bwd_ms;
    bn2d.pytorch = torch.best.bn2d_fwd_bwd_ms;
    for (const s of Object.keys(matmul)) matmul[s].pytorch = torch.best.matmul_gflops[s];
  }

  // Batch norm against memory: our kernels move 9 floats per element (forward: read x for the
  // statistics, read x and write y and xhat; backward: read dy and xhat for the sums, read both again
  // and write dx); a pass that only touched each tensor once would move 5 (x, y, dy, xhat, dx). For the
  // fastest setting (two threads where they paid), against the one-thread triad.
  const bnBandwidth = (v: Values, elements: number, triadGbs: number) => {
    const ms = section('bn') ? best(v, 'time') : null;
    return ms ? { effective_gb_per_s: (36 * elements) / (ms * 1e6), triad_gb_per_s: triadGbs, time_vs_5_float_pass: ms / ((20 * elements) / (triadGbs * 1e6)) } : null;
  };

  const report0 = {
    bn1d_fwd_bwd_ms: section('bn') ? { bandwidth: bnBandwidth(bn1d, 256 * 1024, triad.bn1d) } : undefined,
    bn2d_fwd_bwd_ms: section('bn') ? { bandwidth: bnBandwidth(bn2d, 32 * 64 * 32 * 32, triad.bn2d) } : undefined,
  };
  const report = {
    machine: { ...machine, triad_gb_per_s: triad, simd_peak_gflops_1_thread: simdPeak, wasm_threads: wasm2 ? 2 : 1, peaks, wasm_variant: wasm.capabilities.variant },
    // Each kernel against the ceiling it runs into: matmul and training (matmul flops) against the
    // arithmetic peak of the build and thread count that ran it, batch norm against memory bandwidth.
    fraction_of_peak: fractions(),
    ...(section('training')
      ? {
          ioffe_mlp_bn_steps_per_s: withRatios(mlpBn, 'rate'),
          ioffe_mlp_nobn_steps_per_s: withRatios(mlpNoBn, 'rate'),
          mnist_cnn_bn_images_per_s: { ...withRatios(cnn, 'rate'), tfjs_error: tfjs?.mnist_cnn_error ?? undefined },
        }
      : {}),
    ...(section('bn')
      ? {
          bn1d_fwd_bwd_ms: { ...withRatios(bn1d, 'time'), input: [256, 1024], bandwidth: bnBandwidth(bn1d, 256 * 1024, triad.bn1d) },
          bn2d_fwd_bwd_ms: { ...withRatios(bn2d, 'time'), input: [32, 64, 32, 32], bandwidth: bnBandwidth(bn2d, 32 * 64 * 32 * 32, triad.bn2d) },
        }
      : {}),
    ...(section('matmul') ? { matmul_gflops: Object.fromEntries(Object.entries(matmul).map(([s, v]) => [s, { ...withRatios(v, 'rate'), wasm_fraction_of_simd_peak: (v.wasm ?? 0) / simdPeak, peak_gflops_in_turns: matmulPeak[s] ?? null }])) } : {}),
    // Winograd does fewer flops than a direct convolution: its rate in direct flops can pass the peak.
    ...(section('matmul') ? { conv_16x32_14x14_fwd_bwd_ms: { batch: 64, wasm_im2col: conv.im2col, wasm_winograd: conv.winograd, winograd_speedup: conv.im2col && conv.winograd ? conv.im2col / conv.winograd : null } } : {}),
    ...(section('training') ? { heap_growth_mb: { ...heap, steps: heapSteps } } : {}),
    // Where two threads paid: the share of large matmuls the adaptive policy split, per workload, and its
    // measured ns per multiply-add with and without the split, per size class of M·N·K; the share of
    // calls of each batch-norm kernel it shared with the worker during the batch-norm rows.
    two_threads: wasm2 ? { split_share: splitShare, per_size: wasm2.policy.summary(), batch_norm_split_share: bnShare, elementwise_split_share: elementwiseShare(wasm2) } : null,
    // Both cores on one network: data-parallel on two threads against the same build on one, per workload.
    // Both cores on one workload: the two-thread settings against the same build on one thread, per
    // workload (training: data-parallel, `two_threads`/`speedup`, and the kernel split, wasm×2; matmul: the split).
    two_thread_scaling: args.has('--no-threads') ? null : {
      ...(section('training') ? Object.fromEntries(([['ioffe_mlp_bn', mlpBn], ['ioffe_mlp_nobn', mlpNoBn], ['mnist_cnn_bn', cnn]] as const).map(([name, v]) => [name, { one_thread: v.wasm ?? null, two_threads: v.wasm_dp ?? null, speedup: typeof v.wasm === 'number' && typeof v.wasm_dp === 'number' ? v.wasm_dp / v.wasm : null, kernel_split: v.wasm2 ?? null, kernel_split_speedup: typeof v.wasm === 'number' && typeof v.wasm2 === 'number' ? v.wasm2 / v.wasm : null }])) : {}),
      ...(section('matmul') ? Object.fromEntries(Object.entries(matmul).map(([size, v]) => [`matmul ${size}`, { one_thread: v.wasm ?? null, two_threads: v.wasm2 ?? null, speedup: twoThreadScaling({ wasm: v.wasm, wasm2: v.wasm2 }, 'rate') }])) : {}),
    },
    load_average: { start: loadStart, end: loadavg() },
    ioffe_mlp_bn_mnist_accuracy: accuracy,
    npm_start_training_s: startSeconds,
    tfjs: tfjs ? { version: tfjs.version, simd: tfjs.simd, threads: tfjs.threads } : null,
    pytorch: torch ? { version: torch.version, threads_tried: [1, 2], passes: ['start', 'end'], per_threads: torch.perThreads } : null,
  };

  if (json) console.log(JSON.stringify(report, null, 2));
  else printTable(report, mlpBn, mlpNoBn, cnn, bn1d, bn2d, matmul, heap, heapSteps);

  function fractions(): Record<string, Record<string, number | null>> {
    const out: Record<string, Record<string, number | null>> = {};
    const of = (gflops: number | null | undefined, k: WasmKernels | null, threads: number) => {
      const c = k ? ceiling(k, threads) : null;
      return typeof gflops === 'number' && c ? gflops / c : null;
    };
    const settings = (gflops: (v: number | null | undefined) => number | null, v: Values) => ({
      wasm: of(gflops(v.wasm), wasm, 1),
      wasm2: of(gflops(v.wasm2), wasm2, 2),
      wasm_dp: of(gflops(v.wasm_dp), wasm, 2),
    });
    // The products against the peak measured in turns with them; data-parallel runs no product.
    const against = (x: number | null | undefined, peak: number | undefined) => (typeof x === 'number' && peak ? x / peak : null);
    if (section('matmul')) {
      for (const [size, v] of Object.entries(matmul)) out[`matmul ${size}`] = { wasm: against(v.wasm, matmulPeak[size]?.wasm), wasm2: against(v.wasm2, matmulPeak[size]?.wasm2), wasm_dp: null };
    }
    if (section('training')) {
      // The paper's network at batch 60: forward 60·(784·100 + 2·100·100 + 100·10) multiply-adds, the
      // weight gradients as many again, the input gradients of the three upper layers (the data's is skipped).
      const flopsPerStep = 2 * 60 * (2 * 99_400 + 21_000);
      const gflops = (x: number | null | undefined) => (typeof x === 'number' ? (x * flopsPerStep) / 1e9 : null);
      out['ioffe-mlp + BN (its matmuls)'] = settings(gflops, mlpBn);
      out['ioffe-mlp, no BN (its matmuls)'] = settings(gflops, mlpNoBn);
    }
    if (section('matmul')) {
      const c = ceiling(wasm, 1);
      const of = (ms: number | null) => (ms && c ? CONV_FLOPS / (ms * 1e6) / c : null);
      out['conv 16x32 14x14 fwd+bwd (direct-convolution flops)'] = { im2col: of(conv.im2col), winograd: of(conv.winograd) };
    }
    const bw = (key: 'bn1d_fwd_bwd_ms' | 'bn2d_fwd_bwd_ms') => (report0[key] as { bandwidth: { effective_gb_per_s: number; triad_gb_per_s: number } | null } | undefined)?.bandwidth;
    for (const key of ['bn1d_fwd_bwd_ms', 'bn2d_fwd_bwd_ms'] as const) {
      const b = bw(key);
      if (b) out[`${key} (of one thread's triad bandwidth)`] = { best: b.effective_gb_per_s / b.triad_gb_per_s };
    }
    return out;
  }
}

/**
 * The arithmetic ceiling of this processor as WebAssembly reaches it: the matmul micro-kernel's loop
 * with all data in L1, in the plain-SIMD build (multiply, then add) and the relaxed-SIMD build (fused
 * multiply-add), on one thread and on two at once. Null where the engine has no relaxed SIMD.
 */
type Peaks = Awaited<ReturnType<typeof measurePeaks>>;

function mergePeaks(into: Peaks, other: Peaks): void {
  for (const key of ['mul_add_gflops', 'fma_gflops'] as const) {
    const a = into[key], b = other[key];
    if (!a || !b) continue;
    a.one_thread = Math.max(a.one_thread, b.one_thread);
    if (a.two_threads !== null && b.two_threads !== null) a.two_threads = Math.max(a.two_threads, b.two_threads);
  }
}

async function measurePeaks(twoThreads: boolean) {
  const best = await detectSimd();
  const measure = async (simd: 'simd128' | 'relaxed-simd') => {
    const k = await createWasmKernels({ simd, threads: twoThreads ? 2 : 1 });
    try {
      let one = 0, two = 0;
      // Alternate, best of each: another process taking a core for a moment only lowers one sample.
      for (let i = 0; i < r(5); i++) {
        one = Math.max(one, k.measurePeak(1, 4));
        if (twoThreads) two = Math.max(two, k.measurePeak(2, 4));
      }
      return { one_thread: one, two_threads: twoThreads ? two : null };
    } finally {
      k.close();
    }
  };
  return { mul_add_gflops: await measure('simd128'), fma_gflops: best === 'relaxed-simd' ? await measure('relaxed-simd') : null };
}

/** The better of the two-thread wasm settings (wasm×2, wasm DP×2) against one thread, as a speed-up; null when either side is missing. */
function twoThreadScaling(v: Values, kind: 'rate' | 'time'): number | null {
  const two = [v.wasm2, v.wasm_dp].filter((x): x is number => typeof x === 'number' && x > 0);
  if (typeof v.wasm !== 'number' || v.wasm <= 0 || two.length === 0) return null;
  return kind === 'rate' ? Math.max(...two) / v.wasm : v.wasm / Math.min(...two);
}

/** The fastest of the wasm settings: highest rate, or lowest time. */
function best(v: Values, kind: 'rate' | 'time'): number {
  const xs = [v.wasm, v.wasm2, v.wasm_dp].filter((x): x is number => typeof x === 'number');
  return kind === 'rate' ? Math.max(...xs) : Math.min(...xs);
}

/** Speed-up of the best wasm setting over each other implementation (>1 = wasm faster). */
function withRatios(v: Values, kind: 'rate' | 'time') {
  const b = best(v, kind);
  const ratio = (x: number | null | undefined) => (typeof x === 'number' && x > 0 ? (kind === 'rate' ? b / x : x / b) : null);
  return { ...v, wasm_best: b, speedup: { vs_ts: ratio(v.ts), vs_tfjs_wasm: ratio(v.tfjs), vs_pytorch: ratio(v.pytorch) } };
}

/** Test accuracy of the paper's network with BN after 10,000 steps of batch 60 on MNIST (SGD, lr 0.5), data-parallel on `threads`. */
async function mnistAccuracy(k: WasmKernels, threads: number): Promise<{ steps: number; accuracy: number; seconds: number; threads: number } | null> {
  log(`ioffe-mlp with BN on MNIST: 10,000 steps on ${threads} thread${threads > 1 ? 's' : ''}, then test accuracy`);
  let train, test;
  try {
    train = loadDataset('mnist', 'train');
    test = loadDataset('mnist', 'test');
  } catch (e) {
    log(`accuracy: skipped (${(e as Error).message})`);
    return null;
  }
  const model = withKernels(k, () => buildPreset('ioffe-mlp', { bn: true, seed: 0 }));
  const loss = new CrossEntropyLoss(k);
  const optimizer = new SGD(model.parameters(), { lr: 0.5 });
  const loader = new DataLoader(train, { batchSize: 60, shuffle: true, seed: 0, dropLast: true }); // batches in k's memory
  const parallel = threads > 1 ? await DataParallel.create(model, { threads, inputShape: [784], optimizer }) : null;
  model.inputGrad = false;
  const steps = 10000;
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) {
    const batch = loader.next();
    const x = batch.x.reshape([60, 784]);
    model.train();
    if (parallel) {
      parallel.trainStep(x, batch.labels);
      continue;
    }
    optimizer.zeroGrad();
    loss.forward(model.forward(x), batch.labels);
    model.backward(loss.backward());
    optimizer.step();
  }
  const seconds = (performance.now() - t0) / 1000;
  parallel?.close();
  const result = evaluate(model, test, { inputShape: [784] });
  setBackend('ts');
  return { steps, accuracy: result.accuracy, seconds, threads };
}

/**
 * `npm start`'s training part (bnlab start --no-experiments: both networks, 3,000 steps each, one per
 * worker thread) on each backend, as its own "Wall time" line reports it; the better of two runs each,
 * alternating. Null when MNIST is not available.
 */
function measureStart(): { ts: number; wasm: number; speedup: number; runs: Record<string, number[]> } | null {
  log('npm start (training part) with --backend ts and wasm, twice each');
  const cli = join(root, 'dist/src/cli/main.js');
  const runs: Record<string, number[]> = { ts: [], wasm: [] };
  const runsDir = mkdtempSync(join(tmpdir(), 'bnlab-bench-start-'));
  try {
    for (let i = 0; i < 2; i++) {
      for (const backend of ['wasm', 'ts']) {
        const res = spawnSync(process.execPath, [cli, 'start', '--no-experiments', '--backend', backend, '--runs-dir', join(runsDir, `${backend}-${i}`)], { encoding: 'utf8' });
        const m = /Wall time: ([\d.]+) s/.exec(res.stdout);
        if (res.status !== 0 || !m) {
          log(`npm start: skipped (${(res.stderr || res.stdout).trim().split('\n').at(-1)})`);
          return null;
        }
        runs[backend].push(Number(m[1]));
      }
    }
  } finally {
    rmSync(runsDir, { recursive: true, force: true });
  }
  const ts = Math.min(...runs.ts), wasm = Math.min(...runs.wasm);
  return { ts, wasm, speedup: ts / wasm, runs };
}

interface TorchResults {
  ioffe_mlp_bn_steps_per_s: number;
  ioffe_mlp_nobn_steps_per_s: number;
  mnist_cnn_bn_images_per_s: number;
  bn1d_fwd_bwd_ms: number;
  bn2d_fwd_bwd_ms: number;
  matmul_gflops: Record<string, number>;
  torch: string;
  threads: number;
}

/** The python3 that imports torch, if any. */
function findTorchPython(): string | null {
  // Debian's python3-torch installs into /usr/bin/python3, which may not be the first python3 on PATH.
  return ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) ?? null;
}

/** One pass of bench/pytorch/bench.py on 1 and on 2 threads (null when torch cannot be imported). */
/** values[key] = the larger of its current value (if any) and `rate`. */
function keepBetter(values: Values, key: Impl, rate: number): void {
  const current = values[key];
  values[key] = typeof current === 'number' ? Math.max(current, rate) : rate;
}

function runPytorchPass(pass: 'start' | 'end'): Array<TorchResults & { pass: string }> | null {
  const python = findTorchPython();
  if (!python) {
    if (pass === 'start') log('PyTorch: not measurable here (python3 -c "import torch" fails; Debian: apt-get install python3-torch libopenblas0-pthread)');
    return null;
  }
  const script = join(root, 'bench/pytorch/bench.py');
  const perThreads: Array<TorchResults & { pass: string }> = [];
  // torch.set_num_threads does not reach OpenBLAS's own pthreads (Debian's build): cap those by environment.
  for (const threads of [1, 2]) {
    log(`PyTorch, ${threads} thread${threads > 1 ? 's' : ''} (${pass} of the run)`);
    const res = spawnSync(python, [script, '--threads', String(threads), ...(quick ? ['--quick'] : []), ...(only ? ['--only', only] : [])], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) } });
    if (res.status !== 0) {
      log(`PyTorch: ${threads} threads failed: ${res.stderr.trim().split('\n').at(-1)}`);
      continue;
    }
    perThreads.push({ ...(JSON.parse(res.stdout.trim().split('\n').at(-1)!) as TorchResults), pass });
  }
  return perThreads;
}

/** PyTorch's best figure of every pass and thread count. */
function combinePytorch(perThreads: TorchResults[]): { version: string; best: TorchResults; perThreads: TorchResults[] } | null {
  if (perThreads.length === 0) return null;
  // With --only, the figures of the other parts are missing.
  const pick = (f: (t: TorchResults) => number | undefined, kind: 'rate' | 'time') => {
    const xs = perThreads.map(f).filter((x): x is number => typeof x === 'number');
    return (xs.length ? (kind === 'rate' ? Math.max : Math.min)(...xs) : undefined) as number;
  };
  const bestOf: TorchResults = {
    torch: perThreads[0].torch,
    threads: 0,
    ioffe_mlp_bn_steps_per_s: pick((t) => t.ioffe_mlp_bn_steps_per_s, 'rate'),
    ioffe_mlp_nobn_steps_per_s: pick((t) => t.ioffe_mlp_nobn_steps_per_s, 'rate'),
    mnist_cnn_bn_images_per_s: pick((t) => t.mnist_cnn_bn_images_per_s, 'rate'),
    bn1d_fwd_bwd_ms: pick((t) => t.bn1d_fwd_bwd_ms, 'time'),
    bn2d_fwd_bwd_ms: pick((t) => t.bn2d_fwd_bwd_ms, 'time'),
    matmul_gflops: Object.fromEntries(Object.keys(perThreads[0].matmul_gflops ?? {}).map((s) => [s, pick((t) => t.matmul_gflops[s], 'rate')])),
  };
  return { version: perThreads[0].torch, best: bestOf, perThreads };
}

function describeMachine() {
  const c = cpus();
  return {
    cpu: c[0]?.model.trim() ?? 'unknown',
    cores: c.length,
    memory_gb: Math.round(totalmem() / 2 ** 30),
    os: `${platform()} ${release()}`,
    node: process.versions.node,
    v8: process.versions.v8,
  };
}

/** Per elementwise kernel the two-thread backend ran over the whole run: the share of its calls it split (shared with the worker). */
function elementwiseShare(k: WasmKernels): Record<string, number> {
  const share: Record<string, number> = {};
  for (const [op, p] of Object.entries(k.elementwisePolicies)) if (p.splitCalls + p.serialCalls > 0) share[op] = p.splitCalls / (p.splitCalls + p.serialCalls);
  return share;
}

function printTable(report: Record<string, unknown> & { machine: ReturnType<typeof describeMachine> & { triad_gb_per_s: Record<string, number>; simd_peak_gflops_1_thread: number } }, mlpBn: Values, mlpNoBn: Values, cnn: Values, bn1d: Values, bn2d: Values, matmul: Record<string, Values>, heap: Values, heapSteps: number): void {
  const m = report.machine;
  const fmt = (x: number | null | undefined, digits = 0) => (x === undefined ? '-' : x === null ? 'n/a' : x.toFixed(digits));
  const ratio = (x: number | null | undefined) => (typeof x === 'number' ? `${x.toFixed(1)}x` : '-');
  const header = ['workload', 'unit', 'ts', 'wasm', 'wasm×2', 'wasm DP×2', '2 thr / 1', 'tfjs-wasm', 'PyTorch', 'vs ts', 'vs tfjs', 'vs PyTorch'];
  const rows: string[][] = [];
  const add = (name: string, unit: string, v: Values, kind: 'rate' | 'time', digits: number) => {
    if (![v.wasm, v.wasm2, v.wasm_dp].some((x) => typeof x === 'number')) return; // not measured in this run (--only)
    const w = withRatios(v, kind);
    const scaling = twoThreadScaling(v, kind);
    rows.push([name, unit, fmt(v.ts, digits), fmt(v.wasm, digits), fmt(v.wasm2, digits), fmt(v.wasm_dp, digits), scaling === null ? '-' : `${scaling.toFixed(2)}x`, fmt(v.tfjs, digits), fmt(v.pytorch, digits), ratio(w.speedup.vs_ts), ratio(w.speedup.vs_tfjs_wasm), ratio(w.speedup.vs_pytorch)]);
  };
  add('ioffe-mlp + BN, batch 60', 'steps/s', mlpBn, 'rate', 0);
  add('ioffe-mlp, no BN, batch 60', 'steps/s', mlpNoBn, 'rate', 0);
  add('mnist-cnn + BN, batch 64', 'images/s', cnn, 'rate', 0);
  add('BatchNorm1d 256x1024 fwd+bwd', 'ms', bn1d, 'time', 3);
  add('BatchNorm2d 32x64x32x32 fwd+bwd', 'ms', bn2d, 'time', 2);
  for (const [s, v] of Object.entries(matmul)) add(`matmul ${s}`, 'GFLOPS', v, 'rate', 1);
  if (heap.wasm !== undefined) rows.push(['heap + wasm memory growth', `MB/${heapSteps} st`, fmt(heap.ts, 1), fmt(heap.wasm, 1), '', fmt(heap.wasm_dp, 1), '', '', '', '', '', '']);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(`${m.cpu}, ${m.cores} cores, ${m.memory_gb} GB, ${m.os}, Node ${m.node} (V8 ${m.v8})`);
  const p = (report.machine as unknown as { peaks: { mul_add_gflops: { one_thread: number; two_threads: number | null }; fma_gflops: { one_thread: number; two_threads: number | null } | null }; wasm_variant: string });
  const pk = (x: { one_thread: number; two_threads: number | null } | null) => (x ? `${x.one_thread.toFixed(1)} / ${x.two_threads === null ? '-' : x.two_threads.toFixed(1)}` : 'n/a (no relaxed SIMD)');
  console.log(`limits: triad ${m.triad_gb_per_s.dram.toFixed(1)} GB/s (96 MB), ${m.triad_gb_per_s.bn2d.toFixed(1)} GB/s (BN2d size), ${m.triad_gb_per_s.bn1d.toFixed(1)} GB/s (BN1d size)`);
  console.log(`peaks (GFLOPS, 1 / 2 threads): f32x4 mul+add ${pk(p.peaks.mul_add_gflops)}, f32x4 relaxed_madd (FMA) ${pk(p.peaks.fma_gflops)}; wasm columns run ${p.wasm_variant}`);
  console.log('');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
  console.log('');
  console.log('vs = speed-up of the fastest wasm setting over that column; wasm×2 = big matmuls and batch norm shared with one worker; wasm DP×2 = each batch split across two threads, synchronized batch norm; 2 thr / 1 = the better two-thread wasm setting against one thread (2.00x would be perfect scaling).');
  const fr = report.fraction_of_peak as Record<string, Record<string, number | null>>;
  const pct = (x: number | null | undefined) => (typeof x === 'number' ? `${Math.round(x * 100)}%` : '-');
  if (Object.keys(fr).length) {
    console.log('fraction of the ceiling each uses (arithmetic: its build\'s peak on its thread count, for a matmul the peak measured in turns with it; batch norm: bandwidth):');
    for (const [name, v] of Object.entries(fr)) console.log(`  ${name}: ${'best' in v ? pct(v.best) : 'winograd' in v ? `im2col ${pct(v.im2col)}, Winograd ${pct(v.winograd)} (one thread)` : `wasm ${pct(v.wasm)}, wasm×2 ${pct(v.wasm2)}, wasm DP×2 ${pct(v.wasm_dp)}`}`);
  }
  const scaling = report.two_thread_scaling as Record<string, { speedup: number | null; kernel_split_speedup?: number | null }> | null;
  const x2 = (v: number | null | undefined) => (typeof v === 'number' ? `${v.toFixed(2)}x` : '-');
  if (scaling && Object.keys(scaling).length) {
    console.log('two threads vs one (same build; 2.00x = perfect):');
    for (const [n, v] of Object.entries(scaling)) console.log(`  ${n}: ${'kernel_split_speedup' in v ? `data-parallel ${x2(v.speedup)}, kernel split ${x2(v.kernel_split_speedup)}` : `split ${x2(v.speedup)}`}`);
  }
  const cv = report.conv_16x32_14x14_fwd_bwd_ms as { wasm_im2col: number | null; wasm_winograd: number | null; winograd_speedup: number | null } | undefined;
  if (cv?.wasm_im2col && cv.wasm_winograd) console.log(`mnist-cnn's second convolution (64x16x14x14 → 32 channels), forward + backward on one thread: im2col ${cv.wasm_im2col.toFixed(2)} ms, Winograd F(2x2, 3x3) ${cv.wasm_winograd.toFixed(2)} ms (${cv.winograd_speedup!.toFixed(2)}x)`);
  const load = report.load_average as { start: number[]; end: number[] };
  console.log(`load average (1/5/15 min) at start ${load.start.map((l) => l.toFixed(1)).join(' ')}, at end ${load.end.map((l) => l.toFixed(1)).join(' ')} on ${m.cores} cores`);
  const acc = report.ioffe_mlp_bn_mnist_accuracy as { accuracy: number; steps: number; seconds: number; threads: number } | null;
  const start = report.npm_start_training_s as ReturnType<typeof measureStart>;
  if (start) console.log(`npm start's training (both networks, one worker each): ${start.wasm.toFixed(1)} s on wasm, ${start.ts.toFixed(1)} s on ts (${start.speedup.toFixed(1)}x; best of ${start.runs.ts.length} runs each)`);
  if (acc) console.log(`ioffe-mlp + BN on MNIST, wasm on ${acc.threads} thread(s): ${(acc.accuracy * 100).toFixed(2)}% test accuracy after ${acc.steps} steps (${acc.seconds.toFixed(1)} s of training)`);
  const cnnErr = (report.mnist_cnn_bn_images_per_s as { tfjs_error?: string } | undefined)?.tfjs_error;
  if (cnnErr) console.log(`tfjs-wasm cannot train mnist-cnn: ${cnnErr}`);
  for (const key of ['bn1d_fwd_bwd_ms', 'bn2d_fwd_bwd_ms'] as const) {
    const b = (report[key] as { bandwidth: { effective_gb_per_s: number; triad_gb_per_s: number; time_vs_5_float_pass: number } | null } | undefined)?.bandwidth;
    if (b) console.log(`${key}: the fastest wasm setting moves 9 floats/element at ${b.effective_gb_per_s.toFixed(1)} GB/s (one thread's triad at this size ${b.triad_gb_per_s.toFixed(1)} GB/s); ${b.time_vs_5_float_pass.toFixed(2)}x the time of a 5-float pass at triad speed`);
  }
}

function findRoot(start: string): string {
  let dir = start;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = resolve(dir, '..');
    if (up === dir) return start;
    dir = up;
  }
  return dir;
}

await main();
