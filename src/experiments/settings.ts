/**
 * Settings of an experiment: its full-size defaults, its quick size, and whatever the caller overrides
 * (the CLI's npm-start size, a test's smaller run). Unknown or mistyped overrides are errors, so a typo
 * does not silently run the default.
 */

/** `quick` or full defaults, with the options the caller gave laid over them. */
export function resolveSettings<S extends object>(experiment: string, options: object, defaults: S, quickDefaults: S, quick: boolean): S {
  const base = quick ? quickDefaults : defaults;
  const out = { ...base } as Record<string, unknown>;
  for (const key of Object.keys(base)) {
    let value = (options as Record<string, unknown>)[key];
    if (value === undefined) continue;
    const expected = (base as Record<string, unknown>)[key];
    if (Array.isArray(expected) && typeof value === 'number') value = [value];
    const ok = Array.isArray(expected) ? Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isFinite(v)) : typeof value === typeof expected && (typeof value !== 'number' || Number.isFinite(value));
    if (!ok) throw new Error(`${experiment}: option "${key}" must be ${Array.isArray(expected) ? 'a list of numbers' : `a ${typeof expected}`} (like the default ${JSON.stringify(expected)}), got ${JSON.stringify(value)}`);
    out[key] = value;
  }
  return out as S;
}

/** Throws unless `value` is a positive integer. */
export function checkPositiveInt(experiment: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${experiment}: ${name} must be a positive integer, got ${value}`);
}
