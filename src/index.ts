/**
 * bnlab: train neural networks with batch normalization, in Node or the browser.
 * This entry point is browser-safe; Node-only helpers (files, datasets from npm packages, the CLI)
 * live in 'bnlab/node'.
 */
export { Tensor, shapeSize, shapeToString } from './tensor/tensor.js';
export { Rng, type RngState } from './tensor/rng.js';
export * from './kernels/index.js';
export * from './nn/index.js';
export * from './optim/index.js';
export { buildPreset, getPreset, presetNames, registerPreset, mlpLayers, cnnLayers, layoutOf, BN_PLACEMENTS, type Preset, type PresetOptions, type BatchNormPlacement, type BatchNormLayout } from './models/presets.js';
export { SHAPED_MODELS, ACTIVATIONS, buildShapedModel, shapedLayers, shapeDefaults, isShapedModel, type ModelShape, type Activation } from './models/shapes.js';
export * from './data/index.js';
export * from './train/index.js';
export * from './runs/index.js';
export * from './parallel/index.js';
export * from './io/index.js';
export * from './experiments/index.js';
export { xyChart, barChart, logTicks, CHART_CONFIG, PALETTE, type Figure, type VegaLiteSpec, type Row, type XYChartOptions } from './report/charts.js';
export { experimentReportHtml, combinedReportHtml, namespaceSvgIds, escapeHtml, type RenderedFigure, type ReportRun } from './report/html.js';
