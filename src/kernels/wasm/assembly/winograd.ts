/**
 * Winograd F(2×2, 3×3) for 3×3 convolutions with stride 1 (the math: src/kernels/winograd.ts, the
 * reference backend's). A call works on groups of images: every channel's input tiles are transformed
 * into V[16, C, P] (P = the group's tiles), the 16 products M[ξ] = U[ξ]·V[ξ] run through the gemm,
 * and the output transform writes y. The group is sized so V and M stay in L2.
 *
 * The transforms run with SIMD over four tiles of a row at a time. Each plane is first copied with its
 * even and odd columns apart ("E" and "O", zeros where the padding is), so the four tiles' columns
 * 2·tx .. 2·tx + 3 are plain vector loads at tx and tx + 1. A row's last vector may run past the row's
 * tiles: it writes tiles of the next row, or of the next image, which are written again later, or the
 * padding after the last one (Pstride ≥ P + 4), which no product reads.
 *
 * Shape legend: x [B, C, H, W], y [B, O, OH, OW], u and du [16, O, C]; TH×TW tiles per image.
 */
import { gemm } from './gemm';

// @ts-ignore: decorator
@inline function f(p: usize, i: i32): usize {
  return p + ((<usize>i) << 2);
}

/**
 * Floats of V and M a group may take: 441 KB, most of Zen 3's 512 KB L2 (three of mnist-cnn's 14×14
 * images in its second convolution). Groups of 1 to 6 of those images ran within 5% of each other:
 * smaller ones give the gemm short rows, larger ones leave L2 in the transforms.
 */
const GROUP_FLOATS: i32 = 112896;

// @ts-ignore: decorator
@inline function roundUp4(n: i32): i32 {
  return (n + 3) & ~3;
}

/** Images per group: as many as fit GROUP_FLOATS, at least one, at most the batch. */
function groupImages(batch: i32, c: i32, o: i32, tiles: i32): i32 {
  return max(1, min(batch, GROUP_FLOATS / (16 * (c + o) * tiles)));
}

/** Row stride of V and M, in floats: the group's tiles and room for a last vector's overrun. */
function tileStride(batch: i32, c: i32, o: i32, tiles: i32): i32 {
  return roundUp4(groupImages(batch, c, o, tiles) * tiles + 4);
}

/** Floats of the E/O planes of one channel (2·TH + 2 rows each) and of one output gradient plane (2·TH rows). */
function planeFloats(th: i32, tw: i32): i32 {
  return 2 * (2 * th + 2) * (roundUp4(tw) + 4);
}

/** Floats of work space winogradConv3x3 and winogradConv3x3WeightGrad need for these sizes (16-byte aligned). */
export function winogradScratchFloats(batch: i32, c: i32, o: i32, h: i32, w: i32, ph: i32, pw: i32): i32 {
  const th = (h + 2 * ph - 1) >> 1, tw = (w + 2 * pw - 1) >> 1;
  return 16 * (c + o) * tileStride(batch, c, o, th * tw) + 2 * planeFloats(th, tw) + 8;
}

/**
 * Copy plane [h, w] into E and O (rows 2·TH + 2, row stride ks): E[r, k] = plane[r - ph, 2k - pw],
 * O[r, k] = plane[r - ph, 2k + 1 - pw]. Only the values inside the image are written; the rest were
 * zeroed once per call and stay zero (the same positions are inside for every plane). A row's even
 * columns go to E and its odd ones to O when pw is even, the other way round when it is odd: eight
 * columns at a time, split by two shuffles.
 */
