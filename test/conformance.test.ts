/**
 * The PyTorch reference fixtures through the same runner as `npm run conformance`: test/fixtures/pytorch
 * (copied from the shared fixture set) and test/fixtures/pytorch-extra (made by scripts/make_fixtures.py).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runConformance } from '../src/cli/conformance.js';
import { layerTypes } from '../src/index.js';

const dir = fileURLToPath(new URL('./fixtures/pytorch', import.meta.url));

test('every PyTorch fixture case passes; only cases needing missing layers are skipped', () => {
  const lines: string[] = [];
  const r = runConformance([dir], (l) => lines.push(l));
  assert.equal(r.failed, 0, lines.join('\n'));
  assert.ok(r.passed >= 14, lines.join('\n'));
  const needsConv = !layerTypes().includes('Conv2d');
  assert.equal(r.skipped, needsConv ? 1 : 0, lines.join('\n'));
  assert.match(lines.at(-1)!, /^\d+ passed, 0 failed, \d+ skipped$/);
});

test('a second PyTorch fixture set in the same format (scripts/make_fixtures.py) passes too', () => {
  const lines: string[] = [];
  const r = runConformance([fileURLToPath(new URL('./fixtures/pytorch-extra', import.meta.url))], (l) => lines.push(l));
  assert.equal(r.failed, 0, lines.join('\n'));
  assert.equal(r.passed, 9, lines.join('\n'));
});

test('a wrong expected value fails the case and the run', () => {
  const fixture = JSON.parse(readFileSync(join(dir, 'bn-layers.json'), 'utf8'));
  fixture.cases = [fixture.cases[0]];
  fixture.cases[0].steps[0].expect.dx.data[3] += 0.01;
  const tmp = mkdtempSync(join(tmpdir(), 'bnlab-fixture-'));
  writeFileSync(join(tmp, 'broken.json'), JSON.stringify(fixture));
  const lines: string[] = [];
  const r = runConformance([tmp], (l) => lines.push(l));
  assert.equal(r.failed, 1);
  assert.match(lines[0], /^FAILED +broken\.json bn1d_train_small: .*step 0 dx\[3\]/);
});

test('a malformed fixture file or an empty directory is reported, not crashed on', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'bnlab-fixture-'));
  const lines: string[] = [];
  assert.equal(runConformance([tmp], (l) => lines.push(l)).failed, 1);
  writeFileSync(join(tmp, 'bad.json'), '{"format": "something-else", "cases": []}');
  writeFileSync(join(tmp, 'truncated.json'), '{"format": "bn-fix');
  const r = runConformance([tmp], (l) => lines.push(l));
  assert.equal(r.failed, 2);
  assert.ok(lines.some((l) => /not a bn-fixture\/1 file/.test(l)));
});
