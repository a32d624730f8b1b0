/**
 * Drawn digits to MNIST-style input: real MNIST test digits, enlarged, moved, drawn dark on light on a
 * bigger canvas, come back pixel for pixel; boxes of every shape land in the 20x20 box, centred by mass.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadDataset } from '../src/data/node.js';
import { MNIST_SIDE, digitFromGray, digitFromPhoto, digitFromRgba, digitGeometry } from '../src/data/digit.js';
import { Rng } from '../src/tensor/rng.js';

const test10k = loadDataset('mnist', 'test');
const digit = (i: number) => test10k.images.subarray(i * 784, (i + 1) * 784);

/** The digit enlarged `k` times (each pixel a k×k block), at (left, top) of a width×height canvas, black ink on white, RGBA. */
function drawOnCanvas(pixels: Float32Array, k: number, width: number, height: number, left: number, top: number): Uint8ClampedArray {
  const rgba = new Uint8ClampedArray(width * height * 4).fill(255);
  for (let y = 0; y < 28 * k; y++) {
    for (let x = 0; x < 28 * k; x++) {
      const v = pixels[Math.floor(y / k) * 28 + Math.floor(x / k)];
      const o = ((top + y) * width + left + x) * 4;
      rgba[o] = rgba[o + 1] = rgba[o + 2] = Math.round(255 * (1 - v));
    }
  }
  return rgba;
}