function splitColumns(x: usize, h: i32, w: i32, ph: i32, pw: i32, rows: i32, ks: i32, e: usize, od: usize): void {
  const evensTo = (pw & 1) == 0 ? e : od, oddsTo = (pw & 1) == 0 ? od : e;
  const kEven = pw >> 1, kOdd = (pw + 1) >> 1;
  const evens = (w + 1) >> 1, odds = w >> 1;
  for (let r = max(0, ph); r < min(rows, h + ph); r++) {
    const src = f(x, (r - ph) * w);
    const de = f(evensTo, r * ks + kEven), dod = f(oddsTo, r * ks + kOdd);
    let j = 0;
    for (; 2 * j + 8 <= w; j += 4) split8(src, de, dod, j);
    if (j < evens) {
      // The last eight columns again (overlapping the loop's), then at most one even column after them.
      if (w >= 8) {
        j = (w - 8) >> 1;
        split8(src, de, dod, j);
        j += 4;
      }
      for (let q = j; q < evens; q++) store<f32>(f(de, q), load<f32>(f(src, 2 * q)));
      for (let q = j; q < odds; q++) store<f32>(f(dod, q), load<f32>(f(src, 2 * q + 1)));
    }
  }
}

/** Columns 2j .. 2j + 7 of a row: the even ones to de[j .. j + 3], the odd ones to dod[j .. j + 3]. */
// @ts-ignore: decorator
@inline function split8(src: usize, de: usize, dod: usize, j: i32): void {
  const a = v128.load(f(src, 2 * j)), b = v128.load(f(src, 2 * j + 4));
  v128.store(f(de, j), f32x4.shuffle(a, b, 0, 2, 4, 6));
  v128.store(f(dod, j), f32x4.shuffle(a, b, 1, 3, 5, 7));
}

/**
 * V[ξ, tile] = (Bᵀ·d·B)[ξ] for every tile of one channel of one image: `v` points at the channel's
 * first tile for ξ = 0, `vs` is the distance between ξ rows (C·Pstride floats).
 */
function inputTransform(e: usize, od: usize, ks: i32, th: i32, tw: i32, v: usize, vs: i32): void {
  for (let ty = 0; ty < th; ty++) {
    const r0 = f(e, 2 * ty * ks), q0 = f(od, 2 * ty * ks);
    const rs = (<usize>ks) << 2;
    for (let tx = 0; tx < tw; tx += 4) {
      const at = (<usize>tx) << 2;
      // Rows 2ty .. 2ty+3 at columns 2tx (E), 2tx+1 (O), 2tx+2 (E, next) and 2tx+3 (O, next).
      const e0 = v128.load(r0 + at), e1 = v128.load(r0 + rs + at), e2 = v128.load(r0 + 2 * rs + at), e3 = v128.load(r0 + 3 * rs + at);
      const n0 = v128.load(r0 + at, 4), n1 = v128.load(r0 + rs + at, 4), n2 = v128.load(r0 + 2 * rs + at, 4), n3 = v128.load(r0 + 3 * rs + at, 4);
      const o0 = v128.load(q0 + at), o1 = v128.load(q0 + rs + at), o2 = v128.load(q0 + 2 * rs + at), o3 = v128.load(q0 + 3 * rs + at);
      const p0 = v128.load(q0 + at, 4), p1 = v128.load(q0 + rs + at, 4), p2 = v128.load(q0 + 2 * rs + at, 4), p3 = v128.load(q0 + 3 * rs + at, 4);
      const dst = f(v, ty * tw + tx);
      // t = Bᵀ·d down the columns (rows 0 - 2, 1 + 2, 2 - 1, 1 - 3), then ·B across them.
      row(f32x4.sub(e0, e2), f32x4.sub(o0, o2), f32x4.sub(n0, n2), f32x4.sub(p0, p2), dst, vs, 0);
      row(f32x4.add(e1, e2), f32x4.add(o1, o2), f32x4.add(n1, n2), f32x4.add(p1, p2), dst, vs, 4);
      row(f32x4.sub(e2, e1), f32x4.sub(o2, o1), f32x4.sub(n2, n1), f32x4.sub(p2, p1), dst, vs, 8);
      row(f32x4.sub(e1, e3), f32x4.sub(o1, o3), f32x4.sub(n1, n3), f32x4.sub(p1, p3), dst, vs, 12);
    }
  }
}

