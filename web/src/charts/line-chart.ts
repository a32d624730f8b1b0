/**
 * A small canvas line chart in the uPlot manner: made once, then `setData` with the latest numbers and
 * `draw` on an animation frame (it redraws only when the data or its size changed). Series are told
 * apart by colour and dash pattern; markers label points (e.g. where a net diverged).
 */
import { CanvasChart } from './canvas-chart.js';

export interface Series {
  label: string;
  color: string;
  /** Canvas dash pattern in CSS pixels ([] = solid). */
  dash: number[];
  /** x and y of each point; non-finite y values break the line. */
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  /** Draw dots at the points (for sparse series). */
  points?: boolean;
  width?: number;
  /**
   * y values above this do not widen the y range and are drawn at the top edge: a diverged run's blow-up
   * (already marked by a cross) would otherwise squash every other curve onto the floor.
   */
  rangeMax?: number;
  /** Written beside the line's last point (e.g. a layer's number), so lines are told apart without colour. */
  endLabel?: string;
}

export interface Marker {
  x: number;
  y: number;
  label: string;
  color: string;
  /** Pixels to move it down, so markers at the same point stay apart. */
  dy?: number;
}

export interface ChartOptions {
  xLabel: string;
  yLabel: string;
  logX?: boolean;
  logY?: boolean;
  /** Fixed y range (else from the data). */
  yRange?: [number, number];
  /** x range (else from the data); `setXRange` changes it, e.g. to keep two charts' steps aligned. */
  xRange?: [number, number];
  /** Accessible description of the chart. */
  title: string;
  height?: number;
}

const FONT = '12px system-ui, sans-serif';

export class LineChart extends CanvasChart {
  private series: Series[] = [];
  private markers: Marker[] = [];

  constructor(parent: HTMLElement, readonly options: ChartOptions) {
    super(parent, options.title, options.height ?? 220);
  }

  setXRange(range: [number, number] | undefined): void {
    if (range?.[0] === this.options.xRange?.[0] && range?.[1] === this.options.xRange?.[1]) return;
    this.options.xRange = range;
    this.dirty = true;
  }

  /** Show or hide the chart (e.g. until it has data). */
  set hidden(hidden: boolean) {
    this.canvas.parentElement!.hidden = hidden;
  }

  setData(series: Series[], markers: Marker[] = []): void {
    this.series = series;
    this.markers = markers;
    this.dirty = true;
  }

  protected override render(ctx: CanvasRenderingContext2D, w: number, h: number): void {
    const o = this.options;
    const pad = { left: 52, right: 12, top: 26, bottom: 34 };
    ctx.font = FONT;
    const fx = o.logX ? (v: number) => Math.log10(v) : (v: number) => v;
    const fy = o.logY ? (v: number) => Math.log10(v) : (v: number) => v;
    const ok = (v: number, log?: boolean) => Number.isFinite(v) && (!log || v > 0);
    // Tens of thousands of steps on a few hundred pixels: each column's extremes draw the same picture,
    // and every pass below (range, lines) then costs the same at step 100,000 as at step 1,000.
    const series = this.series.map((s) => (s.points ? s : { ...s, ...columnExtremes(s.x, s.y, w, o.logX, o.logY) }));
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (const s of series) {
      for (let i = 0; i < s.x.length; i++) {
        const x = s.x[i];
        const y = s.y[i];
        if (!ok(x, o.logX)) continue;
        x0 = Math.min(x0, fx(x));
        x1 = Math.max(x1, fx(x));
        if (!ok(y, o.logY) || (s.rangeMax !== undefined && y > s.rangeMax)) continue;
        y0 = Math.min(y0, fy(y));
        y1 = Math.max(y1, fy(y));
      }
    }
    if (Number.isFinite(y0) && y1 > y0) {
      // A little room above and below the data, so lines at the extremes stay visible.
      const room = (y1 - y0) * 0.05;
      [y0, y1] = [y0 - room, y1 + room];
    }
    if (o.yRange) [y0, y1] = [fy(o.yRange[0]), fy(o.yRange[1])];
    if (o.xRange) [x0, x1] = [fx(o.xRange[0]), fx(o.xRange[1])];
    if (!Number.isFinite(x0)) [x0, x1] = [0, 1];
    if (!Number.isFinite(y0)) [y0, y1] = [0, 1];
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) [y0, y1] = [y0 - 0.5, y1 + 0.5];
    // The y-axis title sits left of the widest tick label: measure the labels, then lay out the plot.
    const yTicks = ticks(y0, y1, o.logY).map((t) => ({ t, text: tickLabel(o.logY ? 10 ** t : t) }));
    const widest = Math.max(0, ...yTicks.map((k) => ctx.measureText(k.text).width));
    pad.left = Math.max(pad.left, Math.ceil(widest) + 4 + 26);
    const pw = w - pad.left - pad.right;
    const ph = h - pad.top - pad.bottom;
    const px = (v: number) => pad.left + ((fx(v) - x0) / (x1 - x0)) * pw;
    const py = (v: number) => pad.top + (1 - (fy(v) - y0) / (y1 - y0)) * ph;
    const clampY = (v: number) => Math.max(pad.top, Math.min(pad.top + ph, v));

