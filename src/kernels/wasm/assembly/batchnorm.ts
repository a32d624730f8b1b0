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
 */

const FLUSH: i32 = 64;
/**
 * Channels with at most this many values (M = B·L) go through scalar f64 code, as in the reference: with
 * so few values dx can cancel to a millionth of its terms (M = 2 makes it exactly 0 but for eps), and
 * f32 arithmetic would leave only rounding noise. Such channels are too small for SIMD to matter.
 */
const SMALL: f64 = 32;

// @ts-ignore: decorator
@inline function f(p: usize, i: i32): usize {
  return p + ((<usize>i) << 2);
}
// @ts-ignore: decorator
@inline function d(p: usize, i: i32): usize {
  return p + ((<usize>i) << 3);
}

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** dst64[c] += src32[c]; src32[c] = 0, for c < n. */
function flush(src32: usize, dst64: usize, n: i32): void {
  for (let c = 0; c < n; c++) {
    store<f64>(d(dst64, c), load<f64>(d(dst64, c)) + <f64>load<f32>(f(src32, c)));
    store<f32>(f(src32, c), 0);
  }
}

/**
 * Per-column sums over the rows of [R, C] (the L = 1 layout), into f64 s64 and t64 [C]:
 * mode 0: Σu and Σu² with u = a - shift[c] (moments about a shift);  mode 1: Σa and Σa·b (backward).
 * Rows are streamed in order, four at a time, into f32 sums in scratch32 (2·C floats, in L1) that are folded into the f64 totals every
 * FLUSH rows. Walking down the columns with the sums in registers instead is slower: with C a power of
 * two, every row of a column maps to the same L1 set.
 */
function columnSums(mode: i32, a: usize, b: usize, shift: usize, rows: i32, cols: i32, s64: usize, t64: usize, scratch32: usize): void {
  const s32 = scratch32;
  const t32 = f(scratch32, cols);
  memory.fill(s32, 0, (<usize>(2 * cols)) << 2);
  memory.fill(s64, 0, (<usize>cols) << 3);
  memory.fill(t64, 0, (<usize>cols) << 3);
  const stride = (<usize>cols) << 2;
  const vecBytes = (<usize>(cols & ~3)) << 2;
  const group = 4;
  let r = 0;
  while (r < rows) {
    const n = rows - r >= group ? group : 1;
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
    // Fold into f64 every FLUSH rows (groups divide FLUSH, so a group never straddles a fold).
    if ((r + n) % FLUSH == 0 || r + n == rows) {
      flush(s32, s64, cols);
      flush(t32, t64, cols);
    }
    r += n;
  }
}

/** Σ x over n floats at p. */
function chunkSum(p: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    s0 = f32x4.add(s0, v128.load(f(p, i)));
    s1 = f32x4.add(s1, v128.load(f(p, i + 4)));
  }
  for (; i + 4 <= n; i += 4) s0 = f32x4.add(s0, v128.load(f(p, i)));
  let s = hsum(f32x4.add(s0, s1));
  for (; i < n; i++) s += load<f32>(f(p, i));
  return s;
}

/** Σ (x - mu)² over n floats at p. */
function chunkSquares(p: usize, n: i32, mu: f32): f32 {
  const m = f32x4.splat(mu);
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const u0 = f32x4.sub(v128.load(f(p, i)), m);
    const u1 = f32x4.sub(v128.load(f(p, i + 4)), m);
    s0 = f32x4.add(s0, f32x4.mul(u0, u0));
    s1 = f32x4.add(s1, f32x4.mul(u1, u1));
  }
  for (; i + 4 <= n; i += 4) {
    const u = f32x4.sub(v128.load(f(p, i)), m);
    s0 = f32x4.add(s0, f32x4.mul(u, u));
  }
  let s = hsum(f32x4.add(s0, s1));
  for (; i < n; i++) {
    const u = load<f32>(f(p, i)) - mu;
    s += u * u;
  }
  return s;
}

