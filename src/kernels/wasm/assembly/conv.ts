/**
 * Convolution and pooling helpers: im2col / col2im (a convolution is then a gemm per sample), max and
 * average pooling, and the per-channel affine map of LayerNorm/GroupNorm.
 *
 * Shape legend: x, dx: [P, H, W] planes (P = B·C); cols: [B, C·KH·KW, OH·OW]; y, dy, argmax: [P, OH, OW];
 * for channelAffine [B, C, L]. The window geometry arrives as ten i32 arguments (see Window2d in
 * kernels.ts): h, w, kh, kw, sh, sw, ph, pw, oh, ow.
 */

// @ts-ignore: decorator
@inline function f(p: usize, i: i32): usize {
  return p + ((<usize>i) << 2);
}

import { hsum, madd } from './vmath';

/** First output column whose input column o·stride + offset is ≥ 0. */
// @ts-ignore: decorator
@inline function firstInside(offset: i32, stride: i32, count: i32): i32 {
  return offset >= 0 ? 0 : min(count, (-offset + stride - 1) / stride);
}

/** One past the last output column whose input column o·stride + offset is < size. */
// @ts-ignore: decorator
@inline function endInside(offset: i32, stride: i32, size: i32, count: i32): i32 {
  const last = size - 1 - offset;
  return last < 0 ? 0 : min(count, last / stride + 1);
}

/** n floats from src to dst (n is small here: an image row; bulk memory.copy is a runtime call in V8). */
// @ts-ignore: decorator
@inline function copyRow(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(f(dst, i), v128.load(f(src, i)));
  for (; i < n; i++) store<f32>(f(dst, i), load<f32>(f(src, i)));
}

// @ts-ignore: decorator
@inline function zeroRow(dst: usize, n: i32): void {
  const z = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(f(dst, i), z);
  for (; i < n; i++) store<f32>(f(dst, i), 0);
}

export function im2col(x: usize, cols: usize, planes: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, oh: i32, ow: i32): void {
  if (sh == 1 && sw == 1 && ow == w) {
    im2colSameWidth(x, cols, planes, h, w, kh, kw, ph, pw, oh);
    return;
  }
  const plane = h * w;
  let dst = cols;
  const rowBytes = (<usize>ow) << 2;
  for (let bc = 0; bc < planes; bc++) {
    const src = f(x, bc * plane);
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const lo = firstInside(j - pw, sw, ow);
        const hi = endInside(j - pw, sw, w, ow);
        for (let o = 0; o < oh; o++, dst += rowBytes) {
          const ih = o * sh - ph + i;
          if (ih < 0 || ih >= h || lo >= hi) {
            zeroRow(dst, ow);
            continue;
          }
          const rowStart = f(src, ih * w + j - pw);
          zeroRow(dst, lo);
          if (sw == 1) {
            copyRow(f(dst, lo), f(rowStart, lo), hi - lo);
          } else {
            for (let q = lo; q < hi; q++) store<f32>(f(dst, q), load<f32>(f(rowStart, q * sw)));
          }
          zeroRow(f(dst, hi), ow - hi);
        }
      }
    }
  }
}

/**
 * im2col for stride 1 when the output is as wide as the input (a "same"-padded width, as every 3×3 /
 * padding 1 convolution): then the cols row of window offset (i, j) is the input plane shifted by
 * (i - ph)·w + (j - pw) floats, so it is one long vector copy of the valid rows, after which the |j - pw|
 * columns of each row that fell off the left or right edge are zeroed. Row by row (above) it is a
 * dozen short copies per output row; this is about 3x faster on 14×14 planes.
 */
