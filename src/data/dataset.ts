/**
 * In-memory labelled datasets (images, tables, arrays). Browser-safe: no Node imports, so the same code serves the CLI
 * and a web page that fetched the IDX bytes itself.
 */
import { findNonFinite } from '../tensor/tensor.js';
import type { IdxData } from './idx.js';
import { MAX_CLASSES, sortClassNames } from './tabular.js';

/**
 * A labelled dataset held entirely in memory.
 *
 * Treat it as read-only: loaders memoize datasets and `subset` returns views, so writing into
 * `images` would change every other user of the same data.
 */
export interface Dataset {
  /** Short identifier, e.g. `mnist`. Kept unchanged by `subset`/`takeFirst`. */
  name: string;
  /**
   * `count * prod(sampleShape)` values, sample-major: the model's inputs. The name is the image loaders'
   * (which scale pixels to [0, 1]); tables and `datasetFromArrays` keep their features here as given.
   */
  images: Float32Array;
  /** One class index per sample, each `< numClasses`. */
  labels: Uint8Array;
  /** Number of samples. */
  count: number;
  /** Shape of one sample, e.g. `[1, 28, 28]` (channels, height, width). */
  sampleShape: number[];
  /** Number of classes; labels are in `[0, numClasses)`. */
  numClasses: number;
  /** Human-readable class names, indexed by label. */
  classNames?: string[];
}

/** Class names of MNIST (the digit itself). */
export const MNIST_CLASS_NAMES: readonly string[] = Object.freeze(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);

/** Class names of Fashion-MNIST, indexed by label (as in Zalando's original release). */
export const FASHION_MNIST_CLASS_NAMES: readonly string[] = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
]);

/** Number of values in one sample (`prod(sampleShape)`). */
export function sampleSize(ds: Dataset): number {
  let n = 1;
  for (const d of ds.sampleShape) n *= d;
  return n;
}

/**
 * Check that a dataset's arrays agree with its `count`, `sampleShape` and `numClasses`.
 * Throws an Error describing the first inconsistency.
 */
export function checkDataset(ds: Dataset): void {
  const where = `Dataset "${ds.name}"`;
  if (!Number.isInteger(ds.count) || ds.count < 0) throw new Error(`${where}: count must be a non-negative integer, got ${ds.count}`);
  if (ds.sampleShape.length === 0 || ds.sampleShape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new Error(`${where}: sampleShape must be a non-empty list of positive integers, got [${ds.sampleShape.join(', ')}]`);
  }
  const size = sampleSize(ds);
  if (ds.images.length !== ds.count * size) {
    throw new Error(`${where}: images has ${ds.images.length} values, expected count * prod(sampleShape) = ${ds.count} * ${size} = ${ds.count * size}`);
  }
  if (ds.labels.length !== ds.count) throw new Error(`${where}: labels has ${ds.labels.length} entries, expected count = ${ds.count}`);
  if (!Number.isInteger(ds.numClasses) || ds.numClasses < 1) throw new Error(`${where}: numClasses must be a positive integer, got ${ds.numClasses}`);
  if (ds.classNames && ds.classNames.length !== ds.numClasses) {
    throw new Error(`${where}: ${ds.classNames.length} class names for ${ds.numClasses} classes`);
  }
  const bad = findLabelOutOfRange(ds.labels, ds.numClasses);
  if (bad >= 0) throw new Error(`${where}: label ${ds.labels[bad]} at index ${bad} is not < numClasses (${ds.numClasses})`);
}

/**
 * Samples `start .. start+count-1` of `ds`. The arrays are views into `ds` (no copy), so this is
 * cheap even for large datasets.
 */
export function subset(ds: Dataset, start: number, count: number): Dataset {
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > ds.count) {
    throw new Error(`subset(${ds.name}, start=${start}, count=${count}): need integers with 0 <= start and start + count <= ${ds.count} (the dataset size)`);
  }
  const size = sampleSize(ds);
  return {
    name: ds.name,
    images: ds.images.subarray(start * size, (start + count) * size),
    labels: ds.labels.subarray(start, start + count),
    count,
    sampleShape: [...ds.sampleShape],
    numClasses: ds.numClasses,
    ...(ds.classNames ? { classNames: [...ds.classNames] } : {}),
  };
}

