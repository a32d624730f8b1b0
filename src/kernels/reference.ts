/**
 * The reference backend: plain TypeScript loops, written to be read. Every faster backend is tested
 * against this one. Loop orders keep the innermost loop on contiguous memory, which is most of what
 * makes JavaScript loops fast; nothing else is tuned.
 *
 * Shape legend: see kernels.ts (M, K, N for matmul; B, C, L for batch norm).
 */
import type { AdamStepOptions, Kernels, MatmulOptions, SgdStepOptions } from './kernels.js';

export const referenceKernels: Kernels = {
  name: 'ts',

  allocate(length) {
    return new Float32Array(length);
  },

  matmul(a, b, out, m, k, n, opts: MatmulOptions = {}) {
    const { transA = false, transB = false, accumulate = false } = opts;
    if (!accumulate) out.fill(0, 0, m * n);
    if (!transB) {
      // out[i,:] += op(a)[i,p] * b[p,:]: the inner loop walks a row of b and a row of out.
      for (let i = 0; i < m; i++) {
        const outRow = i * n;
        for (let p = 0; p < k; p++) {
          const aip = transA ? a[p * m + i] : a[i * k + p];
          if (aip === 0) continue;
          const bRow = p * n;
          for (let j = 0; j < n; j++) out[outRow + j] += aip * b[bRow + j];
        }
      }
    } else {
      // b is stored as [N,K]: out[i,j] = dot(op(a)[i,:], b[j,:]), both rows contiguous when a is not transposed.
      if (transA) {
        const aRow = new Float32Array(k);
        for (let i = 0; i < m; i++) {
          for (let p = 0; p < k; p++) aRow[p] = a[p * m + i];
          dotRows(aRow, 0, b, out, i * n, k, n);
        }
      } else {
        for (let i = 0; i < m; i++) dotRows(a, i * k, b, out, i * n, k, n);
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
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let max = -Infinity;
      for (let c = 0; c < cols; c++) if (x[o + c] > max) max = x[o + c];
      let sum = 0;
      for (let c = 0; c < cols; c++) {
        const e = Math.exp(x[o + c] - max);
        out[o + c] = e;
        sum += e;
      }
      const inv = 1 / sum;
      for (let c = 0; c < cols; c++) out[o + c] *= inv;
    }
  },

  softmaxCrossEntropy(logits, labels, probs, rows, cols) {
    let loss = 0;
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let max = -Infinity;
      for (let c = 0; c < cols; c++) if (logits[o + c] > max) max = logits[o + c];
      let sum = 0;
      for (let c = 0; c < cols; c++) {
        const e = Math.exp(logits[o + c] - max);
        probs[o + c] = e;
        sum += e;
      }
      const inv = 1 / sum;
      for (let c = 0; c < cols; c++) probs[o + c] *= inv;
      // -log softmax = log(sum) - (z - max): exact even when the probability underflows to 0.
      loss += Math.log(sum) - (logits[o + labels[r]] - max);
    }
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
      let sumDy = 0;
      let sumDyXhat = 0;
      for (let b = 0; b < batch; b++) {
        const o = (b * channels + c) * inner;
        for (let l = 0; l < inner; l++) {
          sumDy += dy[o + l];
          sumDyXhat += dy[o + l] * xhat[o + l];
        }
      }
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

  batchNormBackwardFixedStats(dy, xhat, invStd, gamma, dx, dGamma, dBeta, batch, channels, inner) {
    for (let c = 0; c < channels; c++) {
      const k = (gamma ? gamma[c] : 1) * invStd[c];
      let sumDy = 0;
      let sumDyXhat = 0;
      for (let b = 0; b < batch; b++) {
        const o = (b * channels + c) * inner;
        for (let l = 0; l < inner; l++) {
          sumDy += dy[o + l];
          sumDyXhat += dy[o + l] * xhat[o + l];
          dx[o + l] = dy[o + l] * k;
        }
      }
      if (dGamma) dGamma[c] += sumDyXhat;
      if (dBeta) dBeta[c] += sumDy;
    }
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
    }
  },
};

function dotRows(aSrc: Float32Array, aOff: number, b: Float32Array, out: Float32Array, outOff: number, k: number, n: number): void {
  for (let j = 0; j < n; j++) {
    const bOff = j * k;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    let p = 0;
    // Four independent sums let the CPU overlap the additions.
    for (; p + 3 < k; p += 4) {
      s0 += aSrc[aOff + p] * b[bOff + p];
      s1 += aSrc[aOff + p + 1] * b[bOff + p + 1];
      s2 += aSrc[aOff + p + 2] * b[bOff + p + 2];
      s3 += aSrc[aOff + p + 3] * b[bOff + p + 3];
    }
    for (; p < k; p++) s0 += aSrc[aOff + p] * b[bOff + p];
    out[outOff + j] += s0 + s1 + s2 + s3;
  }
}
