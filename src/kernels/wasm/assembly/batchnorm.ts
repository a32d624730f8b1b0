/**
 * Batch-norm kernels, each one or two passes over memory.
 *
 * Shape legend: x, y, xhat, dy, dx: [B, C, L] (B = batch, C = channels, L = values per channel and
 * sample: 1 for BatchNorm1d on (B, C), H·W for BatchNorm2d); per-channel vectors: [C]; M = B·L.
 *
 * Two memory layouts, two loop shapes:
 * - L = 1: a channel's values are a column, so rows are streamed and four channels are handled per
 *   f32x4 lane group, with per-channel sums and parameters read from [C] arrays that stay in L1.
 * - L > 1: a channel's values come in contiguous runs of L ("chunks"), reduced with f32x4 then added
 *   into per-channel f64 totals.
 * f32 partial sums are folded into f64 every FLUSH rows or every chunk, so long reductions
 * (M = 32768 for a 32×64×32×32 input) keep the reference's accuracy.
 *
 * Work items, so that several threads can share a call: a kernel's work comes in up to three phases of
 * `chunks` items each, and an item starts only when every item of the earlier phases is done.
 *   A (L = 1 sums): ranges of rows, each block of FLUSH rows writing its f32 column sums to a slot of
 *      its own;
 *   B: channel ranges: the blocks' sums added in f64 in block order, then the per-channel results. With
 *      L > 1 (or few values per channel) a range does the whole kernel for its channels;
 *   C (L = 1 elementwise passes): ranges of rows, so each thread writes whole rows (split by channels
 *      instead, each thread writing half of every row, two threads were measured 1.5x faster than one,
 *      not 1.9x).
 * One thread alone (`claims` 0) runs the items in order. Threads sharing a call (threads.ts) each pass
 * their index `thread`, take item `thread` of each phase first and then any item the others have not
 * claimed (a bit each in the i32 at `claims`, set with atomic.or; the i32 after it counts finished
 * items). So each thread works on the same rows in A, C and the next kernel, which stay in its own
 * cache (taking items in turn instead moved rows between the cores and made two threads no faster than
 * one), and a thread that starts late only means the others do more.
 * An item runs the same loops whoever runs it, so a shared call gives the single-thread result bit for
 * bit.
 */

const FLUSH: i32 = 64;
import { hsum, madd } from './vmath';

/**
 * Channels with at most this many values (M = B·L) go through scalar f64 code, as in the reference: with
 * so few values dx can cancel to a millionth of its terms (M = 2 makes it exactly 0 but for eps), and
 * f32 arithmetic would leave only rounding noise. Such channels are too small for SIMD to matter. Kept
 * small: a data-parallel shard of the paper's batch (30 rows) must take the SIMD path (5x faster there),
 * and from M ≈ 10 the f32 sums folded into f64 stay within the kernel tests' tolerance of the reference.
 */
const SMALL: f64 = 8;

// @ts-ignore: decorator
@inline function f(p: usize, i: i32): usize {
  return p + ((<usize>i) << 2);
}
// @ts-ignore: decorator
@inline function d(p: usize, i: i32): usize {
  return p + ((<usize>i) << 3);
}

// ---- work items (see the header) ----

/** Item chunks·phase + j that this thread visits at step k: item `thread` of each phase first, then the rest in turn. */
// @ts-ignore: decorator
@inline function itemAt(k: i32, chunks: i32, thread: i32): i32 {
  const j = k % chunks;
  return k - j + (j + thread) % chunks;
}
/** Whether this thread runs item i: alone always, shared when no other thread has claimed it. */
// @ts-ignore: decorator
@inline function claim(claims: usize, i: i32): bool {
  if (!claims) return true;
  const bit = 1 << i;
  return (atomic.or<i32>(claims, bit) & bit) == 0;
}
// @ts-ignore: decorator
@inline function itemDone(claims: usize): void {
  if (claims) atomic.add<i32>(claims + 4, 1);
}
/** Spin until n items are done: those of the earlier phases, which another thread may still be running. */
// @ts-ignore: decorator
@inline function waitForItems(claims: usize, n: i32): void {
  if (claims) while (atomic.load<i32>(claims + 4) < n) {}
}

/** First channel of range i of n (C for i ≥ n); with L = 1 a multiple of 16, so a range's lane groups are the whole tensor's. */
function channelStart(i: i32, n: i32, channels: i32, inner: i32): i32 {
  if (i >= n) return channels;
  if (inner != 1) return <i32>((<i64>i * <i64>channels) / <i64>n);
  const units = (channels + 15) >> 4;
  return min(channels, <i32>((<i64>i * <i64>units) / <i64>n) << 4);
}

/** First row of range i of n. */
// @ts-ignore: decorator
@inline function rowStart(i: i32, n: i32, rows: i32): i32 {
  return <i32>((<i64>i * <i64>rows) / <i64>n);
}

// @ts-ignore: decorator
@inline function blockCount(rows: i32): i32 {
  return (rows + FLUSH - 1) / FLUSH;
}

/** Whether a kernel takes the phased L = 1 path (more than SMALL values per channel). */
// @ts-ignore: decorator
@inline function byRows(batch: i32, inner: i32): bool {
  return inner == 1 && <f64>batch > SMALL;
}

// ---- scratch ----

/**
 * Floats of scratch the batch-norm kernels need: f64 totals s64, t64 [C] (2·C floats each),
 * coefficients p, q, r (3·C), and with L = 1 two f32 [C] sums per block of FLUSH rows; all indexed by
 * channel (and block), so threads write disjoint parts.
 */
export function batchNormScratchFloats(batch: i32, channels: i32, inner: i32): i32 {
  return 7 * channels + (inner == 1 ? 2 * channels * blockCount(batch) : 0) + 16;
}

