/**
 * A hand-drawn digit (a canvas, a photo, any grayscale picture) made to look like an MNIST test image,
 * following the dataset's own recipe (LeCun et al.): the digit's bounding box is scaled to fit a 20x20
 * box with its aspect ratio kept, anti-aliased, and placed in a 28x28 field so that its centre of mass
 * sits at the centre. Values are multiples of 1/255 in [0, 1], white digit on black, as the IDX loader
 * gives them. A network trained on MNIST sees a drawn digit the way it saw its training data.
 *
 * As in MNIST, the 20x20 box is moved by whole pixels, so the centre of mass lands within half a pixel
 * of pixel (14, 14) (the mean over MNIST's test digits is (14.00, 13.99)) and the digit stays on the
 * grid: every MNIST test digit's ink spans exactly 20 pixels along its longer side.
 */
import { borderPixels, rgbaToGray, type GrayOptions } from '../io/image.js';

export const MNIST_SIDE = 28;
/** The box the digit's longer side is scaled to. */
export const MNIST_BOX = 20;

export interface DigitOptions {
  /** Pixels brighter than this (after inversion) count as ink for the bounding box. Default 0: any ink. */
  threshold?: number;
}

export interface MnistDigit {
  /** 28·28 values, row-major, in [0, 1] (multiples of 1/255). All 0 when `empty`. */
  pixels: Float32Array;
  /** True when the picture had no ink: nothing to centre, nothing to classify. */
  empty: boolean;
  /** The ink's bounding box in the source picture, in pixels. */
  box: { x: number; y: number; width: number; height: number };
  /** Output pixels per source pixel (20 / the box's longer side). */
  scale: number;
  /** Centre of mass of the ink in the source picture (pixel-index coordinates). */
  centreOfMass: { x: number; y: number };
  /** True when the picture was dark on light and was inverted (RGBA input only). */
  inverted: boolean;
}

/** An RGBA picture (a canvas's getImageData().data) to an MNIST-style digit; dark-on-light drawings are inverted (`invert: 'auto'`). */
export function digitFromRgba(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number, options: DigitOptions & GrayOptions = {}): MnistDigit {
  const bytes = rgba instanceof Uint8Array ? rgba : new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.byteLength);
  const { pixels, inverted } = rgbaToGray(bytes, width, height, { invert: options.invert ?? 'auto' });
  return { ...digitFromGray(pixels, width, height, options), inverted };
}

/**
 * A photo or scan of one digit (any size, a background that is not pure black) to an MNIST-style digit:
 * gray, inverted when the background is light, then levels set so that the background (the median of
 * the border pixels) becomes 0 and the strongest ink 1, as MNIST's digits are; faint specks under
 * `threshold` (default 0.25 of the ink's range) are left out of the bounding box.
 */
export function digitFromPhoto(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number, options: DigitOptions & GrayOptions = {}): MnistDigit {
  const bytes = rgba instanceof Uint8Array ? rgba : new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.byteLength);
  const { pixels, inverted } = rgbaToGray(bytes, width, height, { invert: options.invert ?? 'auto' });
  const border = borderPixels(pixels, width, height).sort((a, b) => a - b);
  const background = border[Math.floor(border.length / 2)];
  let ink = background;
  for (const v of pixels) if (v > ink) ink = v;
  // A picture with no level above its background has no digit: all zero, reported empty below.
  const range = ink - background;
  const levels = pixels.map((v) => (range > 0 ? Math.max(0, (v - background) / range) : 0));
  return { ...digitFromGray(levels, width, height, { threshold: options.threshold ?? 0.25 }), inverted };
}

