/**
 * Every hostile file the io tests try, with the error it must get. test/io-hostile.test.ts asserts each
 * one; `npx tsx test/support/io-hostile-cases.ts` prints the table of cases and the messages they get.
 */
import { PNG } from 'pngjs';
import * as zlib from 'node:zlib';
import { IdxFormatError, encodeIdx, parseIdx } from '../../src/data/idx.js';
import { ImageFileError, ModelFileError } from '../../src/io/errors.js';
import { decodeModel, encodeModel, parseModelJson } from '../../src/io/model-file.js';
import { decodePngGray } from '../../src/io/node-png.js';
import { encodeSafetensors, parseSafetensors } from '../../src/io/safetensors.js';
import { buildSequential, type LayerSpec } from '../../src/nn/registry.js';
import { Rng } from '../../src/tensor/rng.js';

export interface HostileCase {
  parser: 'safetensors' | 'model.json' | 'model files' | 'IDX' | 'PNG';
  name: string;
  /** The error class and `defect` the case must get. */
  errorClass: typeof ModelFileError | typeof ImageFileError | typeof IdxFormatError;
  defect: string;
  run(): unknown;
}

// ---- helpers -----------------------------------------------------------------------------------

/** A safetensors file from a header object (or raw header text) and data bytes; `length` overrides the u64. */
export function rawSafetensors(header: unknown, data: Uint8Array = new Uint8Array(0), length?: bigint): Uint8Array {
  const json = typeof header === 'string' ? new TextEncoder().encode(header) : new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const f32 = (n: number) => new Uint8Array(4 * n);
const entry = (dtype: string, shape: number[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });

export const SMALL_LAYERS: LayerSpec[] = [
  { type: 'Linear', inFeatures: 4, outFeatures: 3 },
  { type: 'BatchNorm1d', numFeatures: 3 },
  { type: 'Sigmoid' },
  { type: 'Linear', inFeatures: 3, outFeatures: 2 },
];

/** A valid small model's files (model.json text and safetensors bytes), trained for one step so the BN count is 1. */
export function smallModelFiles(): { modelJson: string; safetensors: Uint8Array } {
  const model = buildSequential(SMALL_LAYERS, { rng: new Rng(3) });
  const bn = model.layers[1] as unknown as { numBatchesTrackedTensor: { data: Float32Array }; runningVar: { data: Float32Array } };
  bn.numBatchesTrackedTensor.data[0] = 1;
  bn.runningVar.data.fill(0.1);
  return encodeModel(model, { inputShape: [4] });
}

/** The small model's safetensors with one tensor changed (or removed with `null`, or added). */
function withTensor(name: string, change: { shape: number[]; values: number[]; dtype?: 'F32' | 'I64' } | null): Uint8Array {
  const file = parseSafetensors(smallModelFiles().safetensors, 'x');
  const tensors: Array<{ name: string; dtype: 'F32' | 'I64'; shape: number[]; data: ArrayLike<number> }> = [];
  let found = false;
  for (const [n, e] of file.entries) {
    if (n === name) {
      found = true;
      if (change) tensors.push({ name, dtype: change.dtype ?? 'F32', shape: change.shape, data: change.values });
      continue;
    }
    const view = new DataView(file.data.buffer, file.data.byteOffset + e.begin, e.end - e.begin);
    const values = e.dtype === 'I64' ? [Number(view.getBigInt64(0, true))] : Array.from({ length: (e.end - e.begin) / 4 }, (_, i) => view.getFloat32(4 * i, true));
    tensors.push({ name: n, dtype: e.dtype as 'F32' | 'I64', shape: e.shape, data: values });
  }
  if (!found && change) tensors.push({ name, dtype: change.dtype ?? 'F32', shape: change.shape, data: change.values });
  return encodeSafetensors(tensors, { format: 'pt' });
}

function modelJsonWith(change: (json: Record<string, any>) => void): string {
  const json = JSON.parse(smallModelFiles().modelJson);
  change(json);
  return JSON.stringify(json);
}

/** A valid PNG of `width`×`height` gray pixels. */
export function pngBytes(width: number, height: number, options: { colorType?: 0 | 2 | 4 | 6; bitDepth?: 8 | 16; fill?: (x: number, y: number) => number } = {}): Uint8Array {
  const png = new PNG({ width, height, colorType: options.colorType ?? 6, inputColorType: 6, bitDepth: options.bitDepth ?? 8, inputHasAlpha: true });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = options.fill ? options.fill(x, y) : (x * 9 + y * 5) % 256;
      png.data.set([v, v, v, 255], 4 * (y * width + x));
    }
  }
  const buf = PNG.sync.write(png, { colorType: options.colorType ?? 6, bitDepth: options.bitDepth ?? 8 });
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** A PNG assembled from chunks, with correct CRCs (so only the defect under test is wrong). */
export function pngFromChunks(chunks: Array<[string, Uint8Array]>): Uint8Array {
  const parts: Uint8Array[] = [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])];
  for (const [type, data] of chunks) {
    const chunk = new Uint8Array(12 + data.length);
    const view = new DataView(chunk.buffer);
    view.setUint32(0, data.length);
    chunk.set(new TextEncoder().encode(type), 4);
    chunk.set(data, 8);
    view.setUint32(8 + data.length, crc32(chunk.subarray(4, 8 + data.length)));
    parts.push(chunk);
  }
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

