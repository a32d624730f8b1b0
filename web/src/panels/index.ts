/**
 * The panel registry: one line per panel, one file per claim, drawn in this order.
 *
 * THE CONTRACT (what a panel gets and gives; types in ./types.ts, messages in ../worker/protocol.ts)
 *
 * - A panel is `{ id, title, claim, probes?, reset?, mount, update, reading }`; `reset()` runs when both
 *   twins are rebuilt (Reset, a new link), before the probes are asked for again. `mount(el, ctx)` runs once: build
 *   the DOM (textContent only: no innerHTML with data or URL text) and the chart objects
 *   (`new LineChart(el, ...)` from ../charts/line-chart.ts: made once, `setData` + `draw` per frame).
 * - `update(data)` runs on requestAnimationFrame whenever `data.version` changed, never per training
 *   step. `data: LabData` (../engine.ts) holds everything since the last reset:
 *     data.step                              steps done by both twins
 *     data.runs.bn / data.runs.nobn          RunSeries: trainLoss[i] = loss of step i+1; test[] =
 *                                            { step, loss, accuracy } every 100 steps (first 2,000 test
 *                                            images), step 0 first; diverged: { step, loss, cause, message }
 *                                            | null; lr; layers (layer specs); probes[id] = [{ step, value }]
 *     data.applied                           the LabState the twins were built with (lr live)
 *     data.sweep                             the last learning-rate sweep (rates, steps, points per twin)
 *     data.imported                          ImportedModelInfo of a model opened from files, or null
 *     data.env                               isolated, workers, threadsPerWorker, backend
 * - `reading(data)` returns ONE sentence computed from those numbers; the page shows it under the
 *   panel's title (as text) and refreshes it a few times a second.
 * - Probes: `probes(state)` returns ProbeRequest[] `{ name, id?, every, params? }`; `name` is a key of
 *   PROBES in ../worker/probes.ts, where a probe is a function `(ctx, params) => value` run in the
 *   worker on each twin (ctx: model, run, trainer's lastBatch, a fixed probe batch of 500 test images,
 *   datasets, spec). A panel's probe is one entry in PANEL_PROBES (../worker/panel-probes.ts) and the
 *   shape of its value one entry in PanelProbeValues there; ask for it here, and read its results with
 *   `probeSamples(data, twin, name)` (../engine.ts), typed by that entry. Results arrive in
 *   `data.runs[twin].probes[id ?? name]`. Requests are (re)sent at every reset.
 * - Settings of a panel's own (a layer to look at, an input scale, ...) are entries in PROPS
 *   (../state.ts, with `group: '<panel id>'`): they get a URL entry, validation and a control in the
 *   panel's settings row automatically; read them with `ctx.state()`. 'reset' settings that change the
 *   twins also need a field in TwinSpec (src/runs/twins.ts) and a line in `twinSpec()`.
 * - ctx: state/setState, reset, play/pause/advance, classify(784 values in [0,1]) → per model
 *   { eval: probabilities, trainBatchOfOne: { probabilities } | { error } }, sweep(rates, steps),
 *   imported().
 * - Twins look the same everywhere: TWIN_STYLE (colour and dash) from ./types.ts.
 */
import type { Panel } from './types.js';
import { convergencePanel } from './convergence.js';
import { insidePanel } from './inside.js';
import { inputScalePanel } from './input-scale.js';
import { batchSizePanel } from './batch-size.js';
import { testTimePanel } from './test-time.js';
import './panels.css';

export type { Panel, PanelContext } from './types.js';
export { TWIN_STYLE } from './types.js';

export const PANELS: Panel[] = [
  convergencePanel,
  insidePanel,
  inputScalePanel,
  batchSizePanel,
  testTimePanel,
];
