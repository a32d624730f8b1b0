/**
 * The reference backend: plain TypeScript loops, written to be read. Every faster backend is tested
 * against this one. Loop orders keep the innermost loop on contiguous memory, which is most of what
 * makes JavaScript loops fast. Only matmul, where training spends most of its time, is tuned further
 * (four output rows per pass).
 *
 * Shape legend: see kernels.ts (M, K, N for matmul; B, C, L for batch norm; H, W, KH, KW, OH, OW, P for
 * convolution and pooling).
 */
import type { AdamStepOptions, Kernels, MatmulOptions, SgdStepOptions, Window2d } from './kernels.js';
import { winogradConv3x3, winogradConv3x3WeightGrad, winogradWeights, winogradWeightsBackward } from './winograd.js';

export const referenceKernels: Kernels = {
  name: 'ts',
  capabilities: { threads: 1, sharedMemory: false, simd: null, variant: 'ts', winograd: false },

  allocate(length) {
    return new Float32Array(length);
  },

  release() {
    // ordinary arrays: the garbage collector owns them
  },

  matmul(a, b, out, m, k, n, opts: MatmulOptions = {}) {
    const { transA = false, transB = false, accumulate = false } = opts;
    if (!accumulate) out.fill(0, 0, m * n);
    // b stored as [N,K] is copied to [K,N] first (N·K moves against M·N·K products), so that one loop
    // order serves every case: out[i,:] += op(a)[i,p] · b[p,:], contiguous rows of b and out.
    const bRows = transB ? transposed(b, n, k) : b;
    // op(a)[i,p] = a[i·rowStride + p·colStride]
    const rowStride = transA ? 1 : k;
    const colStride = transA ? m : 1;
    let i = 0;
    for (; i + 4 <= m; i += 4) addFourRows(a, bRows, out, i, rowStride, colStride, k, n);
    for (; i < m; i++) {
      const outRow = i * n;
      for (let p = 0; p < k; p++) {
        const aip = a[i * rowStride + p * colStride];
        const bRow = p * n;
        for (let j = 0; j < n; j++) out[outRow + j] += aip * bRows[bRow + j];
      }
    }
  },

  addRowVector(x, v, out, rows, cols) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let c = 0; c < cols; c++) out[o + c] = x[o + c] + v[c];
    }
  },

  sumRows(x, out, rows, cols, accumulate) {
    if (!accumulate) out.fill(0, 0, cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let c = 0; c < cols; c++) out[c] += x[o + c];
    }
  },

  sumAxis(x, out, outer, axis, inner) {
    out.fill(0, 0, outer * inner);
    for (let o = 0; o < outer; o++) {
      for (let a = 0; a < axis; a++) {
        const src = (o * axis + a) * inner;
        const dst = o * inner;
        for (let i = 0; i < inner; i++) out[dst + i] += x[src + i];
      }
    }
  },

  add(a, b, out) {
    for (let i = 0; i < out.length; i++) out[i] = a[i] + b[i];
  },
  addAndClear(target, source) {
    for (let i = 0; i < target.length; i++) {
      target[i] += source[i];
      source[i] = 0;
    }
  },
  fill(out, value) {
    out.fill(value);
  },
  scale(a, s, out) {
    for (let i = 0; i < out.length; i++) out[i] = a[i] * s;
  },
  mul(a, b, out) {
    for (let i = 0; i < out.length; i++) out[i] = a[i] * b[i];
  },
  axpy(s, a, out) {
    for (let i = 0; i < out.length; i++) out[i] += s * a[i];
  },

  sigmoid(x, y) {
    for (let i = 0; i < x.length; i++) y[i] = 1 / (1 + Math.exp(-x[i]));
  },
  sigmoidBackward(y, dy, dx) {
    for (let i = 0; i < y.length; i++) dx[i] = dy[i] * y[i] * (1 - y[i]);
  },
  tanh(x, y) {
    for (let i = 0; i < x.length; i++) y[i] = Math.tanh(x[i]);
  },
  tanhBackward(y, dy, dx) {
    for (let i = 0; i < y.length; i++) dx[i] = dy[i] * (1 - y[i] * y[i]);
  },
  relu(x, y) {
    for (let i = 0; i < x.length; i++) y[i] = x[i] > 0 ? x[i] : 0;
  },
  reluBackward(x, dy, dx) {
    for (let i = 0; i < x.length; i++) dx[i] = x[i] > 0 ? dy[i] : 0;
  },

  softmax(x, out, rows, cols) {
    for (let r = 0; r < rows; r++) softmaxRow(x, out, r * cols, cols);
  },

  softmaxCrossEntropy(logits, labels, probs, rows, cols) {
    let loss = 0;
    // -log softmax(z)_label = logSumExp(z) - z_label: exact even when the probability underflows to 0.
    for (let r = 0; r < rows; r++) loss += softmaxRow(logits, probs, r * cols, cols) - logits[r * cols + labels[r]];
    return loss / rows;
  },

  softmaxCrossEntropyBackward(probs, labels, dlogits, rows, cols) {
    const inv = 1 / rows;
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let c = 0; c < cols; c++) dlogits[o + c] = probs[o + c] * inv;
      dlogits[o + labels[r]] -= inv;
    }
  },

  channelAffine(x, scale, shift, out, batch, channels, inner) {
    if (inner === 1) {
      // LayerNorm's [R, D] layout: one parameter per column, so walk rows instead of 1-value channels.
      for (let b = 0; b < batch; b++) {
        const o = b * channels;
        if (shift) for (let c = 0; c < channels; c++) out[o + c] = x[o + c] * scale[c] + shift[c];
        else for (let c = 0; c < channels; c++) out[o + c] = x[o + c] * scale[c];
      }
      return;
    }
    for (let b = 0; b < batch; b++) {
      for (let c = 0; c < channels; c++) {
        const o = (b * channels + c) * inner;
        const g = scale[c];
        const s = shift ? shift[c] : 0;
        for (let l = 0; l < inner; l++) out[o + l] = x[o + l] * g + s;
      }
    }
  },

  channelAffineBackward(dy, x, scale, dx, dScale, dShift, batch, channels, inner) {
    if (inner === 1) {
      for (let b = 0; b < batch; b++) {
        const o = b * channels;
        for (let c = 0; c < channels; c++) {
          const g = dy[o + c];
          dx[o + c] = g * scale[c];
          if (dScale) dScale[c] += g * x[o + c];
          if (dShift) dShift[c] += g;
        }
      }
      return;
    }
    for (let b = 0; b < batch; b++) {
      for (let c = 0; c < channels; c++) {
        const o = (b * channels + c) * inner;
        const g = scale[c];
        let sumDy = 0;
        let sumDyX = 0;
        for (let l = 0; l < inner; l++) {
          sumDy += dy[o + l];
          sumDyX += dy[o + l] * x[o + l];
          dx[o + l] = dy[o + l] * g;
        }
        if (dScale) dScale[c] += sumDyX;
        if (dShift) dShift[c] += sumDy;
      }
    }
  },

  channelMoments(x, mean, variance, batch, channels, inner) {
    const count = batch * inner;
    for (let c = 0; c < channels; c++) {
      // Two passes (mean, then squared deviations): the one-pass E[x²] - E[x]² loses digits in float32.
      let sum = 0;
      for (let b = 0; b < batch; b++) {
        const o = (b * channels + c) * inner;
        for (let l = 0; l < inner; l++) sum += x[o + l];
      }
      const mu = sum / count;
      let sq = 0;
      for (let b = 0; b < batch; b++) {
        const o = (b * channels + c) * inner;
        for (let l = 0; l < inner; l++) {
          const d = x[o + l] - mu;
          sq += d * d;
        }
      }
      mean[c] = mu;
      variance[c] = sq / count;
    }
  },

  batchNormApply(x, mean, invStd, scale, shift, y, xhat, batch, channels, inner) {
    for (let b = 0; b < batch; b++) {
      for (let c = 0; c < channels; c++) {
        const o = (b * channels + c) * inner;
        const mu = mean[c];
        const is = invStd[c];
        const g = scale ? scale[c] : 1;
        const s = shift ? shift[c] : 0;
        for (let l = 0; l < inner; l++) {
          const h = (x[o + l] - mu) * is;
          if (xhat) xhat[o + l] = h;
          y[o + l] = h * g + s;
        }
      }
    }
  },

  batchNormBackward(dy, xhat, invStd, gamma, dx, dGamma, dBeta, batch, channels, inner) {
    const count = batch * inner;
    for (let c = 0; c < channels; c++) {
      const [sumDy, sumDyXhat] = channelSums(dy, xhat, c, batch, channels, inner);
      if (dGamma) dGamma[c] += sumDyXhat;
      if (dBeta) dBeta[c] += sumDy;
      // dx = gamma·invStd/M · (M·dy - Σdy - xhat·Σ(dy·xhat))
      const k = ((gamma ? gamma[c] : 1) * invStd[c]) / count;
      for (let b = 0; b < batch; b++) {
        const o = (b * channels + c) * inner;
        for (let l = 0; l < inner; l++) dx[o + l] = k * (count * dy[o + l] - sumDy - xhat[o + l] * sumDyXhat);
      }
    }
  },

  batchNormBackwardReduce(dy, xhat, sumDy, sumDyXhat, batch, channels, inner) {
    for (let c = 0; c < channels; c++) [sumDy[c], sumDyXhat[c]] = channelSums(dy, xhat, c, batch, channels, inner);
  },

  batchNormStatistics(mean, variance, invStd, eps, runningMean, runningVar, momentum, unbias, channels) {
    for (let c = 0; c < channels; c++) {
      const v = variance[c];
      invStd[c] = 1 / Math.sqrt(v + eps);
      if (runningMean && runningVar) {
        runningMean[c] = (1 - momentum) * runningMean[c] + momentum * mean[c];
        runningVar[c] = (1 - momentum) * runningVar[c] + momentum * (v * unbias);
      }
    }
  },

  batchNormBackwardInput(dy, xhat, invStd, gamma, sumDy, sumDyXhat, count, dx, batch, channels, inner) {
    for (let c = 0; c < channels; c++) {
      // The same closed form as batchNormBackward, with the sums and count of the whole batch.
      const k = ((gamma ? gamma[c] : 1) * invStd[c]) / count;
      for (let b = 0; b < batch; b++) {
        const o = (b * channels + c) * inner;
        for (let l = 0; l < inner; l++) dx[o + l] = k * (count * dy[o + l] - sumDy[c] - xhat[o + l] * sumDyXhat[c]);
      }
    }
  },

  batchNormBackwardFixedStats(dy, xhat, invStd, gamma, dx, dGamma, dBeta, batch, channels, inner) {
    for (let c = 0; c < channels; c++) {
      const [sumDy, sumDyXhat] = channelSums(dy, xhat, c, batch, channels, inner);
      if (dGamma) dGamma[c] += sumDyXhat;
      if (dBeta) dBeta[c] += sumDy;
      // dx = gamma·invStd · dy: the statistics were constants.
      const k = (gamma ? gamma[c] : 1) * invStd[c];
      for (let b = 0; b < batch; b++) {
        const o = (b * channels + c) * inner;
        for (let l = 0; l < inner; l++) dx[o + l] = dy[o + l] * k;
      }
    }
  },

  im2col(x, cols, batch, channels, g) {
    const { height, width, kernelH, kernelW, strideH, strideW, padH, padW, outH, outW } = g;
    const plane = height * width;
    let dst = 0; // cols is written row after row: (b, c, i, j), then (oh, ow)
    for (let bc = 0; bc < batch * channels; bc++) {
      const src = bc * plane;
      for (let i = 0; i < kernelH; i++) {
        for (let j = 0; j < kernelW; j++) {
          // Output columns whose input column ow·strideW - padW + j lies inside the image; the rest read padding.
          const lo = firstInside(j - padW, strideW, outW);
          const hi = endInside(j - padW, strideW, width, outW);
          for (let oh = 0; oh < outH; oh++, dst += outW) {
            const ih = oh * strideH - padH + i;
            if (ih < 0 || ih >= height || lo >= hi) {
              cols.fill(0, dst, dst + outW);
              continue;
            }
            const rowStart = src + ih * width + j - padW;
            for (let ow = 0; ow < lo; ow++) cols[dst + ow] = 0;
            for (let ow = lo; ow < hi; ow++) cols[dst + ow] = x[rowStart + ow * strideW];
            for (let ow = hi; ow < outW; ow++) cols[dst + ow] = 0;
          }
        }
      }
    }
  },

  col2im(cols, dx, batch, channels, g) {
    const { height, width, kernelH, kernelW, strideH, strideW, padH, padW, outH, outW } = g;
    const plane = height * width;
    dx.fill(0, 0, batch * channels * plane);
    let src = 0; // the same walk as im2col, adding instead of copying
    for (let bc = 0; bc < batch * channels; bc++) {
      const dst = bc * plane;
      for (let i = 0; i < kernelH; i++) {
        for (let j = 0; j < kernelW; j++) {
          const lo = firstInside(j - padW, strideW, outW);
          const hi = endInside(j - padW, strideW, width, outW);
          for (let oh = 0; oh < outH; oh++, src += outW) {
            const ih = oh * strideH - padH + i;
            if (ih < 0 || ih >= height) continue;
            const rowStart = dst + ih * width + j - padW;
            for (let ow = lo; ow < hi; ow++) dx[rowStart + ow * strideW] += cols[src + ow];
          }
        }
      }
    }
  },

  winogradWeights,
  winogradWeightsBackward,
  winogradConv3x3(x, u, y, batch, inChannels, outChannels, height, width, padH, padW) {
    winogradConv3x3(referenceKernels.matmul, x, u, y, batch, inChannels, outChannels, height, width, padH, padW);
  },
  winogradConv3x3WeightGrad(x, dy, du, batch, inChannels, outChannels, height, width, padH, padW) {
    winogradConv3x3WeightGrad(referenceKernels.matmul, x, dy, du, batch, inChannels, outChannels, height, width, padH, padW);
  },

  maxPoolForward(x, y, argmax, planes, g) {
    maxPool(x, y, argmax, planes, g, false);
  },

  maxPoolBackward(dy, argmax, dx, planes, g) {
    maxUnpool(dy, null, argmax, dx, planes, g);
  },

  maxPoolReluForward(x, y, argmax, planes, g) {
    maxPool(x, y, argmax, planes, g, true);
  },

  maxPoolReluBackward(dy, y, argmax, dx, planes, g) {
    maxUnpool(dy, y, argmax, dx, planes, g);
  },

  batchNormReluMaxPool2x2(x, mean, invStd, scale, shift, y, xhat, out, argmax, xhatMax, batch, channels, height, width) {
    // The two kernels it fuses, through y: the same values by construction.
    referenceKernels.batchNormApply(x, mean, invStd, scale, shift, y, xhat, batch, channels, height * width);
    const g: Window2d = { height, width, kernelH: 2, kernelW: 2, strideH: 2, strideW: 2, padH: 0, padW: 0, outH: height / 2, outW: width / 2 };
    referenceKernels.maxPoolReluForward(y, out, argmax, batch * channels, g);
    if (xhatMax) for (let i = 0; i < (batch * channels * height * width) / 4; i++) xhatMax[i] = xhat[argmax[i]];
  },

  batchNormReluMaxPool2x2BackwardReduce(dy, out, xhatMax, sumDy, sumDyXhat, batch, channels, height, width) {
    const pooled = (height * width) / 4;
    for (let c = 0; c < channels; c++) {
      let s = 0;
      let t = 0;
      for (let b = 0; b < batch; b++) {
        const o = (b * channels + c) * pooled;
        for (let i = o; i < o + pooled; i++) {
          // Only a window's winner gets a gradient, and only where it passed the ReLU.
          if (!(out[i] > 0)) continue;
          s += dy[i];
          t += dy[i] * xhatMax[i];
        }
      }
      sumDy[c] = s;
      sumDyXhat[c] = t;
    }
  },

  batchNormReluMaxPool2x2BackwardInput(dy, out, argmax, xhat, invStd, gamma, sumDy, sumDyXhat, count, dx, batch, channels, height, width) {
    const plane = height * width;
    const pooled = plane / 4;
    for (let c = 0; c < channels; c++) {
      const k = ((gamma ? gamma[c] : 1) * invStd[c]) / count;
      for (let b = 0; b < batch; b++) {
        const o = (b * channels + c) * plane;
        // batchNormBackwardInput's closed form with g = 0 everywhere, then again at the winners, where g = dy.
        for (let l = o; l < o + plane; l++) dx[l] = k * (0 - sumDy[c] - xhat[l] * sumDyXhat[c]);
        const p = (b * channels + c) * pooled;
        for (let i = p; i < p + pooled; i++) {
          if (out[i] > 0) dx[argmax[i]] = k * (count * dy[i] - sumDy[c] - xhat[argmax[i]] * sumDyXhat[c]);
        }
      }
    }
  },

  avgPoolForward(x, y, planes, g) {
    // Divides by the full window, padding included (PyTorch's count_include_pad default).
    const inv = 1 / (g.kernelH * g.kernelW);
    forEachWindow(planes, g, (o, base, hFrom, hTo, wFrom, wTo) => {
      let sum = 0;
      for (let ih = hFrom; ih < hTo; ih++) {
        const row = base + ih * g.width;
        for (let iw = wFrom; iw < wTo; iw++) sum += x[row + iw];
      }
      y[o] = sum * inv;
    });
  },

  avgPoolBackward(dy, dx, planes, g) {
    const inv = 1 / (g.kernelH * g.kernelW);
    dx.fill(0, 0, planes * g.height * g.width);
    // Each output spreads its gradient evenly over its window; += because windows may overlap.
    forEachWindow(planes, g, (o, base, hFrom, hTo, wFrom, wTo) => {
      const share = dy[o] * inv;
      for (let ih = hFrom; ih < hTo; ih++) {
        const row = base + ih * g.width;
        for (let iw = wFrom; iw < wTo; iw++) dx[row + iw] += share;
      }
    });
  },

  sgdStep(p, g, buf, o: SgdStepOptions) {
    for (let i = 0; i < p.length; i++) {
      let d = g[i];
      if (o.weightDecay !== 0) d += o.weightDecay * p[i];
      if (buf && o.momentum !== 0) {
        buf[i] = o.firstStep ? d : o.momentum * buf[i] + (1 - o.dampening) * d;
        d = o.nesterov ? d + o.momentum * buf[i] : buf[i];
      }
      p[i] -= o.lr * d;
      if (o.clearGrad) g[i] = 0;
    }
  },

  adamStep(p, g, m, v, o: AdamStepOptions) {
    const bc1 = 1 - Math.pow(o.beta1, o.step);
    const bc2 = 1 - Math.pow(o.beta2, o.step);
    const stepSize = o.lr / bc1;
    const sqrtBc2 = Math.sqrt(bc2);
    for (let i = 0; i < p.length; i++) {
      let grad = g[i];
      if (o.weightDecay !== 0) {
        if (o.decoupledWeightDecay) p[i] -= o.lr * o.weightDecay * p[i];
        else grad += o.weightDecay * p[i];
      }
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * grad;
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * grad * grad;
      p[i] -= (stepSize * m[i]) / (Math.sqrt(v[i]) / sqrtBc2 + o.eps);
      if (o.clearGrad) g[i] = 0;
    }
  },
};

