/**
 * What happens to a user's data between the file and the model, recorded so that `predict` and
 * `evaluate` do exactly the same: standardization from training-set statistics, the stratified
 * train/test split, and the description stored in config.json and model.json ("preprocessing").
 * Browser-safe.
 */
import { Rng } from '../tensor/rng.js';
import { subsetByIndex, type Dataset } from './dataset.js';

/** Version of the `preprocessing` object in model.json; bump when its meaning changes. */
export const PREPROCESSING_VERSION = 1;

/**
 * Per-feature (tables) or per-channel (images) standardization, x' = (x - mean) / std, with the mean
 * and the population standard deviation (divisor N, as scikit-learn's StandardScaler) of the training
 * set. A constant feature has std 0; it is stored as std 1, so it is centred to 0 instead of becoming NaN.
 */
export interface Standardization {
  /**
   * 'feature': one statistic per input value ([F] samples); 'channel': one per channel of images, whose
   * samples are [C, H, W] or the same values flattened to [C·H·W] (an MLP on images): channel by channel.
   */
  per: 'feature' | 'channel';
  mean: number[];
  std: number[];
}

/** How samples were made from the user's data; written into model.json as `preprocessing`. */
export interface Preprocessing {
  version: number;
  /** What the model was trained on: a CSV table, IDX files, or PNG images in class folders. */
  source: 'csv' | 'idx' | 'images';
  /** CSV: the feature columns, in input order, and the label column. */
  features?: string[];
  label?: string;
  /** CSV: columns the training file had that are not features (--ignore-columns: an id, a name); other files may have them too. */
  ignoredColumns?: string[];
  /** Images: every image is resized to height x width and converted to `channels` (1 gray, 3 RGB). */
  image?: { height: number; width: number; channels: 1 | 3; resize: 'area-bilinear' };
  /** Present when training standardized the input (--standardize). */
  standardize?: Standardization;
}

/** Training-set statistics for `standardize`: per feature for [F] samples, per channel for [C, H, W]. */
export function standardization(ds: Dataset): Standardization {
  const per = ds.sampleShape.length >= 2 ? 'channel' : 'feature';
  const groups = ds.sampleShape[0]; // channels of [C, H, W], features of [F]
  const sum = new Float64Array(groups);
  const sumSq = new Float64Array(groups);
  const { values, groupOf, n } = layout(ds);
  // Two passes (mean, then squared deviations): one-pass sums of squares lose everything for large offsets (1e5 ± 1).
  for (let i = 0; i < values.length; i++) sum[groupOf(i)] += values[i];
  const mean = Array.from(sum, (s) => s / n);
  for (let i = 0; i < values.length; i++) {
    const d = values[i] - mean[groupOf(i)];
    sumSq[groupOf(i)] += d * d;
  }
  const std = Array.from(sumSq, (s) => {
    const sd = Math.sqrt(s / n);
    return sd > 0 && Number.isFinite(sd) ? sd : 1;
  });
  return { per, mean, std };
}

function layout(ds: Dataset) {
  const sample = ds.sampleShape.reduce((a, b) => a * b, 1);
  if (ds.sampleShape.length >= 2) {
    const plane = sample / ds.sampleShape[0];
    const channels = ds.sampleShape[0];
    return { values: ds.images, groupOf: (i: number) => Math.floor(i / plane) % channels, n: ds.count * plane };
  }
  return { values: ds.images, groupOf: (i: number) => i % sample, n: ds.count };
}

/**
 * How `s` lays over a sample of `sampleShape`: value i of a sample uses statistic ⌊i / plane⌋ (plane 1
 * per feature; per channel, the values of one channel). A string says why it does not fit.
 */
export function standardizationLayout(sampleShape: readonly number[], s: Pick<Standardization, 'per' | 'mean'>): { plane: number } | string {
  const sample = sampleShape.reduce((a, b) => a * b, 1);
  const groups = s.mean.length;
  const shape = `[${sampleShape.join(', ')}]`;
  if (s.per === 'feature') return groups === sample ? { plane: 1 } : `${groups} per-feature statistics, but samples of shape ${shape} have ${sample} values`;
  // [C, H, W] names its channels; a flattened image [C·H·W] holds them one after another.
  if (sampleShape.length >= 2) return groups === sampleShape[0] ? { plane: sample / groups } : `${groups} per-channel statistics, but samples of shape ${shape} have ${sampleShape[0]} channels`;
  return groups >= 1 && sample % groups === 0 ? { plane: sample / groups } : `${groups} per-channel statistics do not divide the ${sample} values of samples of shape ${shape} into channels`;
}

/** (x - mean) / std into a new array, for samples of `sampleShape` laid out one after another. */
export function applyStandardization(values: Float32Array, sampleShape: readonly number[], s: Standardization): Float32Array {
  const sample = sampleShape.reduce((a, b) => a * b, 1);
  if (s.std.length !== s.mean.length) throw new Error(`standardization has ${s.mean.length} means but ${s.std.length} deviations; it needs one of each per ${s.per}`);
  const layout = standardizationLayout(sampleShape, s);
  if (typeof layout === 'string') throw new Error(`standardization does not fit: ${layout}`);
  const { plane } = layout;
  const out = new Float32Array(values.length);
  const scale = s.std.map((v) => 1 / v);
  for (let i = 0; i < values.length; i++) {
    const g = Math.floor((i % sample) / plane);
    out[i] = (values[i] - s.mean[g]) * scale[g];
  }
  return out;
}

/** The dataset with standardized values (a copy; datasets may be shared). */
export function standardizeDataset(ds: Dataset, s: Standardization): Dataset {
  return { ...ds, images: applyStandardization(ds.images, ds.sampleShape, s) };
}

