/**
 * The two-feature problem: why inputs on different scales hurt gradient descent (claim 1), small enough
 * to draw. A linear model y = w1·x1 + w2·x2 (least squares, or logistic for 0/1 labels) on two zero-mean
 * features whose standard deviations differ by a ratio r (x1 has std 1, x2 has std r). The loss surface
 * in (w1, w2) is a valley r times narrower in w2 than in w1, so the largest stable learning rate is set
 * by the steep direction and progress along the flat one is about r² times slower; standardized inputs
 * (or batch norm on the input) make the valley round again.
 *
 * Shape legend: N = samples; every weight vector has 2 entries.
 * Squared loss:   L(w) = 1/(2N)·Σ(w·x_n − y_n)²,                gradient (1/N)·Σ(w·x_n − y_n)·x_n
 * Logistic loss:  L(w) = (1/N)·Σ softplus(w·x_n) − y_n·(w·x_n),  gradient (1/N)·Σ(σ(w·x_n) − y_n)·x_n
 * Batch norm on the input: x̂_i = (x_i − μ_i)/√(σ_i² + eps) over the batch, y = Σ w_i·(γ_i·x̂_i + β_i);
 * γ and β are learned only with `affine` (by default they stay 1 and 0: w·γ is a product whose saddle at 0
 * slows descent for reasons that have nothing to do with input scale). Its path is drawn in the
 * standardized space, as the effective weights w_i·γ_i.
 *
 * Pure math and plain arrays: the lab draws it live, and an experiment can plot it from Node.
 */
import { Rng } from '../tensor/rng.js';

export type TwoFeatureLoss = 'squared' | 'logistic';

/** How the model sees the inputs: as they are, standardized once up front, or through a batch-norm layer. */
export type TwoFeatureInputs = 'raw' | 'standardized' | 'batchnorm';

export const TWO_FEATURE_INPUTS: readonly TwoFeatureInputs[] = Object.freeze(['raw', 'standardized', 'batchnorm']);

export interface TwoFeatureOptions {
  /** Ratio of the features' standard deviations, std(x2)/std(x1); 1 to 1000 in the lab. Default 10. */
  ratio?: number;
  /** Samples. Default 256. */
  samples?: number;
  /** Correlation of the two features before scaling, in (−1, 1): with 0 standardizing makes the valley perfectly round. Default 0.4. */
  correlation?: number;
  /** Default 'squared'. */
  loss?: TwoFeatureLoss;
  /** The weights on the standardized features that generate the targets. Default [1.5, -1]. */
  trueWeights?: [number, number];
  /** Standard deviation of the noise added to the targets (squared loss) or to the logit (logistic). Default 0.3. */
  noise?: number;
  seed?: number;
}

export interface TwoFeatureProblem {
  ratio: number;
  loss: TwoFeatureLoss;
  samples: number;
  /** x[2n], x[2n+1]: the two raw features of sample n, each with mean exactly 0. */
  x: Float64Array;
  /** The same standardized: each feature divided by its standard deviation. */
  xStandardized: Float64Array;
  /** Standard deviation of each raw feature (population, divides by N). */
  featureStd: [number, number];
  /** Targets: real numbers with mean exactly 0 (squared), or 0/1 labels (logistic). */
  y: Float64Array;
}

