/**
 * `smoothness`: the modern view (Santurkar et al., 2018, "How Does Batch Normalization Help
 * Optimization?"). The paper's network without BN, with BN, and with "noisy BN" (BN followed by a random
 * per-unit scale and shift of its outputs, redrawn every step from distributions that themselves change
 * every step) trains with plain SGD, and every `probeEvery` steps, on the batch of that step:
 *
 * - internal covariate shift through gradients (landscape.ts: ‖G − G'‖ and cos(G, G') for each layer
 *   after the first, when the layers before it take their step first);
 * - the loss and the gradient along the gradient direction at step sizes `stepScales`·lr: the range of
 *   the loss, the largest change of the gradient, and the effective β-smoothness;
 * - the drift of the sigmoid inputs on a fixed probe batch between probes (the "covariate shift" the
 *   original paper means), so that noisy BN can be seen to shift the distributions more.
 *
 * The reading says which explanation the numbers support: reduced internal covariate shift (Ioffe &
 * Szegedy) or a smoother loss landscape (Santurkar et al.).
 */
import type { Dataset } from '../data/dataset.js';
import { Sigmoid } from '../nn/activations.js';
import { BatchNorm1d, BatchNormBase, type BatchNormStatistics } from '../nn/batchnorm.js';
import { Linear } from '../nn/linear.js';
import { CrossEntropyLoss } from '../nn/loss.js';
import { Module, checkBackward, reuse } from '../nn/module.js';
import { Sequential } from '../nn/sequential.js';
import { xyChart, type Figure, type Row } from '../report/charts.js';
import { Rng } from '../tensor/rng.js';
import { Tensor } from '../tensor/tensor.js';
import { firstUpTo } from './data.js';
import { formatCount, formatList, formatNumber, formatPercent, formatPoints, formatRatio, formatValue } from './format.js';
import { internalCovariateShift, probeLandscape, type Objective } from './landscape.js';
import { BASE_LR, INPUT_SHAPE, baseModelDescription, buildNetwork, networkLayers } from './models.js';
import { buildSequential } from '../nn/registry.js';
import { ProgressTicker } from './progress.js';
import { combineEffects, figuresOverSeeds, type EffectMeasure } from './seeds.js';
import { runEverySeed, startRun } from './settings.js';
import { median } from './stats.js';
import { trainNetwork, type LossPoint, type TestPoint } from './train-run.js';
import type { ExperimentDefinition, ExperimentOptions, ExperimentResult, SeedEffect } from './types.js';

/**
 * Noise after a BN layer (Santurkar et al., section 2.1): y = a_j·x + b_j per unit j, with a_j and b_j
 * drawn anew by `resample()` (once per training step) — a_j = μ_a·exp(σ_a·z) (positive), b_j ~ N(μ_b, σ_b²)
 * — where the distribution's own parameters are redrawn each time too: μ_a ~ U(1, 1 + noise),
 * σ_a, σ_b ~ U(0, noise), μ_b ~ U(−noise, noise). Eval mode is the identity. No parameters.
 *
 * Shape legend: B = batch, U = units.
 */
export class NoisyShift extends Module {
  readonly typeName = 'NoisyShift';
  readonly scale: Float32Array;
  readonly shift: Float32Array;
  private y: Tensor | null = null;
  private dx: Tensor | null = null;
  private applied = false;

  constructor(readonly units: number, readonly noise: number, private readonly rng: Rng) {
    super();
    if (!(noise >= 0 && Number.isFinite(noise))) throw new Error(`NoisyShift: noise must be a finite number >= 0, got ${noise}`);
    this.scale = new Float32Array(units);
    this.shift = new Float32Array(units);
    this.resample();
  }

  /** New a_j, b_j (and new distributions for them). */
  resample(): void {
    const n = this.noise;
    const meanScale = 1 + n * this.rng.uniform();
    const sdScale = n * this.rng.uniform();
    const meanShift = n * (2 * this.rng.uniform() - 1);
    const sdShift = n * this.rng.uniform();
    for (let j = 0; j < this.units; j++) {
      this.scale[j] = meanScale * Math.exp(sdScale * this.rng.normal());
      this.shift[j] = meanShift + sdShift * this.rng.normal();
    }
  }

  outputShape(inputShape: readonly number[]): number[] {
    return [...inputShape];
  }

  forward(x: Tensor): Tensor {
    const [batch, units] = x.shape;
    if (x.shape.length !== 2 || units !== this.units) throw new Error(`NoisyShift(${this.units}): expected input [B, ${this.units}], got [${x.shape.join(', ')}]`);
    this.y = reuse(this.y, x.shape, this.kernels);
    this.applied = this.training;
    if (!this.applied) {
      this.y.data.set(x.data);
      return this.y;
    }
    for (let b = 0; b < batch; b++) {
      const o = b * units;
      for (let j = 0; j < units; j++) this.y.data[o + j] = this.scale[j] * x.data[o + j] + this.shift[j];
    }
    return this.y;
  }

