/**
 * The package's own name and version, read from its package.json. The CLI runs both from `src/` (tsx)
 * and from `dist/src/`, at different depths, so it looks upward for the manifest instead of using a
 * fixed relative path.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PackageInfo {
  name: string;
  version: string;
  /** Versions of the dependencies as declared in package.json. */
  dependencies: Record<string, string>;
}

let cached: PackageInfo | null = null;

export function packageInfo(): PackageInfo {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const manifest = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string; dependencies?: Record<string, string> };
      if (manifest.name === 'bnlab') {
        cached = { name: manifest.name, version: manifest.version ?? '0.0.0', dependencies: manifest.dependencies ?? {} };
        return cached;
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return (cached = { name: 'bnlab', version: 'unknown', dependencies: {} });
    dir = parent;
  }
}