function im2colSameWidth(x: usize, cols: usize, planes: i32, h: i32, w: i32, kh: i32, kw: i32, ph: i32, pw: i32, oh: i32): void {
  const plane = h * w;
  const length = oh * w; // one cols row
  let dst = cols;
  for (let bc = 0; bc < planes; bc++) {
    const src = f(x, bc * plane);
    for (let i = 0; i < kh; i++) {
      // Output rows o whose input row o + i - ph lies inside the plane.
      const oLo = min(oh, max(0, ph - i));
      const oHi = max(oLo, min(oh, h + ph - i));
      for (let j = 0; j < kw; j++, dst += (<usize>length) << 2) {
        const colShift = j - pw;
        const shift = (i - ph) * w + colShift; // input index = output index + shift
        // Copy the valid rows, clamped to the plane: what the clamp drops are edge columns, zeroed below.
        const t0 = oLo * w, t1 = oHi * w;
        const from = min(t1, max(t0, -shift));
        const to = max(from, min(t1, plane - shift));
        zeroRow(dst, from);
        copyRow(f(dst, from), f(src, from + shift), to - from);
        zeroRow(f(dst, to), length - to);
        // Columns q whose input column q + colShift is outside [0, w).
        const lo = colShift >= 0 ? 0 : min(w, -colShift);
        const hi = max(lo, min(w, w - colShift));
        if (lo == 0 && hi == w) continue;
        for (let o = oLo; o < oHi; o++) {
          const row = f(dst, o * w);
          for (let q = 0; q < lo; q++) store<f32>(f(row, q), 0);
          for (let q = hi; q < w; q++) store<f32>(f(row, q), 0);
        }
      }
    }
  }
}

/** dx = 0, then each cols entry is added back onto the input position it was copied from. */
export function col2im(cols: usize, dx: usize, planes: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, oh: i32, ow: i32): void {
  const plane = h * w;
  memory.fill(dx, 0, (<usize>(planes * plane)) << 2); // one big fill: the runtime call pays off
  let src = cols;
  const rowBytes = (<usize>ow) << 2;
  for (let bc = 0; bc < planes; bc++) {
    const dst = f(dx, bc * plane);
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const lo = firstInside(j - pw, sw, ow);
        const hi = endInside(j - pw, sw, w, ow);
        for (let o = 0; o < oh; o++, src += rowBytes) {
          const ih = o * sh - ph + i;
          if (ih < 0 || ih >= h) continue;
          const rowStart = f(dst, ih * w + j - pw);
          if (sw == 1) {
            let q = lo;
            for (; q + 4 <= hi; q += 4) v128.store(f(rowStart, q), f32x4.add(v128.load(f(rowStart, q)), v128.load(f(src, q))));
            for (; q < hi; q++) store<f32>(f(rowStart, q), load<f32>(f(rowStart, q)) + load<f32>(f(src, q)));
          } else {
            for (let q = lo; q < hi; q++) store<f32>(f(rowStart, q * sw), load<f32>(f(rowStart, q * sw)) + load<f32>(f(src, q)));
          }
        }
      }
    }
  }
}

/**
 * Window maxima; argmax gets the flat input index of each (the first on ties), padding counts as -∞.
 * With `relu`, the maxima of relu(x) (x > 0 ? x : 0, as the relu kernel), with their argmax: a ReLU
 * followed by this pooling, in one pass over x instead of two.
 */
export function maxPoolForward(x: usize, y: usize, argmax: usize, planes: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, oh: i32, ow: i32, relu: bool): void {
  if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0) {
    if (relu) maxPool2x2(x, y, argmax, planes, h, w, oh, ow, true);
    else maxPool2x2(x, y, argmax, planes, h, w, oh, ow, false);
    return;
  }
  let o = 0;
  for (let p = 0; p < planes; p++) {
    const base = p * h * w;
    for (let r = 0; r < oh; r++) {
      const h0 = r * sh - ph;
      const hFrom = max(h0, 0);
      const hTo = min(h0 + kh, h);
      for (let c = 0; c < ow; c++, o++) {
        const w0 = c * sw - pw;
        const wFrom = max(w0, 0);
        const wTo = min(w0 + kw, w);
        let best: f32 = -Infinity;
        let at = -1;
        for (let ih = hFrom; ih < hTo; ih++) {
          for (let iw = wFrom; iw < wTo; iw++) {
            const idx = base + ih * w + iw;
            let v = load<f32>(f(x, idx));
            if (relu && !(v > 0)) v = 0;
            if (at < 0 || v > best) {
              best = v;
              at = idx;
            }
          }
        }
        store<f32>(f(y, o), best);
        store<i32>(f(argmax, o), at);
      }
    }
  }
}

