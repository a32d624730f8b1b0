#!/usr/bin/env node
/**
 * After tsc: give every `bin` entry of package.json its run bit, which tsc does not set, so that
 * `npx bnlab` works in this repository (npm sets it itself when the package is installed).
 */
import { chmodSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { bin = {} } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
for (const file of typeof bin === 'string' ? [bin] : Object.values(bin)) chmodSync(join(root, file), 0o755);
