/**
 * The browser-safe part of a run's configuration: what the training loop needs (optimizer, schedule,
 * budget, batch, seed, evaluation interval), as plain JSON so it can cross to a worker. The CLI's
 * TrainConfig adds the run directory and checkpoints; the lab builds one of these per twin.
 */
import { BatchNormBase } from '../nn/batchnorm.js';
import type { Sequential } from '../nn/sequential.js';
import { Adam, SGD, type Optimizer } from '../optim/optimizer.js';
import { constantSchedule, cosineSchedule, stepSchedule, type LrSchedule } from '../optim/schedule.js';

export type OptimizerConfig =
  | { name: 'sgd'; lr: number; momentum: number; weightDecay: number; nesterov: boolean }
  | { name: 'adam'; lr: number; weightDecay: number; beta1: number; beta2: number };

export type ScheduleConfig = { name: 'constant' } | { name: 'step'; stepSize: number; gamma: number } | { name: 'cosine'; minLr: number };

/** What determines the loop of a run, given the model and the data. */
export interface RunConfig {
  optimizer: OptimizerConfig;
  schedule: ScheduleConfig;
  /** Exactly one of steps and epochs. */
  steps: number | null;
  epochs: number | null;
  batchSize: number;
  /** Test-set evaluation every N steps (and always at the end); 0 = only at the end. */
  evalEvery: number;
  /** Seed of the data loader's shuffling (the model's initial weights are the caller's). */
  seed: number;
  /** Threads that train each batch together (data-parallel, synchronized batch norm); default 1. */
  threads?: number;
  /** Drop the short last batch of each epoch (default: when the model has batch norm). */
  dropLast?: boolean;
}

export function makeOptimizer(o: OptimizerConfig, model: Sequential): Optimizer {
  if (o.name === 'sgd') return new SGD(model.parameters(), { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay, nesterov: o.nesterov });
  return new Adam(model.parameters(), { lr: o.lr, weightDecay: o.weightDecay, beta1: o.beta1, beta2: o.beta2 });
}

/** Schedules run over the whole budget; `stepSize` and cosine's length are in steps. */
export function makeSchedule(s: ScheduleConfig, config: Pick<RunConfig, 'steps' | 'epochs' | 'batchSize'>, trainCount: number, model: Sequential): LrSchedule {
  switch (s.name) {
    case 'constant':
      return constantSchedule;
    case 'step':
      return stepSchedule(s.stepSize, s.gamma);
    case 'cosine': {
      // The trainer's own budget: with batch norm it drops the short last batch of each epoch.
      const dropLast = [...model.modules()].some((m) => m instanceof BatchNormBase);
      const perEpoch = dropLast ? Math.floor(trainCount / config.batchSize) : Math.ceil(trainCount / config.batchSize);
      const total = config.steps ?? Math.max(1, Math.round((config.epochs ?? 1) * perEpoch));
      return cosineSchedule(total, s.minLr);
    }
  }
}

/** Every 100 steps, or a divisor of evalEvery (>= 10), so each evaluation comes with a fresh training loss. */
export function logInterval(evalEvery: number): number {
  if (evalEvery <= 0) return 100;
  let [a, b] = [evalEvery, 100];
  while (b) [a, b] = [b, a % b];
  return a >= 10 || evalEvery < 10 ? Math.min(a, evalEvery) : 100;
}