// @ts-ignore: decorator
@inline function S64(scratch: usize): usize {
  return scratch;
}
// @ts-ignore: decorator
@inline function T64(scratch: usize, channels: i32): usize {
  return d(scratch, channels);
}
// @ts-ignore: decorator
@inline function COEF(scratch: usize, channels: i32): usize {
  return d(scratch, 2 * channels);
}
/** Block k's Σ (then its Σ of squares or products at + C floats). */
// @ts-ignore: decorator
@inline function BLOCK(scratch: usize, channels: i32, k: i32): usize {
  return f(scratch, 7 * channels + 2 * channels * k);
}

// ---- L = 1: sums of row blocks (phase A) and their total (phase B) ----

/**
 * Column sums of rows [r0, r1) of [R, C] (one block, at most FLUSH rows) into f32 s32, t32 [C]:
 * mode 0: Σu and Σu² with u = a - a[0,c] (moments about the first row);  mode 1: Σa and Σa·b.
 * Rows are streamed in order, four at a time, adding into s32, t32 (in L1). Walking down the columns
 * with the sums in registers instead is slower: with C a power of two, every row of a column maps to
 * the same L1 set, and each row is a new page.
 */
function blockSums(mode: i32, a: usize, b: usize, r0: i32, r1: i32, cols: i32, s32: usize, t32: usize): void {
  memory.fill(s32, 0, (<usize>cols) << 2);
  memory.fill(t32, 0, (<usize>cols) << 2);
  const shift = a; // row 0
  const stride = (<usize>cols) << 2;
  const vecBytes = (<usize>(cols & ~3)) << 2;
  let r = r0;
  while (r < r1) {
    const n = r1 - r >= 4 ? 4 : 1;
    const a0 = f(a, r * cols), b0 = f(b, r * cols);
    if (n == 4 && mode == 0) {
      for (let k: usize = 0; k < vecBytes; k += 16) {
        const sh = v128.load(shift + k);
        const u0 = f32x4.sub(v128.load(a0 + k), sh);
        const u1 = f32x4.sub(v128.load(a0 + stride + k), sh);
        const u2 = f32x4.sub(v128.load(a0 + 2 * stride + k), sh);
        const u3 = f32x4.sub(v128.load(a0 + 3 * stride + k), sh);
        v128.store(s32 + k, f32x4.add(v128.load(s32 + k), f32x4.add(f32x4.add(u0, u1), f32x4.add(u2, u3))));
        const sq = f32x4.add(f32x4.add(f32x4.mul(u0, u0), f32x4.mul(u1, u1)), f32x4.add(f32x4.mul(u2, u2), f32x4.mul(u3, u3)));
        v128.store(t32 + k, f32x4.add(v128.load(t32 + k), sq));
      }
    } else if (n == 4) {
      for (let k: usize = 0; k < vecBytes; k += 16) {
        const u0 = v128.load(a0 + k);
        const u1 = v128.load(a0 + stride + k);
        const u2 = v128.load(a0 + 2 * stride + k);
        const u3 = v128.load(a0 + 3 * stride + k);
        v128.store(s32 + k, f32x4.add(v128.load(s32 + k), f32x4.add(f32x4.add(u0, u1), f32x4.add(u2, u3))));
        const dot0 = f32x4.add(f32x4.mul(u0, v128.load(b0 + k)), f32x4.mul(u1, v128.load(b0 + stride + k)));
        const dot1 = f32x4.add(f32x4.mul(u2, v128.load(b0 + 2 * stride + k)), f32x4.mul(u3, v128.load(b0 + 3 * stride + k)));
        v128.store(t32 + k, f32x4.add(v128.load(t32 + k), f32x4.add(dot0, dot1)));
      }
    } else {
      for (let k: usize = 0; k < vecBytes; k += 16) {
        const u = mode == 0 ? f32x4.sub(v128.load(a0 + k), v128.load(shift + k)) : v128.load(a0 + k);
        v128.store(s32 + k, f32x4.add(v128.load(s32 + k), u));
        v128.store(t32 + k, f32x4.add(v128.load(t32 + k), f32x4.mul(u, mode == 0 ? u : v128.load(b0 + k))));
      }
    }
    for (let c = cols & ~3; c < cols; c++) {
      for (let q = 0; q < n; q++) {
        const u = load<f32>(f(a0, q * cols + c)) - (mode == 0 ? load<f32>(f(shift, c)) : 0);
        store<f32>(f(s32, c), load<f32>(f(s32, c)) + u);
        store<f32>(f(t32, c), load<f32>(f(t32, c)) + u * (mode == 0 ? u : load<f32>(f(b0, q * cols + c))));
      }
    }
    r += n;
  }
}

/**
 * Phase A item j of n: the sums of blocks [j·nb/n, (j+1)·nb/n) of the nb blocks, each into its own slot.
 * Contiguous rows per item, as in phase C, so a thread that takes the same item numbers in both finds
 * its rows still in its own cache.
 */
function blockItem(mode: i32, a: usize, b: usize, j: i32, n: i32, rows: i32, cols: i32, scratch: usize): void {
  const nb = blockCount(rows);
  for (let k = rowStart(j, n, nb); k < rowStart(j + 1, n, nb); k++) {
    const s32 = BLOCK(scratch, cols, k);
    blockSums(mode, a, b, k * FLUSH, min(rows, (k + 1) * FLUSH), cols, s32, f(s32, cols));
  }
}

/** s64[c], t64[c] = the blocks' sums added in f64, in block order, for channels [c0, c1). */
function addBlocks(rows: i32, channels: i32, c0: i32, c1: i32, scratch: usize): void {
  const s64 = S64(scratch), t64 = T64(scratch, channels);
  const blocks = blockCount(rows);
  for (let c = c0; c < c1; c++) {
    let s: f64 = 0, t: f64 = 0;
    for (let k = 0; k < blocks; k++) {
      const s32 = BLOCK(scratch, channels, k);
      s += <f64>load<f32>(f(s32, c));
      t += <f64>load<f32>(f(s32, channels + c));
    }
    store<f64>(d(s64, c), s);
    store<f64>(d(t64, c), t);
  }
}

