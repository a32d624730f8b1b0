/**
 * Softmax and softmax cross-entropy. Shape legend: logits, probs, dlogits: [R, C] (R = rows, C =
 * classes); labels: [R] i32. These run once per step on a [batch, classes] matrix, so they stay scalar
 * and use f64 exp/log (vmath.ts), which keeps them within rounding of the reference.
 */

import { exp64, log64 } from './vmath';

// @ts-ignore: decorator
@inline function f(p: usize, i: i32): usize {
  return p + ((<usize>i) << 2);
}

/** Softmax of one row of x into out (max subtracted first); returns log Σ exp(x), i.e. log(sum) + max. */
function softmaxRow(x: usize, out: usize, cols: i32): f64 {
  let max = -Infinity;
  for (let c = 0; c < cols; c++) {
    const v = <f64>load<f32>(f(x, c));
    if (v > max) max = v;
  }
  let sum: f64 = 0;
  for (let c = 0; c < cols; c++) {
    const e = exp64(<f64>load<f32>(f(x, c)) - max);
    store<f32>(f(out, c), <f32>e);
    sum += e;
  }
  const inv = 1 / sum;
  for (let c = 0; c < cols; c++) store<f32>(f(out, c), <f32>(<f64>load<f32>(f(out, c)) * inv));
  // -log softmax of class j = log(sum) - (x_j - max): exact even when the probability underflows.
  return log64(sum) + max;
}

export function softmax(x: usize, out: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) softmaxRow(f(x, r * cols), f(out, r * cols), cols);
}

/** Mean over rows of -log softmax(logits)[label]; writes the probabilities. */
export function softmaxCrossEntropy(logits: usize, labels: usize, probs: usize, rows: i32, cols: i32): f64 {
  let loss: f64 = 0;
  for (let r = 0; r < rows; r++) {
    const lse = softmaxRow(f(logits, r * cols), f(probs, r * cols), cols);
    loss += lse - <f64>load<f32>(f(logits, r * cols + load<i32>(f(labels, r))));
  }
  return loss / rows;
}

/** dlogits = (probs - onehot(labels)) / R */
export function softmaxCrossEntropyBackward(probs: usize, labels: usize, dlogits: usize, rows: i32, cols: i32): void {
  const inv: f64 = 1 / <f64>rows;
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) store<f32>(f(dlogits, o + c), <f32>(<f64>load<f32>(f(probs, o + c)) * inv));
    const j = o + load<i32>(f(labels, r));
    store<f32>(f(dlogits, j), <f32>(<f64>load<f32>(f(dlogits, j)) - inv));
  }
}
