/**
 * The user's own data from disk (Node only), behind one option, `--data PATH`:
 *   - a CSV file with a header (streamed through csv-parse; src/data/tabular.ts checks every cell),
 *   - a directory holding an IDX pair (images + labels, as MNIST ships them, optionally gzipped; with a
 *     second pair named t10k/test, that pair is the test set),
 *   - a directory of PNG images in one folder per class (resized and converted by src/io/image.ts).
 * `loadTrainingData` adds the test set (a second path, a stratified split, or the IDX test pair) and
 * standardization, and returns what the run must record to do the same again (`preprocessing`).
 * Everything is read and checked before a run directory is created, so bad data writes nothing.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { parse } from 'csv-parse';
import { datasetFromIdx, type Dataset } from './dataset.js';
import { DataFileError } from './errors.js';
import { parseIdx } from './idx.js';
import { loadDataset } from './node.js';
import { PREPROCESSING_VERSION, standardization, standardizeDataset, stratifiedSplit, type Preprocessing } from './preprocess.js';
import { TableBuilder, sortClassNames, tableToDataset, type Table } from './tabular.js';
import { rgbaToInput } from '../io/image.js';
import { readPngRgba } from '../io/node-png.js';

export type DataKind = 'csv' | 'idx' | 'images';

/** How to read a data path; at training from the flags, afterwards from the run's preprocessing. */
export interface ReadOptions {
  /** CSV: the label column (default the last). */
  label?: string | null;
  /** CSV: the feature columns the file must have (test data, data for a trained model). */
  features?: readonly string[];
  /** CSV: a file without the label column is fine (predicting). */
  labelOptional?: boolean;
  /** The classes the labels must be among (test data, a trained model's); default: the data's own. */
  classNames?: readonly string[];
  /** Images: resize to [height, width] (default the first image's size) and convert to 1 or 3 channels (default the first image's). */
  imageSize?: readonly [number, number] | null;
  channels?: 1 | 3 | null;
  /** Where `features` and `classNames` came from, for error messages. */
  expectedFrom?: string;
}

export interface DataSource {
  kind: DataKind;
  /** Absolute path. */
  path: string;
  dataset: Dataset;
  /** IDX directory with a second pair (t10k/test): its test set. */
  testDataset?: Dataset;
  /** CSV: the table (line numbers of the rows, feature and label names). */
  table?: Table;
  /** sha256 of the file(s): a CSV file's bytes; an IDX directory's files; an image folder's list of (path, size). */
  fingerprint: string;
  /** What a trained model needs to read more data like this (no standardization yet). */
  preprocessing: Preprocessing;
}

/** Read `--data PATH`: a CSV file, an IDX directory or a folder of class folders, detected from what is there. */
export async function readDataSource(p: string, options: ReadOptions = {}): Promise<DataSource> {
  const abs = path.resolve(p);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(abs);
  } catch {
    throw new DataFileError(p, 'no such file or directory; --data takes a CSV file, a directory with an IDX pair, or a directory with one folder of PNG images per class');
  }
  if (stat.isFile()) {
    if (/\.png$/i.test(abs)) throw new DataFileError(p, 'is one image; --data takes a directory with one folder of PNG images per class (DIR/cat/1.png, DIR/dog/2.png, ...)');
    if (/(idx\d|ubyte)/i.test(path.basename(abs))) throw new DataFileError(p, 'is an IDX file; --data takes the directory that holds the images and labels files');
    return readCsv(abs, p, options);
  }
  if (!stat.isDirectory()) throw new DataFileError(p, 'is neither a file nor a directory');
  const entries = fs.readdirSync(abs, { withFileTypes: true }).filter((e) => !e.name.startsWith('.'));
  if (entries.some((e) => e.isFile() && IDX_NAME.test(e.name))) return readIdxDir(abs, p, entries.filter((e) => e.isFile()).map((e) => e.name), options);
  if (entries.some((e) => e.isDirectory())) return readImageFolders(abs, p, options);
  throw new DataFileError(p, `holds ${entries.length ? `only ${entries.slice(0, 5).map((e) => e.name).join(', ')}` : 'nothing'}; a data directory holds either IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, ...) or one folder of PNG images per class`);
}

// ---- CSV -------------------------------------------------------------------------------------------