// ---- L > 1: reductions of contiguous runs ----

/** Σ x over n floats at p (four accumulators: with two, f32x4.add's latency would bound the loop). */
function chunkSum(p: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = f32x4.add(s0, v128.load(f(p, i)));
    s1 = f32x4.add(s1, v128.load(f(p, i + 4)));
    s2 = f32x4.add(s2, v128.load(f(p, i + 8)));
    s3 = f32x4.add(s3, v128.load(f(p, i + 12)));
  }
  for (; i + 4 <= n; i += 4) s0 = f32x4.add(s0, v128.load(f(p, i)));
  let s = hsum(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3)));
  for (; i < n; i++) s += load<f32>(f(p, i));
  return s;
}

/** Σ (x - mu)² over n floats at p. */
function chunkSquares(p: usize, n: i32, mu: f32): f32 {
  const m = f32x4.splat(mu);
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const u0 = f32x4.sub(v128.load(f(p, i)), m);
    const u1 = f32x4.sub(v128.load(f(p, i + 4)), m);
    const u2 = f32x4.sub(v128.load(f(p, i + 8)), m);
    const u3 = f32x4.sub(v128.load(f(p, i + 12)), m);
    s0 = f32x4.add(s0, f32x4.mul(u0, u0));
    s1 = f32x4.add(s1, f32x4.mul(u1, u1));
    s2 = f32x4.add(s2, f32x4.mul(u2, u2));
    s3 = f32x4.add(s3, f32x4.mul(u3, u3));
  }
  for (; i + 4 <= n; i += 4) {
    const u = f32x4.sub(v128.load(f(p, i)), m);
    s0 = f32x4.add(s0, f32x4.mul(u, u));
  }
  let s = hsum(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3)));
  for (; i < n; i++) {
    const u = load<f32>(f(p, i)) - mu;
    s += u * u;
  }
  return s;
}

/** Σ a and Σ a·b over n floats: returned as the two low f32 lanes. */
function chunkDot(a: usize, b: usize, n: i32): v128 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let t0 = f32x4.splat(0), t1 = f32x4.splat(0), t2 = f32x4.splat(0), t3 = f32x4.splat(0);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const a0 = v128.load(f(a, i)), a1 = v128.load(f(a, i + 4)), a2 = v128.load(f(a, i + 8)), a3 = v128.load(f(a, i + 12));
    s0 = f32x4.add(s0, a0);
    s1 = f32x4.add(s1, a1);
    s2 = f32x4.add(s2, a2);
    s3 = f32x4.add(s3, a3);
    t0 = f32x4.add(t0, f32x4.mul(a0, v128.load(f(b, i))));
    t1 = f32x4.add(t1, f32x4.mul(a1, v128.load(f(b, i + 4))));
    t2 = f32x4.add(t2, f32x4.mul(a2, v128.load(f(b, i + 8))));
    t3 = f32x4.add(t3, f32x4.mul(a3, v128.load(f(b, i + 12))));
  }
  for (; i + 4 <= n; i += 4) {
    const a0 = v128.load(f(a, i));
    s0 = f32x4.add(s0, a0);
    t0 = f32x4.add(t0, f32x4.mul(a0, v128.load(f(b, i))));
  }
  let s = hsum(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3)));
  let t = hsum(f32x4.add(f32x4.add(t0, t1), f32x4.add(t2, t3)));
  for (; i < n; i++) {
    const av = load<f32>(f(a, i));
    s += av;
    t += av * load<f32>(f(b, i));
  }
  return f32x4.replace_lane(f32x4.splat(s), 1, t);
}

/** Per-channel mean and biased variance of channels [c0, c1) (L > 1, more than SMALL values), into mean, variance. */
function momentsOfRuns(x: usize, mean: usize, variance: usize, batch: i32, channels: i32, inner: i32, c0: i32, c1: i32, scratch: usize): void {
  // s64 = running mean, t64 = running M2 per channel; every chunk has L values.
  const s64 = S64(scratch), t64 = T64(scratch, channels);
  memory.fill(d(s64, c0), 0, (<usize>(c1 - c0)) << 3);
  memory.fill(d(t64, c0), 0, (<usize>(c1 - c0)) << 3);
  for (let b = 0; b < batch; b++) {
    const na = <f64>b * <f64>inner;
    const nb = <f64>inner;
    const n = na + nb;
    for (let c = c0; c < c1; c++) {
      const p = f(x, (b * channels + c) * inner);
      const mb = <f64>chunkSum(p, inner) / nb;
      const m2b = <f64>chunkSquares(p, inner, <f32>mb);
      const ma = load<f64>(d(s64, c));
      const delta = mb - ma;
      store<f64>(d(s64, c), ma + (delta * nb) / n);
      store<f64>(d(t64, c), load<f64>(d(t64, c)) + m2b + (delta * delta * na * nb) / n);
    }
  }
  const count = <f64>batch * <f64>inner;
  for (let c = c0; c < c1; c++) {
    store<f32>(f(mean, c), <f32>load<f64>(d(s64, c)));
    store<f32>(f(variance, c), <f32>(load<f64>(d(t64, c)) / count));
  }
}

/**
 * Per-channel Σ dy (into s64) and Σ dy·xhat (into t64), f64 [C], for channels [c0, c1) with L > 1 or at
 * most SMALL values (scalar f64 then, see SMALL); L = 1 goes through blockSums and addBlocks.
 */