export function ihdr(width: number, height: number, depth = 8, colorType = 0, interlace = 0): Uint8Array {
  const d = new Uint8Array(13);
  const v = new DataView(d.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  d.set([depth, colorType, 0, 0, interlace], 8);
  return d;
}

const EXPECTED = { width: 28, height: 28 };
const png = (bytes: Uint8Array) => () => decodePngGray(bytes, 'hostile.png', EXPECTED);
const st = (bytes: Uint8Array) => () => parseSafetensors(bytes, 'hostile.safetensors');
const mj = (text: string | Uint8Array) => () => parseModelJson(text, 'model.json');
const files = (modelJson: string, safetensors: Uint8Array) => () => decodeModel({ modelJson, safetensors, modelJsonName: 'model.json', safetensorsName: 'model.safetensors' });
const idx = (bytes: Uint8Array) => () => parseIdx(bytes, 'hostile-idx3-ubyte');

function idxHeader(type: number, dims: number[], dataBytes: number): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + dataBytes);
  out[2] = type;
  out[3] = dims.length;
  const v = new DataView(out.buffer);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d));
  return out;
}

const S = (name: string, defect: string, run: () => unknown): HostileCase => ({ parser: 'safetensors', name, errorClass: ModelFileError, defect, run });
const J = (name: string, defect: string, run: () => unknown): HostileCase => ({ parser: 'model.json', name, errorClass: ModelFileError, defect, run });
const M = (name: string, defect: string, run: () => unknown): HostileCase => ({ parser: 'model files', name, errorClass: ModelFileError, defect, run });
const I = (name: string, defect: string, run: () => unknown): HostileCase => ({ parser: 'IDX', name, errorClass: IdxFormatError, defect, run });
const P = (name: string, defect: string, run: () => unknown): HostileCase => ({ parser: 'PNG', name, errorClass: ImageFileError, defect, run });

// ---- the cases ---------------------------------------------------------------------------------

