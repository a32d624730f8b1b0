/**
 * The errors a damaged, hostile or mistaken file gets. Each names the file, the defect (a short fixed
 * phrase, also the `defect` field, so code can branch on it) and what was found versus expected:
 * `runs/a/model.safetensors: offsets outside the data: tensor "0.weight" ends at byte 4096, the data
 * section has 1024 bytes`. Parsers throw nothing else for bad input. Browser-safe.
 */

/** What is wrong with a model file (model.json, model.safetensors, a checkpoint, an ONNX export request). */
export type ModelFileDefect =
  | 'not found'
  | 'unreadable'
  | 'too short'
  | 'header length beyond the file'
  | 'header too large'
  | 'header not UTF-8'
  | 'header not JSON'
  | 'bad header'
  | 'unknown dtype'
  | 'unsupported dtype'
  | 'bad shape'
  | 'offsets outside the data'
  | 'overlapping tensors'
  | 'gap in the data'
  | 'size mismatch'
  | 'missing tensor'
  | 'unexpected tensor'
  | 'shape mismatch'
  | 'non-finite values'
  | 'not JSON'
  | 'wrong format'
  | 'wrong format version'
  | 'bad field'
  | 'unknown layer'
  | 'bad layer'
  | 'too large'
  | 'bad training state'
  | 'not exportable';

/** A model file is damaged, hostile or does not fit the architecture. Message: `<file>: <defect>: <detail>`. */
export class ModelFileError extends Error {
  override readonly name = 'ModelFileError';
  constructor(
    readonly fileName: string,
    readonly defect: ModelFileDefect,
    detail: string,
  ) {
    super(`${fileName}: ${defect}: ${detail}`);
  }
}

/** What is wrong with an input image. */
export type ImageFileDefect = 'not found' | 'unreadable' | 'not a PNG' | 'truncated' | 'bad header' | 'wrong size' | 'too large' | 'corrupt data';

/** An image file cannot be used as model input. Message: `<file>: <defect>: <detail>`. */
export class ImageFileError extends Error {
  override readonly name = 'ImageFileError';
  constructor(
    readonly fileName: string,
    readonly defect: ImageFileDefect,
    detail: string,
  ) {
    super(`${fileName}: ${defect}: ${detail}`);
  }
}