function rangeSums(dy: usize, xhat: usize, batch: i32, channels: i32, inner: i32, c0: i32, c1: i32, scratch: usize): void {
  const s64 = S64(scratch), t64 = T64(scratch, channels);
  if (<f64>batch * <f64>inner <= SMALL) {
    smallSums(dy, xhat, batch, channels, inner, c0, c1, s64, t64);
    return;
  }
  memory.fill(d(s64, c0), 0, (<usize>(c1 - c0)) << 3);
  memory.fill(d(t64, c0), 0, (<usize>(c1 - c0)) << 3);
  for (let b = 0; b < batch; b++) {
    for (let c = c0; c < c1; c++) {
      const o = (b * channels + c) * inner;
      const st = chunkDot(f(dy, o), f(xhat, o), inner);
      store<f64>(d(s64, c), load<f64>(d(s64, c)) + <f64>f32x4.extract_lane(st, 0));
      store<f64>(d(t64, c), load<f64>(d(t64, c)) + <f64>f32x4.extract_lane(st, 1));
    }
  }
}

/** dGamma[c] += Σ dy·xhat, dBeta[c] += Σ dy (pointers may be 0), rounded once, as the reference does. */
function addParameterGrads(dGamma: usize, dBeta: usize, channels: i32, c0: i32, c1: i32, scratch: usize): void {
  const s64 = S64(scratch), t64 = T64(scratch, channels);
  for (let c = c0; c < c1; c++) {
    if (dGamma) store<f32>(f(dGamma, c), <f32>(<f64>load<f32>(f(dGamma, c)) + load<f64>(d(t64, c))));
    if (dBeta) store<f32>(f(dBeta, c), <f32>(<f64>load<f32>(f(dBeta, c)) + load<f64>(d(s64, c))));
  }
}

/**
 * dx = gamma·invStd/count · (count·dy - Σdy - xhat·Σ(dy·xhat)), written as dx = p·dy + q + r·xhat:
 * the per-channel p, q, r (COEF) for channels [c0, c1), from the f64 sums over `count` values.
 */
function gradCoefficients(invStd: usize, gamma: usize, count: f64, channels: i32, c0: i32, c1: i32, scratch: usize): void {
  const s64 = S64(scratch), t64 = T64(scratch, channels);
  const pP = COEF(scratch, channels), pQ = f(pP, channels), pR = f(pP, 2 * channels);
  for (let c = c0; c < c1; c++) {
    const g = gamma ? <f64>load<f32>(f(gamma, c)) : 1.0;
    const k = (g * <f64>load<f32>(f(invStd, c))) / count;
    store<f32>(f(pP, c), <f32>(k * count));
    store<f32>(f(pQ, c), <f32>(-k * load<f64>(d(s64, c))));
    store<f32>(f(pR, c), <f32>(-k * load<f64>(d(t64, c))));
  }
}

/** dx for channels [c0, c1) from the f64 sums: p, q, r, then one pass; channels of at most SMALL values in scalar f64 (see SMALL). */
function inputGrad(dy: usize, xhat: usize, invStd: usize, gamma: usize, count: f64, dx: usize, batch: i32, channels: i32, inner: i32, c0: i32, c1: i32, scratch: usize): void {
  if (count <= SMALL) {
    smallInputGrad(dy, xhat, invStd, gamma, count, dx, batch, channels, inner, c0, c1, scratch);
    return;
  }
  gradCoefficients(invStd, gamma, count, channels, c0, c1, scratch);
  const pP = COEF(scratch, channels);
  applyAffineGrad(dy, xhat, dx, pP, f(pP, channels), f(pP, 2 * channels), batch, channels, inner, c0, c1);
}

/** Phase C item j of n (L = 1): dx = p·dy + q + r·xhat on its rows, with the coefficients of every channel (or dx = p·dy without q). */
function affineGradRows(dy: usize, xhat: usize, dx: usize, q: bool, j: i32, n: i32, batch: i32, channels: i32, scratch: usize): void {
  const r0 = rowStart(j, n, batch), r1 = rowStart(j + 1, n, batch);
  const o = (<usize>r0 * <usize>channels) << 2;
  const pP = COEF(scratch, channels);
  if (r0 < r1) applyAffineGrad(dy + o, xhat + o, dx + o, pP, q ? f(pP, channels) : 0, q ? f(pP, 2 * channels) : 0, r1 - r0, channels, 1, 0, channels);
}

// ---- the kernels ----

/**
 * Per-channel mean and biased variance, in one pass over memory. L = 1 sums (x - x[0,c]) and its square
 * (shifting by a sample of the channel keeps E[u²] - E[u]² from cancelling); L > 1 reduces each chunk
 * twice while it is in L1 (exact two-pass mean and squared deviations) and merges chunks with Chan's
 * formula: M2 = M2a + M2b + δ²·na·nb/(na+nb). Phases: A (L = 1), B.
 */
export function channelMoments(x: usize, mean: usize, variance: usize, batch: i32, channels: i32, inner: i32, scratch: usize, claims: usize, chunks: i32, thread: i32): void {
  const count = <f64>batch * <f64>inner;
  const na = byRows(batch, inner) ? 1 : 0;
  const items = (na + 1) * chunks;
  for (let k = 0; k < items; k++) {
    const i = itemAt(k, chunks, thread);
    if (!claim(claims, i)) continue;
    const phase = i / chunks, j = i % chunks;
    waitForItems(claims, i - j);
    if (phase < na) {
      blockItem(0, x, 0, j, chunks, batch, channels, scratch);
    } else {
      const c0 = channelStart(j, chunks, channels, inner), c1 = channelStart(j + 1, chunks, channels, inner);
      if (count <= SMALL) {
        smallMoments(x, mean, variance, batch, channels, inner, c0, c1, scratch);
      } else if (inner == 1) {
        addBlocks(batch, channels, c0, c1, scratch);
        const s64 = S64(scratch), t64 = T64(scratch, channels);
        for (let c = c0; c < c1; c++) {
          const m1 = load<f64>(d(s64, c)) / count;
          store<f32>(f(mean, c), <f32>(<f64>load<f32>(f(x, c)) + m1));
          store<f32>(f(variance, c), <f32>max(load<f64>(d(t64, c)) / count - m1 * m1, 0));
        }
      } else {
        momentsOfRuns(x, mean, variance, batch, channels, inner, c0, c1, scratch);
      }
    }
    itemDone(claims);
  }
}