/** Σ a and Σ a·b over n floats: returned as the two low f32 lanes. */
function chunkDot(a: usize, b: usize, n: i32): v128 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), t0 = f32x4.splat(0), t1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const a0 = v128.load(f(a, i));
    const a1 = v128.load(f(a, i + 4));
    s0 = f32x4.add(s0, a0);
    s1 = f32x4.add(s1, a1);
    t0 = f32x4.add(t0, f32x4.mul(a0, v128.load(f(b, i))));
    t1 = f32x4.add(t1, f32x4.mul(a1, v128.load(f(b, i + 4))));
  }
  for (; i + 4 <= n; i += 4) {
    const a0 = v128.load(f(a, i));
    s0 = f32x4.add(s0, a0);
    t0 = f32x4.add(t0, f32x4.mul(a0, v128.load(f(b, i))));
  }
  let s = hsum(f32x4.add(s0, s1));
  let t = hsum(f32x4.add(t0, t1));
  for (; i < n; i++) {
    const av = load<f32>(f(a, i));
    s += av;
    t += av * load<f32>(f(b, i));
  }
  return f32x4.replace_lane(f32x4.splat(s), 1, t);
}

/** Floats of scratch the batch-norm kernels need for C channels (f64 totals count double). */
export function batchNormScratchFloats(channels: i32): i32 {
  return 10 * channels + 16;
}

/**
 * Per-channel mean and biased variance. One pass over memory: L = 1 sums (x - x[0,c]) and its square
 * (shifting by a sample of the channel keeps E[u²] - E[u]² from cancelling); L > 1 reduces each chunk
 * twice while it is in L1 (exact two-pass mean and squared deviations) and merges chunks with Chan's
 * formula: M2 = M2a + M2b + δ²·na·nb/(na+nb).
 */
export function channelMoments(x: usize, mean: usize, variance: usize, batch: i32, channels: i32, inner: i32, scratch: usize): void {
  const count = <f64>batch * <f64>inner;
  if (count <= SMALL) {
    smallMoments(x, mean, variance, batch, channels, inner);
    return;
  }
  const s64 = scratch;
  const t64 = d(scratch, channels);
  const work = d(scratch, 2 * channels);
  if (inner == 1) {
    // The first row is the shift (copied: mean may be written while it is still needed).
    memory.copy(work, x, (<usize>channels) << 2);
    columnSums(0, x, 0, work, batch, channels, s64, t64, f(work, channels));
    for (let c = 0; c < channels; c++) {
      const m1 = load<f64>(d(s64, c)) / count;
      store<f32>(f(mean, c), <f32>(<f64>load<f32>(f(work, c)) + m1));
      store<f32>(f(variance, c), <f32>max(load<f64>(d(t64, c)) / count - m1 * m1, 0));
    }
    return;
  }
  // s64 = running mean, t64 = running M2 per channel; every chunk has L values.
  memory.fill(s64, 0, (<usize>(2 * channels)) << 3);
  for (let b = 0; b < batch; b++) {
    const na = <f64>b * <f64>inner;
    const nb = <f64>inner;
    const n = na + nb;
    for (let c = 0; c < channels; c++) {
      const p = f(x, (b * channels + c) * inner);
      const mb = <f64>chunkSum(p, inner) / nb;
      const m2b = <f64>chunkSquares(p, inner, <f32>mb);
      const ma = load<f64>(d(s64, c));
      const delta = mb - ma;
      store<f64>(d(s64, c), ma + (delta * nb) / n);
      store<f64>(d(t64, c), load<f64>(d(t64, c)) + m2b + (delta * delta * na * nb) / n);
    }
  }
  for (let c = 0; c < channels; c++) {
    store<f32>(f(mean, c), <f32>load<f64>(d(s64, c)));
    store<f32>(f(variance, c), <f32>(load<f64>(d(t64, c)) / count));
  }
}