/** One row of t·B: columns 2tx (a), 2tx+1 (b), 2tx+2 (c), 2tx+3 (d) → ξ = first .. first + 3. */
// @ts-ignore: decorator
@inline function row(a: v128, b: v128, c: v128, d: v128, dst: usize, vs: i32, first: i32): void {
  v128.store(f(dst, first * vs), f32x4.sub(a, c));
  v128.store(f(dst, (first + 1) * vs), f32x4.add(b, c));
  v128.store(f(dst, (first + 2) * vs), f32x4.sub(c, b));
  v128.store(f(dst, (first + 3) * vs), f32x4.sub(b, d));
}

/**
 * y = Aᵀ·M·A for every tile of one output channel of one image: `m` points at its first tile for
 * ξ = 0, `ms` is the distance between ξ rows; `tmp` is 8 floats of scratch for the very end of y (`end`).
 * A row's last four tiles may write up to 7 values past the row: they land on later rows (or the next
 * plane), which are written after them — the tiles of a row pair go right to left, so the next row's
 * first vector comes after the overrun into it.
 */
function outputTransform(m: usize, ms: i32, th: i32, tw: i32, y: usize, oh: i32, ow: i32, tmp: usize, end: usize): void {
  const last = (tw - 1) & ~3;
  for (let ty = 0; ty < th; ty++) {
    for (let tx = last; tx >= 0; tx -= 4) {
      const src = f(m, ty * tw + tx);
      // Aᵀ·M: rows 0 + 1 + 2 and 1 - 2 - 3, for each of the 4 columns.
      const m0 = v128.load(src), m1 = v128.load(f(src, ms)), m2 = v128.load(f(src, 2 * ms)), m3 = v128.load(f(src, 3 * ms));
      const m4 = v128.load(f(src, 4 * ms)), m5 = v128.load(f(src, 5 * ms)), m6 = v128.load(f(src, 6 * ms)), m7 = v128.load(f(src, 7 * ms));
      const m8 = v128.load(f(src, 8 * ms)), m9 = v128.load(f(src, 9 * ms)), m10 = v128.load(f(src, 10 * ms)), m11 = v128.load(f(src, 11 * ms));
      const m12 = v128.load(f(src, 12 * ms)), m13 = v128.load(f(src, 13 * ms)), m14 = v128.load(f(src, 14 * ms)), m15 = v128.load(f(src, 15 * ms));
      const a0 = f32x4.add(f32x4.add(m0, m4), m8), a1 = f32x4.add(f32x4.add(m1, m5), m9);
      const a2 = f32x4.add(f32x4.add(m2, m6), m10), a3 = f32x4.add(f32x4.add(m3, m7), m11);
      const b0 = f32x4.sub(f32x4.sub(m4, m8), m12), b1 = f32x4.sub(f32x4.sub(m5, m9), m13);
      const b2 = f32x4.sub(f32x4.sub(m6, m10), m14), b3 = f32x4.sub(f32x4.sub(m7, m11), m15);
      // ·A: columns 0 + 1 + 2 and 1 - 2 - 3; the two output columns of each tile interleaved.
      const y00 = f32x4.add(f32x4.add(a0, a1), a2), y01 = f32x4.sub(f32x4.sub(a1, a2), a3);
      const y10 = f32x4.add(f32x4.add(b0, b1), b2), y11 = f32x4.sub(f32x4.sub(b1, b2), b3);
      const oy = 2 * ty, ox = 2 * tx;
      writeRow(f32x4.shuffle(y00, y01, 0, 4, 1, 5), f32x4.shuffle(y00, y01, 2, 6, 3, 7), f(y, oy * ow + ox), ow - ox, tmp, end);
      if (oy + 1 < oh) writeRow(f32x4.shuffle(y10, y11, 0, 4, 1, 5), f32x4.shuffle(y10, y11, 2, 6, 3, 7), f(y, (oy + 1) * ow + ox), ow - ox, tmp, end);
    }
  }
}