  /** dx = dy·a_j: the noise is a constant of this step. */
  backward(dy: Tensor): Tensor {
    checkBackward(this, this.y, dy);
    this.dx = reuse(this.dx, dy.shape, this.kernels);
    if (!this.applied) {
      this.dx.data.set(dy.data);
      return this.dx;
    }
    const units = this.units;
    for (let i = 0; i < dy.size; i++) this.dx.data[i] = dy.data[i] * this.scale[i % units];
    return this.dx;
  }

  protected override releaseBuffers(): void {
    this.y = this.dx = null;
  }

  override describe(): string {
    return `NoisyShift(${this.units}, noise=${this.noise})`;
  }

  override config(): Record<string, unknown> {
    return { units: this.units, noise: this.noise };
  }
}

/**
 * 'plain' is the paper's network without BN, from the preset's small initial weights: at the preset's
 * learning rate it sits on a plateau for a long time, where every gradient is tiny. 'plain-xavier' is the
 * same network from Xavier-normal initial weights, which trains without BN: the comparison that shows
 * whether BN is smoother than a network that is not stuck.
 */
export type SmoothnessNetwork = 'plain' | 'plain-xavier' | 'bn' | 'noisy-bn';
export const SMOOTHNESS_NETWORKS: readonly SmoothnessNetwork[] = ['bn', 'plain', 'plain-xavier', 'noisy-bn'];
export const SMOOTHNESS_LABELS: Record<SmoothnessNetwork, string> = { plain: 'without BN', 'plain-xavier': 'without BN, Xavier init', bn: 'with BN', 'noisy-bn': 'noisy BN' };

export interface SmoothnessSettings {
  steps: number;
  batchSize: number;
  lr: number;
  /** Measure every this many steps. */
  probeEvery: number;
  /** Step sizes along the gradient, as multiples of lr. */
  stepScales: number[];
  /** Spread of noisy BN's scale and shift (see NoisyShift). */
  noise: number;
  /** Training images whose sigmoid inputs are followed for the drift. */
  probeSize: number;
  testSize: number;
}

export type SmoothnessOptions = ExperimentOptions & Partial<SmoothnessSettings>;

export const SMOOTHNESS_DEFAULTS: SmoothnessSettings = { steps: 5_000, batchSize: 60, lr: BASE_LR, probeEvery: 100, stepScales: [0.25, 0.5, 1, 2, 4], noise: 1, probeSize: 500, testSize: 10_000 };
export const SMOOTHNESS_QUICK: SmoothnessSettings = { steps: 600, batchSize: 60, lr: BASE_LR, probeEvery: 30, stepScales: [0.5, 1, 2, 4], noise: 1, probeSize: 250, testSize: 1_000 };

export interface SmoothnessProbe {
  step: number;
  /** Per layer after the first (layer 2, 3, 4 of the four Linear layers). */
  ics: Array<{ layer: number; l2: number; relative: number; cosine: number }>;
  loss: number;
  lossRange: number;
  gradientPredictiveness: number;
  betaSmoothness: number;
  /** Mean over hidden sigmoids of |Δ mean of its input| / (std at the previous probe); null at the first probe. */
  drift: number | null;
}

export interface SmoothnessRun {
  probes: SmoothnessProbe[];
  train: LossPoint[];
  test: TestPoint[];
  finalAccuracy: number | null;
  finalLoss: number | null;
  diverged: boolean;
  /** Medians over the probes (from the second one on, for the drift). */
  medians: { icsL2: number; icsCosine: number; lossRange: number; gradientPredictiveness: number; betaSmoothness: number; drift: number };
}

export interface SmoothnessData {
  networks: Record<SmoothnessNetwork, SmoothnessRun>;
}

export type SmoothnessResult = ExperimentResult<SmoothnessData>;

/** The `ioffe-mlp` variant of `network`; for noisy BN, a NoisyShift after each BatchNorm1d. */
export function smoothnessNetwork(network: SmoothnessNetwork, seed: number, noise: number): { model: Sequential; noisy: NoisyShift[] } {
  if (network === 'plain-xavier') return { model: buildSequential(networkLayers({ norm: 'none', seed }), { rng: new Rng(seed), init: { name: 'xavier-normal' } }), noisy: [] };
  const base = buildNetwork({ norm: network === 'plain' ? 'none' : 'batch', seed });
  if (network !== 'noisy-bn') return { model: base, noisy: [] };
  const rng = new Rng(seed + 1000);
  const noisy: NoisyShift[] = [];
  const layers: Module[] = [];
  for (const l of base.layers) {
    layers.push(l);
    if (l instanceof BatchNorm1d) {
      const n = new NoisyShift(l.numFeatures, noise, rng);
      noisy.push(n);
      layers.push(n);
    }
  }
  return { model: new Sequential(...layers), noisy };
}

