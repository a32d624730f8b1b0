/**
 * Report pages as HTML strings: one per experiment run (reading, key figures, plots, settings) and one
 * joining many runs. Self-contained: the SVG plots are inlined, the styles are in the page, and there is
 * no script, so the page opens from disk in any browser without network access. Browser-safe.
 */
import type { ExperimentResult } from '../experiments/types.js';
import type { Figure } from './charts.js';

/** A figure rendered to SVG, with the file names it was saved under (relative to the page). */
export interface RenderedFigure {
  figure: Figure;
  svg: string;
  files?: { svg?: string; png?: string };
}

/** One run as the combined report lists it: its result, figures, and the folder it is in (relative to the page). */
export interface ReportRun {
  result: ExperimentResult;
  figures: RenderedFigure[];
  href: string;
  /** What the experiment compares (its definition's `compared`), shown before the results. */
  compared?: string;
}

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/**
 * Give every id in an SVG a prefix, and the references to them too. Vega names its clip paths
 * "clip1", "clip2", ... in every chart; inlined side by side, the second chart would clip with the
 * first one's paths.
 */
export function namespaceSvgIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, (_, id: string) => `id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id: string) => `url(#${prefix}-${id})`)
    .replace(/\b(xlink:href|href)="#([^"]+)"/g, (_, attr: string, id: string) => `${attr}="#${prefix}-${id}"`);
}

const STYLE = `
  :root { color-scheme: light; }
  body { font-family: "DejaVu Sans", Verdana, system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 24px 32px 48px; color: #1d1d1f; line-height: 1.5; }
  header { border-bottom: 1px solid #ddd; margin-bottom: 16px; }
  .kicker { text-transform: uppercase; letter-spacing: .06em; font-size: 12px; color: #666; margin: 0; }
  h1 { font-size: 26px; margin: 4px 0 8px; }
  h2 { font-size: 19px; margin: 28px 0 8px; }
  h3 { font-size: 15px; margin: 0 0 6px; }
  .question { font-size: 16px; color: #333; margin: 0 0 8px; }
  .meta { font-size: 13px; color: #666; }
  .reading p { margin: 6px 0; max-width: 80ch; }
  table { border-collapse: collapse; font-size: 14px; }
  th, td { text-align: left; padding: 4px 12px 4px 0; border-bottom: 1px solid #eee; vertical-align: top; }
  th { color: #555; font-weight: normal; }
  td.value { font-variant-numeric: tabular-nums; font-weight: bold; }
  figure { margin: 16px 0 28px; }
  .chart, .scroll { overflow-x: auto; }
  td { overflow-wrap: break-word; }
  td.nowrap { white-space: nowrap; }
  /* The runs table scrolls sideways on a phone instead of squeezing its titles a few letters per line. */
  nav table { min-width: 760px; }
  /* --min-width (80% of the chart's own width): a narrow screen scrolls the chart sideways rather than
     shrinking its 11px labels to unreadable 5px ones. */
  .chart svg { max-width: 100%; min-width: var(--min-width, 0); height: auto; }
  .compared { max-width: 80ch; }
  .folder { font-size: 12px; color: #666; }
  .kicker .path { text-transform: none; }
  figcaption { font-size: 13px; color: #555; max-width: 90ch; }
  details { margin: 6px 0; }
  details summary { cursor: pointer; font-size: 14px; }
  ul.summary { margin: 6px 0; padding-left: 20px; }
  nav table td, nav table th { padding-right: 16px; }
  section.run { border-top: 2px solid #ccc; margin-top: 36px; }
  footer { margin-top: 32px; font-size: 13px; color: #666; }
  a { color: #0b61a4; }
  @media (max-width: 640px) {
    body { padding: 16px 14px 32px; }
    h1 { font-size: 22px; }
  }
`;

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
${body}
</body>
</html>
`;
}

function runMeta(r: ExperimentResult): string {
  const when = r.startedAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  return `${r.quick ? 'quick run' : 'full-size run'} · ${seedsText(r)} · ${escapeHtml(r.backend)} kernels · started ${escapeHtml(when)} · wall time ${formatSeconds(r.wallTimeSeconds)}`;
}

/** "seed 1", or "3 seeds (1, 2, 3)". */
function seedsText(r: ExperimentResult): string {
  const seeds = r.seeds ?? [r.seed];
  return seeds.length === 1 ? `seed ${seeds[0]}` : `${seeds.length} seeds (${seeds.join(', ')})`;
}

/** Each seed's own reading and key figures, folded away: the main reading is about all of them. */
function seedRunsHtml(r: ExperimentResult, heading = 'h2'): string {
  const runs = r.seedRuns ?? [];
  if (runs.length <= 1) return '';
  const items = runs
    .map((run) => `<details>
