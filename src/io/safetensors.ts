/**
 * The safetensors format (Hugging Face; what PyTorch users save state dicts in), read and written from
 * bytes. Browser-safe.
 *
 * Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON, then the data section.
 * The JSON maps each tensor name to { "dtype": "F32", "shape": [16, 20], "data_offsets": [begin, end] }
 * (byte offsets into the data section, little-endian, row-major) plus an optional "__metadata__"
 * object of string values. The data section must be covered exactly: no overlaps, no gaps.
 *
 * `parseSafetensors` checks every one of those rules against the real file length before it allocates
 * anything, so a header that lies (a length past the end of the file, offsets outside the data, a shape
 * bigger than its bytes) gets a ModelFileError, never a huge allocation or a half-read model.
 */
import { ModelFileError } from './errors.js';

/** Every dtype the format defines. The ones in DTYPE_SIZES can be read; the others get "unsupported dtype". */
export type Dtype = 'BOOL' | 'U8' | 'I8' | 'I16' | 'U16' | 'F16' | 'BF16' | 'I32' | 'U32' | 'F32' | 'F64' | 'I64' | 'U64';

const DTYPE_SIZES: Record<Dtype, number> = { BOOL: 1, U8: 1, I8: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8 };
/** Defined by the format but not readable here (8-, 6- and 4-bit floats, complex numbers). */
const KNOWN_UNSUPPORTED = new Set(['F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4', 'C64']);

/** The safetensors reference implementation refuses headers above 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000;
const MAX_RANK = 8;

/** One tensor's entry in the header, checked against the file. */
export interface SafetensorsEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte range [begin, end) in the data section. */
  begin: number;
  end: number;
}

/** A parsed and validated safetensors file. Tensor data is read on demand with `readFloat32`. */
export interface SafetensorsFile {
  fileName: string;
  metadata: Record<string, string>;
  /** Entries in header order. */
  entries: Map<string, SafetensorsEntry>;
  /** The data section (a view into the bytes given to `parseSafetensors`). */
  data: Uint8Array;
}

