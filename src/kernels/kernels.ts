/**
 * The kernel interface: every hot loop of training goes through one of these functions, so a faster
 * backend (WebAssembly SIMD, workers) can replace the reference TypeScript one without touching the
 * modules. Kernels work on flat row-major Float32Arrays plus their sizes, as in llm.c: no shapes, no
 * allocation, no validation (the modules validate; kernels trust their arguments).
 *
 * Shape legend: M, K, N = matmul sizes (out[M,N] = A[M,K] · B[K,N]); R = rows, C = columns or channels;
 * B = batch; L = values per channel and sample (1 for (B, C) input, H*W for images).
 * Images: H, W = height, width; KH, KW = kernel; OH, OW = output height, width; P = B·C planes.
 */
export interface Kernels {
  /** The name the backend is registered under ('ts', or a plug-in's: see index.ts). */
  readonly name: string;
  /** What this backend instance can do; callers ask for these, never for a backend by name. */
  readonly capabilities: BackendCapabilities;
  /**
   * Present when the backend's memory can be shared with other threads (data-parallel training: a
   * replica on a worker runs on the same memory, so weights are read in place).
   */
  readonly sharing?: SharedKernelMemory;
  /**
   * The most threads one kernel call may use, from 1 (the calling thread only) to capabilities.threads,
   * as torch.set_num_threads sets it. Data-parallel training sets 1 on its own thread while a step runs:
   * its replicas' threads already take the other cores. Absent where every call runs on one thread.
   */
  threadLimit?: number;

  /**
   * Allocate a zeroed Float32Array the backend can work on directly (a fast backend places it in its own
   * memory). The block belongs to the backend until `release(array)` gives it back (or the backend is
   * disposed): it is never reclaimed behind the caller's back, so subarrays and other threads' views of
   * it stay valid for exactly as long as its owner keeps it.
   */
  allocate(length: number): Float32Array;
  /**
   * Give back a block `allocate()` returned (the array itself, not a subarray), once nothing uses it or
   * a view of it any more. Arrays the backend did not hand out (ordinary ones) are ignored.
   */
  release(array: Float32Array): void;

  /**
   * out[M,N] = op(a)[M,K] · op(b)[K,N] (or += when `accumulate`).
   * op(a) = a ([M,K]) or aᵀ (a stored as [K,M] when `transA`); op(b) = b ([K,N]) or bᵀ (b stored as [N,K]).
   */
  matmul(a: Float32Array, b: Float32Array, out: Float32Array, m: number, k: number, n: number, opts?: MatmulOptions): void;

  /** out[r,c] = x[r,c] + v[c] (out may be x). */
  addRowVector(x: Float32Array, v: Float32Array, out: Float32Array, rows: number, cols: number): void;
  /** out[c] = Σ_r x[r,c] (or += when `accumulate`). */
  sumRows(x: Float32Array, out: Float32Array, rows: number, cols: number, accumulate: boolean): void;
  /** out[o,i] = Σ_a x[o,a,i] for x of shape [outer, axis, inner]: a sum over any one axis. */
  sumAxis(x: Float32Array, out: Float32Array, outer: number, axis: number, inner: number): void;

  /**
   * out[i] = value for every i: zeroing gradients and filling biases. A kernel because V8 fills a typed
   * array over shared memory (a threaded backend's) about 10x slower than one over ordinary memory.
   */
  fill(out: Float32Array, value: number): void;

  /** Element-wise out = a + b, out = a * s, out = a * b, out += s * a. */
  add(a: Float32Array, b: Float32Array, out: Float32Array): void;
  scale(a: Float32Array, s: number, out: Float32Array): void;
  mul(a: Float32Array, b: Float32Array, out: Float32Array): void;
  axpy(s: number, a: Float32Array, out: Float32Array): void;
  /** target += source, then source = 0, in one pass: data-parallel training's gradient sum, each replica's buffer left ready for its next accumulation. */
  addAndClear(target: Float32Array, source: Float32Array): void;