/**
 * y = xhat·scale[c] + shift[c], xhat = (x - mean[c])·invStd[c]; xhat is stored when its pointer is not 0.
 * A 0 scale or shift pointer means 1 or 0 (no affine parameters).
 */
export function batchNormApply(x: usize, mean: usize, invStd: usize, scale: usize, shift: usize, y: usize, xhat: usize, batch: i32, channels: i32, inner: i32): void {
  const one = f32x4.splat(1);
  const zero = f32x4.splat(0);
  if (inner == 1) {
    // Rows in order, the [C] parameter arrays staying in L1; the common case (affine, xhat kept) takes
    // two rows per pass without per-vector tests.
    for (let b = 0; b < batch; b++) {
      const o = b * channels;
      const px = f(x, o), py = f(y, o), ph = f(xhat, o);
      let c = 0;
      if (scale && shift && xhat && b + 1 < batch) {
        // Two rows per pass: each parameter vector loaded once for both.
        const stride = (<usize>channels) << 2;
        for (; c + 4 <= channels; c += 4) {
          const k = (<usize>c) << 2;
          const m = v128.load(mean + k), is = v128.load(invStd + k), g = v128.load(scale + k), s = v128.load(shift + k);
          const h0 = f32x4.mul(f32x4.sub(v128.load(px + k), m), is);
          const h1 = f32x4.mul(f32x4.sub(v128.load(px + stride + k), m), is);
          v128.store(ph + k, h0);
          v128.store(ph + stride + k, h1);
          v128.store(py + k, f32x4.add(f32x4.mul(h0, g), s));
          v128.store(py + stride + k, f32x4.add(f32x4.mul(h1, g), s));
        }
        for (; c < channels; c++) {
          for (let q = 0; q < 2; q++) {
            const h = (load<f32>(f(px, q * channels + c)) - load<f32>(f(mean, c))) * load<f32>(f(invStd, c));
            store<f32>(f(ph, q * channels + c), h);
            store<f32>(f(py, q * channels + c), h * load<f32>(f(scale, c)) + load<f32>(f(shift, c)));
          }
        }
        b++;
        continue;
      } else {
        for (; c + 4 <= channels; c += 4) {
          const k = (<usize>c) << 2;
          const h = f32x4.mul(f32x4.sub(v128.load(px + k), v128.load(mean + k)), v128.load(invStd + k));
          if (xhat) v128.store(ph + k, h);
          const g = scale ? v128.load(scale + k) : one;
          const s = shift ? v128.load(shift + k) : zero;
          v128.store(py + k, f32x4.add(f32x4.mul(h, g), s));
        }
      }
      for (; c < channels; c++) {
        const h = (load<f32>(f(px, c)) - load<f32>(f(mean, c))) * load<f32>(f(invStd, c));
        if (xhat) store<f32>(f(ph, c), h);
        store<f32>(f(py, c), h * (scale ? load<f32>(f(scale, c)) : 1) + (shift ? load<f32>(f(shift, c)) : 0));
      }
    }
    return;
  }
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < channels; c++) {
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
          v128.store(f(py, l), f32x4.add(f32x4.mul(h, gV), sV));
        }
        for (; l < inner; l++) {
          const h = (load<f32>(f(px, l)) - mu) * is;
          store<f32>(f(ph, l), h);
          store<f32>(f(py, l), h * g + s);
        }
      } else {
        for (; l + 4 <= inner; l += 4) {
          const h = f32x4.mul(f32x4.sub(v128.load(f(px, l)), muV), isV);
          v128.store(f(py, l), f32x4.add(f32x4.mul(h, gV), sV));
        }
        for (; l < inner; l++) store<f32>(f(py, l), (load<f32>(f(px, l)) - mu) * is * g + s);
      }
    }
  }
}

/**
 * Per-channel Σ dy (into s64) and Σ dy·xhat (into t64), f64 [C]; work: 2·C floats. Channels of at most
 * SMALL values are summed in scalar f64 (see SMALL).
 */