/** Builds the data of the problem, seeded. */
export function twoFeatureProblem(options: TwoFeatureOptions = {}): TwoFeatureProblem {
  const ratio = options.ratio ?? 10;
  const samples = options.samples ?? 256;
  const correlation = options.correlation ?? 0.4;
  const loss = options.loss ?? 'squared';
  const [a1, a2] = options.trueWeights ?? [1.5, -1];
  const noise = options.noise ?? 0.3;
  if (!(ratio > 0) || !Number.isFinite(ratio)) throw new Error(`twoFeatureProblem: ratio must be a positive number (std(x2)/std(x1), e.g. 1 to 1000), got ${ratio}`);
  if (!Number.isInteger(samples) || samples < 2) throw new Error(`twoFeatureProblem: samples must be an integer of at least 2, got ${samples}`);
  if (!(correlation > -1 && correlation < 1)) throw new Error(`twoFeatureProblem: correlation must be in (-1, 1), got ${correlation}`);
  if (loss !== 'squared' && loss !== 'logistic') throw new Error(`twoFeatureProblem: loss must be 'squared' or 'logistic', got ${JSON.stringify(loss)}`);
  if (!(noise >= 0)) throw new Error(`twoFeatureProblem: noise must be >= 0, got ${noise}`);
  const rng = new Rng(options.seed ?? 1);
  const z = new Float64Array(2 * samples);
  const c = Math.sqrt(1 - correlation * correlation);
  for (let n = 0; n < samples; n++) {
    const u = rng.normal();
    z[2 * n] = u;
    z[2 * n + 1] = correlation * u + c * rng.normal();
  }
  // Exactly zero mean and unit variance, so that the standardized problem's optimum is known in closed form.
  for (let i = 0; i < 2; i++) {
    let m = 0;
    for (let n = 0; n < samples; n++) m += z[2 * n + i] / samples;
    let v = 0;
    for (let n = 0; n < samples; n++) v += (z[2 * n + i] - m) ** 2 / samples;
    const s = Math.sqrt(v);
    for (let n = 0; n < samples; n++) z[2 * n + i] = (z[2 * n + i] - m) / s;
  }
  const x = new Float64Array(2 * samples);
  for (let n = 0; n < samples; n++) {
    x[2 * n] = z[2 * n];
    x[2 * n + 1] = z[2 * n + 1] * ratio;
  }
  const y = new Float64Array(samples);
  for (let n = 0; n < samples; n++) {
    const t = a1 * z[2 * n] + a2 * z[2 * n + 1] + noise * rng.normal();
    y[n] = loss === 'squared' ? t : t > 0 ? 1 : 0;
  }
  if (loss === 'squared') {
    let m = 0;
    for (let n = 0; n < samples; n++) m += y[n] / samples;
    for (let n = 0; n < samples; n++) y[n] -= m;
  }
  return { ratio, loss, samples, x, xStandardized: z, featureStd: [1, ratio], y };
}

/** The features a parameter space's weights multiply: raw for 'raw', standardized for the other two. */
function featuresOf(p: TwoFeatureProblem, space: 'raw' | 'standardized'): Float64Array {
  return space === 'raw' ? p.x : p.xStandardized;
}

function softplus(z: number): number {
  return z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
}

function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

/** Loss of the weights `w1, w2` on the features of `space` ('raw' weights, or weights on the standardized features). */
export function twoFeatureLoss(p: TwoFeatureProblem, w1: number, w2: number, space: 'raw' | 'standardized' = 'raw'): number {
  const x = featuresOf(p, space);
  let s = 0;
  for (let n = 0; n < p.samples; n++) {
    const z = w1 * x[2 * n] + w2 * x[2 * n + 1];
    s += p.loss === 'squared' ? 0.5 * (z - p.y[n]) ** 2 : softplus(z) - p.y[n] * z;
  }
  return s / p.samples;
}

/** Gradient of `twoFeatureLoss` over the samples `from..to` (default all). */
function gradient(p: TwoFeatureProblem, x: Float64Array, w1: number, w2: number, from = 0, to = p.samples): [number, number] {
  let g1 = 0;
  let g2 = 0;
  for (let n = from; n < to; n++) {
    const z = w1 * x[2 * n] + w2 * x[2 * n + 1];
    const r = (p.loss === 'squared' ? z : sigmoid(z)) - p.y[n];
    g1 += r * x[2 * n];
    g2 += r * x[2 * n + 1];
  }
  return [g1 / (to - from), g2 / (to - from)];
}

/**
 * The Hessian of the loss at `w` in `space`: for the squared loss the feature covariance, the same
 * everywhere; for the logistic loss weighted by σ'(w·x).
 */
export function twoFeatureHessian(p: TwoFeatureProblem, w: [number, number], space: 'raw' | 'standardized'): [[number, number], [number, number]] {
  const x = featuresOf(p, space);
  let h11 = 0;
  let h12 = 0;
  let h22 = 0;
  for (let n = 0; n < p.samples; n++) {
    const a = x[2 * n];
    const b = x[2 * n + 1];
    let k = 1;
    if (p.loss === 'logistic') {
      const s = sigmoid(w[0] * a + w[1] * b);
      k = s * (1 - s);
    }
    h11 += (k * a * a) / p.samples;
    h12 += (k * a * b) / p.samples;
    h22 += (k * b * b) / p.samples;
  }
  return [[h11, h12], [h12, h22]];
}

/** Eigenvalues of a symmetric 2x2 matrix, largest first. */
function eigenvalues2(h: [[number, number], [number, number]]): [number, number] {
  const tr = h[0][0] + h[1][1];
  const det = h[0][0] * h[1][1] - h[0][1] * h[1][0];
  const disc = Math.sqrt(Math.max(0, (tr * tr) / 4 - det));
  return [tr / 2 + disc, tr / 2 - disc];
}