/**
 * y = xhat·scale[c] + shift[c], xhat = (x - mean[c])·invStd[c]; xhat is stored when its pointer is not 0.
 * A 0 scale or shift pointer means 1 or 0 (no affine parameters). One phase: C (L = 1) or B.
 */
export function batchNormApply(x: usize, mean: usize, invStd: usize, scale: usize, shift: usize, y: usize, xhat: usize, batch: i32, channels: i32, inner: i32, claims: usize, chunks: i32, thread: i32): void {
  for (let k = 0; k < chunks; k++) {
    const j = itemAt(k, chunks, thread);
    if (!claim(claims, j)) continue;
    if (inner == 1) {
      const r0 = rowStart(j, chunks, batch), r1 = rowStart(j + 1, chunks, batch);
      const o = (<usize>r0 * <usize>channels) << 2;
      if (r0 < r1) applyRange(x + o, mean, invStd, scale, shift, y + o, xhat ? xhat + o : 0, r1 - r0, channels, 1, 0, channels);
    } else {
      const c0 = channelStart(j, chunks, channels, inner), c1 = channelStart(j + 1, chunks, channels, inner);
      if (c0 < c1) applyRange(x, mean, invStd, scale, shift, y, xhat, batch, channels, inner, c0, c1);
    }
  }
}

/**
 * Training-mode backward: the two reductions (Σdy and Σdy·xhat per channel), the parameter gradients,
 * then dx from the sums. batchNormBackwardReduce and batchNormBackwardInput are its two halves.
 * Phases: A, B, C (L = 1) or B.
 */
export function batchNormBackward(dy: usize, xhat: usize, invStd: usize, gamma: usize, dx: usize, dGamma: usize, dBeta: usize, batch: i32, channels: i32, inner: i32, scratch: usize, claims: usize, chunks: i32, thread: i32): void {
  const count = <f64>batch * <f64>inner;
  const rows = byRows(batch, inner);
  const phases = rows ? 3 : 1;
  const items = phases * chunks;
  for (let k = 0; k < items; k++) {
    const i = itemAt(k, chunks, thread);
    if (!claim(claims, i)) continue;
    const phase = i / chunks + (rows ? 0 : 1), j = i % chunks; // 0 = A, 1 = B, 2 = C
    waitForItems(claims, i - j);
    if (phase == 0) {
      blockItem(1, dy, xhat, j, chunks, batch, channels, scratch);
    } else if (phase == 1) {
      const c0 = channelStart(j, chunks, channels, inner), c1 = channelStart(j + 1, chunks, channels, inner);
      if (rows) addBlocks(batch, channels, c0, c1, scratch);
      else rangeSums(dy, xhat, batch, channels, inner, c0, c1, scratch);
      addParameterGrads(dGamma, dBeta, channels, c0, c1, scratch);
      if (rows) gradCoefficients(invStd, gamma, count, channels, c0, c1, scratch);
      else inputGrad(dy, xhat, invStd, gamma, count, dx, batch, channels, inner, c0, c1, scratch);
    } else {
      affineGradRows(dy, xhat, dx, true, j, chunks, batch, channels, scratch);
    }
    itemDone(claims);
  }
}

/** The reductions of batchNormBackward, written: sumDy[c] = Σ dy, sumDyXhat[c] = Σ dy·xhat. Phases: A (L = 1), B. */
export function batchNormBackwardReduce(dy: usize, xhat: usize, sumDy: usize, sumDyXhat: usize, batch: i32, channels: i32, inner: i32, scratch: usize, claims: usize, chunks: i32, thread: i32): void {
  const na = byRows(batch, inner) ? 1 : 0;
  const s64 = S64(scratch), t64 = T64(scratch, channels);
  const items = (na + 1) * chunks;
  for (let k = 0; k < items; k++) {
    const i = itemAt(k, chunks, thread);
    if (!claim(claims, i)) continue;
    const phase = i / chunks, j = i % chunks;
    waitForItems(claims, i - j);
    if (phase < na) {
      blockItem(1, dy, xhat, j, chunks, batch, channels, scratch);
    } else {
      const c0 = channelStart(j, chunks, channels, inner), c1 = channelStart(j + 1, chunks, channels, inner);
      if (na) addBlocks(batch, channels, c0, c1, scratch);
      else rangeSums(dy, xhat, batch, channels, inner, c0, c1, scratch);
      for (let c = c0; c < c1; c++) {
        store<f32>(f(sumDy, c), <f32>load<f64>(d(s64, c)));
        store<f32>(f(sumDyXhat, c), <f32>load<f64>(d(t64, c)));
      }
    }
    itemDone(claims);
  }
}

/** dx of batchNormBackward from given sums over `count` values per channel (the whole, possibly sharded, batch). Phases: B, C (L = 1). */
export function batchNormBackwardInput(dy: usize, xhat: usize, invStd: usize, gamma: usize, sumDy: usize, sumDyXhat: usize, count: f64, dx: usize, batch: i32, channels: i32, inner: i32, scratch: usize, claims: usize, chunks: i32, thread: i32): void {
  const rows = byRows(batch, inner);
  const s64 = S64(scratch), t64 = T64(scratch, channels);
  const items = (rows ? 2 : 1) * chunks;
  for (let k = 0; k < items; k++) {
    const i = itemAt(k, chunks, thread);
    if (!claim(claims, i)) continue;
    const j = i % chunks;
    waitForItems(claims, i - j);
    if (i < chunks) {
      const c0 = channelStart(j, chunks, channels, inner), c1 = channelStart(j + 1, chunks, channels, inner);
      for (let c = c0; c < c1; c++) {
        store<f64>(d(s64, c), <f64>load<f32>(f(sumDy, c)));
        store<f64>(d(t64, c), <f64>load<f32>(f(sumDyXhat, c)));
      }
      if (rows) gradCoefficients(invStd, gamma, count, channels, c0, c1, scratch);
      else inputGrad(dy, xhat, invStd, gamma, count, dx, batch, channels, inner, c0, c1, scratch);
    } else {
      affineGradRows(dy, xhat, dx, true, j, chunks, batch, channels, scratch);
    }
    itemDone(claims);
  }
}