/** The samples at `indices`, in that order (a copy). */
export function subsetByIndex(ds: Dataset, indices: ArrayLike<number>): Dataset {
  const size = sampleSize(ds);
  const images = new Float32Array(indices.length * size);
  const labels = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i];
    if (!(k >= 0 && k < ds.count)) throw new Error(`subsetByIndex(${ds.name}): index ${k} is outside 0..${ds.count - 1}`);
    images.set(ds.images.subarray(k * size, (k + 1) * size), i * size);
    labels[i] = ds.labels[k];
  }
  return { ...ds, images, labels, count: indices.length, sampleShape: [...ds.sampleShape], ...(ds.classNames ? { classNames: [...ds.classNames] } : {}) };
}

/**
 * The first `n` samples of `ds` (a view, see `subset`). The built-in loaders order samples so that
 * a prefix is class-balanced (Fashion-MNIST) or close to it (MNIST), which makes this a reasonable
 * way to train on less data. Throws if `n` exceeds the dataset size rather than silently using less.
 */
export function takeFirst(ds: Dataset, n: number): Dataset {
  if (!Number.isInteger(n) || n < 0 || n > ds.count) {
    throw new Error(`takeFirst(${ds.name}, ${n}): n must be an integer between 0 and ${ds.count} (the dataset size)`);
  }
  return subset(ds, 0, n);
}

/** Options for `datasetFromIdx`. */
export interface DatasetFromIdxOptions {
  /** Number of classes; defaults to `classNames.length`, else 10. */
  numClasses?: number;
  classNames?: readonly string[];
  /**
   * The image bytes already scaled to [0, 1] (by `bytesToUnit`), one value per byte: taken as the
   * dataset's images instead of converting again. Workers that share memory convert a training set
   * once into a Float32Array over a SharedArrayBuffer and all use it (the lab: 188 MB for MNIST).
   */
  pixels?: Float32Array;
}

/**
 * Build a Dataset from parsed IDX image and label files (see `parseIdx`).
 *
 * Images may be `[N, H, W]` (becomes sampleShape `[1, H, W]`), `[N, C, H, W]` or `[N, F]`; labels
 * must be `[N]`. Pixels are scaled from bytes to [0, 1]. Throws if the counts disagree or a label
 * is not below `numClasses`.
 */
export function datasetFromIdx(imagesIdx: IdxData, labelsIdx: IdxData, name: string, options: DatasetFromIdxOptions = {}): Dataset {
  const classNames = options.classNames ? [...options.classNames] : undefined;
  const numClasses = options.numClasses ?? classNames?.length ?? 10;
  if (classNames && classNames.length !== numClasses) throw new Error(`${name}: ${classNames.length} class names for ${numClasses} classes`);
  if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > 256) throw new Error(`${name}: numClasses must be an integer in [1, 256], got ${numClasses}`);

  const idims = imagesIdx.dims;
  if (idims.length < 2) throw new Error(`${name}: image file has dims [${idims.join('x')}], expected [count, ...sample] with at least 2 dimensions`);
  if (labelsIdx.dims.length !== 1) throw new Error(`${name}: label file has dims [${labelsIdx.dims.join('x')}], expected a single dimension [count]`);
  const count = idims[0];
  if (labelsIdx.dims[0] !== count) throw new Error(`${name}: image file has ${count} images but label file has ${labelsIdx.dims[0]} labels; they must match`);
  const sampleShape = idims.length === 3 ? [1, idims[1], idims[2]] : idims.slice(1);

  const labels = labelsIdx.data.slice(); // copy: don't pin the whole file buffer the view may point into
  const bad = findLabelOutOfRange(labels, numClasses);
  if (bad >= 0) throw new Error(`${name}: label ${labels[bad]} at index ${bad} is not < numClasses (${numClasses})`);

  const pixels = options.pixels;
  if (pixels && pixels.length !== imagesIdx.data.length) throw new Error(`${name}: options.pixels has ${pixels.length} values for ${imagesIdx.data.length} image bytes; it must have one per byte`);
  return { name, images: pixels ?? bytesToUnit(imagesIdx.data), labels, count, sampleShape, numClasses, ...(classNames ? { classNames } : {}) };
}

