/**
 * Packed, register-blocked matrix multiply (the GotoBLAS/BLIS scheme) in f32x4 SIMD.
 *
 * Shape legend: C[M,N] (+)= op(A)[M,K] · op(B)[K,N]; lda/ldb/ldc = row strides in floats, so a caller
 * (or a worker) can pass a sub-block of a larger matrix. MR×NR = the register tile, one per build:
 * - plain SIMD, 4×8: 8 f32x4 accumulators, 2 B vectors, 1 broadcast A value and the product. Measured
 *   on V8 (x64), 4×8 runs at the mul+add issue limit with all data in L1, while 6×8 and 5×8, which
 *   need 14-16 of the 16 vector registers, lose a quarter to spills; 2×16 ties with 4×8 but loads twice
 *   the A broadcasts per flop.
 * - relaxed SIMD, 6×8: a fused multiply-add needs no register for the product, so 12 accumulators fit
 *   (15 registers in all). With 8 accumulators an FMA loop is bound by latency, not throughput (8
 *   chains of a 4-cycle FMA issue at most 2 a cycle, and any stall loses); 12 chains keep both FMA pipes
 *   busy: 50.5 against 44.7 GFLOPS per thread on Zen 3 (medians of 60 alternating runs), while 4×12
 *   (16 registers) spills and halves the rate.
 * KC, MC, NC = the cache blocks (a KC×NR sliver of packed B stays in L1, the packed KC×NC block of B in
 * L2); MC is a multiple of both tiles' heights.
 *
 * Both operands are copied ("packed") into tile order first: packed A holds a panel's rows (4 or 6,
 * panelHeight) interleaved per k, packed B holds NR columns per k, zero-padded at the edges. That makes
 * the micro-kernel's loads contiguous whatever the transposes, and handles odd sizes without a separate
 * slow path. Where a block of B is used right away by every row panel, the kernel reads it in place.
 * A 4-column edge (N = 8·q + 4: the 100-wide layers) has a narrow kernel of its own, since a whole
 * padded tile there cost 10-16% of a 30×100×100 product.
 */

export const MR: i32 = ASC_FEATURE_RELAXED_SIMD ? 6 : 4;
export const NR: i32 = 8;
export const KC: i32 = 256;
export const MC: i32 = 96;
export const NC: i32 = 512;

import { hsum, madd } from './vmath';

/** The register tile's rows in this build (the bench counts the micro-kernel's flops with it). */
export function gemmTileRows(): i32 {
  return MR;
}

/** Floats of scratch one gemm call needs (packed A block, packed B block, one edge tile). */
export function gemmScratchFloats(): i32 {
  return MC * KC + KC * NC + MR * NR;
}