/**
 * Eval-mode backward (constant statistics): dx = dy·gamma·invStd, plus the same parameter gradients.
 * Phases: A (L = 1, with gradients), B, C (L = 1).
 */
export function batchNormBackwardFixedStats(dy: usize, xhat: usize, invStd: usize, gamma: usize, dx: usize, dGamma: usize, dBeta: usize, batch: i32, channels: i32, inner: i32, scratch: usize, claims: usize, chunks: i32, thread: i32): void {
  const grads = dGamma != 0 || dBeta != 0;
  const rows = byRows(batch, inner);
  const na = rows && grads ? 1 : 0;
  const coef = COEF(scratch, channels);
  const items = (na + 1 + (rows ? 1 : 0)) * chunks;
  for (let k = 0; k < items; k++) {
    const i = itemAt(k, chunks, thread);
    if (!claim(claims, i)) continue;
    const phase = i / chunks + 1 - na, j = i % chunks; // 0 = A, 1 = B, 2 = C
    waitForItems(claims, i - j);
    if (phase == 0) {
      blockItem(1, dy, xhat, j, chunks, batch, channels, scratch);
    } else if (phase == 1) {
      const c0 = channelStart(j, chunks, channels, inner), c1 = channelStart(j + 1, chunks, channels, inner);
      if (grads) {
        if (rows) addBlocks(batch, channels, c0, c1, scratch);
        else rangeSums(dy, xhat, batch, channels, inner, c0, c1, scratch);
        addParameterGrads(dGamma, dBeta, channels, c0, c1, scratch);
      }
      for (let c = c0; c < c1; c++) store<f32>(f(coef, c), (gamma ? load<f32>(f(gamma, c)) : 1) * load<f32>(f(invStd, c)));
      if (!rows) applyAffineGrad(dy, xhat, dx, coef, 0, 0, batch, channels, inner, c0, c1);
    } else {
      affineGradRows(dy, xhat, dx, false, j, chunks, batch, channels, scratch);
    }
    itemDone(claims);
  }
}

/** batchNormApply on channels [c0, c1). */
function applyRange(x: usize, mean: usize, invStd: usize, scale: usize, shift: usize, y: usize, xhat: usize, batch: i32, channels: i32, inner: i32, c0: i32, c1: i32): void {
  const one = f32x4.splat(1);
  const zero = f32x4.splat(0);
  if (inner == 1) {
    // Rows in order, the [C] parameter arrays staying in L1; the common case (affine, xhat kept) takes
    // two rows per pass without per-vector tests.
    const cv = c0 + ((c1 - c0) & ~3);
    for (let b = 0; b < batch; b++) {
      const o = b * channels;
      const px = f(x, o), py = f(y, o), ph = f(xhat, o);
      let c = c0;
      if (scale && shift && xhat && b + 1 < batch) {
        // Two rows per pass: each parameter vector loaded once for both.
        const stride = (<usize>channels) << 2;
        const px1 = px + stride, py1 = py + stride, ph1 = ph + stride;
        const c8 = c0 + ((c1 - c0) & ~7);
        for (; c < c8; c += 8) {
          const k = (<usize>c) << 2;
          const pm = mean + k, pi = invStd + k, pg = scale + k, ps = shift + k;
          const m = v128.load(pm), is = v128.load(pi), g = v128.load(pg), s = v128.load(ps);
          const m4 = v128.load(pm, 16), is4 = v128.load(pi, 16), g4 = v128.load(pg, 16), s4 = v128.load(ps, 16);
          const a0 = px + k, a1 = px1 + k, e0 = ph + k, e1 = ph1 + k, o0 = py + k, o1 = py1 + k;
          const h0 = f32x4.mul(f32x4.sub(v128.load(a0), m), is);
          const h1 = f32x4.mul(f32x4.sub(v128.load(a1), m), is);
          const h2 = f32x4.mul(f32x4.sub(v128.load(a0, 16), m4), is4);
          const h3 = f32x4.mul(f32x4.sub(v128.load(a1, 16), m4), is4);
          v128.store(e0, h0);
          v128.store(e1, h1);
          v128.store(e0, h2, 16);
          v128.store(e1, h3, 16);
          v128.store(o0, madd(h0, g, s));
          v128.store(o1, madd(h1, g, s));
          v128.store(o0, madd(h2, g4, s4), 16);
          v128.store(o1, madd(h3, g4, s4), 16);
        }
        for (; c < cv; c += 4) {
          const k = (<usize>c) << 2;
          const m = v128.load(mean + k), is = v128.load(invStd + k), g = v128.load(scale + k), s = v128.load(shift + k);
          const h0 = f32x4.mul(f32x4.sub(v128.load(px + k), m), is);
          const h1 = f32x4.mul(f32x4.sub(v128.load(px + stride + k), m), is);
          v128.store(ph + k, h0);
          v128.store(ph + stride + k, h1);
          v128.store(py + k, madd(h0, g, s));
          v128.store(py + stride + k, madd(h1, g, s));
        }
        for (; c < c1; c++) {
          for (let q = 0; q < 2; q++) {
            const h = (load<f32>(f(px, q * channels + c)) - load<f32>(f(mean, c))) * load<f32>(f(invStd, c));
            store<f32>(f(ph, q * channels + c), h);
            store<f32>(f(py, q * channels + c), h * load<f32>(f(scale, c)) + load<f32>(f(shift, c)));
          }
        }
        b++;
        continue;
      }
      for (; c < cv; c += 4) {
        const k = (<usize>c) << 2;
        const h = f32x4.mul(f32x4.sub(v128.load(px + k), v128.load(mean + k)), v128.load(invStd + k));
        if (xhat) v128.store(ph + k, h);
        const g = scale ? v128.load(scale + k) : one;
        const s = shift ? v128.load(shift + k) : zero;
        v128.store(py + k, madd(h, g, s));
      }
      for (; c < c1; c++) {
        const h = (load<f32>(f(px, c)) - load<f32>(f(mean, c))) * load<f32>(f(invStd, c));
        if (xhat) store<f32>(f(ph, c), h);
        store<f32>(f(py, c), h * (scale ? load<f32>(f(scale, c)) : 1) + (shift ? load<f32>(f(shift, c)) : 0));
      }
    }
    return;
  }
  for (let b = 0; b < batch; b++) {
    for (let c = c0; c < c1; c++) {
      const o = (b * channels + c) * inner;
      const mu = load<f32>(f(mean, c));
      const is = load<f32>(f(invStd, c));
      const g = scale ? load<f32>(f(scale, c)) : 1;
      const s = shift ? load<f32>(f(shift, c)) : 0;
      const muV = f32x4.splat(mu), isV = f32x4.splat(is), gV = f32x4.splat(g), sV = f32x4.splat(s);
      const px = f(x, o), py = f(y, o);
      let l = 0;
      if (xhat) {
        const ph = f(xhat, o);
        for (; l + 4 <= inner; l += 4) {
          const h = f32x4.mul(f32x4.sub(v128.load(f(px, l)), muV), isV);
          v128.store(f(ph, l), h);
          v128.store(f(py, l), madd(h, gV, sV));
        }
        for (; l < inner; l++) {
          const h = (load<f32>(f(px, l)) - mu) * is;
          store<f32>(f(ph, l), h);
          store<f32>(f(py, l), h * g + s);
        }
      } else {
        for (; l + 4 <= inner; l += 4) {
          const h = f32x4.mul(f32x4.sub(v128.load(f(px, l)), muV), isV);
          v128.store(f(py, l), madd(h, gV, sV));
        }
        for (; l < inner; l++) store<f32>(f(py, l), (load<f32>(f(px, l)) - mu) * is * g + s);
      }
    }
  }
}

