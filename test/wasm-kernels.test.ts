/**
 * The WebAssembly backend against the reference kernels, on random shapes that include 1, odd sizes
 * (not multiples of the 4-lane vectors or of the 6×8 register tile) and sizes past every cache block;
 * with arrays in the wasm memory (zero-copy) and outside it (copied); on two threads; with the memory
 * growing under live arrays; and with the fixed-size ordinary-memory build filling up. Then the PyTorch
 * conformance suite on the wasm backend.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Rng, referenceKernels as ref, createWasmKernels, detectSimd, initBackend, setBackend, getBackend, SplitPolicy, buildPreset, type Kernels, type Window2d, type WasmSimd } from '../src/index.js';
import { runConformance } from '../src/cli/conformance.js';

// The build under test: BNLAB_TEST_WASM_SIMD=simd128 or relaxed-simd (npm test runs the suite on each), else the best one here.
const simd = (process.env.BNLAB_TEST_WASM_SIMD as WasmSimd | undefined) ?? (await detectSimd())!;
const wasm = await createWasmKernels({ simd });
const wasm2 = await createWasmKernels({ simd, threads: 2, parallelMinMacs: 1, parallelMinValues: 1, split: 'always' });
after(() => wasm2.close());

test(`the ${simd} build is the one running, and says so in its capabilities`, () => {
  assert.equal(wasm.simd, simd);
  assert.equal(wasm2.simd, simd);
  assert.deepEqual(wasm2.capabilities, { threads: 2, sharedMemory: true, simd, variant: `wasm ${simd}`, winograd: true });
});

type Place = 'wasm' | 'js';

function random(n: number, rng: Rng, place: Place, scale = 1, offset = 0): Float32Array {
  const a = place === 'wasm' ? wasm.allocate(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = offset + scale * rng.normal();
  return a;
}

function copy(a: Float32Array, k: Kernels = wasm): Float32Array {
  const b = k.allocate(a.length);
  b.set(a);
  return b;
}

/** |actual - expected| ≤ abs + rel·|expected| everywhere; the message names the first index that fails. */
function close(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, abs = 1e-6, rel = 1e-5): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const e = expected[i];
    const ok = Math.abs(actual[i] - e) <= abs + rel * Math.abs(e) || (Number.isNaN(e) && Number.isNaN(actual[i])) || actual[i] === e;
    if (!ok) assert.fail(`${what}[${i}]: got ${actual[i]}, expected ${e}`);
  }
}

const SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 13, 31, 64, 100, 257, 1000, 4099];

// N = 8·q + 4 (12, 44, 100, 196) takes the narrow edge kernel, with whole and partial row panels; A·Bᵀ
// with N < 16 and K ≥ 256 (60×784×10, 73×257×9, 16×784×9) runs as dot products.
test('matmul: all transpose forms, accumulate, odd sizes and sizes past the 96×256×512 cache blocks', () => {
  const rng = new Rng(1);
  const shapes = [[1, 1, 1], [1, 7, 1], [5, 1, 3], [6, 8, 8], [7, 9, 17], [13, 31, 5], [60, 784, 10], [12, 300, 16], [150, 600, 530], [73, 257, 9], [16, 37, 24], [100, 30, 17], [32, 144, 196], [20, 300, 44], [14, 520, 33], [7, 300, 100], [31, 520, 12], [100, 60, 100], [16, 784, 9]];
  for (const [m, k, n] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const place of ['wasm', 'js'] as Place[]) {
          const a = random(m * k, rng, place);
          const b = random(k * n, rng, place);
          const start = random(m * n, rng, place);
          const expected = start.slice();
          ref.matmul(a, b, expected, m, k, n, { transA, transB, accumulate: true });
          const out = place === 'wasm' ? copy(start) : start.slice();
          wasm.matmul(a, b, out, m, k, n, { transA, transB, accumulate: true });
          const what = `${m}x${k}x${n} transA=${transA} transB=${transB} ${place}`;
          close(out, expected, `${what} accumulate`, 1e-4, 1e-4);
          ref.matmul(a, b, expected, m, k, n, { transA, transB });
          wasm.matmul(a, b, out, m, k, n, { transA, transB });
          close(out, expected, what, 1e-4, 1e-4);
        }
      }
    }
  }
});

test('matmul split across two threads equals the single-thread result bit for bit', () => {
  const rng = new Rng(2);
  for (const [m, k, n] of [[60, 784, 100], [100, 60, 784], [13, 5, 9], [12, 40, 15], [200, 33, 17], [1, 3, 1000], [47, 784, 9]]) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = random(m * k, rng, 'wasm');
        const b = random(k * n, rng, 'wasm');
        const one = wasm.allocate(m * n);
        wasm.matmul(a, b, one, m, k, n, { transA, transB });
        const a2 = copy(a, wasm2), b2 = copy(b, wasm2), two = wasm2.allocate(m * n);
        two.fill(1);
        wasm2.matmul(a2, b2, two, m, k, n, { transA, transB, accumulate: true });
        wasm2.matmul(a2, b2, two, m, k, n, { transA, transB });
        assert.deepEqual(two, one, `${m}x${k}x${n} transA=${transA} transB=${transB}`);
      }
    }
  }
  // Accumulating, where the two threads split by rows (N < 16) or by columns into other panels than
  // one thread's (20 rows: panels of 6, 6, 4 and 4 on one thread), with K past one 256-long block.
  for (const [m, k, n] of [[20, 300, 15], [32, 144, 196], [26, 520, 13]]) {
    const a = random(m * k, rng, 'wasm'), b = random(k * n, rng, 'wasm'), start = random(m * n, rng, 'wasm');
    const one = copy(start);
    wasm.matmul(a, b, one, m, k, n, { accumulate: true });
    const two = copy(start, wasm2);
    wasm2.matmul(copy(a, wasm2), copy(b, wasm2), two, m, k, n, { accumulate: true });
    assert.deepEqual(two, one, `${m}x${k}x${n} accumulate`);
  }
  assert.ok(wasm2.policy.splitCalls > 0 && wasm2.policy.serialCalls === 0);
});

test('the split policy picks the faster of split and unsplit per size, and keeps re-checking', () => {
  const policy = new SplitPolicy();
  assert.equal(policy.choose(20), false, 'first measures one thread');
  policy.record(20, false, 2e-9);
  assert.equal(policy.choose(20), true, 'then two');
  policy.record(20, true, 1e-9);
  let split = 0;
  for (let i = 0; i < 160; i++) split += +policy.choose(20);
  assert.equal(split, 150, 'two threads were faster: split, except every 16th call');
  for (let i = 0; i < 20; i++) policy.record(20, true, 4e-9); // the machine got busy
  let unsplit = 0;
  for (let i = 0; i < 160; i++) unsplit += +!policy.choose(20);
  assert.equal(unsplit, 150);
  assert.equal(policy.choose(21), false, 'other sizes keep their own record');
  // A split call whose worker had to be woken is not timed, but it was split: it counts, and the next call splits too.
  const splitBefore = policy.splitCalls;
  policy.discard(22);
  assert.equal(policy.splitCalls, splitBefore + 1);
  assert.equal(policy.choose(22), true);
});

