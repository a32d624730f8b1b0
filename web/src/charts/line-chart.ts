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
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (const s of this.series) {
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
    const yTicks = ticks(y0, y1, o.logY).map((t) => ({ t, text: format(o.logY ? 10 ** t : t) }));
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
    for (const t of ticks(x0, x1, o.logX)) {
      const x = pad.left + ((t - x0) / (x1 - x0)) * pw;
      const text = format(o.logX ? 10 ** t : t);
      // Centred under its tick, but moved in so that a label at either end stays whole on the canvas.
      const half = ctx.measureText(text).width / 2;
      ctx.fillText(text, Math.max(half + 1, Math.min(w - half - 1, x)), pad.top + ph + 4);
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
    for (const s of this.series) {
      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      ctx.lineWidth = s.width ?? 2;
      ctx.setLineDash(s.dash);
      ctx.beginPath();
      let pen = false;
      // Thousands of points on a few hundred pixels: one point per pixel column is enough.
      const stride = Math.max(1, Math.floor(s.x.length / (pw * 2)));
      for (let i = 0; i < s.x.length; i += stride) {
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
      ctx.fillStyle = m.color;
      ctx.textAlign = X > pad.left + pw / 2 ? 'right' : 'left';
      ctx.textBaseline = 'bottom';
      ctx.fillText(m.label, X + (X > pad.left + pw / 2 ? -8 : 8), Math.max(pad.top + 14, Y - 4));
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

function format(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(3)));
}
