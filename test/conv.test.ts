/**
 * The convolutional path: Conv2d, MaxPool2d, AvgPool2d and Flatten against direct formulas, their
 * finite-difference gradient checks (relative error < 1e-2, as in gradients.test.ts), their layer
 * specs and errors, and the `mnist-cnn` preset.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AvgPool2d,
  BatchNorm2d,
  Conv2d,
  Flatten,
  WINOGRAD_MIN_CHANNELS,
  Linear,
  MaxPool2d,
  ReLU,
  Rng,
  Sequential,
  Tanh,
  Tensor,
  buildLayer,
  buildPreset,
  buildSequential,
  layerSpec,
  referenceKernels,
  getBackend,
  type ConvAlgorithm,
  type Kernels,
  type Module,
  type Window2d,
} from '../src/index.js';
import { gradCheck, randomTensor } from './support/gradcheck.js';
import { assertClose } from './support/assert.js';

const TOL = 1e-2;

function assertGradients(module: Module, x: Tensor, options: { prepare?: () => void; zeroGradient?: string[]; h?: number } = {}) {
  const r = gradCheck(module, x, { prepare: options.prepare, h: options.h });
  assert.ok(r.dx < TOL, `dx relative error ${r.dx}`);
  const params = new Map(module.namedParameters());
  for (const [name, err] of Object.entries(r.params)) {
    if (options.zeroGradient?.includes(name)) {
      for (const g of params.get(name)!.grad.data) assert.ok(Math.abs(g) < 1e-4, `${name} should have a zero gradient, got ${g}`);
    } else assert.ok(err < TOL, `${name} relative error ${err}`);
  }
  return r;
}

/** y[b,o,oh,ow] = bias[o] + Σ_c,i,j w[o,c,i,j]·x[b,c,oh·sh-ph+i,ow·sw-pw+j] (zero outside), in float64. */
function directConv(x: Tensor, conv: Conv2d): Float64Array {
  const [B, C, H, W] = x.shape;
  const [kh, kw] = conv.kernelSize;
  const [sh, sw] = conv.stride;
  const [ph, pw] = conv.padding;
  const O = conv.outChannels;
  const OH = Math.floor((H + 2 * ph - kh) / sh) + 1;
  const OW = Math.floor((W + 2 * pw - kw) / sw) + 1;
  const w = conv.weight.value.data;
  const out = new Float64Array(B * O * OH * OW);
  for (let b = 0; b < B; b++)
    for (let o = 0; o < O; o++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let s = conv.bias ? conv.bias.value.data[o] : 0;
          for (let c = 0; c < C; c++)
            for (let i = 0; i < kh; i++)
              for (let j = 0; j < kw; j++) {
                const ih = oh * sh - ph + i;
                const iw = ow * sw - pw + j;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                s += w[((o * C + c) * kh + i) * kw + j] * x.data[((b * C + c) * H + ih) * W + iw];
              }
          out[((b * O + o) * OH + oh) * OW + ow] = s;
        }
  return out;
}


/** Values spaced 0.05 apart in random order: no two inputs of a pooling window are within 2h of each other. */
function distinctTensor(shape: number[], rng: Rng): Tensor {
  const t = new Tensor(shape);
  const order = rng.permutation(t.size);
  for (let i = 0; i < t.size; i++) t.data[i] = (order[i] - t.size / 2) * 0.05;
  return t;
}

const convCases: Array<[string, ConstructorParameters<typeof Conv2d>[0], number[]]> = [
  ['3x3, padding 1, bias', { inChannels: 2, outChannels: 3, kernelSize: 3, padding: 1 }, [2, 2, 5, 6]],
  ['stride 2, padding 1, non-square 3x2 kernel, no bias', { inChannels: 3, outChannels: 4, kernelSize: [3, 2], stride: 2, padding: 1, bias: false }, [2, 3, 7, 6]],
  ['stride [2, 1], padding [0, 2], 1x3 kernel', { inChannels: 2, outChannels: 2, kernelSize: [1, 3], stride: [2, 1], padding: [0, 2] }, [3, 2, 5, 4]],
  ['kernel as large as the input (a dense layer)', { inChannels: 2, outChannels: 3, kernelSize: [4, 3] }, [2, 2, 4, 3]],
  // Winograd F(2x2, 3x3): odd output sides leave half tiles; padding 0 and 2 make the input gradient pad by 2 and 0.
  ['Winograd, padding 1, bias, odd sides', { inChannels: 3, outChannels: 4, kernelSize: 3, padding: 1, algorithm: 'winograd' }, [2, 3, 5, 7]],
  ['Winograd, padding [0, 2], no bias', { inChannels: 2, outChannels: 3, kernelSize: 3, padding: [0, 2], bias: false, algorithm: 'winograd' }, [2, 2, 6, 5]],
  ['Winograd, 8 input channels, padding 1', { inChannels: 8, outChannels: 3, kernelSize: 3, padding: 1, algorithm: 'winograd' }, [2, 8, 4, 6]],
];