/** The delimiter from the first line: a comma, else a tab or a semicolon if the line has one; .tsv files use tabs. */
function detectDelimiter(file: string): string {
  if (/\.tsv$/i.test(file)) return '\t';
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(65536);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const first = buf.subarray(0, n).toString('utf8').split(/\r?\n/, 1)[0] ?? '';
    if (first.includes(',')) return ',';
    if (first.includes('\t')) return '\t';
    if (first.includes(';')) return ';';
    return ',';
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Stream `file` through csv-parse into `builder` (header, then rows, each with the line it starts on).
 * Returns the sha256 of the bytes read. Errors are DataFileError naming `shown`.
 */
async function streamCsv(file: string, shown: string, builder: TableBuilder): Promise<string> {
  const hash = createHash('sha256');
  let delimiter: string;
  try {
    delimiter = detectDelimiter(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataFileError(shown, code === 'ENOENT' ? 'no such file' : `cannot be read: ${(e as Error).message}`);
  }
  const input = fs.createReadStream(file);
  input.on('data', (chunk) => hash.update(chunk));
  // Rows are checked as they stream in; the values go straight into a growing Float32Array.
  const parser = input.pipe(parse({ bom: true, delimiter, info: true, relax_column_count: true, skip_empty_lines: true }));
  const lines = new LineCounter();
  let first = true;
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      const line = lines.start(record, info.lines);
      if (first) builder.header(record, line);
      else builder.row(record, line);
      first = false;
    }
  } catch (e) {
    input.destroy();
    if (e instanceof DataFileError) throw e;
    const err = e as Error & { code?: string; lines?: number };
    if (err.code?.startsWith?.('CSV_')) throw new DataFileError(shown, `not valid CSV: ${err.message.replace(/^Invalid \w+: /, '')}`, err.lines);
    throw new DataFileError(shown, `cannot be read: ${err.message}`);
  }
  return hash.digest('hex');
}

async function readCsv(abs: string, shown: string, options: ReadOptions): Promise<DataSource> {
  const builder = new TableBuilder(shown, { label: options.label ?? undefined, features: options.features, labelOptional: options.labelOptional, featuresFrom: options.expectedFrom });
  const fingerprint = await streamCsv(abs, shown, builder);
  const table = builder.finish();
  const dataset = tableToDataset(table, path.basename(abs), options.classNames);
  return {
    kind: 'csv',
    path: abs,
    dataset,
    table,
    fingerprint,
    preprocessing: { version: PREPROCESSING_VERSION, source: 'csv', features: table.features, label: table.label! },
  };
}

/**
 * The line each record starts on, as an editor numbers lines. csv-parse's info.lines is the line a record
 * ends on, but it counts a \r\n inside a quoted value as two lines (for the rest of the file), so that
 * surplus is kept and taken off.
 */
class LineCounter {
  private surplus = 0;
  start(record: string[], endLine: number): number {
    let breaks = 0;
    for (const cell of record) {
      breaks += cell.match(/\r\n|\r|\n/g)?.length ?? 0;
      this.surplus += cell.match(/\r\n/g)?.length ?? 0;
    }
    return endLine - this.surplus - breaks;
  }
}

/** Read a CSV file for prediction: the model's feature columns, the label column optional. */
export async function readCsvRows(p: string, features: readonly string[], label: string | undefined, expectedFrom: string): Promise<Table> {
  const builder = new TableBuilder(p, { label, features, labelOptional: true, featuresFrom: expectedFrom });
  await streamCsv(path.resolve(p), p, builder);
  return builder.finish();
}

// ---- IDX -------------------------------------------------------------------------------------------

const IDX_NAME = /idx[1-4]|ubyte/i;

function readIdxBytes(file: string) {
  let bytes: Uint8Array = fs.readFileSync(file);
  // MNIST is distributed gzipped; take the files as they come.
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = zlib.gunzipSync(bytes, { maxOutputLength: 2 ** 31 - 1 });
    } catch (e) {
      throw new DataFileError(file, `is gzipped but does not decompress: ${(e as Error).message}`);
    }
  }
  return parseIdx(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), file);
}