<summary>seed ${run.seed}: ${escapeHtml(run.summary[0] ?? '')}</summary>
<div class="reading">${run.reading.map((p) => `<p>${escapeHtml(p)}</p>`).join('\n')}</div>
<table class="headlines">${run.headlines.map((h) => `<tr><th scope="row">${escapeHtml(h.label)}</th><td class="value">${escapeHtml(h.value)}</td></tr>`).join('')}</table>
</details>`)
    .join('\n');
  return `<section class="seeds">
<${heading}>Each seed</${heading}>
${items}
</section>`;
}

function formatSeconds(s: number): string {
  if (s < 90) return `${s.toFixed(1)} s`;
  if (s < 5400) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(2)} h`;
}

function headlinesTable(r: ExperimentResult): string {
  const rows = r.headlines.map((h) => `<tr><th scope="row">${escapeHtml(h.label)}</th><td class="value">${escapeHtml(h.value)}</td></tr>`).join('\n');
  return `<div class="scroll"><table class="headlines">\n${rows}\n</table></div>`;
}

/** What the experiment compares, before any result (nothing when the caller has no text for it). */
function comparedHtml(compared: string | undefined): string {
  return compared ? `<p class="compared"><strong>What is compared.</strong> ${escapeHtml(compared)}</p>` : '';
}

