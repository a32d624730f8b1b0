/**
 * Winograd's minimal filtering F(2×2, 3×3) for 3×3 convolutions with stride 1 (Lavin & Gray, "Fast
 * Algorithms for Convolutional Neural Networks", 2016), as the reference backend computes it; the
 * wasm backend computes the same transforms with SIMD over tiles (assembly/winograd.ts).
 *
 * The output is cut into 2×2 tiles. The 4×4 input patch d under a tile (rows 2·ty - padH .. +3, columns
 * 2·tx - padW .. +3, zeros outside the image) and each 3×3 filter g are transformed,
 *   V = Bᵀ·d·B (4×4),  U = G·g·Gᵀ (4×4),
 * so that one output tile is Y = Aᵀ·M·A with M[ξ] = Σ_c U[o,c][ξ]·V[c][ξ] for each of the 16 positions
 * ξ: 16 products per channel pair and tile instead of 36, and the sums over c are 16 matrix products
 * M[ξ] (O×tiles) = U[ξ] (O×C) · V[ξ] (C×tiles), which is where a fast backend spends its time.
 *   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]   Aᵀ = [1 1 1 0; 0 1 -1 -1]
 *
 * The backward needs no new algorithm:
 * - dx is a convolution too: the full correlation of dy with each filter turned by 180° and the
 *   channel axes swapped (`winogradWeights` with `flip`), with padding 2 - pad.
 * - dWeight is the adjoint of the forward: dU[ξ] = Σ_tiles dM[ξ]·V[ξ]ᵀ with dM = A·dY·Aᵀ (the adjoint of
 *   the output transform), then dg = Gᵀ·dU·G (the adjoint of the filter transform).
 * The transforms only add, subtract and halve, so the results stay within a few float roundings of
 * im2col's (test/conv.test.ts); they are not bit for bit the same sums.
 *
 * Shape legend: x [B, C, H, W], y [B, O, OH, OW] with OH = H + 2·padH - 2; u, du [16, O, C] (ξ-major);
 * T = tiles per image.
 */
import type { Kernels } from './kernels.js';

/** Whether a convolution can run as Winograd F(2×2, 3×3): a 3×3 kernel, stride 1, padding 0-2 (the input gradient pads by 2 - pad). */
export function winogradFits(kernel: readonly [number, number], stride: readonly [number, number], padding: readonly [number, number]): boolean {
  return kernel[0] === 3 && kernel[1] === 3 && stride[0] === 1 && stride[1] === 1 && padding[0] <= 2 && padding[1] <= 2;
}

/** Output size and 2×2 tile counts of a Winograd convolution of an H×W input. */
export function winogradTiles(height: number, width: number, padH: number, padW: number): { outH: number; outW: number; tilesH: number; tilesW: number } {
  const outH = height + 2 * padH - 2;
  const outW = width + 2 * padW - 2;
  return { outH, outW, tilesH: (outH + 1) >> 1, tilesW: (outW + 1) >> 1 };
}

/**
 * U[ξ, o, c] = (G·g·Gᵀ)[ξ] for g = weight[o, c] (3×3); with `flip`, the filters of the input gradient:
 * U[ξ, c, o] for g = weight[o, c] turned by 180°.
 */
export function winogradWeights(weight: Float32Array, u: Float32Array, outChannels: number, inChannels: number, flip: boolean): void {
  const g = new Float64Array(9);
  const t = new Float64Array(16);
  const pairs = outChannels * inChannels;
  for (let o = 0; o < outChannels; o++) {
    for (let c = 0; c < inChannels; c++) {
      const src = (o * inChannels + c) * 9;
      for (let i = 0; i < 9; i++) g[i] = weight[src + (flip ? 8 - i : i)];
      filterTransform(g, t);
      const dst = flip ? c * outChannels + o : o * inChannels + c;
      for (let xi = 0; xi < 16; xi++) u[xi * pairs + dst] = t[xi];
    }
  }
}

