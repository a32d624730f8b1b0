/**
 * In-memory labelled image datasets. Browser-safe: no Node imports, so the same code serves the CLI
 * and a web page that fetched the IDX bytes itself.
 */
import type { IdxData } from './idx.js';

/**
 * A labelled dataset held entirely in memory.
 *
 * Treat it as read-only: loaders memoize datasets and `subset` returns views, so writing into
 * `images` would change every other user of the same data.
 */
export interface Dataset {
  /** Short identifier, e.g. `mnist`. Kept unchanged by `subset`/`takeFirst`. */
  name: string;
  /** `count * prod(sampleShape)` values, sample-major, pixels scaled to [0, 1]. */
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

  return { name, images: bytesToUnit(imagesIdx.data), labels, count, sampleShape, numClasses, ...(classNames ? { classNames } : {}) };
}

/** Bytes 0..255 to floats 0..1. A lookup table keeps this to one load per pixel. */
export function bytesToUnit(bytes: Uint8Array): Float32Array {
  const lut = new Float32Array(256);
  for (let i = 0; i < 256; i++) lut[i] = i / 255;
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = lut[bytes[i]];
  return out;
}

function findLabelOutOfRange(labels: Uint8Array, numClasses: number): number {
  for (let i = 0; i < labels.length; i++) if (labels[i] >= numClasses) return i;
  return -1;
}
