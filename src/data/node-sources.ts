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
  /** The option that named the path, for error messages (default --data). */
  flag?: string;
  /** CSV: rows without a label column are fine and get label 0 (population statistics need only the inputs). */
  unlabelled?: boolean;
  /** CSV: columns that are not features (--ignore-columns). */
  ignore?: readonly string[];
  /** CSV with `features`: skip other columns (listed in the table's `skipped`) instead of refusing the file. */
  skipOtherColumns?: boolean;
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
  const kind = dataKindOf(p, options.flag);
  if (kind === 'csv') return readCsv(abs, p, options);
  const entries = fs.readdirSync(abs, { withFileTypes: true }).filter((e) => !e.name.startsWith('.'));
  if (kind === 'idx') return readIdxDir(abs, p, entries.filter((e) => e.isFile()).map((e) => e.name), options);
  return readImageFolders(abs, p, options);
}

/** What kind of data `p` is, from what is there (without reading it); errors name `flag` (default --data). */
export function dataKindOf(p: string, flag = '--data'): DataKind {
  const abs = path.resolve(p);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(abs);
  } catch {
    throw new DataFileError(p, `no such file or directory; ${flag} takes a CSV file, a directory with an IDX pair, or a directory with one folder of PNG images per class`);
  }
  if (stat.isFile()) {
    if (/\.png$/i.test(abs)) throw new DataFileError(p, `is one image; ${flag} takes a directory with one folder of PNG images per class (DIR/cat/1.png, DIR/dog/2.png, ...)`);
    if (/(idx\d|ubyte)/i.test(path.basename(abs))) throw new DataFileError(p, `is an IDX file; ${flag} takes the directory that holds the images and labels files`);
    return 'csv';
  }
  if (!stat.isDirectory()) throw new DataFileError(p, 'is neither a file nor a directory');
  const entries = fs.readdirSync(abs, { withFileTypes: true }).filter((e) => !e.name.startsWith('.'));
  if (entries.some((e) => e.isFile() && IDX_NAME.test(e.name))) return 'idx';
  if (entries.some((e) => e.isDirectory())) return 'images';
  throw new DataFileError(p, `holds ${entries.length ? `only ${entries.slice(0, 5).map((e) => e.name).join(', ')}` : 'nothing'}; a data directory holds either IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, ...) or one folder of PNG images per class`);
}

// ---- CSV -------------------------------------------------------------------------------------------

/**
 * Compressed and other binary files are refused by what they are before the parser reads their bytes as
 * text (it would quote them back as garbage). Text has no NUL bytes; binary data nearly always does.
 */
