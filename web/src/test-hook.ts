/**
 * The hook for automated checks, in every build: `globalThis.bnlabLab.advance(steps)` (both twins train
 * that many steps, while paused) and `globalThis.bnlabLab.snapshot()` (plain JSON). It changes nothing
 * on its own.
 */
import { TWINS } from './worker/protocol.js';
import type { Engine } from './engine.js';
import type { ProbeRequest } from './worker/protocol.js';
import type { LabState } from './state.js';

export interface LabSnapshot {
  step: number;
  config: LabState;
  runs: Record<string, { trainLoss: number[]; testAccuracy: { step: number; accuracy: number }[]; diverged: { step: number; cause: string } | null }>;
}

export function installTestHook(engine: Engine): void {
  let paused: ProbeRequest[] | null = null;
  const hook = {
    /**
     * `measure(false)`: the workers train without the panels' measurements until `measure(true)` (the
     * benchmark's training-only rate); the charts stop updating meanwhile.
     */
    measure(on: boolean): void {
      if (!on && paused === null) {
        paused = [...engine.probes];
        engine.setProbes([]);
      } else if (on && paused !== null) {
        engine.setProbes(paused);
        paused = null;
      }
    },
    /** Both twins train `steps` steps from where they are; pauses a playing run first. */
    async advance(steps: number): Promise<void> {
      if (!Number.isInteger(steps) || steps < 1) throw new Error(`advance(steps): steps must be a positive integer, got ${steps}`);
      engine.pause();
      await engine.advance(steps);
    },
    snapshot(): LabSnapshot {
      const d = engine.data;
      const runs = Object.fromEntries(
        TWINS.map((t) => [t, { trainLoss: [...d.runs[t].trainLoss], testAccuracy: d.runs[t].test.map((p) => ({ step: p.step, accuracy: p.accuracy })), diverged: d.runs[t].diverged && { step: d.runs[t].diverged!.step, cause: d.runs[t].diverged!.cause } }]),
      );
      // Plain JSON: a round trip drops nothing but turns NaN into null.
      return JSON.parse(JSON.stringify({ step: d.step, config: { ...d.applied }, runs }));
    },
    /** True once the data is loaded and both twins are built. */
    get ready(): boolean {
      return document.body.dataset.ready === 'true';
    },
  };
  (globalThis as { bnlabLab?: typeof hook }).bnlabLab = hook;
}