test('element-wise kernels, bias broadcast and reductions', () => {
  const rng = new Rng(3);
  for (const n of SIZES) {
    for (const place of ['wasm', 'js'] as Place[]) {
      const a = random(n, rng, place), b = random(n, rng, place);
      const out = random(n, rng, place), exp = new Float32Array(n);
      // fill, also over NaN, of the whole array and of a part of it (its neighbours untouched)
      out[0] = NaN;
      ref.fill(exp, -2.5), wasm.fill(out, -2.5), close(out, exp, `fill ${n}`, 0, 0);
      if (n > 2) {
        wasm.fill(out.subarray(1, n - 1), 0);
        assert.ok(out[0] === -2.5 && out[n - 1] === -2.5 && out.subarray(1, n - 1).every((v) => v === 0), `fill of a part ${n}`);
      }
      ref.add(a, b, exp), wasm.add(a, b, out), close(out, exp, `add ${n}`, 0, 0);
      ref.mul(a, b, exp), wasm.mul(a, b, out), close(out, exp, `mul ${n}`, 0, 0);
      ref.scale(a, 0.37, exp), wasm.scale(a, 0.37, out), close(out, exp, `scale ${n}`, 1e-7, 1e-7);
      exp.set(out);
      ref.axpy(-1.5, a, exp), wasm.axpy(-1.5, a, out), close(out, exp, `axpy ${n}`, 1e-6, 1e-6);
      // addAndClear: the sum in the target (as add gives it), the source zeroed
      const src = Float32Array.from(b), srcE = Float32Array.from(b);
      const sum = new Float32Array(n);
      ref.add(out, b, sum);
      exp.set(out);
      ref.addAndClear(exp, srcE), wasm.addAndClear(out, place === 'wasm' ? copy(src) : src);
      close(out, sum, `addAndClear ${n}`, 0, 0), close(exp, sum, `addAndClear (reference) ${n}`, 0, 0);
      assert.ok(srcE.every((v) => v === 0), `addAndClear clears the source (reference) ${n}`);
      if (place === 'js') assert.ok(src.every((v) => v === 0), `addAndClear clears a source outside wasm memory ${n}`);
      const inMemory = copy(b);
      wasm.addAndClear(out, inMemory);
      assert.ok(inMemory.every((v) => v === 0), `addAndClear clears the source ${n}`);
    }
  }
  for (const [rows, cols] of [[1, 1], [3, 5], [60, 100], [7, 1], [1, 13], [33, 257]]) {
    for (const place of ['wasm', 'js'] as Place[]) {
      const x = random(rows * cols, rng, place), v = random(cols, rng, place);
      const out = random(rows * cols, rng, place), exp = new Float32Array(rows * cols);
      ref.addRowVector(x, v, exp, rows, cols), wasm.addRowVector(x, v, out, rows, cols), close(out, exp, `addRowVector ${rows}x${cols}`, 0, 0);
      wasm.addRowVector(x, v, x, rows, cols), close(x, exp, `addRowVector in place ${rows}x${cols}`, 0, 0);
      const s = random(cols, rng, place), se = s.slice();
      ref.sumRows(x, se, rows, cols, true), wasm.sumRows(x, s, rows, cols, true), close(s, se, `sumRows += ${rows}x${cols}`, 1e-5, 1e-5);
      ref.sumRows(x, se, rows, cols, false), wasm.sumRows(x, s, rows, cols, false), close(s, se, `sumRows ${rows}x${cols}`, 1e-5, 1e-5);
    }
  }
  for (const [outer, axis, inner] of [[1, 1, 1], [2, 3, 5], [64, 32, 1], [3, 196, 7], [5, 1, 9]]) {
    const x = random(outer * axis * inner, rng, 'wasm');
    const out = wasm.allocate(outer * inner), exp = new Float32Array(outer * inner);
    ref.sumAxis(x, exp, outer, axis, inner), wasm.sumAxis(x, out, outer, axis, inner), close(out, exp, `sumAxis ${outer}x${axis}x${inner}`, 1e-5, 1e-5);
  }
});

test('activations and their backward, including saturated inputs', () => {
  const rng = new Rng(4);
  for (const n of SIZES) {
    for (const place of ['wasm', 'js'] as Place[]) {
      const x = random(n, rng, place, 6);
      if (n > 4) x.set([0, -0, 100, -100, 1e-8].slice(0, Math.min(5, n)));
      const dy = random(n, rng, place);
      const y = random(n, rng, place), ye = new Float32Array(n), dx = random(n, rng, place), dxe = new Float32Array(n);
      ref.sigmoid(x, ye), wasm.sigmoid(x, y), close(y, ye, `sigmoid ${n}`, 2e-7, 2e-6);
      ref.sigmoidBackward(ye, dy, dxe), wasm.sigmoidBackward(ye, dy, dx), close(dx, dxe, `sigmoidBackward ${n}`, 1e-9, 1e-6);
      ref.tanh(x, ye), wasm.tanh(x, y), close(y, ye, `tanh ${n}`, 2e-7, 2e-6);
      ref.tanhBackward(ye, dy, dxe), wasm.tanhBackward(ye, dy, dx), close(dx, dxe, `tanhBackward ${n}`, 1e-9, 1e-6);
      ref.relu(x, ye), wasm.relu(x, y), close(y, ye, `relu ${n}`, 0, 0);
      ref.reluBackward(x, dy, dxe), wasm.reluBackward(x, dy, dx), close(dx, dxe, `reluBackward ${n}`, 0, 0);
    }
  }
});

test('softmax and softmax cross-entropy with its backward', () => {
  const rng = new Rng(5);
  for (const [rows, cols] of [[1, 1], [1, 10], [60, 10], [7, 3], [5, 1000]]) {
    for (const place of ['wasm', 'js'] as Place[]) {
      const logits = random(rows * cols, rng, place, 5);
      if (cols > 2) logits[1] = 80; // a class whose probability underflows next to it
      const labels = Int32Array.from({ length: rows }, () => rng.int(cols));
      const p = random(rows * cols, rng, place), pe = new Float32Array(rows * cols);
      ref.softmax(logits, pe, rows, cols), wasm.softmax(logits, p, rows, cols), close(p, pe, `softmax ${rows}x${cols}`, 1e-7, 1e-6);
      const le = ref.softmaxCrossEntropy(logits, labels, pe, rows, cols);
      const l = wasm.softmaxCrossEntropy(logits, labels, p, rows, cols);
      close([l], [le], `loss ${rows}x${cols}`, 1e-7, 1e-7);
      close(p, pe, `probs ${rows}x${cols}`, 1e-7, 1e-6);
      const d = random(rows * cols, rng, place), de = new Float32Array(rows * cols);
      ref.softmaxCrossEntropyBackward(pe, labels, de, rows, cols), wasm.softmaxCrossEntropyBackward(pe, labels, d, rows, cols);
      close(d, de, `softmaxCrossEntropyBackward ${rows}x${cols}`, 1e-8, 1e-6);
    }
  }
});

/** [batch, channels, inner] shapes for the batch-norm kernels: BN1d (L = 1), odd L, BN2d-like. */
const BN_SHAPES = [[2, 1, 1], [60, 100, 1], [7, 13, 1], [3, 5, 3], [4, 3, 17], [8, 6, 1024], [2, 2, 4099], [1, 4, 9], [256, 33, 1], [200, 3, 2]];