export interface Curvature {
  /** Largest and smallest eigenvalue of the Hessian. */
  largest: number;
  smallest: number;
  /** largest / smallest: how many times narrower the valley is across than along; ≈ r² on raw inputs. */
  conditionNumber: number;
  /** 2 / largest: above it, gradient descent on a quadratic diverges along the steep direction. */
  maxStableLr: number;
}

/**
 * The curvature of the loss in `space`. For the squared loss the Hessian is the same everywhere; for the
 * logistic loss this is its largest value anywhere, the feature covariance times max σ' = 1/4, so that
 * `maxStableLr` is safe along the whole path and not only near the minimum.
 */
export function twoFeatureCurvature(p: TwoFeatureProblem, space: 'raw' | 'standardized'): Curvature {
  const [[a, b], [, d]] = twoFeatureHessian({ ...p, loss: 'squared' }, [0, 0], space);
  const k = p.loss === 'squared' ? 1 : 0.25;
  const [largest, smallest] = eigenvalues2([[k * a, k * b], [k * b, k * d]]);
  return { largest, smallest, conditionNumber: largest / smallest, maxStableLr: 2 / largest };
}

/** The minimum of the loss in `space`: exact for the squared loss (normal equations), Newton's method for the logistic one. */
export function twoFeatureMinimum(p: TwoFeatureProblem, space: 'raw' | 'standardized'): { w: [number, number]; loss: number } {
  const x = featuresOf(p, space);
  let w: [number, number] = [0, 0];
  for (let it = 0; it < (p.loss === 'squared' ? 1 : 50); it++) {
    const [g1, g2] = gradient(p, x, w[0], w[1]);
    const [[a, b], [, d]] = twoFeatureHessian(p, w, space);
    const det = a * d - b * b;
    const step: [number, number] = [(d * g1 - b * g2) / det, (a * g2 - b * g1) / det];
    w = [w[0] - step[0], w[1] - step[1]];
    if (Math.abs(step[0]) + Math.abs(step[1]) < 1e-14) break;
  }
  return { w, loss: twoFeatureLoss(p, w[0], w[1], space) };
}

/** Weights on the standardized features ↔ weights on the raw ones: the same function, v_i = w_i·std_i. */
export function toStandardizedWeights(p: TwoFeatureProblem, w: [number, number]): [number, number] {
  return [w[0] * p.featureStd[0], w[1] * p.featureStd[1]];
}

export function toRawWeights(p: TwoFeatureProblem, v: [number, number]): [number, number] {
  return [v[0] / p.featureStd[0], v[1] / p.featureStd[1]];
}

export interface LossGrid {
  space: 'raw' | 'standardized';
  /** Grid coordinates along w1 (columns) and w2 (rows), evenly spaced, ends included. */
  w1: Float64Array;
  w2: Float64Array;
  /** loss[row·w1.length + col] = L(w1[col], w2[row]). */
  loss: Float64Array;
}

/** The loss on an n×n grid over [w1Range] × [w2Range] in `space`, for contour plots. */
export function twoFeatureLossGrid(p: TwoFeatureProblem, space: 'raw' | 'standardized', w1Range: [number, number], w2Range: [number, number], n = 41): LossGrid {
  if (!Number.isInteger(n) || n < 2) throw new Error(`twoFeatureLossGrid: n must be an integer of at least 2, got ${n}`);
  for (const [name, r] of [['w1Range', w1Range], ['w2Range', w2Range]] as const) {
    if (!(Number.isFinite(r[0]) && Number.isFinite(r[1]) && r[1] > r[0])) throw new Error(`twoFeatureLossGrid: ${name} must be [low, high] with low < high, got [${r.join(', ')}]`);
  }
  const axis = (r: [number, number]) => Float64Array.from({ length: n }, (_, i) => r[0] + ((r[1] - r[0]) * i) / (n - 1));
  const w1 = axis(w1Range);
  const w2 = axis(w2Range);
  const loss = new Float64Array(n * n);
  for (let row = 0; row < n; row++) for (let col = 0; col < n; col++) loss[row * n + col] = twoFeatureLoss(p, w1[col], w2[row], space);
  return { space, w1, w2, loss };
}