/** 8 output values of a row, of which the first `room` are inside it: all 8 unless they would pass `end`. */
// @ts-ignore: decorator
@inline function writeRow(lo: v128, hi: v128, dst: usize, room: i32, tmp: usize, end: usize): void {
  if (room >= 8 || dst + 32 <= end) {
    v128.store(dst, lo);
    v128.store(dst, hi, 16);
    return;
  }
  v128.store(tmp, lo);
  v128.store(tmp, hi, 16);
  for (let i = 0; i < room; i++) store<f32>(f(dst, i), load<f32>(f(tmp, i)));
}

/**
 * dM = A·dY·Aᵀ for every tile of one output channel of one image, from its gradient split into even
 * (`e`) and odd (`od`) columns (rows 2·TH, zeros past the edge); `m`, `ms` as in outputTransform.
 */
function outputGradTransform(e: usize, od: usize, ks: i32, th: i32, tw: i32, m: usize, ms: i32): void {
  const rs = (<usize>ks) << 2;
  for (let ty = 0; ty < th; ty++) {
    const r0 = f(e, 2 * ty * ks), q0 = f(od, 2 * ty * ks);
    for (let tx = 0; tx < tw; tx += 4) {
      const at = (<usize>tx) << 2;
      const g00 = v128.load(r0 + at), g01 = v128.load(q0 + at), g10 = v128.load(r0 + rs + at), g11 = v128.load(q0 + rs + at);
      const dst = f(m, ty * tw + tx);
      // A·dY: rows dy0, dy0 + dy1, dy0 - dy1, -dy1; then ·Aᵀ across: s0, s0 + s1, s0 - s1, -s1.
      gradRow(g00, g01, dst, ms, 0);
      gradRow(f32x4.add(g00, g10), f32x4.add(g01, g11), dst, ms, 4);
      gradRow(f32x4.sub(g00, g10), f32x4.sub(g01, g11), dst, ms, 8);
      gradRow(f32x4.neg(g10), f32x4.neg(g11), dst, ms, 12);
    }
  }
}

// @ts-ignore: decorator
@inline function gradRow(a: v128, b: v128, dst: usize, ms: i32, first: i32): void {
  v128.store(f(dst, first * ms), a);
  v128.store(f(dst, (first + 1) * ms), f32x4.add(a, b));
  v128.store(f(dst, (first + 2) * ms), f32x4.sub(a, b));
  v128.store(f(dst, (first + 3) * ms), f32x4.neg(b));
}

/** The work space's layout: V [16, C, Pstride] at its start, then M [16, O, Pstride], then the planes. */
// @ts-ignore: decorator
@inline function mAt(scratch: usize, c: i32, ps: i32): usize {
  return f(scratch, 16 * c * ps);
}

// @ts-ignore: decorator
@inline function planesAt(scratch: usize, c: i32, o: i32, ps: i32): usize {
  return f(scratch, 16 * (c + o) * ps);
}

/** V of images b0 .. b0 + images - 1 (every channel's tiles, image after image), from their E/O planes at e. */
function transformInputs(x: usize, b0: i32, images: i32, c: i32, h: i32, w: i32, ph: i32, pw: i32, th: i32, tw: i32, ks: i32, ps: i32, v: usize, e: usize): void {
  const tiles = th * tw;
  const od = f(e, (2 * th + 2) * ks);
  for (let g = 0; g < images; g++) {
    for (let ch = 0; ch < c; ch++) {
      splitColumns(f(x, ((b0 + g) * c + ch) * h * w), h, w, ph, pw, 2 * th + 2, ks, e, od);
      inputTransform(e, od, ks, th, tw, f(v, ch * ps + g * tiles), c * ps);
    }
  }
}

/**
 * y[B, O, OH, OW] = conv3x3(x) with the transformed filters u[16, O, C], stride 1, padding ph/pw ≤ 2.
 * `scratch`: winogradScratchFloats(...) floats; `gemmScratch`: the gemm's own.
 */