test('batch norm: channelMoments, batchNormApply and both backwards', () => {
  const rng = new Rng(6);
  for (const [batch, channels, inner] of BN_SHAPES) {
    for (const place of ['wasm', 'js'] as Place[]) {
      const size = batch * channels * inner;
      const what = `[${batch}, ${channels}, ${inner}] ${place}`;
      // An offset far from 0 checks the variance does not lose digits to cancellation.
      const x = random(size, rng, place, 2, 100);
      const mean = random(channels, rng, place), variance = random(channels, rng, place);
      const me = new Float32Array(channels), ve = new Float32Array(channels);
      ref.channelMoments(x, me, ve, batch, channels, inner);
      wasm.channelMoments(x, mean, variance, batch, channels, inner);
      close(mean, me, `mean ${what}`, 1e-5, 1e-6);
      close(variance, ve, `variance ${what}`, 1e-5, 1e-4);

      // invStd and the running averages: float64 arithmetic rounded once, so bit for bit the reference.
      const absVe = Float32Array.from(ve, Math.abs);
      const inv = random(channels, rng, place), invE = new Float32Array(channels);
      const rm = random(channels, rng, place), rv = random(channels, rng, place), rmE = rm.slice(), rvE = rv.slice();
      ref.batchNormStatistics(me, absVe, invE, 1e-5, rmE, rvE, 0.1, 1.25, channels);
      wasm.batchNormStatistics(me, absVe, inv, 1e-5, rm, rv, 0.1, 1.25, channels);
      close(inv, invE, `invStd ${what}`, 0, 0), close(rm, rmE, `runningMean ${what}`, 0, 0), close(rv, rvE, `runningVar ${what}`, 0, 0);
      const rmBefore = rm.slice();
      wasm.batchNormStatistics(me, absVe, inv, 1e-5, null, null, 0.1, 1.25, channels);
      assert.deepEqual(rm, rmBefore, 'no running arrays: nothing but invStd written');

      const invStd = Float32Array.from(ve, (v) => 1 / Math.sqrt(v + 1e-5));
      const gamma = random(channels, rng, place), beta = random(channels, rng, place);
      for (const affine of [true, false]) {
        const y = random(size, rng, place), ye = new Float32Array(size);
        const xhat = random(size, rng, place), xe = new Float32Array(size);
        const g = affine ? gamma : null, b = affine ? beta : null;
        ref.batchNormApply(x, me, invStd, g, b, ye, xe, batch, channels, inner);
        wasm.batchNormApply(x, me, invStd, g, b, y, xhat, batch, channels, inner);
        close(y, ye, `y ${what} affine=${affine}`, 1e-6, 1e-6);
        close(xhat, xe, `xhat ${what}`, 1e-6, 1e-6);
        wasm.batchNormApply(x, me, invStd, g, b, y, null, batch, channels, inner);
        close(y, ye, `y without xhat ${what}`, 1e-6, 1e-6);

        const dy = random(size, rng, place);
        for (const fixed of [false, true]) {
          const dx = random(size, rng, place), dxe = new Float32Array(size);
          const dGamma = random(channels, rng, place), dBeta = random(channels, rng, place);
          const dge = dGamma.slice(), dbe = dBeta.slice();
          const refFn = fixed ? ref.batchNormBackwardFixedStats : ref.batchNormBackward;
          const wasmFn = (fixed ? wasm.batchNormBackwardFixedStats : wasm.batchNormBackward).bind(wasm);
          refFn(dy, xe, invStd, g, dxe, affine ? dge : null, affine ? dbe : null, batch, channels, inner);
          wasmFn(dy, xe, invStd, g, dx, affine ? dGamma : null, affine ? dBeta : null, batch, channels, inner);
          // dx is a difference of terms as large as gamma·invStd·dy (M·dy - Σdy - xhat·Σdy·xhat, times gamma·invStd/M):
          // compare against that scale, not against dx, which can cancel to almost 0 (M = 2).
          let scale = 0;
          for (let i = 0; i < size; i++) scale = Math.max(scale, Math.abs(dy[i] * invStd[Math.floor(i / inner) % channels] * (g ? g[Math.floor(i / inner) % channels] : 1)));
          close(dx, dxe, `dx ${what} affine=${affine} fixed=${fixed}`, 2e-5 * scale, 1e-4);
          close(dGamma, dge, `dGamma ${what} fixed=${fixed}`, 1e-4, 1e-5);
          close(dBeta, dbe, `dBeta ${what} fixed=${fixed}`, 1e-4, 1e-5);
        }
      }
    }
  }
});

/**
 * [batch, channels, inner] for the split backward: L = 1 and L > 1, one channel, odd and large channel
 * counts, batch 1 and odd; both sides of SMALL (channels of at most 32 values take the f64 path).
 */
const BN_SPLIT_SHAPES = [[1, 1, 1], [1, 5, 7], [3, 1, 40], [7, 13, 1], [61, 37, 1], [5, 3, 17], [1, 2, 4099], [9, 67, 33], [33, 1, 1], [256, 1024, 1], [4, 16, 1024]];

test('batch norm split backward: Reduce and Input against the reference, with sums over a larger (sharded) batch', () => {
  const rng = new Rng(12);
  for (const [batch, channels, inner] of BN_SPLIT_SHAPES) {
    for (const place of ['wasm', 'js'] as Place[]) {
      const size = batch * channels * inner;
      const what = `[${batch}, ${channels}, ${inner}] ${place}`;
      const dy = random(size, rng, place), xhat = random(size, rng, place);
      const sumDy = random(channels, rng, place), sumDyXhat = random(channels, rng, place);
      const sde = new Float32Array(channels), sxe = new Float32Array(channels);
      ref.batchNormBackwardReduce(dy, xhat, sde, sxe, batch, channels, inner);
      wasm.batchNormBackwardReduce(dy, xhat, sumDy, sumDyXhat, batch, channels, inner);
      // A sum of M terms in f32 is good to about M·ε of the sum of their magnitudes.
      const absDy = new Float64Array(channels), absDyXhat = new Float64Array(channels);
      for (let i = 0; i < size; i++) {
        const c = Math.floor(i / inner) % channels;
        absDy[c] += Math.abs(dy[i]);
        absDyXhat[c] += Math.abs(dy[i] * xhat[i]);
      }
      for (let c = 0; c < channels; c++) {
        assert.ok(Math.abs(sumDy[c] - sde[c]) <= 1e-5 * absDy[c] + 1e-7, `sumDy ${what} [${c}]: got ${sumDy[c]}, expected ${sde[c]}`);
        assert.ok(Math.abs(sumDyXhat[c] - sxe[c]) <= 1e-5 * absDyXhat[c] + 1e-7, `sumDyXhat ${what} [${c}]: got ${sumDyXhat[c]}, expected ${sxe[c]}`);
      }

      // Input with this shard's own sums, and with sums over three shards (count = 3·B·L, other shards' sums added).
      const invStd = Float32Array.from({ length: channels }, () => 0.5 + rng.uniform());
      const gamma = random(channels, rng, place);
      for (const shards of [1, 3]) {
        const count = shards * batch * inner;
        const sd = Float32Array.from(sde, (v) => v + (shards - 1) * rng.normal() * Math.sqrt(batch * inner));
        const sx = Float32Array.from(sxe, (v) => v + (shards - 1) * rng.normal() * Math.sqrt(batch * inner));
        for (const g of [gamma, null]) {
          const dx = random(size, rng, place), dxe = new Float32Array(size);
          ref.batchNormBackwardInput(dy, xhat, invStd, g, sd, sx, count, dxe, batch, channels, inner);
          wasm.batchNormBackwardInput(dy, xhat, invStd, g, place === 'wasm' ? copy(sd) : sd, sx, count, dx, batch, channels, inner);
          // dx = gamma·invStd/count · (count·dy - Σdy - xhat·Σdy·xhat): compare against the size of its terms, not of dx.
          let scale = 0;
          for (let i = 0; i < size; i++) {
            const c = Math.floor(i / inner) % channels;
            const terms = Math.abs(dy[i]) + Math.abs(sd[c] / count) + Math.abs((xhat[i] * sx[c]) / count);
            scale = Math.max(scale, terms * invStd[c] * (g ? Math.abs(g[c]) : 1));
          }
          close(dx, dxe, `dx ${what} shards=${shards} affine=${g !== null}`, 2e-6 * scale, 1e-5);
        }
      }
    }
  }
});

