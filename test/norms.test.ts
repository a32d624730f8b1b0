/**
 * LayerNorm and GroupNorm: PyTorch semantics (statistics per sample; biased variance; eps inside the
 * square root; state-dict names), finite-difference gradients, specs, shape errors, and the two kernels
 * they add (channelAffine, channelAffineBackward).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GroupNorm, LayerNorm, Rng, SGD, Tensor, buildLayer, buildSequential, layerSpec, referenceKernels, type Module } from '../src/index.js';
import { gradCheck, randomTensor } from './support/gradcheck.js';

const TOL = 1e-2;

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    assert.ok(err <= tol * (1 + Math.abs(expected[i])), `${what}[${i}]: got ${actual[i]}, expected ${expected[i]}`);
  }
}

/** Float64 reference: normalize each of `rows` contiguous blocks of `size` values, then y = xhat·gamma[param(i)] + beta[param(i)]. */
function reference(x: Tensor, rows: number, size: number, eps: number, gamma: ArrayLike<number> | null, beta: ArrayLike<number> | null, param: (i: number) => number): Float64Array {
  const y = new Float64Array(x.size);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let i = 0; i < size; i++) m += x.data[r * size + i] / size;
    let v = 0;
    for (let i = 0; i < size; i++) v += (x.data[r * size + i] - m) ** 2 / size;
    for (let i = 0; i < size; i++) {
      const j = r * size + i;
      const xhat = (x.data[j] - m) / Math.sqrt(v + eps);
      y[j] = xhat * (gamma ? gamma[param(j)] : 1) + (beta ? beta[param(j)] : 0);
    }
  }
  return y;
}

function randomizeAffine(m: Module, rng: Rng) {
  for (const [, p] of m.namedParameters()) for (let i = 0; i < p.value.size; i++) p.value.data[i] = (p.value.size > 0 ? 0.5 : 0) + rng.normal() * 0.5;
}

function assertGradients(m: Module, x: Tensor) {
  const r = gradCheck(m, x);
  assert.ok(r.dx < TOL, `dx relative error ${r.dx}`);
  for (const [name, err] of Object.entries(r.params)) assert.ok(err < TOL, `${name} relative error ${err}`);
  return r;
}

