/**
 * Vega-Lite specs for the experiment figures. Plain JSON with the data inline, so the same spec renders
 * to SVG in Node (render.ts) and in a browser (vega-embed). Every chart has axis titles with units, a
 * legend when there is more than one series, and log scales where a quantity spans decades.
 */

/**
 * A Vega-Lite spec as JSON (https://vega.github.io/vega-lite/docs/spec.html). Kept as plain JSON here:
 * the builders below assemble it from parts, and `renderSvg` hands it to the Vega-Lite compiler, which
 * validates it.
 */
export type VegaLiteSpec = Record<string, unknown>;

/** A chart with its title and a one-line caption saying how to read it. */
export interface Figure {
  /** File name stem: `<id>.svg`, `<id>.png`. */
  id: string;
  title: string;
  caption: string;
  spec: VegaLiteSpec;
}

export type Row = Record<string, string | number | boolean | null>;

export interface AxisOptions {
  field: string;
  title: string;
  scale?: 'linear' | 'log' | 'symlog';
  /** d3 number format for the axis labels, e.g. '%' or '~g'. */
  format?: string;
  domain?: [number, number];
  zero?: boolean;
  /** Tick values (e.g. the learning rates of a sweep); default: the scale's own. */
  values?: number[];
}

export interface SeriesOptions {
  field: string;
  title: string;
  /** Legend order (and color assignment). */
  domain?: string[];
  /** Colors in `domain` order. */
  range?: string[];
}

export interface ReferenceLine {
  /** A horizontal line at this y, or a vertical one at this x. */
  y?: number;
  x?: number;
  label: string;
}

export interface XYChartOptions {
  values: Row[];
  x: AxisOptions;
  y: AxisOptions;
  color?: SeriesOptions;
  /** A second series dimension drawn as line dashes (lines) or shapes (points). */
  detail?: SeriesOptions;
  /** One panel per value of this field. */
  column?: { field: string; title: string; domain?: string[] };
  /** With `column`: each panel gets its own y range. */
  independentY?: boolean;
  mark?: 'line' | 'point' | 'line+point';
  /** Curves through series of reference values (e.g. 1/√B), drawn as grey dashed lines. */
  rules?: ReferenceLine[];
  width?: number;
  height?: number;
  /** Tooltip fields (used by the browser). */
  tooltip?: string[];
}

/** Colors that stay apart for the color-blind (Okabe-Ito). */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000'];

/** Fonts: DejaVu Sans is what the PNG renderer finds on Debian; browsers fall back to their sans-serif. */
export const CHART_CONFIG = {
  font: 'DejaVu Sans, Verdana, sans-serif',
  axis: { labelFontSize: 11, titleFontSize: 12, grid: true, gridColor: '#e6e6e6' },
  // Above the plot, each legend a column: a phone that scrolls a chart sideways still sees which line is
  // which, and the chart is no wider than its plot.
  legend: { labelFontSize: 11, titleFontSize: 12, orient: 'top' as const, direction: 'vertical' as const, labelLimit: 260 },
  title: { fontSize: 14 },
  view: { stroke: '#ccc' },
  background: 'white',
};

/**
 * The same, with the legends beside the plots: for figures of several plots side by side (a grid of
 * contours, two charts in a row), where legends above would widen the figure by an empty margin.
 */
export const CHART_CONFIG_LEGENDS_BESIDE = { ...CHART_CONFIG, legend: { ...CHART_CONFIG.legend, orient: 'right' as const } };

/**
 * Tick values for a log axis over [min, max]: powers of ten, with 2 and 5 in between when the range is
 * at most two and a half decades (Vega's own log ticks label every 1..9 multiple, too crowded to read).
 */
