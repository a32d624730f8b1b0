/**
 * `distribution`: Figure 1(b, c) of Ioffe & Szegedy (2015), the "internal covariate shift" picture. While
 * the `ioffe-mlp` network trains with and without batch norm, a fixed probe batch of test images is run
 * through it at regular steps (BN normalizing the probe with its own statistics, as in training) and the input of every hidden sigmoid is recorded: the 15th, 50th and
 * 85th percentiles of one sigmoid in the last hidden layer over training, and for every hidden layer how
 * far its input distribution moves between probes (Wasserstein-1 distance per unit, in the variable's
 * units and relative to its spread).
 */
import { xyChart, type Figure, type Row } from '../report/charts.js';
import { Tensor } from '../tensor/tensor.js';
import { NETWORKS, NETWORK_LABELS, type Network } from './convergence.js';
import { firstUpTo } from './data.js';
import { formatCount, formatNumber, formatRatio, formatValue } from './format.js';
import { BASE_LR, INPUT_SHAPE, baseModelDescription, buildNetwork } from './models.js';
import { activationInputs } from './probe.js';
import { ProgressTicker } from './progress.js';
import { runEverySeed, startRun } from './settings.js';
import { figuresOverSeeds, type EffectMeasure } from './seeds.js';
import { median, percentileSorted, std, wasserstein1Sorted } from './stats.js';
import { everyNSteps, trainNetwork } from './train-run.js';
import type { ExperimentDefinition, ExperimentOptions, ExperimentResult } from './types.js';

export interface DistributionSettings {
  steps: number;
  batchSize: number;
  lr: number;
  /** Probe the sigmoid inputs every this many steps. */
  probeEvery: number;
  /** Test images in the probe batch (the first ones of the test set). */
  probeSize: number;
  /** The sigmoid of the last hidden layer whose percentiles are plotted. */
  unit: number;
}

export type DistributionOptions = ExperimentOptions & Partial<DistributionSettings>;

export const DISTRIBUTION_DEFAULTS: DistributionSettings = { steps: 50_000, batchSize: 60, lr: BASE_LR, probeEvery: 500, probeSize: 1_000, unit: 0 };
export const DISTRIBUTION_QUICK: DistributionSettings = { steps: 600, batchSize: 60, lr: BASE_LR, probeEvery: 30, probeSize: 500, unit: 0 };

/** The percentiles of the paper's figure. */
export const PERCENTILES = [15, 50, 85] as const;

export interface PercentilePoint {
  step: number;
  p15: number;
  p50: number;
  p85: number;
}

export interface LayerDriftPoint {
  step: number;
  /** Mean over units of the standard deviation of the unit's input over the probe batch. */
  spread: number;
  /** Mean over units of |mean of the unit's input|. */
  absMean: number;
  /** Mean over units of the Wasserstein-1 distance to the previous probe (null at the first probe). */
  drift: number | null;
  /** The same, each unit's distance divided by its spread (std) at the previous probe: scale-free. */
  relativeDrift: number | null;
  /** Mean over units of |change of the unit's mean| and |change of its std| since the previous probe. */
  meanChange: number | null;
  stdChange: number | null;
}

export interface NetworkDistribution {
  /** The tracked sigmoid's input percentiles at each probe. */
  tracked: PercentilePoint[];
  /** Per hidden layer (first to last), the drift at each probe. */
  layers: LayerDriftPoint[][];
  /**
   * Total movement of the tracked sigmoid's percentiles: Σ over probes of the mean |Δ| of the three
   * percentiles; raw, and each |Δ| divided by the 15–85 range at the previous probe.
   */
  trackedPath: number;
  trackedRelativePath: number;
  /** The same two totals for every sigmoid of the last hidden layer, median over units. */
  lastLayerMedianPath: number;
  lastLayerMedianRelativePath: number;
  /** Per hidden layer: Σ over probes of the drift and of the relative drift. */
  totalDrift: number[];
  totalRelativeDrift: number[];
  finalAccuracy: number | null;
}