function checkPlainText(file: string, shown: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    const magic = Buffer.alloc(4096);
    const n = fs.readSync(fd, magic, 0, magic.length, 0);
    if (n >= 2 && magic[0] === 0x1f && magic[1] === 0x8b) throw new DataFileError(shown, `is gzip-compressed; bnlab reads plain CSV text only: decompress it first (gunzip -k ${path.basename(file)}) and give the .csv file`);
    if (n >= 4 && magic[0] === 0x50 && magic[1] === 0x4b && magic[2] === 3 && magic[3] === 4) throw new DataFileError(shown, 'is a ZIP archive (or an Excel .xlsx file); bnlab reads plain CSV text only: extract it or save the sheet as CSV (UTF-8)');
    if (n >= 2 && ((magic[0] === 0xff && magic[1] === 0xfe) || (magic[0] === 0xfe && magic[1] === 0xff))) throw new DataFileError(shown, 'is UTF-16 text (as Excel\'s "Unicode Text" saves it); save it as CSV UTF-8, or convert it: iconv -f utf-16 -t utf-8 IN.csv > OUT.csv');
    const nul = magic.subarray(0, n).indexOf(0);
    if (nul >= 0) throw new DataFileError(shown, `is not a text file (byte ${nul} is 0, which CSV text never has); give a CSV file: a header line, then one line of comma-separated values per example`);
    // Without a 0 byte: text in another encoding has a few odd characters (reported later by line and
    // column), binary data mostly odd ones — bytes that are not UTF-8 and control characters.
    const head = new TextDecoder().decode(magic.subarray(0, n));
    const odd = head.match(/[\uFFFD\x01-\x08\x0B\x0C\x0E-\x1F]/g)?.length ?? 0;
    if (head.length >= 16 && odd > head.length / 10) throw new DataFileError(shown, `is not a text file (${Math.round((100 * odd) / head.length)}% of its first ${head.length} characters are not text); give a CSV file: a header line, then one line of comma-separated values per example`);
  } finally {
    fs.closeSync(fd);
  }
}

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
    checkPlainText(file, shown);
    delimiter = detectDelimiter(file);
  } catch (e) {
    if (e instanceof DataFileError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataFileError(shown, code === 'ENOENT' ? 'no such file' : `cannot be read: ${(e as Error).message}`);
  }
  const input = fs.createReadStream(file);
  input.on('data', (chunk) => hash.update(chunk));
  // Rows are checked as they stream in; the values go straight into a growing Float32Array.
  const parser = input.pipe(parse({ bom: true, delimiter, info: true, relax_column_count: true, skip_empty_lines: true }));
  const lines = new LineCounter();
  let first = true;
  let header: string[] = [];
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      const line = lines.start(record, info.lines);
      // Bytes that are not UTF-8 are decoded as U+FFFD: a Latin-1 "sétosa" would become the class "s�tosa".
      const bad = record.findIndex((cell) => cell.includes('\uFFFD'));
      if (bad >= 0) {
        const where = first ? ` (the header's column ${bad + 1})` : '';
        throw new DataFileError(shown, `is not UTF-8 text: ${JSON.stringify(record[bad])}${where} holds bytes that are not UTF-8 (shown as \uFFFD; Latin-1 or Windows-1252?). Save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 IN.csv > OUT.csv`, line, first ? undefined : header[bad]?.trim());
      }
      if (first) header = record;
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
  const builder = new TableBuilder(shown, { label: options.label ?? undefined, features: options.features, labelOptional: options.labelOptional || options.unlabelled, featuresFrom: options.expectedFrom, ignore: options.ignore, skipOtherColumns: options.skipOtherColumns });
  const fingerprint = await streamCsv(abs, shown, builder);
  const table = builder.finish();
  // Inputs only (population statistics): labels, if there, are not read, so every row counts as class 0.
  const dataset = options.unlabelled
    ? { name: path.basename(abs), images: table.values, labels: new Uint8Array(table.count), count: table.count, sampleShape: [table.features.length], numClasses: options.classNames?.length ?? 1, ...(options.classNames ? { classNames: [...options.classNames] } : {}) }
    : tableToDataset(table, path.basename(abs), options.classNames);
  return {
    kind: 'csv',
    path: abs,
    dataset,
    table,
    fingerprint,
    preprocessing: { version: PREPROCESSING_VERSION, source: 'csv', features: table.features, label: table.label!, ...(options.ignore?.length ? { ignoredColumns: [...options.ignore] } : {}) },
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
export async function readCsvRows(p: string, features: readonly string[], label: string | undefined, expectedFrom: string, ignore: readonly string[] = []): Promise<Table> {
  const builder = new TableBuilder(p, { label, features, labelOptional: true, featuresFrom: expectedFrom, ignore, skipOtherColumns: true });
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
    const labelsFile = path.join(abs, p.labels!);
    if (!classNames) checkIdxClasses(labels.data, max, labelsFile);
    const names = classNames ?? Array.from({ length: max + 1 }, (_, k) => String(k));
    if (max >= names.length) throw new DataFileError(labelsFile, `has label ${max} (sample ${labels.data.indexOf(max)}, counting from 0), but the classes are 0..${names.length - 1} (${names.length}, from the training labels)`);
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

/**
 * IDX labels are class indices, so the class count is the largest label + 1: labels that leave a class
 * without samples (starting at 1, or one corrupted label of 200 making 201 classes) are refused with the
 * labels and samples responsible.
 */
function checkIdxClasses(labels: ArrayLike<number>, max: number, file: string): void {
  const counts = new Array<number>(max + 1).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  const empty = counts.flatMap((n, k) => (n === 0 ? [k] : []));
  if (empty.length === 0) return;
  const min = counts.findIndex((n) => n > 0);
  const ranges = compressRanges(empty);
  if (empty.every((k) => k < min)) {
    throw new DataFileError(file, `the labels run from ${min} to ${max}, so class${min > 1 ? `es ${ranges}` : ` ${ranges}`} ${min > 1 ? 'have' : 'has'} no samples: IDX labels are class indices from 0 (the class count is the largest label + 1). Subtract ${min} from every label`);
  }
  // The labels above the first gap are the suspects (usually one corrupted value).
  const gap = empty.find((k) => k > min)!;
  const suspects: string[] = [];
  for (let i = 0; i < labels.length && suspects.length < 3; i++) if (labels[i] > gap && !suspects.some((t) => t.startsWith(`label ${labels[i]} `))) suspects.push(`label ${labels[i]} (sample ${i})`);
  const few = counts.slice(gap).reduce((a, b) => a + b, 0);
  throw new DataFileError(file, `${suspects.join(', ')}${few > suspects.length ? ` and ${few - suspects.length} more sample${few - suspects.length === 1 ? '' : 's'} above ${gap}` : ''} leave${suspects.length === 1 && few === 1 ? 's' : ''} class${empty.length === 1 ? '' : 'es'} ${ranges} with no samples: IDX labels are class indices, so the class count is the largest label + 1 (${max + 1} here). Correct those labels (samples count from 0), or remove those samples`);
}

/** [3, 4, 5, 9] → "3..5, 9". */
function compressRanges(sorted: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(j > i ? `${sorted[i]}..${sorted[j]}` : String(sorted[i]));
    i = j + 1;
  }
  return parts.join(', ');
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
  /** CSV: columns that are not features (--ignore-columns), recorded in the model. */
  ignoreColumns?: string[] | null;
  seed: number;
  /**
   * Training further from a trained model (--model DIR): how that model reads its input. The data is
   * read the same way (its CSV columns by name, image size, classes, its standardization statistics),
   * never re-derived from the new data, which would feed the weights input they were not trained on.
   */
  baseModel?: BaseModel | null;
}

/** What a model directory trained further needs from its model.json. */
export interface BaseModel {
  /** The directory, for messages. */
  dir: string;
  classNames?: string[];
  preprocessing?: Preprocessing;
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
  const base = o.baseModel?.preprocessing ? (o.baseModel as BaseModel & { preprocessing: Preprocessing }) : null;
  if (base) checkFitsBase(o, base);
  if (!o.dataPath) {
    let trainSet = loadDataset(o.dataset, 'train');
    let testSet = loadDataset(o.dataset, 'test');
    if (o.standardize) {
      const s = base?.preprocessing.standardize ?? standardization(trainSet);
      [trainSet, testSet] = [standardizeDataset(trainSet, s), standardizeDataset(testSet, s)];
      return { trainSet, testSet, preprocessing: { version: PREPROCESSING_VERSION, source: 'idx', standardize: s } };
    }
    return { trainSet, testSet };
  }
  checkFitsKind(o);
  const ignore = o.ignoreColumns ?? base?.preprocessing.ignoredColumns ?? [];
  const read: ReadOptions = base
    ? {
        ignore,
        label: o.labelColumn ?? base.preprocessing.label,
        features: base.preprocessing.features,
        classNames: o.baseModel?.classNames,
        imageSize: base.preprocessing.image ? [base.preprocessing.image.height, base.preprocessing.image.width] : null,
        channels: base.preprocessing.image?.channels,
        expectedFrom: `the model ${base.dir}`,
      }
    : { label: o.labelColumn, imageSize: o.imageSize, channels: o.imageChannels, ignore };
  const source = await readDataSource(o.dataPath, read);
  if (base && base.preprocessing.source !== source.kind && !(base.preprocessing.source === 'idx' && source.kind === 'images')) {
    throw new DataFileError(o.dataPath, `is ${KIND_TEXT[source.kind]}, the model ${base.dir} was trained on ${KIND_TEXT[base.preprocessing.source]}; train it further on data of the same kind`);
  }
  let trainSet = source.dataset;
  let testSet: Dataset;
  let test: NonNullable<TrainingData['provenance']>['test'];
  if (o.testDataPath) {
    const p = source.preprocessing;
    // The kind first: a CSV read with an image run's classes would fail on its labels, hiding the real mistake.
    const testKind = dataKindOf(o.testDataPath, '--test-data');
    if (testKind !== source.kind) throw new DataFileError(o.testDataPath, `is ${KIND_TEXT[testKind]}, the training data ${o.dataPath} is ${KIND_TEXT[source.kind]}; give --test-data of the same kind`);
    const other = await readDataSource(o.testDataPath, {
      flag: '--test-data',
      ignore,
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
    preprocessing.standardize = base?.preprocessing.standardize ?? standardization(trainSet);
    trainSet = standardizeDataset(trainSet, preprocessing.standardize);
    testSet = standardizeDataset(testSet, preprocessing.standardize);
  }
  return { trainSet, testSet, preprocessing, provenance: { kind: source.kind, path: source.path, fingerprint: source.fingerprint, test, classNames: [...trainSet.classNames!] } };
}

/** Options for another kind of data than --data is are refused rather than silently doing nothing. */
function checkFitsKind(o: TrainingDataOptions): void {
  const kind = dataKindOf(o.dataPath!);
  const what = `${o.dataPath} is ${KIND_TEXT[kind]}`;
  if (kind !== 'csv' && o.labelColumn) throw new Error(`--label names a CSV column, but ${what}, whose classes are ${kind === 'images' ? 'its folder names' : 'its labels file'}; drop --label`);
  if (kind !== 'csv' && o.ignoreColumns?.length) throw new Error(`--ignore-columns names CSV columns, but ${what}; drop --ignore-columns`);
  if (kind !== 'images' && (o.imageSize || o.imageChannels)) throw new Error(`${o.imageSize ? '--image-size' : '--channels'} applies to folders of PNG images, but ${what}${kind === 'idx' ? ', whose images are used at their own size' : ''}; drop it`);
}

/** Options that contradict how the model trained further reads its input are refused, not silently overridden. */
function checkFitsBase(o: TrainingDataOptions, base: BaseModel & { preprocessing: Preprocessing }): void {
  const pre = base.preprocessing;
  if (pre.standardize && !o.standardize) {
    throw new Error(`${base.dir} standardizes its input with the mean and std of its training data (recorded in its model.json); add --standardize to train it further with those statistics, or train a new model (--model mlp/cnn) on raw input`);
  }
  if (!pre.standardize && o.standardize) {
    throw new Error(`${base.dir} was trained on input that was not standardized; drop --standardize to train it further, or train a new model (--model mlp/cnn) with --standardize`);
  }
  if (!o.dataPath) return;
  const image = pre.image;
  if (image && o.imageSize && (o.imageSize[0] !== image.height || o.imageSize[1] !== image.width)) {
    throw new Error(`--image-size ${o.imageSize[0]}x${o.imageSize[1]}: ${base.dir} takes images of ${image.height}x${image.width} (height x width); drop --image-size to resize to that`);
  }
  if (image && o.imageChannels && o.imageChannels !== image.channels) {
    throw new Error(`--channels ${o.imageChannels}: ${base.dir} takes ${image.channels === 1 ? 'gray (1 channel)' : 'RGB (3 channels)'} images; drop --channels`);
  }
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
export async function readForModel(p: string, model: ModelInput, options: { unlabelled?: boolean; ignore?: readonly string[] } = {}): Promise<{ dataset: Dataset; kind: DataKind | 'idx-test'; skipped: string[] }> {
  const pre = model.preprocessing;
  const image = pre?.image ?? imageOfInput(model.inputShape);
  const kind = dataKindOf(p);
  if (pre && pre.source !== kind && !(pre.source === 'idx' && kind === 'images')) {
    throw new DataFileError(p, `is ${KIND_TEXT[kind]}, the model was trained on ${KIND_TEXT[pre.source]}; give data of the same kind`);
  }
  const source = await readDataSource(p, {
    label: pre?.label,
    features: pre?.features,
    classNames: model.classNames,
    imageSize: image ? [image.height, image.width] : null,
    channels: image?.channels,
    expectedFrom: 'the model',
    unlabelled: options.unlabelled,
    // Columns the model does not read (an id, notes) are skipped, not refused: the caller notes them.
    ignore: [...(options.ignore ?? []), ...(pre?.ignoredColumns ?? [])],
    skipOtherColumns: true,
  });
  let dataset = source.testDataset ?? source.dataset;
  const need = model.inputShape.reduce((a, b) => a * b, 1);
  const have = dataset.sampleShape.reduce((a, b) => a * b, 1);
  if (need !== have) throw new DataFileError(p, `has samples of shape [${dataset.sampleShape.join(', ')}] (${have} values), the model takes [${model.inputShape.join(', ')}] (${need} values)`);
  if (pre?.standardize) dataset = standardizeDataset(dataset, pre.standardize);
  return { dataset, kind: source.testDataset ? 'idx-test' : source.kind, skipped: source.table?.skipped ?? [] };
}

/** The image a model's input shape takes: [C, H, W] with C 1 or 3, or [N] with N a square (a flattened gray image). */
function imageOfInput(shape: readonly number[]): { height: number; width: number; channels: 1 | 3 } | null {
  if (shape.length === 3 && (shape[0] === 1 || shape[0] === 3)) return { channels: shape[0] as 1 | 3, height: shape[1], width: shape[2] };
  const side = Math.round(Math.sqrt(shape[0]));
  if (shape.length === 1 && side * side === shape[0]) return { channels: 1, height: side, width: side };
  return null;
}