export function logTicks(min: number, max: number): number[] {
  if (!(min > 0) || !(max >= min)) return [];
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const steps = Math.log10(max / min) <= 2.5 ? [1, 2, 5] : [1];
  const out: number[] = [];
  for (let e = lo; e <= hi; e++) for (const m of steps) out.push(Number((m * 10 ** e).toPrecision(1)));
  const inside = out.filter((v) => v >= min / 1.0001 && v <= max * 1.0001);
  // Keep at least two labels: extend by one tick on each side when the data sits inside one decade.
  return inside.length >= 2 ? inside : out.filter((v) => v >= min / 10 && v <= max * 10);
}

function fieldRange(values: Row[], field: string): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (const r of values) {
    const v = r[field];
    if (typeof v === 'number' && Number.isFinite(v) && v > 0) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
  }
  return [min, max];
}

/**
 * The labels of a log axis drawn from `values`. Without padding or a given domain Vega rounds a log
 * scale out to whole decades ('nice'): the ticks then run to those ends, or the data beyond the
 * outermost label (a loss at 0.2 under a lowest label of 0.5) has nothing to be read against.
 */
function autoLogTicks(field: string, values: Row[], nice: boolean): number[] {
  const [min, max] = fieldRange(values, field);
  if (!nice || !(min > 0) || !Number.isFinite(max)) return logTicks(min, max);
  return logTicks(10 ** Math.floor(Math.log10(min) + 1e-9), 10 ** Math.ceil(Math.log10(max) - 1e-9));
}

function axisEncoding(a: AxisOptions, padding = 0, values: Row[] = []) {
  const log = a.scale === 'log';
  const ticks = a.values ?? (log ? autoLogTicks(a.field, values, !padding && !a.domain) : undefined);
  return {
    field: a.field,
    type: 'quantitative',
    title: a.title,
    scale: {
      type: a.scale ?? 'linear',
      ...(a.domain ? { domain: a.domain } : {}),
      ...(a.zero !== undefined ? { zero: a.zero } : log ? {} : { zero: false }),
      // Points at the edge of the domain would be cut in half.
      ...(padding ? { padding, nice: false } : {}),
    },
    axis: {
      ...(a.format ? { format: a.format } : log ? { format: '~g' } : {}),
      ...(ticks && ticks.length ? { values: ticks } : {}),
    },
  };
}

/** A line and/or point chart with optional series, dash/shape detail, facets and reference lines. */
export function xyChart(o: XYChartOptions): VegaLiteSpec {
  const markType = o.mark ?? 'line';
  const padding = markType === 'line' ? 0 : 10;
  const encoding: Record<string, unknown> = { x: axisEncoding(o.x, padding, o.values), y: axisEncoding(o.y, padding, o.values) };
  if (o.color) {
    encoding.color = {
      field: o.color.field,
      type: 'nominal',
      title: o.color.title,
      scale: { ...(o.color.domain ? { domain: o.color.domain } : {}), range: o.color.range ?? PALETTE },
    };
  }
  if (o.detail) {
    const channel = markType === 'point' ? 'shape' : 'strokeDash';
    // Dashes need a line in the legend, not the point the mark draws.
    // A line+point mark would otherwise draw the legend's dash symbols as filled, stroke-less points: invisible.
    const legend = channel === 'strokeDash' ? { legend: { symbolType: 'stroke', symbolStrokeWidth: 2, symbolSize: 400, symbolStrokeColor: '#444', encode: { symbols: { update: { stroke: { value: '#444' }, fill: { value: 'transparent' } } } } } } : {};
    encoding[channel] = { field: o.detail.field, type: 'nominal', title: o.detail.title, ...(o.detail.domain ? { scale: { domain: o.detail.domain } } : {}), ...legend };
  }
  if (o.tooltip) encoding.tooltip = o.tooltip.map((f) => ({ field: f }));
  const mark =
    markType === 'line'
      ? { type: 'line' as const, strokeWidth: 1.8, clip: true }
      : markType === 'point'
        ? { type: 'point' as const, filled: true, size: 60, clip: true }
        : { type: 'line' as const, strokeWidth: 1.8, clip: true, point: { filled: true, size: 40 } };
  const layers: Record<string, unknown>[] = [{ mark, encoding }];
  // One row per panel, so each reference line is drawn once rather than once per data row.
  const oneRow = [{ aggregate: [{ op: 'count', as: 'rows' }], groupby: o.column ? [o.column.field] : [] }];
  for (const rule of o.rules ?? []) {
    const at = rule.y !== undefined ? { y: { datum: rule.y } } : { x: { datum: rule.x } };
    layers.push({ transform: oneRow, mark: { type: 'rule', color: '#888', strokeDash: [4, 4] }, encoding: at });
    layers.push({
      transform: oneRow,
      mark: { type: 'text', color: '#555', fontSize: 10, align: 'left', dx: 4, dy: rule.y !== undefined ? -6 : 0, baseline: 'bottom', ...(rule.x !== undefined ? { angle: 270 } : {}) },
      encoding: { ...at, ...(rule.y !== undefined ? { x: { value: 2 } } : { y: { value: 2 } }), text: { value: rule.label } },
    });
  }
  const inner = { width: o.width ?? 420, height: o.height ?? 260, layer: layers };
  // Each panel draws its own x axis: with shared axes Vega-Lite puts them in a footer row, detached from the panels.
  const spec = o.column
    ? { data: { values: o.values }, facet: { column: { field: o.column.field, type: 'nominal', title: o.column.title, ...(o.column.domain ? { sort: o.column.domain } : {}) } }, spec: inner, resolve: { scale: { y: o.independentY ? 'independent' : 'shared' }, axis: { x: 'independent' } } }
    : { data: { values: o.values }, ...inner };
  return { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: CHART_CONFIG, ...spec };
}