// Packed B block: for each NR-wide panel, kc rows of NR floats.
function packB(b: usize, ldb: i32, transB: bool, pc: i32, kc: i32, jc: i32, nc: i32, dst: usize): void {
  for (let j0 = 0; j0 < nc; j0 += NR) {
    const cols = min(NR, nc - j0);
    const panel = dst + <usize>(j0 * kc) * 4;
    if (!transB) {
      // B[K,N]: a panel row is NR contiguous floats of a row of B.
      let src = b + (<usize>(pc * ldb + jc + j0)) * 4;
      const stride = <usize>ldb * 4;
      if (cols == NR || cols == 4) {
        // A 4-wide panel (the narrow kernel's, which reads only a row's first 4 floats) gets no padding.
        for (let p = 0; p < kc; p++) {
          const d = panel + <usize>(p * NR) * 4;
          v128.store(d, v128.load(src));
          if (cols == NR) v128.store(d, v128.load(src, 16), 16);
          src += stride;
        }
      } else {
        for (let p = 0; p < kc; p++) {
          const d = panel + <usize>(p * NR) * 4;
          for (let c = 0; c < NR; c++) store<f32>(d + (<usize>c) * 4, c < cols ? load<f32>(src + (<usize>c) * 4) : 0);
          src += stride;
        }
      }
    } else if (cols == NR || cols == 4) {
      // B stored [N,K]: column j of op(B) is row j of B. Four k at a time: load 4 floats from each of
      // the panel's rows and transpose them in 4×4 blocks in registers. A 4-wide panel (the narrow
      // kernel's) gets one block and no padding.
      const stride = <usize>ldb * 4;
      const r0 = b + (<usize>((jc + j0) * ldb + pc)) * 4;
      let p = 0;
      for (; p + 4 <= kc; p += 4) {
        const o = (<usize>p) * 4;
        const d = panel + (<usize>(p * NR)) * 4;
        transpose4(v128.load(r0 + o), v128.load(r0 + stride + o), v128.load(r0 + 2 * stride + o), v128.load(r0 + 3 * stride + o), d, 32);
        if (cols == NR) transpose4(v128.load(r0 + 4 * stride + o), v128.load(r0 + 5 * stride + o), v128.load(r0 + 6 * stride + o), v128.load(r0 + 7 * stride + o), d + 16, 32);
      }
      for (; p < kc; p++) {
        const d = panel + <usize>(p * NR) * 4;
        for (let c = 0; c < cols; c++) store<f32>(d + (<usize>c) * 4, load<f32>(r0 + (<usize>c) * stride + (<usize>p) * 4));
      }
    } else {
      for (let c = 0; c < NR; c++) {
        const d = panel + (<usize>c) * 4;
        if (c < cols) {
          const src = b + (<usize>((jc + j0 + c) * ldb + pc)) * 4;
          for (let p = 0; p < kc; p++) store<f32>(d + (<usize>(p * NR)) * 4, load<f32>(src + (<usize>p) * 4));
        } else {
          for (let p = 0; p < kc; p++) store<f32>(d + (<usize>(p * NR)) * 4, 0);
        }
      }
    }
  }
}

/** Store the transpose of the 4×4 block with rows a, b, c, d: column q goes to dst + q·step bytes. */
// @ts-ignore: decorator
@inline function transpose4(a: v128, b: v128, c: v128, d: v128, dst: usize, step: usize): void {
  const t0 = f32x4.shuffle(a, b, 0, 4, 1, 5); // a0 b0 a1 b1
  const t1 = f32x4.shuffle(a, b, 2, 6, 3, 7); // a2 b2 a3 b3
  const t2 = f32x4.shuffle(c, d, 0, 4, 1, 5);
  const t3 = f32x4.shuffle(c, d, 2, 6, 3, 7);
  v128.store(dst, f32x4.shuffle(t0, t2, 0, 1, 4, 5));
  v128.store(dst + step, f32x4.shuffle(t0, t2, 2, 3, 6, 7));
  v128.store(dst + 2 * step, f32x4.shuffle(t1, t3, 0, 1, 4, 5));
  v128.store(dst + 3 * step, f32x4.shuffle(t1, t3, 2, 3, 6, 7));
}

/**
 * Rows of the next packed A panel when `rest` rows of the block remain. The plain build's panels are
 * all 4 rows. The relaxed build's are 6, but a block ends on 4-row panels where that computes fewer
 * rows of zeros: 32 = 6·4 + 4 + 4 rather than 6·5 + 2 padded to 6 (or to 4, on the 4-row kernel),
 * so every even M ≥ 4 is covered exactly. The 4-row kernel runs about 1.13x slower a row.
 */
// @ts-ignore: decorator
@inline function panelHeight(rest: i32): i32 {
  if (MR == 4) return 4;
  return rest > 8 || rest == 6 || rest == 5 ? 6 : 4;
}

