/**
 * Several seeds per experiment: one run per seed, then the effects each experiment names are combined
 * over the seeds. An effect counts only where it held on every seed; the readings say on how many it
 * held and give the mean and the range (min to max). The figures draw the mean of every curve with a
 * band from the smallest to the largest value over the seeds.
 */
import { seedBandSpec, type Figure, type Row } from '../report/charts.js';
import { formatCount, formatNumber, formatPercent, formatPoints, formatRatio, formatValue } from './format.js';
import type { EffectFormat, ExperimentResult, Headline, SeedEffect, SeedRun } from './types.js';

/** Seeds of a run: `seeds` as a list, or as a count starting at `seed` (seed, seed + 1, ...). */
export function resolveSeeds(experiment: string, seed: number, seeds: number | readonly number[] | undefined, quick: boolean): number[] {
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`${experiment}: seed must be a non-negative integer, got ${seed}`);
  if (Array.isArray(seeds)) {
    if (seeds.length === 0 || !seeds.every((s) => Number.isInteger(s) && s >= 0)) throw new Error(`${experiment}: seeds must be a non-empty list of non-negative integers, got ${JSON.stringify(seeds)}`);
    if (new Set(seeds).size !== seeds.length) throw new Error(`${experiment}: seeds must differ from each other, got ${JSON.stringify(seeds)}`);
    return [...seeds];
  }
  const count = (seeds as number | undefined) ?? (quick ? 1 : 3);
  if (!Number.isInteger(count) || count < 1) throw new Error(`${experiment}: seeds must be a positive integer (how many seeds) or a list of seeds, got ${JSON.stringify(seeds)}`);
  return Array.from({ length: count }, (_, i) => seed + i);
}

/** One effect as one seed measured it: the figure and whether it points the way the claim says. */
export interface EffectMeasure {
  /** Stable key, e.g. 'speedup'. */
  id: string;
  /** The claim, as a sentence fragment: "BN reaches the target in fewer steps". */
  claim: string;
  /** What the figure is: "steps without BN / steps with BN". */
  label: string;
  /** null where it could not be measured (a run diverged, a target was not reached). */
  value: number | null;
  holds: boolean;
  format: EffectFormat;
}

export function formatEffect(value: number | null, format: EffectFormat): string {
  if (value === null || Number.isNaN(value)) return '—';
  switch (format) {
    case 'percent':
      return formatPercent(value);
    case 'points':
      return formatPoints(value);
    case 'ratio':
      return formatRatio(value);
    case 'count':
      return formatCount(value);
    case 'number':
      return formatNumber(value);
    case 'value':
      return formatValue(value);
  }
}

/** Each effect over the seeds: per-seed values, how many seeds it held on, mean and range. */
export function combineEffects(perSeed: EffectMeasure[][]): SeedEffect[] {
  const first = perSeed[0] ?? [];
  return first.map((e, i) => {
    const measures = perSeed.map((m) => m[i]);
    if (measures.some((m) => m.id !== e.id)) throw new Error(`combineEffects: seeds measured different effects (${measures.map((m) => m.id).join(', ')})`);
    const values = measures.map((m) => (m.value !== null && Number.isFinite(m.value) ? m.value : null));
    const known = values.filter((v): v is number => v !== null);
    return {
      id: e.id,
      claim: e.claim,
      label: e.label,
      format: e.format,
      values,
      holds: measures.map((m) => m.holds),
      heldOn: measures.filter((m) => m.holds).length,
      mean: known.length ? known.reduce((a, b) => a + b, 0) / known.length : null,
      min: known.length ? Math.min(...known) : null,
      max: known.length ? Math.max(...known) : null,
    };
  });
}

/** "1.9× (range 1.6× to 2.3×)", or the one value when there is one seed. */
export function effectSpread(e: SeedEffect): string {
  const n = e.values.length;
  const known = e.values.filter((v) => v !== null).length;
  if (e.mean === null) return 'not measured on any seed';
  const missing = known < n ? `, measured on ${known} of ${n} seeds` : '';
  if (n === 1) return formatEffect(e.mean, e.format);
  return `mean ${formatEffect(e.mean, e.format)} (range ${formatEffect(e.min, e.format)} to ${formatEffect(e.max, e.format)}${missing})`;
}