/**
 * The training loss of `model` on one batch as an `Objective`, computed as in training (batch
 * statistics) but without touching the running averages; noise as of the current step.
 */
export function batchObjective(model: Sequential, x: Tensor, labels: ArrayLike<number>): Objective & { layers: number[][]; weightOf: number[] } {
  const params = model.parameters().filter((p) => p.trainable);
  const index = new Map(params.map((p, i) => [p, i]));
  // A layer is a Linear with whatever normalizes its output (Santurkar et al. update "the layers before").
  const layers: number[][] = [];
  const weightOf: number[] = [];
  for (const m of model.layers) {
    const own = m.namedOwnParameters().map(([, p]) => index.get(p)).filter((i): i is number => i !== undefined);
    if (m instanceof Linear) {
      layers.push(own);
      weightOf.push(index.get(m.weight)!);
    } else if (own.length && layers.length) layers[layers.length - 1].push(...own);
  }
  const lossFn = new CrossEntropyLoss();
  return {
    values: params.map((p) => p.value.data),
    layers,
    weightOf,
    lossAndGradient() {
      return withFrozenStatistics(model, () => {
        model.train();
        model.zeroGrad();
        const loss = lossFn.forward(model.forward(x), labels);
        model.backward(lossFn.backward());
        return { loss, gradient: params.map((p) => Float32Array.from(p.grad.data)) };
      });
    },
  };
}

function withFrozenStatistics<T>(model: Sequential, fn: () => T): T {
  const bns = model.layers.filter((l): l is BatchNormBase => l instanceof BatchNormBase);
  const saved: BatchNormStatistics[] = bns.map((l) => l.statistics);
  try {
    for (const l of bns) if (l.trackRunningStats) l.statistics = 'batch-frozen';
    return fn();
  } finally {
    bns.forEach((l, i) => (l.statistics = saved[i]));
  }
}

/** Per hidden sigmoid, the mean and standard deviation of its input over the probe batch (train-mode forward, statistics frozen). */
function sigmoidInputMoments(model: Sequential, x: Tensor): Array<{ mean: Float64Array; std: Float64Array }> {
  return withFrozenStatistics(model, () => {
    model.train();
    const out: Array<{ mean: Float64Array; std: Float64Array }> = [];
    let h = x;
    for (const layer of model.layers) {
      if (layer instanceof Sigmoid) {
        const [n, units] = h.shape;
        const mean = new Float64Array(units);
        const std = new Float64Array(units);
        for (let r = 0; r < n; r++) for (let u = 0; u < units; u++) mean[u] += h.data[r * units + u] / n;
        for (let r = 0; r < n; r++) for (let u = 0; u < units; u++) std[u] += (h.data[r * units + u] - mean[u]) ** 2 / n;
        for (let u = 0; u < units; u++) std[u] = Math.sqrt(std[u]);
        out.push({ mean, std });
      }
      h = layer.forward(h);
    }
    return out;
  });
}

function driftBetween(prev: Array<{ mean: Float64Array; std: Float64Array }>, next: Array<{ mean: Float64Array; std: Float64Array }>): number {
  let s = 0;
  let n = 0;
  prev.forEach((p, l) => {
    for (let u = 0; u < p.mean.length; u++) {
      if (!(p.std[u] > 1e-12)) continue;
      s += Math.abs(next[l].mean[u] - p.mean[u]) / p.std[u];
      n++;
    }
  });
  return n ? s / n : 0;
}

