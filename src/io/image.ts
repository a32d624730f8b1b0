/**
 * Decoded pixels to model input (browser-safe; src/io/node-png.ts decodes PNG files with pngjs).
 * MNIST digits are white on black, so images drawn dark on light are inverted; `invert: 'auto'`
 * decides from the border, which is background in any centred digit.
 */

export interface GrayOptions {
  /** true, false, or 'auto' (default): invert when the border is mostly light. */
  invert?: boolean | 'auto';
}

/**
 * RGBA bytes (width·height·4, as decoders give them) to grayscale in [0, 1], row-major [height, width].
 * Luma is 0.299R + 0.587G + 0.114B (ITU-R BT.601), composited over black by alpha (a transparent
 * background is background).
 */
export function rgbaToGray(rgba: Uint8Array, width: number, height: number, options: GrayOptions = {}): { pixels: Float32Array; inverted: boolean } {
  if (rgba.length !== width * height * 4) throw new Error(`rgbaToGray: ${rgba.length} bytes for ${width}x${height} RGBA, expected ${width * height * 4}`);
  const pixels = new Float32Array(width * height);
  for (let i = 0; i < pixels.length; i++) {
    const luma = 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2];
    pixels[i] = (luma / 255) * (rgba[4 * i + 3] / 255);
  }
  const invert = options.invert ?? 'auto';
  const inverted = invert === 'auto' ? borderMean(pixels, width, height) > 0.5 : invert;
  if (inverted) for (let i = 0; i < pixels.length; i++) pixels[i] = 1 - pixels[i];
  return { pixels, inverted };
}

function borderMean(pixels: Float32Array, width: number, height: number): number {
  const border = borderPixels(pixels, width, height);
  return border.reduce((a, b) => a + b, 0) / border.length;
}

/** The pixels of a picture's outermost rows and columns, each once: where a centred subject's background shows. */
export function borderPixels(pixels: Float32Array, width: number, height: number): number[] {
  const out: number[] = [];
  for (let x = 0; x < width; x++) out.push(pixels[x]);
  if (height > 1) for (let x = 0; x < width; x++) out.push(pixels[(height - 1) * width + x]);
  for (let y = 1; y < height - 1; y++) {
    out.push(pixels[y * width]);
    if (width > 1) out.push(pixels[y * width + width - 1]);
  }
  return out;
}

/** The image size a model's input shape implies: [1, H, W] → H×W; [N] with N a square (784) → √N×√N. */
export function imageSizeFor(inputShape: readonly number[]): { width: number; height: number } {
  if (inputShape.length === 3 && inputShape[0] === 1) return { height: inputShape[1], width: inputShape[2] };
  if (inputShape.length === 1) {
    const side = Math.round(Math.sqrt(inputShape[0]));
    if (side * side === inputShape[0]) return { width: side, height: side };
  }
  throw new Error(`a model with input shape [${inputShape.join(', ')}] does not take one grayscale image (expected [1, H, W] or [H·W] with H = W)`);
}

/** The taps of one output pixel along one axis: input indices `start ..` with their weights (summing to 1). */
interface Taps {
  start: number;
  weights: number[];
}

/**
 * 1-D resampling weights from `inSize` to `outSize` pixels. Shrinking averages the input pixels each output
 * pixel covers, weighted by overlap (area averaging, as OpenCV's INTER_AREA: no aliasing, every input
 * pixel counts); enlarging interpolates linearly between pixel centres (half-pixel alignment, as
 * OpenCV's and PIL's bilinear), clamped at the border. Equal sizes give the identity.
 */
export function resampleTaps(inSize: number, outSize: number): Taps[] {
  const taps: Taps[] = [];
  const scale = inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    if (outSize < inSize) {
      const lo = i * scale;
      const hi = (i + 1) * scale;
      const start = Math.floor(lo);
      const weights: number[] = [];
      for (let j = start; j < hi && j < inSize; j++) weights.push((Math.min(hi, j + 1) - Math.max(lo, j)) / scale);
      taps.push({ start, weights });
    } else {
      const centre = Math.min(Math.max((i + 0.5) * scale - 0.5, 0), inSize - 1);
      const j = Math.min(Math.floor(centre), inSize - 1);
      const t = centre - j;
      taps.push(t > 0 && j + 1 < inSize ? { start: j, weights: [1 - t, t] } : { start: j, weights: [1] });
    }
  }
  return taps;
}

/** One [height, width] plane resized to [outHeight, outWidth]: rows first, then columns (the filter is separable). */
export function resizePlane(src: Float32Array, width: number, height: number, outWidth: number, outHeight: number): Float32Array {
  if (src.length !== width * height) throw new Error(`resizePlane: ${src.length} values for ${width}x${height}`);
  if (width === outWidth && height === outHeight) return src.slice();
  const across = resampleTaps(width, outWidth);
  const down = resampleTaps(height, outHeight);
  const rows = new Float32Array(height * outWidth); // [height, outWidth]
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < outWidth; x++) {
      const { start, weights } = across[x];
      let v = 0;
      for (let k = 0; k < weights.length; k++) v += weights[k] * src[y * width + start + k];
      rows[y * outWidth + x] = v;
    }
  }
  const out = new Float32Array(outHeight * outWidth);
  for (let y = 0; y < outHeight; y++) {
    const { start, weights } = down[y];
    for (let x = 0; x < outWidth; x++) {
      let v = 0;
      for (let k = 0; k < weights.length; k++) v += weights[k] * rows[(start + k) * outWidth + x];
      out[y * outWidth + x] = v;
    }
  }
  return out;
}

export interface ImageInputOptions {
  height: number;
  width: number;
  /** 1: grayscale (BT.601 luma); 3: RGB. */
  channels: 1 | 3;
}

/**
 * RGBA bytes (as decoders give them) to model input: `[channels, height, width]` values in [0, 1],
 * composited over black by alpha, converted to gray or kept RGB, then resized (resizePlane). No inversion:
 * the user's own images are taken as they are.
 */
export function rgbaToInput(rgba: Uint8Array, width: number, height: number, options: ImageInputOptions): Float32Array {
  if (rgba.length !== width * height * 4) throw new Error(`rgbaToInput: ${rgba.length} bytes for ${width}x${height} RGBA, expected ${width * height * 4}`);
  const n = width * height;
  const planes: Float32Array[] = [];
  if (options.channels === 1) {
    const gray = new Float32Array(n);
    for (let i = 0; i < n; i++) gray[i] = ((0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]) / 255) * (rgba[4 * i + 3] / 255);
    planes.push(gray);
  } else {
    for (let c = 0; c < 3; c++) {
      const plane = new Float32Array(n);
      for (let i = 0; i < n; i++) plane[i] = (rgba[4 * i + c] / 255) * (rgba[4 * i + 3] / 255);
      planes.push(plane);
    }
  }
  const out = new Float32Array(options.channels * options.height * options.width);
  planes.forEach((p, c) => out.set(resizePlane(p, width, height, options.width, options.height), c * options.height * options.width));
  return out;
}