/** dWeight[o, c] += Gᵀ·dU[·, o, c]·G: the filter gradient from its gradient in the transformed domain. */
export function winogradWeightsBackward(du: Float32Array, dWeight: Float32Array, outChannels: number, inChannels: number): void {
  const d = new Float64Array(16);
  const s = new Float64Array(12);
  const pairs = outChannels * inChannels;
  for (let p = 0; p < pairs; p++) {
    for (let xi = 0; xi < 16; xi++) d[xi] = du[xi * pairs + p];
    // dS = dU·G (4×3), then dg = Gᵀ·dS (3×3).
    for (let i = 0; i < 4; i++) {
      const r = d.subarray(4 * i, 4 * i + 4);
      s[3 * i] = r[0] + 0.5 * (r[1] + r[2]);
      s[3 * i + 1] = 0.5 * (r[1] - r[2]);
      s[3 * i + 2] = 0.5 * (r[1] + r[2]) + r[3];
    }
    const dst = p * 9;
    for (let j = 0; j < 3; j++) {
      dWeight[dst + j] += Math.fround(s[j] + 0.5 * (s[3 + j] + s[6 + j]));
      dWeight[dst + 3 + j] += Math.fround(0.5 * (s[3 + j] - s[6 + j]));
      dWeight[dst + 6 + j] += Math.fround(0.5 * (s[3 + j] + s[6 + j]) + s[9 + j]);
    }
  }
}

/** The backend's matrix product, which runs the 16 products of a Winograd convolution. */
type Matmul = Kernels['matmul'];

/**
 * y[b, o] = Σ_c conv3x3(x[b, c], weight[o, c]) with the filters transformed to u (`winogradWeights`),
 * stride 1, one image at a time: V = the transformed tiles [16, C, T], M[ξ] = U[ξ]·V[ξ], then the
 * output transform of every tile.
 */
export function winogradConv3x3(matmul: Matmul, x: Float32Array, u: Float32Array, y: Float32Array, batch: number, inChannels: number, outChannels: number, height: number, width: number, padH: number, padW: number): void {
  const { outH, outW, tilesH, tilesW } = winogradTiles(height, width, padH, padW);
  const tiles = tilesH * tilesW;
  const v = new Float32Array(16 * inChannels * tiles);
  const m = new Float32Array(16 * outChannels * tiles);
  const r0 = new Float64Array(4), r1 = new Float64Array(4);
  const pairs = outChannels * inChannels;
  for (let b = 0; b < batch; b++) {
    transformInputs(x, b, inChannels, height, width, padH, padW, tilesH, tilesW, v);
    for (let xi = 0; xi < 16; xi++) {
      matmul(u.subarray(xi * pairs, (xi + 1) * pairs), v.subarray(xi * inChannels * tiles, (xi + 1) * inChannels * tiles), m.subarray(xi * outChannels * tiles, (xi + 1) * outChannels * tiles), outChannels, inChannels, tiles);
    }
    for (let o = 0; o < outChannels; o++) {
      const plane = (b * outChannels + o) * outH * outW;
      for (let t = 0; t < tiles; t++) {
        // Y = Aᵀ·M·A: rows 0 + 1 + 2 and 1 - 2 - 3 of M (r0, r1), then the same across their columns.
        for (let j = 0; j < 4; j++) {
          const at = (i: number) => m[((4 * i + j) * outChannels + o) * tiles + t];
          r0[j] = at(0) + at(1) + at(2);
          r1[j] = at(1) - at(2) - at(3);
        }
        const oy = 2 * Math.floor(t / tilesW), ox = 2 * (t % tilesW);
        // Only the outputs inside the image: an odd size leaves half a tile.
        y[plane + oy * outW + ox] = r0[0] + r0[1] + r0[2];
        if (ox + 1 < outW) y[plane + oy * outW + ox + 1] = r0[1] - r0[2] - r0[3];
        if (oy + 1 < outH) {
          y[plane + (oy + 1) * outW + ox] = r1[0] + r1[1] + r1[2];
          if (ox + 1 < outW) y[plane + (oy + 1) * outW + ox + 1] = r1[1] - r1[2] - r1[3];
        }
      }
    }
  }
}

/**
 * du[ξ, o, c] = Σ_b Σ_tiles dM[ξ, o]·V[ξ, c] (written, not accumulated): the gradient of the loss with
 * respect to U, for `winogradWeightsBackward` to turn into the filter gradient. dM = A·dY·Aᵀ of each
 * tile's 2×2 output gradient (the output transform's adjoint); the sum over tiles is dM[ξ]·V[ξ]ᵀ.
 */