for (const [name, options, shape] of convCases) {
  test(`Conv2d forward matches the direct sum: ${name}`, () => {
    const rng = new Rng(1);
    const conv = new Conv2d({ ...options, rng });
    const x = randomTensor(shape, rng);
    const y = conv.forward(x);
    const expected = directConv(x, conv);
    assert.deepEqual([...y.shape], conv.outputShape(shape));
    assertClose(y.data, expected, 1e-5, 'y');
  });

  test(`Conv2d gradients (dx, dWeight, dBias): ${name}`, () => {
    const rng = new Rng(2);
    const conv = new Conv2d({ ...options, rng });
    const r = assertGradients(conv, randomTensor(shape, rng));
    assert.deepEqual(Object.keys(r.params), options.bias === false ? ['weight'] : ['weight', 'bias']);
  });
}

test('Conv2d algorithms: "auto" takes Winograd for 3x3, stride 1, padding <= 2 and 8+ input channels where the backend says it is faster; im2col and Winograd agree', () => {
  const make = (o: Partial<ConstructorParameters<typeof Conv2d>[0]>) => new Conv2d({ inChannels: 8, outChannels: 4, kernelSize: 3, padding: 1, ...o });
  assert.equal(make({}).usesWinograd, getBackend().capabilities.winograd === true);
  assert.equal(referenceKernels.capabilities.winograd, false);
  assert.equal(make({ inChannels: WINOGRAD_MIN_CHANNELS - 1 }).usesWinograd, false);
  assert.equal(make({ stride: 2 }).usesWinograd, false);
  assert.equal(make({ kernelSize: 5 }).usesWinograd, false);
  assert.equal(make({ padding: 3 }).usesWinograd, false);
  assert.equal(make({ algorithm: 'im2col' }).usesWinograd, false);
  assert.equal(make({ inChannels: 1, algorithm: 'winograd' }).usesWinograd, true);
  // The same layer both ways, forward and backward, on shapes with several tile rows and half tiles.
  for (const [shape, padding] of [[[3, 16, 14, 14], 1], [[2, 9, 9, 11], 0], [[1, 8, 5, 3], 2]] as Array<[number[], number]>) {
    const rng = new Rng(7);
    const a = make({ inChannels: shape[1], outChannels: 5, padding, algorithm: 'im2col', rng: new Rng(3) });
    const b = make({ inChannels: shape[1], outChannels: 5, padding, algorithm: 'winograd', rng: new Rng(3) });
    const x = randomTensor(shape, rng);
    const ya = a.forward(x), yb = b.forward(x);
    assertClose(yb.data, ya.data, 1e-5, `y ${shape}`);
    const dy = randomTensor([...ya.shape], rng);
    assertClose(b.backward(dy).data, a.backward(dy).data, 1e-5, `dx ${shape}`);
    // A filter gradient sums B·OH·OW products and can cancel to far less than them: the tolerance follows the largest.
    const largest = a.weight.grad.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assertClose(b.weight.grad.data, a.weight.grad.data, 1e-5 * largest, `dWeight ${shape}`);
    assertClose(b.bias!.grad.data, a.bias!.grad.data, 1e-6, `dBias ${shape}`, 'relative');
  }
  // Without the input gradient (a first layer), Winograd still gives the filter gradient.
  const first = make({ algorithm: 'winograd', rng: new Rng(3) }), reference = make({ algorithm: 'im2col', rng: new Rng(3) });
  first.inputGrad = reference.inputGrad = false;
  const xFirst = randomTensor([2, 8, 6, 6], new Rng(11)), dyFirst = randomTensor([2, 4, 6, 6], new Rng(12));
  first.forward(xFirst), reference.forward(xFirst);
  assert.equal(first.backward(dyFirst).size, 0);
  reference.backward(dyFirst);
  assertClose(first.weight.grad.data, reference.weight.grad.data, 1e-5, 'dWeight without the input gradient', 'relative');
  // A layer switched between forward and backward still runs the backward of its forward's algorithm.
  const c = make({ algorithm: 'winograd', rng: new Rng(3) });
  const x = randomTensor([2, 8, 6, 6], new Rng(9));
  const y = c.forward(x);
  c.algorithm = 'im2col';
  const dx = c.backward(randomTensor([...y.shape], new Rng(10)));
  const d = make({ algorithm: 'winograd', rng: new Rng(3) });
  d.forward(x);
  assertClose(dx.data, d.backward(randomTensor([...y.shape], new Rng(10))).data, 0, 'dx after a switch');
});