// Packed A block: for each panel (panelHeight rows h), kc groups of h floats (one per row), the
// panel starting at its first row times kc; a last panel with fewer rows is zero-padded to h.
function packA(a: usize, lda: i32, transA: bool, ic: i32, mc: i32, pc: i32, kc: i32, dst: usize): void {
  for (let i0 = 0; i0 < mc; ) {
    const h = panelHeight(mc - i0);
    const rows = min(h, mc - i0);
    const panel = dst + <usize>(i0 * kc) * 4;
    const group = <usize>h * 4;
    if (transA) {
      // A stored [K,M]: h consecutive floats of a row of A are one group.
      let src = a + (<usize>(pc * lda + ic + i0)) * 4;
      const stride = <usize>lda * 4;
      if (rows == h) {
        for (let p = 0; p < kc; p++) {
          const d = panel + (<usize>p) * group;
          v128.store(d, v128.load(src));
          if (h == 6) store<u64>(d, load<u64>(src, 16), 16);
          src += stride;
        }
      } else {
        for (let p = 0; p < kc; p++) {
          const d = panel + (<usize>p) * group;
          for (let r = 0; r < h; r++) store<f32>(d + (<usize>r) * 4, r < rows ? load<f32>(src + (<usize>r) * 4) : 0);
          src += stride;
        }
      }
    } else if (rows == h) {
      // A[M,K]: h rows, four k at a time, transposed in registers (rows 0-3 as a 4×4 block; in a
      // 6-row panel, rows 4 and 5 interleaved in pairs and stored 8 bytes a group).
      const stride = <usize>lda * 4;
      const r0 = a + (<usize>((ic + i0) * lda + pc)) * 4;
      let p = 0;
      for (; p + 4 <= kc; p += 4) {
        const o = (<usize>p) * 4;
        const d = panel + (<usize>p) * group;
        transpose4(v128.load(r0 + o), v128.load(r0 + stride + o), v128.load(r0 + 2 * stride + o), v128.load(r0 + 3 * stride + o), d, group);
        if (h == 6) {
          const r4 = v128.load(r0 + 4 * stride + o), r5 = v128.load(r0 + 5 * stride + o);
          const lo = f32x4.shuffle(r4, r5, 0, 4, 1, 5); // r4[0] r5[0] r4[1] r5[1]
          const hi = f32x4.shuffle(r4, r5, 2, 6, 3, 7);
          v128.store64_lane(d + 16, lo, 0);
          v128.store64_lane(d + group + 16, lo, 1);
          v128.store64_lane(d + 2 * group + 16, hi, 0);
          v128.store64_lane(d + 3 * group + 16, hi, 1);
        }
      }
      for (; p < kc; p++) {
        const d = panel + (<usize>p) * group;
        for (let r = 0; r < h; r++) store<f32>(d + (<usize>r) * 4, load<f32>(r0 + (<usize>r) * stride + (<usize>p) * 4));
      }
    } else {
      for (let r = 0; r < h; r++) {
        const d = panel + (<usize>r) * 4;
        if (r < rows) {
          const src = a + (<usize>((ic + i0 + r) * lda + pc)) * 4;
          for (let p = 0; p < kc; p++) store<f32>(d + (<usize>p) * group, load<f32>(src + (<usize>p) * 4));
        } else {
          for (let p = 0; p < kc; p++) store<f32>(d + (<usize>p) * group, 0);
        }
      }
    }
    i0 += h;
  }
}

// C tile [MR,NR] at c (row stride ldc floats) = packed A panel · packed B panel, plus C when `fromC`.
// @ts-ignore: decorator
@inline function microKernel(kc: i32, pa: usize, pb: usize, sb: usize, c: usize, ldc: i32, fromC: bool): void {
  if (MR == 6) microKernel6x8(kc, pa, pb, sb, c, ldc, fromC);
  else microKernel4x8(kc, pa, pb, sb, c, ldc, fromC, false);
}

/** Add (when `add`) the C row at c to the accumulators r0, r1 and store them there. */
// @ts-ignore: decorator
@inline function storeRow(c: usize, r0: v128, r1: v128, add: bool): void {
  if (add) {
    r0 = f32x4.add(r0, v128.load(c));
    r1 = f32x4.add(r1, v128.load(c, 16));
  }
  v128.store(c, r0);
  v128.store(c, r1, 16);
}

