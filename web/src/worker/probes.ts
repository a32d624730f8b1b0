/**
 * Probes: numbers a panel needs from inside a twin, computed in the worker with library code. A panel
 * asks for them by name (`Panel.probes`, a ProbeRequest with `every` and `params`); the worker runs the
 * function every `every` steps and at step 0, on each twin it owns, and the results reach the page in
 * `LabData.runs[twin].probes[id]` as `{ step, value }` samples. Add a probe: one entry in PROBES.
 */
import { activationInputs } from '@bnlab/experiments/probe.js';
import type { Batch } from '@bnlab/data/loader.js';
import type { Dataset } from '@bnlab/data/dataset.js';
import type { Run, TwinId, TwinSpec } from '@bnlab/runs/index.js';
import type { Sequential } from '@bnlab/nn/sequential.js';
import type { Tensor } from '@bnlab/tensor/tensor.js';
import type { ProbeValue } from './protocol.js';
import { PANEL_PROBES } from './panel-probes.js';

export interface ProbeContext {
  twin: TwinId;
  /** Steps taken since the reset. */
  step: number;
  spec: TwinSpec;
  /** The trained network: read its state (weights, running statistics) here; forward only batches of the training size. */
  model: Sequential;
  /**
   * A copy synced to `model`'s current state: use it for any forward pass of another batch size (the
   * probe batch, one example), so the trained network's buffers stay as they are.
   */
  evalModel(): Sequential;
  run: Run;
  trainSet: Dataset;
  testSet: Dataset;
  /** A fixed batch of test images [N, inputSize] (the first PROBE_EXAMPLES), the same for both twins and every step. */
  probeInput: Tensor;
  probeLabels: Uint8Array;
  /** The batch of the last training step, null at step 0. */
  lastBatch: Batch | null;
}

/**
 * A probe's value (anything structured clone copies: numbers, strings, arrays, typed arrays, plain
 * objects; the panels' probes declare theirs in PanelProbeValues), or undefined when it keeps its own
 * (sparser) schedule and has nothing at this step.
 */
export type ProbeFn = (ctx: ProbeContext, params: { [key: string]: ProbeValue }) => unknown;

export const PROBE_EXAMPLES = 500;

function quantile(sorted: Float32Array, q: number): number {
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
}

export const PROBES: Record<string, ProbeFn> = {
  ...PANEL_PROBES,
  /**
   * The input of each activation layer (the "sigmoid input" of the paper's Fig. 1b,c) over the probe
   * batch: for every hidden layer, the given quantiles (default 15/50/85%) of one unit (`unit`, default 0).
   * Value: number[layer][quantile].
   */
  'activation-quantiles': (ctx, params) => {
    const unit = typeof params.unit === 'number' ? params.unit : 0;
    const qs = Array.isArray(params.quantiles) ? (params.quantiles as number[]) : [0.15, 0.5, 0.85];
    return activationInputs(ctx.evalModel(), ctx.probeInput).map((layer) => {
      const values = Float32Array.from(layer.values[Math.min(unit, layer.units - 1)]).sort();
      return qs.map((q) => quantile(values, q));
    });
  },
};
