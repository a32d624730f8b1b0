/**
 * How much of a training step of the paper's network (784-100-100-100-10, BN before each sigmoid,
 * batch 60, SGD with momentum) one thread still has to do when two threads share it, measured on one
 * thread with the wasm kernels, so no synchronization is counted. The one-thread step divided by the
 * share is the most two threads could gain from that split:
 *
 * - data-parallel: each thread trains on 30 of the 60 rows (what DataParallel does);
 * - column-split (tensor-parallel, as Megatron's column-parallel layers): each thread computes 50 of the
 *   100 units of every hidden layer for the whole batch, feature-major, so batch norm stays local;
 *   the output layer and the loss are on rank 0 (the share timed here), and the input gradient of a
 *   layer is two partial products that the next layer's backward adds;
 * - first layer column-split, the rest data-parallel: each thread computes 50 of the first layer's 100
 *   units for the whole batch (no summing of its 100×784 weight gradient, its weights never cross
 *   cores), then the upper layers on 30 rows each.
 *
 *   npx tsx bench/split-share.ts [--repeats 40]
 */
import { parseArgs } from 'node:util';
import { getBackend, initBackend, type Kernels } from '../src/kernels/index.js';

const { values: args } = parseArgs({ options: { repeats: { type: 'string', default: '40' } } });
const repeats = Number(args.repeats);

await initBackend('wasm');
const k: Kernels = getBackend();
const SIZES = [784, 100, 100, 100, 10];
const SGD = { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false, firstStep: false };

/** A backend array with deterministic values (the timings do not depend on them). */
function filled(n: number): Float32Array {
  const a = k.allocate(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.37) * 0.1;
  return a;
}

/**
 * Best and median µs per step of each of `steps`, over `repeats` windows of 50 steps after a warm-up,
 * the steps taking turns window by window: on a shared machine a busy minute then slows all of them,
 * not whichever was being timed.
 */
function time(steps: Array<() => void>): Array<{ best: number; median: number }> {
  for (const step of steps) for (let i = 0; i < 300; i++) step();
  const windows: number[][] = steps.map(() => []);
  for (let r = 0; r < repeats; r++) {
    steps.forEach((step, s) => {
      const t0 = performance.now();
      for (let i = 0; i < 50; i++) step();
      windows[s].push(((performance.now() - t0) / 50) * 1000);
    });
  }
  return windows.map((w) => {
    w.sort((a, b) => a - b);
    return { best: w[0], median: w[w.length >> 1] };
  });
}

/**
 * One thread's step with `unitsOf[l]` of hidden layer l's 100 units and `rowsOf[l]` of the batch,
 * feature-major (activations stored unit by unit, so a thread's units are one contiguous block and batch
 * norm over a unit's rows is a [1, units, rows] call). The output layer and the loss take the last
 * hidden layer's rows. [100, 100, 100] units and [60, 60, 60] rows is the whole step.
 */