test('batch-norm kernels shared by two threads equal the single-thread results bit for bit', () => {
  const rng = new Rng(13);
  // L = 1: one to four row blocks (the last one short), channel ranges of whole 16-channel groups and odd tails;
  // L > 1 with few and many channels; M on both sides of 32.
  for (const [batch, channels, inner] of [[40, 17, 1], [33, 100, 1], [65, 48, 1], [200, 33, 1], [256, 1024, 1], [7, 40, 1], [5, 2, 9], [3, 7, 50], [8, 64, 256], [2, 3, 4]]) {
    const size = batch * channels * inner;
    const what = `[${batch}, ${channels}, ${inner}]`;
    const x = random(size, rng, 'wasm', 2, 3), dy = random(size, rng, 'wasm');
    const gamma = random(channels, rng, 'wasm'), beta = random(channels, rng, 'wasm');
    const run = (k: Kernels) => {
      const c = (a: Float32Array) => copy(a, k);
      const mean = k.allocate(channels), variance = k.allocate(channels);
      k.channelMoments(c(x), mean, variance, batch, channels, inner);
      const invStd = c(Float32Array.from(variance, (v) => 1 / Math.sqrt(v + 1e-5)));
      const y = k.allocate(size), xhat = k.allocate(size);
      k.batchNormApply(c(x), mean, invStd, c(gamma), c(beta), y, xhat, batch, channels, inner);
      const dx = k.allocate(size), dGamma = c(beta), dBeta = c(gamma);
      k.batchNormBackward(c(dy), xhat, invStd, c(gamma), dx, dGamma, dBeta, batch, channels, inner);
      const sumDy = k.allocate(channels), sumDyXhat = k.allocate(channels), dxSplit = k.allocate(size);
      k.batchNormBackwardReduce(c(dy), xhat, sumDy, sumDyXhat, batch, channels, inner);
      k.batchNormBackwardInput(c(dy), xhat, invStd, null, sumDy, sumDyXhat, 2 * batch * inner, dxSplit, batch, channels, inner);
      const dxFixed = k.allocate(size), dGammaFixed = k.allocate(channels);
      k.batchNormBackwardFixedStats(c(dy), xhat, invStd, c(gamma), dxFixed, dGammaFixed, null, batch, channels, inner);
      return { mean, variance, y, xhat, dx, dGamma, dBeta, sumDy, sumDyXhat, dxSplit, dxFixed, dGammaFixed };
    };
    const one = run(wasm), two = run(wasm2);
    for (const key of Object.keys(one) as Array<keyof typeof one>) assert.deepEqual(two[key], one[key], `${key} ${what}`);
  }
  for (const [op, policy] of Object.entries(wasm2.batchNormPolicies)) assert.ok(policy.splitCalls > 0 && policy.serialCalls === 0, `${op} was split`);
});

test('elementwise kernels and optimizer steps shared by two threads equal the single-thread results bit for bit', () => {
  const rng = new Rng(14);
  // 1 and 17: the worker's part holds everything (parts start on 16-value lines); 1001: a part ending mid-vector.
  for (const n of [1, 17, 1001, 4099]) {
    const x = random(n, rng, 'wasm', 3), dy = random(n, rng, 'wasm'), g = random(n, rng, 'wasm');
    const run = (k: Kernels) => {
      const c = (a: Float32Array) => copy(a, k);
      const out: Record<string, Float32Array> = {};
      for (const f of ['sigmoid', 'tanh', 'relu'] as const) {
        const y = k.allocate(n);
        k[f](c(x), y);
        out[f] = y;
        const dx = k.allocate(n);
        if (f === 'relu') k.reluBackward(c(x), c(dy), dx);
        else k[`${f}Backward`](y, c(dy), dx);
        out[`${f}Backward`] = dx;
      }
      out.fill = c(x);
      k.fill(out.fill, 0.25);
      // SGD without a momentum buffer (its address stays 0 in every part), with one, and Adam; zeroing the gradient as they read it.
      out.p = c(x);
      out.g = c(g);
      k.sgdStep(out.p, out.g, null, { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, firstStep: false, clearGrad: true });
      out.buf = c(dy);
      out.pMomentum = c(x);
      k.sgdStep(out.pMomentum, c(g), out.buf, { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 1e-2, nesterov: true, firstStep: false });
      out.pAdam = c(x);
      out.m = c(dy);
      out.v = c(Float32Array.from(g, (v) => v * v));
      k.adamStep(out.pAdam, c(g), out.m, out.v, { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupledWeightDecay: true, step: 3 });
      return out;
    };
    const one = run(wasm), two = run(wasm2);
    for (const key of Object.keys(one)) assert.deepEqual(two[key], one[key], `${key} n=${n}`);
    assert.ok(two.g.every((v) => v === 0), `sgd clearGrad zeroes every part of g, n=${n}`);
  }
  for (const [op, policy] of Object.entries(wasm2.elementwisePolicies)) assert.ok(policy.splitCalls > 0 && policy.serialCalls === 0, `${op} was split`);
});

test('threadLimit 1 keeps every kernel call on the calling thread (as torch.set_num_threads(1)), with the same bits', () => {
  assert.equal(wasm.threadLimit, 1);
  assert.equal(wasm2.threadLimit, 2);
  const rng = new Rng(15);
  const a = random(64 * 48, rng, 'wasm'), b = random(48 * 40, rng, 'wasm'), x = random(60 * 70, rng, 'wasm'), v = random(4099, rng, 'wasm');
  const run = (k: Kernels) => {
    const product = k.allocate(64 * 40), mean = k.allocate(70), variance = k.allocate(70), y = k.allocate(4099);
    k.matmul(a, b, product, 64, 48, 40);
    k.channelMoments(x, mean, variance, 60, 70, 1);
    k.sigmoid(v, y);
    return { product, mean, variance, y };
  };
  const splitCalls = () => [wasm2.policy.splitCalls, wasm2.batchNormPolicies.channelMoments.splitCalls, wasm2.elementwisePolicies.sigmoid.splitCalls];
  const one = run(wasm);
  wasm2.threadLimit = 1;
  try {
    assert.equal(wasm2.threadLimit, 1);
    const before = splitCalls();
    assert.deepEqual(run(wasm2), one);
    assert.deepEqual(splitCalls(), before, 'no call was split');
  } finally {
    wasm2.threadLimit = 2;
  }
  const before = splitCalls();
  assert.deepEqual(run(wasm2), one);
  splitCalls().forEach((n, i) => assert.ok(n > before[i], `call ${i} was split again`));
  wasm2.threadLimit = 8;
  assert.equal(wasm2.threadLimit, 2, 'at most the threads the backend has');
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => {
      wasm2.threadLimit = bad;
    }, /threadLimit must be a whole number of threads, at least 1/);
  }
  assert.equal(wasm2.threadLimit, 2);
});

test('channelAffine and its backward', () => {
  const rng = new Rng(7);
  for (const [batch, channels, inner] of [[1, 1, 1], [5, 7, 1], [3, 4, 9], [2, 6, 64], [60, 33, 1]]) {
    const size = batch * channels * inner;
    const x = random(size, rng, 'wasm'), scale = random(channels, rng, 'js'), shift = random(channels, rng, 'wasm');
    for (const s of [shift, null]) {
      const out = wasm.allocate(size), oe = new Float32Array(size);
      ref.channelAffine(x, scale, s, oe, batch, channels, inner), wasm.channelAffine(x, scale, s, out, batch, channels, inner);
      close(out, oe, `channelAffine ${batch}x${channels}x${inner}`, 1e-7, 1e-6);
    }
    const dy = random(size, rng, 'wasm');
    const dx = wasm.allocate(size), dxe = new Float32Array(size);
    const ds = random(channels, rng, 'wasm'), dt = random(channels, rng, 'js');
    const dse = ds.slice(), dte = dt.slice();
    ref.channelAffineBackward(dy, x, scale, dxe, dse, dte, batch, channels, inner);
    wasm.channelAffineBackward(dy, x, scale, dx, ds, dt, batch, channels, inner);
    close(dx, dxe, 'channelAffineBackward dx', 1e-7, 1e-6);
    close(ds, dse, 'dScale', 1e-5, 1e-5);
    close(dt, dte, 'dShift', 1e-5, 1e-5);
  }
});

