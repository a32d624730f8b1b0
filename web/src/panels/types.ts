/**
 * The Panel contract (see web/src/panels/index.ts for the whole story).
 */
import type { TwinId } from '@bnlab/runs/twins.js';
import type { LabData, SweepState } from '../engine.js';
import type { LabState } from '../state.js';
import type { ClassifyOutput, ImportedModelInfo, ModelId, ProbeRequest } from '../worker/protocol.js';

/** How the twins are drawn everywhere: colour AND line style, so they are told apart without colour. */
export const TWIN_STYLE: Record<TwinId, { label: string; color: string; dash: number[] }> = {
  bn: { label: 'with batch norm', color: '#1f6fb4', dash: [] },
  nobn: { label: 'without', color: '#c2410c', dash: [7, 4] },
};

/**
 * Set `el`'s text only when it differs: the readings and notes are live regions, where writing the same
 * words again on every frame is still a change that a screen reader announces.
 */
export function writeText(el: HTMLElement, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

/** What a panel may do besides drawing: read and change the state, ask the engine for things. */
export interface PanelContext {
  /** The current state (as in the URL; may differ from `data.applied` until a reset). */
  state(): LabState;
  /** Change properties; 'now' ones go to the twins at once, 'reset' ones wait for Reset (the page says so). */
  setState(patch: Partial<LabState>): void;
  /** Rebuild both twins from the current state. */
  reset(): Promise<void>;
  play(): void;
  pause(): void;
  /** Both twins train `steps` more steps (paused or not). */
  advance(steps: number): Promise<void>;
  /** One input of 784 values in [0, 1] through both twins (and an imported model, as 'imported'). */
  classify(input: Float32Array): Promise<Partial<Record<ModelId, ClassifyOutput>>>;
  /** Fresh twins at each rate, `steps` steps each; results also in `data.sweep`. */
  sweep(rates: number[], steps: number): Promise<SweepState>;
  /** The model opened with "Open a model" (trained by `bnlab train`), or null. */
  imported(): ImportedModelInfo | null;
}

export interface Panel {
  /** Short id, used in element ids and the URL (lowercase, no spaces). */
  id: string;
  title: string;
  /** The claim this panel shows, one line. */
  claim: string;
  /** Probes the worker should compute for this panel, given the state (asked for at each reset). */
  probes?(state: LabState): ProbeRequest[];
  /** Reset pressed (or a new link opened): forget what was kept about the previous run, before `probes` is asked again. */
  reset?(): void;
  /** Build the panel's DOM and chart objects once, inside `el`. */
  mount(el: HTMLElement, ctx: PanelContext): void;
  /** Each animation frame in which `data.version` changed: set the charts' data and draw them. */
  update(data: LabData): void;
  /** One sentence about what the numbers on screen show, computed from them (plain text, never HTML). */
  reading(data: LabData): string;
}
