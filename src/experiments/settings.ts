/**
 * Settings of an experiment: its full-size defaults, its quick size, and whatever the caller overrides
 * (the CLI's npm-start size, a test's smaller run). Unknown or mistyped overrides are errors, so a typo
 * does not silently run the default. `startRun` and `finishRun` are the start and the end every
 * experiment's run shares.
 */
import { getBackend } from '../kernels/index.js';
import { checkExperimentData } from './data.js';
import type { ExperimentData, ExperimentOptions, ExperimentResult } from './types.js';

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
  seed: number;
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
  const seed = options.seed ?? 1;
  const settings = resolveSettings(experiment, options, defaults, quickDefaults, quick);
  for (const key of positiveInts) checkPositiveInt(experiment, String(key), settings[key] as number);
  return { experiment, startedAt, data, quick, seed, settings };
}

/** What a run measured and wrote, for `finishRun`. */
export type RunOutcome<Data> = Pick<ExperimentResult<Data>, 'title' | 'question' | 'settings' | 'data' | 'headlines' | 'reading' | 'summary'>;

/** The result of a run: its outcome with the run's name, size, seed, backend and wall time. */
export function finishRun<Data>(run: RunStart<unknown>, outcome: RunOutcome<Data>): ExperimentResult<Data> {
  return {
    format: 'bnlab-experiment',
    version: 1,
    experiment: run.experiment,
    title: outcome.title,
    question: outcome.question,
    quick: run.quick,
    seed: run.seed,
    settings: outcome.settings,
    data: outcome.data,
    headlines: outcome.headlines,
    reading: outcome.reading,
    summary: outcome.summary,
    backend: getBackend().name,
    startedAt: run.startedAt.toISOString(),
    wallTimeSeconds: (Date.now() - run.startedAt.getTime()) / 1000,
  };
}