export function hostileCases(): HostileCase[] {
  const good = smallModelFiles();
  const goodPng = pngBytes(28, 28);
  const idat = (raw: Uint8Array) => new Uint8Array(zlib.deflateSync(raw));
  const rawGray = new Uint8Array(28 * 29); // 28 rows of filter byte 0 + 28 pixels
  return [
    S('empty file', 'too short', st(new Uint8Array(0))),
    S('7 bytes', 'too short', st(new Uint8Array(7))),
    S('header length 2^40 in a 100-byte file', 'header length beyond the file', st(rawSafetensors({}, new Uint8Array(90), 2n ** 40n))),
    S('header length 2^64-1', 'header length beyond the file', st(rawSafetensors({}, new Uint8Array(0), 2n ** 64n - 1n))),
    S('header length one past the end', 'header length beyond the file', st(rawSafetensors('{}', new Uint8Array(0), 3n))),
    S('header length 0', 'bad header', st(rawSafetensors('', new Uint8Array(0)))),
    S('header bytes not UTF-8', 'header not UTF-8', st(rawSafetensors('{}').map((b, i) => (i >= 8 ? 0xff : b)))),
    S('header is not JSON', 'header not JSON', st(rawSafetensors('{"a": [1, 2'))),
    S('header is a JSON array', 'bad header', st(rawSafetensors([1, 2, 3]))),
    S('header is null', 'bad header', st(rawSafetensors('null'))),
    S('tensor entry is a number', 'bad header', st(rawSafetensors({ w: 5 }))),
    S('dtype missing', 'bad header', st(rawSafetensors({ w: { shape: [1], data_offsets: [0, 4] } }, f32(1)))),
    S('dtype "F128"', 'unknown dtype', st(rawSafetensors({ w: entry('F128', [1], 0, 16) }, new Uint8Array(16)))),
    S('dtype "toString" (a prototype key)', 'unknown dtype', st(rawSafetensors({ w: entry('toString', [1], 0, 4) }, f32(1)))),
    S('dtype F8_E4M3 (known, unsupported)', 'unsupported dtype', st(rawSafetensors({ w: entry('F8_E4M3', [4], 0, 4) }, f32(1)))),
    S('shape is a string', 'bad header', st(rawSafetensors({ w: entry('F32', 'abc' as unknown as number[], 0, 4) }, f32(1)))),
    S('negative dimension', 'bad shape', st(rawSafetensors({ w: entry('F32', [-1], 0, 4) }, f32(1)))),
    S('fractional dimension', 'bad shape', st(rawSafetensors({ w: entry('F32', [1.5], 0, 4) }, f32(1)))),
    S('9 dimensions', 'bad shape', st(rawSafetensors({ w: entry('F32', [1, 1, 1, 1, 1, 1, 1, 1, 1], 0, 4) }, f32(1)))),
    S('data_offsets missing', 'bad header', st(rawSafetensors({ w: { dtype: 'F32', shape: [1] } }, f32(1)))),
    S('data_offsets of 3 numbers', 'bad header', st(rawSafetensors({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] } }, f32(1)))),
    S('begin after end', 'offsets outside the data', st(rawSafetensors({ w: entry('F32', [1], 8, 4) }, f32(2)))),
    S('end past the data section', 'offsets outside the data', st(rawSafetensors({ w: entry('F32', [4], 0, 16) }, f32(2)))),
    S('end at 10^15', 'offsets outside the data', st(rawSafetensors({ w: entry('F32', [250e12], 0, 1e15) }, f32(2)))),
    S('two tensors overlapping', 'overlapping tensors', st(rawSafetensors({ a: entry('F32', [4], 0, 16), b: entry('F32', [4], 8, 24) }, f32(6)))),
    S('two tensors on the same bytes', 'overlapping tensors', st(rawSafetensors({ a: entry('F32', [2], 0, 8), b: entry('F32', [2], 0, 8) }, f32(2)))),
    S('gap between tensors', 'gap in the data', st(rawSafetensors({ a: entry('F32', [2], 0, 8), b: entry('F32', [2], 16, 24) }, f32(6)))),
    S('trailing bytes after the last tensor', 'gap in the data', st(rawSafetensors({ a: entry('F32', [2], 0, 8) }, f32(3)))),
    S('shape needs more bytes than its range', 'size mismatch', st(rawSafetensors({ a: entry('F32', [4], 0, 8) }, f32(2)))),
    S('shape [2^31, 2^31] on 16 bytes (allocation bait)', 'size mismatch', st(rawSafetensors({ a: entry('F32', [2 ** 31, 2 ** 31], 0, 16) }, f32(4)))),
    S('__metadata__ is an array', 'bad header', st(rawSafetensors({ __metadata__: [1] }))),
    S('__metadata__ value is a number', 'bad header', st(rawSafetensors({ __metadata__: { format: 1 } }))),
    S('valid file cut in the data section', 'header length beyond the file', st(good.safetensors.subarray(0, 60))),
    S('valid file with its last 4 bytes cut', 'offsets outside the data', st(good.safetensors.subarray(0, good.safetensors.length - 4))),

    M('tensor missing', 'missing tensor', files(good.modelJson, withTensor('0.bias', null))),
    M('num_batches_tracked missing with biasCorrection on', 'missing tensor', files(good.modelJson, withTensor('1.num_batches_tracked', null))),
    M('extra tensor', 'unexpected tensor', files(good.modelJson, withTensor('9.weight', { shape: [1], values: [1] }))),
    M('weight shape disagrees with the architecture', 'shape mismatch', files(good.modelJson, withTensor('0.weight', { shape: [4, 3], values: new Array(12).fill(0) }))),
    M('weight transposed', 'shape mismatch', files(good.modelJson, withTensor('3.weight', { shape: [3, 2], values: new Array(6).fill(0) }))),
    M('NaN weight', 'non-finite values', files(good.modelJson, withTensor('0.weight', { shape: [3, 4], values: [0, 0, 0, 0, 0, NaN, 0, 0, 0, 0, 0, 0] }))),
    M('Infinity in running_var', 'non-finite values', files(good.modelJson, withTensor('1.running_var', { shape: [3], values: [1, Infinity, 1] }))),
    M('negative num_batches_tracked', 'bad field', files(good.modelJson, withTensor('1.num_batches_tracked', { shape: [], values: [-3], dtype: 'I64' }))),
    M('model.json says 5 inputs, weights have 4', 'shape mismatch', files(modelJsonWith((j) => {
      j.inputShape = [5];
      j.layers[0].inFeatures = 5;
    }), good.safetensors)),
    M('model.json claims Linear 4096x2048 (32 MB) over a 3x4 weight', 'shape mismatch', files(modelJsonWith((j) => {
      j.layers[0] = { type: 'Linear', inFeatures: 2048, outFeatures: 4096 };
    }), good.safetensors)),
    M('model.json claims Conv2d 1024x1024x7x7 over a Linear weight', 'shape mismatch', files(modelJsonWith((j) => {
      j.layers[0] = { type: 'Conv2d', inChannels: 1024, outChannels: 1024, kernelSize: 7 };
    }), good.safetensors)),
    M('no model.json and no architecture', 'not found', () => decodeModel({ safetensors: good.safetensors })),

    J('not JSON', 'not JSON', mj('{"format": "bnlab-model",')),
    J('invalid UTF-8', 'not JSON', mj(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))),
    J('JSON array', 'wrong format', mj('[1, 2]')),
    J('format missing', 'wrong format', mj(modelJsonWith((j) => delete j.format))),
    J('another format', 'wrong format', mj(modelJsonWith((j) => (j.format = 'keras')))),
    J('format version 3 (newer)', 'wrong format version', mj(modelJsonWith((j) => (j.formatVersion = 3)))),
    J('preprocessing with a zero std', 'bad field', mj(modelJsonWith((j) => ((j.formatVersion = 2), (j.preprocessing = { version: 1, source: 'csv', standardize: { per: 'feature', mean: [0, 0, 0, 0], std: [1, 0, 1, 1] } }))))),
    J('preprocessing with 3 means for 4 inputs', 'bad field', mj(modelJsonWith((j) => ((j.formatVersion = 2), (j.preprocessing = { version: 1, source: 'csv', standardize: { per: 'feature', mean: [0, 0, 0], std: [1, 1, 1] } }))))),
    J('preprocessing naming 2 columns for 4 inputs', 'bad field', mj(modelJsonWith((j) => ((j.formatVersion = 2), (j.preprocessing = { version: 1, source: 'csv', features: ['a', 'b'] }))))),
    J('format version 0', 'wrong format version', mj(modelJsonWith((j) => (j.formatVersion = 0)))),
    J('format version "1" (a string)', 'wrong format version', mj(modelJsonWith((j) => (j.formatVersion = '1')))),
    J('inputShape missing', 'bad field', mj(modelJsonWith((j) => delete j.inputShape))),
    J('inputShape [-1]', 'bad field', mj(modelJsonWith((j) => (j.inputShape = [-1])))),
    J('inputShape [0]', 'bad field', mj(modelJsonWith((j) => (j.inputShape = [0])))),
    J('inputShape [4096, 4096, 4096]', 'too large', mj(modelJsonWith((j) => (j.inputShape = [4096, 4096, 4096])))),
    J('inputShape with 5 dimensions', 'bad field', mj(modelJsonWith((j) => (j.inputShape = [1, 1, 1, 1, 1])))),
    J('layers empty', 'bad field', mj(modelJsonWith((j) => (j.layers = [])))),
    J('layers an object', 'bad field', mj(modelJsonWith((j) => (j.layers = { type: 'Linear' })))),
    J('1001 layers', 'too large', mj(modelJsonWith((j) => (j.layers = new Array(1001).fill({ type: 'ReLU' }))))),
    J('unknown layer type', 'unknown layer', mj(modelJsonWith((j) => (j.layers[2] = { type: 'Attention', heads: 8 })))),
    J('layer without type', 'bad layer', mj(modelJsonWith((j) => (j.layers[2] = { numFeatures: 3 })))),
    J('layer type "__proto__"', 'unknown layer', mj(modelJsonWith((j) => (j.layers[2] = { type: '__proto__' })))),
    J('size 1e400 (Infinity after parsing)', 'bad layer', mj(good.modelJson.replace('"outFeatures": 3', '"outFeatures": 1e400'))),
    J('Linear 2^20 x 2^20 (absurd size)', 'too large', mj(modelJsonWith((j) => (j.layers[0] = { type: 'Linear', inFeatures: 2 ** 20, outFeatures: 2 ** 20 })))),
    J('batchNorm settings missing', 'bad field', mj(modelJsonWith((j) => delete j.batchNorm))),
    J('biasCorrection "yes"', 'bad field', mj(modelJsonWith((j) => (j.batchNorm.biasCorrection = 'yes')))),
    J('preset is a number', 'bad field', mj(modelJsonWith((j) => (j.preset = 7)))),
    J('classNames not strings', 'bad field', mj(modelJsonWith((j) => (j.classNames = [1, 2])))),
    M('negative size', 'bad layer', files(modelJsonWith((j) => (j.layers[0].inFeatures = -5)), good.safetensors)),
    M('size 0', 'bad layer', files(modelJsonWith((j) => (j.layers[0].outFeatures = 0)), good.safetensors)),
    M('size given as a string', 'bad layer', files(modelJsonWith((j) => (j.layers[0].inFeatures = '4')), good.safetensors)),
    M('BatchNorm1d width disagrees with the Linear before it', 'bad layer', files(modelJsonWith((j) => (j.layers[1].numFeatures = 5)), good.safetensors)),
    M('layers do not fit the input shape', 'bad layer', files(modelJsonWith((j) => (j.inputShape = [1, 2, 2])), good.safetensors)),
    M('BN momentum 5', 'bad layer', files(modelJsonWith((j) => (j.layers[1].momentum = 5)), good.safetensors)),
    M('classNames count disagrees with the outputs', 'bad field', files(modelJsonWith((j) => (j.classNames = ['a', 'b', 'c'])), good.safetensors)),

    I('empty file', 'too short', idx(new Uint8Array(0))),
    I('gzip file (not decompressed)', 'bad magic', idx(new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0]))),
    I('type float32', 'unsupported type', idx(idxHeader(0x0d, [1], 4))),
    I('0 dimensions', 'bad dimension count', idx(idxHeader(0x08, [], 0))),
    I('header cut inside the dimensions', 'too short', idx(idxHeader(0x08, [10, 28, 28], 0).subarray(0, 10))),
    I('a zero dimension', 'bad dimension', idx(idxHeader(0x08, [0, 28, 28], 0))),
    I('dimensions 2^32-1 cubed (lies about its size)', 'too large', idx(idxHeader(0x08, [0xffffffff, 0xffffffff, 0xffffffff], 0))),
    I('truncated: says 60000x28x28, has 100 bytes', 'truncated', idx(idxHeader(0x08, [60000, 28, 28], 100))),
    I('trailing bytes', 'too long', idx(Uint8Array.from([...encodeIdx([2], [1, 2]), 0]))),

    P('empty file', 'truncated', png(new Uint8Array(0))),
    P('JPEG file', 'not a PNG', png(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 0x4a, 0x46, 0x49, 0x46]))),
    P('signature only', 'truncated', png(goodPng.subarray(0, 8))),
    P('cut inside IHDR', 'truncated', png(goodPng.subarray(0, 20))),
    P('cut inside IDAT', 'truncated', png(goodPng.subarray(0, goodPng.length - 30))),
    P('IEND missing', 'truncated', png(goodPng.subarray(0, goodPng.length - 12))),
    P('first chunk not IHDR', 'bad header', png(pngFromChunks([['tEXt', new Uint8Array(13)], ['IEND', new Uint8Array(0)]]))),
    P('IHDR says 0x0', 'bad header', png(pngFromChunks([['IHDR', ihdr(0, 0)], ['IEND', new Uint8Array(0)]]))),
    P('IHDR says 100000x100000 (allocation bait)', 'wrong size', png(pngFromChunks([['IHDR', ihdr(100000, 100000)], ['IDAT', idat(new Uint8Array(10))], ['IEND', new Uint8Array(0)]]))),
    P('IHDR color type 5 (undefined)', 'bad header', png(pngFromChunks([['IHDR', ihdr(28, 28, 8, 5)], ['IEND', new Uint8Array(0)]]))),
    P('IHDR RGB with bit depth 4', 'bad header', png(pngFromChunks([['IHDR', ihdr(28, 28, 4, 2)], ['IEND', new Uint8Array(0)]]))),
    P('interlace method 7', 'bad header', png(pngFromChunks([['IHDR', ihdr(28, 28, 8, 0, 7)], ['IEND', new Uint8Array(0)]]))),
    P('wrong size 640x480', 'wrong size', png(pngBytes(640, 480))),
    P('no IDAT', 'corrupt data', png(pngFromChunks([['IHDR', ihdr(28, 28)], ['IEND', new Uint8Array(0)]]))),
    P('IDAT not zlib', 'corrupt data', png(pngFromChunks([['IHDR', ihdr(28, 28)], ['IDAT', new Uint8Array([1, 2, 3, 4])], ['IEND', new Uint8Array(0)]]))),
    P('IDAT inflates to 64 MB (zip bomb)', 'corrupt data', png(pngFromChunks([['IHDR', ihdr(28, 28)], ['IDAT', idat(new Uint8Array(64 << 20))], ['IEND', new Uint8Array(0)]]))),
    P('IDAT too short for the rows it claims', 'corrupt data', png(pngFromChunks([['IHDR', ihdr(28, 28)], ['IDAT', idat(rawGray.subarray(0, 100))], ['IEND', new Uint8Array(0)]]))),
    P('bad CRC', 'corrupt data', png(goodPng.map((b, i) => (i === 29 ? b ^ 0xff : b)))),
  ];
}

/** Run a case; returns the error it threw (or null). */
export function errorOf(c: HostileCase): unknown {
  try {
    c.run();
    return null;
  } catch (e) {
    return e;
  }
}

if (process.argv[1]?.endsWith('io-hostile-cases.ts')) {
  for (const c of hostileCases()) {
    const e = errorOf(c);
    console.log(`| ${c.parser} | ${c.name} | ${e instanceof Error ? `${e.name}: ${e.message}` : 'no error'} |`);
  }
}