// A 4-row panel (groups of 4 floats): the whole tile in the plain build; in the relaxed build the
// panels that end a block of rows (panelHeight). B's rows are sb bytes apart (32 when packed).
// Its sums round as the 6×8 kernel's do, so a row gives the same bits in either kernel (and one and
// two threads agree however the rows are split): from C when `fromC`, else from zero, with C added
// after when `addC` (a later K block).
function microKernel4x8(kc: i32, pa: usize, pb: usize, sb: usize, c: usize, ldc: i32, fromC: bool, addC: bool): void {
  const s = <usize>ldc * 4;
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  if (fromC) {
    c00 = v128.load(c); c01 = v128.load(c, 16);
    c10 = v128.load(c + s); c11 = v128.load(c + s, 16);
    c20 = v128.load(c + 2 * s); c21 = v128.load(c + 2 * s, 16);
    c30 = v128.load(c + 3 * s); c31 = v128.load(c + 3 * s, 16);
  }
  for (let p = 0; p < kc; p++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c00 = madd(a, b0, c00);
    c01 = madd(a, b1, c01);
    a = v128.load32_splat(pa, 4);
    c10 = madd(a, b0, c10);
    c11 = madd(a, b1, c11);
    a = v128.load32_splat(pa, 8);
    c20 = madd(a, b0, c20);
    c21 = madd(a, b1, c21);
    a = v128.load32_splat(pa, 12);
    c30 = madd(a, b0, c30);
    c31 = madd(a, b1, c31);
    pa += 16;
    pb += sb;
  }
  storeRow(c, c00, c01, addC);
  storeRow(c + s, c10, c11, addC);
  storeRow(c + 2 * s, c20, c21, addC);
  storeRow(c + 3 * s, c30, c31, addC);
}

/** C tile [MR,NR] at c (row stride ldc floats) += the tile at t (row stride NR). */
// @ts-ignore: decorator
@inline function addTile(t: usize, c: usize, ldc: i32): void {
  const s = <usize>ldc * 4;
  for (let r = 0; r < MR; r++) {
    const row = c + (<usize>r) * s;
    const src = t + (<usize>(r * NR)) * 4;
    v128.store(row, f32x4.add(v128.load(row), v128.load(src)));
    v128.store(row, f32x4.add(v128.load(row, 16), v128.load(src, 16)), 16);
  }
}

// The accumulators start from C when `fromC` and the tile is stored unconditionally: an epilogue that
// loads C needs a 16th vector register, and V8 then spills an accumulator inside the loop (half speed).
function microKernel6x8(kc: i32, pa: usize, pb: usize, sb: usize, c: usize, ldc: i32, fromC: bool): void {
  const s = <usize>ldc * 4;
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0);
  let c50 = f32x4.splat(0), c51 = f32x4.splat(0);
  if (fromC) {
    c00 = v128.load(c); c01 = v128.load(c, 16);
    c10 = v128.load(c + s); c11 = v128.load(c + s, 16);
    c20 = v128.load(c + 2 * s); c21 = v128.load(c + 2 * s, 16);
    c30 = v128.load(c + 3 * s); c31 = v128.load(c + 3 * s, 16);
    c40 = v128.load(c + 4 * s); c41 = v128.load(c + 4 * s, 16);
    c50 = v128.load(c + 5 * s); c51 = v128.load(c + 5 * s, 16);
  }
  for (let p = 0; p < kc; p++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c00 = madd(a, b0, c00);
    c01 = madd(a, b1, c01);
    a = v128.load32_splat(pa, 4);
    c10 = madd(a, b0, c10);
    c11 = madd(a, b1, c11);
    a = v128.load32_splat(pa, 8);
    c20 = madd(a, b0, c20);
    c21 = madd(a, b1, c21);
    a = v128.load32_splat(pa, 12);
    c30 = madd(a, b0, c30);
    c31 = madd(a, b1, c31);
    a = v128.load32_splat(pa, 16);
    c40 = madd(a, b0, c40);
    c41 = madd(a, b1, c41);
    a = v128.load32_splat(pa, 20);
    c50 = madd(a, b0, c50);
    c51 = madd(a, b1, c51);
    pa += 24;
    pb += sb;
  }
  v128.store(c, c00); v128.store(c, c01, 16);
  v128.store(c + s, c10); v128.store(c + s, c11, 16);
  v128.store(c + 2 * s, c20); v128.store(c + 2 * s, c21, 16);
  v128.store(c + 3 * s, c30); v128.store(c + 3 * s, c31, 16);
  v128.store(c + 4 * s, c40); v128.store(c + 4 * s, c41, 16);
  v128.store(c + 5 * s, c50); v128.store(c + 5 * s, c51, 16);
}

/**
 * The 4-column edge of C (N = 8·q + 4, as the 100-wide layers of the paper's network): an h×4 tile
 * (h = 4 or 6), one accumulator per row, B's first 4 floats per k, sb bytes apart. The 8-wide kernels
 * computed it as a whole tile in scratch, half of it padding, and copied it back a float at a time.
 * Each sum runs the same chain as in the 8-wide kernels (from C when `fromC`, else from zero, then
 * C added when `addC`), so the edge rounds exactly as it did.
 */
