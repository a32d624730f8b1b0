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
  let sum = 0;
  let n = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (y === 0 || x === 0 || y === height - 1 || x === width - 1) {
        sum += pixels[y * width + x];
        n++;
      }
    }
  }
  return sum / n;
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
