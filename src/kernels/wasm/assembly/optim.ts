/**
 * Optimizer updates, f32x4 over a parameter's n values (PyTorch semantics, see kernels.ts).
 * Shape legend: p, g, buf, m, v: [n].
 */

// @ts-ignore: decorator
@inline function f(p: usize, i: i32): usize {
  return p + ((<usize>i) << 2);
}

/**
 * SGD: d = g + wd·p; with a momentum buffer: buf = firstStep ? d : momentum·buf + (1 - dampening)·d,
 * d = nesterov ? d + momentum·buf : buf; then p -= lr·d. buf = 0 means plain SGD. With clearGrad, g is
 * zeroed as it is read.
 */
export function sgdStep(p: usize, g: usize, buf: usize, n: i32, lr: f32, momentum: f32, oneMinusDampening: f32, weightDecay: f32, nesterov: bool, firstStep: bool, clearGrad: bool): void {
  if (clearGrad) sgdLoops(p, g, buf, n, lr, momentum, oneMinusDampening, weightDecay, nesterov, firstStep, true);
  else sgdLoops(p, g, buf, n, lr, momentum, oneMinusDampening, weightDecay, nesterov, firstStep, false);
}

/** Zero the 8 floats of g at i (clearGrad). */
// @ts-ignore: decorator
@inline function clear8(g: usize, i: i32): void {
  v128.store(f(g, i), f32x4.splat(0));
  v128.store(f(g, i), f32x4.splat(0), 16);
}

// sgdStep's loops, compiled twice: with and without the clearing stores (`clear` is a constant at each call).
// @ts-ignore: decorator
@inline function sgdLoops(p: usize, g: usize, buf: usize, n: i32, lr: f32, momentum: f32, oneMinusDampening: f32, weightDecay: f32, nesterov: bool, firstStep: bool, clear: bool): void {
  const lrV = f32x4.splat(lr), wdV = f32x4.splat(weightDecay), momV = f32x4.splat(momentum), dampV = f32x4.splat(oneMinusDampening);
  const useBuf = buf != 0 && momentum != 0;
  let i = 0;
  // The usual cases get loops without the per-element tests of the general one, which V8 does not hoist
  // out of the loop: 2.5x faster on 50,000 values (the paper's network's update took 43 µs a step). The
  // arithmetic is the general loop's, operation for operation, so the results are bit for bit the same.
  if (weightDecay == 0 && !nesterov && !firstStep && useBuf) {
    for (; i + 8 <= n; i += 8) {
      const b0 = f32x4.add(f32x4.mul(momV, v128.load(f(buf, i))), f32x4.mul(dampV, v128.load(f(g, i))));
      const b1 = f32x4.add(f32x4.mul(momV, v128.load(f(buf, i), 16)), f32x4.mul(dampV, v128.load(f(g, i), 16)));
      v128.store(f(buf, i), b0);
      v128.store(f(buf, i), b1, 16);
      v128.store(f(p, i), f32x4.sub(v128.load(f(p, i)), f32x4.mul(lrV, b0)));
      v128.store(f(p, i), f32x4.sub(v128.load(f(p, i), 16), f32x4.mul(lrV, b1)), 16);
      if (clear) clear8(g, i);
    }
  } else if (weightDecay == 0 && !useBuf) {
    for (; i + 8 <= n; i += 8) {
      v128.store(f(p, i), f32x4.sub(v128.load(f(p, i)), f32x4.mul(lrV, v128.load(f(g, i)))));
      v128.store(f(p, i), f32x4.sub(v128.load(f(p, i), 16), f32x4.mul(lrV, v128.load(f(g, i), 16))), 16);
      if (clear) clear8(g, i);
    }
  }
  for (; i + 4 <= n; i += 4) {
    const pv = v128.load(f(p, i));
    let dv = v128.load(f(g, i));
    if (weightDecay != 0) dv = f32x4.add(dv, f32x4.mul(wdV, pv));
    if (useBuf) {
      const b = firstStep ? dv : f32x4.add(f32x4.mul(momV, v128.load(f(buf, i))), f32x4.mul(dampV, dv));
      v128.store(f(buf, i), b);
      dv = nesterov ? f32x4.add(dv, f32x4.mul(momV, b)) : b;
    }
    v128.store(f(p, i), f32x4.sub(pv, f32x4.mul(lrV, dv)));
    if (clear) v128.store(f(g, i), f32x4.splat(0));
  }
  for (; i < n; i++) {
    const pv = load<f32>(f(p, i));
    let dv = load<f32>(f(g, i));
    if (weightDecay != 0) dv += weightDecay * pv;
    if (useBuf) {
      const b = firstStep ? dv : momentum * load<f32>(f(buf, i)) + oneMinusDampening * dv;
      store<f32>(f(buf, i), b);
      dv = nesterov ? dv + momentum * b : b;
    }
    store<f32>(f(p, i), pv - lr * dv);
    if (clear) store<f32>(f(g, i), 0);
  }
}