export interface DistributionData {
  /** Index (from 0) of the hidden layer of the tracked sigmoid: the last one. */
  trackedLayer: number;
  hiddenLayers: number;
  networks: Record<Network, NetworkDistribution>;
}

export type DistributionResult = ExperimentResult<DistributionData>;

export async function runDistribution(options: DistributionOptions): Promise<DistributionResult> {
  const start = startRun('distribution', options, DISTRIBUTION_DEFAULTS, DISTRIBUTION_QUICK, ['steps', 'batchSize', 'probeEvery', 'probeSize']);
  const { data, settings: s } = start;
  const probeSet = firstUpTo(data.test, s.probeSize);
  const features = INPUT_SHAPE.reduce((a, b) => a * b, 1);
  const probe = new Tensor([probeSet.count, features], probeSet.images.slice(0, probeSet.count * features));
  const probeSteps = new Set(everyNSteps(s.steps, s.probeEvery));
  const progress = new ProgressTicker(start.seeds.length * 2 * s.steps, options.onProgress);

  const one = async (seed: number) => {
    const networks = {} as Record<Network, NetworkDistribution>;
    let hiddenLayers = 0;
    for (const network of NETWORKS) {
      progress.setPhase(`${start.seeds.length > 1 ? `seed ${seed}, ` : ''}${NETWORK_LABELS[network]}, lr ${formatNumber(s.lr)}`);
      const model = buildNetwork({ norm: network === 'bn' ? 'batch' : 'none', seed });
      const tracker = new DriftTracker();
      const run = await trainNetwork({
        model,
        train: data.train,
        test: probeSet,
        lr: s.lr,
        steps: s.steps,
        batchSize: s.batchSize,
        seed,
        evalSteps: [s.steps],
        progress,
        onStep: (step) => {
          if (probeSteps.has(step)) tracker.add(step, activationInputs(model, probe).map((l) => l.values));
        },
      });
      if (run.diverged) throw new Error(`distribution: training ${NETWORK_LABELS[network]} diverged at step ${run.divergedAt} with lr ${s.lr}; use a smaller lr`);
      hiddenLayers = tracker.layers;
      if (s.unit < 0 || s.unit >= tracker.units(hiddenLayers - 1) || !Number.isInteger(s.unit)) {
        throw new Error(`distribution: unit must be an integer in [0, ${tracker.units(hiddenLayers - 1) - 1}] (the sigmoids of the last hidden layer), got ${s.unit}`);
      }
      networks[network] = { ...tracker.summary(hiddenLayers - 1, s.unit), finalAccuracy: run.test.at(-1)?.accuracy ?? null };
    }

    const resultData: DistributionData = { trackedLayer: hiddenLayers - 1, hiddenLayers, networks };
    return { data: resultData, ...describe(resultData, s) };
  };
  return runEverySeed(start, one, {
    title: 'Stable sigmoid inputs with batch norm (Figure 1b, c)',
    question: 'Does batch norm keep the distribution of each layer’s inputs from drifting while the network trains?',
    settings: { ...s, percentiles: [...PERCENTILES], model: baseModelDescription(), optimizer: 'SGD, no momentum', probe: `first ${formatCount(probeSet.count)} ${data.test.name} test images, eval mode, BN layers normalizing the probe batch with its own statistics (as in training)` },
    effects: distributionEffects,
  });
}

/** The claim of Figure 1(b, c) as one seed shows it. */
export function distributionEffects(d: DistributionData): EffectMeasure[] {
  const { bn, plain } = d.networks;
  const less = bn.totalRelativeDrift.filter((b, l) => b < plain.totalRelativeDrift[l]).length;
  return [
    { id: 'last-layer-movement', claim: 'the sigmoid inputs of the last hidden layer move less with BN', label: 'median relative movement of the last layer\'s sigmoid-input percentiles, without BN / with BN', value: plain.lastLayerMedianRelativePath / bn.lastLayerMedianRelativePath, holds: bn.lastLayerMedianRelativePath < plain.lastLayerMedianRelativePath, format: 'ratio' },
    { id: 'layers-drift-less', claim: 'every hidden layer\'s inputs drift less with BN', label: `hidden layers (of ${bn.totalRelativeDrift.length}) whose inputs drifted less with BN`, value: less, holds: less === bn.totalRelativeDrift.length, format: 'count' },
    { id: 'tracked-movement', claim: 'the tracked sigmoid\'s input percentiles move less with BN', label: 'relative movement of the tracked sigmoid\'s percentiles, without BN / with BN', value: plain.trackedRelativePath / bn.trackedRelativePath, holds: bn.trackedRelativePath < plain.trackedRelativePath, format: 'ratio' },
  ];
}

