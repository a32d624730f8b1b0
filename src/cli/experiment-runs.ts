/**
 * Experiment runs on disk: `runs/experiments/NAME-<timestamp>/` holds results.json (every curve and
 * setting), each figure as SVG and PNG, and report.html; `runs/experiments/report.html` joins every run.
 * Used by `bnlab experiment`, `bnlab report` and `bnlab start`.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { EXPERIMENTS, getExperiment } from '../experiments/index.js';
import { upgradeResult } from '../experiments/seeds.js';
import type { ExperimentDefinition, ExperimentResult } from '../experiments/types.js';
import { combinedReportHtml, experimentReportHtml, type RenderedFigure, type ReportRun } from '../report/html.js';
import { svgToPng } from '../report/png.js';
import { renderSvg } from '../report/render.js';

/** Where `bnlab experiment` writes and `bnlab report` reads, relative to the working directory. */
export const EXPERIMENTS_DIR = join('runs', 'experiments');

export interface WrittenRun {
  dir: string;
  results: string;
  report: string;
  /** The SVG and PNG files written. */
  figures: string[];
}

/** `<parent>/<name>-YYYYMMDD-HHMMSS`, with -2, -3, ... when that exists already. */
export function experimentRunDir(name: string, now = new Date(), parent = EXPERIMENTS_DIR): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
  const base = join(parent, `${name}-${stamp}`);
  let dir = base;
  for (let i = 2; existsSync(dir); i++) dir = `${base}-${i}`;
  return dir;
}

/** Render every figure of `result` to SVG; `files` names the SVG and PNG after the figure id. */
export async function renderFigures(definition: ExperimentDefinition, result: ExperimentResult): Promise<RenderedFigure[]> {
  const out: RenderedFigure[] = [];
  for (const figure of definition.figures(result)) {
    const svg = await renderSvg(figure.spec);
    out.push({ figure, svg, files: { svg: `${figure.id}.svg`, png: `${figure.id}.png` } });
  }
  return out;
}

/** Write results.json, the figures (SVG and PNG) and report.html into `dir`. */
export async function writeExperimentRun(result: ExperimentResult, dir: string): Promise<WrittenRun> {
  const definition = getExperiment(result.experiment);
  mkdirSync(dir, { recursive: true });
  const results = join(dir, 'results.json');
  writeFileSync(results, JSON.stringify(result, null, 1) + '\n');
  const figures = await renderFigures(definition, result);
  const files: string[] = [];
  for (const f of figures) {
    const svgPath = join(dir, f.files!.svg!);
    const pngPath = join(dir, f.files!.png!);
    writeFileSync(svgPath, f.svg);
    writeFileSync(pngPath, svgToPng(f.svg));
    files.push(svgPath, pngPath);
  }
  const report = join(dir, 'report.html');
  writeFileSync(report, experimentReportHtml(result, figures, { compared: definition.compared }));
  return { dir, results, report, figures: files };
}

/**
 * Every run under `root` (each folder with a results.json of a known experiment), in the order of
 * EXPERIMENTS, newest first within an experiment. Unreadable folders are reported in `skipped`.
 */
export function readRuns(root: string = EXPERIMENTS_DIR): { runs: Array<{ dir: string; result: ExperimentResult }>; skipped: string[] } {
  const runs: Array<{ dir: string; result: ExperimentResult }> = [];
  const skipped: string[] = [];
  if (!existsSync(root)) return { runs, skipped };
  for (const name of readdirSync(root).sort()) {
    const dir = join(root, name);
    const file = join(dir, 'results.json');
    if (!statSync(dir).isDirectory() || !existsSync(file)) continue;
    try {
      const result = upgradeResult(JSON.parse(readFileSync(file, 'utf8')));
      getExperiment(result.experiment);
      runs.push({ dir, result });
    } catch (err) {
      skipped.push(`${file}: ${(err as Error).message}`);
    }
  }
  const order = new Map(EXPERIMENTS.map((e, i) => [e.name, i]));
  runs.sort((a, b) => order.get(a.result.experiment)! - order.get(b.result.experiment)! || b.result.startedAt.localeCompare(a.result.startedAt));
  return { runs, skipped };
}

/**
 * Write `<root>/report.html` joining every run under `root`: figures re-rendered from each results.json
 * (so the page works even if a run's image files were deleted), linking to each run's own files.
 */
export async function writeCombinedReport(root: string = EXPERIMENTS_DIR, out = join(root, 'report.html')): Promise<{ path: string; runs: number; skipped: string[] }> {
  const { runs, skipped } = readRuns(root);
  const outDir = resolve(out, '..');
  const entries: ReportRun[] = [];
  for (const run of runs) {
    const definition = getExperiment(run.result.experiment);
    const figures = await renderFigures(definition, run.result);
    const href = relative(outDir, resolve(run.dir)).split('\\').join('/');
    for (const f of figures) {
      if (!existsSync(join(run.dir, f.files!.svg!))) delete f.files!.svg;
      if (!existsSync(join(run.dir, f.files!.png!))) delete f.files!.png;
    }
    entries.push({ result: run.result, figures, href, compared: definition.compared });
  }
  mkdirSync(outDir, { recursive: true });
  writeFileSync(out, combinedReportHtml(entries));
  return { path: out, runs: entries.length, skipped };
}