describe('LayerNorm', () => {
  test('known values: [1, 2, 3] → [-√1.5, 0, √1.5]', () => {
    const ln = new LayerNorm(3, { eps: 1e-12 });
    assertClose(ln.forward(Tensor.from([1, 3], [1, 2, 3])).data, [-Math.sqrt(1.5), 0, Math.sqrt(1.5)], 1e-6, 'y');
  });

  test('normalizes each row over the trailing dims, with elementwise gamma and beta', () => {
    const rng = new Rng(1);
    for (const [shape, normalizedShape] of [
      [[5, 8], [8]],
      [[3, 4, 6], [6]],
      [[3, 4, 6], [4, 6]],
      [[2, 3, 2, 5], [2, 5]],
    ] as const) {
      const ln = new LayerNorm(normalizedShape, { eps: 1e-3 });
      randomizeAffine(ln, rng);
      const x = randomTensor([...shape], rng, 3, 2);
      const size = normalizedShape.reduce((a, b) => a * b, 1);
      const expected = reference(x, x.size / size, size, 1e-3, ln.weight!.value.data, ln.bias!.value.data, (i) => i % size);
      assertClose(ln.forward(x).data, expected, 1e-5, `${shape} over ${normalizedShape}`);
      assert.deepEqual(ln.weight!.value.shape, normalizedShape);
    }
  });

  test('independent of the batch: train = eval, a sample alone = the sample in a batch', () => {
    const rng = new Rng(2);
    const ln = new LayerNorm(6);
    randomizeAffine(ln, rng);
    const x = randomTensor([4, 6], rng, 2, 1);
    const batched = ln.forward(x).clone();
    assert.deepEqual(ln.eval().forward(x).data, batched.data);
    const one = ln.train().forward(new Tensor([1, 6], x.data.slice(12, 18)));
    assert.deepEqual(one.data, batched.data.slice(12, 18));
    assert.deepEqual(new LayerNorm(6).forward(new Tensor([6], x.data.slice(0, 6))).shape, [6], 'no leading dims, as PyTorch allows');
  });

  test('gradient check: dx, weight, bias (float64 central differences of Σ y·r)', () => {
    const rng = new Rng(3);
    const ln2 = new LayerNorm(7);
    randomizeAffine(ln2, rng);
    assertGradients(ln2, randomTensor([4, 7], rng, 2, 1));
    const ln3 = new LayerNorm([3, 4]);
    randomizeAffine(ln3, rng);
    assertGradients(ln3, randomTensor([2, 3, 3, 4], rng, 1.5, -1));
    const r = assertGradients(new LayerNorm(5, { elementwiseAffine: false }), randomTensor([3, 5], rng));
    assert.deepEqual(Object.keys(r.params), []);
    const noBias = new LayerNorm(5, { bias: false });
    randomizeAffine(noBias, rng);
    assert.deepEqual(Object.keys(assertGradients(noBias, randomTensor([3, 5], rng)).params), ['weight']);
  });

  test('PyTorch state-dict names; frozen weight gets no gradient', () => {
    assert.deepEqual([...new LayerNorm([3, 4]).stateDict().keys()], ['weight', 'bias']);
    assert.deepEqual([...new LayerNorm(4, { bias: false }).stateDict().keys()], ['weight']);
    assert.equal(new LayerNorm(4, { elementwiseAffine: false }).stateDict().size, 0);
    const rng = new Rng(4);
    const ln = new LayerNorm(4);
    ln.weight!.trainable = false;
    ln.forward(randomTensor([3, 4], rng));
    ln.backward(randomTensor([3, 4], rng));
    assert.ok(ln.weight!.grad.data.every((g) => g === 0) && ln.bias!.grad.data.some((g) => g !== 0));
    const before = ln.weight!.value.data.slice();
    new SGD(ln.parameters(), { lr: 1 }).step();
    assert.deepEqual(ln.weight!.value.data, before);
  });

  test('shape errors name the layer, the expected and the actual shape, and the fix', () => {
    const model = buildSequential([{ type: 'Linear', in: 4, out: 6 }, { type: 'LayerNorm', normalizedShape: [5] }], { rng: new Rng(0) });
    assert.throws(() => model.forward(new Tensor([2, 4])), /LayerNorm\(\[5\], eps=0\.00001\) \(layer "1"\): expected input \[\.\.\., 5\] \(the last 1 dim equal to normalizedShape\), got \[2, 6\]\. normalizedShape must be the trailing dims of the previous layer's output, e\.g\. \[6\]/);
    assert.throws(() => new LayerNorm([4, 5]).forward(new Tensor([8, 5, 4])), /expected input \[\.\.\., 4, 5\].*got \[8, 5, 4\].*e\.g\. \[5, 4\]/);
    assert.throws(() => new LayerNorm([]), /normalizedShape must be a positive integer or a non-empty list/);
    assert.throws(() => new LayerNorm(0), /normalizedShape/);
    assert.throws(() => new LayerNorm(3, { eps: 0 }), /eps must be a positive number/);
  });

  test('spec: built from JSON, round trip, bad specs rejected', () => {
    const ctx = { rng: new Rng(0) };
    const ln = buildLayer({ type: 'LayerNorm', normalizedShape: [3, 4], eps: 1e-6, bias: false }, ctx) as LayerNorm;
    assert.deepEqual(ln.normalizedShape, [3, 4]);
    assert.equal(ln.eps, 1e-6);
    assert.equal(ln.bias, null);
    assert.deepEqual(buildLayer(layerSpec(ln), ctx).config(), ln.config());
    assert.deepEqual((buildLayer({ type: 'LayerNorm', normalizedShape: 7 }, ctx) as LayerNorm).normalizedShape, [7]);
    assert.throws(() => buildLayer({ type: 'LayerNorm', normalizedShape: [3, -1] }, ctx), /LayerNorm\.normalizedShape\[1\] must be an integer/);
    assert.throws(() => buildLayer({ type: 'LayerNorm', normalizedShape: [1 << 20, 1 << 20] }, ctx), /has 1099511627776 values; at most/);
    assert.throws(() => buildLayer({ type: 'LayerNorm' }, ctx), /LayerNorm\.normalizedShape must be/);
  });
});

describe('GroupNorm', () => {
  /** Float64 GroupNorm over x[N, C, L]. */
  function groupNormReference(x: Tensor, groups: number, gn: GroupNorm) {
    const [n, c] = x.shape;
    const inner = x.size / (n * c);
    return reference(x, n * groups, (c / groups) * inner, gn.eps, gn.weight?.value.data ?? null, gn.bias?.value.data ?? null, (i) => Math.floor(i / inner) % c);
  }

  test('normalizes each sample per group of channels; G = 1 (LayerNorm over C, H, W) and G = C (InstanceNorm)', () => {
    const rng = new Rng(11);
    for (const [groups, shape] of [
      [2, [3, 4, 3, 3]],
      [1, [2, 6, 2, 2]],
      [6, [2, 6, 2, 3]],
      [3, [4, 6]],
      [2, [2, 4, 5]],
    ] as const) {
      const gn = new GroupNorm(groups, shape[1], { eps: 1e-4 });
      randomizeAffine(gn, rng);
      const x = randomTensor([...shape], rng, 2, -1);
      assertClose(gn.forward(x).data, groupNormReference(x, groups, gn), 1e-5, `G=${groups} ${shape}`);
    }
    // G = C: every (sample, channel) plane has mean 0, variance ≈ 1 before the affine map.
    const instance = new GroupNorm(3, 3, { affine: false });
    const y = instance.forward(randomTensor([2, 3, 4, 4], rng, 5, 3));
    for (let p = 0; p < 6; p++) {
      const plane = y.data.subarray(p * 16, (p + 1) * 16);
      const m = plane.reduce((a, b) => a + b, 0) / 16;
      assert.ok(Math.abs(m) < 1e-5);
      assert.ok(Math.abs(plane.reduce((a, b) => a + (b - m) ** 2, 0) / 16 - 1) < 1e-3);
    }
  });

  test('independent of the batch: a batch of one works and matches', () => {
    const rng = new Rng(12);
    const gn = new GroupNorm(2, 4);
    randomizeAffine(gn, rng);
    const x = randomTensor([3, 4, 2, 2], rng);
    const batched = gn.forward(x).clone();
    const one = gn.forward(new Tensor([1, 4, 2, 2], x.data.slice(16, 32)));
    assert.deepEqual(one.data, batched.data.slice(16, 32));
    assert.deepEqual(gn.eval().forward(x).data, batched.data);
  });

  test('gradient check: dx, weight, bias (float64 central differences of Σ y·r)', () => {
    const rng = new Rng(13);
    const gn = new GroupNorm(2, 4);
    randomizeAffine(gn, rng);
    assertGradients(gn, randomTensor([2, 4, 3, 3], rng, 1.5, 0.5));
    const gn1 = new GroupNorm(3, 6);
    randomizeAffine(gn1, rng);
    assertGradients(gn1, randomTensor([3, 6], rng, 2));
    assertGradients(new GroupNorm(1, 3, { affine: false }), randomTensor([2, 3, 4], rng));
  });

  test('the check catches a wrong backward: the mean term dropped', () => {
    const rng = new Rng(14);
    const gn = new GroupNorm(2, 4);
    const kernels = (gn as unknown as { kernels: { batchNormBackward: unknown; batchNormBackwardFixedStats: unknown } }).kernels;
    (gn as unknown as { kernels: unknown }).kernels = { ...kernels, batchNormBackward: kernels.batchNormBackwardFixedStats };
    assert.ok(gradCheck(gn, randomTensor([2, 4, 3, 3], rng)).dx > 0.1);
  });

  test('PyTorch state-dict names and errors', () => {
    assert.deepEqual([...new GroupNorm(2, 4).stateDict().keys()], ['weight', 'bias']);
    assert.deepEqual(new GroupNorm(2, 4).weight!.value.shape, [4]);
    assert.equal(new GroupNorm(2, 4, { affine: false }).stateDict().size, 0);
    assert.throws(() => new GroupNorm(3, 10), /numChannels 10 is not divisible by numGroups 3.*Valid numGroups for 10 channels: 1, 2, 5, 10/);
    assert.throws(() => new GroupNorm(0, 4), /numGroups must be a positive integer/);
    const model = buildSequential([{ type: 'Conv2d', inChannels: 1, outChannels: 6, kernelSize: 3 }, { type: 'GroupNorm', numGroups: 2, numChannels: 8 }], { rng: new Rng(0) });
    assert.throws(() => model.forward(new Tensor([2, 1, 5, 5])), /GroupNorm\(2, 8, eps=0\.00001\) \(layer "1"\): expected input \[B, 8, \.\.\.\] \(8 channels in dim 1\), got \[2, 6, 3, 3\]\. numChannels must equal the previous layer's output channels/);
    const ctx = { rng: new Rng(0) };
    const gn = buildLayer({ type: 'GroupNorm', numGroups: 4, numChannels: 8, eps: 1e-3, affine: false }, ctx) as GroupNorm;
    assert.deepEqual(gn.config(), { numGroups: 4, numChannels: 8, eps: 1e-3, affine: false });
    assert.deepEqual(buildLayer(layerSpec(gn), ctx).config(), gn.config());
    assert.throws(() => buildLayer({ type: 'GroupNorm', numGroups: 4 }, ctx), /GroupNorm\.numChannels is required/);
  });
});

test('channelAffine kernels: out = x·scale[c] + shift[c]; dx = dy·scale[c], dScale += Σdy·x, dShift += Σdy', () => {
  const x = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]); // [B=2, C=2, L=2]
  const scale = Float32Array.from([2, -1]);
  const shift = Float32Array.from([0.5, 1]);
  const out = new Float32Array(8);
  referenceKernels.channelAffine(x, scale, shift, out, 2, 2, 2);
  assert.deepEqual(Array.from(out), [2.5, 4.5, -2, -3, 10.5, 12.5, -6, -7]);
  referenceKernels.channelAffine(x, scale, null, out, 2, 2, 2);
  assert.deepEqual(Array.from(out), [2, 4, -3, -4, 10, 12, -7, -8]);
  const dy = Float32Array.from([1, 0, 0, 1, 1, 1, 2, 0]);
  const dx = new Float32Array(8);
  const dScale = Float32Array.from([10, 10]);
  const dShift = Float32Array.from([0, 0]);
  referenceKernels.channelAffineBackward(dy, x, scale, dx, dScale, dShift, 2, 2, 2);
  assert.deepEqual(Array.from(dx, (v) => v + 0), [2, 0, 0, -1, 2, 2, -2, 0]); // + 0 turns -0 into 0
  assert.deepEqual(Array.from(dScale), [10 + 1 + 5 + 6, 10 + 4 + 14]);
  assert.deepEqual(Array.from(dShift), [3, 3]);
  // inner = 1 (LayerNorm's [R, D] layout) takes its own loop: the same results.
  const rows = new Float32Array(8);
  referenceKernels.channelAffine(x, Float32Array.from([1, 2, 3, 4]), Float32Array.from([0, 0, 0, 1]), rows, 2, 4, 1);
  assert.deepEqual(Array.from(rows), [1, 4, 9, 17, 5, 12, 21, 33]);
  const dScale1 = new Float32Array(4);
  const dShift1 = new Float32Array(4);
  referenceKernels.channelAffineBackward(dy, x, Float32Array.from([1, 2, 3, 4]), dx, dScale1, dShift1, 2, 4, 1);
  assert.deepEqual(Array.from(dx), [1, 0, 0, 4, 1, 2, 6, 0]);
  assert.deepEqual(Array.from(dScale1), [1 + 5, 6, 14, 4]);
  assert.deepEqual(Array.from(dShift1), [2, 1, 2, 1]);
});
