#!/usr/bin/env node
/**
 * npm run conformance -- DIR [DIR ...]: run every case of every *.json fixture file in the directories,
 * print one line per case and a closing "N passed, N failed, N skipped"; exit 1 on any failure.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatResult, runFixtureFile, type CaseResult } from '../conformance/fixtures.js';
import { setWarningHandler } from '../nn/warnings.js';
import { getBackend, initBackend } from '../kernels/index.js';

export function runConformance(dirs: string[], log: (line: string) => void = console.log): { passed: number; failed: number; skipped: number } {
  const results: CaseResult[] = [];
  let failed = 0;
  const restore = setWarningHandler(() => {});
  try {
    for (const dir of dirs) {
      const path = resolve(dir);
      let files: string[];
      try {
        if (!statSync(path).isDirectory()) throw new Error('not a directory');
        files = readdirSync(path).filter((f) => f.endsWith('.json')).sort();
      } catch (e) {
        log(`FAILED  ${dir}: cannot read fixture directory (${(e as Error).message})`);
        failed++;
        continue;
      }
      if (files.length === 0) {
        log(`FAILED  ${dir}: no *.json fixture files`);
        failed++;
      }
      for (const f of files) {
        let json: unknown;
        try {
          json = JSON.parse(readFileSync(join(path, f), 'utf8'));
          for (const r of runFixtureFile(json, basename(f))) {
            results.push(r);
            log(formatResult(r));
          }
        } catch (e) {
          log(`FAILED  ${f}: ${(e as Error).message}`);
          failed++;
        }
      }
    }
  } finally {
    setWarningHandler(restore);
  }
  const count = (s: CaseResult['status']) => results.filter((r) => r.status === s).length;
  const summary = { passed: count('passed'), failed: count('failed') + failed, skipped: count('skipped') };
  log(`${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped`);
  return summary;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const backendIndex = args.indexOf('--backend');
  if (backendIndex >= 0) {
    // initBackend, not setBackend: the wasm backend compiles its module first.
    await initBackend(args[backendIndex + 1]);
    args.splice(backendIndex, 2);
  }
  if (args.length === 0 || args.includes('--help')) {
    console.log('Usage: npm run conformance -- DIR [DIR ...] [--backend NAME]\nRuns every case of every *.json bn-fixture/1 file in each DIR and prints one line per case.');
    process.exit(args.length === 0 ? 2 : 0);
  }
  console.log(`Backend: ${getBackend().capabilities.variant}`);
  const { failed } = runConformance(args);
  process.exit(failed > 0 ? 1 : 0);
}