/**
 * Adam / AdamW: m = β1·m + (1-β1)·g, v = β2·v + (1-β2)·g², p -= stepSize·m / (√v·invSqrtBc2 + eps) with
 * stepSize = lr / (1 - β1^t), invSqrtBc2 = 1/√(1 - β2^t). Weight decay: g += l2·p (Adam), or p -= decay·p
 * first (AdamW, decay = lr·wd). The caller computes 1-β and the corrections in f64: 1 - 0.999 rounded
 * from an f32 β2 would be off by 1e-5 relative. With clearGrad, g is zeroed as it is read.
 */
export function adamStep(p: usize, g: usize, m: usize, v: usize, n: i32, beta1: f32, oneMinusBeta1: f32, beta2: f32, oneMinusBeta2: f32, eps: f32, l2: f32, decay: f32, stepSize: f32, invSqrtBc2: f32, clearGrad: bool): void {
  const b1 = f32x4.splat(beta1), b1c = f32x4.splat(oneMinusBeta1), b2 = f32x4.splat(beta2), b2c = f32x4.splat(oneMinusBeta2);
  const epsV = f32x4.splat(eps), ssV = f32x4.splat(stepSize), ibc = f32x4.splat(invSqrtBc2);
  const l2V = f32x4.splat(l2), decayV = f32x4.splat(decay);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    let pv = v128.load(f(p, i));
    let gv = v128.load(f(g, i));
    if (decay != 0) pv = f32x4.sub(pv, f32x4.mul(decayV, pv));
    if (l2 != 0) gv = f32x4.add(gv, f32x4.mul(l2V, pv));
    const mv = f32x4.add(f32x4.mul(b1, v128.load(f(m, i))), f32x4.mul(b1c, gv));
    const vv = f32x4.add(f32x4.mul(b2, v128.load(f(v, i))), f32x4.mul(f32x4.mul(b2c, gv), gv));
    v128.store(f(m, i), mv);
    v128.store(f(v, i), vv);
    const denom = f32x4.add(f32x4.mul(f32x4.sqrt(vv), ibc), epsV);
    v128.store(f(p, i), f32x4.sub(pv, f32x4.div(f32x4.mul(ssV, mv), denom)));
    if (clearGrad) v128.store(f(g, i), f32x4.splat(0));
  }
  for (; i < n; i++) {
    let pv = load<f32>(f(p, i));
    let gv = load<f32>(f(g, i));
    if (decay != 0) pv -= decay * pv;
    if (l2 != 0) gv += l2 * pv;
    const mv = beta1 * load<f32>(f(m, i)) + oneMinusBeta1 * gv;
    const vv = beta2 * load<f32>(f(v, i)) + oneMinusBeta2 * gv * gv;
    store<f32>(f(m, i), mv);
    store<f32>(f(v, i), vv);
    store<f32>(f(p, i), pv - (stepSize * mv) / (Mathf.sqrt(vv) * invSqrtBc2 + eps));
    if (clearGrad) store<f32>(f(g, i), 0);
  }
}