export interface DescentOptions {
  inputs: TwoFeatureInputs;
  /** Learning rate. `learningRateFor` gives a fair one: a fraction of each space's largest stable rate. */
  lr: number;
  /** Steps to take at most. Default 1000. */
  steps?: number;
  /**
   * Starting weights on the standardized features (the same function in every space: raw weights are
   * converted with `toRawWeights`). Default [-1, 2].
   */
  start?: [number, number];
  /** The loss counted as arrived (see `targetLoss`); `stepsToTarget` is the first step at or below it. */
  targetLoss?: number;
  /** Stop at the target instead of running all the steps. Default false. */
  stopAtTarget?: boolean;
  /** Samples per step; the default (all of them) is full-batch gradient descent. With batch norm, each batch is normalized with its own statistics. */
  batchSize?: number;
  /** Batch norm's eps. Default 1e-5. */
  eps?: number;
  /** Batch norm learns γ and β too. Default false (see the header). */
  affine?: boolean;
}

export interface DescentPath {
  inputs: TwoFeatureInputs;
  lr: number;
  /** Where the path is drawn: 'raw' weights for raw inputs, weights on standardized features otherwise. */
  space: 'raw' | 'standardized';
  /** w1[k], w2[k]: the weights after k steps (k = 0 is the start); for batch norm the effective weights w_i·γ_i. */
  w1: number[];
  w2: number[];
  /** Full-data loss after k steps (for batch norm: with full-data statistics). */
  loss: number[];
  /** First step whose loss is at most `targetLoss`, or null when it was never reached (or no target was given). */
  stepsToTarget: number | null;
  /** True when the loss became NaN/Infinity or grew a thousand-fold over its start; the path stops there. */
  diverged: boolean;
  /** How many times the path turned back across the valley before reaching the target: sign changes of the step along the steep direction. */
  zigZags: number;
}

/**
 * The loss a path counts as arrived: the minimum plus `fraction` (default 1%) of the gap between the
 * start and the minimum. The same value in every space, since the start is the same function.
 */
export function targetLoss(p: TwoFeatureProblem, start: [number, number] = DEFAULT_START, fraction = 0.01): number {
  const min = twoFeatureMinimum(p, 'standardized').loss;
  return min + fraction * (twoFeatureLoss(p, start[0], start[1], 'standardized') - min);
}

export const DEFAULT_START: [number, number] = [-1, 2];

/**
 * A learning rate for `inputs` at `fraction` of the largest stable rate 2/λmax of its space, so that raw
 * and normalized inputs are compared each at its best; raw inputs cannot use more without diverging.
 * With batch norm and `affine`, the learned γ multiplies w: a step moves the effective weight w_i·γ_i by about
 * lr·(w_i² + γ_i²) times its gradient, so the rate is divided by that factor at the start (γ = 1).
 */
export function learningRateFor(p: TwoFeatureProblem, inputs: TwoFeatureInputs, fraction = 0.9, options: { affine?: boolean; start?: [number, number] } = {}): number {
  const lr = fraction * twoFeatureCurvature(p, inputs === 'raw' ? 'raw' : 'standardized').maxStableLr;
  const start = options.start ?? DEFAULT_START;
  return inputs === 'batchnorm' && options.affine ? lr / (1 + Math.max(start[0] ** 2, start[1] ** 2)) : lr;
}

/**
 * Steps plain gradient descent needs to bring the loss down to `target` from `start`, from the quadratic
 * model at the minimum (exact for the squared loss, an estimate for the logistic one): along each
 * eigendirection j of the Hessian the gap ½·λ_j·a_j² shrinks by (1 − lr·λ_j)² per step. For runs too
 * long to simulate (raw inputs at a ratio of 1000 need millions). Infinity when the rate diverges or
 * the target is below the minimum.
 */