export async function runSmoothness(options: SmoothnessOptions): Promise<SmoothnessResult> {
  const start = startRun('smoothness', options, SMOOTHNESS_DEFAULTS, SMOOTHNESS_QUICK, ['steps', 'batchSize', 'probeEvery', 'probeSize', 'testSize']);
  const { data, settings: s } = start;
  if (s.stepScales.length === 0 || !s.stepScales.every((m) => m > 0)) throw new Error(`smoothness: stepScales must be positive multiples of lr, got ${JSON.stringify(s.stepScales)}`);
  if (!(s.noise >= 0)) throw new Error(`smoothness: noise must be >= 0, got ${s.noise}`);
  const test = firstUpTo(data.test, s.testSize);
  const probeSet = firstUpTo(data.train, s.probeSize);
  const features = INPUT_SHAPE.reduce((a, b) => a * b, 1);
  const probeX = new Tensor([probeSet.count, features], probeSet.images.slice(0, probeSet.count * features));
  const progress = new ProgressTicker(start.seeds.length * SMOOTHNESS_NETWORKS.length * s.steps, options.onProgress);

  const one = async (seed: number) => {
    const networks = {} as Record<SmoothnessNetwork, SmoothnessRun>;
    for (const network of SMOOTHNESS_NETWORKS) {
      progress.setPhase(`${start.seeds.length > 1 ? `seed ${seed}, ` : ''}${SMOOTHNESS_LABELS[network]}, lr ${formatNumber(s.lr)}`);
      networks[network] = await trainAndProbe(network, seed, s, data.train, test, probeX, progress);
    }
    const d: SmoothnessData = { networks };
    return { data: d, ...describeSmoothness(d, s) };
  };
  return runEverySeed(start, one, {
    title: 'The modern view: smoothness or covariate shift? (Santurkar et al. 2018)',
    question: 'Does batch norm help because it reduces internal covariate shift, or because it makes the loss and its gradients smoother?',
    settings: { ...s, model: `${baseModelDescription()}; noisy BN: BN followed by a random per-unit scale and shift redrawn every step`, optimizer: `SGD, no momentum, learning rate ${formatNumber(s.lr)}`, stepSizes: s.stepScales.map((m) => m * s.lr), probe: `the batch of the step (ICS, landscape); first ${formatCount(probeSet.count)} training images (drift)`, testSet: `${data.test.name} test, first ${formatCount(test.count)}` },
    effects: smoothnessEffects,
    conclusion: smoothnessVerdict,
  });
}

async function trainAndProbe(network: SmoothnessNetwork, seed: number, s: SmoothnessSettings, train: Dataset, test: Dataset, probeX: Tensor, progress: ProgressTicker): Promise<SmoothnessRun> {
  const { model, noisy } = smoothnessNetwork(network, seed, s.noise);
  const probes: SmoothnessProbe[] = [];
  let previousMoments: ReturnType<typeof sigmoidInputMoments> | null = null;
  const stepSizes = s.stepScales.map((m) => m * s.lr);
  const run = await trainNetwork({
    model,
    train,
    test,
    lr: s.lr,
    steps: s.steps,
    batchSize: s.batchSize,
    seed,
    evalSteps: Array.from({ length: Math.floor(s.steps / s.probeEvery) }, (_, i) => (i + 1) * s.probeEvery).concat(s.steps),
    progress,
    onStep: (step, _loss, stepper) => {
      if (step % s.probeEvery === 0) {
        const batch = stepper.lastBatch;
        const x = batch.x.reshape([batch.labels.length, ...INPUT_SHAPE]);
        const objective = batchObjective(model, x, batch.labels);
        const measured = objective.layers.map((_, i) => i).filter((i) => i >= 1);
        const ics = internalCovariateShift(objective, objective.layers, objective.weightOf, s.lr, measured).map((g, k) => ({ layer: measured[k] + 1, ...g }));
        const landscape = probeLandscape(objective, stepSizes);
        const moments = sigmoidInputMoments(model, probeX);
        const drift = previousMoments ? driftBetween(previousMoments, moments) : null;
        previousMoments = moments;
        probes.push({ step, ics, loss: landscape.loss, lossRange: landscape.lossRange, gradientPredictiveness: landscape.gradientPredictiveness, betaSmoothness: landscape.betaSmoothness, drift });
      }
      // The next step sees new noise (after the measurements, which must see one fixed function).
      for (const n of noisy) n.resample();
    },
  });
  const finite = (xs: number[]) => xs.filter(Number.isFinite);
  const med = (xs: number[]) => median(finite(xs));
  return {
    probes,
    train: run.train,
    test: run.test,
    finalAccuracy: run.diverged ? null : (run.test.at(-1)?.accuracy ?? null),
    finalLoss: run.diverged ? null : run.finalLoss,
    diverged: run.diverged,
    medians: {
      icsL2: med(probes.flatMap((p) => p.ics.map((g) => g.l2))),
      icsCosine: med(probes.flatMap((p) => p.ics.map((g) => g.cosine))),
      lossRange: med(probes.map((p) => p.lossRange)),
      gradientPredictiveness: med(probes.map((p) => p.gradientPredictiveness)),
      betaSmoothness: med(probes.map((p) => p.betaSmoothness)),
      drift: med(probes.filter((p) => p.drift !== null).map((p) => p.drift!)),
    },
  };
}

