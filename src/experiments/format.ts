/**
 * Numbers as the readings print them: "2,100 steps", "97.0%", "7.0×", "lr 0.03". One place, so every
 * report writes the same figure the same way.
 */

/** An integer with thousands separators: 14800 → "14,800". */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** A fraction as a percentage: 0.9712 → "97.1%". */
export function formatPercent(fraction: number, digits = 1): string {
  return `${(fraction * 100).toFixed(digits)}%`;
}

/** A difference of two accuracies: 0.316 → "31.6 points". */
export function formatPoints(diff: number, digits = 1): string {
  return `${(diff * 100).toFixed(digits)} points`;
}

/** A ratio: 7.04 → "7.0×". */
export function formatRatio(r: number): string {
  if (!Number.isFinite(r)) return '∞×';
  return `${r >= 10 ? r.toFixed(0) : r.toFixed(1)}×`;
}

/** A learning rate or another positive number spanning decades: 0.03 → "0.03", 1e-5 → "1e-5", 30 → "30". */
export function formatNumber(x: number): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1e-3 && a < 1e5) return String(Number(x.toPrecision(3)));
  const [m, e] = x.toExponential(2).split('e');
  return `${Number(m)}e${Number(e)}`;
}

/** A value with 3 significant digits, for losses and distances: 0.012345 → "0.0123". */
export function formatValue(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return formatNumber(Number(x.toPrecision(3)));
}

/** Items as prose: "a", "a and b", "a, b and c". */
export function formatList(items: readonly string[]): string {
  return items.length > 1 ? `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}` : (items[0] ?? '');
}

/** Seconds as "42 s", "3.5 min" or "1.2 h". */
export function formatDuration(seconds: number): string {
  if (seconds < 90) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
