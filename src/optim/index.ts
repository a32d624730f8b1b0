export { Optimizer, SGD, Adam, applyUpdate, type ElementwiseUpdate, type OptimizerState, type SgdOptions, type AdamOptions } from './optimizer.js';
export { stepSchedule, cosineSchedule, constantSchedule, applySchedule, type LrSchedule } from './schedule.js';