test('Conv2d algorithms: errors name the layer, the algorithm and the fix', () => {
  assert.throws(() => new Conv2d({ inChannels: 2, outChannels: 2, kernelSize: 5, algorithm: 'winograd' }), /Conv2d\(2, 2, kernel=5\): the 'winograd' algorithm needs a 3x3 kernel, stride 1 and padding of at most 2; use 'im2col'/);
  assert.throws(() => new Conv2d({ inChannels: 2, outChannels: 2, kernelSize: 3, stride: 2, algorithm: 'winograd' }), /needs a 3x3 kernel, stride 1/);
  const conv = new Conv2d({ inChannels: 2, outChannels: 2, kernelSize: 3 });
  assert.throws(() => (conv.algorithm = 'fft' as ConvAlgorithm), /algorithm must be one of auto, im2col, winograd, got "fft"/);
  assert.equal(conv.algorithm, 'auto');
});

test('Conv2d: output size floor((H + 2p - k) / s) + 1 and PyTorch state-dict names and shapes', () => {
  const conv = new Conv2d({ inChannels: 3, outChannels: 8, kernelSize: [5, 3], stride: 2, padding: [2, 1] });
  assert.deepEqual(conv.outputShape([4, 3, 28, 27]), [4, 8, 14, 14]);
  const dict = conv.stateDict();
  assert.deepEqual([...dict.keys()], ['weight', 'bias']);
  assert.deepEqual([...dict.get('weight')!.shape], [8, 3, 5, 3]);
  assert.deepEqual([...dict.get('bias')!.shape], [8]);
});

test('Conv2d: PyTorch default init U(-1/√fanIn, 1/√fanIn) with fanIn = C·KH·KW; Kaiming-normal on request', () => {
  const conv = new Conv2d({ inChannels: 4, outChannels: 64, kernelSize: 3, rng: new Rng(3) });
  const bound = 1 / Math.sqrt(4 * 9);
  const w = conv.weight.value.data;
  assert.ok(w.every((v) => Math.abs(v) <= bound) && Math.max(...w) > 0.9 * bound, 'weights fill U(-b, b)');
  assert.ok(conv.bias!.value.data.every((v) => Math.abs(v) <= bound));
  const he = new Conv2d({ inChannels: 32, outChannels: 64, kernelSize: 3, init: { name: 'kaiming-normal', nonlinearity: 'relu' }, rng: new Rng(4) });
  const v = he.weight.value.data;
  const std = Math.sqrt(v.reduce((s, a) => s + a * a, 0) / v.length);
  assert.ok(Math.abs(std / Math.sqrt(2 / (32 * 9)) - 1) < 0.05, `std ${std}`);
  assert.ok(he.bias!.value.data.every((b) => b === 0));
});

test('im2col and col2im are adjoint: <im2col(x), c> = <x, col2im(c)>', () => {
  const rng = new Rng(5);
  const [B, C, H, W] = [2, 3, 6, 5];
  const g: Window2d = { height: H, width: W, kernelH: 3, kernelW: 2, strideH: 2, strideW: 1, padH: 1, padW: 1, outH: 3, outW: 6 };
  const x = randomTensor([B, C, H, W], rng).data;
  const cols = new Float32Array(B * C * 6 * g.outH * g.outW);
  referenceKernels.im2col(x, cols, B, C, g);
  const c = randomTensor([cols.length], rng).data;
  const back = new Float32Array(x.length).fill(7); // col2im must overwrite, not add to, what was there
  referenceKernels.col2im(c, back, B, C, g);
  let lhs = 0;
  let rhs = 0;
  for (let i = 0; i < cols.length; i++) lhs += cols[i] * c[i];
  for (let i = 0; i < x.length; i++) rhs += x[i] * back[i];
  assert.ok(Math.abs(lhs - rhs) < 1e-3 * Math.abs(lhs), `${lhs} vs ${rhs}`);
});

test('the check catches a missing term: col2im that keeps only the last overlapping window fails', () => {
  const rng = new Rng(6);
  const conv = new Conv2d({ inChannels: 2, outChannels: 3, kernelSize: 3, padding: 1, rng });
  // The same walk as the reference col2im, with = instead of +=: the sum over overlapping windows is lost.
  const col2imAssign: Kernels['col2im'] = (cols, dx, batch, channels, g) => {
    dx.fill(0);
    let src = 0;
    for (let bc = 0; bc < batch * channels; bc++)
      for (let i = 0; i < g.kernelH; i++)
        for (let j = 0; j < g.kernelW; j++)
          for (let oh = 0; oh < g.outH; oh++)
            for (let ow = 0; ow < g.outW; ow++, src++) {
              const ih = oh * g.strideH - g.padH + i;
              const iw = ow * g.strideW - g.padW + j;
              if (ih >= 0 && ih < g.height && iw >= 0 && iw < g.width) dx[(bc * g.height + ih) * g.width + iw] = cols[src];
            }
  };
  (conv as unknown as { kernels: Kernels }).kernels = { ...referenceKernels, col2im: col2imAssign };
  const r = gradCheck(conv, randomTensor([2, 2, 5, 5], rng));
  assert.ok(r.dx > 0.1, `a wrong backward must fail the check (relative error ${r.dx})`);
  assert.ok(r.params.weight < TOL, 'only dx is broken');
});