  /** Activations: forward from x, backward from the cached forward output y (sigmoid, tanh) or input x (relu). */
  sigmoid(x: Float32Array, y: Float32Array): void;
  sigmoidBackward(y: Float32Array, dy: Float32Array, dx: Float32Array): void;
  tanh(x: Float32Array, y: Float32Array): void;
  tanhBackward(y: Float32Array, dy: Float32Array, dx: Float32Array): void;
  relu(x: Float32Array, y: Float32Array): void;
  reluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array): void;

  /** Row-wise softmax of x[R,C], subtracting the row maximum first for stability. */
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  /**
   * Mean softmax cross-entropy of logits[R,C] against integer labels; writes the probabilities
   * (needed by the backward) and returns the loss.
   */
  softmaxCrossEntropy(logits: Float32Array, labels: Int32Array, probs: Float32Array, rows: number, cols: number): number;
  /** dlogits = (probs - onehot(labels)) / R: the gradient of the mean loss. */
  softmaxCrossEntropyBackward(probs: Float32Array, labels: Int32Array, dlogits: Float32Array, rows: number, cols: number): void;

  /**
   * Per-channel affine map out[b,c,l] = x[b,c,l]·scale[c] + shift[c] (`shift` null means 0). The
   * elementwise affine of LayerNorm ([R, D] as B = R, C = D, L = 1) and GroupNorm ([B, C, L]).
   */
  channelAffine(x: Float32Array, scale: Float32Array, shift: Float32Array | null, out: Float32Array, batch: number, channels: number, inner: number): void;
  /** Backward of channelAffine: dx = dy·scale[c]; accumulates dScale[c] += Σ dy·x and dShift[c] += Σ dy when given. */
  channelAffineBackward(dy: Float32Array, x: Float32Array, scale: Float32Array, dx: Float32Array, dScale: Float32Array | null, dShift: Float32Array | null, batch: number, channels: number, inner: number): void;

  /** Per-channel batch mean and biased variance of x[B,C,L] over B and L. */
  channelMoments(x: Float32Array, mean: Float32Array, variance: Float32Array, batch: number, channels: number, inner: number): void;
  /**
   * y = xhat * scale[c] + shift[c] with xhat = (x - mean[c]) * invStd[c]; stores xhat when given (training
   * keeps it for the backward). `scale`/`shift` null means 1/0 (affine off).
   */
  batchNormApply(x: Float32Array, mean: Float32Array, invStd: Float32Array, scale: Float32Array | null, shift: Float32Array | null, y: Float32Array, xhat: Float32Array | null, batch: number, channels: number, inner: number): void;
  /**
   * Backward of training-mode batch norm over batch statistics (closed form, see nn/batchnorm.ts).
   * Accumulates dGamma += Σ dy·xhat and dBeta += Σ dy when given; writes dx.
   */
  batchNormBackward(dy: Float32Array, xhat: Float32Array, invStd: Float32Array, gamma: Float32Array | null, dx: Float32Array, dGamma: Float32Array | null, dBeta: Float32Array | null, batch: number, channels: number, inner: number): void;
  /**
   * The per-channel end of a training forward, from the batch's mean and (biased) variance:
   * invStd = 1/√(variance + eps) and, when runningMean and runningVar are given, the running averages
   * r ← (1 − momentum)·r + momentum·s with s = mean, and variance·unbias (the unbiased variance). In
   * float64, rounded to float32 once, as JavaScript computes it. Shape: C.
   */
  batchNormStatistics(mean: Float32Array, variance: Float32Array, invStd: Float32Array, eps: number, runningMean: Float32Array | null, runningVar: Float32Array | null, momentum: number, unbias: number, channels: number): void;
  /**
   * The two reductions of batch norm's backward, written (not accumulated): sumDy[c] = Σ dy and
   * sumDyXhat[c] = Σ dy·xhat over the batch and L. With `batchNormBackwardInput` it splits
   * `batchNormBackward` in two, so synchronized batch norm can add every shard's sums in between.
   */
  batchNormBackwardReduce(dy: Float32Array, xhat: Float32Array, sumDy: Float32Array, sumDyXhat: Float32Array, batch: number, channels: number, inner: number): void;
  /**
   * dx of batch norm's backward from sums over `count` values per channel (the whole batch, which may
   * span several shards): dx = gamma·invStd/count · (count·dy − Σdy − xhat·Σdy·xhat).
   */
  batchNormBackwardInput(dy: Float32Array, xhat: Float32Array, invStd: Float32Array, gamma: Float32Array | null, sumDy: Float32Array, sumDyXhat: Float32Array, count: number, dx: Float32Array, batch: number, channels: number, inner: number): void;
  /** Backward when the statistics were constants (eval mode): dx = dy·gamma·invStd, plus the same parameter gradients. */
  batchNormBackwardFixedStats(dy: Float32Array, xhat: Float32Array, invStd: Float32Array, gamma: Float32Array | null, dx: Float32Array, dGamma: Float32Array | null, dBeta: Float32Array | null, batch: number, channels: number, inner: number): void;

  /**
   * Unfold the windows of a convolution: x[B,C,H,W] → cols[B, C·KH·KW, OH·OW], where row (c,i,j) of
   * sample b holds x[b, c, oh·strideH - padH + i, ow·strideW - padW + j] for every output position
   * (0 where the window covers padding). A convolution is then one matmul per sample.
   */
  im2col(x: Float32Array, cols: Float32Array, batch: number, channels: number, g: Window2d): void;
  /** The adjoint of im2col: dx = 0, then every cols entry is added back to the input position it came from. */
  col2im(cols: Float32Array, dx: Float32Array, batch: number, channels: number, g: Window2d): void;

  /**
   * Winograd F(2×2, 3×3), for 3×3 convolutions with stride 1 and padding 0-2 (winograd.ts has the
   * math): the filters weight[O, C, 3, 3] transformed to u[16, O, C]; with `flip`, the input
   * gradient's filters u[16, C, O] (each filter turned by 180°, the channel axes swapped).
   */
  winogradWeights(weight: Float32Array, u: Float32Array, outChannels: number, inChannels: number, flip: boolean): void;
  /** dWeight[O, C, 3, 3] += Gᵀ·du·G: the filter gradient from du[16, O, C] (`winogradConv3x3WeightGrad`). */
  winogradWeightsBackward(du: Float32Array, dWeight: Float32Array, outChannels: number, inChannels: number): void;
  /**
   * y[B, O, OH, OW] = the convolution of x[B, C, H, W] with the filters transformed to u[16, O, C],
   * stride 1, zero padding padH/padW ≤ 2 (OH = H + 2·padH - 2). The input gradient is this call on dy
   * with the flipped filters and padding 2 - pad.
   */
  winogradConv3x3(x: Float32Array, u: Float32Array, y: Float32Array, batch: number, inChannels: number, outChannels: number, height: number, width: number, padH: number, padW: number): void;
  /** du[16, O, C] = the gradient with respect to u of that convolution's output (written, not accumulated), summed over the batch. */
  winogradConv3x3WeightGrad(x: Float32Array, dy: Float32Array, du: Float32Array, batch: number, inChannels: number, outChannels: number, height: number, width: number, padH: number, padW: number): void;

  /**
   * Max pooling over P = B·C independent planes x[P,H,W] → y[P,OH,OW]; padding counts as -∞. Writes
   * the flat index into x of each window's maximum (the first one on ties) to `argmax`, for the backward.
   */
  maxPoolForward(x: Float32Array, y: Float32Array, argmax: Int32Array, planes: number, g: Window2d): void;
  /** dx = 0, then dx[argmax[i]] += dy[i]: each output's gradient goes to the input that won its window. */
  maxPoolBackward(dy: Float32Array, argmax: Int32Array, dx: Float32Array, planes: number, g: Window2d): void;
  /**
   * A ReLU then max pooling, in one pass: maxPoolForward of relu(x) (x > 0 ? x : 0), the same y and
   * argmax as `relu` followed by `maxPoolForward`, without writing relu(x).
   */
  maxPoolReluForward(x: Float32Array, y: Float32Array, argmax: Int32Array, planes: number, g: Window2d): void;
  /**
   * The backward of maxPoolReluForward, with its output y: maxPoolBackward of dy where y > 0 and 0
   * elsewhere (a window's winner passed the ReLU exactly when its maximum is positive), the same dx
   * as `maxPoolBackward` followed by `reluBackward`.
   */
  maxPoolReluBackward(dy: Float32Array, y: Float32Array, argmax: Int32Array, dx: Float32Array, planes: number, g: Window2d): void;
  /**
   * Batch norm's normalization followed by a ReLU and 2×2, stride-2 max pooling, in one pass over x
   * [B, C, H, W]: writes xhat = (x - mean[c])·invStd[c] and out/argmax = maxPoolReluForward of
   * y = xhat·scale[c] + shift[c] (scale, shift null: 1 and 0), without writing y — the values of
   * batchNormApply then maxPoolReluForward, bit for bit — and, when given, xhatMax = xhat at each
   * window's winner (xhat[argmax], for the backward's sums). `y` is scratch of x's size the backend may
   * use (the reference writes y there). For H and W even, H·W a multiple of 4 and W ≥ 8 (`batchNormReluPoolFits`).
   */
  batchNormReluMaxPool2x2(x: Float32Array, mean: Float32Array, invStd: Float32Array, scale: Float32Array | null, shift: Float32Array | null, y: Float32Array, xhat: Float32Array, out: Float32Array, argmax: Int32Array, xhatMax: Float32Array | null, batch: number, channels: number, height: number, width: number): void;
  /**
   * The backward of batchNormReluMaxPool2x2 with batch statistics, in the two halves of
   * batchNormBackwardReduce/Input, from dy [B, C, H/2, W/2], the gradient of its pooled output `out`.
   * The gradient at the batch norm's output, g, is dy at each window's winner (argmax) where out > 0
   * (the ReLU) and 0 at the other three positions, so its sums are sums over the pooled values, with
   * xhatMax (xhat at the winners, from the forward): sumDy[c] = Σ g, sumDyXhat[c] = Σ g·xhatMax
   * (written, not accumulated). g itself is never written.
   */
  batchNormReluMaxPool2x2BackwardReduce(dy: Float32Array, out: Float32Array, xhatMax: Float32Array, sumDy: Float32Array, sumDyXhat: Float32Array, batch: number, channels: number, height: number, width: number): void;
  /**
   * dx [B, C, H, W] for that g, in one pass over xhat: batchNormBackwardInput's
   * dx = gamma·invStd/count · (count·g − Σg − xhat·Σg·xhat), from sums over `count` values per channel.
   */
  batchNormReluMaxPool2x2BackwardInput(dy: Float32Array, out: Float32Array, argmax: Int32Array, xhat: Float32Array, invStd: Float32Array, gamma: Float32Array | null, sumDy: Float32Array, sumDyXhat: Float32Array, count: number, dx: Float32Array, batch: number, channels: number, height: number, width: number): void;
  /** Average pooling over P planes; padding counts as 0 and every window divides by KH·KW (PyTorch's count_include_pad). */
  avgPoolForward(x: Float32Array, y: Float32Array, planes: number, g: Window2d): void;
  /** dx = 0, then each dy[p,oh,ow]/(KH·KW) is added to every input of its window. */
  avgPoolBackward(dy: Float32Array, dx: Float32Array, planes: number, g: Window2d): void;

  /** PyTorch SGD step: g += wd·p; buf = momentum·buf + (1 - dampening)·g (buf = g at the first step); p -= lr·(nesterov ? g + momentum·buf : buf). */
  sgdStep(p: Float32Array, g: Float32Array, buf: Float32Array | null, opts: SgdStepOptions): void;
  /** Adam step (PyTorch semantics, L2 weight decay added to the gradient, or decoupled for AdamW). */
  adamStep(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, opts: AdamStepOptions): void;
}