/** A grouped bar chart: x = category, one bar per series (color) within it. */
export function barChart(o: { values: Row[]; x: { field: string; title: string; domain?: string[] }; y: AxisOptions; color: SeriesOptions; column?: { field: string; title: string; domain?: string[] }; width?: number; height?: number }): VegaLiteSpec {
  const inner = {
    width: o.width ?? 300,
    height: o.height ?? 240,
    mark: { type: 'bar' as const },
    encoding: {
      x: { field: o.x.field, type: 'nominal', title: o.x.title, axis: { labelAngle: 0 }, ...(o.x.domain ? { sort: o.x.domain } : {}) },
      xOffset: { field: o.color.field, type: 'nominal', ...(o.color.domain ? { sort: o.color.domain } : {}) },
      y: axisEncoding({ zero: true, ...o.y }, 0, o.values),
      color: { field: o.color.field, type: 'nominal', title: o.color.title, scale: { ...(o.color.domain ? { domain: o.color.domain } : {}), range: o.color.range ?? PALETTE } },
    },
  };
  const spec = o.column
    ? { data: { values: o.values }, facet: { column: { field: o.column.field, type: 'nominal', title: o.column.title, ...(o.column.domain ? { sort: o.column.domain } : {}) } }, spec: inner, resolve: { axis: { x: 'independent' } } }
    : { data: { values: o.values }, ...inner };
  return { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: CHART_CONFIG, ...spec };
}

/**
 * A chart from `xyChart` or `barChart` redrawn over several seeds: `values` holds every seed's rows
 * (with a `seed` field); each curve becomes the mean over the seeds, with a shaded band (lines) or
 * whiskers (points, bars) from the smallest to the largest value. Reference lines stay as they are.
 */
