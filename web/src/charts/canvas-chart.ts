/**
 * What every chart of the lab shares: a canvas in a <figure>, labelled for screen readers, drawn at the
 * device's pixel ratio and only when its data or its size changed (`draw` runs on animation frames).
 */
export abstract class CanvasChart {
  readonly canvas: HTMLCanvasElement;
  /** Set by a subclass when its data change; the next `draw` renders. */
  protected dirty = true;
  private size = { w: 0, h: 0, dpr: 1 };

  constructor(parent: HTMLElement, title: string, height: number) {
    const figure = document.createElement('figure');
    figure.className = 'chart';
    this.canvas = document.createElement('canvas');
    this.canvas.setAttribute('role', 'img');
    this.canvas.setAttribute('aria-label', title);
    this.canvas.style.height = `${height}px`;
    figure.append(this.canvas);
    parent.append(figure);
  }

  /** Redraw if anything changed since the last draw (nothing while the canvas is hidden or has nothing to draw). */
  draw(): void {
    const dpr = window.devicePixelRatio || 1;
    const w = this.canvas.clientWidth;
    const h = this.canvas.clientHeight;
    if (w === 0 || h === 0 || !this.hasData()) return;
    if (w !== this.size.w || h !== this.size.h || dpr !== this.size.dpr) {
      this.size = { w, h, dpr };
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
      this.dirty = true;
    }
    if (!this.dirty) return;
    this.dirty = false;
    const ctx = this.canvas.getContext('2d')!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    this.render(ctx, w, h);
  }

  /** False while there is nothing to draw: the canvas keeps what it shows. */
  protected hasData(): boolean {
    return true;
  }

  /** Draw everything, in CSS pixels (w × h). */
  protected abstract render(ctx: CanvasRenderingContext2D, w: number, h: number): void;
}