function readIdxDir(abs: string, shown: string, names: string[], options: ReadOptions): DataSource {
  // Pair files by what comes before "images"/"labels": train-images-idx3-ubyte + train-labels-idx1-ubyte.
  const pairs = new Map<string, { images?: string; labels?: string }>();
  for (const name of names.filter((n) => IDX_NAME.test(n)).sort()) {
    const m = /^(.*?)[-_.]?(images?|labels?)/i.exec(name);
    const role = m ? (m[2].toLowerCase().startsWith('image') ? 'images' : 'labels') : /idx1/i.test(name) ? 'labels' : 'images';
    const prefix = m ? m[1] : '';
    const pair = pairs.get(prefix) ?? {};
    if (pair[role]) throw new DataFileError(shown, `has two IDX ${role} files for "${prefix}": ${pair[role]} and ${name}; keep one`);
    pair[role] = name;
    pairs.set(prefix, pair);
  }
  const complete = [...pairs].filter(([, p]) => p.images && p.labels);
  const incomplete = [...pairs].filter(([, p]) => !(p.images && p.labels));
  if (incomplete.length) {
    const [prefix, p] = incomplete[0];
    throw new DataFileError(shown, `${p.images ?? p.labels} has no matching ${p.images ? 'labels' : 'images'} file (expected a name like ${prefix || ''}${prefix ? '-' : ''}${p.images ? 'labels-idx1-ubyte' : 'images-idx3-ubyte'})`);
  }
  if (complete.length === 0 || complete.length > 2) throw new DataFileError(shown, `holds ${complete.length} IDX pairs; expected one (images + labels) or two (train and t10k/test)`);
  let train = complete[0];
  let test: typeof train | undefined;
  if (complete.length === 2) {
    const isTest = (prefix: string) => /t10k|test|val/i.test(prefix);
    const testPair = complete.find(([prefix]) => isTest(prefix));
    if (!testPair || complete.every(([prefix]) => isTest(prefix))) throw new DataFileError(shown, `holds two IDX pairs (${complete.map(([p]) => p).join(', ')}); name the test pair t10k-… or test-… so it is told from the training pair`);
    test = testPair;
    train = complete.find((c) => c !== testPair)!;
  }
  const hash = createHash('sha256');
  const load = ([, p]: (typeof complete)[number], name: string, classNames?: readonly string[]) => {
    const images = readIdxBytes(path.join(abs, p.images!));
    const labels = readIdxBytes(path.join(abs, p.labels!));
    hash.update(images.data).update(labels.data);
    let max = 0;
    for (const l of labels.data) max = Math.max(max, l);
    const names = classNames ?? Array.from({ length: max + 1 }, (_, k) => String(k));
    if (max >= names.length) throw new DataFileError(path.join(abs, p.labels!), `has label ${max}, but the model has ${names.length} classes (0..${names.length - 1})`);
    try {
      return datasetFromIdx(images, labels, name, { classNames: names });
    } catch (e) {
      throw new DataFileError(shown, (e as Error).message);
    }
  };
  const dataset = load(train, path.basename(abs), options.classNames);
  const distinct = new Set(dataset.labels).size;
  if (!options.classNames && distinct < 2) throw new DataFileError(path.join(abs, train[1].labels!), `has only ${distinct} distinct label; a classifier needs at least two classes`);
  const testDataset = test ? load(test, path.basename(abs), dataset.classNames) : undefined;
  return { kind: 'idx', path: abs, dataset, ...(testDataset ? { testDataset } : {}), fingerprint: hash.digest('hex'), preprocessing: { version: PREPROCESSING_VERSION, source: 'idx' } };
}

// ---- PNG images in class folders --------------------------------------------------------------------