export function seedBandSpec(spec: VegaLiteSpec, values: Row[]): VegaLiteSpec {
  const facet = spec.facet as { column?: { field: string } } | undefined;
  const inner = (facet ? spec.spec : spec) as Record<string, unknown>;
  const layers = (inner.layer as Record<string, unknown>[] | undefined) ?? [{ mark: inner.mark, encoding: inner.encoding }];
  const [main, ...rest] = layers;
  const enc = { ...(main.encoding as Record<string, { field?: string } & Record<string, unknown>>) };
  const yField = enc.y.field!;
  // The bands reach past the first seed's curves, from which a log axis's labels were drawn: label the
  // decades every seed's values span (the mean layer shares the axis).
  const yScale = enc.y.scale as { type?: string; nice?: boolean; domain?: unknown } | undefined;
  if (yScale?.type === 'log' && yScale.nice !== false && !yScale.domain) enc.y = { ...enc.y, axis: { ...(enc.y.axis as object), values: autoLogTicks(yField, values, true) } };
  const seriesChannels = ['color', 'strokeDash', 'shape', 'xOffset'].filter((c) => enc[c]?.field);
  const groupby = [enc.x.field!, ...seriesChannels.map((c) => enc[c].field!), ...(facet?.column ? [facet.column.field] : [])];
  const lo = `${yField} (min over seeds)`;
  const hi = `${yField} (max over seeds)`;
  const aggregate = [{ aggregate: [{ op: 'mean', field: yField, as: yField }, { op: 'min', field: yField, as: lo }, { op: 'max', field: yField, as: hi }], groupby }];
  const { tooltip: _tooltip, ...meanEncoding } = enc;
  const markType = typeof main.mark === 'string' ? main.mark : (main.mark as { type: string }).type;
  const isLine = markType === 'line' || markType === 'area';
  const range = { y: { ...enc.y, field: lo }, y2: { field: hi } };
  // The band takes its color from the data (scale: null), so that it adds nothing to the legends.
  const colorOf = bandColor(enc.color as { field: string; scale?: { domain?: string[]; range?: string[] } } | undefined, values);
  const bandTransform = colorOf ? [...aggregate, { calculate: colorOf, as: 'band color' }] : aggregate;
  const bandColorEncoding = colorOf ? { [isLine ? 'fill' : 'stroke']: { field: 'band color', type: 'nominal', scale: null } } : {};
  const seriesDetail = seriesChannels.filter((c) => c !== 'color').map((c) => ({ field: enc[c].field }));
  const spread = isLine
    ? { mark: { type: 'area', opacity: 0.18, clip: true }, encoding: { x: enc.x, ...range, ...bandColorEncoding, ...(seriesDetail.length ? { detail: seriesDetail } : {}) } }
    : { mark: { type: 'rule', strokeWidth: 1.5, clip: true }, encoding: { x: enc.x, ...range, ...(enc.xOffset ? { xOffset: enc.xOffset } : {}), ...(markType === 'bar' ? { color: { value: '#333' } } : bandColorEncoding) } };
  const banded = [
    { transform: bandTransform, ...spread },
    { transform: aggregate, mark: main.mark, encoding: meanEncoding },
    ...rest,
  ];
  const { mark: _mark, encoding: _encoding, layer: _layer, ...frame } = inner;
  const newInner = { ...frame, layer: banded };
  return facet ? { ...spec, data: { values }, spec: newInner } : { ...newInner, data: { values } };
}

/** A Vega expression giving each row the color its series has in the chart's color scale. */
function bandColor(color: { field: string; scale?: { domain?: string[]; range?: string[] } } | undefined, values: Row[]): string | null {
  if (!color) return null;
  // Without a given domain Vega sorts a nominal domain.
  const domain = color.scale?.domain ?? [...new Set(values.map((r) => String(r[color.field])))].sort();
  const range = color.scale?.range ?? PALETTE;
  const colors = domain.map((_, i) => range[i % range.length]);
  return `${JSON.stringify(colors)}[indexof(${JSON.stringify(domain)}, datum[${JSON.stringify(color.field)}])] || '#888'`;
}

/** One panel of `contourGrid`: a shaded field over a rectangle, its level lines, paths and marked points. */
export interface ContourPanel {
  title: string;
  /** A second, smaller title line. */
  subtitle?: string;
  xTitle: string;
  yTitle: string;
  /** Cells of the shaded field: the rectangle [x, x2] × [y, y2] gets the color of `value`. */
  cells: Array<{ x: number; x2: number; y: number; y2: number; value: number }>;
  /** Level lines as segments (see `levelSegments`). */
  lines: Array<{ x: number; y: number; x2: number; y2: number }>;
  /** Path points, drawn in `step` order per `series`. */
  path: Array<{ x: number; y: number; step: number; series: string }>;
  /** Marked points, e.g. a start and an optimum. */
  points: Array<{ x: number; y: number; mark: string }>;
  domainX: [number, number];
  domainY: [number, number];
}