function backwardSums(dy: usize, xhat: usize, batch: i32, channels: i32, inner: i32, s64: usize, t64: usize, work: usize): void {
  if (<f64>batch * <f64>inner <= SMALL) {
    smallSums(dy, xhat, batch, channels, inner, s64, t64);
    return;
  }
  if (inner == 1) {
    columnSums(1, dy, xhat, 0, batch, channels, s64, t64, work);
    return;
  }
  memory.fill(s64, 0, (<usize>(2 * channels)) << 3);
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < channels; c++) {
      const o = (b * channels + c) * inner;
      const st = chunkDot(f(dy, o), f(xhat, o), inner);
      store<f64>(d(s64, c), load<f64>(d(s64, c)) + <f64>f32x4.extract_lane(st, 0));
      store<f64>(d(t64, c), load<f64>(d(t64, c)) + <f64>f32x4.extract_lane(st, 1));
    }
  }
}

/** dGamma[c] += Σ dy·xhat, dBeta[c] += Σ dy (pointers may be 0), rounded once, as the reference does. */
function addParameterGrads(dGamma: usize, dBeta: usize, s64: usize, t64: usize, channels: i32): void {
  for (let c = 0; c < channels; c++) {
    if (dGamma) store<f32>(f(dGamma, c), <f32>(<f64>load<f32>(f(dGamma, c)) + load<f64>(d(t64, c))));
    if (dBeta) store<f32>(f(dBeta, c), <f32>(<f64>load<f32>(f(dBeta, c)) + load<f64>(d(s64, c))));
  }
}

/**
 * dx = gamma·invStd/count · (count·dy - Σdy - xhat·Σ(dy·xhat)) from the f64 sums s64, t64 over `count`
 * values per channel, written as dx = p·dy + q + r·xhat with per-channel p, q, r (coef: 3·C floats).
 * Channels of at most SMALL values go through scalar f64 instead (see SMALL).
 */
function inputGrad(dy: usize, xhat: usize, invStd: usize, gamma: usize, s64: usize, t64: usize, count: f64, dx: usize, batch: i32, channels: i32, inner: i32, coef: usize): void {
  if (count <= SMALL) {
    smallInputGrad(dy, xhat, invStd, gamma, s64, t64, count, dx, batch, channels, inner);
    return;
  }
  const pP = coef, pQ = f(coef, channels), pR = f(coef, 2 * channels);
  for (let c = 0; c < channels; c++) {
    const g = gamma ? <f64>load<f32>(f(gamma, c)) : 1.0;
    const k = (g * <f64>load<f32>(f(invStd, c))) / count;
    store<f32>(f(pP, c), <f32>(k * count));
    store<f32>(f(pQ, c), <f32>(-k * load<f64>(d(s64, c))));
    store<f32>(f(pR, c), <f32>(-k * load<f64>(d(t64, c))));
  }
  applyAffineGrad(dy, xhat, dx, pP, pQ, pR, batch, channels, inner);
}

/**
 * Training-mode backward: the two reductions (Σdy and Σdy·xhat per channel), the parameter gradients,
 * then dx from the sums (inputGrad). batchNormBackwardReduce and batchNormBackwardInput are its two halves.
 */
export function batchNormBackward(dy: usize, xhat: usize, invStd: usize, gamma: usize, dx: usize, dGamma: usize, dBeta: usize, batch: i32, channels: i32, inner: i32, scratch: usize): void {
  const s64 = scratch;
  const t64 = d(scratch, channels);
  const coef = d(scratch, 2 * channels); // p, q, r: 3·C floats, then columnSums' 2·C
  backwardSums(dy, xhat, batch, channels, inner, s64, t64, f(coef, 3 * channels));
  addParameterGrads(dGamma, dBeta, s64, t64, channels);
  inputGrad(dy, xhat, invStd, gamma, s64, t64, <f64>batch * <f64>inner, dx, batch, channels, inner, coef);
}