/** The claims, as one seed shows them. Smoothness and ICS compare BN with the network without BN that trains (Xavier init). */
export function smoothnessEffects(d: SmoothnessData): EffectMeasure[] {
  const { plain, bn } = d.networks;
  const xavier = d.networks['plain-xavier'];
  const noisy = d.networks['noisy-bn'];
  const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a) ? a / b : null);
  // BN's lead is over the better network without BN, as the smoothness claims compare with the one that
  // trains: a lead over the plateau network alone would flatter noisy BN.
  const base = bestWithoutBn(d);
  const accOk = noisy.finalAccuracy !== null && bn.finalAccuracy !== null && base !== null && bn.finalAccuracy > base;
  const lead = accOk ? (noisy.finalAccuracy! - base!) / (bn.finalAccuracy! - base!) : null;
  const vs = 'without BN (Xavier init) / with BN';
  return [
    { id: 'loss-range', claim: 'the loss varies less along the gradient with BN than without (a smoother loss landscape)', label: `median range of the loss along the gradient, ${vs}`, value: ratio(xavier.medians.lossRange, bn.medians.lossRange), holds: bn.medians.lossRange < xavier.medians.lossRange, format: 'ratio' },
    { id: 'gradient-predictiveness', claim: 'the gradient changes less along the gradient with BN (more predictive gradients)', label: `median largest change of the gradient along it, ${vs}`, value: ratio(xavier.medians.gradientPredictiveness, bn.medians.gradientPredictiveness), holds: bn.medians.gradientPredictiveness < xavier.medians.gradientPredictiveness, format: 'ratio' },
    { id: 'beta-smoothness', claim: 'the effective β-smoothness is smaller with BN', label: `median effective β-smoothness, ${vs}`, value: ratio(xavier.medians.betaSmoothness, bn.medians.betaSmoothness), holds: bn.medians.betaSmoothness < xavier.medians.betaSmoothness, format: 'ratio' },
    { id: 'ics-reduced', claim: "BN reduces internal covariate shift measured through gradients (a layer's gradient turns less when the layers before it update)", label: 'median cos(G, G′), with BN minus without BN (Xavier init)', value: bn.medians.icsCosine - xavier.medians.icsCosine, holds: bn.medians.icsCosine > xavier.medians.icsCosine, format: 'value' },
    { id: 'noisy-shift', claim: "noisy BN shifts the layers' input distributions more than BN", label: 'median drift of the sigmoid inputs between probes, noisy BN / BN', value: ratio(noisy.medians.drift, bn.medians.drift), holds: noisy.medians.drift > bn.medians.drift, format: 'ratio' },
    { id: 'noisy-ics', claim: 'noisy BN has more internal covariate shift through gradients than BN', label: 'median cos(G, G′), BN minus noisy BN', value: bn.medians.icsCosine - noisy.medians.icsCosine, holds: noisy.medians.icsCosine < bn.medians.icsCosine, format: 'value' },
    { id: 'noisy-trains', claim: "noisy BN keeps at least 90% of BN's lead in test accuracy over the better network without BN (either initialization)", label: "noisy BN's lead over the better network without BN as a share of BN's (test accuracy at the end)", value: lead, holds: lead !== null && lead >= 0.9, format: 'percent' },
  ];
}

/** "0, 50, 100 and 150", or the first few and how many more. */
function listSteps(steps: number[]): string {
  const shown = steps.slice(0, 6).map((x) => formatCount(x));
  return formatList(steps.length > 6 ? [...shown, `${steps.length - 6} more`] : shown);
}

/** The higher final test accuracy of the two networks without BN (null when both diverged). */
function bestWithoutBn(d: SmoothnessData): number | null {
  const accs = [d.networks.plain.finalAccuracy, d.networks['plain-xavier'].finalAccuracy].filter((a): a is number => a !== null);
  return accs.length ? Math.max(...accs) : null;
}

/**
 * Which explanation the measurements support, in plain words: the original one (BN helps by reducing
 * internal covariate shift) or Santurkar et al.'s (BN makes the landscape smoother). Written from the
 * effects over the seeds (one seed: that seed's).
 */