/**
 * Four 2×2 windows a b / c d at once (a lane each): the running maximum and its position by
 * compare-and-select in the reference's order (a later value wins only when strictly larger), stored
 * to y and, as flat input indices, to argmax. `first` is the flat index of lane 0's top-left input, w
 * the input width.
 */
// @ts-ignore: decorator
@inline function maxOfFour(a: v128, b: v128, c: v128, d: v128, first: i32, w: i32, y: usize, argmax: usize, ea: v128, eb: v128, ec: v128, ed: v128, atMax: usize): void {
  const one = i32x4.splat(1);
  let m = a;
  let e = ea; // with atMax: the value of (ea, eb, ec, ed) at the same position as the maximum, stored there
  let which = i32x4.splat(0);
  let gt = f32x4.gt(b, m);
  m = v128.bitselect(b, m, gt);
  if (atMax) e = v128.bitselect(eb, e, gt);
  which = v128.bitselect(one, which, gt);
  gt = f32x4.gt(c, m);
  m = v128.bitselect(c, m, gt);
  if (atMax) e = v128.bitselect(ec, e, gt);
  which = v128.bitselect(i32x4.splat(2), which, gt);
  gt = f32x4.gt(d, m);
  m = v128.bitselect(d, m, gt);
  if (atMax) e = v128.bitselect(ed, e, gt);
  which = v128.bitselect(i32x4.splat(3), which, gt);
  v128.store(y, m);
  if (atMax) v128.store(atMax, e);
  // index = first + lane·2 + (which & 1) + (which >> 1)·w
  const idx = i32x4.add(i32x4.add(i32x4.splat(first), i32x4(0, 2, 4, 6)), i32x4.add(v128.and(which, one), i32x4.mul(i32x4.shr_u(which, 1), i32x4.splat(w))));
  v128.store(argmax, idx);
}

/**
 * The common 2×2, stride-2 window, four outputs per step: de-interleave two input rows into the four
 * window positions a b / c d, then keep the running maximum and its position with compare-and-select,
 * in the reference's order (a, b, c, d; a later value wins only when strictly larger).
 */
// @ts-ignore: decorator
@inline function maxPool2x2(x: usize, y: usize, argmax: usize, planes: i32, h: i32, w: i32, oh: i32, ow: i32, relu: bool): void {
  const zero = f32x4.splat(0);
  let o = 0;
  for (let p = 0; p < planes; p++) {
    const base = p * h * w;
    for (let r = 0; r < oh; r++, o += ow) {
      const top = base + 2 * r * w;
      const r0 = f(x, top), r1 = f(x, top + w);
      // Four windows a step; the last step is moved back to end at ow, recomputing a few windows of the
      // one before (the same values), so a narrow plane (ow = 7 or 14) has no scalar tail.
      let c = 0;
      for (; ow >= 4; c += 4) {
        if (c + 4 > ow) c = ow - 4;
        const t0 = v128.load(f(r0, 2 * c)), t1 = v128.load(f(r0, 2 * c + 4));
        const u0 = v128.load(f(r1, 2 * c)), u1 = v128.load(f(r1, 2 * c + 4));
        let a = f32x4.shuffle(t0, t1, 0, 2, 4, 6), b = f32x4.shuffle(t0, t1, 1, 3, 5, 7);
        let cc = f32x4.shuffle(u0, u1, 0, 2, 4, 6), d = f32x4.shuffle(u0, u1, 1, 3, 5, 7);
        if (relu) {
          a = v128.and(a, f32x4.gt(a, zero));
          b = v128.and(b, f32x4.gt(b, zero));
          cc = v128.and(cc, f32x4.gt(cc, zero));
          d = v128.and(d, f32x4.gt(d, zero));
        }
        maxOfFour(a, b, cc, d, top + 2 * c, w, f(y, o + c), f(argmax, o + c), zero, zero, zero, zero, 0);
        if (c + 4 >= ow) {
          c = ow;
          break;
        }
      }
      for (; c < ow; c++) {
        let at = top + 2 * c;
        let best = load<f32>(f(x, at));
        if (relu && !(best > 0)) best = 0;
        for (let q = 1; q < 4; q++) {
          const idx = top + (q >> 1) * w + 2 * c + (q & 1);
          let v = load<f32>(f(x, idx));
          if (relu && !(v > 0)) v = 0;
          if (v > best) {
            best = v;
            at = idx;
          }
        }
        store<f32>(f(y, o + c), best);
        store<i32>(f(argmax, o + c), at);
      }
    }
  }
}

