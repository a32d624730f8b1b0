/**
 * Tables (CSV rows) to datasets: a header of column names, numeric feature columns and one label column.
 * Browser-safe: it takes rows as arrays of strings with their line numbers, from whatever parsed the
 * text (src/data/node-sources.ts streams files through csv-parse), and checks every cell as it comes,
 * so a bad value is reported with its file, line and column before anything is trained or written.
 *
 * Labels are strings; classes are the distinct labels in a stable order (numerically when every label
 * is a number, else by code point), so the same file gives the same class indices on every machine.
 */
import type { Dataset } from './dataset.js';
import { DataFileError } from './errors.js';

/** Labels are stored as bytes (Dataset.labels is a Uint8Array). */
export const MAX_CLASSES = 256;
/** A plain decimal number, optionally signed, with an optional exponent; no hex, no "NaN"/"Infinity". */
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const NON_FINITE = /^[+-]?(nan|inf|infinity)$/i;
const FLOAT32_MAX = 3.4028234663852886e38;

export interface TableOptions {
  /** The label column's name; default the last column. */
  label?: string;
  /** The feature columns the file must have (a test file, or the data for a trained model); default: every column but the label. */
  features?: readonly string[];
  /** The file may lack the label column (predicting). */
  labelOptional?: boolean;
  /** Where the expected columns came from, for the error message ("the training file data.csv"). */
  featuresFrom?: string;
  /** Columns that are not features (an id, a name): skipped. Without `features` each must be in the file. */
  ignore?: readonly string[];
  /** With `features`: other columns than those are skipped and listed in Table.skipped (data for a trained model), instead of refused. */
  skipOtherColumns?: boolean;
}

/** A parsed table: features row-major as float32, labels as strings (first-seen order) and an index per row. */
export interface Table {
  fileName: string;
  /** Feature column names, in the order of `values`. */
  features: string[];
  /** The label column, or null when the file has none (labelOptional). */
  label: string | null;
  count: number;
  /** `count * features.length` values, row-major. */
  values: Float32Array;
  /** Distinct label strings in the order first seen. */
  labelStrings: string[];
  /** Per row: its label's index in `labelStrings`. */
  labelIndex: Uint32Array;
  /** Per row: the line it starts on (1-based, as an editor shows it). */
  lines: Uint32Array;
  /** Columns of the file that were not read (neither features nor the label), `ignore`d ones excluded. */
  skipped: string[];
}

/** Builds a Table from a header and rows, checking each cell. Call `header`, then `row` for each row, then `finish`. */
export class TableBuilder {
  private columns: string[] | null = null;
  /** For each feature (in output order), its column index in the file. */
  private featureColumns: number[] = [];
  private labelColumn = -1;
  private featureNames: string[] = [];
  private values = new Float32Array(1024);
  private labelIndex = new Uint32Array(256);
  private lines = new Uint32Array(256);
  private count = 0;
  private labels = new Map<string, number>();
  private skipped: string[] = [];

  constructor(
    readonly fileName: string,
    readonly options: TableOptions = {},
  ) {}