function window(height: number, width: number, kernelH: number, kernelW: number, strideH: number, strideW: number, padH: number, padW: number): Window2d {
  return { height, width, kernelH, kernelW, strideH, strideW, padH, padW, outH: Math.floor((height + 2 * padH - kernelH) / strideH) + 1, outW: Math.floor((width + 2 * padW - kernelW) / strideW) + 1 };
}

const WINDOWS: Array<[number, number, Window2d]> = [
  [2, 3, window(28, 28, 3, 3, 1, 1, 1, 1)],
  [1, 1, window(1, 1, 1, 1, 1, 1, 0, 0)],
  [3, 2, window(7, 9, 3, 2, 2, 3, 1, 0)],
  [2, 4, window(14, 14, 2, 2, 2, 2, 0, 0)],
  [1, 2, window(5, 6, 5, 3, 1, 2, 2, 1)],
  [2, 1, window(9, 8, 3, 3, 1, 1, 0, 0)],
  // Stride 1 with the output as wide as the input (im2col's shifted-plane path): 5×5 / padding 2,
  // a rectangular kernel with padding only across, a 1×1 kernel, a kernel taller than the plane.
  [2, 3, window(6, 5, 5, 5, 1, 1, 2, 2)],
  [1, 2, window(7, 6, 3, 5, 1, 1, 0, 2)],
  [2, 2, window(4, 3, 1, 1, 1, 1, 0, 0)],
  [1, 2, window(2, 4, 5, 3, 1, 1, 2, 1)],
  // 2×2 / stride 2 pooling (vector paths): 14 and 4 windows a row, and odd planes (an uncovered last
  // row or column) with 3 and 4.
  [2, 3, window(28, 28, 2, 2, 2, 2, 0, 0)],
  [1, 2, window(9, 7, 2, 2, 2, 2, 0, 0)],
  [2, 1, window(8, 9, 2, 2, 2, 2, 0, 0)],
];

/**
 * Max pooling of x on both backends: outputs, argmax and the backward (of a random dy, returned) must
 * match the reference exactly. y and dx are the wasm backend's output arrays.
 */
function checkMaxPool(x: Float32Array, y: Float32Array, dx: Float32Array, planes: number, g: Window2d, rng: Rng, place: Place, what: string): Float32Array {
  const outSize = planes * g.outH * g.outW;
  const ye = new Float32Array(outSize);
  const arg = new Int32Array(outSize), arge = new Int32Array(outSize);
  ref.maxPoolForward(x, ye, arge, planes, g), wasm.maxPoolForward(x, y, arg, planes, g);
  close(y, ye, `maxPool ${what}`, 0, 0);
  assert.deepEqual(arg, arge, `maxPool argmax ${what}`);
  const dy = random(outSize, rng, place);
  const dxe = new Float32Array(x.length);
  ref.maxPoolBackward(dy, arge, dxe, planes, g), wasm.maxPoolBackward(dy, arg, dx, planes, g);
  close(dx, dxe, `maxPoolBackward ${what}`, 0, 0);
  // A ReLU fused into the pooling: the reference's fused kernels, and those against relu then pooling.
  ref.maxPoolReluForward(x, ye, arge, planes, g), wasm.maxPoolReluForward(x, y, arg, planes, g);
  close(y, ye, `maxPoolRelu ${what}`, 0, 0);
  assert.deepEqual(arg, arge, `maxPoolRelu argmax ${what}`);
  const r = new Float32Array(x.length), yr = new Float32Array(outSize), argr = new Int32Array(outSize);
  ref.relu(x, r), ref.maxPoolForward(r, yr, argr, planes, g);
  assert.deepEqual(ye, yr, `maxPoolRelu = relu, then maxPool ${what}`);
  assert.deepEqual(arge, argr, `maxPoolRelu argmax = relu, then maxPool ${what}`);
  ref.maxPoolReluBackward(dy, ye, arge, dxe, planes, g), wasm.maxPoolReluBackward(dy, y, arg, dx, planes, g);
  close(dx, dxe, `maxPoolReluBackward ${what}`, 0, 0);
  const dr = new Float32Array(x.length), dxr = new Float32Array(x.length);
  ref.maxPoolBackward(dy, argr, dr, planes, g), ref.reluBackward(x, dr, dxr);
  close(dxe, dxr, `maxPoolReluBackward = maxPoolBackward, then reluBackward ${what}`, 0, 0);
  return dy;
}

test('2×2 max pooling with ties (ReLU outputs): the first maximum of each window, as the reference', () => {
  const rng = new Rng(9);
  for (const g of [window(28, 28, 2, 2, 2, 2, 0, 0), window(14, 14, 2, 2, 2, 2, 0, 0)]) {
    const planes = 6;
    const x = random(planes * g.height * g.width, rng, 'wasm');
    for (let i = 0; i < x.length; i++) x[i] = Math.max(0, Math.round(x[i] * 2) / 2); // many zeros and repeated values
    const dx = random(x.length, rng, 'wasm');
    checkMaxPool(x, wasm.allocate(planes * g.outH * g.outW), dx, planes, g, rng, 'wasm', `ties ${g.height}x${g.width}`);
    // Before a fused ReLU: negative windows, -0, and NaN (which the ReLU maps to 0) among the values.
    for (let i = 0; i < x.length; i++) x[i] = i % 13 === 0 ? NaN : i % 11 === 0 ? -0 : Math.round(x[i] * 4 - 2) / 2;
    checkMaxPool(x, wasm.allocate(planes * g.outH * g.outW), dx, planes, g, rng, 'wasm', `signed ties and NaN ${g.height}x${g.width}`);
  }
});

test('batch norm, ReLU and 2×2 max pooling in one pass: bit for bit batchNormApply then maxPoolReluForward, on both backends', () => {
  const rng = new Rng(12);
  for (const [batch, channels, height, width] of [[3, 4, 28, 28], [2, 5, 14, 14], [2, 3, 8, 8], [1, 2, 6, 10]]) {
    const size = batch * channels * height * width, outSize = size / 4;
    const g = window(height, width, 2, 2, 2, 2, 0, 0);
    for (const affine of [true, false]) {
      const what = `${batch}x${channels}x${height}x${width} affine=${affine}`;
      const x = random(size, rng, 'wasm', 2, 0.5);
      const mean = random(channels, rng, 'wasm'), invStd = random(channels, rng, 'wasm', 0.5, 1.5);
      const scale = affine ? random(channels, rng, 'wasm') : null, shift = affine ? random(channels, rng, 'wasm') : null;
      // The two kernels one after the other, on the wasm backend and on the reference.
      const y = wasm.allocate(size), xhat = wasm.allocate(size), out = wasm.allocate(outSize), arg = new Int32Array(outSize);
      wasm.batchNormApply(x, mean, invStd, scale, shift, y, xhat, batch, channels, height * width);
      wasm.maxPoolReluForward(y, out, arg, batch * channels, g);
      const xhatF = wasm.allocate(size), outF = wasm.allocate(outSize), argF = new Int32Array(outSize), xhatMaxF = wasm.allocate(outSize);
      wasm.batchNormReluMaxPool2x2(x, mean, invStd, scale, shift, wasm.allocate(size), xhatF, outF, argF, xhatMaxF, batch, channels, height, width);
      assert.deepEqual(xhatF, xhat, `xhat ${what}`);
      assert.deepEqual(outF, out, `pooled ${what}`);
      assert.deepEqual(argF, arg, `argmax ${what}`);
      assert.deepEqual(xhatMaxF, Float32Array.from(argF, (i) => xhatF[i]), `xhat at the winners ${what}`);
      const xhatR = new Float32Array(size), outR = new Float32Array(outSize), argR = new Int32Array(outSize), xhatMaxR = new Float32Array(outSize);
      ref.batchNormReluMaxPool2x2(x, mean, invStd, scale, shift, new Float32Array(size), xhatR, outR, argR, xhatMaxR, batch, channels, height, width);
      close(xhatF, xhatR, `xhat vs reference ${what}`, 1e-6, 1e-6);
      close(outF, outR, `pooled vs reference ${what}`, 1e-6, 1e-6);
      assert.deepEqual(xhatMaxR, Float32Array.from(argR, (i) => xhatR[i]), `reference: xhat at the winners ${what}`);
      // Without xhatMax (null) the other outputs are the same.
      const outN = wasm.allocate(outSize);
      wasm.batchNormReluMaxPool2x2(x, mean, invStd, scale, shift, wasm.allocate(size), wasm.allocate(size), outN, new Int32Array(outSize), null, batch, channels, height, width);
      assert.deepEqual(outN, outF, `pooled without xhatMax ${what}`);
    }
  }
  assert.throws(() => wasm.batchNormReluMaxPool2x2(new Float32Array(36), new Float32Array(1), new Float32Array(1), null, null, new Float32Array(36), new Float32Array(36), new Float32Array(9), new Int32Array(9), null, 1, 1, 6, 6), /needs even sides, height·width a multiple of 4 and width ≥ 8, got 6x6/);
});

