/**
 * The IDX file format used by MNIST (http://yann.lecun.com/exdb/mnist/): a 4-byte magic number
 * (two zero bytes, a type code, the number of dimensions), then each dimension as a big-endian
 * uint32, then the data in row-major order. Only type 0x08 (unsigned byte) is supported, which is
 * what every MNIST-style dataset uses. Browser-safe.
 */

/** A parsed IDX file. */
export interface IdxData {
  /** Dimensions, outermost first, e.g. `[60000, 28, 28]`. */
  dims: number[];
  /** `prod(dims)` bytes, row-major. */
  data: Uint8Array;
}

/** What is wrong with a malformed IDX file; also the second part of the error message. */
export type IdxDefect = 'too short' | 'bad magic' | 'unsupported type' | 'bad dimension count' | 'bad dimension' | 'too large' | 'truncated' | 'too long';

/**
 * A file is not valid IDX. The message reads `<file>: <defect>: <what was found and expected>`,
 * e.g. `train-images-idx3-ubyte: truncated: header says 60000x28x28 = 47040000 bytes of data, file
 * has 1000 bytes after the 16-byte header`.
 */
export class IdxFormatError extends Error {
  override readonly name = 'IdxFormatError';
  constructor(
    readonly fileName: string,
    readonly defect: IdxDefect,
    detail: string,
  ) {
    super(`${fileName}: ${defect}: ${detail}`);
  }
}

const UBYTE = 0x08;
const MAX_DIMS = 4;
/** Beyond this a typed array can't hold the data anyway; a larger product means a corrupt header. */
const MAX_ELEMENTS = 2 ** 31;

const TYPE_NAMES: Record<number, string> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

function hex(b: number): string {
  return '0x' + b.toString(16).padStart(2, '0');
}

/**
 * Parse an IDX file of unsigned bytes. The whole header and the file length are validated before
 * anything is allocated, so a corrupt header can't trigger a huge allocation. Throws
 * `IdxFormatError` naming `fileName`, the defect and what was expected.
 *
 * `data` is a view into `bytes` (no copy).
 */
export function parseIdx(bytes: Uint8Array, fileName: string): IdxData {
  const fail = (defect: IdxDefect, detail: string): never => {
    throw new IdxFormatError(fileName, defect, detail);
  };
  if (bytes.length < 4) fail('too short', `file has ${bytes.length} bytes, an IDX header needs at least 4`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    // gzip is the usual culprit: MNIST is distributed as .gz.
    const hint = bytes[0] === 0x1f && bytes[1] === 0x8b ? ' (this looks like a gzip file; decompress it first)' : '';
    fail('bad magic', `first two bytes are ${hex(bytes[0])} ${hex(bytes[1])}, expected 0x00 0x00${hint}`);
  }
  const type = bytes[2];
  if (type !== UBYTE) {
    const known = TYPE_NAMES[type] ? ` (${TYPE_NAMES[type]})` : '';
    fail('unsupported type', `type code ${hex(type)}${known}, expected ${hex(UBYTE)} (unsigned byte)`);
  }
  const ndims = bytes[3];
  if (ndims < 1 || ndims > MAX_DIMS) fail('bad dimension count', `header says ${ndims} dimensions, expected 1 to ${MAX_DIMS}`);
  const headerLen = 4 + 4 * ndims;
  if (bytes.length < headerLen) fail('too short', `${ndims} dimensions need a ${headerLen}-byte header, file has ${bytes.length} bytes`);

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let product = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    if (d === 0) fail('bad dimension', `dimension ${i + 1} of ${ndims} is 0, expected at least 1`);
    dims.push(d);
    product *= d; // at most 2^128: a double, inexact but fine for the limit check below
  }
  const dimsText = dims.join('x');
  if (product > MAX_ELEMENTS) fail('too large', `header says ${dimsText} = ${product} elements, more than the 2^31 limit (corrupt header?)`);

  const have = bytes.length - headerLen;
  if (have < product) fail('truncated', `header says ${dimsText} = ${product} bytes of data, file has ${have} bytes after the ${headerLen}-byte header`);
  if (have > product) {
    fail('too long', `header says ${dimsText} = ${product} bytes of data, file has ${have} bytes after the ${headerLen}-byte header (${have - product} extra)`);
  }
  return { dims, data: bytes.subarray(headerLen) };
}

/** Encode bytes as an IDX file of type 0x08 (the inverse of `parseIdx`). */
export function encodeIdx(dims: readonly number[], data: ArrayLike<number>): Uint8Array {
  if (dims.length < 1 || dims.length > MAX_DIMS) throw new Error(`encodeIdx: ${dims.length} dimensions, expected 1 to ${MAX_DIMS}`);
  let product = 1;
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 1 || d > 0xffffffff) throw new Error(`encodeIdx: dimensions must be integers in [1, 2^32), got [${dims.join(', ')}]`);
    product *= d;
  }
  if (data.length !== product) throw new Error(`encodeIdx: dims ${dims.join('x')} need ${product} values, got ${data.length}`);
  const headerLen = 4 + 4 * dims.length;
  const out = new Uint8Array(headerLen + product);
  out[2] = UBYTE;
  out[3] = dims.length;
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  if (data instanceof Uint8Array) {
    out.set(data, headerLen); // already bytes: nothing to check
    return out;
  }
  for (let i = 0; i < product; i++) {
    const v = data[i];
    // Uint8Array would silently wrap 256 to 0; refuse instead.
    if (!Number.isInteger(v) || v < 0 || v > 255) throw new Error(`encodeIdx: value ${v} at index ${i} is not a byte (integer 0..255)`);
    out[headerLen + i] = v;
  }
  return out;
}
