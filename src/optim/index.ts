export { Optimizer, SGD, Adam, type OptimizerState, type SgdOptions, type AdamOptions } from './optimizer.js';
export { stepSchedule, cosineSchedule, constantSchedule, applySchedule, type LrSchedule } from './schedule.js';