function microKernelNarrow(h: i32, kc: i32, pa: usize, pb: usize, sb: usize, c: usize, ldc: i32, fromC: bool, addC: bool): void {
  // One body for both heights: inlined with a constant h, each copy keeps only its own rows' code.
  if (h == 6) narrowTile(6, kc, pa, pb, sb, c, ldc, fromC, addC);
  else narrowTile(4, kc, pa, pb, sb, c, ldc, fromC, addC);
}

// @ts-ignore: decorator
@inline function narrowTile(h: i32, kc: i32, pa: usize, pb: usize, sb: usize, c: usize, ldc: i32, fromC: bool, addC: bool): void {
  const s = <usize>ldc * 4;
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0);
  let c3 = f32x4.splat(0), c4 = f32x4.splat(0), c5 = f32x4.splat(0);
  if (fromC) {
    c0 = v128.load(c); c1 = v128.load(c + s); c2 = v128.load(c + 2 * s); c3 = v128.load(c + 3 * s);
    if (h == 6) {
      c4 = v128.load(c + 4 * s); c5 = v128.load(c + 5 * s);
    }
  }
  const group = (<usize>h) * 4;
  for (let p = 0; p < kc; p++) {
    const b = v128.load(pb);
    c0 = madd(v128.load32_splat(pa), b, c0);
    c1 = madd(v128.load32_splat(pa, 4), b, c1);
    c2 = madd(v128.load32_splat(pa, 8), b, c2);
    c3 = madd(v128.load32_splat(pa, 12), b, c3);
    if (h == 6) {
      c4 = madd(v128.load32_splat(pa, 16), b, c4);
      c5 = madd(v128.load32_splat(pa, 20), b, c5);
    }
    pa += group;
    pb += sb;
  }
  storeQuarter(c, c0, addC);
  storeQuarter(c + s, c1, addC);
  storeQuarter(c + 2 * s, c2, addC);
  storeQuarter(c + 3 * s, c3, addC);
  if (h == 6) {
    storeQuarter(c + 4 * s, c4, addC);
    storeQuarter(c + 5 * s, c5, addC);
  }
}

/** Add (when `add`) the 4 floats of C at c to the accumulator r and store it there. */
// @ts-ignore: decorator
@inline function storeQuarter(c: usize, r: v128, add: bool): void {
  v128.store(c, add ? f32x4.add(r, v128.load(c)) : r);
}

// ---- A·Bᵀ with few columns and a long K, as dot products ----

/**
 * A·Bᵀ with fewer than DOT_MAX_N columns and K at least DOT_MIN_K is computed as dot products (gemmDot).
 * Below that K the packed path kept up (a 64×128×10 output layer ran 8% slower as dots). With N < 16,
 * two threads split such a product by rows (gemmChunked), so every value is computed the same way.
 */
export const DOT_MAX_N: i32 = 16;
export const DOT_MIN_K: i32 = 256;

/**
 * Whether gemm computes this product as dot products (gemmDot), in place. The backend asks before
 * computing a product transposed: this form wastes no tile on a narrow side.
 */
export function gemmInPlace(transA: bool, transB: bool, n: i32, k: i32): bool {
  return !transA && transB && n < DOT_MAX_N && k >= DOT_MIN_K;
}

/** The dot product of the K floats at x and at y: four lanes over k (multiples of 4), their sum, then the rest in order. */
// @ts-ignore: decorator
@inline function dotFinish(v: v128, x: usize, y: usize, k4: i32, k: i32): f32 {
  let s = hsum(v);
  for (let p = k4; p < k; p++) s += load<f32>(x + (<usize>p) * 4) * load<f32>(y + (<usize>p) * 4);
  return s;
}

// @ts-ignore: decorator
@inline function storeDot(c: usize, s: f32, accumulate: bool): void {
  store<f32>(c, accumulate ? load<f32>(c) + s : s);
}