/** dx = p[c]·dy + q[c] + r[c]·xhat for channels [c0, c1) (q, r pointers 0 = zero terms). */
function applyAffineGrad(dy: usize, xhat: usize, dx: usize, pP: usize, pQ: usize, pR: usize, batch: i32, channels: i32, inner: i32, c0: i32, c1: i32): void {
  if (inner == 1) {
    const cv = c0 + ((c1 - c0) & ~3);
    for (let b = 0; b < batch; b++) {
      const o = b * channels;
      const pdy = f(dy, o), ph = f(xhat, o), pdx = f(dx, o);
      let c = c0;
      if (pQ && b + 1 < batch) {
        // Two rows per pass: each coefficient vector loaded once for both.
        const stride = (<usize>channels) << 2;
        for (; c < cv; c += 4) {
          const k = (<usize>c) << 2;
          const p = v128.load(pP + k), q = v128.load(pQ + k), r = v128.load(pR + k);
          v128.store(pdx + k, f32x4.add(f32x4.add(f32x4.mul(p, v128.load(pdy + k)), q), f32x4.mul(r, v128.load(ph + k))));
          v128.store(pdx + stride + k, f32x4.add(f32x4.add(f32x4.mul(p, v128.load(pdy + stride + k)), q), f32x4.mul(r, v128.load(ph + stride + k))));
        }
        for (; c < c1; c++) {
          for (let j = 0; j < 2; j++) {
            const o2 = j * channels + c;
            store<f32>(f(pdx, o2), load<f32>(f(pP, c)) * load<f32>(f(pdy, o2)) + load<f32>(f(pQ, c)) + load<f32>(f(pR, c)) * load<f32>(f(ph, o2)));
          }
        }
        b++;
      } else if (pQ) {
        for (; c < cv; c += 4) {
          const k = (<usize>c) << 2;
          v128.store(pdx + k, f32x4.add(f32x4.add(f32x4.mul(v128.load(pP + k), v128.load(pdy + k)), v128.load(pQ + k)), f32x4.mul(v128.load(pR + k), v128.load(ph + k))));
        }
        for (; c < c1; c++) store<f32>(f(pdx, c), load<f32>(f(pP, c)) * load<f32>(f(pdy, c)) + load<f32>(f(pQ, c)) + load<f32>(f(pR, c)) * load<f32>(f(ph, c)));
      } else {
        for (; c < cv; c += 4) {
          const k = (<usize>c) << 2;
          v128.store(pdx + k, f32x4.mul(v128.load(pP + k), v128.load(pdy + k)));
        }
        for (; c < c1; c++) store<f32>(f(pdx, c), load<f32>(f(pP, c)) * load<f32>(f(pdy, c)));
      }
    }
    return;
  }
  for (let b = 0; b < batch; b++) {
    for (let c = c0; c < c1; c++) {
      const o = (b * channels + c) * inner;
      const p = load<f32>(f(pP, c));
      const pv = f32x4.splat(p);
      const pdy = f(dy, o), pdx = f(dx, o);
      let l = 0;
      if (pQ) {
        const q = load<f32>(f(pQ, c)), r = load<f32>(f(pR, c));
        const qv = f32x4.splat(q), rv = f32x4.splat(r);
        const ph = f(xhat, o);
        for (; l + 4 <= inner; l += 4) {
          v128.store(f(pdx, l), f32x4.add(f32x4.add(f32x4.mul(pv, v128.load(f(pdy, l))), qv), f32x4.mul(rv, v128.load(f(ph, l)))));
        }
        for (; l < inner; l++) store<f32>(f(pdx, l), p * load<f32>(f(pdy, l)) + q + r * load<f32>(f(ph, l)));
      } else {
        for (; l + 4 <= inner; l += 4) v128.store(f(pdx, l), f32x4.mul(pv, v128.load(f(pdy, l))));
        for (; l < inner; l++) store<f32>(f(pdx, l), p * load<f32>(f(pdy, l)));
      }
    }
  }
}

