export { Trainer, DivergenceError, type TrainerOptions, type TrainMetrics, type TrainerState } from './trainer.js';
export { evaluate, type EvalResult, type EvaluateOptions } from './evaluate.js';