function readImageFolders(abs: string, shown: string, options: ReadOptions): DataSource {
  const entries = fs.readdirSync(abs, { withFileTypes: true }).filter((e) => !e.name.startsWith('.'));
  const loose = entries.find((e) => e.isFile() && /\.(png|jpe?g|gif|bmp|webp)$/i.test(e.name));
  if (loose) throw new DataFileError(path.join(shown, loose.name), 'is an image outside the class folders; put every image into the folder of its class (DIR/CLASS/IMAGE.png)');
  const classDirs = sortClassNames(entries.filter((e) => e.isDirectory()).map((e) => e.name));
  const files: Array<{ file: string; cls: string }> = [];
  for (const cls of classDirs) {
    const dir = path.join(abs, cls);
    const inside = fs.readdirSync(dir, { withFileTypes: true }).filter((e) => !e.name.startsWith('.'));
    const sub = inside.find((e) => e.isDirectory());
    if (sub) throw new DataFileError(path.join(shown, cls, sub.name), 'is a folder inside a class folder; each class folder holds PNG images only (one level: DIR/CLASS/IMAGE.png)');
    const other = inside.find((e) => !/\.png$/i.test(e.name));
    if (other) throw new DataFileError(path.join(shown, cls, other.name), 'is not a PNG file; bnlab reads PNG images only (convert other formats, e.g. with ImageMagick: mogrify -format png *.jpg) and nothing else may be in a class folder');
    const pngs = inside.map((e) => e.name).sort();
    if (pngs.length === 0) throw new DataFileError(path.join(shown, cls), 'is an empty class folder; put at least one PNG image into it, or remove it');
    for (const name of pngs) files.push({ file: path.join(dir, name), cls });
  }
  const known = options.classNames;
  if (!known && classDirs.length < 2) throw new DataFileError(shown, `has ${classDirs.length} class folder${classDirs.length === 1 ? '' : 's'}${classDirs.length ? ` (${classDirs[0]})` : ''}; a classifier needs at least two (DIR/CLASS/IMAGE.png, one folder per class)`);
  const classNames = known ? [...known] : classDirs;
  const index = new Map(classNames.map((c, i) => [c, i]));
  for (const cls of classDirs) {
    if (!index.has(cls)) throw new DataFileError(path.join(shown, cls), `is a class the model does not know; its classes are ${classNames.map((c) => JSON.stringify(c)).join(', ')}`);
  }
  const firstImage = readPngRgba(files[0].file);
  const [height, width] = options.imageSize ?? [firstImage.height, firstImage.width];
  const channels = options.channels ?? (firstImage.color ? 3 : 1);
  const size = channels * height * width;
  const images = new Float32Array(files.length * size);
  const labels = new Uint8Array(files.length);
  const hash = createHash('sha256');
  files.forEach(({ file, cls }, i) => {
    const png = i === 0 ? firstImage : readPngRgba(file);
    images.set(rgbaToInput(png.rgba, png.width, png.height, { height, width, channels }), i * size);
    labels[i] = index.get(cls)!;
    hash.update(`${path.relative(abs, file)}\0${fs.statSync(file).size}\n`);
  });
  return {
    kind: 'images',
    path: abs,
    dataset: { name: path.basename(abs), images, labels, count: files.length, sampleShape: [channels, height, width], numClasses: classNames.length, classNames },
    fingerprint: hash.digest('hex'),
    preprocessing: { version: PREPROCESSING_VERSION, source: 'images', image: { height, width, channels, resize: 'area-bilinear' } },
  };
}

// ---- Training data ----------------------------------------------------------------------------------

/** The data settings of a run (TrainConfig's fields). */
export interface TrainingDataOptions {
  /** A bundled dataset (mnist, fashion-mnist); with `dataPath`, the data's name (its file name). */
  dataset: string;
  /** Own data (--data): a CSV file, a directory with an IDX pair, or class folders of PNG images. */
  dataPath?: string | null;
  /** The test set: another path of the same kind (--test-data), or a stratified split of `dataPath` seeded with `seed` (--test-fraction, default 0.2). */
  testDataPath?: string | null;
  testFraction?: number | null;
  /** CSV: the label column (default the last). */
  labelColumn?: string | null;
  /** Images: [height, width] to resize to (default the first image's) and 1 or 3 channels (default the first image's). */
  imageSize?: [number, number] | null;
  imageChannels?: 1 | 3 | null;
  /** Standardize the input with training-set mean and std (per feature; per channel for images), recorded in the run. */
  standardize?: boolean;
  seed: number;
}

/** --test-fraction when neither it nor --test-data is given (and the data has no test set of its own). */
export const DEFAULT_TEST_FRACTION = 0.2;

export interface TrainingData {
  trainSet: Dataset;
  testSet: Dataset;
  /** Own data only: what model.json records to read more data the same way. */
  preprocessing?: Preprocessing;
  /** Own data only: where the data came from, for config.json's "data". */
  provenance?: {
    kind: DataKind;
    path: string;
    fingerprint: string;
    test: { path: string; fingerprint: string } | { fraction: number; seed: number; stratified: true } | { idxPair: 'test' };
    classNames: string[];
  };
}

/**
 * The training and test sets of a run: a bundled dataset by name, or `dataPath` with its test set
 * (`testDataPath`, a stratified `testFraction` split seeded with `seed`, or an IDX directory's own test
 * pair), standardized with training-set statistics when asked. Deterministic: the same options and
 * files give the same sets, which is how `bnlab evaluate` and `--resume` recreate them.
 */
