/**
 * The noise batch norm injects, measured as it trains: a unit's batch mean changes from step to step
 * because each batch holds other examples, by about σ/√B (σ the unit's spread over the data, B the
 * batch). Ghost batches (`virtualBatchSize` V) normalize each sub-batch of V with its own statistics,
 * so the noise each example sees is σ/√V. Behind another batch norm the whole batch's mean is pinned
 * (that layer normalized this very batch to mean β), so there it moves far less than σ/√B; the first
 * hidden layer, fed by the data itself, shows the 1/√B law.
 *
 * Shape legend: B = batch, V = ghost-batch size, G = B/V ghost batches.
 */
import type { Sequential } from '../nn/sequential.js';
import type { Rng } from '../tensor/rng.js';
import type { Tensor } from '../tensor/tensor.js';
import { afterLinear, layerInput } from './probe.js';

/** One step's view of a unit: its mean and unbiased variance over the batch, and over each ghost batch. */
export interface UnitBatchStatistics {
  batchSize: number;
  mean: number;
  /** Unbiased variance within the batch. */
  variance: number;
  /** Ghost-batch size and each ghost batch's mean (one entry, the batch mean, without ghost batches). */
  ghostSize: number;
  ghostMeans: number[];
}

/**
 * The batch statistics of unit `unit` of hidden layer `hidden` (its Linear output, the input of its
 * batch norm) for the batch `x` [B, ...], with earlier batch-norm layers normalizing `x` with its own
 * statistics as in training. Works the same for a network without batch norm. `ghostSize` splits the
 * batch into ghost batches (it must divide B).
 */
export function unitBatchStatistics(model: Sequential, x: Tensor, hidden: number, unit: number, ghostSize: number | null = null): UnitBatchStatistics {
  const h = layerInput(model, x, afterLinear(model, hidden), { batchStatistics: true }); // [B, U]
  const [batch, units] = h.shape;
  if (!Number.isInteger(unit) || unit < 0 || unit >= units) throw new Error(`unitBatchStatistics: unit must be an integer in [0, ${units - 1}], got ${unit}`);
  const v = ghostSize ?? batch;
  if (!Number.isInteger(v) || v < 1 || batch % v !== 0) throw new Error(`unitBatchStatistics: ghost-batch size ${ghostSize} does not divide the batch of ${batch}`);
  const column = (r: number) => h.data[r * units + unit];
  let m = 0;
  for (let r = 0; r < batch; r++) m += column(r) / batch;
  let s = 0;
  for (let r = 0; r < batch; r++) s += (column(r) - m) ** 2;
  const ghostMeans: number[] = [];
  for (let g = 0; g < batch / v; g++) {
    let gm = 0;
    for (let r = g * v; r < (g + 1) * v; r++) gm += column(r) / v;
    ghostMeans.push(gm);
  }
  return { batchSize: batch, mean: m, variance: batch > 1 ? s / (batch - 1) : 0, ghostSize: v, ghostMeans };
}

export interface BatchMeanNoiseEstimate {
  /** Steps in the window. */
  steps: number;
  batchSize: number;
  /**
   * Step-to-step noise of the batch mean: √(mean of (m_t − m_{t−1})² / 2), which drops the slow drift of
   * the weights and keeps the batch-to-batch part.
   */
  measured: number;
  /** σ/√B with σ² the mean within-batch variance over the window: what independent batches would give. */
  predicted: number;
  /** Spread of the ghost-batch means around their batch's mean (null without ghost batches), and σ/√V. */
  ghostMeasured: number | null;
  ghostPredicted: number | null;
  ghostSize: number;
}

/** The last `window` steps of one unit's batch statistics, summarized as noise against 1/√B. */
export class BatchMeanNoise {
  private readonly history: UnitBatchStatistics[] = [];

  constructor(readonly window = 100) {
    if (!Number.isInteger(window) || window < 2) throw new Error(`BatchMeanNoise: window must be an integer of at least 2, got ${window}`);
  }

  add(stats: UnitBatchStatistics): void {
    const last = this.history[this.history.length - 1];
    // A change of batch size starts a new series: the noise of different sizes must not mix.
    if (last && (last.batchSize !== stats.batchSize || last.ghostSize !== stats.ghostSize)) this.history.length = 0;
    this.history.push(stats);
    if (this.history.length > this.window) this.history.shift();
  }

  clear(): void {
    this.history.length = 0;
  }

  /** Null until two steps are in the window. */
  estimate(): BatchMeanNoiseEstimate | null {
    const h = this.history;
    if (h.length < 2) return null;
    let diff = 0;
    for (let i = 1; i < h.length; i++) diff += (h[i].mean - h[i - 1].mean) ** 2;
    const measured = Math.sqrt(diff / (h.length - 1) / 2);
    const variance = h.reduce((a, s) => a + s.variance, 0) / h.length;
    const batchSize = h[0].batchSize;
    const ghostSize = h[0].ghostSize;
    let ghostMeasured: number | null = null;
    if (ghostSize < batchSize) {
      let s = 0;
      let n = 0;
      for (const st of h) {
        for (const gm of st.ghostMeans) s += (gm - st.mean) ** 2;
        n += st.ghostMeans.length - 1;
      }
      ghostMeasured = Math.sqrt(s / n);
    }
    return {
      steps: h.length,
      batchSize,
      measured,
      predicted: Math.sqrt(variance / batchSize),
      ghostMeasured,
      ghostPredicted: ghostSize < batchSize ? Math.sqrt(variance / ghostSize) : null,
      ghostSize,
    };
  }
}

export interface SpreadRow {
  batchSize: number;
  /** RMS over draws (and units) of (batch mean − mean over all rows) / std over all rows. */
  measured: number;
  /** 1/√B with the finite-population correction √((N − B)/(N − 1)) for drawing without replacement. */
  predicted: number;
}

/**
 * The spread of batch means against 1/√B at several batch sizes: `draws` random batches of each size
 * (without replacement) from the N rows of `h` [N, U], for `unit` (or every unit, RMS), in units of the
 * column's standard deviation. The whole curve at once, from one fixed set of examples.
 */
export function batchMeanSpread(h: Tensor, sizes: readonly number[], draws: number, rng: Rng, unit: number | null = null): SpreadRow[] {
  const [n, units] = h.shape;
  const cols = unit === null ? [...Array(units).keys()] : [unit];
  const mu = new Float64Array(units);
  const sd = new Float64Array(units);
  for (const u of cols) {
    for (let r = 0; r < n; r++) mu[u] += h.data[r * units + u] / n;
    for (let r = 0; r < n; r++) sd[u] += (h.data[r * units + u] - mu[u]) ** 2 / n;
    sd[u] = Math.sqrt(sd[u]);
  }
  const live = cols.filter((u) => sd[u] > 1e-12);
  return sizes.filter((b) => b >= 1 && b <= n).map((b) => {
    let sq = 0;
    for (let d = 0; d < draws; d++) {
      const pick = rng.permutation(n).subarray(0, b);
      for (const u of live) {
        let m = 0;
        for (const r of pick) m += h.data[r * units + u];
        sq += ((m / b - mu[u]) / sd[u]) ** 2;
      }
    }
    return { batchSize: b, measured: Math.sqrt(sq / Math.max(1, draws * live.length)), predicted: n > 1 ? Math.sqrt((n - b) / (b * (n - 1))) : 0 };
  });
}