export function winogradConv3x3(x: usize, u: usize, y: usize, batch: i32, c: i32, o: i32, h: i32, w: i32, ph: i32, pw: i32, scratch: usize, gemmScratch: usize): void {
  const oh = h + 2 * ph - 2, ow = w + 2 * pw - 2;
  const th = (oh + 1) >> 1, tw = (ow + 1) >> 1, tiles = th * tw;
  const group = groupImages(batch, c, o, tiles);
  const ps = tileStride(batch, c, o, tiles), ks = roundUp4(tw) + 4;
  const v = scratch, m = mAt(scratch, c, ps), e = planesAt(scratch, c, o, ps);
  const tmp = f(e, 2 * planeFloats(th, tw));
  memory.fill(e, 0, (<usize>planeFloats(th, tw)) << 2);
  const yPlane = oh * ow;
  const yEnd = f(y, batch * o * yPlane);
  for (let b0 = 0; b0 < batch; b0 += group) {
    const images = min(group, batch - b0);
    transformInputs(x, b0, images, c, h, w, ph, pw, th, tw, ks, ps, v, e);
    const p = images * tiles;
    for (let xi = 0; xi < 16; xi++) {
      gemm(false, false, o, p, c, f(u, xi * o * c), c, f(v, xi * c * ps), ps, f(m, xi * o * ps), ps, false, gemmScratch);
    }
    for (let g = 0; g < images; g++) {
      for (let oc = 0; oc < o; oc++) {
        outputTransform(f(m, oc * ps + g * tiles), o * ps, th, tw, f(y, ((b0 + g) * o + oc) * yPlane), oh, ow, tmp, yEnd);
      }
    }
  }
}

/**
 * du[16, O, C] = Σ over the batch and tiles of dM[ξ]·V[ξ]ᵀ (written): the gradient with respect to the
 * transformed filters of the convolution winogradConv3x3 computes, given its output gradient dy.
 */
export function winogradConv3x3WeightGrad(x: usize, dy: usize, du: usize, batch: i32, c: i32, o: i32, h: i32, w: i32, ph: i32, pw: i32, scratch: usize, gemmScratch: usize): void {
  const oh = h + 2 * ph - 2, ow = w + 2 * pw - 2;
  const th = (oh + 1) >> 1, tw = (ow + 1) >> 1, tiles = th * tw;
  const group = groupImages(batch, c, o, tiles);
  const ps = tileStride(batch, c, o, tiles), ks = roundUp4(tw) + 4;
  const v = scratch, m = mAt(scratch, c, ps), e = planesAt(scratch, c, o, ps);
  const ge = f(e, planeFloats(th, tw));
  const god = f(ge, 2 * th * ks);
  memory.fill(e, 0, (<usize>(2 * planeFloats(th, tw))) << 2);
  const yPlane = oh * ow;
  for (let b0 = 0; b0 < batch; b0 += group) {
    const images = min(group, batch - b0);
    transformInputs(x, b0, images, c, h, w, ph, pw, th, tw, ks, ps, v, e);
    for (let g = 0; g < images; g++) {
      for (let oc = 0; oc < o; oc++) {
        // The output gradient's plane, split like an input with no padding (rows past OH stay zero).
        splitColumns(f(dy, ((b0 + g) * o + oc) * yPlane), oh, ow, 0, 0, 2 * th, ks, ge, god);
        outputGradTransform(ge, god, ks, th, tw, f(m, oc * ps + g * tiles), o * ps);
      }
    }
    const p = images * tiles;
    for (let xi = 0; xi < 16; xi++) {
      gemm(false, true, o, c, p, f(m, xi * o * ps), ps, f(v, xi * c * ps), ps, f(du, xi * o * c), c, b0 > 0, gemmScratch);
    }
  }
}

/**
 * u[16, O, C] = G·g·Gᵀ for each filter g = weight[o, c]; with `flip`, u[16, C, O] of the filters turned
 * by 180° (the input gradient's).
 */
