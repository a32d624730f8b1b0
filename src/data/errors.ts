/**
 * The error a data file the user brought gets (CSV, IDX directory, image folders). The message names the
 * file, where in it (line as an editor shows it, 1-based; column by its header name) and the problem with
 * its fix: `data.csv, line 7, column "pressure": "n/a" is not a number; ...`. Browser-safe.
 */
export class DataFileError extends Error {
  override readonly name = 'DataFileError';
  constructor(
    readonly fileName: string,
    detail: string,
    readonly line?: number,
    readonly column?: string,
  ) {
    super(`${fileName}${line !== undefined ? `, line ${line}` : ''}${column !== undefined ? `, column ${JSON.stringify(column)}` : ''}: ${detail}`);
  }
}