    // Axes and ticks.
    ctx.strokeStyle = '#c8c8c8';
    ctx.fillStyle = '#444';
    ctx.lineWidth = 1;
    ctx.setLineDash([]);
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    let lastLabel = Infinity;
    for (const { t, text } of yTicks) {
      const y = pad.top + (1 - (t - y0) / (y1 - y0)) * ph;
      ctx.beginPath();
      ctx.moveTo(pad.left, y);
      ctx.lineTo(pad.left + pw, y);
      ctx.stroke();
      // Close log ticks (0.7, 0.8, 0.9) keep their grid lines but not every label.
      if (Math.abs(lastLabel - y) < 14) continue;
      ctx.fillText(text, pad.left - 4, y);
      lastLabel = y;
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    let lastRight = -Infinity;
    for (const t of ticks(x0, x1, o.logX)) {
      const x = pad.left + ((t - x0) / (x1 - x0)) * pw;
      const text = tickLabel(o.logX ? 10 ** t : t);
      // Centred under its tick, but moved in so that a label at either end stays whole on the canvas.
      const half = ctx.measureText(text).width / 2;
      const at = Math.max(half + 1, Math.min(w - half - 1, x));
      // On a narrow chart long labels (100,000) would run into each other: one that would is left out.
      if (at - half < lastRight + 6) continue;
      ctx.fillText(text, at, pad.top + ph + 4);
      lastRight = at + half;
    }
    ctx.strokeStyle = '#888';
    ctx.strokeRect(pad.left, pad.top, pw, ph);
    ctx.fillText(o.xLabel, pad.left + pw / 2, h - 14);
    ctx.save();
    ctx.translate(12, pad.top + ph / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = 'middle';
    ctx.fillText(o.yLabel, 0, 0);
    ctx.restore();

    // Lines, clipped to the plot.
    ctx.save();
    ctx.beginPath();
    ctx.rect(pad.left, pad.top, pw, ph);
    ctx.clip();
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      ctx.lineWidth = s.width ?? 2;
      ctx.setLineDash(s.dash);
      ctx.beginPath();
      let pen = false;
      for (let i = 0; i < s.x.length; i++) {
        const x = s.x[i];
        const y = s.y[i];
        if (!ok(x, o.logX) || !ok(y, o.logY)) {
          pen = false;
          continue;
        }
        const X = px(x);
        const Y = clampY(py(y));
        if (pen) ctx.lineTo(X, Y);
        else ctx.moveTo(X, Y);
        pen = true;
      }
      ctx.stroke();
      if (s.points) {
        ctx.setLineDash([]);
        for (let i = 0; i < s.x.length; i++) {
          if (!ok(s.x[i], o.logX) || !ok(s.y[i], o.logY)) continue;
          ctx.beginPath();
          ctx.arc(px(s.x[i]), clampY(py(s.y[i])), 3, 0, 2 * Math.PI);
          ctx.fill();
        }
      }
    }
    ctx.restore();

    // End labels, in the right margin (or beside a line that ends earlier), nudged apart vertically.
    const ends: { x: number; y: number; text: string; color: string }[] = [];
    for (const s of series) {
      if (!s.endLabel) continue;
      for (let i = s.x.length - 1; i >= 0; i--) {
        if (!ok(s.x[i], o.logX) || !ok(s.y[i], o.logY)) continue;
        ends.push({ x: Math.min(px(s.x[i]) + 3, pad.left + pw + 2), y: clampY(py(s.y[i])), text: s.endLabel, color: s.color });
        break;
      }
    }
    ends.sort((a, b) => a.y - b.y);
    for (let i = 1; i < ends.length; i++) if (Math.abs(ends[i].x - ends[i - 1].x) < 12) ends[i].y = Math.max(ends[i].y, ends[i - 1].y + 11);
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    ctx.font = `bold ${FONT}`;
    ctx.lineWidth = 3;
    ctx.strokeStyle = '#fff';
    for (const e of ends) {
      ctx.strokeText(e.text, e.x, e.y);
      ctx.fillStyle = e.color;
      ctx.fillText(e.text, e.x, e.y);
    }
    ctx.font = FONT;

    // Markers: a cross at the point (at the top edge when off the chart) with its label.
    ctx.setLineDash([]);
    for (const m of this.markers) {
      const X = px(m.x);
      const Y = (Number.isFinite(m.y) ? clampY(py(m.y)) : pad.top + 6) + (m.dy ?? 0);
      ctx.strokeStyle = m.color;
      ctx.lineWidth = 2.5;
      ctx.beginPath();
      ctx.moveTo(X - 6, Y - 6);
      ctx.lineTo(X + 6, Y + 6);
      ctx.moveTo(X + 6, Y - 6);
      ctx.lineTo(X - 6, Y + 6);
      ctx.stroke();
      // Beside its cross, so markers moved apart by `dy` keep their labels apart; a white edge over the lines.
      ctx.textAlign = X > pad.left + pw / 2 ? 'right' : 'left';
      ctx.textBaseline = 'middle';
      const lx = X + (X > pad.left + pw / 2 ? -10 : 10);
      ctx.lineWidth = 3;
      ctx.strokeStyle = '#fff';
      ctx.strokeText(m.label, lx, Y);
      ctx.fillStyle = m.color;
      ctx.fillText(m.label, lx, Y);
    }

    // Legend, top left, with each series' dash.
    let lx = pad.left;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    for (const s of this.series) {
      if (!s.label) continue; // unlabelled series (e.g. a band's edges) share their twin's entry
      ctx.strokeStyle = s.color;
      ctx.lineWidth = s.width ?? 2;
      ctx.setLineDash(s.dash);
      ctx.beginPath();
      ctx.moveTo(lx, 12);
      ctx.lineTo(lx + 24, 12);
      ctx.stroke();
      ctx.fillStyle = '#222';
      ctx.fillText(s.label, lx + 28, 12);
      lx += 36 + ctx.measureText(s.label).width;
    }
    ctx.setLineDash([]);
  }
}