/** Options for `datasetFromArrays`. */
export interface DatasetFromArraysOptions {
  /** Names the dataset in error messages and model files (default `arrays`). */
  name?: string;
  /**
   * Shape of one sample, e.g. `[1, 28, 28]` for images a CNN takes. Default: `[features]`, the length of
   * a row (or, for one flat array, its length divided by the number of labels).
   */
  sampleShape?: readonly number[];
  /**
   * The classes in label order. String labels must each be one of them (default: the distinct labels
   * sorted, numerically when all are numbers, as CSV labels are); for number labels, their names.
   */
  classNames?: readonly string[];
  /** Number labels only: the number of classes (default `classNames.length`, else the largest label + 1). */
  numClasses?: number;
}

/**
 * A Dataset from data in memory, as PyTorch's TensorDataset or tf.data's arrays: `x` is one row of
 * features per sample (`number[][]`, an array of Float32Arrays) or every value in one flat array, sample
 * after sample; `labels` one per sample, class indices from 0 or strings (`'cat'`, `'dog'`: the classes
 * are then the distinct labels, sorted, and become `classNames`).
 *
 * The values are copied into a new Float32Array (so later changes to `x` do not reach the dataset) and
 * checked: ragged rows, NaN/Infinity, labels that are not class indices, and counts that disagree are
 * errors naming the sample. Labels are stored as bytes, so at most 256 classes.
 *
 * ```ts
 * const train = datasetFromArrays([[0.1, 200], [0.3, 180], ...], ['ok', 'worn', ...]);
 * ```
 */
export function datasetFromArrays(
  x: ArrayLike<number> | ReadonlyArray<ArrayLike<number>>,
  labels: ArrayLike<number> | readonly string[],
  options: DatasetFromArraysOptions = {},
): Dataset {
  const name = options.name ?? 'arrays';
  const where = `datasetFromArrays("${name}")`;
  const count = labels.length;
  if (count === 0) throw new Error(`${where}: no labels, so no samples; give one label per sample`);
  const rows = x.length > 0 && typeof x[0] !== 'number';
  const given = options.sampleShape ? [...options.sampleShape] : null;
  if (given && (given.length === 0 || given.some((d) => !Number.isInteger(d) || d < 1))) {
    throw new Error(`${where}: sampleShape must be a non-empty list of positive integers, got [${given.join(', ')}]`);
  }
  const givenSize = given ? given.reduce((a, b) => a * b, 1) : 0;
  let values: Float32Array;
  let size: number;
  if (rows) {
    const r = x as ReadonlyArray<ArrayLike<number>>;
    if (r.length !== count) throw new Error(`${where}: ${r.length} rows of features but ${count} labels; give one label per row`);
    size = r[0].length;
    if (given && size !== givenSize) throw new Error(`${where}: rows have ${size} values, but sampleShape [${given.join(', ')}] has ${givenSize}`);
    if (size === 0) throw new Error(`${where}: row 0 is empty; every row needs the sample's values`);
    values = new Float32Array(count * size);
    for (let i = 0; i < count; i++) {
      const row = r[i];
      if (!row || typeof row === 'number' || row.length !== size) {
        throw new Error(`${where}: row ${i} has ${row && typeof row !== 'number' ? row.length : 'no'} values, row 0 has ${size}; every row needs the same number of features`);
      }
      for (let j = 0; j < size; j++) values[i * size + j] = row[j];
    }
  } else {
    const flat = x as ArrayLike<number>;
    if (flat.length === 0) throw new Error(`${where}: no feature values for ${count} labels`);
    size = givenSize || flat.length / count;
    if (!Number.isInteger(size) || flat.length !== count * size) {
      const shape = given ? `sampleShape [${given.join(', ')}] (${givenSize} values)` : 'samples of equal size';
      throw new Error(`${where}: ${flat.length} values cannot be ${count} ${shape}; give one label per sample, or the rows as an array of arrays`);
    }
    values = Float32Array.from(flat);
  }
  // Checked here, where the row and column can still be named; the Trainer would name only a flat index.
  const bad = findNonFinite(values);
  if (bad >= 0) {
    const source = rows ? x as ReadonlyArray<ArrayLike<number>> : null;
    const raw = source ? source[Math.floor(bad / size)][bad % size] : (x as ArrayLike<number>)[bad];
    const what = Number.isFinite(raw) ? `${raw}, beyond float32's range,` : String(raw);
    throw new Error(`${where}: sample ${Math.floor(bad / size)}, value ${bad % size} is ${what}; clean the data (replace missing values, clip extremes) first`);
  }

  const { indices, numClasses, classNames } = classIndices(labels, options, where);
  const ds: Dataset = { name, images: values, labels: indices, count, sampleShape: given ?? [size], numClasses, ...(classNames ? { classNames } : {}) };
  checkDataset(ds);
  return ds;
}

