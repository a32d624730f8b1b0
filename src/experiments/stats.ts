/**
 * Small statistics the experiments need: percentiles, moments, the 1-D Wasserstein distance between two
 * samples, log-spaced grids. Plain numbers in, plain numbers out.
 */

/** The p-th percentile (0..100) of an ascending-sorted sample, linearly interpolated (NumPy's default). */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) throw new Error('percentile of an empty sample');
  const pos = (p / 100) * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

export function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s / values.length;
}

/** Population standard deviation (divides by n). */
export function std(values: ArrayLike<number>): number {
  const m = mean(values);
  let s = 0;
  for (let i = 0; i < values.length; i++) s += (values[i] - m) ** 2;
  return Math.sqrt(s / values.length);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  return percentileSorted([...values].sort((a, b) => a - b), 50);
}

/**
 * Wasserstein-1 (earth mover's) distance between two equally sized samples, both sorted ascending: the
 * mean distance between matching quantiles. It measures how far the distribution moved, in the
 * variable's own units.
 */
export function wasserstein1Sorted(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length || a.length === 0) throw new Error(`wasserstein1Sorted needs two non-empty samples of equal size, got ${a.length} and ${b.length}`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

/** `count` values from `from` to `to`, evenly spaced on a log scale, rounded to 3 significant digits. */
export function logspace(from: number, to: number, count: number): number[] {
  if (count === 1) return [from];
  const a = Math.log10(from);
  const b = Math.log10(to);
  return Array.from({ length: count }, (_, i) => Number((10 ** (a + ((b - a) * i) / (count - 1))).toPrecision(3)));
}

/** Steps 0 < s ≤ last spaced roughly evenly on a log scale (about `perDecade` per factor of 10), always including `last`. */
export function logSteps(last: number, perDecade: number): number[] {
  const out = new Set<number>();
  const decades = Math.log10(last);
  const n = Math.max(1, Math.ceil(decades * perDecade));
  for (let i = 0; i <= n; i++) out.add(Math.max(1, Math.round(10 ** ((decades * i) / n))));
  out.add(last);
  return [...out].sort((x, y) => x - y);
}

/** The first point whose value reaches `target`, or null. */
export function firstReaching<T extends { step: number }>(points: readonly T[], value: (p: T) => number, target: number): number | null {
  for (const p of points) if (value(p) >= target) return p.step;
  return null;
}

/** Least-squares slope of y on x. */
export function slope(x: readonly number[], y: readonly number[]): number {
  const mx = mean(x);
  const my = mean(y);
  let num = 0;
  let den = 0;
  for (let i = 0; i < x.length; i++) {
    num += (x[i] - mx) * (y[i] - my);
    den += (x[i] - mx) ** 2;
  }
  return num / den;
}
