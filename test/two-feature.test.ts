/**
 * The two-feature problem: its data, loss, exact minimum and curvature, and gradient descent on raw,
 * standardized and batch-normalized inputs (the zig-zag on raw inputs, the step counts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_START,
  estimatedStepsToTarget,
  gradientDescentPath,
  learningRateFor,
  pathBounds,
  targetLoss,
  toRawWeights,
  toStandardizedWeights,
  twoFeatureCurvature,
  twoFeatureLoss,
  twoFeatureLossGrid,
  twoFeatureMinimum,
  twoFeatureProblem,
} from '../src/experiments/two-feature.js';
import { learningRateGrid } from '../src/experiments/two-feature-experiment.js';
import { levelSegments } from '../src/report/contours.js';

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tolerance ${tol})`);

describe('two-feature problem', () => {
  test('features have mean 0 and standard deviations 1 and r; seeded', () => {
    const p = twoFeatureProblem({ ratio: 37, seed: 3 });
    for (const [i, want] of [[0, 1], [1, 37]] as const) {
      let m = 0;
      for (let n = 0; n < p.samples; n++) m += p.x[2 * n + i] / p.samples;
      let v = 0;
      for (let n = 0; n < p.samples; n++) v += (p.x[2 * n + i] - m) ** 2 / p.samples;
      close(m, 0, 1e-9 * want, `mean of feature ${i + 1}`);
      close(Math.sqrt(v), want, 1e-9 * want, `std of feature ${i + 1}`);
    }
    assert.deepEqual(twoFeatureProblem({ ratio: 37, seed: 3 }).x, p.x);
    assert.notDeepEqual(twoFeatureProblem({ ratio: 37, seed: 4 }).x, p.x);
  });

  test('the same function has the same loss in raw and standardized weights', () => {
    const p = twoFeatureProblem({ ratio: 250 });
    const v: [number, number] = [0.7, -1.3];
    const w = toRawWeights(p, v);
    close(twoFeatureLoss(p, w[0], w[1], 'raw'), twoFeatureLoss(p, v[0], v[1], 'standardized'), 1e-9, 'loss');
    assert.deepEqual(toStandardizedWeights(p, w).map((x) => +x.toFixed(12)), v);
  });

  test('the minimum has zero gradient (finite differences) and the lowest loss on a grid', () => {
    for (const loss of ['squared', 'logistic'] as const) {
      const p = twoFeatureProblem({ ratio: 20, loss });
      const { w, loss: min } = twoFeatureMinimum(p, 'raw');
      const h = 1e-5;
      for (const d of [[h, 0], [0, h / 20]]) {
        const g = (twoFeatureLoss(p, w[0] + d[0], w[1] + d[1]) - twoFeatureLoss(p, w[0] - d[0], w[1] - d[1])) / (2 * Math.hypot(d[0], d[1]));
        close(g, 0, 1e-5, `${loss}: directional derivative at the minimum`);
      }
      const grid = twoFeatureLossGrid(p, 'raw', [w[0] - 1, w[0] + 1], [w[1] - 0.05, w[1] + 0.05], 21);
      assert.equal(grid.loss.length, 21 * 21);
      assert.ok(Math.min(...grid.loss) >= min - 1e-12, `${loss}: nothing on the grid is below the minimum`);
      close(grid.loss[10 * 21 + 10], min, 1e-12, `${loss}: the grid's centre is the minimum`);
    }
  });

  test('raw inputs have a condition number of about r², standardized ones do not depend on r', () => {
    const a = twoFeatureCurvature(twoFeatureProblem({ ratio: 1 }), 'raw').conditionNumber;
    for (const ratio of [10, 100, 1000]) {
      const p = twoFeatureProblem({ ratio });
      const raw = twoFeatureCurvature(p, 'raw').conditionNumber;
      assert.ok(raw > 0.5 * ratio * ratio && raw < 2 * ratio * ratio, `ratio ${ratio}: condition number ${raw}`);
      close(twoFeatureCurvature(p, 'standardized').conditionNumber, a, 1e-6 * a, `ratio ${ratio}: standardized condition number`);
    }
  });

  test('gradient descent on raw inputs zig-zags and needs about r² times more steps; standardized and batch-normalized inputs do not', () => {
    const counts: Record<number, { raw: number | null; std: number | null; bn: number | null; zigZags: number }> = {};
    for (const ratio of [1, 10, 30]) {
      const p = twoFeatureProblem({ ratio });
      const target = targetLoss(p);
      const run = (inputs: 'raw' | 'standardized' | 'batchnorm') => gradientDescentPath(p, { inputs, lr: learningRateFor(p, inputs), steps: 5000, targetLoss: target });
      const raw = run('raw');
      const std = run('standardized');
      const bn = run('batchnorm');
      for (const path of [raw, std, bn]) assert.equal(path.diverged, false, `ratio ${ratio}, ${path.inputs}: diverged`);
      counts[ratio] = { raw: raw.stepsToTarget, std: std.stepsToTarget, bn: bn.stepsToTarget, zigZags: raw.zigZags };
      // The simulated count agrees with the quadratic model's.
      assert.equal(raw.stepsToTarget, estimatedStepsToTarget(p, 'raw', raw.lr, target));
      assert.equal(std.stepsToTarget, estimatedStepsToTarget(p, 'standardized', std.lr, target));
    }
    assert.equal(counts[1].raw, counts[1].std, 'at ratio 1 raw and standardized are the same problem');
    assert.equal(counts[30].std, counts[1].std, 'standardized inputs do not care about the ratio');
    assert.ok(counts[10].raw! > 30 * counts[10].std!, `ratio 10: raw ${counts[10].raw} vs standardized ${counts[10].std} steps`);
    assert.ok(counts[30].raw! > 6 * counts[10].raw!, `raw steps grow with r²: ${counts[10].raw} at 10, ${counts[30].raw} at 30`);
    assert.ok(counts[30].bn! < counts[30].raw! / 5, `batch norm on the input: ${counts[30].bn} steps vs raw ${counts[30].raw}`);
    assert.equal(counts[30].bn, counts[1].bn, 'full-batch batch norm on the input standardizes: the ratio does not matter');
    assert.equal(counts[30].bn, counts[30].std, 'full-batch batch norm (γ = 1, β = 0) is standardization');
    assert.ok(counts[10].zigZags > 20 && counts[1].zigZags < 5, `zig-zags across the valley: ${counts[10].zigZags} at ratio 10, ${counts[1].zigZags} at ratio 1`);
  });

  test('above the largest stable rate raw gradient descent diverges and says so', () => {
    const p = twoFeatureProblem({ ratio: 100 });
    const lr = 1.05 * twoFeatureCurvature(p, 'raw').maxStableLr;
    const path = gradientDescentPath(p, { inputs: 'raw', lr, steps: 2000 });
    assert.equal(path.diverged, true);
    assert.ok(path.w1.length < 2000);
    assert.equal(estimatedStepsToTarget(p, 'raw', lr, targetLoss(p)), Infinity);
  });

  test('at a ratio of 1000 the estimate says millions of steps', () => {
    const p = twoFeatureProblem({ ratio: 1000 });
    const steps = estimatedStepsToTarget(p, 'raw', learningRateFor(p, 'raw'), targetLoss(p));
    assert.ok(steps > 1e6 && steps < 1e7, `estimated ${steps}`);
  });

  test('the path starts at the given point, in each space; stopAtTarget stops there', () => {
    const p = twoFeatureProblem({ ratio: 10 });
    const raw = gradientDescentPath(p, { inputs: 'raw', lr: 0.01, steps: 3 });
    assert.deepEqual([raw.w1[0], raw.w2[0]], toRawWeights(p, DEFAULT_START));
    assert.equal(raw.w1.length, 4);
    const std = gradientDescentPath(p, { inputs: 'standardized', lr: 1, steps: 500, targetLoss: targetLoss(p), stopAtTarget: true });
    assert.equal(std.w1.length, std.stepsToTarget! + 1);
    close(std.loss[0], twoFeatureLoss(p, DEFAULT_START[0], DEFAULT_START[1], 'standardized'), 1e-12, 'first loss');
    const b = pathBounds([raw]);
    assert.ok(b.w1[0] < Math.min(...raw.w1) && b.w2[1] > Math.max(...raw.w2));
  });

  test('mini-batch batch norm normalizes each batch with its own statistics and still converges; with γ and β too', () => {
    const p = twoFeatureProblem({ ratio: 300 });
    const min = twoFeatureMinimum(p, 'standardized').loss;
    const path = gradientDescentPath(p, { inputs: 'batchnorm', lr: learningRateFor(p, 'batchnorm', 0.5), steps: 2000, batchSize: 32 });
    assert.equal(path.diverged, false);
    assert.ok(path.loss.at(-1)! < min * 1.2, `final loss ${path.loss.at(-1)}, minimum ${min}`);
    const full = gradientDescentPath(p, { inputs: 'batchnorm', lr: learningRateFor(p, 'batchnorm', 0.5), steps: 2000 });
    assert.notDeepEqual(path.w1.slice(0, 20), full.w1.slice(0, 20), 'batch statistics differ from the full data\'s');
    const affine = gradientDescentPath(p, { inputs: 'batchnorm', affine: true, lr: learningRateFor(p, 'batchnorm', 0.9, { affine: true }), steps: 3000 });
    assert.equal(affine.diverged, false);
    assert.ok(affine.loss.at(-1)! < min * 1.01, `with γ and β: final loss ${affine.loss.at(-1)}, minimum ${min}`);
  });

  test('bad options are named', () => {
    assert.throws(() => twoFeatureProblem({ ratio: 0 }), /ratio must be a positive number/);
    assert.throws(() => twoFeatureProblem({ correlation: 1 }), /correlation must be in \(-1, 1\)/);
    const p = twoFeatureProblem();
    assert.throws(() => gradientDescentPath(p, { inputs: 'raw', lr: -1 }), /lr must be a positive number/);
    assert.throws(() => gradientDescentPath(p, { inputs: 'nope' as 'raw', lr: 1 }), /inputs must be one of raw, standardized, batchnorm/);
    assert.throws(() => gradientDescentPath(p, { inputs: 'batchnorm', lr: 1, batchSize: 1 }), /batchSize must be an integer from 2/);
    assert.throws(() => twoFeatureLossGrid(p, 'raw', [1, 0], [0, 1]), /w1Range must be \[low, high\]/);
  });

  test('the learning-rate grid is log-spaced with its ends included', () => {
    const lrs = learningRateGrid({ lrMin: 1e-3, lrMax: 10, lrsPerDecade: 4 });
    assert.equal(lrs.length, 17);
    assert.equal(lrs[0], 1e-3);
    assert.equal(lrs.at(-1), 10);
    for (let i = 1; i < lrs.length; i++) close(lrs[i] / lrs[i - 1], 10 ** 0.25, 1e-5, `step ${i}`);
  });
});

describe('level lines', () => {
  test('the segments of a circle lie on it and close around it', () => {
    const n = 41;
    const xs = Array.from({ length: n }, (_, i) => -2 + (4 * i) / (n - 1));
    const values = new Float64Array(n * n);
    for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) values[r * n + c] = xs[c] ** 2 + xs[r] ** 2;
    const segments = levelSegments(xs, xs, values, 1);
    assert.ok(segments.length > 40, `${segments.length} segments`);
    let length = 0;
    for (const s of segments) {
      // Linear interpolation of x² + y² between grid points: within a cell's curvature error of the circle.
      for (const [x, y] of [[s.x, s.y], [s.x2, s.y2]]) close(Math.hypot(x, y), 1, 0.01, 'radius');
      length += Math.hypot(s.x2 - s.x, s.y2 - s.y);
    }
    close(length, 2 * Math.PI, 0.02, 'perimeter');
    assert.deepEqual(levelSegments(xs, xs, values, 100), [], 'a level above every value has no line');
    assert.throws(() => levelSegments(xs, xs, values.subarray(1), 1), /values for a 41×41 grid/);
  });

  test('a saddle cell is split by the value at its centre', () => {
    // Corners (bottom left, bottom right, top right, top left) = 1, 0, 1, 0: the centre (0.5) is above 0.4.
    const segs = levelSegments([0, 1], [0, 1], [1, 0, 0, 1], 0.4);
    assert.equal(segs.length, 2);
    // Each segment cuts off one of the low corners (1, 0) and (0, 1).
    const cutsOff = (cx: number, cy: number) => segs.some((s) => Math.hypot(s.x - cx, s.y - cy) < 0.7 && Math.hypot(s.x2 - cx, s.y2 - cy) < 0.7);
    assert.ok(cutsOff(1, 0) && cutsOff(0, 1), JSON.stringify(segs));
  });
});