/** The reductions of batchNormBackward, written: sumDy[c] = Σ dy, sumDyXhat[c] = Σ dy·xhat. */
export function batchNormBackwardReduce(dy: usize, xhat: usize, sumDy: usize, sumDyXhat: usize, batch: i32, channels: i32, inner: i32, scratch: usize): void {
  const s64 = scratch;
  const t64 = d(scratch, channels);
  backwardSums(dy, xhat, batch, channels, inner, s64, t64, d(scratch, 2 * channels));
  for (let c = 0; c < channels; c++) {
    store<f32>(f(sumDy, c), <f32>load<f64>(d(s64, c)));
    store<f32>(f(sumDyXhat, c), <f32>load<f64>(d(t64, c)));
  }
}

/** dx of batchNormBackward from given sums over `count` values per channel (the whole, possibly sharded, batch). */
export function batchNormBackwardInput(dy: usize, xhat: usize, invStd: usize, gamma: usize, sumDy: usize, sumDyXhat: usize, count: f64, dx: usize, batch: i32, channels: i32, inner: i32, scratch: usize): void {
  const s64 = scratch;
  const t64 = d(scratch, channels);
  for (let c = 0; c < channels; c++) {
    store<f64>(d(s64, c), <f64>load<f32>(f(sumDy, c)));
    store<f64>(d(t64, c), <f64>load<f32>(f(sumDyXhat, c)));
  }
  inputGrad(dy, xhat, invStd, gamma, s64, t64, count, dx, batch, channels, inner, d(scratch, 2 * channels));
}