/** What a backend instance offers, for callers that choose by capability (DataParallel, the CLI, the bench). */
export interface BackendCapabilities {
  /** Threads a single kernel call may be split across (1: the calling thread only). */
  readonly threads: number;
  /** Its memory can be shared with workers (see `Kernels.sharing`). */
  readonly sharedMemory: boolean;
  /** The SIMD instruction set its kernels use ('simd128', 'relaxed-simd'), or null for scalar code. */
  readonly simd: string | null;
  /** The build in use, as printed and stored in a run's config ('ts', 'wasm simd128', 'wasm relaxed-simd'). */
  readonly variant: string;
  /**
   * Whether its Winograd kernels are faster than im2col + matmul on the convolutions that fit them, so
   * `Conv2d`'s 'auto' algorithm takes them (absent: no). The wasm backend's are; the reference's are
   * written to be read, and its tuned matmul makes im2col the faster there.
   */
  readonly winograd?: boolean;
}

/**
 * A backend's memory as other threads can use it: views of it are valid on every thread that attaches
 * (same byte offsets), and `attachment` describes it to a worker, which turns it back into a backend
 * with `attachBackend` (index.ts).
 */
export interface SharedKernelMemory {
  /** The memory's current buffer (a SharedArrayBuffer; a grown memory has a new, longer one). */
  readonly buffer: ArrayBufferLike;
  /** Whether `view` lies in this memory (so its byteOffset means the same on every attached thread). */
  holds(view: ArrayBufferView): boolean;
  /**
   * A structured-cloneable description for a worker: `attachBackend(attachment)` there gives a backend
   * on this same memory that allocates only inside `region` (a block reserved here with `allocate`).
   */
  attachment(region: { start: number; end: number }): BackendAttachment;
}