describe('digit preprocessing (MNIST recipe)', () => {
  test('MNIST test digits drawn 10x larger, off-centre, dark on light, come back as themselves', () => {
    let worst = 0;
    for (let i = 0; i < 60; i++) {
      const original = digit(i);
      const g = digitGeometry(original);
      assert.equal(Math.max(g.width, g.height), 20, `test digit ${i} fills the 20-pixel box`);
      const canvas = drawOnCanvas(original, 10, 400, 360, 37 + (i % 5) * 7, 51 + (i % 3) * 11);
      const out = digitFromRgba(canvas, 400, 360);
      assert.equal(out.inverted, true);
      assert.equal(out.empty, false);
      assert.equal(out.scale, 0.1);
      // MNIST's own digits are already on the grid and centred by mass: they come back pixel for pixel.
      for (let p = 0; p < 784; p++) worst = Math.max(worst, Math.abs(out.pixels[p] - original[p]));
      const h = digitGeometry(out.pixels);
      assert.ok(Math.abs(h.x - 14) <= 0.5 && Math.abs(h.y - 14) <= 0.5, `digit ${i}: centre of mass (${h.x}, ${h.y})`);
      for (const v of out.pixels) assert.equal(Math.fround(Math.round(v * 255) / 255), v, 'values are multiples of 1/255');
      assert.ok(Math.abs(out.centreOfMass.x - (37 + (i % 5) * 7 + 10 * g.x + 4.5)) < 0.2, `digit ${i}: centre of mass on the canvas ${out.centreOfMass.x}`);
    }
    assert.ok(worst <= 0.5 / 255, `largest difference from the original: ${worst * 255}/255`);
  });

  test('a photographed digit (grey, noisy paper; ink not black) comes back as the test image, give or take a pixel of shift', () => {
    const rng = new Rng(5);
    const [width, height] = [300, 280];
    for (let i = 0; i < 20; i++) {
      const original = digit(i);
      const rgba = new Uint8ClampedArray(width * height * 4);
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const [u, v] = [Math.floor((x - 20) / 8), Math.floor((y - 30) / 8)];
          const ink = u >= 0 && u < 28 && v >= 0 && v < 28 ? original[v * 28 + u] : 0;
          const g = 190 - 150 * ink + 12 * (2 * rng.uniform() - 1);
          rgba.set([g, g, g, 255], 4 * (y * width + x));
        }
      }
      const out = digitFromPhoto(rgba, width, height);
      assert.equal(out.inverted, true);
      const g = digitGeometry(out.pixels);
      assert.equal(Math.max(g.width, g.height), 20, `digit ${i} fills the 20-pixel box`);
      assert.ok(Math.abs(g.x - 14) <= 0.6 && Math.abs(g.y - 14) <= 0.6, `digit ${i}: centre of mass (${g.x}, ${g.y})`);
      // The paper's noise can move the whole-pixel placement by one: compare at the best of the nine shifts.
      let best = Infinity;
      for (const dy of [-1, 0, 1]) {
        for (const dx of [-1, 0, 1]) {
          let sum = 0;
          for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) sum += Math.abs((out.pixels[(y + dy) * 28 + x + dx] ?? 0) - original[y * 28 + x]);
          best = Math.min(best, sum / 784);
        }
      }
      assert.ok(best < 0.03, `digit ${i}: mean difference ${best}`);
    }
    const blank = new Uint8ClampedArray(40 * 30 * 4).fill(200);
    assert.equal(digitFromPhoto(blank, 40, 30).empty, true);
  });

  test('a digit already centred by mass at (14, 14) comes back unchanged', () => {
    // A symmetric "0": its centre of mass is the centre of its box.
    const side = 140;
    const gray = new Float32Array(side * side);
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const r = Math.hypot((x + 0.5 - 70) * 1.25, y + 0.5 - 70);
        if (r > 40 && r <= 70) gray[y * side + x] = 1;
      }
    }
    const out = digitFromGray(gray, side, side);
    const g = digitGeometry(out.pixels);
    assert.ok(Math.abs(g.x - 14) <= 0.5 && Math.abs(g.y - 14) <= 0.5, `centre of mass (${g.x}, ${g.y})`);
    assert.equal(g.height, 20, 'the longer side (vertical here) is scaled to 20');
    assert.ok(g.width <= 18 && g.width >= 16, `the shorter side keeps the aspect ratio: ${g.width}`);
  });

  test('boxes of any shape and size fit in 20x20 with their aspect ratio kept', () => {
    for (const [w, h] of [[10, 150], [150, 10], [3, 3], [60, 45]]) {
      const width = 200;
      const height = 180;
      const gray = new Float32Array(width * height);
      for (let y = 20; y < 20 + h; y++) for (let x = 30; x < 30 + w; x++) gray[y * width + x] = 1;
      const out = digitFromGray(gray, width, height);
      assert.deepEqual(out.box, { x: 30, y: 20, width: w, height: h });
      const g = digitGeometry(out.pixels);
      assert.ok(Math.abs(g.x - 14) <= 0.5 && Math.abs(g.y - 14) <= 0.5, `${w}x${h}: centre of mass (${g.x}, ${g.y})`);
      assert.equal(Math.max(g.width, g.height), 20, `${w}x${h}: the longer side spans 20 pixels`);
      // Ink sums to the box's area in output pixels: 20 × 20·(short/long).
      const ink = out.pixels.reduce((a, b) => a + b, 0);
      const want = (20 * 20 * Math.min(w, h)) / Math.max(w, h);
      assert.ok(Math.abs(ink - want) < 0.02 * want + 1, `${w}x${h}: ink ${ink}, expected about ${want}`);
      assert.ok(Math.max(...out.pixels) <= 1);
    }
  });

  test('the side of the field is 28 and an empty canvas says so', () => {
    const out = digitFromRgba(new Uint8ClampedArray(50 * 40 * 4).fill(255), 50, 40);
    assert.equal(out.empty, true);
    assert.equal(out.pixels.length, MNIST_SIDE * MNIST_SIDE);
    assert.ok(out.pixels.every((v) => v === 0));
  });

  test('bad input is named', () => {
    assert.throws(() => digitFromGray(new Float32Array(10), 3, 3), /10 values for a 3x3 picture, expected 9/);
    assert.throws(() => digitFromGray(new Float32Array([0, NaN, 0, 0]), 2, 2), /pixel \(1, 0\) is NaN/);
    assert.throws(() => digitFromRgba(new Uint8ClampedArray(12), 2, 2), /12 bytes for 2x2 RGBA, expected 16/);
  });
});