let counting = new Float64Array(0);

/** 1, 2, …, n (the steps of a per-step series), a view of one array grown as runs get longer. */
export function stepsUpTo(n: number): Float64Array {
  if (counting.length < n) {
    counting = new Float64Array(Math.max(n, 2 * counting.length, 1024));
    for (let i = 0; i < counting.length; i++) counting[i] = i + 1;
  }
  return counting.subarray(0, n);
}

/**
 * A series with more than 4 points per pixel column (of `columns`, spread over its own x extent) reduced
 * to the first, lowest, highest and last point of each column, in order: the line looks the same and
 * keeps its spikes (every k-th point would miss them). A value a log axis cannot show breaks the line as
 * before. Series whose x goes back (not a run over steps) are kept whole.
 */
export function columnExtremes(x: ArrayLike<number>, y: ArrayLike<number>, columns: number, logX?: boolean, logY?: boolean): { x: ArrayLike<number>; y: ArrayLike<number> } {
  const n = x.length;
  if (n <= 4 * columns) return { x, y };
  let first = -1;
  let last = -1;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(x[i])) continue;
    if (last >= 0 && x[i] < x[last]) return { x, y };
    if (first < 0) first = i;
    last = i;
  }
  if (first < 0) return { x, y };
  const f = (v: number) => (logX ? Math.log10(v) : v);
  const a = f(x[first]);
  const span = f(x[last]) - a || 1;
  const ox: number[] = [];
  const oy: number[] = [];
  let column = -1;
  let idx: number[] = []; // first, lowest, highest, last of the column
  let gap = false;
  const flush = () => {
    if (idx.length) for (const i of [...new Set(idx)].sort((p, q) => p - q)) (ox.push(x[i]), oy.push(y[i]));
    if (gap) (ox.push(x[idx.at(-1) ?? first]), oy.push(NaN));
    idx = [];
    gap = false;
  };
  const perUnit = columns / span;
  for (let i = first; i <= last; i++) {
    const xi = x[i];
    if (!(xi === xi) || (logX && !(xi > 0))) continue; // NaN fails xi === xi
    const c = Math.min(columns - 1, ((logX ? Math.log10(xi) : xi) - a) * perUnit) | 0;
    if (c !== column) {
      flush();
      column = c;
    }
    const yi = y[i];
    if (!(yi - yi === 0) || (logY && !(yi > 0))) { // ±Infinity and NaN fail yi - yi === 0
      // A break in the line: what came before it in this column is drawn, then the gap.
      gap = true;
      flush();
      continue;
    }
    if (idx.length === 0) idx = [i, i, i, i];
    else {
      if (yi < y[idx[1]]) idx[1] = i;
      if (yi > y[idx[2]]) idx[2] = i;
      idx[3] = i;
    }
  }
  flush();
  return { x: ox, y: oy };
}

