/**
 * Data preparation shared by the experiments: checks that the data fits the networks, subsets, and
 * input features multiplied by fixed per-feature factors (the input-scale experiment).
 */
import { checkDataset, sampleSize, takeFirst, type Dataset } from '../data/dataset.js';
import { Rng } from '../tensor/rng.js';
import { INPUT_SHAPE } from './models.js';
import type { ExperimentData } from './types.js';

/** Throws unless both sets have samples of 784 values and the same classes. */
export function checkExperimentData(data: ExperimentData | undefined, experiment: string): ExperimentData {
  if (!data || !data.train || !data.test) {
    throw new Error(`${experiment}: pass the data to train and test on, { data: { train, test } } (in Node: loadDataset('mnist', 'train') and loadDataset('mnist', 'test') from 'bnlab/node')`);
  }
  const need = INPUT_SHAPE.reduce((a, b) => a * b, 1);
  for (const [split, ds] of [['train', data.train], ['test', data.test]] as const) {
    checkDataset(ds);
    if (sampleSize(ds) !== need) {
      throw new Error(`${experiment}: the ${split} set "${ds.name}" has samples of shape [${ds.sampleShape.join(', ')}] (${sampleSize(ds)} values); the experiments' networks take ${need} values per sample (28x28 images such as MNIST or Fashion-MNIST)`);
    }
  }
  if (data.train.numClasses !== data.test.numClasses) throw new Error(`${experiment}: the train set has ${data.train.numClasses} classes, the test set ${data.test.numClasses}`);
  return data;
}

/** The first `n` samples, or the whole set when it is smaller (quick runs on small test data). */
export function firstUpTo(ds: Dataset, n: number): Dataset {
  return takeFirst(ds, Math.min(n, ds.count));
}

/**
 * One factor per input feature, spread evenly on a log scale over [low, high] and assigned to the
 * features in a seeded random order.
 */
export function featureScales(features: number, low: number, high: number, seed: number): Float32Array {
  const scales = new Float32Array(features);
  const a = Math.log10(low);
  const b = Math.log10(high);
  for (let j = 0; j < features; j++) scales[j] = 10 ** (a + ((b - a) * j) / Math.max(1, features - 1));
  return new Rng(seed).shuffle(scales);
}

/**
 * A copy of `ds` with feature j of every sample multiplied by `scales[j]`, its values in `into` if
 * given (one per value of `ds`; e.g. shared memory that several workers use).
 */
export function scaleFeatures(ds: Dataset, scales: Float32Array, into?: Float32Array): Dataset {
  const size = sampleSize(ds);
  if (scales.length !== size) throw new Error(`scaleFeatures: ${scales.length} factors for samples of ${size} values`);
  if (into && into.length !== ds.images.length) throw new Error(`scaleFeatures: ${into.length} values to write for ${ds.images.length}`);
  const images = into ?? new Float32Array(ds.images.length);
  for (let i = 0; i < ds.count; i++) {
    const o = i * size;
    for (let j = 0; j < size; j++) images[o + j] = ds.images[o + j] * scales[j];
  }
  return withScaledImages(ds, images);
}

/** `ds` with its values replaced by `images`, which `scaleFeatures` wrote (e.g. another worker, in memory both share). */
export function withScaledImages(ds: Dataset, images: Float32Array): Dataset {
  if (images.length !== ds.images.length) throw new Error(`withScaledImages: ${images.length} values for ${ds.images.length}`);
  return { ...ds, images, sampleShape: [...ds.sampleShape], name: `${ds.name}-scaled` };
}
