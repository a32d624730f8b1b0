/**
 * The browser-safe data layer: datasets, the IDX format and the mini-batch loader.
 * Node-only loaders for the bundled datasets live in `./node.js` and are deliberately not
 * re-exported here, so that bundling this module never pulls in `fs`.
 */
export * from './dataset.js';
export * from './idx.js';
export * from './loader.js';
export * from './errors.js';
export * from './tabular.js';
export * from './preprocess.js';
export * from './digit.js';