export function smoothnessVerdict(effects: SeedEffect[]): string[] {
  const held = (id: string) => {
    const e = effects.find((x) => x.id === id)!;
    return { all: e.heldOn === e.holds.length, none: e.heldOn === 0, count: `${e.heldOn} of ${e.holds.length}`, heldOn: e.heldOn, holds: e.holds.length };
  };
  const smooth = ['loss-range', 'gradient-predictiveness', 'beta-smoothness'].map(held);
  const ics = held('ics-reduced');
  const shift = held('noisy-shift');
  const noisyIcs = held('noisy-ics');
  const trains = held('noisy-trains');
  const n = effects[0]?.holds.length ?? 1;
  const everywhere = n === 1 ? 'in this run' : `on every one of the ${n} seeds`;
  const nowhere = n === 1 ? 'in this run' : 'on any seed';
  const out: string[] = [];
  if (smooth.every((x) => x.all)) out.push(`Santurkar et al.'s explanation — BN makes the loss and its gradients smoother — is supported: ${everywhere} the loss varied less along the gradient, the gradient changed less and the effective β-smoothness was smaller with BN than without (against the network without BN that trains, from Xavier initial weights).`);
  else if (smooth.every((x) => x.none)) out.push(`Santurkar et al.'s explanation — BN makes the loss and its gradients smoother — is not supported here: the loss range, the gradient change and the β-smoothness along the gradient were not smaller with BN ${nowhere}.`);
  else out.push(`Santurkar et al.'s explanation — BN makes the loss and its gradients smoother — is only partly supported: the loss range, the gradient change and the β-smoothness were smaller with BN on ${smooth.map((x) => x.count).join(', ')} seeds respectively.`);
  const lostOn = n === 1 ? 'in this run' : `on ${trains.holds - trains.heldOn} of ${n} seeds`;
  const noisyText =
    shift.all && trains.all
      ? `noisy BN shifted the layer inputs more than BN${noisyIcs.all ? ' and had more internal covariate shift through gradients' : ''}, yet kept at least 90% of BN's lead over the better network without BN ${everywhere}: more covariate shift did not take BN's benefit away`
      : shift.all
        ? `noisy BN, which shifted the layer inputs more than BN, did not keep 90% of BN's lead over the better network without BN ${lostOn}`
        : `noisy BN did not shift the layer inputs more than BN on every seed (${shift.count}), so the noise test is inconclusive here`;
  const icsText = ics.all ? `BN did reduce internal covariate shift measured through gradients (${everywhere})` : ics.none ? `BN did not reduce internal covariate shift measured through gradients (${nowhere})` : `BN reduced internal covariate shift measured through gradients on ${ics.count} seeds only`;
  const verdict = shift.all && trains.all ? 'is not supported as the reason BN helps' : 'is not settled by these measurements';
  // Only a noisy BN that kept the benefit questions the steadiness; one that lost it fits the original
  // explanation without proving it, since the injected noise can hurt training in other ways.
  const after =
    shift.all && trains.all
      ? ' The noise test does not question what the original paper observed — steadier layer input distributions with BN (the distribution experiment) — but that this steadiness is what makes BN train faster.'
      : shift.all
        ? ` ${trains.none ? 'Losing the lead fits' : 'Where noisy BN lost the lead, that fits'} the original explanation without proving it: the injected noise may slow training in other ways than by shifting the inputs.`
        : '';
  // "and" when both findings point the same way for the original explanation, "but" when they differ.
  const noisyAgainst = shift.all && trains.all;
  const joiner = shift.all && ics.all !== noisyAgainst ? 'and' : 'but';
  out.push(`The original explanation — BN speeds training by reducing internal covariate shift (Ioffe & Szegedy) — ${verdict}: ${icsText}, ${joiner} ${noisyText}.${after}`);
  return out;
}

