/**
 * Progress for long experiments: counts work units against a total fixed up front, reports through the
 * caller's callback, and now and then yields to the event loop so a progress bar (or a web page) can
 * redraw while the synchronous training steps run.
 */
import type { ExperimentProgress } from './types.js';

/** How long to compute before letting timers and rendering run. */
const YIELD_EVERY_MS = 100;

export class ProgressTicker {
  done = 0;
  phase = '';
  private lastYield = Date.now();

  constructor(readonly total: number, private readonly onProgress?: (p: ExperimentProgress) => void) {}

  /** Start a new phase (reported with the next tick). */
  setPhase(phase: string): void {
    this.phase = phase;
    this.report();
  }

  /** Count `units` of work done; yields to the event loop when it has not for a while. */
  async tick(units = 1): Promise<void> {
    this.done = Math.min(this.total, this.done + units);
    if (Date.now() - this.lastYield >= YIELD_EVERY_MS) {
      this.report();
      await yieldToEventLoop();
      this.lastYield = Date.now();
    }
  }

  /** Skip the rest of a phase's budget (a run that stopped early). */
  async skipTo(done: number): Promise<void> {
    await this.tick(Math.max(0, done - this.done));
  }

  report(): void {
    this.onProgress?.({ done: this.done, total: this.total, phase: this.phase });
  }
}

/** A macrotask boundary: setTimeout exists in Node and in browsers. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
