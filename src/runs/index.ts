export { makeOptimizer, makeSchedule, logInterval, type RunConfig, type OptimizerConfig, type ScheduleConfig } from './config.js';
export { createRun, runLoop, runLoopUntil, type Run, type RunData, type RunModel, type RunCallbacks, type RunResult } from './run.js';
export { buildTwin, twinLayers, twinInit, twinOptimizer, twinRunConfig, TWINS, SGD_MOMENTUM, type TwinId, type TwinSpec, type TwinActivation, type TwinOptimizer } from './twins.js';