test("batch norm's backward through the ReLU and 2×2 max pooling in one pass: the unfused backwards' gradients, on both backends", () => {
  const rng = new Rng(13);
  // 7 pooled columns (14 wide) and 5 (10 wide) leave rows that are not a multiple of 4 windows.
  for (const [batch, channels, height, width] of [[3, 4, 28, 28], [2, 5, 14, 14], [2, 3, 8, 8], [1, 2, 6, 10], [4, 3, 4, 8]]) {
    const size = batch * channels * height * width, outSize = size / 4, count = batch * height * width;
    const g = window(height, width, 2, 2, 2, 2, 0, 0);
    for (const place of ['wasm', 'js'] as Place[]) {
      for (const affine of [true, false]) {
        const what = `${batch}x${channels}x${height}x${width} affine=${affine} arrays in ${place}`;
        const x = random(size, rng, place, 2, 0.3);
        const mean = random(channels, rng, place, 0.2), invStd = random(channels, rng, place, 0.5, 1.5);
        const gamma = affine ? random(channels, rng, place, 1, 0.2) : null, shift = affine ? random(channels, rng, place, 0.5) : null;
        for (const k of [ref, wasm]) {
          const kind = `${k === ref ? 'reference' : 'wasm'} ${what}`;
          const alloc = (n: number) => (place === 'wasm' && k === wasm ? wasm.allocate(n) : new Float32Array(n));
          const xhat = alloc(size), out = alloc(outSize), argmax = new Int32Array(outSize), xhatMax = alloc(outSize);
          k.batchNormReluMaxPool2x2(x, mean, invStd, gamma, shift, alloc(size), xhat, out, argmax, xhatMax, batch, channels, height, width);
          const dy = random(outSize, rng, place);
          // Unfused: the pooling's and the ReLU's backward write the gradient at the batch norm's output, then batch norm's two halves.
          const dBn = alloc(size), sumDy = alloc(channels), sumDyXhat = alloc(channels), dx = alloc(size);
          k.maxPoolReluBackward(dy, out, argmax, dBn, batch * channels, g);
          k.batchNormBackwardReduce(dBn, xhat, sumDy, sumDyXhat, batch, channels, height * width);
          k.batchNormBackwardInput(dBn, xhat, invStd, gamma, sumDy, sumDyXhat, count, dx, batch, channels, height * width);
          const fSumDy = alloc(channels), fSumDyXhat = alloc(channels), fdx = alloc(size);
          k.batchNormReluMaxPool2x2BackwardReduce(dy, out, xhatMax, fSumDy, fSumDyXhat, batch, channels, height, width);
          close(fSumDy, sumDy, `sumDy ${kind}`, 1e-5, 1e-5);
          close(fSumDyXhat, sumDyXhat, `sumDyXhat ${kind}`, 1e-5, 1e-5);
          k.batchNormReluMaxPool2x2BackwardInput(dy, out, argmax, xhat, invStd, gamma, fSumDy, fSumDyXhat, count, fdx, batch, channels, height, width);
          close(fdx, dx, `dx ${kind}`, 1e-6, 1e-5);
          // From the same sums, dx is the unfused one bit for bit.
          k.batchNormReluMaxPool2x2BackwardInput(dy, out, argmax, xhat, invStd, gamma, sumDy, sumDyXhat, count, fdx, batch, channels, height, width);
          assert.deepEqual(fdx, dx, `dx from the unfused sums ${kind}`);
        }
      }
    }
  }
  // dx covers every position and nothing past its end.
  const [batch, channels, height, width] = [2, 3, 14, 14];
  const size = batch * channels * height * width, outSize = size / 4;
  const block = wasm.allocate(size + 8);
  block.fill(7);
  const dx = block.subarray(0, size);
  const out = random(outSize, rng, 'wasm'), argmax = new Int32Array(outSize);
  for (let i = 0; i < outSize; i++) argmax[i] = Math.floor(i / (width / 2)) * 2 * width + (i % (width / 2)) * 2; // every window's top-left
  wasm.batchNormReluMaxPool2x2BackwardInput(random(outSize, rng, 'wasm'), out, argmax, random(size, rng, 'wasm'), random(channels, rng, 'wasm'), null, random(channels, rng, 'wasm'), random(channels, rng, 'wasm'), batch * height * width, dx, batch, channels, height, width);
  assert.ok(dx.every((v) => v !== 7), 'every position of dx written');
  assert.deepEqual(Array.from(block.subarray(size)), new Array(8).fill(7), 'nothing written past dx');
  assert.throws(() => wasm.batchNormReluMaxPool2x2BackwardReduce(new Float32Array(9), new Float32Array(9), new Float32Array(9), new Float32Array(1), new Float32Array(1), 1, 1, 6, 6), /batchNormReluMaxPool2x2BackwardReduce: needs even sides, height·width a multiple of 4 and width ≥ 8, got 6x6/);
});

test('im2col, col2im, max and average pooling', () => {
  const rng = new Rng(8);
  for (const [batch, channels, g] of WINDOWS) {
    const planes = batch * channels;
    const what = `B=${batch} C=${channels} ${JSON.stringify(g)}`;
    for (const place of ['wasm', 'js'] as Place[]) {
      const x = random(planes * g.height * g.width, rng, place);
      const colSize = planes * g.kernelH * g.kernelW * g.outH * g.outW;
      const cols = random(colSize, rng, place), ce = new Float32Array(colSize);
      ref.im2col(x, ce, batch, channels, g), wasm.im2col(x, cols, batch, channels, g);
      close(cols, ce, `im2col ${what}`, 0, 0);
      const dcols = random(colSize, rng, place);
      const dx = random(x.length, rng, place), dxe = new Float32Array(x.length);
      ref.col2im(dcols, dxe, batch, channels, g), wasm.col2im(dcols, dx, batch, channels, g);
      close(dx, dxe, `col2im ${what}`, 1e-6, 1e-6);

      const outSize = planes * g.outH * g.outW;
      const y = random(outSize, rng, place), ye = new Float32Array(outSize);
      const dy = checkMaxPool(x, y, dx, planes, g, rng, place, what);
      ref.avgPoolForward(x, ye, planes, g), wasm.avgPoolForward(x, y, planes, g);
      close(y, ye, `avgPool ${what}`, 0, 0);
      ref.avgPoolBackward(dy, dxe, planes, g), wasm.avgPoolBackward(dy, dx, planes, g);
      close(dx, dxe, `avgPoolBackward ${what}`, 1e-7, 1e-6);
    }
  }
});