function stepOf(unitsOf: number[], rowsOf: number[]): () => void {
  const maxRows = Math.max(...rowsOf);
  const x = filled(maxRows * 784);
  const layers = SIZES.slice(0, 3).map((inputs, l) => {
    const units = unitsOf[l], rows = rowsOf[l];
    return {
      inputs, units, rows,
      weight: filled(units * inputs), weightGrad: filled(units * inputs), momentum: filled(units * inputs),
      z: filled(units * rows), xhat: filled(units * rows), y: filled(units * rows), dy: filled(units * rows), dz: filled(units * rows),
      mean: filled(units), variance: filled(units), invStd: filled(units), gamma: filled(units), beta: filled(units),
      runningMean: filled(units), runningVar: filled(units), gammaGrad: filled(units), betaGrad: filled(units),
      // Gradient with respect to this layer's input: this thread's partial product, and the other thread's.
      inputGrad: filled(inputs * maxRows), otherInputGrad: filled(inputs * maxRows),
    };
  });
  const activations = [x, filled(100 * maxRows), filled(100 * maxRows), filled(100 * maxRows)];
  const rows3 = rowsOf[2];
  const w4 = filled(1000), w4Grad = filled(1000), w4Momentum = filled(1000), b4 = filled(10);
  const logits = filled(rows3 * 10), probs = filled(rows3 * 10), dLogits = filled(rows3 * 10);
  const labels = new Int32Array(rows3).map((_, i) => i % 10);
  return () => {
    for (let l = 0; l < 3; l++) {
      const L = layers[l];
      const { units, rows } = L;
      if (l === 0) k.matmul(L.weight, x, L.z, units, 784, rows, { transB: true });
      else k.matmul(L.weight, activations[l], L.z, units, L.inputs, rows);
      k.channelMoments(L.z, L.mean, L.variance, 1, units, rows);
      k.batchNormStatistics(L.mean, L.variance, L.invStd, 1e-5, L.runningMean, L.runningVar, 0.1, rows / (rows - 1), units);
      k.batchNormApply(L.z, L.mean, L.invStd, L.gamma, L.beta, L.y, L.xhat, 1, units, rows);
      k.sigmoid(L.y, activations[l + 1].subarray(0, units * rows));
    }
    k.matmul(activations[3], w4, logits, rows3, 100, 10, { transA: true, transB: true });
    k.addRowVector(logits, b4, logits, rows3, 10);
    k.softmaxCrossEntropy(logits, labels, probs, rows3, 10);
    k.softmaxCrossEntropyBackward(probs, labels, dLogits, rows3, 10);
    k.matmul(dLogits, activations[3], w4Grad, 10, rows3, 100, { transA: true, transB: true });
    k.matmul(w4, dLogits, layers[2].inputGrad, 100, 10, rows3, { transA: true, transB: true });
    k.sgdStep(w4, w4Grad, w4Momentum, SGD);
    for (let l = 2; l >= 0; l--) {
      const L = layers[l];
      const { units, rows } = L;
      const own = (a: Float32Array) => a.subarray(0, units * rows);
      const upstream = l === 2 ? L.inputGrad : layers[l + 1].inputGrad;
      // Under a column-split layer, the two threads' partial input gradients are added for this thread's units.
      if (l < 2 && layers[l + 1].units < 100) k.add(own(upstream), own(layers[l + 1].otherInputGrad), own(upstream));
      k.sigmoidBackward(own(activations[l + 1]), own(upstream), L.dy);
      k.batchNormBackward(L.dy, L.xhat, L.invStd, L.gamma, L.dz, L.gammaGrad, L.betaGrad, 1, units, rows);
      if (l === 0) k.matmul(L.dz, x, L.weightGrad, units, rows, 784);
      else {
        k.matmul(L.dz, activations[l], L.weightGrad, units, rows, L.inputs, { transB: true });
        k.matmul(L.weight, L.dz, L.inputGrad, L.inputs, units, rows, { transA: true });
      }
      k.sgdStep(L.weight, L.weightGrad, L.momentum, SGD);
      k.sgdStep(L.gamma, L.gammaGrad, null, SGD);
      k.sgdStep(L.beta, L.betaGrad, null, SGD);
    }
  };
}

const [whole, dataParallel, columnSplit, hybrid] = time([
  stepOf([100, 100, 100], [60, 60, 60]),
  stepOf([100, 100, 100], [30, 30, 30]),
  stepOf([50, 50, 50], [60, 60, 60]),
  stepOf([50, 100, 100], [60, 30, 30]),
]);
const row = (name: string, t: { best: number; median: number }) =>
  `${name.padEnd(46)} ${t.best.toFixed(1).padStart(7)} µs (median ${t.median.toFixed(1).padStart(7)})` +
  (t === whole ? '' : `  ${((t.best / whole.best) * 100).toFixed(0).padStart(3)}% of the step: two threads at most ${(whole.best / t.best).toFixed(2)}x`);
console.log(`wasm ${k.capabilities.simd ?? ''}, one thread, best of ${repeats} windows of 50 steps, the four taking turns`);
console.log(row('whole step (100 units, 60 rows)', whole));
console.log(row('data-parallel share (30 rows)', dataParallel));
console.log(row('column-split share (50 units, rank 0)', columnSplit));
console.log(row('first layer column-split, rest data-parallel', hybrid));
