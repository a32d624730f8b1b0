/**
 * Small real datasets written to disk for the own-data tests: a seeded separable CSV, an IDX directory
 * cut from MNIST, and folders of PNG images of simple shapes in one folder per class.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { encodeIdx } from '../../src/data/idx.js';
import { loadMnist } from '../../src/data/node.js';
import { Rng } from '../../src/tensor/rng.js';

/**
 * Three well separated classes ("alpha", "beta", "gamma") in four features on very different scales
 * (~1e-3, ~1, ~1e2, ~1e5), shuffled; `rows` per class.
 */
export function separableCsv(file: string, rows = 100, seed = 3): void {
  const rng = new Rng(seed);
  const centres: Record<string, number[]> = { alpha: [0, 0, 0, 0], beta: [3, -3, 3, 0], gamma: [-3, 3, 3, 3] };
  const scales = [1e-3, 1, 1e2, 1e5];
  const lines: string[] = [];
  for (const [label, c] of Object.entries(centres)) {
    for (let i = 0; i < rows; i++) lines.push([...c.map((m, j) => ((m + rng.normal()) * scales[j]).toPrecision(5)), label].join(','));
  }
  rng.shuffle(lines as unknown as { length: number; [i: number]: number });
  writeFileSync(file, ['tiny,unit,hundreds,huge,kind', ...lines].join('\n') + '\n');
}

/** An IDX directory with the first `train` MNIST training and `test` MNIST test images, as MNIST ships them. */
export function mnistIdxDir(dir: string, train = 600, test = 200): void {
  mkdirSync(dir, { recursive: true });
  for (const [split, prefix, n] of [['train', 'train', train], ['test', 't10k', test]] as const) {
    const ds = loadMnist(split);
    const bytes = Uint8Array.from(ds.images.subarray(0, n * 784), (v) => Math.round(v * 255));
    writeFileSync(join(dir, `${prefix}-images-idx3-ubyte`), encodeIdx([n, 28, 28], bytes));
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte`), encodeIdx([n], ds.labels.subarray(0, n)));
  }
}

/** A PNG of `width` x `height` from a function giving [r, g, b] (0..255) per pixel. */
export function writePng(file: string, width: number, height: number, color: (x: number, y: number) => [number, number, number]): void {
  const png = new PNG({ width, height });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = color(x, y);
      const i = 4 * (y * width + x);
      png.data[i] = r;
      png.data[i + 1] = g;
      png.data[i + 2] = b;
      png.data[i + 3] = 255;
    }
  }
  writeFileSync(file, PNG.sync.write(png));
}

/**
 * Class folders of small RGB PNGs, `perClass` each, in sizes between 14 and 22 pixels: "bars" (vertical
 * red stripes), "disc" (a green disc) and "ring" (a blue ring), each with seeded noise and position.
 */
export function shapeFolders(dir: string, perClass = 30, seed = 5): void {
  const rng = new Rng(seed);
  const shapes: Record<string, (x: number, y: number, cx: number, cy: number, r: number) => [number, number, number]> = {
    bars: (x) => (x % 4 < 2 ? [220, 40, 40] : [20, 20, 20]),
    disc: (x, y, cx, cy, r) => (Math.hypot(x - cx, y - cy) < r ? [40, 200, 60] : [20, 20, 20]),
    ring: (x, y, cx, cy, r) => (Math.abs(Math.hypot(x - cx, y - cy) - r) < 1.5 ? [40, 60, 220] : [20, 20, 20]),
  };
  for (const [name, draw] of Object.entries(shapes)) {
    mkdirSync(join(dir, name), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const size = 14 + rng.int(9);
      const cx = size / 2 + rng.uniformRange(-2, 2);
      const cy = size / 2 + rng.uniformRange(-2, 2);
      const r = size / 4 + rng.uniformRange(0, 1.5);
      writePng(join(dir, name, `${String(i).padStart(3, '0')}.png`), size, size, (x, y) => {
        const c = draw(x, y, cx, cy, r);
        const noise = rng.normal() * 12;
        return c.map((v) => Math.max(0, Math.min(255, Math.round(v + noise)))) as [number, number, number];
      });
    }
  }
}