test('Winograd F(2x2, 3x3): filter transforms, convolution and its filter gradient, on one and many image groups', () => {
  const rng = new Rng(12);
  // [batch, C, O, H, W, padH, padW]: a 1x1 output; mnist-cnn's second convolution over several image
  // groups with a short last one; tile rows not a multiple of 4 and asymmetric padding; a plane larger
  // than a group's budget; many images in one group; an image whose tiles alone exceed a group's budget.
  const shapes = [[1, 1, 1, 3, 3, 0, 0], [7, 16, 32, 14, 14, 1, 1], [2, 3, 5, 9, 17, 2, 0], [3, 8, 4, 28, 28, 1, 1], [1, 33, 2, 6, 5, 0, 1], [40, 2, 3, 4, 4, 1, 1], [1, 4, 6, 40, 37, 2, 2], [2, 128, 96, 12, 12, 1, 1]];
  const largest = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  for (const [batch, c, o, h, w, ph, pw] of shapes) {
    const oh = h + 2 * ph - 2, ow = w + 2 * pw - 2;
    for (const place of ['wasm', 'js'] as Place[]) {
      const what = `B=${batch} C=${c} O=${o} ${h}x${w} padding ${ph}x${pw} (${place})`;
      const weight = random(o * c * 9, rng, place);
      for (const flip of [false, true]) {
        const u = random(16 * o * c, rng, place), ue = new Float32Array(16 * o * c);
        ref.winogradWeights(weight, ue, o, c, flip), wasm.winogradWeights(weight, u, o, c, flip);
        close(u, ue, `winogradWeights flip=${flip} ${what}`, 1e-6, 1e-6);
      }
      const u = random(16 * o * c, rng, place);
      const x = random(batch * c * h * w, rng, place);
      // y is followed by 8 sentinel floats: a row's last vector may write past the row, never past y.
      const yBlock = random(batch * o * oh * ow + 8, rng, place), y = yBlock.subarray(0, batch * o * oh * ow), ye = new Float32Array(y.length);
      const sentinels = Array.from(yBlock.subarray(y.length));
      ref.winogradConv3x3(x, u, ye, batch, c, o, h, w, ph, pw), wasm.winogradConv3x3(x, u, y, batch, c, o, h, w, ph, pw);
      close(y, ye, `winogradConv3x3 ${what}`, 1e-5 * largest(ye), 1e-5);
      assert.deepEqual(Array.from(yBlock.subarray(y.length)), sentinels, `winogradConv3x3 wrote past y: ${what}`);
      const dy = random(y.length, rng, place);
      const du = random(16 * o * c, rng, place), due = new Float32Array(du.length);
      ref.winogradConv3x3WeightGrad(x, dy, due, batch, c, o, h, w, ph, pw), wasm.winogradConv3x3WeightGrad(x, dy, du, batch, c, o, h, w, ph, pw);
      close(du, due, `winogradConv3x3WeightGrad ${what}`, 1e-5 * largest(due), 1e-5);
      const dWeight = random(o * c * 9, rng, place), dWeightE = Float32Array.from(dWeight);
      ref.winogradWeightsBackward(due, dWeightE, o, c), wasm.winogradWeightsBackward(due, dWeight, o, c);
      close(dWeight, dWeightE, `winogradWeightsBackward (accumulating) ${what}`, 1e-6 * largest(dWeightE), 1e-6);
    }
  }
});

test('SGD (momentum, dampening, Nesterov, weight decay) and Adam/AdamW over several steps', () => {
  const rng = new Rng(9);
  for (const n of [1, 3, 4, 7, 100, 1001]) {
    for (const [momentum, dampening, nesterov, weightDecay] of [[0, 0, false, 0], [0.9, 0, false, 1e-2], [0.9, 0, true, 0], [0.5, 0.3, false, 0]] as const) {
      const p = random(n, rng, 'wasm'), pe = p.slice();
      const buf = momentum ? wasm.allocate(n) : null, bufe = momentum ? new Float32Array(n) : null;
      for (let step = 0; step < 3; step++) {
        const g = random(n, rng, step === 1 ? 'js' : 'wasm');
        const o = { lr: 0.1, momentum, dampening, weightDecay, nesterov, firstStep: step === 0 };
        ref.sgdStep(pe, g, bufe, o), wasm.sgdStep(p, g, buf, o);
      }
      close(p, pe, `sgd n=${n} momentum=${momentum} nesterov=${nesterov}`, 1e-6, 1e-6);
      // clearGrad: the same step bit for bit, and the gradient zeroed (in and out of wasm memory), on both backends
      for (const k of [ref, wasm]) {
        for (const place of ['wasm', 'js'] as Place[]) {
          const g = random(n, rng, place);
          const p1 = k === ref ? Float32Array.from(p) : copy(p), p2 = k === ref ? Float32Array.from(p) : copy(p);
          const b1 = buf ? (k === ref ? Float32Array.from(buf) : copy(buf)) : null, b2 = buf ? (k === ref ? Float32Array.from(buf) : copy(buf)) : null;
          const o = { lr: 0.1, momentum, dampening, weightDecay, nesterov, firstStep: false };
          k.sgdStep(p1, Float32Array.from(g), b1, o);
          k.sgdStep(p2, g, b2, { ...o, clearGrad: true });
          assert.deepEqual(p2, p1, `sgd clearGrad: the same step, n=${n} momentum=${momentum} ${k.name} ${place}`);
          if (b1) assert.deepEqual(b2, b1, `sgd clearGrad: the same buffer, n=${n} ${k.name} ${place}`);
          assert.ok(g.every((v) => v === 0), `sgd clearGrad zeroes g, n=${n} ${k.name} ${place}`);
        }
      }
    }
    for (const [weightDecay, decoupledWeightDecay] of [[0, false], [0.01, false], [0.01, true]] as const) {
      const p = random(n, rng, 'wasm'), pe = p.slice();
      const m = wasm.allocate(n), v = wasm.allocate(n), me = new Float32Array(n), ve = new Float32Array(n);
      for (let step = 1; step <= 3; step++) {
        const g = random(n, rng, 'wasm');
        const o = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay, decoupledWeightDecay, step };
        ref.adamStep(pe, g, me, ve, o), wasm.adamStep(p, g, m, v, o);
      }
      close(p, pe, `adam n=${n} wd=${weightDecay} decoupled=${decoupledWeightDecay}`, 1e-6, 1e-5);
      close(v, ve, `adam v n=${n}`, 1e-9, 1e-5);
      for (const k of [ref, wasm]) {
        const g = random(n, rng, 'wasm');
        const c = (a: Float32Array) => (k === ref ? Float32Array.from(a) : copy(a));
        const [p1, m1, v1, p2, m2, v2] = [c(p), c(m), c(v), c(p), c(m), c(v)];
        const o = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay, decoupledWeightDecay, step: 4 };
        k.adamStep(p1, Float32Array.from(g), m1, v1, o);
        k.adamStep(p2, g, m2, v2, { ...o, clearGrad: true });
        assert.deepEqual([p2, m2, v2], [p1, m1, v1], `adam clearGrad: the same step, n=${n} ${k.name}`);
        assert.ok(g.every((v) => v === 0), `adam clearGrad zeroes g, n=${n} ${k.name}`);
      }
    }
  }
});