/**
 * Batch norm's normalization, a ReLU and 2×2 stride-2 max pooling in one pass over x [B, C, H, W]
 * (H, W even, H·W a multiple of 4, W ≥ 8): xhat = (x - mean[c])·invStd[c] is written, y = xhat·scale[c]
 * + shift[c] is not, and out/argmax are maxPoolForward of relu(y); xhatMax (0: none) gets xhat at each
 * window's winner, for the backward's sums. Every value is computed as
 * batchNormApply's vector loop and maxPool2x2 compute it (the sizes above keep batchNormApply off its
 * scalar tail), so the results are theirs bit for bit. scale, shift: 0 for none (1 and 0).
 */
export function batchNormReluMaxPool2x2(x: usize, mean: usize, invStd: usize, scale: usize, shift: usize, xhat: usize, out: usize, argmax: usize, xhatMax: usize, batch: i32, channels: i32, h: i32, w: i32): void {
  const plane = h * w;
  const oh = h >> 1, ow = w >> 1;
  const zero = f32x4.splat(0);
  let o = 0;
  for (let p = 0; p < batch * channels; p++) {
    const c = p % channels;
    const muV = f32x4.splat(load<f32>(f(mean, c))), isV = f32x4.splat(load<f32>(f(invStd, c)));
    const gV = scale ? f32x4.splat(load<f32>(f(scale, c))) : f32x4.splat(1);
    const sV = shift ? f32x4.splat(load<f32>(f(shift, c))) : zero;
    const base = p * plane;
    for (let r = 0; r < oh; r++, o += ow) {
      const top = base + 2 * r * w;
      const r0 = f(x, top), r1 = f(x, top + w);
      const e0 = f(xhat, top), e1 = f(xhat, top + w);
      // Four windows a step, the last moved back to end at the row's end (the same values again).
      for (let q = 0; ; q += 4) {
        if (q + 4 > ow) q = ow - 4;
        const k = (<usize>(2 * q)) << 2;
        const h0 = f32x4.mul(f32x4.sub(v128.load(r0 + k), muV), isV), h1 = f32x4.mul(f32x4.sub(v128.load(r0 + k, 16), muV), isV);
        const h2 = f32x4.mul(f32x4.sub(v128.load(r1 + k), muV), isV), h3 = f32x4.mul(f32x4.sub(v128.load(r1 + k, 16), muV), isV);
        v128.store(e0 + k, h0);
        v128.store(e0 + k, h1, 16);
        v128.store(e1 + k, h2);
        v128.store(e1 + k, h3, 16);
        let t0 = madd(h0, gV, sV), t1 = madd(h1, gV, sV), u0 = madd(h2, gV, sV), u1 = madd(h3, gV, sV);
        t0 = v128.and(t0, f32x4.gt(t0, zero));
        t1 = v128.and(t1, f32x4.gt(t1, zero));
        u0 = v128.and(u0, f32x4.gt(u0, zero));
        u1 = v128.and(u1, f32x4.gt(u1, zero));
        const a = f32x4.shuffle(t0, t1, 0, 2, 4, 6), b = f32x4.shuffle(t0, t1, 1, 3, 5, 7);
        const cc = f32x4.shuffle(u0, u1, 0, 2, 4, 6), d = f32x4.shuffle(u0, u1, 1, 3, 5, 7);
        const ea = f32x4.shuffle(h0, h1, 0, 2, 4, 6), eb = f32x4.shuffle(h0, h1, 1, 3, 5, 7);
        const ec = f32x4.shuffle(h2, h3, 0, 2, 4, 6), ed = f32x4.shuffle(h2, h3, 1, 3, 5, 7);
        maxOfFour(a, b, cc, d, top + 2 * q, w, f(out, o + q), f(argmax, o + q), ea, eb, ec, ed, xhatMax ? f(xhatMax, o + q) : 0);
        if (q + 4 >= ow) break;
      }
    }
  }
}

