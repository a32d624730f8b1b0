/**
 * Every hostile file in test/support/io-hostile-cases.ts gets its documented error class and defect, with a
 * message that starts with the file name.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errorOf, hostileCases } from './support/io-hostile-cases.js';

for (const c of hostileCases()) {
  test(`${c.parser}: ${c.name} → ${c.defect}`, () => {
    const e = errorOf(c);
    assert.ok(e instanceof c.errorClass, `expected ${c.errorClass.name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    assert.equal((e as { defect: string }).defect, c.defect, (e as Error).message);
    const file = (e as { fileName: string }).fileName;
    assert.ok((e as Error).message.startsWith(`${file}: ${c.defect}: `), (e as Error).message);
  });
}
