/**
 * Vega-Lite spec → SVG, headless: compile to Vega, run the dataflow with no renderer attached, serialize
 * the scenegraph as SVG. Works in Node and in browsers (no canvas needed).
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { VegaLiteSpec } from './charts.js';

const VIEW_KEYS = ['mark', 'layer', 'facet', 'hconcat', 'vconcat', 'concat', 'repeat'];

/** A spec the compiler can take: an object with one of Vega-Lite's view keys. The compiler checks the rest. */
function isTopLevelSpec(spec: VegaLiteSpec): spec is VegaLiteSpec & TopLevelSpec {
  return typeof spec === 'object' && spec !== null && VIEW_KEYS.some((k) => k in spec);
}

export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  if (!isTopLevelSpec(spec)) throw new Error(`renderSvg: not a Vega-Lite view spec (it needs one of ${VIEW_KEYS.join(', ')}); got keys ${Object.keys(spec).join(', ')}`);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
