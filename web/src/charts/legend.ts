/**
 * A legend in HTML above a chart: it wraps on narrow screens, where a legend drawn inside the canvas
 * would run off its edge. Each entry shows the series' colour and dash pattern (an SVG line).
 */
export interface LegendItem {
  label: string;
  color: string;
  dash: number[];
  width?: number;
}

const SVG = 'http://www.w3.org/2000/svg';

export function legend(parent: HTMLElement, items: LegendItem[]): HTMLElement {
  const row = document.createElement('div');
  row.className = 'html-legend';
  for (const item of items) {
    const entry = document.createElement('span');
    entry.className = 'html-legend-item';
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('width', '26');
    svg.setAttribute('height', '8');
    svg.setAttribute('aria-hidden', 'true');
    const line = document.createElementNS(SVG, 'line');
    line.setAttribute('x1', '1');
    line.setAttribute('y1', '4');
    line.setAttribute('x2', '25');
    line.setAttribute('y2', '4');
    line.setAttribute('stroke', item.color);
    line.setAttribute('stroke-width', String(item.width ?? 2));
    if (item.dash.length) line.setAttribute('stroke-dasharray', item.dash.join(' '));
    svg.append(line);
    const text = document.createElement('span');
    text.textContent = item.label;
    entry.append(svg, text);
    row.append(entry);
  }
  parent.append(row);
  return row;
}