/** [Σdy, Σ(dy·xhat)] over the batch and length of channel c: dBeta and dGamma for that channel. */
function channelSums(dy: Float32Array, xhat: Float32Array, c: number, batch: number, channels: number, inner: number): [number, number] {
  let sumDy = 0;
  let sumDyXhat = 0;
  for (let b = 0; b < batch; b++) {
    const o = (b * channels + c) * inner;
    for (let l = 0; l < inner; l++) {
      sumDy += dy[o + l];
      sumDyXhat += dy[o + l] * xhat[o + l];
    }
  }
  return [sumDy, sumDyXhat];
}

/** Max pooling, of relu(x) (x > 0 ? x : 0, as `relu`) when `relu`: the first maximum wins ties. */
function maxPool(x: Float32Array, y: Float32Array, argmax: Int32Array, planes: number, g: Window2d, relu: boolean): void {
  forEachWindow(planes, g, (o, base, hFrom, hTo, wFrom, wTo) => {
    let best = -Infinity;
    let at = -1;
    for (let ih = hFrom; ih < hTo; ih++) {
      for (let iw = wFrom; iw < wTo; iw++) {
        const idx = base + ih * g.width + iw;
        const v = relu ? (x[idx] > 0 ? x[idx] : 0) : x[idx];
        if (at < 0 || v > best) {
          best = v;
          at = idx;
        }
      }
    }
    y[o] = best;
    argmax[o] = at;
  });
}

