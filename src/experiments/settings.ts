/**
 * Settings of an experiment: its full-size defaults, its quick size, and whatever the caller overrides
 * (the CLI's npm-start size, a test's smaller run). Unknown or mistyped overrides are errors, so a typo
 * does not silently run the default. `startRun` and `finishRun` are the start and the end every
 * experiment's run shares.
 */
import { getBackend } from '../kernels/index.js';
import { checkExperimentData } from './data.js';
import { combineEffects, seedsHeadlines, seedsReading, seedsSummary, resolveSeeds, type EffectMeasure } from './seeds.js';
import type { ExperimentData, ExperimentOptions, ExperimentResult, SeedEffect, SeedRun } from './types.js';

/** `quick` or full defaults, with the options the caller gave laid over them. */
export function resolveSettings<S extends object>(experiment: string, options: object, defaults: S, quickDefaults: S, quick: boolean): S {
  const base = quick ? quickDefaults : defaults;
  const out = { ...base } as Record<string, unknown>;
  for (const key of Object.keys(base)) {
    let value = (options as Record<string, unknown>)[key];
    if (value === undefined) continue;
    const expected = (base as Record<string, unknown>)[key];
    if (Array.isArray(expected) && typeof value === 'number') value = [value];
    const ok = Array.isArray(expected) ? Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isFinite(v)) : typeof value === typeof expected && (typeof value !== 'number' || Number.isFinite(value));
    if (!ok) throw new Error(`${experiment}: option "${key}" must be ${Array.isArray(expected) ? 'a list of numbers' : `a ${typeof expected}`} (like the default ${JSON.stringify(expected)}), got ${JSON.stringify(value)}`);
    out[key] = value;
  }
  return out as S;
}

/** Throws unless `value` is a positive integer. */
export function checkPositiveInt(experiment: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${experiment}: ${name} must be a positive integer, got ${value}`);
}

/** What a run starts from: its checked data, `quick` and `seed` with their defaults, and its settings. */
export interface RunStart<S> {
  experiment: string;
  startedAt: Date;
  data: ExperimentData;
  quick: boolean;
  /** The first seed. */
  seed: number;
  seeds: number[];
  settings: S;
}

/** The keys of `S` whose values are numbers. */
type NumberKey<S> = { [K in keyof S]: S[K] extends number ? K : never }[keyof S];

/**
 * Checks the data, resolves the settings (quick or full defaults, the caller's options laid over them)
 * and checks that the settings named in `positiveInts` are positive integers.
 */
export function startRun<S extends object>(experiment: string, options: ExperimentOptions, defaults: S, quickDefaults: S, positiveInts: readonly NumberKey<S>[]): RunStart<S> {
  const startedAt = new Date();
  const data = checkExperimentData(options.data, experiment);
  const quick = options.quick ?? false;
  const seeds = resolveSeeds(experiment, options.seed ?? 1, options.seeds, quick);
  const settings = resolveSettings(experiment, options, defaults, quickDefaults, quick);
  for (const key of positiveInts) checkPositiveInt(experiment, String(key), settings[key] as number);
  return { experiment, startedAt, data, quick, seed: seeds[0], seeds, settings };
}

/** What one seed measured and wrote. */
export type SeedOutcome<Data> = Omit<SeedRun<Data>, 'seed'>;

/** What a run is about, for `finishRun`. */
export interface RunDescription<Data> {
  title: string;
  question: string;
  settings: Record<string, unknown>;
  /** The effects the experiment tests, as one seed's data shows them. */
  effects: (data: Data) => EffectMeasure[];
  /** Over several seeds: paragraphs that follow the effects in the reading (e.g. which explanation they support). */
  conclusion?: (effects: SeedEffect[]) => string[];
  /** What a seed changes, for the reading (default: the initial weights, the batches and every other random choice). */
  seedChanges?: string;
}

/** Runs `one` for every seed of the run, in order, and combines them (`finishRun`). */
export async function runEverySeed<Data>(run: RunStart<unknown>, one: (seed: number) => Promise<SeedOutcome<Data>>, description: RunDescription<Data>): Promise<ExperimentResult<Data>> {
  const seedRuns: SeedRun<Data>[] = [];
  for (const seed of run.seeds) seedRuns.push({ seed, ...(await one(seed)) });
  return finishRun(run, seedRuns, description);
}

/**
 * The result of a run: every seed's outcome with the run's name, size, seeds, backend and wall time.
 * With one seed the reading, headlines and summary are that seed's; with several, they are written
 * from the effects combined over the seeds.
 */
export function finishRun<Data>(run: RunStart<unknown>, seedRuns: SeedRun<Data>[], description: RunDescription<Data>): ExperimentResult<Data> {
  const effects = combineEffects(seedRuns.map((r) => description.effects(r.data)));
  const single = seedRuns.length === 1;
  return {
    format: 'bnlab-experiment',
    version: 2,
    experiment: run.experiment,
    title: description.title,
    question: description.question,
    quick: run.quick,
    seed: run.seeds[0],
    seeds: [...run.seeds],
    settings: description.settings,
    data: seedRuns[0].data,
    seedRuns,
    effects,
    headlines: single ? seedRuns[0].headlines : seedsHeadlines(effects),
    reading: single ? seedRuns[0].reading : [...seedsReading(run.seeds, effects, description.seedChanges), ...(description.conclusion?.(effects) ?? [])],
    summary: single ? seedRuns[0].summary : seedsSummary(effects),
    backend: getBackend().name,
    startedAt: run.startedAt.toISOString(),
    wallTimeSeconds: (Date.now() - run.startedAt.getTime()) / 1000,
  };
}