test('every kernel of the interface is a wasm method of its own, so a spread copy of the backend works', () => {
  const names = Object.keys(ref).filter((n) => typeof (ref as unknown as Record<string, unknown>)[n] === 'function');
  for (const n of names) assert.equal(typeof (wasm as unknown as Record<string, unknown>)[n], 'function', n);
  // A spread's static type drops a class's methods; that every kernel survives it at run time is what this test checks.
  const copy = { ...wasm, relu: ref.relu } as unknown as Kernels;
  const x = copy.allocate(5), y = copy.allocate(5);
  x.set([-1, 2, -3, 4, 5]);
  copy.sigmoid(x, y);
  close(y, Float32Array.from(x, (v) => 1 / (1 + Math.exp(-v))), 'sigmoid through a copy', 1e-7, 1e-6);
});

test('allocate: zeroed views of the wasm memory that stay valid while it grows; freed blocks are reused', () => {
  const k = wasm;
  const a = k.allocate(1000);
  assert.equal(a.buffer, k.heap.buffer);
  assert.ok(a.every((v) => v === 0));
  a.fill(3);
  const before = k.heap.memoryBytes;
  const big = k.allocate((before >> 2) + 1000); // more than the whole memory: it must grow
  assert.ok(k.heap.memoryBytes > before);
  assert.equal(a.length, 1000);
  assert.ok(a.every((v) => v === 3), 'an array allocated before the growth keeps its values');
  const out = k.allocate(1000);
  k.add(a, a, out);
  assert.ok(out.every((v) => v === 6), 'and kernels still see it');
  big[big.length - 1] = 1;
  // The allocator reuses freed space.
  const p = k.heap.alloc(4096);
  k.heap.free(p);
  assert.equal(k.heap.alloc(4096), p);
  k.heap.free(p);
  k.release(big);
});

test('memory has an explicit owner: a block is freed by release() of the array itself, never by the garbage collector', async () => {
  const { setFlagsFromString } = await import('node:v8');
  const { runInNewContext } = await import('node:vm');
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const k = await createWasmKernels({ simd });
  let parent: Float32Array | null = k.allocate(4096);
  const view = parent.subarray(10, 20); // e.g. a shard of a batch, or a view on another thread
  view.fill(7);
  k.release(view); // a subarray is not the block: ignored
  const offset = parent.byteOffset;
  parent = null;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
  const next = k.allocate(4096);
  assert.notEqual(next.byteOffset, offset, 'the dropped parent kept its block: the subarray is still valid');
  next.fill(1);
  assert.ok(view.every((v) => v === 7));
  const before = k.heap.allocatedBytes;
  k.release(next);
  assert.equal(k.heap.allocatedBytes, before - 4096 * 4);
  assert.equal(k.allocate(4096).byteOffset, next.byteOffset, 'a released block is reused');
  k.release(new Float32Array(8)); // not the backend's: ignored
  k.dispose();
  assert.equal(k.heap.allocatedBytes, 0);
});

test('Sequential checks an input in the backend memory by column sums, and still names a NaN or infinity exactly', async () => {
  const previous = getBackend().name;
  const { registerBackend, Tensor } = await import('../src/index.js');
  registerBackend(wasm);
  setBackend('wasm');
  try {
    const model = buildPreset('ioffe-mlp', { bn: true, seed: 1 });
    const x = wasm.allocate(4 * 784);
    const rng = new Rng(3);
    for (let i = 0; i < x.length; i++) x[i] = rng.uniform();
    const batch = new Tensor([4, 784], x);
    model.forward(batch);
    x[2 * 784 + 9] = NaN;
    assert.throws(() => model.forward(batch), /Input contains NaN at flat index 1577 \(sample 2 of a batch of shape \[4, 784\]\)/);
    x[2 * 784 + 9] = -Infinity;
    assert.throws(() => model.forward(batch), /Input contains -Infinity at flat index 1577 /);
    // Finite values whose column sum overflows float32: not proved finite by the sums, found finite by the search.
    x[9] = 3e38;
    x[2 * 784 + 9] = 3e38;
    model.forward(batch);
    model.dispose();
  } finally {
    setBackend(previous);
  }
});

test("Module.dispose() gives a model's memory back; a module gives back an output buffer it replaces", async () => {
  const k = await createWasmKernels({ simd });
  const previous = getBackend().name;
  const { registerBackend } = await import('../src/index.js');
  registerBackend(k);
  setBackend('wasm');
  try {
    const { Tensor } = await import('../src/index.js');
    const rng = new Rng(2);
    const x = k.allocate(60 * 784);
    for (let i = 0; i < x.length; i++) x[i] = rng.uniform();
    buildPreset('ioffe-mlp', { bn: true, seed: 1 }).forward(new Tensor([60, 784], x)); // the backend's own scratch grows once
    const empty = k.heap.allocatedBytes; // (this model was dropped without dispose: its memory stays taken, by design)
    const model = buildPreset('ioffe-mlp', { bn: true, seed: 1 });
    model.forward(new Tensor([60, 784], x));
    const afterOne = k.heap.allocatedBytes;
    model.forward(new Tensor([30, 784], x.subarray(0, 30 * 784)));
    model.forward(new Tensor([60, 784], x));
    assert.equal(k.heap.allocatedBytes, afterOne, 'outputs replaced when the batch size changed went back to the backend');
    model.dispose();
    assert.equal(k.heap.allocatedBytes, empty);
  } finally {
    registerBackend(wasm);
    setBackend(previous);
    k.dispose();
  }
});

test('ordinary-memory build (browsers without cross-origin isolation): fills up, then falls back to ordinary arrays', async () => {
  const k = await createWasmKernels({ shared: false, memoryMB: 4 });
  assert.equal(k.shared, false);
  await assert.rejects(createWasmKernels({ shared: false, threads: 2 }), /threads need shared memory/);
  const rng = new Rng(10);
  const inMemory = k.allocate(1000);
  assert.equal(inMemory.buffer, k.memory.buffer);
  const arrays: Float32Array[] = [];
  for (let i = 0; i < 6; i++) arrays.push(k.allocate(250_000)); // 6 MB > 4 MB: the last ones are ordinary arrays
  assert.ok(arrays.some((a) => a.buffer !== k.memory.buffer));
  assert.ok(arrays.some((a) => a.buffer === k.memory.buffer));
  // Kernels work on both kinds; an operand too big for the remaining scratch goes to the reference kernel.
  for (const a of arrays) for (let i = 0; i < a.length; i += 997) a[i] = rng.normal();
  for (let i = 0; i + 1 < arrays.length; i++) {
    const out = new Float32Array(250_000), exp = new Float32Array(250_000);
    k.add(arrays[i], arrays[i + 1], out), ref.add(arrays[i], arrays[i + 1], exp);
    assert.deepEqual(out, exp);
  }
  const x = random(60 * 50, rng, 'js'), w = random(10 * 50, rng, 'js'), y = k.allocate(600), ye = new Float32Array(600);
  k.matmul(x, w, y, 60, 50, 10, { transB: true }), ref.matmul(x, w, ye, 60, 50, 10, { transB: true });
  close(y, ye, 'matmul on a full memory', 1e-5, 1e-5);
});

test('the PyTorch conformance suite passes on the wasm backend', async () => {
  const previous = getBackend().name;
  await initBackend('wasm');
  try {
    assert.equal(getBackend().name, 'wasm');
    const lines: string[] = [];
    const r = runConformance([fileURLToPath(new URL('./fixtures/pytorch', import.meta.url))], (l) => lines.push(l));
    assert.equal(r.failed, 0, lines.join('\n'));
    assert.ok(r.passed >= 14, lines.join('\n'));
  } finally {
    setBackend(previous);
  }
});