/** A tensor to write. Values are converted to `dtype` (integers are rounded; F32 rounds doubles). */
export interface TensorToWrite {
  name: string;
  dtype: 'F32' | 'F64' | 'I64';
  shape: readonly number[];
  data: ArrayLike<number>;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Parse and validate a safetensors file. Throws ModelFileError (naming `fileName`) for: a file shorter
 * than 8 bytes, a header length beyond the file or above 100 MB, a header that is not UTF-8 or not a JSON
 * object, a malformed entry, an unknown or unsupported dtype, a bad shape, offsets outside the data,
 * overlapping tensors, a gap or trailing bytes in the data section, and a shape whose size in bytes is
 * not its byte range's length.
 */
export function parseSafetensors(bytes: Uint8Array, fileName: string): SafetensorsFile {
  const fail = (defect: ConstructorParameters<typeof ModelFileError>[1], detail: string): never => {
    throw new ModelFileError(fileName, defect, detail);
  };
  if (bytes.length < 8) fail('too short', `file has ${bytes.length} bytes, a safetensors file starts with an 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // u64 as two u32 halves: a double holds any value we could accept exactly, and a huge one still compares right.
  const headerLen = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  if (headerLen > bytes.length - 8) {
    fail('header length beyond the file', `the first 8 bytes say the JSON header has ${headerLen} bytes, but only ${bytes.length - 8} bytes follow (truncated file, or not safetensors)`);
  }
  if (headerLen > MAX_HEADER_BYTES) fail('header too large', `the JSON header has ${headerLen} bytes, more than the ${MAX_HEADER_BYTES}-byte limit`);
  if (headerLen < 2) fail('bad header', `the JSON header has ${headerLen} bytes; it must hold at least "{}"`);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
  } catch {
    return fail('header not UTF-8', `the ${headerLen}-byte header is not valid UTF-8 (not a safetensors file?)`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail('header not JSON', `${(e as Error).message}; header starts ${JSON.stringify(text.slice(0, 40))}`);
  }
  if (!isPlainObject(header)) fail('bad header', `the header must be a JSON object of tensors, got ${describeJson(header)}`);

  const data = bytes.subarray(8 + headerLen);
  const metadata: Record<string, string> = {};
  const entries = new Map<string, SafetensorsEntry>();
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!isPlainObject(raw)) fail('bad header', `"__metadata__" must be an object of strings, got ${describeJson(raw)}`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail('bad header', `"__metadata__.${k}" must be a string, got ${describeJson(v)}`);
        metadata[k] = v as string;
      }
      continue;
    }
    entries.set(name, checkEntry(name, raw, data.length, fail));
  }

  // Sorted by offset the entries must tile the data section exactly.
  const sorted = [...entries.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let previous: SafetensorsEntry | null = null;
  for (const e of sorted) {
    if (e.begin < at) fail('overlapping tensors', `"${e.name}" (bytes ${e.begin}-${e.end}) overlaps "${previous!.name}" (bytes ${previous!.begin}-${previous!.end})`);
    if (e.begin > at) fail('gap in the data', `bytes ${at}-${e.begin} of the data section belong to no tensor (before "${e.name}")`);
    at = e.end;
    previous = e;
  }
  if (at !== data.length) fail('gap in the data', `the tensors cover ${at} bytes but the data section has ${data.length} (${data.length - at} trailing bytes)`);
  return { fileName, metadata, entries, data };
}

function checkEntry(name: string, raw: unknown, dataLength: number, fail: (d: 'bad header' | 'unknown dtype' | 'unsupported dtype' | 'bad shape' | 'offsets outside the data' | 'size mismatch', detail: string) => never): SafetensorsEntry {
  const label = `tensor "${name}"`;
  if (!isPlainObject(raw)) fail('bad header', `${label} must be an object { dtype, shape, data_offsets }, got ${describeJson(raw)}`);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string') fail('bad header', `${label} has no string "dtype" (got ${describeJson(dtype)})`);
  if (!Object.hasOwn(DTYPE_SIZES, dtype as string)) {
    if (KNOWN_UNSUPPORTED.has(dtype as string)) fail('unsupported dtype', `${label} has dtype ${dtype}; bnlab reads F32, F64, F16, BF16 and integer tensors. Convert it to F32 before saving`);
    fail('unknown dtype', `${label} has dtype ${JSON.stringify(dtype)}, which is not a safetensors dtype (expected one of ${Object.keys(DTYPE_SIZES).join(', ')})`);
  }
  if (!Array.isArray(shape)) fail('bad header', `${label} has no "shape" array (got ${describeJson(shape)})`);
  const dims = shape as unknown[];
  if (dims.length > MAX_RANK) fail('bad shape', `${label} has ${dims.length} dimensions, at most ${MAX_RANK} are supported`);
  let count = 1;
  for (const d of dims) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) fail('bad shape', `${label} has shape ${JSON.stringify(shape)}; dimensions must be non-negative integers`);
    count *= d as number; // may exceed 2^53 for a lying header: it then fails the size check below
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)) {
    fail('bad header', `${label} needs "data_offsets": [begin, end] of non-negative integers, got ${describeJson(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail('offsets outside the data', `${label} begins at byte ${begin} after it ends (${end})`);
  if (end > dataLength) fail('offsets outside the data', `${label} ends at byte ${end}, the data section has ${dataLength} bytes`);
  const size = DTYPE_SIZES[dtype as Dtype];
  if (count * size !== end - begin) {
    fail('size mismatch', `${label}: shape ${JSON.stringify(shape)} of ${dtype} needs ${count * size} bytes, its data_offsets [${begin}, ${end}] hold ${end - begin}`);
  }
  return { name, dtype: dtype as Dtype, shape: dims as number[], begin, end };
}

/** Number of values of an entry. */
export function entrySize(entry: SafetensorsEntry): number {
  return (entry.end - entry.begin) / DTYPE_SIZES[entry.dtype];
}

/**
 * One tensor's values as float32, whatever its dtype (F64 is rounded, F16/BF16 widened, integers
 * converted). Allocates exactly the entry's (validated) size.
 */
export function readFloat32(file: SafetensorsFile, name: string): Float32Array {
  const e = file.entries.get(name);
  if (!e) throw new ModelFileError(file.fileName, 'missing tensor', `no tensor "${name}"`);
  const n = entrySize(e);
  const out = new Float32Array(n);
  const bytes = file.data.subarray(e.begin, e.end);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (e.dtype) {
    case 'F32':
      if (LITTLE_ENDIAN_HOST) out.set(new Float32Array(bytes.slice().buffer)); // slice: the file may put it at any alignment
      else for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) out[i] = bfloat16ToFloat(view.getUint16(2 * i, true));
      break;
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(view.getBigInt64(8 * i, true));
      break;
    case 'U64':
      for (let i = 0; i < n; i++) out[i] = Number(view.getBigUint64(8 * i, true));
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = view.getInt32(4 * i, true);
      break;
    case 'U32':
      for (let i = 0; i < n; i++) out[i] = view.getUint32(4 * i, true);
      break;
    case 'I16':
      for (let i = 0; i < n; i++) out[i] = view.getInt16(2 * i, true);
      break;
    case 'U16':
      for (let i = 0; i < n; i++) out[i] = view.getUint16(2 * i, true);
      break;
    case 'I8':
      for (let i = 0; i < n; i++) out[i] = view.getInt8(i);
      break;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = bytes[i];
      break;
  }
  return out;
}

/**
 * Write tensors as a safetensors file, in the given order, with `metadata` as "__metadata__". The
 * header is padded with spaces to a multiple of 8 bytes, as the reference implementation does, so the
 * data section is aligned for every dtype.
 */
export function encodeSafetensors(tensors: readonly TensorToWrite[], metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__' || seen.has(t.name)) throw new Error(`encodeSafetensors: tensor name "${t.name}" is reserved or used twice`);
    seen.add(t.name);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`encodeSafetensors: "${t.name}" has shape [${t.shape.join(', ')}] (${count} values) but ${t.data.length} values`);
    const size = count * DTYPE_SIZES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, json.length, true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of tensors) {
    const n = t.data.length;
    if (t.dtype === 'F32') {
      if (LITTLE_ENDIAN_HOST) new Float32Array(out.buffer, at, n).set(t.data); // `at` is 8-aligned: the header is padded
      else for (let i = 0; i < n; i++) view.setFloat32(at + 4 * i, t.data[i], true);
      at += 4 * n;
    } else if (t.dtype === 'F64') {
      for (let i = 0; i < n; i++) view.setFloat64(at + 8 * i, t.data[i], true);
      at += 8 * n;
    } else {
      for (let i = 0; i < n; i++) view.setBigInt64(at + 8 * i, BigInt(Math.round(t.data[i])), true);
      at += 8 * n;
    }
  }
  return out;
}

/** IEEE 754 half precision to a number. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** bfloat16 is the top half of a float32. */
const bf16Scratch = new DataView(new ArrayBuffer(4));
function bfloat16ToFloat(b: number): number {
  bf16Scratch.setUint32(0, b << 16);
  return bf16Scratch.getFloat32(0);
}

function isPlainObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A short description of a JSON value for error messages (never the whole value). */
export function describeJson(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v) ?? String(v);
  if (s.length <= 60) return s;
  return Array.isArray(v) ? `an array of ${v.length}` : `${s.slice(0, 57)}...`;
}