/** dx = p[c]·dy + q[c] + r[c]·xhat (q, r pointers 0 = zero terms). */
function applyAffineGrad(dy: usize, xhat: usize, dx: usize, pP: usize, pQ: usize, pR: usize, batch: i32, channels: i32, inner: i32): void {
  if (inner == 1) {
    for (let b = 0; b < batch; b++) {
      const o = b * channels;
      const pdy = f(dy, o), ph = f(xhat, o), pdx = f(dx, o);
      let c = 0;
      if (pQ && b + 1 < batch) {
        // Two rows per pass: each coefficient vector loaded once for both.
        const stride = (<usize>channels) << 2;
        for (; c + 4 <= channels; c += 4) {
          const k = (<usize>c) << 2;
          const p = v128.load(pP + k), q = v128.load(pQ + k), r = v128.load(pR + k);
          v128.store(pdx + k, f32x4.add(f32x4.add(f32x4.mul(p, v128.load(pdy + k)), q), f32x4.mul(r, v128.load(ph + k))));
          v128.store(pdx + stride + k, f32x4.add(f32x4.add(f32x4.mul(p, v128.load(pdy + stride + k)), q), f32x4.mul(r, v128.load(ph + stride + k))));
        }
        for (; c < channels; c++) {
          for (let j = 0; j < 2; j++) {
            const o2 = j * channels + c;
            store<f32>(f(pdx, o2), load<f32>(f(pP, c)) * load<f32>(f(pdy, o2)) + load<f32>(f(pQ, c)) + load<f32>(f(pR, c)) * load<f32>(f(ph, o2)));
          }
        }
        b++;
      } else if (pQ) {
        for (; c + 4 <= channels; c += 4) {
          const k = (<usize>c) << 2;
          v128.store(pdx + k, f32x4.add(f32x4.add(f32x4.mul(v128.load(pP + k), v128.load(pdy + k)), v128.load(pQ + k)), f32x4.mul(v128.load(pR + k), v128.load(ph + k))));
        }
        for (; c < channels; c++) store<f32>(f(pdx, c), load<f32>(f(pP, c)) * load<f32>(f(pdy, c)) + load<f32>(f(pQ, c)) + load<f32>(f(pR, c)) * load<f32>(f(ph, c)));
      } else {
        for (; c + 4 <= channels; c += 4) {
          const k = (<usize>c) << 2;
          v128.store(pdx + k, f32x4.mul(v128.load(pP + k), v128.load(pdy + k)));
        }
        for (; c < channels; c++) store<f32>(f(pdx, c), load<f32>(f(pP, c)) * load<f32>(f(pdy, c)));
      }
    }
    return;
  }
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < channels; c++) {
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

/** Eval-mode backward (constant statistics): dx = dy·gamma·invStd, plus the same parameter gradients. */
export function batchNormBackwardFixedStats(dy: usize, xhat: usize, invStd: usize, gamma: usize, dx: usize, dGamma: usize, dBeta: usize, batch: i32, channels: i32, inner: i32, scratch: usize): void {
  const s64 = scratch;
  const t64 = d(scratch, channels);
  const coef = d(scratch, 2 * channels);
  if (dGamma || dBeta) {
    backwardSums(dy, xhat, batch, channels, inner, s64, t64, f(coef, 3 * channels));
    addParameterGrads(dGamma, dBeta, s64, t64, channels);
  }
  for (let c = 0; c < channels; c++) store<f32>(f(coef, c), (gamma ? load<f32>(f(gamma, c)) : 1) * load<f32>(f(invStd, c)));
  applyAffineGrad(dy, xhat, dx, coef, 0, 0, batch, channels, inner);
}

/** channelMoments for channels of at most SMALL values: two passes in f64 (the reference's arithmetic). */
function smallMoments(x: usize, mean: usize, variance: usize, batch: i32, channels: i32, inner: i32): void {
  const count = <f64>batch * <f64>inner;
  for (let c = 0; c < channels; c++) {
    let sum: f64 = 0;
    for (let b = 0; b < batch; b++) {
      const o = (b * channels + c) * inner;
      for (let l = 0; l < inner; l++) sum += <f64>load<f32>(f(x, o + l));
    }
    const mu = sum / count;
    let sq: f64 = 0;
    for (let b = 0; b < batch; b++) {
      const o = (b * channels + c) * inner;
      for (let l = 0; l < inner; l++) {
        const u = <f64>load<f32>(f(x, o + l)) - mu;
        sq += u * u;
      }
    }
    store<f32>(f(mean, c), <f32>mu);
    store<f32>(f(variance, c), <f32>(sq / count));
  }
}

/** backwardSums for channels of at most SMALL values: scalar f64, the reference's arithmetic. */
function smallSums(dy: usize, xhat: usize, batch: i32, channels: i32, inner: i32, s64: usize, t64: usize): void {
  for (let c = 0; c < channels; c++) {
    let sumDy: f64 = 0, sumDyXhat: f64 = 0;
    for (let b = 0; b < batch; b++) {
      const o = (b * channels + c) * inner;
      for (let l = 0; l < inner; l++) {
        const g = <f64>load<f32>(f(dy, o + l));
        sumDy += g;
        sumDyXhat += g * <f64>load<f32>(f(xhat, o + l));
      }
    }
    store<f64>(d(s64, c), sumDy);
    store<f64>(d(t64, c), sumDyXhat);
  }
}

/** inputGrad for channels of at most SMALL values, in f64 throughout (see SMALL). */
function smallInputGrad(dy: usize, xhat: usize, invStd: usize, gamma: usize, s64: usize, t64: usize, count: f64, dx: usize, batch: i32, channels: i32, inner: i32): void {
  for (let c = 0; c < channels; c++) {
    const sumDy = load<f64>(d(s64, c)), sumDyXhat = load<f64>(d(t64, c));
    const k = ((gamma ? <f64>load<f32>(f(gamma, c)) : 1.0) * <f64>load<f32>(f(invStd, c))) / count;
    for (let b = 0; b < batch; b++) {
      const o = (b * channels + c) * inner;
      for (let l = 0; l < inner; l++) {
        store<f32>(f(dx, o + l), <f32>(k * (count * <f64>load<f32>(f(dy, o + l)) - sumDy - <f64>load<f32>(f(xhat, o + l)) * sumDyXhat)));
      }
    }
  }
}