/** dx[argmax[o]] += dy[o] for every output, only where y[o] > 0 when y is given (a fused ReLU's gradient). */
function maxUnpool(dy: Float32Array, y: Float32Array | null, argmax: Int32Array, dx: Float32Array, planes: number, g: Window2d): void {
  dx.fill(0, 0, planes * g.height * g.width);
  const count = planes * g.outH * g.outW;
  // += because windows overlap when stride < kernel: one input can win several of them.
  for (let o = 0; o < count; o++) if (!y || y[o] > 0) dx[argmax[o]] += dy[o];
}

/**
 * Visit every pooling window in output order: o is the output index, base the start of its input plane,
 * [hFrom, hTo) x [wFrom, wTo) the window clipped to the input (padding holds no values).
 */
function forEachWindow(planes: number, g: Window2d, visit: (o: number, base: number, hFrom: number, hTo: number, wFrom: number, wTo: number) => void): void {
  const { height, width, kernelH, kernelW, strideH, strideW, padH, padW, outH, outW } = g;
  let o = 0;
  for (let p = 0; p < planes; p++) {
    const base = p * height * width;
    for (let oh = 0; oh < outH; oh++) {
      const h0 = oh * strideH - padH;
      const hFrom = Math.max(h0, 0);
      const hTo = Math.min(h0 + kernelH, height);
      for (let ow = 0; ow < outW; ow++, o++) {
        const w0 = ow * strideW - padW;
        visit(o, base, hFrom, hTo, Math.max(w0, 0), Math.min(w0 + kernelW, width));
      }
    }
  }
}