test('MaxPool2d: forward by hand, PyTorch-style stride default, and gradients to the argmax', () => {
  const pool = new MaxPool2d({ kernelSize: 2 });
  const x = Tensor.from([1, 1, 4, 4], [1, 5, 2, 0, 3, 4, 8, 1, 0, 0, 1, 1, 9, 0, 2, 3]);
  assert.deepEqual(pool.forward(x).toArray(), [5, 8, 9, 3]);
  const dx = pool.backward(Tensor.from([1, 1, 2, 2], [1, 2, 3, 4]));
  assert.deepEqual(dx.toArray(), [0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 3, 0, 0, 4]);
  const rng = new Rng(7);
  assertGradients(new MaxPool2d({ kernelSize: 2 }), distinctTensor([2, 3, 6, 5], rng));
  // Overlapping windows (stride < kernel) and -∞ padding: one input can win several windows.
  assertGradients(new MaxPool2d({ kernelSize: 3, stride: 1, padding: 1 }), distinctTensor([2, 2, 4, 5], rng));
  assertGradients(new MaxPool2d({ kernelSize: [2, 3], stride: [1, 2] }), distinctTensor([1, 2, 5, 7], rng));
});

test('a ReLU followed by MaxPool2d runs fused in a Sequential (with the batch norm before them, in forward and backward): the same outputs and gradients as the layers one by one', () => {
  const rng = new Rng(31);
  // The 2×2 window (its fast path) and an overlapping 3×3 / stride 1 / padding 1 one (the general path).
  for (const pool of [{ kernelSize: 2 }, { kernelSize: 3, stride: 1, padding: 1 }]) {
    const build = () => {
      const r = new Rng(5);
      return new Sequential(
        new Conv2d({ inChannels: 2, outChannels: 3, kernelSize: 3, padding: 1, bias: false, rng: r }),
        new BatchNorm2d(3),
        new ReLU(),
        new MaxPool2d(pool),
        new Flatten(),
        new Linear(3 * (pool.kernelSize === 2 ? 16 : 64), 4, { rng: r }),
      );
    };
    // 8×8 maps: the 2×2 pooling also takes the batch norm into its pass (batchNormReluMaxPool2x2).
    const x = randomTensor([5, 2, 8, 8], rng);
    const dy = randomTensor([5, 4], rng);
    const fused = build();
    const apart = build();
    apart.fuseReluPool = false;
    // With the 2×2 pooling the batch norm's backward runs through the ReLU and the pooling in one pass
    // (backwardThroughReluPool): its sums add up in another order, so the gradients agree to rounding;
    // the forward, and everything of the 3×3 pooling, bit for bit. Two passes: the parameters' gradients
    // add up over both.
    const withBatchNorm = pool.kernelSize === 2;
    const same = (actual: Float32Array, expected: Float32Array, what: string) => (withBatchNorm ? assertClose(actual, expected, 1e-5, what, 'relative') : assert.deepEqual(actual, expected, what));
    for (let step = 0; step < 2; step++) {
      const yf = fused.forward(x), ya = apart.forward(x);
      assert.deepEqual(yf.data, ya.data, `output, pool ${JSON.stringify(pool)}`);
      const dxf = fused.backward(dy), dxa = apart.backward(dy);
      same(dxf.data, dxa.data, `input gradient, pool ${JSON.stringify(pool)}`);
    }
    const a = fused.namedParameters(), b = apart.namedParameters();
    for (let i = 0; i < a.length; i++) same(a[i][1].grad.data, b[i][1].grad.data, a[i][0]);
    // The fused backward really ran: the pooling's own backward never did (it keeps no input gradient).
    const poolDx = (m: Sequential) => (m.layers[3] as unknown as { dx: Tensor | null }).dx;
    assert.equal(poolDx(fused) === null, withBatchNorm, 'the batch norm took the pooling and the ReLU into its backward with the 2×2 pooling only');
    assert.notEqual(poolDx(apart), null);
    // The fused pass really ran: the ReLU layer itself was never called, and with the 2×2 pooling the
    // batch norm handed its normalized values to the pooling (its `pooled` output).
    assert.equal((fused.layers[2] as unknown as { y: Tensor | null }).y, null, 'the fused ReLU keeps no output');
    assert.notEqual((apart.layers[2] as unknown as { y: Tensor | null }).y, null);
    const pooledBy = (m: Sequential) => (m.layers[1] as unknown as { pooled: Tensor | null }).pooled;
    assert.equal(pooledBy(fused), pool.kernelSize === 2 ? (fused.layers[3] as unknown as { y: Tensor }).y : null, 'the batch norm joined the 2×2 pooling only');
    assert.equal(pooledBy(apart), null);
  }
  // Where the batch norm cannot join (a map too narrow for its kernel, or eval mode with running
  // statistics), the ReLU and the pooling still run fused, with the same results.
  for (const [shape, train] of [[[4, 2, 6, 6], true], [[4, 2, 8, 8], false]] as const) {
    const build = () => {
      const r = new Rng(8);
      return new Sequential(new Conv2d({ inChannels: 2, outChannels: 3, kernelSize: 3, padding: 1, rng: r }), new BatchNorm2d(3), new ReLU(), new MaxPool2d({ kernelSize: 2 }));
    };
    const x = randomTensor([...shape], rng);
    const fused = build(), apart = build();
    apart.fuseReluPool = false;
    for (const m of [fused, apart]) {
      m.forward(x); // one training step's statistics, then the mode under test
      if (!train) m.eval();
    }
    assert.deepEqual(fused.forward(x).data, apart.forward(x).data, `${JSON.stringify(shape)} train=${train}`);
  }
  // Finite differences through the fused batch norm, ReLU and pooling (8×8 maps fit that pass), every
  // parameter included: gamma and beta moved off 1 and 0, so the ReLU cuts the normalized values unevenly.
  {
    const r = new Rng(12);
    const block = new Sequential(new Conv2d({ inChannels: 2, outChannels: 3, kernelSize: 3, padding: 1, bias: false, rng: r }), new BatchNorm2d(3), new ReLU(), new MaxPool2d({ kernelSize: 2 }));
    const bn = block.layers[1] as BatchNorm2d;
    bn.weight!.value.data.set([1.5, 0.7, -1.1]);
    bn.bias!.value.data.set([0.3, -0.2, 0.1]);
    const xb = distinctTensor([3, 2, 8, 8], rng);
    const check = assertGradients(block, xb, { h: 1e-3 });
    assert.ok(check.params['1.weight'] < TOL && check.params['1.bias'] < TOL);
    assert.equal((block.layers[3] as unknown as { dx: Tensor | null }).dx, null, 'checked through the fused backward');
  }
  // Finite differences through the fused pair (inputs at least 0.0125 from the ReLU's kink).
  const x = distinctTensor([2, 3, 6, 4], rng);
  for (let i = 0; i < x.size; i++) x.data[i] += 0.0125;
  assertGradients(new Sequential(new ReLU(), new MaxPool2d({ kernelSize: 2 })), x, { h: 1e-3 });
  assertGradients(new Sequential(new ReLU(), new MaxPool2d({ kernelSize: 3, stride: 1, padding: 1 })), x, { h: 1e-3 });
});

