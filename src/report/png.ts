/**
 * SVG → PNG with resvg (a full SVG renderer, native code: Node only). Text needs a font: resvg loads the
 * system fonts, and `generic sans-serif` is mapped to DejaVu Sans (Debian's fonts-dejavu-core, which
 * `.ci/run` installs when it is missing), the first family the chart specs ask for.
 */
import { Resvg } from '@resvg/resvg-js';

export interface PngOptions {
  /** Pixels per SVG unit. Default 2 (sharp on high-density screens). */
  scale?: number;
  /** Extra font files, for systems without DejaVu Sans. */
  fontFiles?: string[];
}

export function svgToPng(svg: string, options: PngOptions = {}): Uint8Array {
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: options.scale ?? 2 },
    background: 'white',
    font: { loadSystemFonts: true, fontFiles: options.fontFiles ?? [], defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
  });
  return resvg.render().asPng();
}