/**
 * C[M,N] (+)= A[M,K]·B[N,K]ᵀ with N < DOT_MAX_N and K ≥ DOT_MIN_K, A and B read in place: every value
 * is the dot product of a row of A and a row of B, both contiguous — a convolution's weight gradient
 * with one input channel (dy_b[O, L]·cols[9, L]ᵀ, K = 784) or the forward of an output layer (N = 10)
 * after a wide one.
 * Packed, N pads to 8-column tiles and each value of both operands is copied for only N or M uses.
 * Blocks of 3 rows by 3 columns (9 accumulators, 6 loads for 9 multiply-adds); the rest one value at
 * a time, summed in the same order, so a value's bits do not depend on its block.
 */
function gemmDot(m: i32, n: i32, k: i32, a: usize, lda: i32, b: usize, ldb: i32, c: usize, ldc: i32, accumulate: bool): void {
  const sa = (<usize>lda) * 4, sb = (<usize>ldb) * 4, sc = (<usize>ldc) * 4;
  const k4 = k & ~3;
  const m3 = m - m % 3, n3 = n - n % 3;
  for (let i = 0; i < m3; i += 3) {
    const a0 = a + (<usize>i) * sa, a1 = a0 + sa, a2 = a1 + sa;
    const ci = c + (<usize>i) * sc;
    for (let j = 0; j < n3; j += 3) {
      const b0 = b + (<usize>j) * sb, b1 = b0 + sb, b2 = b1 + sb;
      let d00 = f32x4.splat(0), d01 = f32x4.splat(0), d02 = f32x4.splat(0);
      let d10 = f32x4.splat(0), d11 = f32x4.splat(0), d12 = f32x4.splat(0);
      let d20 = f32x4.splat(0), d21 = f32x4.splat(0), d22 = f32x4.splat(0);
      for (let p = 0; p < k4; p += 4) {
        const o = (<usize>p) * 4;
        const v0 = v128.load(b0 + o), v1 = v128.load(b1 + o), v2 = v128.load(b2 + o);
        let u = v128.load(a0 + o);
        d00 = madd(u, v0, d00); d01 = madd(u, v1, d01); d02 = madd(u, v2, d02);
        u = v128.load(a1 + o);
        d10 = madd(u, v0, d10); d11 = madd(u, v1, d11); d12 = madd(u, v2, d12);
        u = v128.load(a2 + o);
        d20 = madd(u, v0, d20); d21 = madd(u, v1, d21); d22 = madd(u, v2, d22);
      }
      const cj = ci + (<usize>j) * 4;
      storeDot(cj, dotFinish(d00, a0, b0, k4, k), accumulate);
      storeDot(cj + 4, dotFinish(d01, a0, b1, k4, k), accumulate);
      storeDot(cj + 8, dotFinish(d02, a0, b2, k4, k), accumulate);
      storeDot(cj + sc, dotFinish(d10, a1, b0, k4, k), accumulate);
      storeDot(cj + sc + 4, dotFinish(d11, a1, b1, k4, k), accumulate);
      storeDot(cj + sc + 8, dotFinish(d12, a1, b2, k4, k), accumulate);
      storeDot(cj + 2 * sc, dotFinish(d20, a2, b0, k4, k), accumulate);
      storeDot(cj + 2 * sc + 4, dotFinish(d21, a2, b1, k4, k), accumulate);
      storeDot(cj + 2 * sc + 8, dotFinish(d22, a2, b2, k4, k), accumulate);
    }
  }
  // The values outside the 3×3 blocks: the last m % 3 rows, and the last n % 3 columns of the others.
  for (let i = 0; i < m; i++) {
    const ai = a + (<usize>i) * sa;
    for (let j = i < m3 ? n3 : 0; j < n; j++) {
      const bj = b + (<usize>j) * sb;
      let d = f32x4.splat(0);
      for (let p = 0; p < k4; p += 4) d = madd(v128.load(ai + (<usize>p) * 4), v128.load(bj + (<usize>p) * 4), d);
      storeDot(c + (<usize>i) * sc + (<usize>j) * 4, dotFinish(d, ai, bj, k4, k), accumulate);
    }
  }
}

/**
 * C[M,N] = op(A)·op(B), or += when `accumulate`. All pointers are byte addresses in this memory;
 * `scratch` holds gemmScratchFloats() floats, 16-byte aligned, private to the caller's thread.
 */