export function winogradWeights(weight: usize, u: usize, o: i32, c: i32, flip: bool): void {
  const pairs = o * c;
  for (let oc = 0; oc < o; oc++) {
    for (let ch = 0; ch < c; ch++) {
      const src = f(weight, (oc * c + ch) * 9);
      const dst = f(u, flip ? ch * o + oc : oc * c + ch);
      let g0 = load<f32>(src), g1 = load<f32>(src, 4), g2 = load<f32>(src, 8);
      let g3 = load<f32>(src, 12), g4 = load<f32>(src, 16), g5 = load<f32>(src, 20);
      let g6 = load<f32>(src, 24), g7 = load<f32>(src, 28), g8 = load<f32>(src, 32);
      if (flip) {
        let t = g0; g0 = g8; g8 = t;
        t = g1; g1 = g7; g7 = t;
        t = g2; g2 = g6; g6 = t;
        t = g3; g3 = g5; g5 = t;
      }
      // s = G·g (4×3), then each row of s·Gᵀ.
      filterRow(g0, g1, g2, dst, pairs, 0);
      filterRow(0.5 * (g0 + g3 + g6), 0.5 * (g1 + g4 + g7), 0.5 * (g2 + g5 + g8), dst, pairs, 4);
      filterRow(0.5 * (g0 - g3 + g6), 0.5 * (g1 - g4 + g7), 0.5 * (g2 - g5 + g8), dst, pairs, 8);
      filterRow(g6, g7, g8, dst, pairs, 12);
    }
  }
}

// @ts-ignore: decorator
@inline function filterRow(a: f32, b: f32, c: f32, dst: usize, pairs: i32, first: i32): void {
  store<f32>(f(dst, first * pairs), a);
  store<f32>(f(dst, (first + 1) * pairs), 0.5 * (a + b + c));
  store<f32>(f(dst, (first + 2) * pairs), 0.5 * (a - b + c));
  store<f32>(f(dst, (first + 3) * pairs), c);
}

/** dWeight[O, C, 3, 3] += Gᵀ·du·G for each filter (du [16, O, C]). */
export function winogradWeightsBackward(du: usize, dWeight: usize, o: i32, c: i32): void {
  const pairs = o * c;
  for (let p = 0; p < pairs; p++) {
    const src = f(du, p);
    const dst = f(dWeight, p * 9);
    // dS = dU·G (4×3), row by row.
    let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0, s4: f32 = 0, s5: f32 = 0;
    let s6: f32 = 0, s7: f32 = 0, s8: f32 = 0, s9: f32 = 0, s10: f32 = 0, s11: f32 = 0;
    for (let i = 0; i < 4; i++) {
      const r0 = load<f32>(f(src, (4 * i) * pairs)), r1 = load<f32>(f(src, (4 * i + 1) * pairs));
      const r2 = load<f32>(f(src, (4 * i + 2) * pairs)), r3 = load<f32>(f(src, (4 * i + 3) * pairs));
      const a: f32 = r0 + 0.5 * (r1 + r2), b: f32 = 0.5 * (r1 - r2), cc: f32 = 0.5 * (r1 + r2) + r3;
      if (i == 0) { s0 = a; s1 = b; s2 = cc; }
      else if (i == 1) { s3 = a; s4 = b; s5 = cc; }
      else if (i == 2) { s6 = a; s7 = b; s8 = cc; }
      else { s9 = a; s10 = b; s11 = cc; }
    }
    // dg = Gᵀ·dS (3×3).
    addTo(dst, 0, s0 + 0.5 * (s3 + s6));
    addTo(dst, 1, s1 + 0.5 * (s4 + s7));
    addTo(dst, 2, s2 + 0.5 * (s5 + s8));
    addTo(dst, 3, 0.5 * (s3 - s6));
    addTo(dst, 4, 0.5 * (s4 - s7));
    addTo(dst, 5, 0.5 * (s5 - s8));
    addTo(dst, 6, 0.5 * (s3 + s6) + s9);
    addTo(dst, 7, 0.5 * (s4 + s7) + s10);
    addTo(dst, 8, 0.5 * (s5 + s8) + s11);
  }
}

// @ts-ignore: decorator
@inline function addTo(p: usize, i: i32, value: f32): void {
  store<f32>(f(p, i), load<f32>(f(p, i)) + value);
}