/** Softmax of one row, subtracting its maximum first for stability; returns the row's log-sum-exp. */
function softmaxRow(x: Float32Array, out: Float32Array, offset: number, cols: number): number {
  let max = -Infinity;
  for (let c = 0; c < cols; c++) if (x[offset + c] > max) max = x[offset + c];
  let sum = 0;
  for (let c = 0; c < cols; c++) {
    const e = Math.exp(x[offset + c] - max);
    out[offset + c] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let c = 0; c < cols; c++) out[offset + c] *= inv;
  return max + Math.log(sum);
}

/**
 * out[i..i+3, :] += op(a)[i..i+3, :] · b for four rows at once, taking b four rows at a time: each loaded
 * b value serves four outputs and each output is loaded and stored once per four products, which
 * keeps the loop on arithmetic instead of memory traffic (about 5x the plain one-row loop in V8).
 */
function addFourRows(a: Float32Array, b: Float32Array, out: Float32Array, i: number, rowStride: number, colStride: number, k: number, n: number): void {
  const o0 = i * n, o1 = o0 + n, o2 = o1 + n, o3 = o2 + n;
  const r0 = i * rowStride, r1 = r0 + rowStride, r2 = r1 + rowStride, r3 = r2 + rowStride;
  let p = 0;
  for (; p + 4 <= k; p += 4) {
    const c0 = p * colStride, c1 = c0 + colStride, c2 = c1 + colStride, c3 = c2 + colStride;
    const a00 = a[r0 + c0], a01 = a[r0 + c1], a02 = a[r0 + c2], a03 = a[r0 + c3];
    const a10 = a[r1 + c0], a11 = a[r1 + c1], a12 = a[r1 + c2], a13 = a[r1 + c3];
    const a20 = a[r2 + c0], a21 = a[r2 + c1], a22 = a[r2 + c2], a23 = a[r2 + c3];
    const a30 = a[r3 + c0], a31 = a[r3 + c1], a32 = a[r3 + c2], a33 = a[r3 + c3];
    const b0 = p * n, b1 = b0 + n, b2 = b1 + n, b3 = b2 + n;
    for (let j = 0; j < n; j++) {
      const x0 = b[b0 + j], x1 = b[b1 + j], x2 = b[b2 + j], x3 = b[b3 + j];
      out[o0 + j] += a00 * x0 + a01 * x1 + a02 * x2 + a03 * x3;
      out[o1 + j] += a10 * x0 + a11 * x1 + a12 * x2 + a13 * x3;
      out[o2 + j] += a20 * x0 + a21 * x1 + a22 * x2 + a23 * x3;
      out[o3 + j] += a30 * x0 + a31 * x1 + a32 * x2 + a33 * x3;
    }
  }
  for (; p < k; p++) {
    const c = p * colStride;
    const a0 = a[r0 + c], a1 = a[r1 + c], a2 = a[r2 + c], a3 = a[r3 + c];
    const bRow = p * n;
    for (let j = 0; j < n; j++) {
      const x = b[bRow + j];
      out[o0 + j] += a0 * x;
      out[o1 + j] += a1 * x;
      out[o2 + j] += a2 * x;
      out[o3 + j] += a3 * x;
    }
  }
}

/** Scratch for transposed(): grown when needed, never shrunk, so matmul allocates only while sizes grow. */
let transposeScratch = new Float32Array(0);

/** x[R,C] transposed to [C,R], in the shared scratch buffer (valid until the next call). */
function transposed(x: Float32Array, rows: number, cols: number): Float32Array {
  if (transposeScratch.length < rows * cols) transposeScratch = new Float32Array(rows * cols);
  const t = transposeScratch;
  for (let r = 0; r < rows; r++) {
    const src = r * cols;
    for (let c = 0; c < cols; c++) t[c * rows + r] = x[src + c];
  }
  return t;
}

/**
 * A window sweep reads input index o·stride + offset at output o. The outputs inside the input are
 * [firstInside, endInside); im2col copies those and writes padding zeros around them, so the copy loop
 * needs no bounds test.
 */
function firstInside(offset: number, stride: number, count: number): number {
  return offset >= 0 ? 0 : Math.min(count, Math.ceil(-offset / stride));
}

function endInside(offset: number, stride: number, size: number, count: number): number {
  const last = size - 1 - offset; // largest o·stride that stays inside
  return last < 0 ? 0 : Math.min(count, Math.floor(last / stride) + 1);
}