export function gemm(transA: bool, transB: bool, m: i32, n: i32, k: i32, a: usize, lda: i32, b: usize, ldb: i32, c: usize, ldc: i32, accumulate: bool, scratch: usize): void {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate) for (let i = 0; i < m; i++) memory.fill(c + (<usize>(i * ldc)) * 4, 0, <usize>n * 4);
    return;
  }
  if (gemmInPlace(transA, transB, n, k)) {
    gemmDot(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
    return;
  }
  const packedA = scratch;
  const packedB = scratch + (<usize>(MC * KC)) * 4;
  const tile = packedB + (<usize>(KC * NC)) * 4;
  // Equal K blocks (784 = 4 × 196, not 3 × 256 + 16): no short, inefficient last block.
  const kBlocks = (k + KC - 1) / KC;
  const kcStep = (k + kBlocks - 1) / kBlocks;
  // B read in place, 8 floats a row ldb apart, instead of packed: where every row panel of a block of C
  // uses a B panel right after the first one brought it into L1, and any later block of rows finds its
  // rows still in L2 (one block of rows, or at most 128 KB of them), and where the row stride spreads a
  // panel's kc lines over the cache's sets (a stride of 64 floats or a multiple maps them to a quarter
  // of the sets or fewer). Packing B would copy all of it once more: a convolution's [K, L] columns.
  const direct = !transB && ldb % 64 != 0 && (m <= MC || min(k, KC) * ldb <= 32768);
  const directStride = (<usize>ldb) * 4;
  for (let jc = 0; jc < n; jc += NC) {
    const nc = min(NC, n - jc);
    for (let pc = 0; pc < k; pc += kcStep) {
      const kc = min(kcStep, k - pc);
      if (!direct) packB(b, ldb, transB, pc, kc, jc, nc, packedB);
      for (let ic = 0; ic < m; ic += MC) {
        const mc = min(MC, m - ic);
        packA(a, lda, transA, ic, mc, pc, kc, packedA);
        for (let jr = 0; jr < nc; jr += NR) {
          const cols = min(NR, nc - jr);
          let pb = packedB + (<usize>(jr * kc)) * 4;
          let sb: usize = 32;
          if (direct) {
            if (cols == NR || cols == 4) {
              pb = b + (<usize>(pc * ldb + jc + jr)) * 4;
              sb = directStride;
            } else {
              // A narrower last panel is packed (zero-padded), except a 4-wide one: the narrow kernel reads 4 floats a row.
              packB(b, ldb, false, pc, kc, jc + jr, cols, packedB);
              pb = packedB;
            }
          }
          for (let ir = 0; ir < mc; ) {
            const h = panelHeight(mc - ir);
            const rows = min(h, mc - ir);
            const pa = packedA + (<usize>(ir * kc)) * 4;
            const cTile = c + (<usize>((ic + ir) * ldc + jc + jr)) * 4;
            if (cols == NR && rows == h) {
              if (pc == 0) {
                if (h == 6) microKernel6x8(kc, pa, pb, sb, cTile, ldc, accumulate);
                else microKernel4x8(kc, pa, pb, sb, cTile, ldc, accumulate, false);
              } else if (h == 6) {
                // A later K block: its partial sums from zero, added to C after, as the 4-row kernel does.
                // Continuing the 6×8 kernel's chain from C would sum all of K in one sequence, which
                // doubled the rounding error of the CNN's 1568-long products against PyTorch's.
                microKernel6x8(kc, pa, pb, sb, tile, NR, false);
                addTile(tile, cTile, ldc);
              } else microKernel4x8(kc, pa, pb, sb, cTile, ldc, false, true);
            } else if (cols == 4 && rows == h) {
              // The 4-column edge, straight into C.
              microKernelNarrow(h, kc, pa, pb, sb, cTile, ldc, accumulate && pc == 0, pc > 0);
            } else {
              // Edge tile: a full tile in scratch, of which only the valid part is written back. It
              // starts from C's valid part where a full tile would, so it rounds as a full tile does.
              const fromC = accumulate && pc == 0;
              if (fromC) {
                memory.fill(tile, 0, <usize>(MR * NR) * 4);
                for (let r = 0; r < rows; r++) {
                  memory.copy(tile + (<usize>(r * NR)) * 4, cTile + (<usize>(r * ldc)) * 4, (<usize>cols) * 4);
                }
              }
              if (cols == 4) microKernelNarrow(h, kc, pa, pb, sb, tile, NR, fromC, false);
              else if (h == 6) microKernel6x8(kc, pa, pb, sb, tile, NR, fromC);
              else microKernel4x8(kc, pa, pb, sb, tile, NR, fromC, false);
              for (let r = 0; r < rows; r++) {
                const dst = cTile + (<usize>(r * ldc)) * 4;
                const src = tile + (<usize>(r * NR)) * 4;
                for (let q = 0; q < cols; q++) {
                  const v = load<f32>(src + (<usize>q) * 4);
                  store<f32>(dst + (<usize>q) * 4, pc > 0 ? load<f32>(dst + (<usize>q) * 4) + v : v);
                }
              }
            }
            ir += h;
          }
        }
      }
    }
  }
}