/** A grayscale picture (row-major, [0, 1], light ink on a dark background) to an MNIST-style digit. */
export function digitFromGray(gray: Float32Array, width: number, height: number, options: DigitOptions = {}): MnistDigit {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new Error(`digitFromGray: width and height must be positive integers, got ${width}x${height}`);
  if (gray.length !== width * height) throw new Error(`digitFromGray: ${gray.length} values for a ${width}x${height} picture, expected ${width * height}`);
  const threshold = options.threshold ?? 0;
  if (!(threshold >= 0 && threshold < 1)) throw new Error(`digitFromGray: threshold must be in [0, 1), got ${threshold}`);
  const pixels = new Float32Array(MNIST_SIDE * MNIST_SIDE);
  let x0 = width;
  let x1 = -1;
  let y0 = height;
  let y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = gray[y * width + x];
      if (!Number.isFinite(v)) throw new Error(`digitFromGray: pixel (${x}, ${y}) is ${v}; expected a number in [0, 1]`);
      if (v > threshold) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) return { pixels, empty: true, box: { x: 0, y: 0, width: 0, height: 0 }, scale: 0, centreOfMass: { x: NaN, y: NaN }, inverted: false };
  const boxW = x1 - x0 + 1;
  const boxH = y1 - y0 + 1;
  const scale = MNIST_BOX / Math.max(boxW, boxH);
  // 1. The box scaled into a 20x20 image, anti-aliased; the shorter side centred on whole pixels, so a
  //    box that is a whole number of output pixels wide stays on the grid.
  const offX = Math.round((MNIST_BOX - boxW * scale) / 2);
  const offY = Math.round((MNIST_BOX - boxH * scale) / 2);
  const colWeights = coverage(x0, x1 + 1, offX, scale);
  const rowWeights = coverage(y0, y1 + 1, offY, scale);
  const box = new Float64Array(MNIST_BOX * MNIST_BOX);
  const area = 1 / (scale * scale);
  for (let Y = 0; Y < MNIST_BOX; Y++) {
    for (const [y, wy] of rowWeights[Y]) {
      const row = y * width;
      for (let X = 0; X < MNIST_BOX; X++) {
        let s = 0;
        for (const [x, wx] of colWeights[X]) s += wx * Math.min(1, Math.max(0, gray[row + x]));
        box[Y * MNIST_BOX + X] += (wy * s) / area;
      }
    }
  }
  for (let i = 0; i < box.length; i++) box[i] = Math.round(Math.min(1, box[i]) * 255) / 255;
  // 2. Moved by whole pixels into the 28x28 field so that its centre of mass is nearest the centre (14, 14).
  let mass = 0;
  let mx = 0;
  let my = 0;
  for (let Y = 0; Y < MNIST_BOX; Y++) {
    for (let X = 0; X < MNIST_BOX; X++) {
      const v = box[Y * MNIST_BOX + X];
      mass += v;
      mx += v * X;
      my += v * Y;
    }
  }
  const left = Math.round(MNIST_SIDE / 2 - mx / mass);
  const top = Math.round(MNIST_SIDE / 2 - my / mass);
  for (let Y = 0; Y < MNIST_BOX; Y++) {
    const y = Y + top;
    if (y < 0 || y >= MNIST_SIDE) continue;
    for (let X = 0; X < MNIST_BOX; X++) {
      const x = X + left;
      if (x >= 0 && x < MNIST_SIDE) pixels[y * MNIST_SIDE + x] = box[Y * MNIST_BOX + X];
    }
  }
  const centreOfMass = { x: x0 + (mx / mass + 0.5 - offX) / scale - 0.5, y: y0 + (my / mass + 0.5 - offY) / scale - 0.5 };
  return { pixels, empty: false, box: { x: x0, y: y0, width: boxW, height: boxH }, scale, centreOfMass, inverted: false };
}

/**
 * For each of the 20 pixels of the box along one axis, the source pixels in [from, to) it covers and by
 * how much (the overlap, in source pixels): the box filter that anti-aliases a downscale. Source pixel
 * `from` starts at output coordinate `offset`.
 */
function coverage(from: number, to: number, offset: number, scale: number): Array<Array<[number, number]>> {
  const out: Array<Array<[number, number]>> = [];
  for (let X = 0; X < MNIST_BOX; X++) {
    const a = from + (X - offset) / scale;
    const b = from + (X + 1 - offset) / scale;
    const cells: Array<[number, number]> = [];
    for (let x = Math.max(from, Math.floor(a)); x < Math.min(to, Math.ceil(b)); x++) {
      const overlap = Math.min(b, x + 1) - Math.max(a, x);
      if (overlap > 0) cells.push([x, overlap]);
    }
    out.push(cells);
  }
  return out;
}

/** Centre of mass (pixel-index coordinates) and ink bounding box of a 28x28 image: for checks and tests. */
export function digitGeometry(pixels: Float32Array, side = MNIST_SIDE): { x: number; y: number; width: number; height: number } {
  let mass = 0;
  let mx = 0;
  let my = 0;
  let x0 = side;
  let x1 = -1;
  let y0 = side;
  let y1 = -1;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const v = pixels[y * side + x];
      if (v <= 0) continue;
      mass += v;
      mx += v * x;
      my += v * y;
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
    }
  }
  return { x: mx / mass, y: my / mass, width: x1 - x0 + 1, height: y1 - y0 + 1 };
}
