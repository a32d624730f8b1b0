/**
 * Loss contours over a (w1, w2) grid with gradient-descent paths on top, on a canvas. Made once,
 * `setData` then `draw` (it redraws only when the data or its size changed). Contour lines come from
 * marching squares over the grid; paths are polylines with a dot at every step (so the zig-zag shows).
 */
import type { LossGrid } from '@bnlab/experiments/two-feature.js';
import { CanvasChart } from './canvas-chart.js';
import { tickLabel } from './line-chart.js';

export interface Path {
  label: string;
  color: string;
  dash: number[];
  w1: ArrayLike<number>;
  w2: ArrayLike<number>;
}

export interface ContourOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  height?: number;
}

const FONT = '12px system-ui, sans-serif';

export class ContourChart extends CanvasChart {
  private grid: LossGrid | null = null;
  private levels: number[] = [];
  private paths: Path[] = [];
  private minimum: [number, number] | null = null;

  constructor(parent: HTMLElement, readonly options: ContourOptions) {
    super(parent, options.title, options.height ?? 260);
  }

  setData(grid: LossGrid, levels: number[], paths: Path[], minimum: [number, number]): void {
    this.grid = grid;
    this.levels = levels;
    this.paths = paths;
    this.minimum = minimum;
    this.dirty = true;
  }

  protected override hasData(): boolean {
    return this.grid !== null;
  }

  protected override render(ctx: CanvasRenderingContext2D, w: number, h: number): void {
    const g = this.grid!;
    const pad = { left: 62, right: 10, top: 24, bottom: 34 };
    const pw = w - pad.left - pad.right;
    const ph = h - pad.top - pad.bottom;
    const [x0, x1] = [g.w1[0], g.w1[g.w1.length - 1]];
    const [y0, y1] = [g.w2[0], g.w2[g.w2.length - 1]];
    const px = (v: number) => pad.left + ((v - x0) / (x1 - x0)) * pw;
    const py = (v: number) => pad.top + (1 - (v - y0) / (y1 - y0)) * ph;
    const n = g.w1.length;
    const m = g.w2.length;

    ctx.save();
    ctx.beginPath();
    ctx.rect(pad.left, pad.top, pw, ph);
    ctx.clip();
    ctx.fillStyle = '#fbfbfd';
    ctx.fillRect(pad.left, pad.top, pw, ph);
    // Contour lines, darker towards the minimum.
    this.levels.forEach((level, k) => {
      const shade = Math.round(200 - (120 * k) / Math.max(1, this.levels.length - 1));
      ctx.strokeStyle = `rgb(${shade}, ${shade}, ${shade + 20})`;
      ctx.lineWidth = 1;
      ctx.setLineDash([]);
      ctx.beginPath();
      for (let r = 0; r + 1 < m; r++) {
        for (let c = 0; c + 1 < n; c++) {
          const v = [g.loss[r * n + c], g.loss[r * n + c + 1], g.loss[(r + 1) * n + c + 1], g.loss[(r + 1) * n + c]];
          const corners: [number, number][] = [[g.w1[c], g.w2[r]], [g.w1[c + 1], g.w2[r]], [g.w1[c + 1], g.w2[r + 1]], [g.w1[c], g.w2[r + 1]]];
          const cross: [number, number][] = [];
          for (let e = 0; e < 4; e++) {
            const a = v[e];
            const b = v[(e + 1) % 4];
            if ((a < level) !== (b < level)) {
              const t = (level - a) / (b - a);
              const [p, q] = [corners[e], corners[(e + 1) % 4]];
              cross.push([p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])]);
            }
          }
          for (let i = 0; i + 1 < cross.length; i += 2) {
            ctx.moveTo(px(cross[i][0]), py(cross[i][1]));
            ctx.lineTo(px(cross[i + 1][0]), py(cross[i + 1][1]));
          }
        }
      }
      ctx.stroke();
    });
    if (this.minimum) {
      ctx.fillStyle = '#222';
      ctx.beginPath();
      ctx.arc(px(this.minimum[0]), py(this.minimum[1]), 4, 0, 2 * Math.PI);
      ctx.fill();
    }
    for (const p of this.paths) {
      ctx.strokeStyle = p.color;
      ctx.fillStyle = p.color;
      ctx.lineWidth = 1.8;
      ctx.setLineDash(p.dash);
      ctx.beginPath();
      for (let i = 0; i < p.w1.length; i++) {
        const X = px(p.w1[i]);
        const Y = py(p.w2[i]);
        if (i === 0) ctx.moveTo(X, Y);
        else ctx.lineTo(X, Y);
      }
      ctx.stroke();
      ctx.setLineDash([]);
      for (let i = 0; i < p.w1.length; i++) {
        ctx.beginPath();
        ctx.arc(px(p.w1[i]), py(p.w2[i]), i === 0 ? 4 : 1.8, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
    ctx.restore();

    ctx.font = FONT;
    ctx.strokeStyle = '#888';
    ctx.lineWidth = 1;
    ctx.setLineDash([]);
    ctx.strokeRect(pad.left, pad.top, pw, ph);
    ctx.fillStyle = '#444';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (const t of ticks(x0, x1)) ctx.fillText(tickLabel(t), px(t), pad.top + ph + 4);
    ctx.fillText(this.options.xLabel, pad.left + pw / 2, h - 14);
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const t of ticks(y0, y1)) ctx.fillText(tickLabel(t), pad.left - 4, py(t));
    ctx.save();
    ctx.translate(12, pad.top + ph / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = 'center';
    ctx.fillText(this.options.yLabel, 0, 0);
    ctx.restore();
    // Legend.
    let lx = pad.left;
    ctx.textAlign = 'left';
    for (const p of this.paths) {
      if (!p.label) continue; // the legend may be outside the canvas (charts/legend.ts)
      ctx.strokeStyle = p.color;
      ctx.lineWidth = 2;
      ctx.setLineDash(p.dash);
      ctx.beginPath();
      ctx.moveTo(lx, 11);
      ctx.lineTo(lx + 22, 11);
      ctx.stroke();
      ctx.fillStyle = '#222';
      ctx.fillText(p.label, lx + 26, 11);
      lx += 34 + ctx.measureText(p.label).width;
    }
    ctx.setLineDash([]);
  }
}

function ticks(a: number, b: number): number[] {
  const span = b - a;
  const mag = 10 ** Math.floor(Math.log10(span / 4));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => span / s <= 5) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(a / step) * step; t <= b + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return out;
}