/**
 * The sums of batch norm's backward when its output went through a ReLU and 2×2 max pooling
 * (batchNormReluMaxPool2x2's backward): the gradient at the batch norm's output is g = dy at each
 * window's winner where out > 0, and 0 elsewhere, so sumDy[c] = Σ g and sumDyXhat[c] = Σ g·xhat
 * run over the pooled values, with xhat at the winners as the forward left it in xhatMax: three
 * quarter-size arrays read instead of two whole ones (g and xhat), and g is never written. `pooled` =
 * values per plane (H·W/4). Per plane in f32x4 lanes, then across planes in f64 (2·channels f64 of
 * scratch), as the unfused sums are.
 */
export function batchNormReluMaxPool2x2BackwardReduce(dy: usize, out: usize, xhatMax: usize, sumDy: usize, sumDyXhat: usize, batch: i32, channels: i32, pooled: i32, scratch: usize): void {
  const zero = f32x4.splat(0);
  const s64 = scratch, t64 = scratch + ((<usize>channels) << 3);
  memory.fill(scratch, 0, (<usize>channels) << 4);
  for (let p = 0; p < batch * channels; p++) {
    const o = p * pooled;
    let s = zero, t = zero;
    let i = 0;
    for (; i + 4 <= pooled; i += 4) {
      const g = v128.and(v128.load(f(dy, o + i)), f32x4.gt(v128.load(f(out, o + i)), zero));
      s = f32x4.add(s, g);
      t = f32x4.add(t, f32x4.mul(g, v128.load(f(xhatMax, o + i))));
    }
    let sp = hsum(s);
    let tp = hsum(t);
    for (; i < pooled; i++) {
      if (!(load<f32>(f(out, o + i)) > 0)) continue;
      const g = load<f32>(f(dy, o + i));
      sp += g;
      tp += g * load<f32>(f(xhatMax, o + i));
    }
    const c = p % channels;
    const sc = s64 + ((<usize>c) << 3), tc = t64 + ((<usize>c) << 3);
    store<f64>(sc, load<f64>(sc) + <f64>sp);
    store<f64>(tc, load<f64>(tc) + <f64>tp);
  }
  for (let c = 0; c < channels; c++) {
    store<f32>(f(sumDy, c), <f32>load<f64>(s64 + ((<usize>c) << 3)));
    store<f32>(f(sumDyXhat, c), <f32>load<f64>(t64 + ((<usize>c) << 3)));
  }
}

/**
 * dx of that backward from the sums over `count` values per channel: batchNormBackwardInput's
 * dx = p·g + q + r·xhat (p, q, r per channel, as it computes them), g spread from the pooled dy to its
 * windows' winners in registers, as maxPool2x2Backward spreads it, so dx is written in one pass.
 * With equal sums, the same values as the unfused kernels bit for bit.
 */
