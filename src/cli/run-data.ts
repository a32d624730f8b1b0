/**
 * The data a trained model was trained and tested on, recreated for the commands that use a run again
 * (`evaluate`, `recalibrate`): the run's config.json names it (bundled dataset, --data with --test-data or
 * a seeded split, limits, standardization), or the user gives --data PATH / --dataset NAME instead.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { takeFirst, type Dataset } from '../data/dataset.js';
import { DATASET_NAMES, loadDataset } from '../data/node.js';
import { loadTrainingData, readForModel, type TrainingDataOptions } from '../data/node-sources.js';
import type { ModelSource } from './model-files.js';

export type RunConfig = TrainingDataOptions & { batchSize?: number; trainLimit?: number | null; testLimit?: number | null; data?: { source?: { fingerprint: string; test: unknown } } };

/** The run's config.json, or null for a model directory that is not a run. */
export function readRunConfig(dir: string, fix = 'pass --data PATH to use data of your choice'): RunConfig | null {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not JSON (${(e as Error).message}); ${fix}`);
  }
}

export interface RunData {
  testSet: Dataset;
  /** The test data in words, for the command's output ("the mnist test set (10000 images)"). */
  testDescription: string;
  /** The run's own training data (whatever the test data is), read only when asked for: population statistics come from it. */
  training: () => Promise<Dataset>;
}

export interface RunDataFlags {
  /** Test data of the user's choice, read as the model reads its input (its image size, columns, standardization). */
  data?: string;
  /** A bundled test set instead of the run's. */
  dataset?: string;
  /** CSV columns of `data` to skip without a note (--ignore-columns). */
  ignoreColumns?: string[];
}

/**
 * The test data for a model: `flags.data`, else `flags.dataset`, else the run's own test set from
 * config.json (the numbers are then those the run reported), else the bundled dataset the model names;
 * and the run's own training data.
 */
export async function runData(flags: RunDataFlags, source: ModelSource & { dir: string }, config: RunConfig | null): Promise<RunData> {
  const ownTraining = async () => {
    if (config) return (await ownSets(config)).trainSet;
    const name = source.dataset && DATASET_NAMES.includes(source.dataset) ? source.dataset : null;
    if (!name) throw new Error(`${source.dir} has no config.json (not a run directory), so its training data is unknown`);
    return loadDataset(name, 'train');
  };
  if (flags.data) {
    const { dataset, kind, skipped } = await readForModel(flags.data, source, { ignore: flags.ignoreColumns });
    noteSkipped(flags.data, skipped);
    const what = `${flags.data} (${dataset.count} samples${kind === 'idx-test' ? ', its test pair' : ''})`;
    return { testSet: dataset, testDescription: what, training: ownTraining };
  }
  if (flags.dataset || !config) {
    const name = flags.dataset ?? source.dataset;
    if (!name || !DATASET_NAMES.includes(name)) throw new Error(`${source.dir} is not a run directory (no config.json), so its data is unknown; give --data PATH`);
    if (source.preprocessing?.standardize) throw new Error(`${source.dir} standardizes its input, which a bundled dataset is not made for; use its run's data (no --dataset) or --data PATH`);
    return { testSet: loadDataset(name, 'test'), testDescription: `the ${name} test set`, training: ownTraining };
  }
  const data = await ownSets(config);
  const test = data.provenance?.test;
  const testDescription = !config.dataPath
    ? `the ${config.dataset} test set (${typeof config.testLimit === 'number' && config.testLimit <= data.testSet.count ? `the first ${data.testSet.count} images, as the run's --test-limit` : `${data.testSet.count} images`})`
    : test && 'fraction' in test
      ? `the run's test split of ${config.dataPath} (${data.testSet.count} samples: ${test.fraction} of each class, seed ${test.seed})`
      : test && 'path' in test
        ? `the run's test data ${test.path} (${data.testSet.count} samples)`
        : `the test pair of ${config.dataPath} (${data.testSet.count} samples)`;
  return { testSet: data.testSet, testDescription, training: async () => data.trainSet };
}

/** Columns of a CSV file that the model does not read, said once on stderr (they are skipped). */
export function noteSkipped(file: string, skipped: readonly string[]): void {
  if (skipped.length) console.warn(`bnlab note: ${file}: skipping column${skipped.length === 1 ? '' : 's'} ${skipped.map((c) => JSON.stringify(c)).join(', ')}, which the model does not read (--ignore-columns ${skipped.join(',')} says so and silences this)`);
}

/** The run's own training and test sets, --train-limit/--test-limit included, refusing data that changed since. */
async function ownSets(config: RunConfig): Promise<{ trainSet: Dataset; testSet: Dataset; provenance?: Awaited<ReturnType<typeof loadTrainingData>>['provenance'] }> {
  const data = await loadTrainingData(config);
  const testLimit = typeof config.testLimit === 'number' ? config.testLimit : null;
  const trainLimit = typeof config.trainLimit === 'number' ? config.trainLimit : null;
  if (testLimit !== null && testLimit < data.testSet.count) data.testSet = takeFirst(data.testSet, testLimit);
  if (trainLimit !== null && trainLimit < data.trainSet.count) data.trainSet = takeFirst(data.trainSet, trainLimit);
  const recorded = config.data?.source;
  if (recorded && data.provenance && recorded.fingerprint !== data.provenance.fingerprint) {
    throw new Error(`${config.dataPath} has changed since the run was trained (its fingerprint differs), so the run's data split cannot be recreated; pass --data PATH to use a file as a whole`);
  }
  return data;
}
