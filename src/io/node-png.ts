/**
 * PNG files as model input (Node only): pngjs decodes; before it runs, the chunk structure and the
 * IHDR dimensions are checked and the compressed data is inflated with a bounded output size, so a file
 * that lies about its dimensions or inflates to gigabytes is refused before anything large is allocated.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { PNG } from 'pngjs';
import { ImageFileError, type ImageFileDefect } from './errors.js';
import { rgbaToGray, type GrayOptions } from './image.js';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Channels per color type (PNG spec, table 11.1), and the bit depths each allows. */
const COLOR_TYPES: Record<number, { channels: number; depths: number[] }> = {
  0: { channels: 1, depths: [1, 2, 4, 8, 16] },
  2: { channels: 3, depths: [8, 16] },
  3: { channels: 1, depths: [1, 2, 4, 8] },
  4: { channels: 2, depths: [8, 16] },
  6: { channels: 4, depths: [8, 16] },
};
/** A 28x28 digit is a few hundred bytes; metadata chunks may add some. Anything bigger is not one. */
export const MAX_PNG_BYTES = 16 * 1024 * 1024;

export interface PngGray {
  pixels: Float32Array;
  width: number;
  height: number;
  inverted: boolean;
}

/** Decode PNG bytes of exactly `expected` size to grayscale in [0, 1]. Throws ImageFileError only. */
export function decodePngGray(bytes: Uint8Array, fileName: string, expected: { width: number; height: number }, options: GrayOptions = {}): PngGray {
  const { rgba, width, height } = decodePngRgba(bytes, fileName, expected);
  const { pixels, inverted } = rgbaToGray(rgba, width, height, options);
  return { pixels, width, height, inverted };
}

/** A decoded PNG: RGBA bytes, row-major, and whether the file stores color (RGB or a palette) or gray. */
export interface PngRgba {
  rgba: Uint8Array;
  width: number;
  height: number;
  color: boolean;
}

/** Larger than this is not a training image (RGBA of 2^26 pixels is 256 MB). */
export const MAX_PNG_PIXELS = 2 ** 26;

/**
 * Decode PNG bytes to RGBA, of any size (or exactly `expected`, when given), with the checks described at
 * the top of this file. Throws ImageFileError only.
 */