export interface ContourGridOptions {
  panels: ContourPanel[];
  /** Panels per row (row-major order). */
  columns: number;
  /** The shaded field: log color scale over `domain`, values outside clamped. */
  field: { title: string | string[]; domain: [number, number] };
  series: { title: string; domain: string[]; range: string[] };
  marks: { title: string; domain: string[]; shapes: string[] };
  width?: number;
  height?: number;
}

/**
 * A grid of contour panels (rows × columns, each with its own axes): a log-shaded field, level lines,
 * paths and marked points. One legend for the field's shades, one for the paths, one for the marks.
 */
export function contourGrid(o: ContourGridOptions): VegaLiteSpec {
  const width = o.width ?? 210;
  const height = o.height ?? 170;
  const panel = (p: ContourPanel) => {
    const x = { field: 'x', type: 'quantitative', title: p.xTitle, scale: { domain: p.domainX, nice: false, zero: false }, axis: { tickCount: 4, labelFontSize: 10, titleFontSize: 11, grid: false } };
    // minExtent: the same room for the y labels in every panel, so that the columns line up.
    const y = { field: 'y', type: 'quantitative', title: p.yTitle, scale: { domain: p.domainY, nice: false, zero: false }, axis: { tickCount: 4, labelFontSize: 10, titleFontSize: 11, grid: false, minExtent: 48 } };
    return {
      width,
      height,
      title: { text: p.title, fontSize: 12, ...(p.subtitle ? { subtitle: p.subtitle, subtitleFontSize: 10, subtitleColor: '#444' } : {}) },
      layer: [
        {
          data: { values: p.cells },
          // aria: false keeps thousands of cells from each carrying a text label in the SVG (megabytes).
          mark: { type: 'rect', clip: true, aria: false },
          encoding: { x, x2: { field: 'x2' }, y, y2: { field: 'y2' }, fill: { field: 'value', type: 'quantitative', title: o.field.title, scale: { type: 'log', domain: o.field.domain, clamp: true, scheme: 'blues', reverse: true }, legend: { format: '~g', gradientLength: 160, titleLimit: 260 } } },
        },
        { data: { values: p.lines }, mark: { type: 'rule', clip: true, aria: false, color: '#203040', strokeWidth: 0.7, opacity: 0.45 }, encoding: { x, y, x2: { field: 'x2' }, y2: { field: 'y2' } } },
        {
          data: { values: p.path },
          mark: { type: 'line', clip: true, aria: false, strokeWidth: 1.6, point: { filled: true, size: 12, aria: false } },
          encoding: { x, y, order: { field: 'step', type: 'quantitative' }, color: { field: 'series', type: 'nominal', title: o.series.title, scale: { domain: o.series.domain, range: o.series.range } } },
        },
        {
          data: { values: p.points },
          mark: { type: 'point', clip: true, filled: false, size: 90, strokeWidth: 2, color: '#000000' },
          encoding: { x, y, shape: { field: 'mark', type: 'nominal', title: o.marks.title, scale: { domain: o.marks.domain, range: o.marks.shapes } } },
        },
      ],
    };
  };
  // One grid whatever each panel's label widths: the layout counts only the plot areas (bounds: 'flush'),
  // and the spacing leaves room for the axes, the titles and the subtitles between them.
  return { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: CHART_CONFIG_LEGENDS_BESIDE, concat: o.panels.map(panel), columns: o.columns, align: 'all', bounds: 'flush', spacing: { row: 78, column: 84 }, padding: { left: 70, top: 40, right: 10, bottom: 40 }, resolve: { scale: { fill: 'shared', color: 'shared', shape: 'shared' } } };
}
