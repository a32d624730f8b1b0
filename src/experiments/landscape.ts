/**
 * The measurements of Santurkar et al. (2018, "How Does Batch Normalization Help Optimization?"), on any
 * objective given as a set of parameter arrays and a function returning the loss and its gradient at the
 * current values:
 *
 * - internal covariate shift through gradients (their Definition 2.1): for layer i, G = ∇_{W_i} L at
 *   the current weights, and G' = the same gradient after the layers before i took their own gradient
 *   step (−lr·∇, on the same batch); reported are ‖G − G'‖₂ and cos(G, G');
 * - the loss landscape along the gradient g (their Fig. 4): L(w − η·g) for several step sizes η, and
 *   its range over them ("variation of the loss");
 * - gradient predictiveness: ‖∇L(w) − ∇L(w − η·g)‖₂, how much the gradient changes along that path, and
 *   the "effective β-smoothness", the largest ratio ‖∇L(w) − ∇L(w − η·g)‖ / ‖η·g‖ (for a function with
 *   β-Lipschitz gradients it is at most β).
 *
 * Plain arrays in, plain numbers out: browser-safe, and testable on a quadratic whose smoothness is known.
 */

/** An objective to probe: its parameters (changed in place) and the loss and gradient at their current values. */
export interface Objective {
  /** The parameter arrays, in a fixed order; the measurements write into them and restore them. */
  readonly values: Float32Array[];
  /** Loss and gradient (one array per parameter, the caller may keep them) at the current values. */
  lossAndGradient(): { loss: number; gradient: Float32Array[] };
}

export interface GradientShift {
  /** ‖G − G'‖₂. */
  l2: number;
  /** ‖G − G'‖₂ / ‖G‖₂: the same, free of the gradient's scale. */
  relative: number;
  /** cos(G, G'): 1 = the same direction. */
  cosine: number;
}

export interface LandscapeProbe {
  /** The step sizes η, in increasing order. */
  stepSizes: number[];
  /** L(w) and ‖∇L(w)‖. */
  loss: number;
  gradientNorm: number;
  /** L(w − η·g) per step size. */
  losses: number[];
  /** ‖∇L(w) − ∇L(w − η·g)‖ per step size. */
  gradientChanges: number[];
  /** max − min of L over {w} ∪ {w − η·g}: the variation of the loss along the gradient. */
  lossRange: number;
  /** max over η of ‖∇L(w) − ∇L(w − η·g)‖. */
  gradientPredictiveness: number;
  /** max over η of ‖∇L(w) − ∇L(w − η·g)‖ / (η·‖g‖). */
  betaSmoothness: number;
}

/** ‖a‖₂ over a list of arrays (float64 sums). */
export function norm(a: readonly ArrayLike<number>[]): number {
  let s = 0;
  for (const v of a) for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

/** ‖a − b‖₂, relative to ‖a‖₂, and the cosine of the angle between a and b. */
export function gradientShift(a: readonly ArrayLike<number>[], b: readonly ArrayLike<number>[]): GradientShift {
  if (a.length !== b.length) throw new Error(`gradientShift: ${a.length} arrays against ${b.length}`);
  let diff = 0;
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let k = 0; k < a.length; k++) {
    const x = a[k];
    const y = b[k];
    if (x.length !== y.length) throw new Error(`gradientShift: array ${k} has ${x.length} values against ${y.length}`);
    for (let i = 0; i < x.length; i++) {
      diff += (x[i] - y[i]) ** 2;
      dot += x[i] * y[i];
      aa += x[i] * x[i];
      bb += y[i] * y[i];
    }
  }
  const l2 = Math.sqrt(diff);
  return { l2, relative: aa > 0 ? l2 / Math.sqrt(aa) : 0, cosine: aa > 0 && bb > 0 ? dot / Math.sqrt(aa * bb) : 1 };
}

/** values[k] += scale·direction[k]. */
function axpy(values: Float32Array[], direction: readonly Float32Array[], scale: number): void {
  for (let k = 0; k < values.length; k++) {
    const v = values[k];
    const d = direction[k];
    for (let i = 0; i < v.length; i++) v[i] += scale * d[i];
  }
}

function snapshot(values: readonly Float32Array[]): Float32Array[] {
  return values.map((v) => Float32Array.from(v));
}

function restore(values: Float32Array[], saved: readonly Float32Array[]): void {
  values.forEach((v, k) => v.set(saved[k]));
}

/**
 * The loss and the gradient along the negative gradient, at step sizes `stepSizes` (> 0). The
 * parameters are restored afterwards, bit for bit.
 */
export function probeLandscape(objective: Objective, stepSizes: readonly number[]): LandscapeProbe {
  if (stepSizes.length === 0 || !stepSizes.every((s) => s > 0 && Number.isFinite(s))) throw new Error(`probeLandscape: step sizes must be positive numbers, got ${JSON.stringify(stepSizes)}`);
  const sizes = [...stepSizes].sort((a, b) => a - b);
  const values = objective.values;
  const saved = snapshot(values);
  const at = objective.lossAndGradient();
  const g = at.gradient.map((v) => Float32Array.from(v));
  const gNorm = norm(g);
  const losses: number[] = [];
  const gradientChanges: number[] = [];
  let beta = 0;
  try {
    for (const eta of sizes) {
      restore(values, saved);
      axpy(values, g, -eta);
      const moved = objective.lossAndGradient();
      losses.push(moved.loss);
      const change = gradientShift(g, moved.gradient).l2;
      gradientChanges.push(change);
      if (gNorm > 0) beta = Math.max(beta, change / (eta * gNorm));
    }
  } finally {
    restore(values, saved);
  }
  const all = [at.loss, ...losses];
  const finite = all.every(Number.isFinite);
  return {
    stepSizes: sizes,
    loss: at.loss,
    gradientNorm: gNorm,
    losses,
    gradientChanges,
    lossRange: finite ? Math.max(...all) - Math.min(...all) : Infinity,
    gradientPredictiveness: Math.max(...gradientChanges),
    betaSmoothness: beta,
  };
}

/**
 * Internal covariate shift of each layer in `measured` (Santurkar et al., Definition 2.1). `layers[i]`
 * lists the indices into `objective.values` of layer i's parameters, in network order; `weightOf[i]` the
 * index of the parameter whose gradient is compared (the layer's weight matrix). For layer i, the layers
 * before it take the step −lr·∇ computed at the current weights; the gradient of layer i's weight is then
 * computed again on the same batch. The parameters are restored afterwards.
 */
export function internalCovariateShift(objective: Objective, layers: readonly number[][], weightOf: readonly number[], lr: number, measured: readonly number[]): GradientShift[] {
  if (layers.length !== weightOf.length) throw new Error(`internalCovariateShift: ${layers.length} layers but ${weightOf.length} weights`);
  const values = objective.values;
  const saved = snapshot(values);
  const g = objective.lossAndGradient().gradient.map((v) => Float32Array.from(v));
  const out: GradientShift[] = [];
  try {
    for (const i of measured) {
      if (!(i >= 1 && i < layers.length)) throw new Error(`internalCovariateShift: layer ${i} has no layer before it to update (layers 1..${layers.length - 1})`);
      restore(values, saved);
      for (let j = 0; j < i; j++) for (const k of layers[j]) axpy([values[k]], [g[k]], -lr);
      const after = objective.lossAndGradient().gradient;
      out.push(gradientShift([g[weightOf[i]]], [after[weightOf[i]]]));
    }
  } finally {
    restore(values, saved);
  }
  return out;
}