// Channels of at most SMALL values (see SMALL): f64 throughout, the reference's arithmetic, walking the
// tensor in memory order with per-channel f64 totals in scratch (a channel at a time would stride
// through memory C·L floats per value).

/** channelMoments for channels [c0, c1) of at most SMALL values: two passes (mean, then squared deviations). */
function smallMoments(x: usize, mean: usize, variance: usize, batch: i32, channels: i32, inner: i32, c0: i32, c1: i32, scratch: usize): void {
  const count = <f64>batch * <f64>inner;
  const s64 = S64(scratch), t64 = T64(scratch, channels);
  memory.fill(d(s64, c0), 0, (<usize>(c1 - c0)) << 3);
  memory.fill(d(t64, c0), 0, (<usize>(c1 - c0)) << 3);
  for (let b = 0; b < batch; b++) {
    for (let c = c0; c < c1; c++) {
      const o = (b * channels + c) * inner;
      let sum = load<f64>(d(s64, c));
      for (let l = 0; l < inner; l++) sum += <f64>load<f32>(f(x, o + l));
      store<f64>(d(s64, c), sum);
    }
  }
  for (let c = c0; c < c1; c++) store<f64>(d(s64, c), load<f64>(d(s64, c)) / count);
  for (let b = 0; b < batch; b++) {
    for (let c = c0; c < c1; c++) {
      const o = (b * channels + c) * inner;
      const mu = load<f64>(d(s64, c));
      let sq = load<f64>(d(t64, c));
      for (let l = 0; l < inner; l++) {
        const u = <f64>load<f32>(f(x, o + l)) - mu;
        sq += u * u;
      }
      store<f64>(d(t64, c), sq);
    }
  }
  for (let c = c0; c < c1; c++) {
    store<f32>(f(mean, c), <f32>load<f64>(d(s64, c)));
    store<f32>(f(variance, c), <f32>(load<f64>(d(t64, c)) / count));
  }
}

/** backward sums (Σdy, Σdy·xhat into s64, t64) for channels [c0, c1) of at most SMALL values. */
function smallSums(dy: usize, xhat: usize, batch: i32, channels: i32, inner: i32, c0: i32, c1: i32, s64: usize, t64: usize): void {
  memory.fill(d(s64, c0), 0, (<usize>(c1 - c0)) << 3);
  memory.fill(d(t64, c0), 0, (<usize>(c1 - c0)) << 3);
  for (let b = 0; b < batch; b++) {
    for (let c = c0; c < c1; c++) {
      const o = (b * channels + c) * inner;
      let sumDy = load<f64>(d(s64, c)), sumDyXhat = load<f64>(d(t64, c));
      for (let l = 0; l < inner; l++) {
        const g = <f64>load<f32>(f(dy, o + l));
        sumDy += g;
        sumDyXhat += g * <f64>load<f32>(f(xhat, o + l));
      }
      store<f64>(d(s64, c), sumDy);
      store<f64>(d(t64, c), sumDyXhat);
    }
  }
}

/** inputGrad for channels [c0, c1) of at most SMALL values: k = gamma·invStd/count per channel (f64, in COEF), then dx. */
function smallInputGrad(dy: usize, xhat: usize, invStd: usize, gamma: usize, count: f64, dx: usize, batch: i32, channels: i32, inner: i32, c0: i32, c1: i32, scratch: usize): void {
  const s64 = S64(scratch), t64 = T64(scratch, channels), k64 = COEF(scratch, channels);
  for (let c = c0; c < c1; c++) store<f64>(d(k64, c), ((gamma ? <f64>load<f32>(f(gamma, c)) : 1.0) * <f64>load<f32>(f(invStd, c))) / count);
  for (let b = 0; b < batch; b++) {
    for (let c = c0; c < c1; c++) {
      const o = (b * channels + c) * inner;
      const sumDy = load<f64>(d(s64, c)), sumDyXhat = load<f64>(d(t64, c)), k = load<f64>(d(k64, c));
      for (let l = 0; l < inner; l++) {
        store<f32>(f(dx, o + l), <f32>(k * (count * <f64>load<f32>(f(dy, o + l)) - sumDy - <f64>load<f32>(f(xhat, o + l)) * sumDyXhat)));
      }
    }
  }
}

/**
 * batchNormStatistics: invStd = 1/√(var + eps) and, when the running arrays are given (non-zero), the
 * running averages; scalar f64, the reference's arithmetic (per channel, so nothing to vectorize for).
 */
export function batchNormStatistics(mean: usize, variance: usize, invStd: usize, eps: f64, runningMean: usize, runningVar: usize, momentum: f64, unbias: f64, channels: i32): void {
  const keep = 1 - momentum;
  for (let c = 0; c < channels; c++) {
    const v = <f64>load<f32>(f(variance, c));
    store<f32>(f(invStd, c), <f32>(1 / Math.sqrt(v + eps)));
    if (runningMean) {
      store<f32>(f(runningMean, c), <f32>(keep * <f64>load<f32>(f(runningMean, c)) + momentum * <f64>load<f32>(f(mean, c))));
      store<f32>(f(runningVar, c), <f32>(keep * <f64>load<f32>(f(runningVar, c)) + momentum * (v * unbias)));
    }
  }
}