export function batchNormReluMaxPool2x2BackwardInput(dy: usize, out: usize, argmax: usize, xhat: usize, invStd: usize, gamma: usize, sumDy: usize, sumDyXhat: usize, count: f64, dx: usize, batch: i32, channels: i32, h: i32, w: i32): void {
  const plane = h * w;
  const oh = h >> 1, ow = w >> 1;
  const zero = f32x4.splat(0);
  const offsets = i32x4(0, 2, 4, 6);
  const right = i32x4.splat(1), below = i32x4.splat(w), belowRight = i32x4.splat(w + 1);
  for (let pl = 0; pl < batch * channels; pl++) {
    const c = pl % channels;
    const gm = gamma ? <f64>load<f32>(f(gamma, c)) : 1.0;
    const k = (gm * <f64>load<f32>(f(invStd, c))) / count;
    const pV = f32x4.splat(<f32>(k * count));
    const qV = f32x4.splat(<f32>(-k * <f64>load<f32>(f(sumDy, c))));
    const rV = f32x4.splat(<f32>(-k * <f64>load<f32>(f(sumDyXhat, c))));
    const base = pl * plane;
    for (let r = 0; r < oh; r++) {
      const o = (pl * oh + r) * ow;
      const top = base + 2 * r * w;
      for (let q = 0; ; q += 4) {
        if (q + 4 > ow) q = ow - 4; // the last step overlaps, writing the same values again
        let g = v128.load(f(dy, o + q));
        g = v128.and(g, f32x4.gt(v128.load(f(out, o + q)), zero));
        const at = v128.load(f(argmax, o + q));
        const a = i32x4.add(i32x4.splat(top + 2 * q), offsets);
        const va = v128.and(g, i32x4.eq(at, a));
        const vb = v128.and(g, i32x4.eq(at, i32x4.add(a, right)));
        const vc = v128.and(g, i32x4.eq(at, i32x4.add(a, below)));
        const vd = v128.and(g, i32x4.eq(at, i32x4.add(a, belowRight)));
        const e0 = f(xhat, top + 2 * q), e1 = f(xhat, top + w + 2 * q);
        const d0 = f(dx, top + 2 * q), d1 = f(dx, top + w + 2 * q);
        v128.store(d0, f32x4.add(f32x4.add(f32x4.mul(pV, f32x4.shuffle(va, vb, 0, 4, 1, 5)), qV), f32x4.mul(rV, v128.load(e0))));
        v128.store(d0, f32x4.add(f32x4.add(f32x4.mul(pV, f32x4.shuffle(va, vb, 2, 6, 3, 7)), qV), f32x4.mul(rV, v128.load(e0, 16))), 16);
        v128.store(d1, f32x4.add(f32x4.add(f32x4.mul(pV, f32x4.shuffle(vc, vd, 0, 4, 1, 5)), qV), f32x4.mul(rV, v128.load(e1))));
        v128.store(d1, f32x4.add(f32x4.add(f32x4.mul(pV, f32x4.shuffle(vc, vd, 2, 6, 3, 7)), qV), f32x4.mul(rV, v128.load(e1, 16))), 16);
        if (q + 4 >= ow) break;
      }
    }
  }
}

/**
 * dx = 0, then dx[argmax[i]] += dy[i] (windows may overlap). With `y` (the forward's output of a fused
 * ReLU and pooling; 0 for none), dy[i] counts only where y[i] > 0: the ReLU's gradient, since the
 * window's winner was positive exactly when its maximum is.
 */
export function maxPoolBackward(dy: usize, argmax: usize, dx: usize, planes: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, oh: i32, ow: i32, y: usize): void {
  if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0) {
    if (y != 0) maxPool2x2Backward(dy, argmax, dx, planes, h, w, oh, ow, y, true);
    else maxPool2x2Backward(dy, argmax, dx, planes, h, w, oh, ow, 0, false);
    return;
  }
  memory.fill(dx, 0, (<usize>(planes * h * w)) << 2);
  const count = planes * oh * ow;
  for (let o = 0; o < count; o++) {
    if (y != 0 && !(load<f32>(f(y, o)) > 0)) continue;
    const at = f(dx, load<i32>(f(argmax, o)));
    store<f32>(at, load<f32>(at) + load<f32>(f(dy, o)));
  }
}