/** What `SharedKernelMemory.attachment` returns: the backend's registered name and whatever it needs. */
export interface BackendAttachment {
  readonly backend: string;
  readonly [key: string]: unknown;
}

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  accumulate?: boolean;
}

export interface SgdStepOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  /** True at the buffer's first use: PyTorch sets buf = g instead of decaying a zero buffer. */
  firstStep: boolean;
  /** Zero g as the update reads it (one pass instead of the update and a fill: data-parallel training's summed gradients). */
  clearGrad?: boolean;
}

export interface AdamStepOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decoupledWeightDecay: boolean;
  /** 1-based step count, for the bias corrections 1 - beta^t. */
  step: number;
  /** As SgdStepOptions.clearGrad. */
  clearGrad?: boolean;
}

/**
 * A window sliding over an H×W plane, shared by convolution and pooling:
 * outH = floor((height + 2·padH - kernelH) / strideH) + 1, the same for the width.
 */
export interface Window2d {
  height: number;
  width: number;
  kernelH: number;
  kernelW: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  outH: number;
  outW: number;
}

/** Whether a [.., .., height, width] input fits batchNormReluMaxPool2x2: even sides, height·width a multiple of 4, width at least 8. */
export function batchNormReluPoolFits(height: number, width: number): boolean {
  return height % 2 === 0 && width % 2 === 0 && (height * width) % 4 === 0 && width >= 8;
}
