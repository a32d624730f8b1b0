#!/usr/bin/env node
/**
 * `npm pack` packs package.json as it is on disk, `prepare` included; npm 11 then lists bnlab among
 * the "packages with install scripts" of every project that installs the tarball, though npm never
 * runs `prepare` for one (the tarball is built). So prepack strips it and postpack puts the file back:
 *
 *   node scripts/pack-manifest.mjs strip     # package.json saved to package.json.packing, prepare removed
 *   node scripts/pack-manifest.mjs restore   # package.json.packing moved back
 *
 * A pack that failed between the two leaves package.json.packing behind: the next strip or restore
 * puts it back first, so the repository's own manifest is never lost.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const manifest = join(root, 'package.json');
const saved = join(root, 'package.json.packing');

function restore() {
  if (existsSync(saved)) renameSync(saved, manifest);
}

const action = process.argv[2];
if (action === 'restore') {
  restore();
} else if (action === 'strip') {
  restore();
  const text = readFileSync(manifest, 'utf8');
  const pkg = JSON.parse(text);
  writeFileSync(saved, text);
  delete pkg.scripts.prepare;
  // Written aside and renamed, so that a process reading package.json meanwhile sees one or the other.
  writeFileSync(`${manifest}.tmp`, `${JSON.stringify(pkg, null, 2)}\n`);
  renameSync(`${manifest}.tmp`, manifest);
} else {
  console.error('usage: node scripts/pack-manifest.mjs strip|restore');
  process.exit(2);
}