/**
 * The 2×2, stride-2 backward as a gather rather than a scatter: the windows do not overlap, so each
 * input position gets dy of its window where it was the window's argmax and 0 elsewhere, four windows
 * (two rows of eight inputs) a step, every input written once. Positions no window covers (an odd last
 * row or column) are zeroed first.
 */
// @ts-ignore: decorator
@inline function maxPool2x2Backward(dy: usize, argmax: usize, dx: usize, planes: i32, h: i32, w: i32, oh: i32, ow: i32, y: usize, relu: bool): void {
  if ((h & 1) != 0 || (w & 1) != 0) memory.fill(dx, 0, (<usize>(planes * h * w)) << 2);
  const zero = f32x4.splat(0);
  const lane = i32x4(0, 2, 4, 6);
  const right = i32x4.splat(1), below = i32x4.splat(w), belowRight = i32x4.splat(w + 1);
  let o = 0;
  for (let p = 0; p < planes; p++) {
    const base = p * h * w;
    for (let r = 0; r < oh; r++, o += ow) {
      const top = base + 2 * r * w;
      const r0 = f(dx, top), r1 = f(dx, top + w);
      let c = 0;
      for (; ow >= 4; c += 4) {
        if (c + 4 > ow) c = ow - 4; // as in the forward: the last step overlaps, writing the same values
        let g = v128.load(f(dy, o + c));
        if (relu) g = v128.and(g, f32x4.gt(v128.load(f(y, o + c)), zero));
        const at = v128.load(f(argmax, o + c));
        const a = i32x4.add(i32x4.splat(top + 2 * c), lane); // flat index of each window's top-left input
        const va = v128.and(g, i32x4.eq(at, a));
        const vb = v128.and(g, i32x4.eq(at, i32x4.add(a, right)));
        const vc = v128.and(g, i32x4.eq(at, i32x4.add(a, below)));
        const vd = v128.and(g, i32x4.eq(at, i32x4.add(a, belowRight)));
        v128.store(f(r0, 2 * c), f32x4.shuffle(va, vb, 0, 4, 1, 5));
        v128.store(f(r0, 2 * c + 4), f32x4.shuffle(va, vb, 2, 6, 3, 7));
        v128.store(f(r1, 2 * c), f32x4.shuffle(vc, vd, 0, 4, 1, 5));
        v128.store(f(r1, 2 * c + 4), f32x4.shuffle(vc, vd, 2, 6, 3, 7));
        if (c + 4 >= ow) {
          c = ow;
          break;
        }
      }
      for (; c < ow; c++) {
        const g: f32 = relu && !(load<f32>(f(y, o + c)) > 0) ? 0 : load<f32>(f(dy, o + c));
        const at = load<i32>(f(argmax, o + c));
        for (let q = 0; q < 4; q++) {
          const idx = top + (q >> 1) * w + 2 * c + (q & 1);
          store<f32>(f(dx, idx), at == idx ? g : 0);
        }
      }
    }
  }
}

/** Window means, padding counted as 0 and every window divided by KH·KW. */
export function avgPoolForward(x: usize, y: usize, planes: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, oh: i32, ow: i32): void {
  const inv: f64 = 1 / <f64>(kh * kw);
  let o = 0;
  for (let p = 0; p < planes; p++) {
    const base = p * h * w;
    for (let r = 0; r < oh; r++) {
      const h0 = r * sh - ph;
      const hFrom = max(h0, 0);
      const hTo = min(h0 + kh, h);
      for (let c = 0; c < ow; c++, o++) {
        const w0 = c * sw - pw;
        const wFrom = max(w0, 0);
        const wTo = min(w0 + kw, w);
        let sum: f64 = 0;
        for (let ih = hFrom; ih < hTo; ih++) {
          const row = base + ih * w;
          for (let iw = wFrom; iw < wTo; iw++) sum += <f64>load<f32>(f(x, row + iw));
        }
        store<f32>(f(y, o), <f32>(sum * inv));
      }
    }
  }
}