  header(cells: string[], line: number): void {
    const names = cells.map((c) => c.trim());
    names.forEach((n, i) => {
      if (n === '') throw new DataFileError(this.fileName, `the header's column ${i + 1} has no name; the first line must name every column (e.g. "x1,x2,label")`, line);
    });
    const seen = new Map<string, number>();
    names.forEach((n, i) => {
      if (seen.has(n)) throw new DataFileError(this.fileName, `the header names column "${n}" twice (columns ${seen.get(n)! + 1} and ${i + 1}); give each column its own name`, line);
      seen.set(n, i);
    });
    // A file without a header would silently lose its first row to it (and name columns "5.1", "3.5").
    const numeric = names.filter((n) => NUMBER.test(n)).length;
    if (names.length >= 2 && numeric >= names.length - 1 && numeric >= 2) {
      throw new DataFileError(this.fileName, `the first line (${names.slice(0, 6).join(',')}${names.length > 6 ? ',...' : ''}) looks like data, not a header: add a header line naming the columns (e.g. "${names.slice(0, -1).map((_, i) => `x${i + 1}`).slice(0, 4).join(',')}${names.length > 5 ? ',...' : ''},label"); column names must not be numbers`, line);
    }
    if (names.length < 2) throw new DataFileError(this.fileName, `the header has ${names.length} column (${JSON.stringify(names[0])}); a table needs at least one feature column and a label column, separated by commas`, line);
    const { label, features, labelOptional } = this.options;
    const labelName = label ?? names[names.length - 1];
    if (!seen.has(labelName) && !features) {
      if (!labelOptional) {
        const hint = label === undefined ? '' : ` (--label ${label})`;
        throw new DataFileError(this.fileName, `no label column "${labelName}"${hint}; the columns are ${names.map((n) => JSON.stringify(n)).join(', ')}. Name the label column with --label NAME`, line);
      }
    }
    this.labelColumn = seen.get(labelName) ?? -1;
    const ignore = this.options.ignore ?? [];
    if (ignore.includes(labelName) && this.labelColumn >= 0) throw new DataFileError(this.fileName, `--ignore-columns names the label column "${labelName}"; the label cannot be ignored`, line);
    if (features) {
      const used = ignore.filter((c) => features.includes(c));
      if (used.length) throw new DataFileError(this.fileName, `--ignore-columns ${used.join(',')}: the model reads ${used.length === 1 ? 'that column' : 'those columns'}; it cannot be ignored`, line);
      const missing = [...features, ...(labelOptional ? [] : [labelName])].filter((f) => !seen.has(f));
      const others = names.filter((n, i) => i !== this.labelColumn && !features.includes(n) && !ignore.includes(n));
      this.skipped = this.options.skipOtherColumns ? others : [];
      const extra = this.options.skipOtherColumns ? [] : others;
      if (missing.length || extra.length) {
        const from = this.options.featuresFrom ?? 'the training data';
        const parts = [missing.length ? `missing ${missing.map((n) => JSON.stringify(n)).join(', ')}` : '', extra.length ? `unexpected ${extra.map((n) => JSON.stringify(n)).join(', ')}` : ''].filter(Boolean);
        throw new DataFileError(this.fileName, `its columns differ from those of ${from}: ${parts.join('; ')}. It needs the feature columns ${features.map((n) => JSON.stringify(n)).join(', ')}${labelOptional ? '' : ` and the label column "${labelName}"`} (in any order)`, line);
      }
      this.featureNames = [...features];
      this.featureColumns = features.map((f) => seen.get(f)!);
    } else {
      const absent = ignore.filter((c) => !seen.has(c));
      if (absent.length) throw new DataFileError(this.fileName, `--ignore-columns ${absent.join(',')}: no such column; the columns are ${names.map((n) => JSON.stringify(n)).join(', ')}`, line);
      this.featureColumns = names.map((_, i) => i).filter((i) => i !== this.labelColumn && !ignore.includes(names[i]));
      if (this.featureColumns.length === 0) throw new DataFileError(this.fileName, 'no feature columns are left (every column but the label is ignored)', line);
      this.featureNames = this.featureColumns.map((i) => names[i]);
    }
    this.columns = names;
  }

  row(cells: string[], line: number): void {
    const columns = this.columns;
    if (!columns) throw new Error('TableBuilder: header() must come first');
    if (cells.length !== columns.length) {
      // A trailing comma is the usual way to get one cell too many.
      const hint = cells.length === columns.length + 1 && cells[cells.length - 1].trim() === '' ? ' (a trailing comma?)' : '';
      throw new DataFileError(this.fileName, `has ${cells.length} value${cells.length === 1 ? '' : 's'}, the header has ${columns.length} columns${hint}; every row needs one value per column`, line);
    }
    const f = this.featureColumns.length;
    if ((this.count + 1) * f > this.values.length) this.values = grow(this.values, (this.count + 1) * f);
    if (this.count + 1 > this.lines.length) {
      this.lines = grow(this.lines, this.count + 1);
      this.labelIndex = grow(this.labelIndex, this.count + 1);
    }
    const at = this.count * f;
    for (let j = 0; j < f; j++) this.values[at + j] = this.number(cells[this.featureColumns[j]], line, columns[this.featureColumns[j]]);
    if (this.labelColumn >= 0) {
      const label = cells[this.labelColumn].trim();
      if (label === '') throw new DataFileError(this.fileName, 'the label is empty; every row needs a label (drop the row or fill it in)', line, columns[this.labelColumn]);
      let k = this.labels.get(label);
      if (k === undefined) {
        k = this.labels.size;
        this.labels.set(label, k);
      }
      this.labelIndex[this.count] = k;
    }
    this.lines[this.count] = line;
    this.count++;
  }

  private number(cell: string, line: number, column: string): number {
    const s = cell.trim();
    const fail = (detail: string): never => {
      throw new DataFileError(this.fileName, detail, line, column);
    };
    if (s === '') fail('the value is empty (a missing value); fill it in (e.g. with the column mean) or drop the row: bnlab trains on complete rows only');
    if (NON_FINITE.test(s)) fail(`the value is ${s}; features must be finite numbers (fill in or drop the row)`);
    if (!NUMBER.test(s)) fail(`${JSON.stringify(cell)} is not a number; feature columns must be numeric (decimal point ".", no thousands separators). Encode categories as numbers (e.g. one column per category), or leave the column out with --ignore-columns ${/^[\w.-]+$/.test(column) ? column : JSON.stringify(column)}`);
    const v = Number(s);
    if (!Number.isFinite(v) || Math.abs(v) > FLOAT32_MAX) fail(`${s} is outside the range of 32-bit floats (about ±3.4e38); rescale the column`);
    return v;
  }

  finish(): Table {
    if (!this.columns) throw new DataFileError(this.fileName, 'the file is empty; a CSV file needs a header line naming the columns, then one line per example');
    if (this.count === 0) throw new DataFileError(this.fileName, 'the file has a header but no data rows; add one line per example');
    const f = this.featureNames.length;
    return {
      fileName: this.fileName,
      features: this.featureNames,
      label: this.labelColumn >= 0 ? this.columns[this.labelColumn] : null,
      count: this.count,
      values: this.values.slice(0, this.count * f),
      labelStrings: [...this.labels.keys()],
      labelIndex: this.labelIndex.slice(0, this.count),
      lines: this.lines.slice(0, this.count),
      skipped: this.skipped,
    };
  }
}