/** Keeps the previous probe's sorted inputs per layer and unit, and accumulates the drift figures. */
class DriftTracker {
  private prev: Float32Array[][] | null = null;
  private steps: number[] = [];
  private points: LayerDriftPoint[][] = [];
  /** Per layer and unit: the percentiles at each probe. */
  private percentiles: PercentilePoint[][][] = [];

  get layers(): number {
    return this.points.length;
  }

  units(layer: number): number {
    return this.percentiles[layer].length;
  }

  /** `layers[l][u]`: the probe inputs of unit u of hidden layer l. */
  add(step: number, layers: Float32Array[][]): void {
    const sorted = layers.map((units) => units.map((v) => Float32Array.from(v).sort()));
    if (this.points.length === 0) {
      this.points = sorted.map(() => []);
      this.percentiles = sorted.map((units) => units.map(() => []));
    }
    sorted.forEach((units, l) => {
      let spread = 0;
      let absMean = 0;
      let drift = 0;
      let relativeDrift = 0;
      let meanChange = 0;
      let stdChange = 0;
      units.forEach((v, u) => {
        const m = meanOf(v);
        const sd = std(v);
        spread += sd;
        absMean += Math.abs(m);
        this.percentiles[l][u].push({ step, p15: percentileSorted(v, 15), p50: percentileSorted(v, 50), p85: percentileSorted(v, 85) });
        if (this.prev) {
          const p = this.prev[l][u];
          const w = wasserstein1Sorted(p, v);
          const prevSd = std(p);
          drift += w;
          // A unit whose input is constant has no spread to compare with; count its move as is.
          relativeDrift += prevSd > 0 ? w / prevSd : w;
          meanChange += Math.abs(m - meanOf(p));
          stdChange += Math.abs(sd - prevSd);
        }
      });
      const n = units.length;
      const first = !this.prev;
      this.points[l].push({
        step,
        spread: spread / n,
        absMean: absMean / n,
        drift: first ? null : drift / n,
        relativeDrift: first ? null : relativeDrift / n,
        meanChange: first ? null : meanChange / n,
        stdChange: first ? null : stdChange / n,
      });
    });
    this.prev = sorted;
    this.steps.push(step);
  }

  summary(trackedLayer: number, unit: number): Omit<NetworkDistribution, 'finalAccuracy'> {
    const paths = this.percentiles[trackedLayer].map((pts) => percentilePath(pts));
    const tracked = this.percentiles[trackedLayer][unit];
    const { raw, relative } = percentilePath(tracked);
    const sum = (pts: LayerDriftPoint[], key: 'drift' | 'relativeDrift') => pts.reduce((a, p) => a + (p[key] ?? 0), 0);
    return {
      tracked,
      layers: this.points,
      trackedPath: raw,
      trackedRelativePath: relative,
      lastLayerMedianPath: median(paths.map((p) => p.raw)),
      lastLayerMedianRelativePath: median(paths.map((p) => p.relative)),
      totalDrift: this.points.map((pts) => sum(pts, 'drift')),
      totalRelativeDrift: this.points.map((pts) => sum(pts, 'relativeDrift')),
    };
  }
}

function meanOf(v: Float32Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i];
  return s / v.length;
}

/** Σ over consecutive probes of the mean |Δ| of the three percentiles; and relative to the previous 15–85 range. */
function percentilePath(points: PercentilePoint[]): { raw: number; relative: number } {
  let raw = 0;
  let relative = 0;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1];
    const b = points[i];
    const move = (Math.abs(b.p15 - a.p15) + Math.abs(b.p50 - a.p50) + Math.abs(b.p85 - a.p85)) / 3;
    raw += move;
    const range = a.p85 - a.p15;
    relative += range > 0 ? move / range : move;
  }
  return { raw, relative };
}