test('MaxPool2d after a fused forward takes only the fused backward, and the other way round', () => {
  const pool = new MaxPool2d({ kernelSize: 2 });
  const x = randomTensor([1, 1, 4, 4], new Rng(2));
  const y = pool.forwardAfterRelu(x);
  assert.throws(() => pool.backward(Tensor.full(y.shape, 1)), /MaxPool2d\(kernel=2\): its last forward was fused with the ReLU before it \(forwardAfterRelu\), so its backward is backwardAfterRelu/);
  pool.forward(x);
  assert.throws(() => pool.backwardAfterRelu(Tensor.full(y.shape, 1)), /backwardAfterRelu needs a forwardAfterRelu before it/);
});

test('MaxPool2d: padding never wins, even over negative inputs', () => {
  const pool = new MaxPool2d({ kernelSize: 3, stride: 2, padding: 1 });
  const x = Tensor.from([1, 1, 3, 3], [-5, -4, -3, -2, -1, -6, -7, -8, -9]);
  assert.deepEqual(pool.forward(x).toArray(), [-1, -1, -1, -1]);
});

test('AvgPool2d: count_include_pad averages, forward by hand and gradients', () => {
  const pool = new AvgPool2d({ kernelSize: 2 });
  const x = Tensor.from([1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(pool.forward(x).toArray(), [3.5, 5.5]);
  const padded = new AvgPool2d({ kernelSize: 3, stride: 1, padding: 1 });
  // On a 3x3 input of ones, a corner window covers 4 real values of 9, an edge window 6, the centre 9.
  const y = padded.forward(Tensor.full([1, 1, 3, 3], 1));
  assertClose(y.data, [4, 6, 4, 6, 9, 6, 4, 6, 4].map((v) => v / 9), 1e-6, 'padded averages');
  const rng = new Rng(8);
  assertGradients(new AvgPool2d({ kernelSize: 2 }), randomTensor([2, 3, 4, 6], rng));
  assertGradients(new AvgPool2d({ kernelSize: 3, stride: 2, padding: 1 }), randomTensor([2, 2, 5, 6], rng));
  assertGradients(new AvgPool2d({ kernelSize: [3, 2], stride: 1 }), randomTensor([1, 2, 4, 5], rng));
});

test('Flatten: (B, ...) to (B, prod) as a view, backward back to the input shape', () => {
  const flatten = new Flatten();
  const x = randomTensor([3, 2, 4, 5], new Rng(9));
  const y = flatten.forward(x);
  assert.deepEqual([...y.shape], [3, 40]);
  assert.deepEqual(y.toArray(), x.toArray());
  const dy = randomTensor([3, 40], new Rng(10));
  const dx = flatten.backward(dy);
  assert.deepEqual([...dx.shape], [3, 2, 4, 5]);
  assert.deepEqual(dx.toArray(), dy.toArray());
  assert.strictEqual(flatten.forward(x), y, 'the same buffers and shape give the same tensor: no allocation per step');
  assertGradients(new Flatten(), randomTensor([2, 3, 2, 2], new Rng(11)));
});

test('BatchNorm2d training mode: gradients through the per-channel statistics over B, H and W', () => {
  const rng = new Rng(12);
  const bn = new BatchNorm2d(4);
  for (let c = 0; c < 4; c++) {
    bn.weight!.value.data[c] = 0.5 + rng.uniform();
    bn.bias!.value.data[c] = rng.normal();
  }
  assertGradients(bn, randomTensor([3, 4, 3, 5], rng, 2, 1), { prepare: () => bn.resetRunningStats() });
});

test('a whole CNN: conv → BN2d → tanh → max-pool → conv → avg-pool → Flatten → Linear', () => {
  const rng = new Rng(14);
  const model = new Sequential(
    new Conv2d({ inChannels: 2, outChannels: 3, kernelSize: 3, padding: 1, rng }),
    new BatchNorm2d(3),
    new Tanh(),
    new MaxPool2d({ kernelSize: 2 }),
    new Conv2d({ inChannels: 3, outChannels: 4, kernelSize: 2, stride: 1, rng }),
    new AvgPool2d({ kernelSize: 2 }),
    new Flatten(),
    new Linear(4, 3, { rng }),
  );
  const bn = model.layers[1] as BatchNorm2d;
  // Tanh rather than ReLU and a smaller step: a step of 1e-2 in a first-layer weight moves every
  // activation of its channel and can flip a max-pool winner, which finite differences cannot follow.
  // BN subtracts the channel mean, so the first convolution's bias has a zero gradient.
  const r = assertGradients(model, randomTensor([4, 2, 6, 6], rng), { prepare: () => bn.resetRunningStats(), zeroGradient: ['0.bias'], h: 3e-3 });
  assert.equal(Object.keys(r.params).length, 8);
});

test('Conv2d and pooling reuse their buffers from step to step', () => {
  const rng = new Rng(14);
  const conv = new Conv2d({ inChannels: 1, outChannels: 2, kernelSize: 3, rng });
  const pool = new MaxPool2d({ kernelSize: 2 });
  const x = randomTensor([2, 1, 6, 6], rng);
  const y1 = conv.forward(x);
  const p1 = pool.forward(y1);
  const dx1 = conv.backward(pool.backward(Tensor.full(p1.shape, 1)));
  const y2 = conv.forward(x);
  const p2 = pool.forward(y2);
  const dx2 = conv.backward(pool.backward(Tensor.full(p2.shape, 1)));
  assert.strictEqual(y2, y1);
  assert.strictEqual(p2, p1);
  assert.strictEqual(dx2, dx1);
});

test('errors: wrong rank, channel mismatch and a kernel larger than the padded input name the layer, both shapes and the fix', () => {
  const conv = new Conv2d({ inChannels: 1, outChannels: 16, kernelSize: 3 });
  assert.throws(() => conv.forward(new Tensor([60, 784])), (e: Error) => e.message.startsWith('Conv2d(1, 16, kernel=3): expected input [B, 1, H, W], got [60, 784]. ') && /image shape/.test(e.message));
  assert.throws(() => conv.forward(new Tensor([1, 28, 28])), /expected input \[B, 1, H, W\], got \[1, 28, 28\].*add the batch dimension/);
  assert.throws(() => conv.forward(new Tensor([8, 3, 28, 28])), /expected input \[B, 1, H, W\], got \[8, 3, 28, 28\]\. inChannels \(1\) must equal the input's channel count \(dimension 1, here 3\)/);
  const big = new Conv2d({ inChannels: 1, outChannels: 2, kernelSize: 5, stride: 2 });
  assert.throws(() => big.forward(new Tensor([1, 1, 3, 4])), /Conv2d\(1, 2, kernel=5, stride=2\): kernel 5x5 is larger than the padded input 3x4 \(input \[1, 1, 3, 4\], padding 0x0\)/);
  assert.deepEqual(new Conv2d({ inChannels: 1, outChannels: 2, kernelSize: 5, padding: 1 }).outputShape([1, 1, 3, 3]), [1, 2, 1, 1]);
  const model = buildSequential([{ type: 'Flatten' }, { type: 'Conv2d', in: 1, out: 4, kernel: 3 }], { rng: new Rng(0) });
  assert.throws(() => model.forward(new Tensor([2, 1, 8, 8])), /^Error: Conv2d\(1, 4, kernel=3\) \(layer "1"\): expected input \[B, 1, H, W\], got \[2, 64\]/);
  assert.throws(() => new MaxPool2d({ kernelSize: 2 }).forward(new Tensor([4, 10])), /MaxPool2d\(kernel=2\): expected input \[B, C, H, W\], got \[4, 10\]/);
  assert.throws(() => new AvgPool2d({ kernelSize: 4 }).forward(new Tensor([1, 1, 3, 8])), /kernel 4x4 is larger than the padded input 3x8/);
  assert.throws(() => new Flatten().forward(new Tensor([5])), /Flatten: expected input \[B, \.\.\.\] with at least 2 dimensions, got \[5\]/);
  assert.throws(() => new Conv2d({ inChannels: 1, outChannels: 2, kernelSize: 3 }).backward(new Tensor([1, 2, 1, 1])), /backward\(\) called before forward\(\)/);
  conv.forward(new Tensor([2, 1, 5, 5]));
  assert.throws(() => conv.backward(new Tensor([2, 16, 5, 5])), /expected a gradient of shape \[2, 16, 3, 3\]/);
});

test('errors: invalid constructor options', () => {
  assert.throws(() => new Conv2d({ inChannels: 1.5, outChannels: 2, kernelSize: 3 }), /Conv2d: inChannels must be a positive integer, got 1\.5/);
  assert.throws(() => new Conv2d({ inChannels: 1, outChannels: 2, kernelSize: 0 }), /kernelSize must be an integer >= 1/);
  assert.throws(() => new Conv2d({ inChannels: 1, outChannels: 2, kernelSize: 3, stride: [1, 2, 3] as unknown as [number, number] }), /stride must be an integer >= 1 or a pair/);
  assert.throws(() => new Conv2d({ inChannels: 1, outChannels: 2, kernelSize: 3, padding: -1 }), /padding must be an integer >= 0/);
  assert.throws(() => new MaxPool2d({ kernelSize: 2, padding: 2 }), /MaxPool2d: padding 2 must be at most half the kernel size 2/);
  assert.throws(() => new AvgPool2d({ kernelSize: 2, stride: 0 }), /AvgPool2d: stride must be an integer >= 1/);
});

test('layer specs: aliases, pairs, validation of every number, and a round trip through config()', () => {
  const ctx = { rng: new Rng(0) };
  const conv = buildLayer({ type: 'Conv2d', in: 3, out: 8, kernel: [3, 5], stride: 2, padding: [1, 2], bias: false }, ctx) as Conv2d;
  assert.equal(conv.describe(), 'Conv2d(3, 8, kernel=3x5, stride=2, padding=1x2, bias=false)');
  assert.equal(buildLayer({ type: 'Conv2d', inChannels: 3, outChannels: 8, kernelSize: 3 }, ctx).describe(), 'Conv2d(3, 8, kernel=3)');
  for (const layer of [conv, buildLayer({ type: 'MaxPool2d', kernel: 3, stride: 2, padding: 1 }, ctx), buildLayer({ type: 'AvgPool2d', kernelSize: [2, 3] }, ctx), buildLayer({ type: 'Flatten' }, ctx)]) {
    const again = buildLayer(layerSpec(layer), ctx);
    assert.equal(again.describe(), layer.describe());
    assert.deepEqual(again.config(), layer.config());
  }
  assert.equal(buildLayer({ type: 'MaxPool2d', kernel: 2 }, ctx).describe(), 'MaxPool2d(kernel=2)');
  // The convolution algorithm: in the config only when chosen, and rebuilt from it.
  assert.equal('algorithm' in conv.config(), false);
  const chosen = buildLayer({ type: 'Conv2d', in: 16, out: 8, kernel: 3, padding: 1, algorithm: 'im2col' }, ctx) as Conv2d;
  assert.equal(chosen.config().algorithm, 'im2col');
  assert.equal(chosen.describe(), 'Conv2d(16, 8, kernel=3, padding=1, algorithm=im2col)');
  assert.equal((buildLayer(layerSpec(chosen), ctx) as Conv2d).usesWinograd, false);
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ type: 'Conv2d', in: 1, out: 4, kernel: 3, algorithm: 'fft' }, /Conv2d\.algorithm must be one of "auto", "im2col", "winograd", got "fft"/],
    [{ type: 'Conv2d', in: 1, out: 4, kernel: 5, algorithm: 'winograd' }, /the 'winograd' algorithm needs a 3x3 kernel/],
    [{ type: 'Conv2d', in: 1, out: 4 }, /Conv2d\.kernelSize is required/],
    [{ type: 'Conv2d', in: 0, out: 4, kernel: 3 }, /Conv2d\.inChannels must be an integer in \[1, \d+\], got 0/],
    [{ type: 'Conv2d', in: 1, out: '4', kernel: 3 }, /Conv2d\.outChannels must be an integer/],
    [{ type: 'Conv2d', in: 1, out: 4, kernel: [3, 0] }, /Conv2d\.kernelSize must be an integer in \[1, /],
    [{ type: 'Conv2d', in: 1, out: 4, kernel: [3, 3, 3] }, /Conv2d\.kernelSize must be an integer or a pair \[height, width\]/],
    [{ type: 'Conv2d', in: 1, out: 4, kernel: 3, stride: 1.5 }, /Conv2d\.stride must be an integer in \[1, /],
    [{ type: 'Conv2d', in: 1, out: 4, kernel: 3, padding: -1 }, /Conv2d\.padding must be an integer in \[0, /],
    [{ type: 'Conv2d', in: 1, out: 4, kernel: 3, bias: 'no' }, /Conv2d\.bias must be true or false/],
    [{ type: 'Conv2d', in: 4096, out: 4096, kernel: 9 }, /weights is more than the limit/],
    [{ type: 'MaxPool2d' }, /MaxPool2d\.kernelSize is required/],
    [{ type: 'MaxPool2d', kernel: 2, stride: 0 }, /MaxPool2d\.stride must be an integer in \[1, /],
    [{ type: 'AvgPool2d', kernel: 1e9 }, /AvgPool2d\.kernelSize must be an integer in \[1, /],
    [{ type: 'AvgPool2d', kernel: 2, padding: 3 }, /padding 3 must be at most half the kernel size 2/],
  ];
  for (const [spec, message] of bad) assert.throws(() => buildLayer(spec as never, ctx), message, JSON.stringify(spec));
});

test('mnist-cnn preset: shapes, BN placement, conv bias only without BN, Kaiming-normal init', () => {
  const model = buildPreset('mnist-cnn', { seed: 0 });
  assert.deepEqual(model.layers.map((l) => l.typeName), ['Conv2d', 'BatchNorm2d', 'ReLU', 'MaxPool2d', 'Conv2d', 'BatchNorm2d', 'ReLU', 'MaxPool2d', 'Flatten', 'Linear', 'BatchNorm1d', 'ReLU', 'Linear']);
  assert.equal((model.layers[9] as Linear).bias, null, 'no bias right before BN');
  assert.deepEqual(model.outputShape([5, 1, 28, 28]), [5, 10]);
  const convs = model.layers.filter((l): l is Conv2d => l instanceof Conv2d);
  assert.ok(convs.every((c) => c.bias === null));
  const w = convs[1].weight.value.data;
  const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
  assert.ok(Math.abs(std / Math.sqrt(2 / (convs[1].inChannels * 9)) - 1) < 0.05, `Kaiming-normal std, got ${std}`);
  const plain = buildPreset('mnist-cnn', { bn: false, seed: 0 });
  assert.deepEqual(plain.layers.map((l) => l.typeName), ['Conv2d', 'ReLU', 'MaxPool2d', 'Conv2d', 'ReLU', 'MaxPool2d', 'Flatten', 'Linear', 'ReLU', 'Linear']);
  assert.notEqual((plain.layers[7] as Linear).bias, null);
  assert.ok(plain.layers.filter((l): l is Conv2d => l instanceof Conv2d).every((c) => c.bias !== null));
  // The same seed builds the same weights.
  assert.deepEqual(buildPreset('mnist-cnn', { seed: 0 }).stateDict().get('0.weight')!.toArray(), model.stateDict().get('0.weight')!.toArray());
});