/**
 * A stratified, seeded split: of each class's samples, round(fraction · n_c) go to the test set, chosen by
 * a shuffle of that class's indices with `Rng(seed)` (classes in label order); both sets keep the file's
 * order. The same data, fraction and seed give the same split everywhere.
 */
export function stratifiedSplit(ds: Dataset, fraction: number, seed: number): { train: Dataset; test: Dataset } {
  if (!(fraction > 0 && fraction < 1)) throw new Error(`the test fraction must be between 0 and 1 (exclusive), got ${fraction}`);
  const byClass: number[][] = Array.from({ length: ds.numClasses }, () => []);
  for (let i = 0; i < ds.count; i++) byClass[ds.labels[i]].push(i);
  const rng = new Rng(seed);
  const isTest = new Uint8Array(ds.count);
  for (const members of byClass) {
    const order = rng.shuffle(Uint32Array.from(members));
    const k = Math.round(fraction * members.length);
    for (let j = 0; j < k; j++) isTest[order[j]] = 1;
  }
  const train: number[] = [];
  const test: number[] = [];
  for (let i = 0; i < ds.count; i++) (isTest[i] ? test : train).push(i);
  if (test.length === 0) throw new Error(`a test fraction of ${fraction} of ${ds.count} samples leaves no test samples; use a larger --test-fraction or give --test-data`);
  if (train.length === 0) throw new Error(`a test fraction of ${fraction} of ${ds.count} samples leaves no training samples; use a smaller --test-fraction`);
  return { train: subsetByIndex(ds, Uint32Array.from(train)), test: subsetByIndex(ds, Uint32Array.from(test)) };
}

/**
 * Check a `preprocessing` object read from model.json against the model's input shape. Returns the
 * message of the first problem, or null when it is valid.
 */
export function checkPreprocessing(value: unknown, inputShape: readonly number[]): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be an object';
  const p = value as Record<string, unknown>;
  if (p.version !== PREPROCESSING_VERSION) return `"version" is ${JSON.stringify(p.version)}; this bnlab reads version ${PREPROCESSING_VERSION}`;
  if (!['csv', 'idx', 'images'].includes(p.source as string)) return `"source" must be "csv", "idx" or "images", got ${JSON.stringify(p.source)}`;
  const sample = inputShape.reduce((a, b) => a * b, 1);
  if (p.features !== undefined) {
    if (!Array.isArray(p.features) || !p.features.every((f) => typeof f === 'string')) return '"features" must be an array of column names';
    if (p.features.length !== sample) return `"features" names ${p.features.length} columns, the model takes ${sample} inputs`;
  }
  if (p.label !== undefined && typeof p.label !== 'string') return '"label" must be a column name';
  if (p.image !== undefined) {
    const im = p.image as Record<string, unknown>;
    if (typeof im !== 'object' || im === null) return '"image" must be an object';
    if (!(im.channels === 1 || im.channels === 3) || !Number.isInteger(im.height) || !Number.isInteger(im.width)) return '"image" needs integer "height" and "width" and "channels" 1 or 3';
    if ((im.channels as number) * (im.height as number) * (im.width as number) !== sample) return `"image" ${im.channels}x${im.height}x${im.width} does not match the model's ${sample} inputs`;
  }
  if (p.standardize !== undefined) {
    const s = p.standardize as Record<string, unknown>;
    if (typeof s !== 'object' || s === null || !(s.per === 'feature' || s.per === 'channel')) return '"standardize" must be { "per": "feature" | "channel", "mean": [...], "std": [...] }';
    for (const key of ['mean', 'std'] as const) {
      const a = s[key];
      if (!Array.isArray(a) || !a.every((v) => typeof v === 'number' && Number.isFinite(v))) return `"standardize.${key}" must be a list of finite numbers (one per ${s.per})`;
    }
    const mean = s.mean as number[];
    if ((s.std as number[]).length !== mean.length) return `"standardize" has ${mean.length} means and ${(s.std as number[]).length} stds; it needs one of each per ${s.per}`;
    const layout = standardizationLayout(inputShape, { per: s.per, mean });
    if (typeof layout === 'string') return `"standardize": ${layout}`;
    const image = p.image as { channels: number } | undefined;
    if (s.per === 'channel' && image && mean.length !== image.channels) return `"standardize" has ${mean.length} per-channel statistics, but the images have ${image.channels} channels`;
    if (!(s.std as number[]).every((v) => v > 0)) return '"standardize.std" must be positive';
  }
  return null;
}

/** Samples per class (index = label). */
export function classCounts(ds: Dataset): number[] {
  const counts = new Array<number>(ds.numClasses).fill(0);
  for (let i = 0; i < ds.count; i++) counts[ds.labels[i]]++;
  return counts;
}

/**
 * Classes missing from one side of a run: never learnt (no training samples) or never tested (no test
 * samples, e.g. a class of one row, whose 20% rounds to none, or a limit that keeps the first rows of a
 * file sorted by class). One message per class, naming it and both counts.
 */
export function missingClassWarnings(trainSet: Dataset, testSet: Dataset): string[] {
  const train = classCounts(trainSet);
  const test = classCounts(testSet);
  const names = trainSet.classNames ?? testSet.classNames;
  const out: string[] = [];
  for (let k = 0; k < train.length; k++) {
    if (train[k] > 0 && test[k] > 0) continue;
    if (train[k] === 0 && test[k] === 0) continue; // the data has none at all (a model's class): nothing to say per run
    const name = JSON.stringify(names?.[k] ?? String(k));
    const counts = `${train[k]} training and ${test[k]} test sample${test[k] === 1 ? '' : 's'}`;
    out.push(train[k] === 0 ? `class ${name} has ${counts}: the model never learns it` : `class ${name} has ${counts}: it is never tested, so the test accuracy says nothing about it`);
  }
  return out;
}