/** "held on every seed (3 of 3)", "held on 2 of 3 seeds only", "held on no seed (0 of 3)". */
export function heldText(e: SeedEffect): string {
  const n = e.holds.length;
  if (e.heldOn === n) return n === 1 ? 'held' : `held on every seed (${n} of ${n})`;
  if (e.heldOn === 0) return n === 1 ? 'did not hold' : `held on no seed (0 of ${n})`;
  return `held on ${e.heldOn} of ${n} seeds only`;
}

/** The reading of a run over several seeds: one paragraph per effect, then how to read the rest. */
export function seedsReading(seeds: readonly number[], effects: SeedEffect[], seedChanges = 'the initial weights, the batches and every other random choice'): string[] {
  const out = [
    `Over ${seeds.length} seeds (${seeds.join(', ')}; each seed changes ${seedChanges}): each figure below is the mean over the seeds with the range from the smallest to the largest value. An effect is stated as shown only where it held on every seed.`,
  ];
  for (const e of effects) {
    const verdict = e.heldOn === e.holds.length ? 'shown' : e.heldOn === 0 ? 'not shown' : 'not established (it depends on the seed)';
    out.push(`${capitalize(e.claim)}: ${heldText(e)}, so ${verdict}. ${capitalize(e.label)}: ${effectSpread(e)}; per seed ${e.values.map((v, i) => `${formatEffect(v, e.format)}${e.holds[i] ? '' : ' (did not hold)'}`).join(', ')}.`);
  }
  out.push('The plots draw the mean of each curve with a band (or whiskers) from the smallest to the largest value over the seeds; each seed\'s own reading is at the end of the page.');
  return out;
}

export function seedsHeadlines(effects: SeedEffect[]): Headline[] {
  return effects.map((e) => ({ label: e.label, value: `${effectSpread(e)} · ${e.heldOn}/${e.holds.length} seeds` }));
}

export function seedsSummary(effects: SeedEffect[]): string[] {
  return effects.slice(0, 3).map((e) => `${e.claim}: ${heldText(e)}; ${e.label} ${effectSpread(e)}`);
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/**
 * The figures of a result over all its seeds, from a function that draws one seed: each seed's rows
 * (tagged with their seed) go into one chart that plots the mean and a min–max band.
 */
export function figuresOverSeeds<Data>(one: (result: ExperimentResult<Data>) => Figure[]): (result: ExperimentResult<Data>) => Figure[] {
  return (result) => {
    const runs: SeedRun<Data>[] = result.seedRuns ?? [];
    if (runs.length <= 1) return one(result);
    const perSeed = runs.map((run) => one({ ...result, seed: run.seed, data: run.data }));
    return perSeed[0].map((figure) => {
      const values: Row[] = [];
      perSeed.forEach((figs, s) => {
        const f = figs.find((x) => x.id === figure.id);
        const rows = ((f?.spec.data as { values?: Row[] } | undefined)?.values ?? []) as Row[];
        for (const r of rows) values.push({ ...r, seed: runs[s].seed });
      });
      return {
        ...figure,
        caption: `${figure.caption} Mean over ${runs.length} seeds (${runs.map((r) => r.seed).join(', ')}); the band (or whiskers) spans the smallest to the largest value over the seeds.`,
        spec: seedBandSpec(figure.spec, values),
      };
    });
  };
}

/**
 * A parsed results.json as a current result: version 2 as it is; version 1 (one seed, before `seeds`
 * existed) as a one-seed run. Throws for anything else.
 */
export function upgradeResult(parsed: unknown): ExperimentResult {
  const r = parsed as (Omit<Partial<ExperimentResult>, 'version'> & { version?: number }) | null;
  const ok = !!r && r.format === 'bnlab-experiment' && (r.version === 1 || r.version === 2) && typeof r.experiment === 'string' && Array.isArray(r.reading) && typeof r.startedAt === 'string';
  if (!ok) throw new Error('not a bnlab experiment result (format "bnlab-experiment", version 1 or 2)');
  if (r.version === 2) return r as ExperimentResult;
  const seed = typeof r.seed === 'number' ? r.seed : 1;
  return { ...(r as ExperimentResult), version: 2, seeds: [seed], seedRuns: [{ seed, data: r.data, headlines: r.headlines ?? [], reading: r.reading ?? [], summary: r.summary ?? [] }], effects: [] };
}