/** The reading, summary and headlines of one seed's measurements. */
export function describeSmoothness(d: SmoothnessData, s: SmoothnessSettings) {
  const m = (n: SmoothnessNetwork) => d.networks[n].medians;
  const acc = (n: SmoothnessNetwork) => (d.networks[n].finalAccuracy === null ? 'diverged' : formatPercent(d.networks[n].finalAccuracy!));
  const each = (f: (n: SmoothnessNetwork) => string) => SMOOTHNESS_NETWORKS.map((n) => `${f(n)} ${SMOOTHNESS_LABELS[n]}`).join(', ');
  const reading: string[] = [];
  reading.push(
    `Measured every ${formatCount(s.probeEvery)} steps over ${formatCount(s.steps)} steps of SGD (lr ${formatNumber(s.lr)}, batch ${s.batchSize}), on the batch of that step, moving along the gradient by ${s.stepScales.map((x) => formatNumber(x * s.lr)).join(', ')} times it (medians over the probes): ` +
      `range of the loss ${each((n) => formatValue(m(n).lossRange))}; largest change of the gradient ${each((n) => formatValue(m(n).gradientPredictiveness))}; effective β-smoothness ${each((n) => formatValue(m(n).betaSmoothness))}.`,
  );
  // Medians hide when the ordering holds: early in training BN's landscape can be the rougher one.
  const xavierAt = new Map(d.networks['plain-xavier'].probes.map((p) => [p.step, p.lossRange]));
  const pairs = d.networks.bn.probes.map((p) => ({ step: p.step, bn: p.lossRange, other: xavierAt.get(p.step) })).filter((x) => Number.isFinite(x.bn) && x.other !== undefined && Number.isFinite(x.other));
  const smoother = pairs.filter((x) => x.bn < x.other!);
  if (pairs.length && smoother.length < pairs.length) {
    const rougher = pairs.filter((x) => x.bn >= x.other!);
    reading.push(`Probe by probe, the loss range along the gradient was smaller with BN than without (Xavier init) at ${smoother.length} of ${pairs.length} probes; it was larger at step${rougher.length > 1 ? 's' : ''} ${listSteps(rougher.map((x) => x.step))}${rougher.every((x) => x.step <= pairs[Math.floor(pairs.length / 2)].step) ? ', early in training' : ''}: the medians above do not hold at every moment.`);
  }
  reading.push(
    `The network without BN from the paper's small initial weights sits on a plateau at this learning rate (test accuracy ${acc('plain')} at the end): its gradients are tiny, so the loss barely moves along them — flat, not easy to descend. The comparison that tests smoothness is against the same network from Xavier initial weights, which trains without BN (${acc('plain-xavier')}).`,
  );
  reading.push(
    `Internal covariate shift through gradients (layers 2 to 4, after the layers before each took their step on the same batch): cos(G, G′) ${each((n) => formatValue(m(n).icsCosine))} (1 = the gradient did not turn); ‖G − G′‖ ${each((n) => formatValue(m(n).icsL2))}, which also depends on the size of each network's gradients.`,
  );
  reading.push(`Drift of the sigmoid inputs between probes (mean |Δ mean| in standard deviations): ${each((n) => formatValue(m(n).drift))}. Test accuracy at the end: ${each(acc)}.`);
  // The noise test asks noisy BN to keep 90% of BN's lead: a lead within about two standard errors of an
  // accuracy on testSize images makes that share mostly measurement noise, which the reader should know.
  const base = bestWithoutBn(d);
  const bnAcc = d.networks.bn.finalAccuracy;
  if (base !== null && bnAcc !== null) {
    const lead = bnAcc - base;
    const twoSe = 2 * Math.sqrt((bnAcc * (1 - bnAcc)) / s.testSize);
    if (lead <= 0) reading.push(`BN was not ahead of the better network without BN at the end (${formatPercent(bnAcc)} against ${formatPercent(base)}), so the noise test below has no lead for noisy BN to keep.`);
    else if (lead < twoSe) reading.push(`BN's lead over the better network without BN was only ${formatPoints(lead)}, less than two standard errors (${formatPoints(twoSe)}) of an accuracy measured on ${formatCount(s.testSize)} test images: the noise test below, which asks noisy BN to keep 90% of that lead, rests on a difference this run can hardly resolve.`);
  }
  reading.push(...smoothnessVerdict(combineEffects([smoothnessEffects(d)])));
  const headlines = [
    { label: 'range of the loss along the gradient, with BN / without BN (Xavier init), median', value: `${formatValue(m('bn').lossRange)} / ${formatValue(m('plain-xavier').lossRange)}` },
    { label: 'effective β-smoothness, with BN / without BN (Xavier init), median', value: `${formatValue(m('bn').betaSmoothness)} / ${formatValue(m('plain-xavier').betaSmoothness)}` },
    { label: 'cos(G, G′), with BN / without BN (Xavier init) / noisy BN, median', value: `${formatValue(m('bn').icsCosine)} / ${formatValue(m('plain-xavier').icsCosine)} / ${formatValue(m('noisy-bn').icsCosine)}` },
    { label: 'test accuracy, with BN / noisy BN / without BN / without BN (Xavier init)', value: `${acc('bn')} / ${acc('noisy-bn')} / ${acc('plain')} / ${acc('plain-xavier')}` },
  ];
  const summary = [
    `along the gradient: loss range ${formatValue(m('bn').lossRange)} with BN vs ${formatValue(m('plain-xavier').lossRange)} without (Xavier init); β-smoothness ${formatValue(m('bn').betaSmoothness)} vs ${formatValue(m('plain-xavier').betaSmoothness)}`,
    `gradient ICS, cos(G, G′): ${formatValue(m('bn').icsCosine)} with BN, ${formatValue(m('plain-xavier').icsCosine)} without (Xavier init), ${formatValue(m('noisy-bn').icsCosine)} noisy BN`,
    `noisy BN: input drift ${formatRatio(m('noisy-bn').drift / m('bn').drift)} BN's, test accuracy ${acc('noisy-bn')} (BN ${acc('bn')}, without ${acc('plain')}, without from Xavier init ${acc('plain-xavier')})`,
  ];
  return { reading, summary, headlines };
}