function settingValue(v: unknown): string {
  if (Array.isArray(v)) return v.map((x) => settingValue(x)).join(', ');
  if (v !== null && typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function settingsTable(r: ExperimentResult): string {
  const rows = Object.entries(r.settings).map(([k, v]) => `<tr><th scope="row">${escapeHtml(k)}</th><td>${escapeHtml(settingValue(v))}</td></tr>`);
  rows.push(`<tr><th scope="row">${(r.seeds ?? [r.seed]).length === 1 ? 'seed' : 'seeds'}</th><td>${(r.seeds ?? [r.seed]).join(', ')}</td></tr>`, `<tr><th scope="row">kernels</th><td>${escapeHtml(r.backend)}</td></tr>`);
  return `<div class="scroll"><table class="settings">\n${rows.join('\n')}\n</table></div>`;
}

function figureHtml(f: RenderedFigure, prefix: string, base = ''): string {
  const links: string[] = [];
  if (f.files?.svg) links.push(`<a href="${escapeHtml(base + f.files.svg)}">SVG</a>`);
  if (f.files?.png) links.push(`<a href="${escapeHtml(base + f.files.png)}">PNG</a>`);
  const id = `${prefix}-${f.figure.id}`;
  const width = Number(/^<svg\b[^>]*?\swidth="([\d.]+)"/.exec(f.svg)?.[1]);
  const minWidth = width > 0 ? ` style="--min-width: ${Math.round(width * 0.8)}px"` : '';
  return `<figure id="${escapeHtml(id)}">
<h3>${escapeHtml(f.figure.title)}</h3>
<div class="chart"${minWidth} role="img" aria-label="${escapeHtml(f.figure.title)}">${namespaceSvgIds(f.svg, id)}</div>
<figcaption>${escapeHtml(f.figure.caption)}${links.length ? ` (${links.join(' · ')})` : ''}</figcaption>
</figure>`;
}

/** The page of one experiment run. */
export function experimentReportHtml(result: ExperimentResult, figures: RenderedFigure[], options: { resultsHref?: string; compared?: string } = {}): string {
  const body = `<header>
<p class="kicker">bnlab experiment · ${escapeHtml(result.experiment)}</p>
<h1>${escapeHtml(result.title)}</h1>
<p class="question">${escapeHtml(result.question)}</p>
${comparedHtml(options.compared)}
<p class="meta">${runMeta(result)}</p>
</header>
<section class="reading">
<h2>Reading</h2>
${result.reading.map((p) => `<p>${escapeHtml(p)}</p>`).join('\n')}
</section>
<section>
<h2>Key figures</h2>
${headlinesTable(result)}
</section>
<section class="figures">
<h2>Plots</h2>
${figures.map((f) => figureHtml(f, result.experiment)).join('\n')}
</section>
${seedRunsHtml(result)}
<section>
<h2>Settings</h2>
${settingsTable(result)}
</section>
<footer>Every curve and every setting of this run: <a href="${escapeHtml(options.resultsHref ?? 'results.json')}">results.json</a>. The reading above is generated from those numbers.</footer>`;
  return page(`bnlab · ${result.experiment} · ${result.title}`, body);
}

/** One page joining several runs: a table of contents, then each run's question, summary, reading, plots and settings. */
export function combinedReportHtml(runs: ReportRun[], options: { title?: string } = {}): string {
  const title = options.title ?? 'bnlab experiments';
  const folderOf = (run: ReportRun) => run.href.replace(/\/+$/, '').split('/').pop() || '.';
  // Two runs of one experiment differ by folder and start time: both are in the table and in each section.
  const toc = runs
    .map((run, i) => {
      const r = run.result;
      return `<tr><td><a href="#run-${i}">${escapeHtml(r.experiment)}</a><br><span class="folder">${escapeHtml(folderOf(run))}</span></td><td>${escapeHtml(r.title)}</td><td class="nowrap">${escapeHtml(r.startedAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))}</td><td>${r.quick ? 'quick' : 'full'}</td><td>${(r.seeds ?? [r.seed]).join(', ')}</td><td class="nowrap">${escapeHtml(formatSeconds(r.wallTimeSeconds))}</td><td>${escapeHtml(r.summary[0] ?? '')}</td></tr>`;
    })
    .join('\n');
  const sections = runs
    .map((run, i) => {
      const r = run.result;
      const base = run.href.endsWith('/') || run.href === '' ? run.href : `${run.href}/`;
      return `<section class="run" id="run-${i}">
<p class="kicker">${escapeHtml(r.experiment)} · folder <span class="path">${escapeHtml(folderOf(run))}</span> · <a href="${escapeHtml(base)}report.html">run page</a> · <a href="${escapeHtml(base)}results.json">results.json</a></p>
<h2>${escapeHtml(r.title)}</h2>
<p class="question">${escapeHtml(r.question)}</p>
${comparedHtml(run.compared)}
<p class="meta">${runMeta(r)}</p>
<ul class="summary">${r.summary.map((s) => `<li>${escapeHtml(s)}</li>`).join('')}</ul>
${headlinesTable(r)}
<div class="reading">${r.reading.map((p) => `<p>${escapeHtml(p)}</p>`).join('\n')}</div>
${run.figures.map((f) => figureHtml(f, `run-${i}`, base)).join('\n')}
${seedRunsHtml(r, 'h3')}
<details class="settings">
<summary>Settings</summary>
${settingsTable(r)}
</details>
</section>`;
    })
    .join('\n');
  const body = `<header>
<p class="kicker">bnlab</p>
<h1>${escapeHtml(title)}</h1>
<p class="question">Why batch norm works: every claim run on real data, ${runs.length} run${runs.length === 1 ? '' : 's'} below.</p>
</header>
<nav>
<h2>Runs</h2>
<div class="scroll">
<table>
<tr><th>experiment (folder)</th><th>title</th><th>started</th><th>size</th><th>seeds</th><th>wall time</th><th>summary</th></tr>
${toc}
</table>
</div>
</nav>
${sections || '<p>No runs yet: <code>bnlab experiment convergence --quick</code> makes one.</p>'}`;
  return page(title, body);
}