function describe(d: DistributionData, s: DistributionSettings) {
  const bn = d.networks.bn;
  const plain = d.networks.plain;
  const reading: string[] = [];
  const compare = (a: number, b: number) => (a < b ? `${formatRatio(b / a)} less with BN` : a === b ? 'the same with and without BN' : `${formatRatio(a / b)} more with BN: the effect did not show here`);
  const last = (n: NetworkDistribution) => n.tracked[n.tracked.length - 1];
  const first = (n: NetworkDistribution) => n.tracked[0];
  reading.push(
    `Sigmoid ${s.unit} of the last hidden layer, 15th/50th/85th percentiles of its input over ${formatCount(s.steps)} steps: without BN they went from ${pct(first(plain))} to ${pct(last(plain))}; with BN from ${pct(first(bn))} to ${pct(last(bn))}.`,
  );
  reading.push(
    `Relative to their spread (the 15–85 range), the percentiles of that sigmoid moved ${formatValue(bn.trackedRelativePath)} ranges in total with BN and ${formatValue(plain.trackedRelativePath)} without (${compare(bn.trackedRelativePath, plain.trackedRelativePath)}); over all sigmoids of the last hidden layer the median was ${formatValue(bn.lastLayerMedianRelativePath)} with BN and ${formatValue(plain.lastLayerMedianRelativePath)} without (${compare(bn.lastLayerMedianRelativePath, plain.lastLayerMedianRelativePath)}).`,
  );
  const endSpread = (n: NetworkDistribution) => n.layers[d.trackedLayer].at(-1)?.spread ?? NaN;
  reading.push(
    `In the inputs' own units the median path was ${formatValue(bn.lastLayerMedianPath)} with BN and ${formatValue(plain.lastLayerMedianPath)} without; that raw figure depends on how spread out each network's inputs are (standard deviation at the end, mean over the last layer: ${formatValue(endSpread(bn))} with BN, ${formatValue(endSpread(plain))} without), which is why the comparison above divides by the spread.`,
  );
  const layerLines = bn.totalRelativeDrift.map((b, l) => `layer ${l + 1}: ${formatValue(b)} with BN, ${formatValue(plain.totalRelativeDrift[l])} without`);
  const lessLayers = bn.totalRelativeDrift.filter((b, l) => b < plain.totalRelativeDrift[l]).length;
  reading.push(
    `Drift between probes (Wasserstein-1 distance of each sigmoid's input distribution, in units of its standard deviation, summed over training): ${layerLines.join('; ')}. BN drifted less in ${lessLayers} of ${bn.totalRelativeDrift.length} hidden layers.`,
  );
  if (bn.finalAccuracy !== null && plain.finalAccuracy !== null) {
    reading.push(`Test accuracy on the probe images at the end: ${(bn.finalAccuracy * 100).toFixed(1)}% with BN, ${(plain.finalAccuracy * 100).toFixed(1)}% without.`);
  }
  const headlines = [
    { label: `relative movement of sigmoid ${s.unit}'s percentiles, with / without BN`, value: `${formatValue(bn.trackedRelativePath)} / ${formatValue(plain.trackedRelativePath)}` },
    { label: 'median over the last layer, with / without BN', value: `${formatValue(bn.lastLayerMedianRelativePath)} / ${formatValue(plain.lastLayerMedianRelativePath)}` },
    { label: 'hidden layers whose inputs drifted less with BN', value: `${lessLayers} of ${bn.totalRelativeDrift.length}` },
  ];
  const summary = [
    `sigmoid-input percentiles (last layer, median) moved ${formatValue(bn.lastLayerMedianRelativePath)} spreads with BN, ${formatValue(plain.lastLayerMedianRelativePath)} without (${compare(bn.lastLayerMedianRelativePath, plain.lastLayerMedianRelativePath)})`,
    `input drift per hidden layer, with / without BN: ${bn.totalRelativeDrift.map((b, l) => `${formatValue(b)} / ${formatValue(plain.totalRelativeDrift[l])}`).join(', ')}`,
    `BN drifted less in ${lessLayers} of ${bn.totalRelativeDrift.length} hidden layers`,
  ];
  return { reading, summary, headlines };
}