export function winogradConv3x3WeightGrad(matmul: Matmul, x: Float32Array, dy: Float32Array, du: Float32Array, batch: number, inChannels: number, outChannels: number, height: number, width: number, padH: number, padW: number): void {
  const { outH, outW, tilesH, tilesW } = winogradTiles(height, width, padH, padW);
  const tiles = tilesH * tilesW;
  const v = new Float32Array(16 * inChannels * tiles);
  const dm = new Float32Array(16 * outChannels * tiles);
  const pairs = outChannels * inChannels;
  for (let b = 0; b < batch; b++) {
    transformInputs(x, b, inChannels, height, width, padH, padW, tilesH, tilesW, v);
    for (let o = 0; o < outChannels; o++) {
      const plane = (b * outChannels + o) * outH * outW;
      const at = (r: number, c: number) => (r < outH && c < outW ? dy[plane + r * outW + c] : 0); // 0 past an odd edge
      for (let t = 0; t < tiles; t++) {
        const oy = 2 * Math.floor(t / tilesW), ox = 2 * (t % tilesW);
        const g00 = at(oy, ox), g01 = at(oy, ox + 1), g10 = at(oy + 1, ox), g11 = at(oy + 1, ox + 1);
        // A·dY (4×2): rows dy0, dy0 + dy1, dy0 - dy1, -dy1; then ·Aᵀ across each row.
        const s = [g00, g01, g00 + g10, g01 + g11, g00 - g10, g01 - g11, -g10, -g11];
        for (let i = 0; i < 4; i++) {
          const a = s[2 * i], c = s[2 * i + 1];
          const row = [a, a + c, a - c, -c];
          for (let j = 0; j < 4; j++) dm[((4 * i + j) * outChannels + o) * tiles + t] = row[j];
        }
      }
    }
    for (let xi = 0; xi < 16; xi++) {
      matmul(dm.subarray(xi * outChannels * tiles, (xi + 1) * outChannels * tiles), v.subarray(xi * inChannels * tiles, (xi + 1) * inChannels * tiles), du.subarray(xi * pairs, (xi + 1) * pairs), outChannels, tiles, inChannels, { transB: true, accumulate: b > 0 });
    }
  }
}

/** v[ξ, c, t] = (Bᵀ·d·B)[ξ] for the 4×4 patch d under every tile t of every channel of image b. */
function transformInputs(x: Float32Array, b: number, channels: number, height: number, width: number, padH: number, padW: number, tilesH: number, tilesW: number, v: Float32Array): void {
  const tiles = tilesH * tilesW;
  const d = new Float32Array(16);
  const bd = new Float32Array(16); // Bᵀ·d
  for (let c = 0; c < channels; c++) {
    const plane = (b * channels + c) * height * width;
    for (let t = 0; t < tiles; t++) {
      const row = 2 * Math.floor(t / tilesW) - padH, col = 2 * (t % tilesW) - padW;
      for (let i = 0; i < 4; i++) {
        for (let j = 0; j < 4; j++) {
          const r = row + i, q = col + j;
          d[4 * i + j] = r >= 0 && r < height && q >= 0 && q < width ? x[plane + r * width + q] : 0;
        }
      }
      // t = Bᵀ·d down the columns (rows 0 - 2, 1 + 2, 2 - 1, 1 - 3), then t·B across each row (the same).
      for (let j = 0; j < 4; j++) {
        const d0 = d[j], d1 = d[4 + j], d2 = d[8 + j], d3 = d[12 + j];
        bd[j] = d0 - d2;
        bd[4 + j] = d1 + d2;
        bd[8 + j] = d2 - d1;
        bd[12 + j] = d1 - d3;
      }
      for (let i = 0; i < 4; i++) {
        const t0 = bd[4 * i], t1 = bd[4 * i + 1], t2 = bd[4 * i + 2], t3 = bd[4 * i + 3];
        const at = (j: number) => ((4 * i + j) * channels + c) * tiles + t;
        v[at(0)] = t0 - t2;
        v[at(1)] = t1 + t2;
        v[at(2)] = t2 - t1;
        v[at(3)] = t1 - t3;
      }
    }
  }
}

/** t = G·g·Gᵀ for a 3×3 filter g (row-major). */
function filterTransform(g: Float64Array, t: Float64Array): void {
  // s = G·g (4×3), then s·Gᵀ (4×4).
  const s = [
    g[0], g[1], g[2],
    0.5 * (g[0] + g[3] + g[6]), 0.5 * (g[1] + g[4] + g[7]), 0.5 * (g[2] + g[5] + g[8]),
    0.5 * (g[0] - g[3] + g[6]), 0.5 * (g[1] - g[4] + g[7]), 0.5 * (g[2] - g[5] + g[8]),
    g[6], g[7], g[8],
  ];
  for (let i = 0; i < 4; i++) {
    const a = s[3 * i], b = s[3 * i + 1], c = s[3 * i + 2];
    t[4 * i] = a;
    t[4 * i + 1] = 0.5 * (a + b + c);
    t[4 * i + 2] = 0.5 * (a - b + c);
    t[4 * i + 3] = c;
  }
}