export function avgPoolBackward(dy: usize, dx: usize, planes: i32, h: i32, w: i32, kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, oh: i32, ow: i32): void {
  const inv: f64 = 1 / <f64>(kh * kw);
  memory.fill(dx, 0, (<usize>(planes * h * w)) << 2);
  let o = 0;
  for (let p = 0; p < planes; p++) {
    const base = p * h * w;
    for (let r = 0; r < oh; r++) {
      const h0 = r * sh - ph;
      const hFrom = max(h0, 0);
      const hTo = min(h0 + kh, h);
      for (let c = 0; c < ow; c++, o++) {
        const w0 = c * sw - pw;
        const wFrom = max(w0, 0);
        const wTo = min(w0 + kw, w);
        const share = <f32>(<f64>load<f32>(f(dy, o)) * inv);
        for (let ih = hFrom; ih < hTo; ih++) {
          const row = base + ih * w;
          for (let iw = wFrom; iw < wTo; iw++) store<f32>(f(dx, row + iw), load<f32>(f(dx, row + iw)) + share);
        }
      }
    }
  }
}

/** out[b,c,l] = x[b,c,l]·scale[c] + shift[c] (shift pointer 0 = no shift). */
export function channelAffine(x: usize, scale: usize, shift: usize, out: usize, batch: i32, channels: i32, inner: i32): void {
  for (let b = 0; b < batch; b++) {
    if (inner == 1) {
      const o = b * channels;
      let c = 0;
      for (; c + 4 <= channels; c += 4) {
        let v = f32x4.mul(v128.load(f(x, o + c)), v128.load(f(scale, c)));
        if (shift) v = f32x4.add(v, v128.load(f(shift, c)));
        v128.store(f(out, o + c), v);
      }
      for (; c < channels; c++) store<f32>(f(out, o + c), load<f32>(f(x, o + c)) * load<f32>(f(scale, c)) + (shift ? load<f32>(f(shift, c)) : 0));
      continue;
    }
    for (let c = 0; c < channels; c++) {
      const o = (b * channels + c) * inner;
      const g = load<f32>(f(scale, c));
      const s: f32 = shift ? load<f32>(f(shift, c)) : 0;
      const gv = f32x4.splat(g), sv = f32x4.splat(s);
      let l = 0;
      for (; l + 4 <= inner; l += 4) v128.store(f(out, o + l), madd(v128.load(f(x, o + l)), gv, sv));
      for (; l < inner; l++) store<f32>(f(out, o + l), load<f32>(f(x, o + l)) * g + s);
    }
  }
}

/** dx = dy·scale[c]; dScale[c] += Σ dy·x, dShift[c] += Σ dy (pointers may be 0). */
export function channelAffineBackward(dy: usize, x: usize, scale: usize, dx: usize, dScale: usize, dShift: usize, batch: i32, channels: i32, inner: i32): void {
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < channels; c++) {
      const o = (b * channels + c) * inner;
      const g = load<f32>(f(scale, c));
      const gv = f32x4.splat(g);
      let s0 = f32x4.splat(0), t0 = f32x4.splat(0);
      let l = 0;
      for (; l + 4 <= inner; l += 4) {
        const d = v128.load(f(dy, o + l));
        s0 = f32x4.add(s0, d);
        t0 = madd(d, v128.load(f(x, o + l)), t0);
        v128.store(f(dx, o + l), f32x4.mul(d, gv));
      }
      let s: f64 = <f64>hsum(s0);
      let t: f64 = <f64>hsum(t0);
      for (; l < inner; l++) {
        const d = load<f32>(f(dy, o + l));
        s += <f64>d;
        t += <f64>d * <f64>load<f32>(f(x, o + l));
        store<f32>(f(dx, o + l), d * g);
      }
      if (dScale) store<f32>(f(dScale, c), load<f32>(f(dScale, c)) + <f32>t);
      if (dShift) store<f32>(f(dShift, c), load<f32>(f(dShift, c)) + <f32>s);
    }
  }
}