function pct(p: PercentilePoint): string {
  return `${formatValue(p.p15)} / ${formatValue(p.p50)} / ${formatValue(p.p85)}`;
}

/** The figures of a result: one seed's curves, or the mean and range over the seeds. */
export const distributionFigures: (result: DistributionResult) => Figure[] = figuresOverSeeds(distributionFiguresOfOne);

function distributionFiguresOfOne(result: DistributionResult): Figure[] {
  const d = result.data;
  const s = result.settings as unknown as DistributionSettings;
  const domain = NETWORKS.map((n) => NETWORK_LABELS[n]);
  const pRows: Row[] = [];
  const driftRows: Row[] = [];
  for (const n of NETWORKS) {
    for (const p of d.networks[n].tracked) for (const k of PERCENTILES) pRows.push({ step: p.step, value: p[`p${k}`], percentile: `${k}th`, network: NETWORK_LABELS[n] });
    d.networks[n].layers.forEach((pts, l) => {
      for (const p of pts) if (p.relativeDrift !== null && p.relativeDrift > 0) driftRows.push({ step: p.step, drift: p.relativeDrift, absolute: p.drift, layer: `hidden layer ${l + 1}`, network: NETWORK_LABELS[n] });
    });
  }
  const layerDomain = Array.from({ length: d.hiddenLayers }, (_, l) => `hidden layer ${l + 1}`);
  return [
    {
      id: 'sigmoid-input-percentiles',
      title: `Input of sigmoid ${s.unit} in the last hidden layer`,
      caption: `Figure 1(b, c) of the paper: the 15th, 50th and 85th percentiles of one sigmoid's input over ${formatCount(s.probeSize)} probe images, as training goes on. With BN this is the batch-norm output gamma·x̂ + beta. Each panel has its own y range.`,
      spec: xyChart({
        values: pRows,
        x: { field: 'step', title: 'training steps', zero: true },
        y: { field: 'value', title: 'sigmoid input (pre-activation)' },
        color: { field: 'percentile', title: 'percentile', domain: PERCENTILES.map((k) => `${k}th`) },
        column: { field: 'network', title: '', domain },
        independentY: true,
        width: 300,
      }),
    },
    {
      id: 'layer-drift',
      title: 'How far each layer’s input distribution moves between probes',
      caption: `Wasserstein-1 distance between a sigmoid's input distributions at consecutive probes (every ${formatCount(s.probeEvery)} steps), divided by its standard deviation and averaged over the layer's sigmoids; log scale.`,
      spec: xyChart({
        values: driftRows,
        x: { field: 'step', title: 'training steps', zero: true },
        y: { field: 'drift', title: 'drift per probe (std units, log)', scale: 'log' },
        color: { field: 'network', title: 'network', domain },
        column: { field: 'layer', title: '', domain: layerDomain },
        width: 240,
        height: 220,
      }),
    },
  ];
}

export const distributionExperiment: ExperimentDefinition<DistributionData, DistributionOptions> = {
  name: 'distribution',
  title: 'Stable sigmoid inputs with batch norm (Figure 1b, c)',
  description: 'percentiles of a last-layer sigmoid input over training, and per-layer input drift, with and without BN',
  compared:
    'Two networks like those of the convergence experiment, with and without batch norm (BN), train side by side. Every few steps a fixed batch of test images (the probe) runs through both, and the input of every hidden sigmoid is recorded. Compared: how much those input distributions move while the network trains, for one sigmoid (its percentiles) and for every hidden layer (the drift between probes), measured against the inputs\' own spread so that the two networks can be compared.',
  settings: { ...DISTRIBUTION_DEFAULTS },
  run: runDistribution,
  figures: distributionFigures,
};
