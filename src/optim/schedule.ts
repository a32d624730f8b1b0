/**
 * Learning-rate schedules, as functions of the step (or epoch) count: call `apply(optimizer, t)` before
 * step t. Being pure functions of t, they resume exactly from a checkpoint.
 */
import type { Optimizer } from './optimizer.js';

export interface LrSchedule {
  readonly name: string;
  /** Learning rate at step t (0-based) given the initial rate. */
  rate(initialLr: number, t: number): number;
}

/** Multiply by `gamma` every `stepSize` steps (torch.optim.lr_scheduler.StepLR). */
export function stepSchedule(stepSize: number, gamma = 0.1): LrSchedule {
  if (!Number.isInteger(stepSize) || stepSize < 1) throw new Error(`Step schedule: stepSize must be a positive integer, got ${stepSize}`);
  if (!(gamma > 0)) throw new Error(`Step schedule: gamma must be > 0, got ${gamma}`);
  return { name: `step(${stepSize}, ${gamma})`, rate: (lr, t) => lr * Math.pow(gamma, Math.floor(t / stepSize)) };
}

/** Cosine annealing from the initial rate to `minLr` over `total` steps (CosineAnnealingLR, one half-period). */
export function cosineSchedule(total: number, minLr = 0): LrSchedule {
  if (!Number.isInteger(total) || total < 1) throw new Error(`Cosine schedule: total must be a positive integer, got ${total}`);
  return {
    name: `cosine(${total}, ${minLr})`,
    rate: (lr, t) => minLr + ((lr - minLr) * (1 + Math.cos((Math.PI * Math.min(t, total)) / total))) / 2,
  };
}

/** The `total` of a cosine schedule from its name (as a checkpoint records it), or null for another schedule. */
export function cosineTotal(name: string): number | null {
  const m = /^cosine\((\d+),/.exec(name);
  return m ? Number(m[1]) : null;
}

export const constantSchedule: LrSchedule = { name: 'constant', rate: (lr) => lr };

export function applySchedule(schedule: LrSchedule, optimizer: Optimizer, t: number): void {
  optimizer.lr = schedule.rate(optimizer.initialLr, t);
}
