/**
 * The WebAssembly backend's kernels, compiled by AssemblyScript (`npm run build:wasm`) with SIMD into
 * dist/src/kernels/wasm/bnlab-kernels{,-shared}.wasm. Every export works on raw byte addresses in the
 * one linear memory the JavaScript side owns (src/kernels/wasm/backend.ts allocates, this code never
 * does: it is built with the stub runtime, has no globals and no data segments, so several instances —
 * one per worker — can share a memory).
 */
export { addTransposed, gemm, gemmChunked, gemmInPlace, gemmScratchFloats, gemmTileRows, microKernelPeak } from './gemm';
export { fill, add, addAndClear, scale, mul, axpy, triad, addRowVector, sumRows, sumAxis, sigmoid, sigmoidBackward, tanh, tanhBackward, relu, reluBackward } from './elementwise';
export { channelMoments, batchNormStatistics, batchNormApply, batchNormBackward, batchNormBackwardReduce, batchNormBackwardInput, batchNormBackwardFixedStats, batchNormScratchFloats } from './batchnorm';
export { softmax, softmaxCrossEntropy, softmaxCrossEntropyBackward } from './loss';
export { sgdStep, adamStep } from './optim';
export { im2col, col2im, maxPoolForward, maxPoolBackward, batchNormReluMaxPool2x2, batchNormReluMaxPool2x2BackwardReduce, batchNormReluMaxPool2x2BackwardInput, avgPoolForward, avgPoolBackward, channelAffine, channelAffineBackward } from './conv';
export { winogradConv3x3, winogradConv3x3WeightGrad, winogradWeights, winogradWeightsBackward, winogradScratchFloats } from './winograd';
