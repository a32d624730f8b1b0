/**
 * The built lab (dist-lab/, `npm run lab:build`; `npm test` builds it first) in headless Chromium through
 * playwright-core: a local server with or without the cross-origin isolation headers, a browser, and
 * pages that record console errors and every request that leaves the origin.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { serveLab } from '../../src/lab-server/index.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const LAB_DIR = join(ROOT, 'dist-lab');
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** Fails (never skips) with the command that fixes what is missing. */
export function requireLab(): void {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is not installed at ${CHROMIUM}: install it with  apt-get install chromium`);
  if (!existsSync(join(LAB_DIR, 'index.html'))) throw new Error(`${LAB_DIR} is missing: build the lab with  npm run lab:build  (npm test does it first)`);
}

export async function launch(): Promise<Browser> {
  requireLab();
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

export async function serve(isolated: boolean): Promise<{ url: string; close(): Promise<void> }> {
  const { url, close } = await serveLab({ dir: LAB_DIR, isolated });
  return { url, close };
}

export interface WatchedPage {
  page: Page;
  /** Console errors and uncaught exceptions, in the page and its workers. */
  errors: string[];
  /** Console warnings, in the page and its workers. */
  warnings: string[];
  /** Requests to anywhere but the lab's origin (data:/blob: URLs are local). */
  foreign: string[];
}

export interface OpenOptions {
  viewport?: { width: number; height: number };
  /** A phone or tablet: touch input, a coarse pointer, the mobile viewport rules. */
  touch?: boolean;
  /** Wait until the lab is up (data loaded, twins built) before returning; default true. */
  waitForReady?: boolean;
  /** Runs before the page loads, e.g. to route (hold back) some of its requests. */
  before?: (context: BrowserContext) => Promise<unknown>;
}

export async function openLab(browser: Browser, url: string, options: OpenOptions = {}): Promise<WatchedPage> {
  const { viewport = { width: 1280, height: 800 }, waitForReady = true } = options;
  const context = await browser.newContext({ viewport, acceptDownloads: true, ...(options.touch ? { hasTouch: true, isMobile: true } : {}) });
  // Every wait is for a condition, so a long limit costs nothing when the machine is idle; on a loaded one
  // readings and probes can arrive seconds late.
  context.setDefaultTimeout(60_000);
  const page = await context.newPage();
  const origin = new URL(url).origin;
  const errors: string[] = [];
  const warnings: string[] = [];
  const foreign: string[] = [];
  page.on('console', (m) => (m.type() === 'error' ? errors.push(m.text()) : m.type() === 'warning' && warnings.push(m.text())));
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('worker', (w) => w.on('console', (m) => (m.type() === 'error' ? errors.push(`worker: ${m.text()}`) : m.type() === 'warning' && warnings.push(`worker: ${m.text()}`))));
  context.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin) foreign.push(u);
  });
  await options.before?.(context);
  await page.goto(url);
  if (waitForReady) await page.waitForFunction(() => (globalThis as { bnlabLab?: { ready: boolean } }).bnlabLab?.ready === true, null, { timeout: 60_000 });
  return { page, errors, warnings, foreign };
}

export interface Snapshot {
  step: number;
  config: Record<string, unknown>;
  runs: Record<'bn' | 'nobn', { trainLoss: (number | null)[]; testAccuracy: { step: number; accuracy: number }[]; diverged: { step: number; cause: string } | null }>;
}

export const snapshot = (page: Page) => page.evaluate(() => (globalThis as unknown as { bnlabLab: { snapshot(): unknown } }).bnlabLab.snapshot()) as Promise<Snapshot>;
export const advance = (page: Page, steps: number) => page.evaluate((n) => (globalThis as unknown as { bnlabLab: { advance(n: number): Promise<void> } }).bnlabLab.advance(n), steps);