/**
 * C[M,N] = or += Tᵀ, where T[N,M] (row stride m) is a product computed transposed, Cᵀ = op(B)ᵀ·op(A)ᵀ:
 * the backend does that when the transposed shape wastes much less of the register tiles (a 16×9
 * weight gradient is one 6-row panel and one 4-row panel by two 8-wide ones transposed, against
 * 16 rows by 16 columns of which 7 are padding). Small outputs only, so a plain loop.
 */
export function addTransposed(t: usize, c: usize, m: i32, n: i32, ldc: i32, accumulate: bool): void {
  for (let i = 0; i < m; i++) {
    const row = c + (<usize>(i * ldc)) * 4;
    let src = t + (<usize>i) * 4;
    const step = (<usize>m) * 4;
    for (let j = 0; j < n; j++, src += step) {
      const dst = row + (<usize>j) * 4;
      const v = load<f32>(src);
      store<f32>(dst, accumulate ? load<f32>(dst) + v : v);
    }
  }
}

/**
 * Not a kernel: the micro-kernel alone, `repeats` times on one L1-resident pair of panels (kc = KC), so
 * the bench can report the f32x4 multiply-add rate this engine reaches with no memory traffic.
 * Performs 2·MR·NR·KC·repeats flops (MR: gemmTileRows()); `scratch` as for gemm.
 */
export function microKernelPeak(repeats: i32, scratch: usize): void {
  const pa = scratch;
  const pb = scratch + (<usize>(MC * KC)) * 4;
  const tile = pb + (<usize>(KC * NC)) * 4;
  for (let i = 0; i < repeats; i++) microKernel(KC, pa, pb, 32, tile, NR, true);
}

/**
 * gemm split into `chunks` blocks of C columns (or rows, when `byColumns` is false) of whole register
 * tiles, claimed one at a time through an atomic counter at `counter` (an i32 the caller zeroed). Every
 * thread working on the product calls this with the same arguments and its own scratch: whoever is free
 * takes the next block, so a worker the OS has not scheduled yet costs nothing (the calling thread takes
 * its blocks too). Each block runs the same loops as a single gemm, so the result is bit for bit the
 * single-thread result.
 */
export function gemmChunked(transA: bool, transB: bool, m: i32, n: i32, k: i32, a: usize, lda: i32, b: usize, ldb: i32, c: usize, ldc: i32, accumulate: bool, scratch: usize, counter: usize, chunks: i32, byColumns: bool): void {
  const total = byColumns ? n : m;
  const unit = byColumns ? NR : MR;
  const units = (total + unit - 1) / unit;
  for (;;) {
    const i = atomic.add<i32>(counter, 1);
    if (i >= chunks) return;
    const start = ((i * units) / chunks) * unit;
    const end = min(total, (((i + 1) * units) / chunks) * unit);
    if (start >= end) continue;
    if (byColumns) {
      const bs = transB ? b + (<usize>(start * ldb)) * 4 : b + (<usize>start) * 4;
      gemm(transA, transB, m, end - start, k, a, lda, bs, ldb, c + (<usize>start) * 4, ldc, accumulate, scratch);
    } else {
      const as = transA ? a + (<usize>start) * 4 : a + (<usize>(start * lda)) * 4;
      gemm(transA, transB, end - start, n, k, as, lda, b, ldb, c + (<usize>(start * ldc)) * 4, ldc, accumulate, scratch);
    }
  }
}