export async function loadTrainingData(o: TrainingDataOptions): Promise<TrainingData> {
  if (!o.dataPath) {
    let trainSet = loadDataset(o.dataset, 'train');
    let testSet = loadDataset(o.dataset, 'test');
    if (o.standardize) {
      const s = standardization(trainSet);
      [trainSet, testSet] = [standardizeDataset(trainSet, s), standardizeDataset(testSet, s)];
      return { trainSet, testSet, preprocessing: { version: PREPROCESSING_VERSION, source: 'idx', standardize: s } };
    }
    return { trainSet, testSet };
  }
  const read: ReadOptions = { label: o.labelColumn, imageSize: o.imageSize, channels: o.imageChannels };
  const source = await readDataSource(o.dataPath, read);
  let trainSet = source.dataset;
  let testSet: Dataset;
  let test: NonNullable<TrainingData['provenance']>['test'];
  if (o.testDataPath) {
    const p = source.preprocessing;
    const other = await readDataSource(o.testDataPath, {
      label: p.label,
      features: p.features,
      classNames: trainSet.classNames,
      imageSize: p.image ? [p.image.height, p.image.width] : null,
      channels: p.image?.channels,
      expectedFrom: `the training data ${o.dataPath}`,
    });
    if (other.kind !== source.kind) throw new DataFileError(o.testDataPath, `is ${KIND_TEXT[other.kind]}, the training data ${o.dataPath} is ${KIND_TEXT[source.kind]}; give test data of the same kind`);
    if (other.dataset.sampleShape.join('x') !== trainSet.sampleShape.join('x')) {
      throw new DataFileError(o.testDataPath, `has samples of shape [${other.dataset.sampleShape.join(', ')}], the training data [${trainSet.sampleShape.join(', ')}]`);
    }
    testSet = other.testDataset ?? other.dataset;
    test = { path: other.path, fingerprint: other.fingerprint };
  } else if (source.testDataset && o.testFraction == null) {
    testSet = source.testDataset;
    test = { idxPair: 'test' };
  } else {
    const fraction = o.testFraction ?? DEFAULT_TEST_FRACTION;
    let split: { train: Dataset; test: Dataset };
    try {
      split = stratifiedSplit(trainSet, fraction, o.seed);
    } catch (e) {
      throw new DataFileError(o.dataPath, (e as Error).message);
    }
    [trainSet, testSet] = [split.train, split.test];
    test = { fraction, seed: o.seed, stratified: true };
  }
  const preprocessing: Preprocessing = { ...source.preprocessing };
  if (o.standardize) {
    preprocessing.standardize = standardization(trainSet);
    trainSet = standardizeDataset(trainSet, preprocessing.standardize);
    testSet = standardizeDataset(testSet, preprocessing.standardize);
  }
  return { trainSet, testSet, preprocessing, provenance: { kind: source.kind, path: source.path, fingerprint: source.fingerprint, test, classNames: [...trainSet.classNames!] } };
}

const KIND_TEXT: Record<DataKind, string> = { csv: 'a CSV file', idx: 'an IDX directory', images: 'a folder of class folders' };

/** What a trained model says about its input (model.json). */
export interface ModelInput {
  inputShape: readonly number[];
  classNames?: readonly string[];
  preprocessing?: Preprocessing;
}

/**
 * Read `p` as data for a trained model: the model's CSV columns and classes, its image size and channels,
 * its standardization. An IDX directory with a test pair gives that pair (kind 'idx-test').
 */
export async function readForModel(p: string, model: ModelInput): Promise<{ dataset: Dataset; kind: DataKind | 'idx-test' }> {
  const pre = model.preprocessing;
  const image = pre?.image ?? imageOfInput(model.inputShape);
  const source = await readDataSource(p, {
    label: pre?.label,
    features: pre?.features,
    classNames: model.classNames,
    imageSize: image ? [image.height, image.width] : null,
    channels: image?.channels,
    expectedFrom: 'the model',
  });
  if (pre && pre.source !== source.kind && !(pre.source === 'idx' && source.kind === 'images')) {
    throw new DataFileError(p, `is ${KIND_TEXT[source.kind]}, the model was trained on ${KIND_TEXT[pre.source]}; give data of the same kind`);
  }
  let dataset = source.testDataset ?? source.dataset;
  const need = model.inputShape.reduce((a, b) => a * b, 1);
  const have = dataset.sampleShape.reduce((a, b) => a * b, 1);
  if (need !== have) throw new DataFileError(p, `has samples of shape [${dataset.sampleShape.join(', ')}] (${have} values), the model takes [${model.inputShape.join(', ')}] (${need} values)`);
  if (pre?.standardize) dataset = standardizeDataset(dataset, pre.standardize);
  return { dataset, kind: source.testDataset ? 'idx-test' : source.kind };
}

/** The image a model's input shape takes: [C, H, W] with C 1 or 3, or [N] with N a square (a flattened gray image). */
function imageOfInput(shape: readonly number[]): { height: number; width: number; channels: 1 | 3 } | null {
  if (shape.length === 3 && (shape[0] === 1 || shape[0] === 3)) return { channels: shape[0] as 1 | 3, height: shape[1], width: shape[2] };
  const side = Math.round(Math.sqrt(shape[0]));
  if (shape.length === 1 && side * side === shape[0]) return { channels: 1, height: side, width: side };
  return null;
}
