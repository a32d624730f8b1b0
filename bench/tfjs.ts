/**
 * The bench's workloads on @tensorflow/tfjs with its WebAssembly backend (tfjs-backend-wasm, SIMD), in
 * this process: what a TypeScript user picks today. Same networks, batch sizes and optimizer settings as
 * bnlab's side (workloads.ts), training with `optimizer.minimize` inside `tf.tidy`.
 */
import { bestSeconds } from './workloads.js';

type Tf = typeof import('@tensorflow/tfjs');

export interface TfjsResults {
  version: string;
  simd: boolean;
  threads: boolean;
  ioffe_mlp_bn_steps_per_s: number;
  ioffe_mlp_nobn_steps_per_s: number;
  mnist_cnn_bn_images_per_s: number | null;
  mnist_cnn_error: string | null;
  bn1d_fwd_bwd_ms: number;
  bn2d_fwd_bwd_ms: number;
  matmul_gflops: Record<string, number>;
}

export async function loadTfjsWasm(): Promise<Tf> {
  const tf = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-wasm');
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs: the wasm backend did not initialize');
  await tf.ready();
  return tf;
}

/** The paper's network in Keras layers: Dense → BatchNormalization (momentum 0.9 = bnlab's 0.1) → sigmoid. */
function ioffeMlp(tf: Tf, bn: boolean) {
  const model = tf.sequential();
  const sizes = [784, 100, 100, 100, 10];
  for (let i = 0; i < 4; i++) {
    model.add(tf.layers.dense({ units: sizes[i + 1], inputShape: i === 0 ? [784] : undefined, kernelInitializer: tf.initializers.randomNormal({ stddev: 0.1 }) }));
    if (i < 3) {
      if (bn) model.add(tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 }));
      model.add(tf.layers.activation({ activation: 'sigmoid' }));
    }
  }
  return model;
}

function mnistCnn(tf: Tf) {
  const model = tf.sequential();
  for (const [i, filters] of [32, 64].entries()) {
    model.add(tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', useBias: false, inputShape: i === 0 ? [28, 28, 1] : undefined }));
    model.add(tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 }));
    model.add(tf.layers.reLU());
    model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  }
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({ units: 10 }));
  return model;
}

/** Steps per second of SGD training on 20 random batches held as tensors. */
function trainingRate(tf: Tf, model: ReturnType<Tf['sequential']>, batch: number, sampleShape: number[], lr: number, momentum: number, repeats: number, inner: number): number {
  const batches = 20;
  const xs = Array.from({ length: batches }, () => tf.randomUniform([batch, ...sampleShape]));
  const ys = Array.from({ length: batches }, () => tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32') as import('@tensorflow/tfjs').Tensor1D, 10));
  const optimizer = momentum ? tf.train.momentum(lr, momentum) : tf.train.sgd(lr);
  let i = 0;
  const step = () => {
    const b = i++ % batches;
    tf.tidy(() => {
      optimizer.minimize(() => tf.losses.softmaxCrossEntropy(ys[b], model.apply(xs[b], { training: true }) as import('@tensorflow/tfjs').Tensor) as import('@tensorflow/tfjs').Scalar);
    });
  };
  for (let w = 0; w < 5; w++) step();
  const rate = 1 / bestSeconds(step, repeats, inner);
  tf.dispose([...xs, ...ys]);
  optimizer.dispose();
  return rate;
}

/** Forward + backward of batch norm over batch statistics: tf.moments + tf.batchNorm, gradient by tf.grads. */
function batchNormMs(tf: Tf, shape: number[], axes: number[], repeats: number, inner: number): number {
  const channels = shape[shape.length - 1];
  const x = tf.randomNormal(shape);
  const dy = tf.randomNormal(shape);
  const gamma = tf.ones([channels]);
  const beta = tf.zeros([channels]);
  const f = (xx: import('@tensorflow/tfjs').Tensor, g: import('@tensorflow/tfjs').Tensor, b: import('@tensorflow/tfjs').Tensor) => {
    const { mean, variance } = tf.moments(xx, axes);
    return tf.batchNorm(xx, mean, variance, b, g, 1e-5);
  };
  const grads = tf.grads(f);
  const run = () => tf.tidy(() => void grads([x, gamma, beta], dy));
  run();
  const ms = bestSeconds(run, repeats, inner) * 1000;
  tf.dispose([x, dy, gamma, beta]);
  return ms;
}

function matmulGflops(tf: Tf, m: number, k: number, n: number, transB: boolean, repeats: number, inner: number): number {
  const a = tf.randomNormal([m, k]);
  const b = tf.randomNormal(transB ? [n, k] : [k, n]);
  const run = () => tf.tidy(() => void tf.matMul(a, b, false, transB));
  run();
  const gflops = (2 * m * n * k) / bestSeconds(run, repeats, inner) / 1e9;
  tf.dispose([a, b]);
  return gflops;
}

export async function runTfjs(q: number): Promise<TfjsResults> {
  const tf = await loadTfjsWasm();
  const r = (n: number) => Math.max(1, Math.round(n * q));
  let cnn: number | null = null;
  let cnnError: string | null = null;
  try {
    cnn = 64 * trainingRate(tf, mnistCnn(tf), 64, [28, 28, 1], 0.05, 0.9, r(5), 1);
  } catch (e) {
    cnnError = (e as Error).message.split('\n')[0];
  }
  return {
    version: tf.version.tfjs,
    simd: tf.env().getBool('WASM_HAS_SIMD_SUPPORT'),
    threads: tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT'),
    ioffe_mlp_bn_steps_per_s: trainingRate(tf, ioffeMlp(tf, true), 60, [784], 0.5, 0, r(20), 5),
    ioffe_mlp_nobn_steps_per_s: trainingRate(tf, ioffeMlp(tf, false), 60, [784], 0.5, 0, r(20), 5),
    mnist_cnn_bn_images_per_s: cnn,
    mnist_cnn_error: cnnError,
    // tfjs is channels-last: BatchNorm2d's 32×64×32×32 (NCHW) is 32×32×32×64 here, the same work.
    bn1d_fwd_bwd_ms: batchNormMs(tf, [256, 1024], [0], r(20), 2),
    bn2d_fwd_bwd_ms: batchNormMs(tf, [32, 32, 32, 64], [0, 1, 2], r(5), 1),
    matmul_gflops: {
      '60x784x100': matmulGflops(tf, 60, 784, 100, true, r(40), 5),
      '1024x1024x1024': matmulGflops(tf, 1024, 1024, 1024, false, r(5), 1),
    },
  };
}