function grow<T extends Float32Array | Uint32Array>(a: T, need: number): T {
  let n = a.length;
  while (n < need) n *= 2;
  const out = new (a.constructor as new (n: number) => T)(n);
  out.set(a);
  return out;
}

/** Classes in a stable order: numerically when every label is a number ("2" before "10"), else by code point. */
export function sortClassNames(labels: readonly string[]): string[] {
  const numeric = labels.every((l) => NUMBER.test(l));
  return [...labels].sort((a, b) => (numeric ? Number(a) - Number(b) : 0) || (a < b ? -1 : a > b ? 1 : 0));
}

/** True when every label is a plain number: such labels are compared as numbers ("1" and "1.0" are one class). */
export function numericLabels(labels: readonly string[]): boolean {
  return labels.length > 0 && labels.every((l) => NUMBER.test(l.trim()));
}

/** The key two labels share when they are the same class: the number when numbers are compared, else the text. */
function labelKey(label: string, numeric: boolean): string {
  return numeric ? String(Number(label.trim())) : label;
}

/**
 * The class index of a label among `classNames` (a trained model's): by value when the classes and the
 * label are numbers (a model trained on "0.0", "1.0" knows the label "1"), else by exact text.
 */
export function classIndexer(classNames: readonly string[]): (label: string) => number | undefined {
  const numeric = numericLabels(classNames);
  const byText = new Map(classNames.map((c, i) => [c, i]));
  const byNumber = numeric ? new Map(classNames.map((c, i) => [labelKey(c, true), i])) : null;
  return (label) => byText.get(label) ?? (byNumber && NUMBER.test(label.trim()) ? byNumber.get(labelKey(label, true)) : undefined);
}

/** Fewer than two rows per distinct label on average, over more than this many labels: not classes. */
const MIN_LABELS_FOR_NOT_CLASSES = 10;

/**
 * The table as a Dataset of `[features]` samples. Without `classNames` the classes are the table's own
 * labels, sorted (sortClassNames; numbers compared as numbers, each class named as first spelled), and
 * there must be at least two and they must look like classes; with them (the classes of a trained
 * model) each label must be one of them.
 */
export function tableToDataset(table: Table, name: string, classNames?: readonly string[]): Dataset {
  if (table.label === null) throw new DataFileError(table.fileName, 'the file has no label column; it is needed to train and evaluate');
  let classes: string[];
  if (classNames) classes = [...classNames];
  else {
    const numeric = numericLabels(table.labelStrings);
    const spelling = new Map<string, string>();
    for (const l of table.labelStrings) if (!spelling.has(labelKey(l, numeric))) spelling.set(labelKey(l, numeric), l);
    classes = sortClassNames([...spelling.values()]);
    checkLooksLikeClasses(table, classes.length, numeric);
  }
  const indexOf = classIndexer(classes);
  const remap = table.labelStrings.map((l) => indexOf(l));
  const labels = new Uint8Array(table.count);
  for (let i = 0; i < table.count; i++) {
    const k = remap[table.labelIndex[i]];
    if (k === undefined) {
      const label = table.labelStrings[table.labelIndex[i]];
      throw new DataFileError(table.fileName, `label ${JSON.stringify(label)} is not one of the model's classes (${classes.map((c) => JSON.stringify(c)).join(', ')})`, table.lines[i], table.label);
    }
    labels[i] = k;
  }
  return { name, images: table.values, labels, count: table.count, sampleShape: [table.features.length], numClasses: classes.length, classNames: classes };
}

/** Training labels that cannot be classes: one value, a measured quantity (mostly distinct numbers), an identifier, or too many. */
function checkLooksLikeClasses(table: Table, distinct: number, numeric: boolean): void {
  const column = table.label!;
  if (distinct < 2) {
    throw new DataFileError(table.fileName, `the label column "${column}" has only one class (${JSON.stringify(table.labelStrings[0])}) in ${table.count} rows; a classifier needs at least two. Check --label names the right column`);
  }
  if (distinct > MIN_LABELS_FOR_NOT_CLASSES && distinct * 2 > table.count) {
    const what = numeric ? 'a regression target (a measured quantity)' : 'an identifier or free text';
    throw new DataFileError(table.fileName, `the label column "${column}" looks like ${what}, not classes: ${distinct} distinct values in ${table.count} rows. bnlab classifies: each class needs several rows. Choose the column of classes with --label NAME${numeric ? ', or bin the values into a few classes (e.g. low, medium, high)' : ''}`);
  }
  if (distinct > MAX_CLASSES) {
    throw new DataFileError(table.fileName, `the label column "${column}" has ${distinct} distinct values, more than the ${MAX_CLASSES} classes bnlab supports; bnlab classifies, so the label must be a class (if "${column}" is a measured quantity, this is a regression problem), or choose another column with --label NAME`);
  }
}