export function decodePngRgba(bytes: Uint8Array, fileName: string, expected?: { width: number; height: number }): PngRgba {
  const fail = (defect: ImageFileDefect, detail: string): never => {
    throw new ImageFileError(fileName, defect, detail);
  };
  if (bytes.length > MAX_PNG_BYTES) fail('too large', `${bytes.length} bytes, more than the ${MAX_PNG_BYTES}-byte limit for an input image`);
  if (bytes.length === 0) fail('truncated', 'the file is empty');
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) {
    const hint = bytes[0] === 0xff && bytes[1] === 0xd8 ? ' (this is a JPEG; convert it to PNG)' : bytes[0] === 0x47 && bytes[1] === 0x49 ? ' (this is a GIF; convert it to PNG)' : '';
    fail(bytes.length < 8 && SIGNATURE.slice(0, bytes.length).every((b, i) => bytes[i] === b) ? 'truncated' : 'not a PNG', `the file does not start with the 8-byte PNG signature${hint}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8 + 8 + 13) fail('truncated', `${bytes.length} bytes: the file ends before the IHDR header is complete`);
  const type = (at: number) => String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
  if (type(12) !== 'IHDR' || view.getUint32(8) !== 13) fail('bad header', `the first chunk must be a 13-byte IHDR, got "${type(12).replace(/[^\x20-\x7e]/g, '?')}" of ${view.getUint32(8)} bytes`);
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  const depth = bytes[24];
  const colorType = bytes[25];
  const interlace = bytes[28];
  if (width === 0 || height === 0) fail('bad header', `IHDR says ${width}x${height} pixels; both must be at least 1`);
  const color = COLOR_TYPES[colorType];
  if (!color || !color.depths.includes(depth)) fail('bad header', `IHDR has color type ${colorType} with bit depth ${depth}, which PNG does not define`);
  if (bytes[26] !== 0 || bytes[27] !== 0 || interlace > 1) fail('bad header', `IHDR has compression ${bytes[26]}, filter ${bytes[27]}, interlace ${interlace}; PNG defines only 0, 0 and 0 or 1`);
  if (expected && (width !== expected.width || height !== expected.height)) {
    fail('wrong size', `the image is ${width}x${height} pixels, the model takes ${expected.width}x${expected.height} (MNIST's size): resize it first`);
  }
  if (width * height > MAX_PNG_PIXELS) fail('too large', `IHDR says ${width}x${height} pixels, more than the ${MAX_PNG_PIXELS}-pixel limit`);

  // Walk the chunks: each must fit in the file, and IEND must come.
  const idat: Uint8Array[] = [];
  let at = 8;
  let ended = false;
  while (at < bytes.length) {
    if (at + 12 > bytes.length) fail('truncated', `a chunk header at byte ${at} runs past the end of the file (${bytes.length} bytes)`);
    const length = view.getUint32(at);
    if (at + 12 + length > bytes.length) fail('truncated', `chunk "${type(at + 4).replace(/[^\x20-\x7e]/g, '?')}" at byte ${at} says ${length} bytes, the file ends ${bytes.length - at - 12} bytes later`);
    const name = type(at + 4);
    if (view.getUint32(at + 8 + length) !== crc32(bytes.subarray(at + 4, at + 8 + length))) {
      fail('corrupt data', `chunk "${name.replace(/[^\x20-\x7e]/g, '?')}" at byte ${at} fails its CRC check (the file is damaged)`);
    }
    if (name === 'IDAT') idat.push(bytes.subarray(at + 8, at + 8 + length));
    at += 12 + length;
    if (name === 'IEND') {
      ended = true;
      break;
    }
  }
  if (!ended) fail('truncated', 'the file ends without an IEND chunk');
  if (idat.length === 0) fail('corrupt data', 'no IDAT chunk: the file holds no pixel data');

  // Scanlines: 1 filter byte + the packed row; Adam7's seven passes add at most 7 filter bytes per row.
  const rowBytes = Math.ceil((width * color.channels * depth) / 8);
  const rawSize = height * (rowBytes + 1) + (interlace ? 7 * (height + 1) : 0);
  let inflated = 0;
  try {
    inflated = zlib.inflateSync(Buffer.concat(idat), { maxOutputLength: rawSize + 16 }).length;
  } catch (e) {
    const tooBig = (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    fail('corrupt data', tooBig ? `the pixel data inflates to more than the ${rawSize} bytes a ${width}x${height} image needs` : `the pixel data does not inflate: ${(e as Error).message}`);
  }
  if (!interlace && inflated < rawSize) fail('corrupt data', `the pixel data inflates to ${inflated} bytes, a ${width}x${height} image of this type needs ${rawSize}`);
  let png: PNG;
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    return fail('corrupt data', (e as Error).message);
  }
  const rgba = new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength);
  return { rgba, width, height, color: colorType === 2 || colorType === 3 || colorType === 6 };
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 as PNG chunks use it (over the chunk type and data). */
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Read a PNG file as grayscale input of the expected size. Throws ImageFileError only. */
export function readPngGray(file: string, expected: { width: number; height: number }, options: GrayOptions = {}): PngGray {
  return decodePngGray(readPngBytes(file), file, expected, options);
}

/** Read a PNG file of any size as RGBA. Throws ImageFileError only. */
export function readPngRgba(file: string): PngRgba {
  return decodePngRgba(readPngBytes(file), file);
}

function readPngBytes(file: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new ImageFileError(file, 'unreadable', 'is not a regular file');
    if (st.size > MAX_PNG_BYTES) throw new ImageFileError(file, 'too large', `${st.size} bytes, more than the ${MAX_PNG_BYTES}-byte limit for an input image`);
    bytes = fs.readFileSync(file);
  } catch (e) {
    if (e instanceof ImageFileError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new ImageFileError(file, code === 'ENOENT' ? 'not found' : 'unreadable', code === 'ENOENT' ? 'no such file' : (e as Error).message);
  }
  return bytes;
}