export function estimatedStepsToTarget(p: TwoFeatureProblem, inputs: 'raw' | 'standardized', lr: number, target: number, start: [number, number] = DEFAULT_START): number {
  const min = twoFeatureMinimum(p, inputs);
  const [[h11, h12], [, h22]] = twoFeatureHessian(p, min.w, inputs);
  const lambdas = eigenvalues2([[h11, h12], [h12, h22]]);
  const s = inputs === 'raw' ? toRawWeights(p, start) : start;
  const d = [s[0] - min.w[0], s[1] - min.w[1]];
  const modes = lambdas.map((lambda) => {
    const v: [number, number] = Math.abs(h12) > 1e-300 ? normalize([h12, lambda - h11]) : (lambda === h11) === h11 >= h22 ? [1, 0] : [0, 1];
    const a = d[0] * v[0] + d[1] * v[1];
    return { gap: 0.5 * lambda * a * a, rate: (1 - lr * lambda) ** 2 };
  });
  const goal = target - min.loss;
  if (!(goal > 0)) return Infinity;
  if (modes.some((m) => m.gap > 0 && m.rate >= 1)) return Infinity;
  const gapAt = (k: number) => modes.reduce((sum, m) => sum + m.gap * m.rate ** k, 0);
  if (gapAt(0) <= goal) return 0;
  let hi = 1;
  while (gapAt(hi) > goal) {
    hi *= 2;
    if (hi > 2 ** 60) return Infinity;
  }
  let lo = hi / 2;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (gapAt(mid) > goal) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** Gradient descent from `start` with a fixed learning rate; see `DescentOptions`. */
export function gradientDescentPath(p: TwoFeatureProblem, options: DescentOptions): DescentPath {
  const steps = options.steps ?? 1000;
  const start = options.start ?? DEFAULT_START;
  const batchSize = options.batchSize ?? p.samples;
  const { inputs, lr } = options;
  if (!TWO_FEATURE_INPUTS.includes(inputs)) throw new Error(`gradientDescentPath: inputs must be one of ${TWO_FEATURE_INPUTS.join(', ')}, got ${JSON.stringify(inputs)}`);
  if (!(lr > 0) || !Number.isFinite(lr)) throw new Error(`gradientDescentPath: lr must be a positive number, got ${lr}`);
  if (!Number.isInteger(steps) || steps < 0) throw new Error(`gradientDescentPath: steps must be a non-negative integer, got ${steps}`);
  if (!Number.isInteger(batchSize) || batchSize < 2 || batchSize > p.samples) throw new Error(`gradientDescentPath: batchSize must be an integer from 2 to ${p.samples} (batch norm needs 2 values per feature), got ${batchSize}`);
  const space = inputs === 'raw' ? 'raw' : 'standardized';
  const path: DescentPath = { inputs, lr, space, w1: [], w2: [], loss: [], stepsToTarget: null, diverged: false, zigZags: 0 };
  const target = options.targetLoss;
  // Step direction across the valley: the Hessian's top eigenvector, for counting zig-zags.
  const [[h11, h12], [, h22]] = twoFeatureHessian(p, twoFeatureMinimum(p, space).w, space);
  const top = eigenvalues2([[h11, h12], [h12, h22]])[0];
  const steep = Math.abs(h12) > 1e-300 ? normalize([h12, top - h11]) : h11 >= h22 ? [1, 0] : [0, 1];
  let lastAcross = 0;
  // Steps across the valley smaller than this are rounding at the bottom, not a zig-zag.
  const minAcross = 1e-6 * Math.hypot(...(space === 'raw' ? toRawWeights(p, start) : start).map((v, i) => v - twoFeatureMinimum(p, space).w[i]));

  const record = (w1: number, w2: number, step: number, loss = twoFeatureLoss(p, w1, w2, space)): boolean => {
    if (path.loss.length) {
      const across = (w1 - path.w1[path.w1.length - 1]) * steep[0] + (w2 - path.w2[path.w2.length - 1]) * steep[1];
      if (Math.abs(across) > minAcross && path.stepsToTarget === null) {
        if (lastAcross !== 0 && Math.sign(across) !== Math.sign(lastAcross)) path.zigZags++;
        lastAcross = across;
      }
    }
    path.w1.push(w1);
    path.w2.push(w2);
    path.loss.push(loss);
    if (!Number.isFinite(loss) || loss > 1000 * Math.max(path.loss[0], 1e-12)) {
      path.diverged = true;
      return false;
    }
    if (target !== undefined && loss <= target && path.stepsToTarget === null) {
      path.stepsToTarget = step;
      if (options.stopAtTarget) return false;
    }
    return true;
  };

  const batches = Math.max(1, Math.floor(p.samples / batchSize));
  if (inputs !== 'batchnorm') {
    const x = featuresOf(p, space);
    let [w1, w2] = space === 'raw' ? toRawWeights(p, start) : start;
    if (!record(w1, w2, 0)) return path;
    for (let k = 1; k <= steps; k++) {
      const b = (k - 1) % batches;
      const [g1, g2] = gradient(p, x, w1, w2, b * batchSize, (b + 1) * batchSize);
      w1 -= lr * g1;
      w2 -= lr * g2;
      if (!record(w1, w2, k)) break;
    }
    return path;
  }
  // Batch norm on the raw input: the layer computes x̂ from the batch, so the raw scale never reaches w.
  const eps = options.eps ?? 1e-5;
  const w = [start[0], start[1]];
  const gamma = [1, 1];
  const beta = [0, 0];
  // Full-data statistics: x̂_i = x_i/√(std_i² + eps), i.e. the standardized feature times std_i/√(std_i² + eps).
  const shrink = p.featureStd.map((s) => s / Math.sqrt(s * s + eps));
  const effective = () => [w[0] * gamma[0] * shrink[0], w[1] * gamma[1] * shrink[1]];
  // The model's loss with full-data statistics: Σ β_i·w_i is a constant added to every logit.
  const bnLoss = () => {
    const offset = w[0] * beta[0] + w[1] * beta[1];
    const [v1, v2] = effective();
    let s = 0;
    for (let n = 0; n < p.samples; n++) {
      const z = v1 * p.xStandardized[2 * n] + v2 * p.xStandardized[2 * n + 1] + offset;
      s += p.loss === 'squared' ? 0.5 * (z - p.y[n]) ** 2 : softplus(z) - p.y[n] * z;
    }
    return s / p.samples;
  };
  let e = effective();
  if (!record(e[0], e[1], 0, bnLoss())) return path;
  const xhat = new Float64Array(2 * batchSize);
  const invStd = [0, 0];
  for (let k = 1; k <= steps; k++) {
    const b = (k - 1) % batches;
    const from = b * batchSize;
    for (let i = 0; i < 2; i++) {
      let m = 0;
      for (let n = 0; n < batchSize; n++) m += p.x[2 * (from + n) + i] / batchSize;
      let v = 0;
      for (let n = 0; n < batchSize; n++) v += (p.x[2 * (from + n) + i] - m) ** 2 / batchSize;
      invStd[i] = 1 / Math.sqrt(v + eps);
      for (let n = 0; n < batchSize; n++) xhat[2 * n + i] = (p.x[2 * (from + n) + i] - m) * invStd[i];
    }
    // Forward and backward of y = Σ w_i·(γ_i·x̂_i + β_i); x̂ needs no gradient (the input is data).
    const dw = [0, 0];
    const dGamma = [0, 0];
    const dBeta = [0, 0];
    for (let n = 0; n < batchSize; n++) {
      const h0 = gamma[0] * xhat[2 * n] + beta[0];
      const h1 = gamma[1] * xhat[2 * n + 1] + beta[1];
      const z = w[0] * h0 + w[1] * h1;
      const r = ((p.loss === 'squared' ? z : sigmoid(z)) - p.y[from + n]) / batchSize;
      dw[0] += r * h0;
      dw[1] += r * h1;
      dGamma[0] += r * w[0] * xhat[2 * n];
      dGamma[1] += r * w[1] * xhat[2 * n + 1];
      dBeta[0] += r * w[0];
      dBeta[1] += r * w[1];
    }
    for (let i = 0; i < 2; i++) {
      w[i] -= lr * dw[i];
      if (!options.affine) continue;
      gamma[i] -= lr * dGamma[i];
      beta[i] -= lr * dBeta[i];
    }
    e = effective();
    if (!record(e[0], e[1], k, bnLoss())) break;
  }
  return path;
}

function normalize(v: [number, number]): [number, number] {
  const n = Math.hypot(v[0], v[1]);
  return [v[0] / n, v[1] / n];
}

/** The box [w1Range, w2Range] around the points of `paths` and `extra` points, widened by `margin` (a fraction) on every side. */
export function pathBounds(paths: readonly Pick<DescentPath, 'w1' | 'w2'>[], extra: ReadonlyArray<[number, number]> = [], margin = 0.15): { w1: [number, number]; w2: [number, number] } {
  let a = [Infinity, -Infinity];
  let b = [Infinity, -Infinity];
  const add = (u: number, v: number) => {
    if (!Number.isFinite(u) || !Number.isFinite(v)) return;
    a = [Math.min(a[0], u), Math.max(a[1], u)];
    b = [Math.min(b[0], v), Math.max(b[1], v)];
  };
  for (const path of paths) path.w1.forEach((u, i) => add(u, path.w2[i]));
  for (const [u, v] of extra) add(u, v);
  if (!Number.isFinite(a[0])) throw new Error('pathBounds: no finite points');
  const widen = (r: number[]): [number, number] => {
    const span = r[1] - r[0] || Math.max(Math.abs(r[0]), 1e-9);
    return [r[0] - margin * span, r[1] + margin * span];
  };
  return { w1: widen(a), w2: widen(b) };
}