function smoothnessFiguresOfOne(result: SmoothnessResult): Figure[] {
  const d = result.data;
  const s = result.settings as unknown as SmoothnessSettings;
  const domain = SMOOTHNESS_NETWORKS.map((n) => SMOOTHNESS_LABELS[n]);
  const landscape: Row[] = [];
  const ics: Row[] = [];
  const drift: Row[] = [];
  const acc: Row[] = [];
  for (const n of SMOOTHNESS_NETWORKS) {
    const network = SMOOTHNESS_LABELS[n];
    for (const p of d.networks[n].probes) {
      const add = (measure: string, value: number) => Number.isFinite(value) && value > 0 && landscape.push({ step: p.step, value, measure, network });
      add('loss range', p.lossRange);
      add('gradient change', p.gradientPredictiveness);
      add('β-smoothness', p.betaSmoothness);
      const cos = p.ics.reduce((a, g) => a + g.cosine, 0) / p.ics.length;
      const l2 = p.ics.reduce((a, g) => a + g.l2, 0) / p.ics.length;
      ics.push({ step: p.step, value: cos, measure: 'cos(G, G′)', network });
      if (l2 > 0) ics.push({ step: p.step, value: l2, measure: '‖G − G′‖', network });
      if (p.drift !== null && p.drift > 0) drift.push({ step: p.step, drift: p.drift, network });
    }
    for (const p of d.networks[n].test) acc.push({ step: p.step, accuracy: p.accuracy, network });
  }
  const x = { field: 'step', title: 'training steps', zero: true };
  return [
    {
      id: 'landscape',
      title: 'Along the gradient: loss range, gradient change, β-smoothness',
      caption: `Santurkar et al.'s Figs. 4–5. At each probe, on the batch of that step, the parameters move along −gradient by ${s.stepScales.map((m) => formatNumber(m * s.lr)).join(', ')} times it: the range of the loss, the largest change of the gradient, and that change divided by the distance moved (effective β-smoothness). Log scale; lower is smoother, except that the network without BN from the paper's small initial weights is low because it sits on a plateau where every gradient is tiny: compare BN with the one from Xavier initial weights.`,
      spec: xyChart({ values: landscape, x, y: { field: 'value', title: 'value (log scale)', scale: 'log' }, color: { field: 'network', title: 'network', domain }, column: { field: 'measure', title: '', domain: ['loss range', 'gradient change', 'β-smoothness'] }, independentY: true, width: 260, height: 220 }),
    },
    {
      id: 'ics',
      title: 'Internal covariate shift through gradients',
      caption: "Santurkar et al.'s Definition 2.1, averaged over layers 2–4: a layer's weight gradient before and after the layers before it take their SGD step on the same batch. Cosine 1 means the gradient did not turn; ‖G − G′‖ depends on the size of the gradients too.",
      spec: xyChart({ values: ics, x, y: { field: 'value', title: 'value' }, color: { field: 'network', title: 'network', domain }, column: { field: 'measure', title: '', domain: ['cos(G, G′)', '‖G − G′‖'] }, independentY: true, width: 320, height: 220 }),
    },
    {
      id: 'drift',
      title: 'Drift of the sigmoid inputs between probes',
      caption: `Mean over the hidden sigmoids of |change of the mean of its input| between probes, in standard deviations of the earlier probe, on the first ${formatCount(s.probeSize)} training images (train mode; noisy BN with that step's noise). Log scale.`,
      spec: xyChart({ values: drift, x, y: { field: 'drift', title: 'drift (standard deviations, log scale)', scale: 'log' }, color: { field: 'network', title: 'network', domain } }),
    },
    {
      id: 'accuracy',
      title: 'Test accuracy during training',
      caption: `Test accuracy (first ${formatCount(s.testSize)} test images) of the four networks, trained on the same batches. Noisy BN is BN followed by a random scale and shift of every unit, redrawn at every step: if BN helped by keeping the layer inputs steady, it should lose BN's lead.`,
      spec: xyChart({ values: acc, x, y: { field: 'accuracy', title: 'test accuracy', format: '.0%' }, color: { field: 'network', title: 'network', domain } }),
    },
  ];
}

/** The figures of a result: one seed's curves, or the mean and range over the seeds. */
export const smoothnessFigures: (result: SmoothnessResult) => Figure[] = figuresOverSeeds(smoothnessFiguresOfOne);

export const smoothnessExperiment: ExperimentDefinition<SmoothnessData, SmoothnessOptions> = {
  name: 'smoothness',
  title: 'The modern view: smoothness or covariate shift? (Santurkar et al. 2018)',
  description: 'with/without BN and noisy BN: internal covariate shift through gradients, loss and gradient variation along the gradient (β-smoothness) over training',
  compared:
    'Four networks train with plain SGD at the same learning rate on the same batches: with batch norm (BN); without BN, from the paper\'s small initial weights; without BN, from Xavier initial weights (it trains without BN, so it is the fair comparison); and noisy BN, which follows every batch-norm layer with a random scale and shift of each unit, redrawn at every step, so that its layer inputs keep moving by design. Compared, at regular steps: how much the loss and its gradient change along the gradient (smoothness, after Santurkar et al. 2018), how much a layer\'s gradient turns when the layers before it update (internal covariate shift measured through gradients), how far the sigmoid inputs drift, and test accuracy. If BN helped by keeping the layer inputs steady, noisy BN should lose its benefit.',
  settings: { ...SMOOTHNESS_DEFAULTS },
  run: runSmoothness,
  figures: smoothnessFigures,
};
