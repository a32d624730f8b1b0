export { DataParallel, type DataParallelOptions } from './data-parallel.js';
export { SharedSyncGroup, GroupAbortedError, type SyncGroupOptions } from './sync-group.js';