/** Tick positions (in transformed units) between a and b: decades on log axes, 1-2-5 steps otherwise. */
function ticks(a: number, b: number, log?: boolean): number[] {
  if (log) {
    const out: number[] = [];
    for (let t = Math.ceil(a); t <= Math.floor(b); t++) out.push(t);
    if (out.length >= 2) return out;
    // Less than two decades: 1-2-5 (then 1..9) times the powers of ten in range.
    for (const mantissas of [[1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]]) {
      const within: number[] = [];
      for (let k = Math.floor(a); k <= Math.ceil(b); k++) for (const m of mantissas) {
        const t = Math.log10(m) + k;
        if (t >= a - 1e-9 && t <= b + 1e-9) within.push(t);
      }
      if (within.length >= 3) return within;
    }
  }
  const span = b - a;
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= 6) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(a / step) * step; t <= b + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return out;
}

const THOUSANDS = new Intl.NumberFormat('en'); // made once: toLocaleString builds a formatter per call

/**
 * A tick's label: three significant digits at most, with thousands separators up to a million (15,000
 * steps, not "2e+4": rounding to one digit gave 15,000 and 20,000 the same label), exponents beyond.
 */
export function tickLabel(v: number): string {
  if (v === 0) return '0';
  const r = Number(v.toPrecision(3));
  const a = Math.abs(r);
  if (a >= 1e6 || a < 1e-3) return r.toExponential();
  return a >= 1e4 ? THOUSANDS.format(r) : String(r);
}