/** Labels (class indices or strings) as bytes, with the number of classes and their names. */
function classIndices(labels: ArrayLike<number> | readonly string[], options: DatasetFromArraysOptions, where: string): { indices: Uint8Array; numClasses: number; classNames?: string[] } {
  const count = labels.length;
  const indices = new Uint8Array(count);
  const given = options.classNames ? [...options.classNames] : undefined;
  if (typeof labels[0] === 'string') {
    const text = labels as readonly string[];
    if (options.numClasses !== undefined && given === undefined) throw new Error(`${where}: with string labels, give classNames (the classes in order) instead of numClasses`);
    for (let i = 0; i < count; i++) if (typeof text[i] !== 'string') throw new Error(`${where}: label ${i} is ${JSON.stringify(text[i])} but label 0 is a string; give all labels as strings or all as class indices`);
    const classes = given ?? sortClassNames([...new Set(text)]);
    if (classes.length > MAX_CLASSES) throw new Error(`${where}: ${classes.length} distinct labels, more than the ${MAX_CLASSES} classes bnlab supports (labels are stored as bytes)`);
    const index = new Map(classes.map((c, i) => [c, i]));
    for (let i = 0; i < count; i++) {
      const k = index.get(text[i]);
      if (k === undefined) throw new Error(`${where}: label ${i} ${JSON.stringify(text[i])} is not one of classNames (${classes.map((c) => JSON.stringify(c)).join(', ')})`);
      indices[i] = k;
    }
    return { indices, numClasses: classes.length, classNames: classes };
  }
  const numbers = labels as ArrayLike<number>;
  let max = -1;
  for (let i = 0; i < count; i++) {
    const v = numbers[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= MAX_CLASSES) {
      throw new Error(`${where}: label ${i} is ${JSON.stringify(v)}; labels must be class indices (integers 0 to ${MAX_CLASSES - 1}) or strings`);
    }
    if (v > max) max = v;
  }
  const numClasses = options.numClasses ?? given?.length ?? max + 1;
  if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > MAX_CLASSES) throw new Error(`${where}: numClasses must be an integer in [1, ${MAX_CLASSES}], got ${numClasses}`);
  if (given && given.length !== numClasses) throw new Error(`${where}: ${given.length} classNames for ${numClasses} classes`);
  for (let i = 0; i < count; i++) {
    if (numbers[i] >= numClasses) throw new Error(`${where}: label ${i} is ${numbers[i]}, not below numClasses (${numClasses}); class indices start at 0`);
    indices[i] = numbers[i];
  }
  return { indices, numClasses, ...(given ? { classNames: given } : {}) };
}

/** Bytes 0..255 to floats 0..1 (into `out` if given, which needs one value per byte). A lookup table keeps this to one load per pixel. */
export function bytesToUnit(bytes: Uint8Array, out: Float32Array = new Float32Array(bytes.length)): Float32Array {
  if (out.length !== bytes.length) throw new Error(`bytesToUnit: ${out.length} values for ${bytes.length} bytes`);
  const lut = new Float32Array(256);
  for (let i = 0; i < 256; i++) lut[i] = i / 255;
  for (let i = 0; i < bytes.length; i++) out[i] = lut[bytes[i]];
  return out;
}

function findLabelOutOfRange(labels: Uint8Array, numClasses: number): number {
  for (let i = 0; i < labels.length; i++) if (labels[i] >= numClasses) return i;
  return -1;
}
